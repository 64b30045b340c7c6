//! One agent per state directory: an exclusive `flock` on `<dir>/lock`,
//! holding the owner's pid for the error message of the next one.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::StateError;

/// Held while the agent runs; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<std::fs::File>,
}

impl StateLock {
    pub fn acquire(path: &Path) -> Result<Self, StateError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|source| StateError::Write {
                path: path.to_owned(),
                source,
            })?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(StateError::Locked {
                    path: path.to_owned(),
                    pid: pid.trim().to_owned(),
                });
            }
        };
        let write_pid = |f: &mut std::fs::File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{}", std::process::id())
        };
        write_pid(&mut lock).map_err(|source| StateError::Write {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { _lock: lock })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_pid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let held = StateLock::acquire(&path).expect("first");
        let err = StateLock::acquire(&path).expect_err("second").to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        StateLock::acquire(&path).expect("free again");
    }
}
