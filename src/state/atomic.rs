//! Crash-safe file replacement: a reader sees the old content or the new,
//! never a torn write. The temp file has an unpredictable name and is created
//! with `O_CREAT|O_EXCL|O_NOFOLLOW` in the target's own directory, so nobody
//! can plant a file or a symlink under the name the writer will use; the
//! rename replaces a symlink at the destination instead of writing through
//! it; the file's mode is set on the open file (`fchmod`), whatever the
//! process umask is.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// State and table files: readable by root only (they carry API messages).
pub const PRIVATE: u32 = 0o600;

/// Writes `data` to `path` (mode 0600) through a temp file in the same
/// directory: write, fsync, rename over `path`, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_atomic_mode(path, data, PRIVATE)
}

/// [`write_atomic`] with the file's permission bits `mode`.
pub fn write_atomic_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("path has no file name"))?;
    let dir = parent(path);
    let (tmp, mut f) = create_temp(dir, &name.to_string_lossy())?;
    let result = (|| {
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(data)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A new file `.<name>.<random>.tmp` in `dir`, created exclusively and
/// never through a symlink; a (very unlikely) name clash tries another name.
fn create_temp(dir: &Path, name: &str) -> std::io::Result<(PathBuf, File)> {
    let mut last = None;
    for _ in 0..8 {
        let tmp = dir.join(format!(
            ".{name}.{:016x}{:016x}.tmp",
            crate::backoff::random_u64(),
            crate::backoff::random_u64()
        ));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no temp file name was free")))
}

/// fsync of the directory holding `path`, so a rename or unlink is durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(parent(path))?.sync_all()
}

/// The directory holding `path` (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.json");
        write_atomic(&path, b"one").expect("first");
        write_atomic(&path, b"two").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn a_symlink_at_the_destination_or_the_old_temp_name_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").expect("victim");
        let path = dir.path().join("x.json");
        std::os::unix::fs::symlink(&victim, &path).expect("symlink at destination");
        // The name the old writer used for its temp file, planted as a link.
        std::os::unix::fs::symlink(
            &victim,
            dir.path()
                .join(format!(".x.json.tmp.{}", std::process::id())),
        )
        .expect("symlink at the old temp name");
        write_atomic(&path, b"new").expect("write");
        assert_eq!(std::fs::read(&victim).expect("victim"), b"keep");
        assert!(
            !std::fs::symlink_metadata(&path)
                .expect("meta")
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
    }

    #[test]
    fn the_mode_is_set_whatever_the_umask() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("h.conf");
        write_atomic_mode(&path, b"x", 0o644).expect("write");
        assert_eq!(
            std::fs::metadata(&path).expect("meta").mode() & 0o777,
            0o644
        );
    }
}
