//! Hand-off with the OS network managers: before an ENI is attached, tell
//! NetworkManager and systemd-networkd to leave its NIC alone, matched by
//! MAC, through runtime files that vanish at reboot and are removed again on
//! detach. Each file is named after the ENI and starts with a marker line,
//! so the agent only ever removes its own.
//!
//! - NetworkManager: `/run/NetworkManager/conf.d/90-eni-agent-<eni>.conf`
//!   (a `[device]` section with `managed=0`), and a udev rule in
//!   `/run/udev/rules.d/` setting `NM_UNMANAGED=1` on the hot-plugged device
//!   (udev re-reads its rules by itself; NetworkManager reads conf.d only at
//!   start and reload, so the udev property is what covers a running NM).
//! - systemd-networkd: `/run/systemd/network/05-eni-agent-<eni>.network`
//!   with `[Match] PermanentMACAddress=` and `[Link] Unmanaged=yes`; the low
//!   number sorts before distribution catch-all files.

use std::path::{Path, PathBuf};

use crate::mac::MacAddr;
use crate::state::write_atomic;

const MARKER: &str = "# Written by eni-agent; removed when the ENI is detached.";

/// The runtime directories (overridable for tests).
#[derive(Debug, Clone)]
pub struct HandoffDirs {
    pub network_manager: PathBuf,
    pub networkd: PathBuf,
    pub udev_rules: PathBuf,
}

impl Default for HandoffDirs {
    fn default() -> Self {
        Self {
            network_manager: "/run/NetworkManager/conf.d".into(),
            networkd: "/run/systemd/network".into(),
            udev_rules: "/run/udev/rules.d".into(),
        }
    }
}

/// A hand-off file that could not be written or removed.
#[derive(Debug, thiserror::Error)]
#[error("network manager hand-off file {path}: {source}")]
pub struct HandoffError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl HandoffDirs {
    fn files(&self, eni_id: &str) -> [PathBuf; 3] {
        let safe: String = eni_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        [
            self.network_manager
                .join(format!("90-eni-agent-{safe}.conf")),
            self.networkd.join(format!("05-eni-agent-{safe}.network")),
            self.udev_rules.join(format!("70-eni-agent-{safe}.rules")),
        ]
    }

    /// Writes the three files for `eni_id` / `mac`.
    pub fn install(&self, eni_id: &str, mac: MacAddr) -> Result<(), HandoffError> {
        let [nm, networkd, udev] = self.files(eni_id);
        let contents = [
            (
                nm,
                format!(
                    "{MARKER}\n[device-eni-agent-{eni_id}]\nmatch-device=mac:{mac}\nmanaged=0\n"
                ),
            ),
            (
                networkd,
                format!("{MARKER}\n[Match]\nPermanentMACAddress={mac}\n\n[Link]\nUnmanaged=yes\n"),
            ),
            (
                udev,
                format!(
                    "{MARKER}\nACTION==\"add|change\", SUBSYSTEM==\"net\", ATTR{{address}}==\"{mac}\", ENV{{NM_UNMANAGED}}=\"1\"\n"
                ),
            ),
        ];
        for (path, text) in contents {
            write_file(&path, &text)?;
        }
        self.report();
        Ok(())
    }

    /// Removes the files of `eni_id` that carry the marker; others are left.
    pub fn remove(&self, eni_id: &str) -> Result<(), HandoffError> {
        for path in self.files(eni_id) {
            match std::fs::read_to_string(&path) {
                Ok(text) if text.starts_with(MARKER) => {
                    std::fs::remove_file(&path).map_err(|source| HandoffError {
                        path: path.clone(),
                        source,
                    })?;
                }
                Ok(_) => {
                    tracing::warn!(path = %path.display(), "not removing a hand-off file eni-agent did not write")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(HandoffError { path, source }),
            }
        }
        self.report();
        Ok(())
    }

    /// Sets `eni_agent_handoff_files{manager}` from the files present.
    fn report(&self) {
        for (manager, dir, prefix) in [
            ("NetworkManager", &self.network_manager, "90-eni-agent-"),
            ("systemd-networkd", &self.networkd, "05-eni-agent-"),
            ("udev", &self.udev_rules, "70-eni-agent-"),
        ] {
            let count = std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                    .count()
            });
            crate::metrics::global().handoff_files(manager, count);
        }
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), HandoffError> {
    let err = |source| HandoffError {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    write_atomic(path, text.as_bytes()).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dirs(root: &Path) -> HandoffDirs {
        HandoffDirs {
            network_manager: root.join("nm"),
            networkd: root.join("networkd"),
            udev_rules: root.join("udev"),
        }
    }

    #[test]
    fn install_then_remove_leaves_nothing_and_spares_foreign_files() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = dirs(root.path());
        let mac: MacAddr = "00:16:3e:12:34:56".parse().expect("mac");
        d.install("eni-abc", mac).expect("install");
        let networkd =
            std::fs::read_to_string(root.path().join("networkd/05-eni-agent-eni-abc.network"))
                .expect("file");
        assert!(
            networkd.contains("PermanentMACAddress=00:16:3e:12:34:56")
                && networkd.contains("Unmanaged=yes")
        );
        let nm = std::fs::read_to_string(root.path().join("nm/90-eni-agent-eni-abc.conf"))
            .expect("file");
        assert!(nm.contains("match-device=mac:00:16:3e:12:34:56") && nm.contains("managed=0"));
        let udev = std::fs::read_to_string(root.path().join("udev/70-eni-agent-eni-abc.rules"))
            .expect("file");
        assert!(udev.contains("NM_UNMANAGED"));

        // A file of the same name that someone else wrote is not ours.
        std::fs::write(
            root.path().join("udev/70-eni-agent-eni-abc.rules"),
            "user rule\n",
        )
        .expect("overwrite");
        d.remove("eni-abc").expect("remove");
        assert!(
            !root
                .path()
                .join("networkd/05-eni-agent-eni-abc.network")
                .exists()
        );
        assert!(!root.path().join("nm/90-eni-agent-eni-abc.conf").exists());
        assert!(root.path().join("udev/70-eni-agent-eni-abc.rules").exists());
        d.remove("eni-abc").expect("removing again is fine");
    }
}
