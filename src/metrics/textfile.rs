//! The one-shot's node_exporter textfile: the metrics in Prometheus text
//! format, written to a temporary file in the same directory and renamed
//! over the target (node_exporter must never read a half-written file),
//! mode 0644.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::Metrics;

/// The textfile could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the metrics textfile {path}: {source} (check that its directory exists and is writable, or change [metrics] textfile)"
)]
pub struct TextfileError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// Writes `metrics` to `path` atomically.
pub fn write_textfile(metrics: &Metrics, path: &Path) -> Result<(), TextfileError> {
    let err = |source| TextfileError {
        path: path.to_owned(),
        source,
    };
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::Error::other("the path has no file name")))?;
    // Not ending in `.prom`: node_exporter skips it while it is written.
    let tmp = path.with_file_name(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let body = super::encode(metrics, false);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        // The umask may have taken bits away.
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_replaced_whole_with_mode_0644() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("eni_agent.prom");
        std::fs::write(&path, "old").expect("write");
        let m = Metrics::new();
        m.api_request(
            "AttachNetworkInterface",
            "Success",
            std::time::Duration::from_millis(3),
            false,
        );
        write_textfile(&m, &path).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.contains(
                "eni_agent_api_requests_total{action=\"AttachNetworkInterface\",code=\"Success\"} 1"
            ),
            "{text}"
        );
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
    }

    #[test]
    fn a_missing_directory_is_named() {
        let e = write_textfile(&Metrics::new(), Path::new("/nonexistent-dir/x.prom"))
            .expect_err("fails");
        assert!(e.to_string().contains("/nonexistent-dir/x.prom"), "{e}");
    }
}
