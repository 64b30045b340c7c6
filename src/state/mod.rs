//! Durable state under the state directory (`/var/lib/eni-agent`): one JSON
//! record per managed ENI — the intent (attach or detach), how far it got,
//! the last phase timings and error — written atomically (temp file, fsync,
//! rename, fsync of the directory) BEFORE every mutating API call, so a crash
//! at any point resumes correctly. A lock file keeps two agents from managing
//! the same instance at once.

mod atomic;
mod lock;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use atomic::{write_atomic, write_atomic_mode};
pub use lock::{Role as LockRole, StateLock};

use crate::agent::Mark;

/// What the agent means to do with an ENI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// Attach to this instance and keep configured.
    Attach,
    /// Remove the configuration and detach.
    Detach,
}

/// How far the intent got, as last recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Progress {
    /// Nothing sent yet.
    Pending,
    /// AttachNetworkInterface is about to be (or was) sent: after a crash,
    /// Describe decides whether it landed — never a blind second Attach.
    AttachRequested,
    /// InUse here and configured.
    Configured,
    /// DetachNetworkInterface is about to be (or was) sent.
    DetachRequested,
    /// Failed permanently; `last_error` says why.
    Failed,
}

/// The record of one ENI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EniRecord {
    pub eni_id: String,
    pub intent: Intent,
    pub progress: Progress,
    pub instance_id: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub ifindex: Option<u32>,
    #[serde(default)]
    pub ifname: Option<String>,
    #[serde(default)]
    pub table: Option<u32>,
    /// The addresses the agent added (`ADDRESS/LEN`), as recorded when it
    /// configured the NIC: cleanup on kernels without the address mark
    /// removes these and nothing else.
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub timeline: Vec<Mark>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// Seconds since the epoch of the last write.
    #[serde(default)]
    pub updated_at: u64,
    /// Drift repairs since the agent started managing the ENI.
    #[serde(default)]
    pub repairs: u64,
    /// Repairs within the last minute, as last counted.
    #[serde(default)]
    pub repairs_last_minute: u32,
    /// Seconds since the epoch of the last repair.
    #[serde(default)]
    pub last_repair_at: Option<u64>,
}

impl EniRecord {
    pub fn new(eni_id: &str, instance_id: &str, intent: Intent) -> Self {
        Self {
            eni_id: eni_id.to_owned(),
            intent,
            progress: Progress::Pending,
            instance_id: instance_id.to_owned(),
            mac: None,
            ifindex: None,
            ifname: None,
            table: None,
            addresses: Vec::new(),
            timeline: Vec::new(),
            last_error: None,
            updated_at: 0,
            repairs: 0,
            repairs_last_minute: 0,
            last_repair_at: None,
        }
    }
}

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "state directory {dir}: {source}; check that it exists and is writable by the agent (StateDirectory= in the unit)"
    )]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid state record ({reason}); move it aside and the agent re-reads the ENI from ECS"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "another eni-agent holds {path} (pid {pid}); stop it, or add the ENI to its configuration and reload it"
    )]
    Locked { path: PathBuf, pid: String },
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateStore {
    dir: PathBuf,
    /// Serialises read-modify-write of records within the process.
    updates: std::sync::Arc<std::sync::Mutex<()>>,
}

impl StateStore {
    /// Opens (and creates) the directory.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        let enis = dir.join("enis");
        std::fs::create_dir_all(&enis).map_err(|source| StateError::Dir {
            dir: enis.clone(),
            source,
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            updates: std::sync::Arc::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the routing-table allocations live.
    pub fn tables_path(&self) -> PathBuf {
        self.dir.join("tables.json")
    }

    fn record_path(&self, eni_id: &str) -> PathBuf {
        // ENI ids are [a-z0-9-]; anything else is replaced so a hostile id
        // cannot name a path outside the directory.
        let safe: String = eni_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join("enis").join(format!("{safe}.json"))
    }

    /// Writes `record` atomically, stamping `updated_at`.
    pub fn save(&self, record: &EniRecord) -> Result<(), StateError> {
        let mut record = record.clone();
        record.updated_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let path = self.record_path(&record.eni_id);
        let json = serde_json::to_vec_pretty(&record).map_err(|e| StateError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        write_atomic(&path, &json).map_err(|source| StateError::Write { path, source })
    }

    /// Loads the record of `eni_id` (or a new one), lets `f` change it and
    /// writes it back, atomically with respect to other updates in this
    /// process.
    pub fn update(
        &self,
        eni_id: &str,
        instance_id: &str,
        f: impl FnOnce(&mut EniRecord),
    ) -> Result<EniRecord, StateError> {
        let _guard = self
            .updates
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut record = self
            .load(eni_id)?
            .unwrap_or_else(|| EniRecord::new(eni_id, instance_id, Intent::Attach));
        f(&mut record);
        self.save(&record)?;
        Ok(record)
    }

    /// The record of `eni_id`, if any.
    pub fn load(&self, eni_id: &str) -> Result<Option<EniRecord>, StateError> {
        read_record(&self.record_path(eni_id))
    }

    /// Every readable record, sorted by ENI id, and an error for each record
    /// that cannot be read (one bad record never hides the others).
    /// Leftover temp files are ignored.
    pub fn load_all(&self) -> Result<(Vec<EniRecord>, Vec<StateError>), StateError> {
        let dir = self.dir.join("enis");
        let entries = std::fs::read_dir(&dir).map_err(|source| StateError::Dir {
            dir: dir.clone(),
            source,
        })?;
        let mut records = Vec::new();
        let mut bad = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| StateError::Dir {
                    dir: dir.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "json") {
                match read_record(&path) {
                    Ok(Some(r)) => records.push(r),
                    Ok(None) => {}
                    Err(e) => bad.push(e),
                }
            }
        }
        records.sort_by(|a, b| a.eni_id.cmp(&b.eni_id));
        Ok((records, bad))
    }

    /// Forgets `eni_id` (after a completed detach).
    pub fn remove(&self, eni_id: &str) -> Result<(), StateError> {
        let path = self.record_path(eni_id);
        match std::fs::remove_file(&path) {
            Ok(()) => atomic::sync_dir(&path).map_err(|source| StateError::Write { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write { path, source }),
        }
    }

    /// Takes the agent lock for this directory (the daemon: for good).
    pub fn lock(&self) -> Result<StateLock, StateError> {
        StateLock::acquire(&self.dir.join("lock"), LockRole::Daemon)
    }

    /// Takes the lock for a one-shot, waiting up to `wait` while another
    /// one-shot holds it (never for a running daemon).
    pub async fn lock_one_shot(&self, wait: std::time::Duration) -> Result<StateLock, StateError> {
        StateLock::acquire_waiting(&self.dir.join("lock"), LockRole::OneShot, wait).await
    }
}

fn read_record(path: &Path) -> Result<Option<EniRecord>, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Dir {
                dir: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_list_sorted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::open(dir.path()).expect("open");
        let mut b = EniRecord::new("eni-b", "i-1", Intent::Attach);
        b.progress = Progress::AttachRequested;
        store.save(&b).expect("save b");
        store
            .save(&EniRecord::new("eni-a", "i-1", Intent::Detach))
            .expect("save a");
        let (all, bad) = store.load_all().expect("load");
        assert!(bad.is_empty());
        assert_eq!(
            all.iter().map(|r| r.eni_id.as_str()).collect::<Vec<_>>(),
            ["eni-a", "eni-b"]
        );
        let loaded = store.load("eni-b").expect("load").expect("present");
        assert_eq!(loaded.progress, Progress::AttachRequested);
        assert!(loaded.updated_at > 0);
        store.remove("eni-b").expect("remove");
        store.remove("eni-b").expect("remove twice is fine");
        assert!(store.load("eni-b").expect("load").is_none());
    }

    #[test]
    fn a_corrupt_record_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::open(dir.path()).expect("open");
        std::fs::write(dir.path().join("enis/eni-x.json"), b"{not json").expect("write");
        store
            .save(&EniRecord::new("eni-ok", "i-1", Intent::Attach))
            .expect("save");
        let (good, bad) = store.load_all().expect("the others still load");
        assert_eq!(good.len(), 1);
        assert_eq!(good[0].eni_id, "eni-ok");
        assert_eq!(bad.len(), 1);
        let err = bad[0].to_string();
        assert!(
            err.contains("eni-x.json") && err.contains("move it aside"),
            "{err}"
        );
    }

    #[test]
    fn hostile_ids_stay_inside_the_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = StateStore::open(dir.path()).expect("open");
        store
            .save(&EniRecord::new("../../etc/passwd", "i", Intent::Attach))
            .expect("save");
        assert!(dir.path().join("enis").read_dir().expect("read").count() == 1);
    }
}
