//! Hand-off with the OS network managers: before an ENI is attached, tell
//! NetworkManager and systemd-networkd to leave its NIC alone, matched by
//! MAC, through runtime files that vanish at reboot and are removed again on
//! detach. Each file is named after the ENI and starts with a marker line,
//! so the agent only ever replaces or removes its own: a same-named file
//! without the marker (an admin's) is left alone and reported. The ENI id
//! must have its documented shape before it is put into a name or a file,
//! and the files are written 0644 whatever the process umask is
//! (systemd-networkd reads them as `systemd-network`).
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

use crate::ids::EniId;
use crate::mac::MacAddr;
use crate::state::write_atomic_mode;

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

/// Hand-off files are read by the network managers, not only by root.
const MODE: u32 = 0o644;

impl HandoffError {
    fn invalid(path: PathBuf, message: String) -> Self {
        Self {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, message),
        }
    }
}

impl HandoffDirs {
    fn files(&self, eni_id: &str) -> Result<[PathBuf; 3], HandoffError> {
        let safe = EniId::parse(eni_id)
            .map_err(|e| HandoffError::invalid(self.networkd.clone(), e.to_string()))?;
        Ok([
            self.network_manager
                .join(format!("90-eni-agent-{safe}.conf")),
            self.networkd.join(format!("05-eni-agent-{safe}.network")),
            self.udev_rules.join(format!("70-eni-agent-{safe}.rules")),
        ])
    }

    /// Writes the three files for `eni_id` / `mac`.
    pub fn install(&self, eni_id: &str, mac: MacAddr) -> Result<(), HandoffError> {
        let [nm, networkd, udev] = self.files(eni_id)?;
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
        // Nothing is written when any of the names is taken by a file that
        // is not ours.
        for (path, _) in &contents {
            if let Some(foreign) = foreign_file(path)? {
                return Err(HandoffError::invalid(
                    path.clone(),
                    format!(
                        "a file of this name exists and was not written by eni-agent (it does not start with {MARKER:?}; it begins {foreign:?}); move it away or set agent.manage_network_managers = false"
                    ),
                ));
            }
        }
        for (path, text) in contents {
            write_file(&path, &text)?;
        }
        self.report();
        Ok(())
    }

    /// Removes the files of `eni_id` that carry the marker; others are left.
    pub fn remove(&self, eni_id: &str) -> Result<(), HandoffError> {
        for path in self.files(eni_id)? {
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

/// The first line of `path` when it exists without our marker.
fn foreign_file(path: &Path) -> Result<Option<String>, HandoffError> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HandoffError {
                path: path.to_owned(),
                source,
            });
        }
        Ok(m) if !m.file_type().is_file() => return Ok(Some("(not a regular file)".into())),
        Ok(_) => {}
    }
    let text = std::fs::read(path).map_err(|source| HandoffError {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8_lossy(&text);
    if text.starts_with(MARKER) {
        Ok(None)
    } else {
        Ok(Some(crate::secret::bound_message(
            text.lines().next().unwrap_or(""),
            60,
        )))
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
    write_atomic_mode(path, text.as_bytes(), MODE).map_err(err)
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

    #[test]
    fn install_never_overwrites_an_admins_file_and_writes_0644() {
        use std::os::unix::fs::MetadataExt;
        let root = tempfile::tempdir().expect("tempdir");
        let d = dirs(root.path());
        let mac: MacAddr = "00:16:3e:12:34:56".parse().expect("mac");
        let admin = root.path().join("networkd/05-eni-agent-eni-abc.network");
        std::fs::create_dir_all(admin.parent().expect("dir")).expect("dir");
        std::fs::write(&admin, "[Match]\nName=eth9\n").expect("admin file");
        let err = d
            .install("eni-abc", mac)
            .expect_err("foreign file")
            .to_string();
        assert!(err.contains("not written by eni-agent"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&admin).expect("kept"),
            "[Match]\nName=eth9\n"
        );
        assert!(!root.path().join("nm/90-eni-agent-eni-abc.conf").exists());
        std::fs::remove_file(&admin).expect("rm");
        d.install("eni-abc", mac).expect("install");
        d.install("eni-abc", mac).expect("our own file is replaced");
        for f in [
            "networkd/05-eni-agent-eni-abc.network",
            "nm/90-eni-agent-eni-abc.conf",
            "udev/70-eni-agent-eni-abc.rules",
        ] {
            let mode = std::fs::metadata(root.path().join(f)).expect("meta").mode();
            assert_eq!(mode & 0o777, 0o644, "{f}");
        }
    }

    #[test]
    fn a_malformed_eni_id_never_reaches_a_file() {
        let root = tempfile::tempdir().expect("tempdir");
        let d = dirs(root.path());
        let mac: MacAddr = "00:16:3e:12:34:56".parse().expect("mac");
        let err = d
            .install("eni-x\nmatch-device=interface-name:eth0", mac)
            .expect_err("newline in id")
            .to_string();
        assert!(err.contains("ENI id"), "{err}");
        assert!(!root.path().join("nm").exists());
        assert!(d.remove("eni-x/../../etc").is_err());
    }
}
