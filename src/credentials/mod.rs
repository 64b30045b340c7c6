//! Where API credentials come from, in order: the environment
//! (`ALIBABA_CLOUD_ACCESS_KEY_ID` + `ALIBABA_CLOUD_ACCESS_KEY_SECRET`, optional
//! `ALIBABA_CLOUD_SECURITY_TOKEN`), then a credentials file named in the
//! configuration (when it exists), then the instance RAM role from the metadata service,
//! refreshed well before it expires. Secrets are [`Secret`]s: no log line,
//! `Debug` output or error message can carry them.

mod env;
mod file;
mod ram_role;

use std::sync::Arc;
use std::time::SystemTime;

pub use env::{ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN};
pub use ram_role::{REFRESH_MARGIN, RamRoleProvider};

use crate::config::CredentialsConfig;
use crate::metadata::{MetadataClient, MetadataError};
use crate::secret::Secret;

/// One set of API credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// Present for STS credentials (RAM roles, temporary keys).
    pub security_token: Option<Secret>,
    /// When temporary credentials stop working.
    pub expiration: Option<SystemTime>,
}

/// Why no usable credentials could be had.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error(
        "{present} is set but {missing} is not: set both, or neither to use another credential source"
    )]
    IncompleteEnvironment {
        present: &'static str,
        missing: &'static str,
    },
    #[error("cannot read the credentials file {path}: {reason}")]
    File { path: String, reason: String },
    #[error(
        "the credentials file {path} is readable by group or others (mode {mode:o}); \
         run `chmod 600 {path}` so only its owner can read the secret"
    )]
    FilePermissions { path: String, mode: u32 },
    #[error(
        "no RAM role is attached to this instance (the metadata service lists none); attach one, set credentials.ram_role, or provide an AccessKey"
    )]
    NoRamRole,
    #[error(
        "the metadata service returned Code={code:?} for RAM role {role:?} instead of Success; check that the role exists and is attached to the instance"
    )]
    RamRoleCode { role: String, code: String },
    #[error("the metadata service returned unusable credentials for RAM role {role:?}: {reason}")]
    RamRoleMalformed { role: String, reason: String },
    #[error("reading RAM role credentials from the metadata service failed: {0}")]
    Metadata(#[from] MetadataError),
}

impl CredentialsError {
    /// True when asking again later may succeed (the metadata service was
    /// unreachable or busy); false for configuration problems.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Metadata(e) if e.is_transient())
    }
}

/// A resolved credential source.
#[derive(Debug, Clone)]
pub enum CredentialProvider {
    /// Fixed credentials (environment or file); `origin` says which.
    Static {
        credentials: Credentials,
        origin: String,
    },
    /// The instance RAM role, refreshed from the metadata service.
    RamRole(Arc<RamRoleProvider>),
}

impl CredentialProvider {
    /// Credentials valid for at least the refresh margin.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        match self {
            Self::Static { credentials, .. } => Ok(credentials.clone()),
            Self::RamRole(provider) => provider.credentials().await,
        }
    }

    /// Drops cached credentials the service rejected as expired (they had
    /// `access_key_id`); true when fetching again can give other ones.
    pub async fn invalidate(&self, access_key_id: &str) -> bool {
        match self {
            Self::Static { .. } => false,
            Self::RamRole(provider) => provider.invalidate(access_key_id).await,
        }
    }

    /// Where the credentials come from, for logs (never the secret).
    pub fn origin(&self) -> String {
        match self {
            Self::Static { origin, .. } => origin.clone(),
            Self::RamRole(p) => p.origin(),
        }
    }

    /// Resolves the chain. `lookup` reads environment variables (tests pass
    /// their own); `metadata` is used only when the first two sources are absent.
    pub fn resolve(
        config: &CredentialsConfig,
        lookup: impl Fn(&str) -> Option<String>,
        metadata: Arc<MetadataClient>,
    ) -> Result<Self, CredentialsError> {
        if let Some(credentials) = env::from_env(&lookup)? {
            return Ok(Self::Static {
                credentials,
                origin: "environment (ALIBABA_CLOUD_ACCESS_KEY_ID)".into(),
            });
        }
        if let Some(path) = &config.file {
            // An absent file passes the turn to the RAM role; a file that is
            // there but unreadable, too open or malformed is an error.
            let absent = matches!(std::fs::symlink_metadata(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound);
            if absent {
                tracing::debug!(path = %path.display(), "no credentials file; trying the RAM role");
            } else {
                let profile = config.profile.as_deref().unwrap_or("default");
                let credentials = file::load(path, profile)?;
                return Ok(Self::Static {
                    credentials,
                    origin: format!("credentials file {} [{profile}]", path.display()),
                });
            }
        }
        Ok(Self::RamRole(Arc::new(RamRoleProvider::new(
            metadata,
            config.ram_role.clone(),
        ))))
    }
}

/// The chain `config` selects, in the order it is tried, for people
/// (`check-config`).
pub fn chain(config: &CredentialsConfig) -> Vec<String> {
    let mut out = vec![format!(
        "the environment ({ENV_ACCESS_KEY_ID} + {ENV_ACCESS_KEY_SECRET}), when set"
    )];
    if let Some(path) = &config.file {
        out.push(format!(
            "the file {} [{}], when it exists",
            path.display(),
            config.profile.as_deref().unwrap_or("default")
        ));
    }
    out.push(match &config.ram_role {
        Some(role) => format!("the instance RAM role {role}"),
        None => "the instance RAM role (the one the metadata service lists)".to_owned(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_of_credentials_carries_no_secret() {
        let c = Credentials {
            access_key_id: "LTAIexample".into(),
            access_key_secret: Secret::new("the-secret-value"),
            security_token: Some(Secret::new("the-sts-token")),
            expiration: None,
        };
        let dbg = format!("{c:?}");
        assert!(dbg.contains("LTAIexample"));
        assert!(
            !dbg.contains("the-secret-value") && !dbg.contains("the-sts-token"),
            "{dbg}"
        );
        let provider = CredentialProvider::Static {
            credentials: c,
            origin: "test".into(),
        };
        let dbg = format!("{provider:?}");
        assert!(
            !dbg.contains("the-secret-value") && !dbg.contains("the-sts-token"),
            "{dbg}"
        );
    }
}
