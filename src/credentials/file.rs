//! Credentials from a file in the Alibaba Cloud credentials format (INI):
//!
//! ```ini
//! [default]
//! type = access_key            # or sts (then security_token is required)
//! access_key_id = LTAI...
//! access_key_secret = ...
//! ```
//!
//! The file holds a secret, so it is refused when group or others can read
//! it or when it belongs to someone other than root or the running user.
//! Both are checked on the opened file (`fstat`), so the file read is the
//! file checked, and it is opened without following a symlink.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::{Credentials, CredentialsError};
use crate::secret::Secret;

/// Reads `profile` from the file at `path`.
pub fn load(path: &Path, profile: &str) -> Result<Credentials, CredentialsError> {
    let shown = path.display().to_string();
    let file_error = |reason: String| CredentialsError::File {
        path: shown.clone(),
        reason,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                file_error(
                    "it is a symbolic link; point credentials.file at the file itself".into(),
                )
            } else {
                file_error(e.to_string())
            }
        })?;
    let meta = file.metadata().map_err(|e| file_error(e.to_string()))?;
    if !meta.is_file() {
        return Err(file_error("it is not a regular file".into()));
    }
    let owner = meta.uid();
    let me = nix::unistd::geteuid().as_raw();
    if owner != 0 && owner != me {
        return Err(file_error(format!(
            "it belongs to uid {owner}, not to root or to the user eni-agent runs as (uid {me}); chown it"
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::FilePermissions { path: shown, mode });
    }
    // A credentials file is a few lines; a huge one is a mistake.
    let mut text = String::new();
    file.by_ref()
        .take(64 * 1024 + 1)
        .read_to_string(&mut text)
        .map_err(|e| file_error(e.to_string()))?;
    if text.len() > 64 * 1024 {
        return Err(file_error("it is larger than 64 KiB".into()));
    }
    parse(&text, profile).map_err(file_error)
}

/// Parses the INI text; errors name the line or key and never a value.
fn parse(text: &str, profile: &str) -> Result<Credentials, String> {
    let mut section: Option<String> = None;
    let mut keys: HashMap<String, (String, usize)> = HashMap::new();
    let mut found = false;
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name
                .strip_suffix(']')
                .ok_or_else(|| format!("line {line_no}: a section header must look like [name]"))?;
            section = Some(name.trim().to_owned());
            found |= name.trim() == profile;
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: expected `key = value`"))?;
        if section.as_deref() == Some(profile) {
            let value = value.trim().trim_matches('"').to_owned();
            keys.insert(key.trim().to_owned(), (value, line_no));
        }
    }
    if !found {
        return Err(format!("it has no [{profile}] section"));
    }
    let get = |k: &str| {
        keys.get(k)
            .map(|(v, _)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let kind = get("type").unwrap_or_else(|| "access_key".into());
    let need = |k: &str| get(k).ok_or_else(|| format!("[{profile}] has no {k}"));
    match kind.as_str() {
        "access_key" | "sts" => {
            let security_token = get("security_token").or_else(|| get("sts_token"));
            if kind == "sts" && security_token.is_none() {
                return Err(format!("[{profile}] has type = sts but no security_token"));
            }
            Ok(Credentials {
                access_key_id: need("access_key_id")?,
                access_key_secret: Secret::new(need("access_key_secret")?),
                security_token: security_token.map(Secret::new),
                expiration: None,
            })
        }
        other => Err(format!(
            "[{profile}] has type = {other}, which eni-agent does not read from a file; \
             use access_key or sts, or leave credentials.file unset to use the instance RAM role"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn write_file(text: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(text.as_bytes()).expect("write");
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        f
    }

    #[test]
    fn reads_a_profile() {
        let f = write_file(
            "[other]\naccess_key_id = x\n\n[default]\ntype = access_key\naccess_key_id = LTAIabc\naccess_key_secret = s3cr3t\n",
            0o600,
        );
        let c = load(f.path(), "default").expect("valid file");
        assert_eq!(c.access_key_id, "LTAIabc");
        assert_eq!(c.access_key_secret.expose(), "s3cr3t");
        assert!(c.security_token.is_none());
    }

    #[test]
    fn sts_profile_needs_a_token() {
        let f = write_file(
            "[p]\ntype = sts\naccess_key_id = a\naccess_key_secret = b\nsecurity_token = t\n",
            0o400,
        );
        assert_eq!(
            load(f.path(), "p")
                .expect("valid")
                .security_token
                .map(|s| s.expose().to_owned()),
            Some("t".into())
        );
        let f = write_file(
            "[p]\ntype = sts\naccess_key_id = a\naccess_key_secret = b\n",
            0o600,
        );
        assert!(
            load(f.path(), "p")
                .expect_err("no token")
                .to_string()
                .contains("security_token")
        );
    }

    #[test]
    fn group_or_world_readable_file_is_refused() {
        let f = write_file(
            "[default]\naccess_key_id = a\naccess_key_secret = topsecret\n",
            0o640,
        );
        let msg = load(f.path(), "default").expect_err("too open").to_string();
        assert!(msg.contains("chmod 600") && msg.contains("640"), "{msg}");
        assert!(!msg.contains("topsecret"));
    }

    #[test]
    fn errors_name_the_problem_without_the_secret() {
        let f = write_file("[default]\naccess_key_secret = topsecret\n", 0o600);
        let msg = load(f.path(), "default").expect_err("no id").to_string();
        assert!(
            msg.contains("access_key_id") && !msg.contains("topsecret"),
            "{msg}"
        );
        let msg = load(f.path(), "prod").expect_err("no section").to_string();
        assert!(msg.contains("[prod]"), "{msg}");
        let f = write_file("[default]\ntype = ram_role_arn\n", 0o600);
        assert!(
            load(f.path(), "default")
                .expect_err("type")
                .to_string()
                .contains("ram_role_arn")
        );
        let f = write_file("[default\n", 0o600);
        assert!(
            load(f.path(), "default")
                .expect_err("syntax")
                .to_string()
                .contains("line 1")
        );
    }
}
