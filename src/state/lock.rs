//! One agent per state directory: an exclusive `flock` on `<dir>/lock`,
//! holding the owner's pid and role (`daemon` or `one-shot`) for the next
//! one: a one-shot waits for another one-shot (cloud-init may attach several
//! ENIs in parallel) but never for the daemon, which holds the lock for good.

use std::fs::OpenOptions;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};

use super::StateError;

/// Who holds the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `eni-agent run`: holds it until it stops.
    Daemon,
    /// `attach`/`detach`: holds it for one operation.
    OneShot,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Daemon => "daemon",
            Role::OneShot => "one-shot",
        }
    }
}

/// The holder's role while it has the lock but has not written its line.
const STARTING: &str = "starting";

/// How often a waiting one-shot retries the lock.
const RETRY: Duration = Duration::from_millis(50);

/// Held while the agent runs; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct StateLock {
    _lock: Flock<std::fs::File>,
}

/// Why the lock was not taken.
enum Refused {
    /// Held; pid and role as the holder wrote them.
    Held {
        pid: String,
        role: String,
    },
    Failed(StateError),
}

impl StateLock {
    /// Takes the lock or fails at once.
    pub fn acquire(path: &Path, role: Role) -> Result<Self, StateError> {
        Self::try_acquire(path, role).map_err(|r| match r {
            Refused::Held { pid, .. } => StateError::Locked {
                path: path.to_owned(),
                pid,
            },
            Refused::Failed(e) => e,
        })
    }

    /// Takes the lock, waiting up to `wait` while another one-shot holds it;
    /// fails at once when a daemon holds it.
    pub async fn acquire_waiting(
        path: &Path,
        role: Role,
        wait: Duration,
    ) -> Result<Self, StateError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut logged = false;
        loop {
            match Self::try_acquire(path, role) {
                Ok(lock) => return Ok(lock),
                Err(Refused::Failed(e)) => return Err(e),
                Err(Refused::Held { pid, role: holder }) => {
                    let waitable = holder == Role::OneShot.as_str() || holder == STARTING;
                    if !waitable || tokio::time::Instant::now() >= deadline {
                        return Err(StateError::Locked {
                            path: path.to_owned(),
                            pid,
                        });
                    }
                    if !logged {
                        tracing::info!(
                            "another eni-agent one-shot (pid {pid}) holds {}; waiting for it",
                            path.display()
                        );
                        logged = true;
                    }
                    tokio::time::sleep(RETRY).await;
                }
            }
        }
    }

    fn try_acquire(path: &Path, role: Role) -> Result<Self, Refused> {
        let write_err = |source| {
            Refused::Failed(StateError::Write {
                path: path.to_owned(),
                source,
            })
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(write_err)?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, _)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut words = text.split_whitespace();
                let pid = words.next().unwrap_or("unknown").to_owned();
                let role = match words.next() {
                    Some(role) => role,
                    // Empty: the holder has the lock but has not written
                    // its line yet; look again.
                    None if text.trim().is_empty() => STARTING,
                    // A pid alone: written by an older version, a daemon.
                    None => Role::Daemon.as_str(),
                }
                .to_owned();
                return Err(Refused::Held { pid, role });
            }
        };
        let write_owner = |f: &mut std::fs::File| -> std::io::Result<()> {
            f.set_len(0)?;
            f.rewind()?;
            writeln!(f, "{} {}", std::process::id(), role.as_str())
        };
        write_owner(&mut lock).map_err(write_err)?;
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
        let held = StateLock::acquire(&path, Role::Daemon).expect("first");
        let err = StateLock::acquire(&path, Role::OneShot)
            .expect_err("second")
            .to_string();
        assert!(err.contains(&std::process::id().to_string()), "{err}");
        drop(held);
        StateLock::acquire(&path, Role::OneShot).expect("free again");
    }

    #[tokio::test]
    async fn a_one_shot_waits_for_another_one_shot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let held = StateLock::acquire(&path, Role::OneShot).expect("first");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
        });
        let started = std::time::Instant::now();
        StateLock::acquire_waiting(&path, Role::OneShot, Duration::from_secs(10))
            .await
            .expect("taken once the first one-shot is done");
        assert!(started.elapsed() >= Duration::from_millis(150));
        release.await.expect("release task");
    }

    #[tokio::test]
    async fn a_holder_that_has_not_written_its_line_yet_is_waited_for() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        // Locked, file still empty: the moment between flock and the write.
        let file = std::fs::File::create(&path).expect("file");
        let held = Flock::lock(file, FlockArg::LockExclusiveNonblock).expect("flock");
        let release = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            drop(held);
        });
        StateLock::acquire_waiting(&path, Role::OneShot, Duration::from_secs(10))
            .await
            .expect("an empty lock file is a holder starting up, not a daemon");
        release.await.expect("release task");
    }

    #[tokio::test]
    async fn a_one_shot_does_not_wait_for_the_daemon_and_gives_up_in_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lock");
        let daemon = StateLock::acquire(&path, Role::Daemon).expect("daemon");
        let started = std::time::Instant::now();
        let err = StateLock::acquire_waiting(&path, Role::OneShot, Duration::from_secs(30))
            .await
            .expect_err("the daemon holds it for good");
        assert!(started.elapsed() < Duration::from_secs(5), "no waiting");
        assert!(err.to_string().contains("another eni-agent holds"), "{err}");
        drop(daemon);

        let _other = StateLock::acquire(&path, Role::OneShot).expect("one-shot");
        let err = StateLock::acquire_waiting(&path, Role::OneShot, Duration::from_millis(200))
            .await
            .expect_err("still held after the wait");
        assert!(matches!(err, StateError::Locked { .. }), "{err}");
    }
}
