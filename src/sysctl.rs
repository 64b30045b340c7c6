//! Per-interface sysctls through `/proc/sys` (never the `sysctl` binary).
//!
//! The root is configurable so unit tests can point it at a directory. From a
//! thread that has unshared its network namespace, `/proc/sys/net` is that
//! namespace's.

use std::fs;
use std::path::PathBuf;

use crate::plan::SysctlKey;

/// A sysctl could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// Reading failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Writing failed.
    #[error(
        "cannot write {value} to {path}: {source} (is /proc/sys writable? ProtectKernelTunables must be off)"
    )]
    Write {
        /// The file.
        path: PathBuf,
        /// The value.
        value: u32,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file did not hold a number.
    #[error("{path} holds {text:?}, not a number")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

impl SysctlError {
    /// True when the interface's directory does not exist (renamed or gone).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::Read { source, .. } | Self::Write { source, .. } => {
                source.kind() == std::io::ErrorKind::NotFound
            }
            Self::Parse { .. } => false,
        }
    }
}

/// Access to `/proc/sys` (or a stand-in directory).
#[derive(Debug, Clone)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Self::new("/proc/sys")
    }
}

impl Sysctl {
    /// Sysctls below `root` instead of `/proc/sys`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path(&self, key: SysctlKey, ifname: &str) -> PathBuf {
        self.root.join(key.path(ifname))
    }

    /// Whether IPv6 is enabled at all (`net/ipv6/conf` exists).
    pub fn ipv6_available(&self) -> bool {
        self.root.join("net/ipv6/conf").is_dir()
    }

    /// `sysctl -n net.ipv4.conf.<ifname>.<key>`
    pub fn get(&self, key: SysctlKey, ifname: &str) -> Result<u32, SysctlError> {
        let path = self.path(key, ifname);
        let text = fs::read_to_string(&path).map_err(|source| SysctlError::Read {
            path: path.clone(),
            source,
        })?;
        let t = text.trim();
        // accept_ra and friends are signed in the kernel; we only ever set >= 0.
        t.parse::<u32>().map_err(|_| SysctlError::Parse {
            path,
            text: t.to_owned(),
        })
    }

    /// `sysctl -w net.ipv4.conf.<ifname>.<key>=<value>`
    pub fn set(&self, key: SysctlKey, ifname: &str, value: u32) -> Result<(), SysctlError> {
        let path = self.path(key, ifname);
        fs::write(&path, format!("{value}\n")).map_err(|source| SysctlError::Write {
            path,
            value,
            source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_set_below_a_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("net/ipv4/conf/eth1");
        fs::create_dir_all(&conf).expect("mkdir");
        fs::write(conf.join("rp_filter"), "1\n").expect("write");
        let s = Sysctl::new(dir.path());
        assert_eq!(s.get(SysctlKey::RpFilter, "eth1").expect("get"), 1);
        s.set(SysctlKey::RpFilter, "eth1", 2).expect("set");
        assert_eq!(s.get(SysctlKey::RpFilter, "eth1").expect("get"), 2);
        let err = s.get(SysctlKey::ArpIgnore, "eth9").expect_err("missing");
        assert!(err.is_not_found());
        fs::write(conf.join("arp_ignore"), "x\n").expect("write");
        assert!(matches!(
            s.get(SysctlKey::ArpIgnore, "eth1"),
            Err(SysctlError::Parse { .. })
        ));
    }
}
