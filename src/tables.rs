//! Per-ENI routing table numbers: allocated from a configured range, keyed by
//! ENI id and persisted, so a NIC keeps its table across agent restarts,
//! reboots and re-plugs. Never derived from ifindex or interface name.
//!
//! The state file is JSON, rewritten atomically (temporary file in the same
//! directory, fsync, rename, fsync of the directory):
//!
//! ```json
//! {"version":1,"tables":{"eni-abc":10001}}
//! ```
//!
//! Tables that anything already uses (the caller passes the numbers the
//! kernel's routes and rules refer to — another ENI's included, whose
//! allocation may live in another state directory or a lost file) are
//! skipped and reported.
//!
//! Only one state directory at a time allocates in a network namespace: the
//! first allocation takes a lock under [`HOST_LOCK_DIR`] (one per network
//! namespace, so namespaces — test runs — never contend) and holds it for
//! the allocator's lifetime.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the host-wide allocation locks live (the unit's RuntimeDirectory).
pub const HOST_LOCK_DIR: &str = "/run/eni-agent";

/// The default range of table numbers.
pub const DEFAULT_TABLE_RANGE: RangeInclusive<u32> = 10001..=10999;

/// Table allocation failed.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The state file could not be read.
    #[error("cannot read the routing table state file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state file is not valid JSON of the expected shape.
    #[error(
        "the routing table state file {path} is corrupt ({source}); fix or remove it (ENIs then get new tables)"
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// The state file could not be written.
    #[error("cannot write the routing table state file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Every number in the range is taken.
    #[error(
        "no free routing table in {start}..={end} for {eni_id}: {allocated} allocated to ENIs, \
         {foreign} used by routes or rules eni-agent does not own; widen the table range"
    )]
    Exhausted {
        /// The ENI that needed a table.
        eni_id: String,
        /// Range start.
        start: u32,
        /// Range end.
        end: u32,
        /// Numbers allocated to ENIs.
        allocated: usize,
        /// Numbers in the range in use by others.
        foreign: usize,
    },
    /// Another state directory allocates tables on this host.
    #[error(
        "another eni-agent (pid {pid}, state directory {holder}) allocates routing tables in this \
         network namespace ({path}); two state directories must not both allocate — add the ENI to \
         that agent's configuration, or use the same state directory"
    )]
    HostLocked {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid.
        pid: String,
        /// The holder's state directory.
        holder: String,
    },
    /// The host-wide lock could not be taken.
    #[error("cannot take the host-wide table lock {path}: {source}")]
    HostLock {
        /// The lock file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The range is empty or contains reserved tables.
    #[error(
        "invalid routing table range {start}..={end}: it must be non-empty and avoid 0 and 253-255"
    )]
    BadRange {
        /// Range start.
        start: u32,
        /// Range end.
        end: u32,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    tables: BTreeMap<String, u32>,
}

/// The allocator: ENI id → table number, backed by a file.
#[derive(Debug)]
pub struct TableAllocator {
    path: PathBuf,
    range: RangeInclusive<u32>,
    tables: BTreeMap<String, u32>,
    /// The host-wide lock, once taken.
    host_lock: Option<nix::fcntl::Flock<fs::File>>,
}

/// The result of [`TableAllocator::allocate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The table number.
    pub table: u32,
    /// Whether it was newly allocated (and persisted) by this call.
    pub new: bool,
    /// Numbers skipped because something else uses them (to report).
    pub skipped_foreign: Vec<u32>,
}

impl TableAllocator {
    /// Loads the state file (a missing file is an empty state).
    pub fn load(path: impl Into<PathBuf>, range: RangeInclusive<u32>) -> Result<Self, TableError> {
        let path = path.into();
        let (start, end) = (*range.start(), *range.end());
        if start > end || range.clone().any(|t| matches!(t, 0 | 253..=255)) {
            return Err(TableError::BadRange { start, end });
        }
        let tables = match fs::read(&path) {
            Ok(bytes) => {
                let state: StateFile =
                    serde_json::from_slice(&bytes).map_err(|source| TableError::Corrupt {
                        path: path.clone(),
                        source,
                    })?;
                state.tables
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(source) => return Err(TableError::Read { path, source }),
        };
        Ok(Self {
            path,
            range,
            tables,
            host_lock: None,
        })
    }

    /// Takes, once, the lock that lets only one state directory (the one
    /// holding this allocator's file) allocate in this network namespace, in
    /// `lock_dir` (normally [`HOST_LOCK_DIR`]); held until the allocator is
    /// dropped.
    pub fn hold_host_lock(&mut self, lock_dir: &Path) -> Result<(), TableError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::MetadataExt;
        if self.host_lock.is_some() {
            return Ok(());
        }
        let netns = fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
        let path = lock_dir.join(format!("tables-net{netns}.lock"));
        let io = |source| TableError::HostLock {
            path: path.clone(),
            source,
        };
        fs::create_dir_all(lock_dir).map_err(io)?;
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut lock =
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock) {
                Ok(lock) => lock,
                Err((file, _)) => {
                    let mut text = String::new();
                    let _ = file.take(4096).read_to_string(&mut text);
                    let (pid, holder) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
                    return Err(TableError::HostLocked {
                        path: path.clone(),
                        pid: pid.to_owned(),
                        holder: holder.to_owned(),
                    });
                }
            };
        let state_dir = self.path.parent().unwrap_or(Path::new(""));
        let line = format!("{} {}\n", std::process::id(), state_dir.display());
        lock.set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(line.as_bytes()))
            .map_err(io)?;
        self.host_lock = Some(lock);
        Ok(())
    }

    /// The table of `eni_id`, if one is allocated.
    pub fn get(&self, eni_id: &str) -> Option<u32> {
        self.tables.get(eni_id).copied()
    }

    /// Every allocation.
    pub fn all(&self) -> &BTreeMap<String, u32> {
        &self.tables
    }

    /// The table of `eni_id`, allocating (and persisting) the lowest free
    /// number in the range if it has none. `in_use` holds the table numbers
    /// the kernel's routes and rules not owned by eni-agent refer to.
    ///
    /// An existing allocation is kept even if it has left the range (the
    /// range was changed): stability wins.
    pub fn allocate(
        &mut self,
        eni_id: &str,
        in_use: &BTreeSet<u32>,
    ) -> Result<Allocation, TableError> {
        if let Some(table) = self.get(eni_id) {
            return Ok(Allocation {
                table,
                new: false,
                skipped_foreign: Vec::new(),
            });
        }
        let taken: BTreeSet<u32> = self.tables.values().copied().collect();
        let mut skipped_foreign = Vec::new();
        let mut found = None;
        for t in self.range.clone() {
            if taken.contains(&t) {
                continue;
            }
            if in_use.contains(&t) {
                skipped_foreign.push(t);
                continue;
            }
            found = Some(t);
            break;
        }
        let Some(table) = found else {
            return Err(TableError::Exhausted {
                eni_id: eni_id.to_owned(),
                start: *self.range.start(),
                end: *self.range.end(),
                allocated: taken.len(),
                foreign: skipped_foreign.len(),
            });
        };
        self.tables.insert(eni_id.to_owned(), table);
        if let Err(e) = self.save() {
            self.tables.remove(eni_id);
            return Err(e);
        }
        Ok(Allocation {
            table,
            new: true,
            skipped_foreign,
        })
    }

    /// Forgets the table of `eni_id` (after its cleanup) and persists.
    pub fn release(&mut self, eni_id: &str) -> Result<Option<u32>, TableError> {
        let old = self.tables.remove(eni_id);
        if old.is_some() {
            self.save()?;
        }
        Ok(old)
    }

    fn save(&self) -> Result<(), TableError> {
        let state = StateFile {
            version: 1,
            tables: self.tables.clone(),
        };
        let mut bytes = serde_json::to_vec_pretty(&state).map_err(|e| TableError::Write {
            path: self.path.clone(),
            source: std::io::Error::other(e),
        })?;
        bytes.push(b'\n');
        write_atomically(&self.path, &bytes).map_err(|source| TableError::Write {
            path: self.path.clone(),
            source,
        })
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old or the new
/// file, creating the directory first.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir)?;
    }
    crate::state::write_atomic(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_restarts_and_skips_foreign() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state/tables.json");
        let mut a = TableAllocator::load(&path, DEFAULT_TABLE_RANGE).expect("load");
        let first = a.allocate("eni-a", &BTreeSet::new()).expect("alloc");
        assert_eq!(
            first,
            Allocation {
                table: 10001,
                new: true,
                skipped_foreign: vec![]
            }
        );
        let foreign: BTreeSet<u32> = [10002, 10003].into();
        let second = a.allocate("eni-b", &foreign).expect("alloc");
        assert_eq!(second.table, 10004);
        assert_eq!(second.skipped_foreign, vec![10002, 10003]);
        assert!(!a.allocate("eni-a", &foreign).expect("again").new);

        // A restart reads the same numbers back.
        let mut b = TableAllocator::load(&path, DEFAULT_TABLE_RANGE).expect("reload");
        assert_eq!((b.get("eni-a"), b.get("eni-b")), (Some(10001), Some(10004)));
        assert_eq!(b.release("eni-a").expect("release"), Some(10001));
        let c = TableAllocator::load(&path, DEFAULT_TABLE_RANGE).expect("reload");
        assert_eq!(c.get("eni-a"), None);
        assert_eq!(c.all().len(), 1);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(path.parent().expect("dir"))
            .expect("readdir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["tables.json"]);
    }

    #[test]
    fn one_state_directory_at_a_time_allocates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locks = dir.path().join("run");
        let state_a = dir.path().join("a");
        let mut a =
            TableAllocator::load(state_a.join("tables.json"), DEFAULT_TABLE_RANGE).expect("load");
        let mut b = TableAllocator::load(dir.path().join("b/tables.json"), DEFAULT_TABLE_RANGE)
            .expect("load");
        a.hold_host_lock(&locks).expect("first");
        a.hold_host_lock(&locks).expect("again: held");
        let err = b.hold_host_lock(&locks).expect_err("second directory");
        let text = err.to_string();
        assert!(
            text.contains(&state_a.display().to_string())
                && text.contains(&std::process::id().to_string()),
            "{text}"
        );
        drop(a);
        b.hold_host_lock(&locks)
            .expect("free once the first is gone");
    }

    #[test]
    fn exhausted_and_bad_inputs_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t.json");
        let mut a = TableAllocator::load(&path, 100..=101).expect("load");
        a.allocate("eni-a", &BTreeSet::new()).expect("first");
        let err = a.allocate("eni-b", &[101].into()).expect_err("full");
        assert!(err.to_string().contains("widen the table range"), "{err}");
        assert!(matches!(
            TableAllocator::load(&path, 250..=260),
            Err(TableError::BadRange { .. })
        ));
        fs::write(&path, "{not json").expect("write");
        let err = TableAllocator::load(&path, 100..=101).expect_err("corrupt");
        assert!(matches!(err, TableError::Corrupt { .. }), "{err}");
    }
}
