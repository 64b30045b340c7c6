//! The instance RAM role: STS credentials from the metadata service at
//! `ram/security-credentials/<role>`, cached and refreshed at least
//! [`REFRESH_MARGIN`] before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use tokio::sync::Mutex;
use tracing::{debug, info, warn};

use super::{Credentials, CredentialsError};
use crate::metadata::MetadataClient;
use crate::secret::Secret;

/// Credentials closer than this to their expiration are refreshed first.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(180);
const ROLES_PATH: &str = "ram/security-credentials/";

/// The role document as the metadata service serves it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleDocument {
    access_key_id: Option<String>,
    access_key_secret: Option<Secret>,
    security_token: Option<Secret>,
    expiration: Option<String>,
    code: Option<String>,
}

/// Reads and caches the instance RAM role's credentials.
#[derive(Debug)]
pub struct RamRoleProvider {
    metadata: Arc<MetadataClient>,
    configured_role: Option<String>,
    /// The role in use (configured or discovered) and its last credentials.
    cache: Mutex<(Option<String>, Option<Credentials>)>,
}

impl RamRoleProvider {
    pub fn new(metadata: Arc<MetadataClient>, configured_role: Option<String>) -> Self {
        Self {
            metadata,
            configured_role,
            cache: Mutex::new((None, None)),
        }
    }

    /// For logs.
    pub fn origin(&self) -> String {
        match &self.configured_role {
            Some(role) => format!(
                "instance RAM role {role} (metadata service {})",
                self.metadata.endpoint()
            ),
            None => format!(
                "instance RAM role (discovered from metadata service {})",
                self.metadata.endpoint()
            ),
        }
    }

    /// Valid credentials, refreshed when within [`REFRESH_MARGIN`] of expiry.
    /// When a refresh fails but the cached credentials have not expired yet,
    /// they are used and the failure is logged.
    pub async fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut cache = self.cache.lock().await;
        let now = SystemTime::now();
        if let Some(c) = &cache.1 {
            if !needs_refresh(c, now) {
                return Ok(c.clone());
            }
        }
        let role = match &cache.0 {
            Some(role) => role.clone(),
            None => self.role().await?,
        };
        match self.fetch(&role).await {
            Ok(fresh) => {
                let expires = fresh
                    .expiration
                    .map(|t| humantime::format_rfc3339_seconds(t).to_string());
                // The first fetch is routine (every one-shot makes it); only
                // a refresh of expiring credentials is worth a line.
                if cache.1.is_some() {
                    info!(role = %role, access_key_id = %fresh.access_key_id, expires = ?expires,
                          "RAM role credentials refreshed");
                } else {
                    debug!(role = %role, access_key_id = %fresh.access_key_id, expires = ?expires,
                           "RAM role credentials fetched");
                }
                *cache = (Some(role), Some(fresh.clone()));
                Ok(fresh)
            }
            Err(e) => match &cache.1 {
                Some(old) if old.expiration.is_some_and(|exp| exp > now) => {
                    warn!(role = %role, error = %e, "refreshing RAM role credentials failed; using the current ones until they expire");
                    Ok(old.clone())
                }
                _ => Err(e),
            },
        }
    }

    /// Forgets the cached credentials when they are the ones with
    /// `access_key_id` (the service said they expired), so the next call
    /// reads the role's credentials again. True when something was dropped.
    pub async fn invalidate(&self, access_key_id: &str) -> bool {
        let mut cache = self.cache.lock().await;
        let matches = cache
            .1
            .as_ref()
            .is_some_and(|c| c.access_key_id == access_key_id);
        if matches {
            cache.1 = None;
        }
        matches
    }

    /// The configured role, or the first one the metadata service lists.
    async fn role(&self) -> Result<String, CredentialsError> {
        if let Some(role) = &self.configured_role {
            return Ok(role.clone());
        }
        let listing = self.metadata.get(ROLES_PATH).await?.unwrap_or_default();
        listing
            .lines()
            .map(|l| l.trim().trim_end_matches('/'))
            .find(|l| !l.is_empty())
            .map(str::to_owned)
            .ok_or(CredentialsError::NoRamRole)
    }

    async fn fetch(&self, role: &str) -> Result<Credentials, CredentialsError> {
        let path = format!("{ROLES_PATH}{role}");
        let body =
            self.metadata
                .get(&path)
                .await?
                .ok_or_else(|| CredentialsError::RamRoleCode {
                    role: role.to_owned(),
                    code: "NotFound (HTTP 404)".into(),
                })?;
        parse_document(role, &body)
    }
}

fn needs_refresh(c: &Credentials, now: SystemTime) -> bool {
    match c.expiration {
        Some(exp) => exp
            .duration_since(now)
            .map_or(true, |left| left <= REFRESH_MARGIN),
        None => false,
    }
}

/// Parses the role document. Errors never quote the body: it holds secrets.
fn parse_document(role: &str, body: &str) -> Result<Credentials, CredentialsError> {
    let malformed = |reason: String| CredentialsError::RamRoleMalformed {
        role: role.to_owned(),
        reason,
    };
    let doc: RoleDocument = serde_json::from_str(body).map_err(|e| {
        malformed(format!(
            "not the expected JSON document ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })?;
    let code = doc.code.unwrap_or_default();
    if code != "Success" {
        return Err(CredentialsError::RamRoleCode {
            role: role.to_owned(),
            code,
        });
    }
    let access_key_id = doc
        .access_key_id
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("AccessKeyId is missing".into()))?;
    let access_key_secret = doc
        .access_key_secret
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("AccessKeySecret is missing".into()))?;
    let security_token = doc
        .security_token
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("SecurityToken is missing".into()))?;
    let expiration = doc
        .expiration
        .ok_or_else(|| malformed("Expiration is missing".into()))?;
    let expiration = humantime::parse_rfc3339(expiration.trim()).map_err(|_| {
        malformed(format!(
            "Expiration {expiration:?} is not a UTC timestamp like 2024-11-08T09:44:50Z"
        ))
    })?;
    Ok(Credentials {
        access_key_id,
        access_key_secret,
        security_token: Some(security_token),
        expiration: Some(expiration),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(code: &str, expiration: &str) -> String {
        format!(
            r#"{{"AccessKeyId":"STS.id","AccessKeySecret":"sek-ret","Expiration":"{expiration}",
                "SecurityToken":"tok-en","LastUpdated":"2024-11-08T03:44:50Z","Code":"{code}"}}"#
        )
    }

    #[test]
    fn parses_the_documented_shape() {
        let c = parse_document("r", &doc("Success", "2024-11-08T09:44:50Z")).expect("valid");
        assert_eq!(c.access_key_id, "STS.id");
        assert_eq!(
            c.security_token.as_ref().map(Secret::expose),
            Some("tok-en")
        );
        assert_eq!(
            c.expiration,
            Some(humantime::parse_rfc3339("2024-11-08T09:44:50Z").expect("ts"))
        );
    }

    #[test]
    fn a_code_other_than_success_is_an_error_that_says_so() {
        let msg = parse_document("r", &doc("Failed", "2024-11-08T09:44:50Z"))
            .expect_err("code")
            .to_string();
        assert!(msg.contains("Failed") && msg.contains("Success"), "{msg}");
    }

    #[test]
    fn malformed_documents_never_quote_secrets() {
        for body in [
            r#"{"AccessKeyId":"id","AccessKeySecret":12345678,"Code":"Success"}"#.to_owned(),
            doc("Success", "tomorrow"),
            r#"{"AccessKeyId":"id","AccessKeySecret":"sek-ret","Code":"Success"}"#.to_owned(),
            "sek-ret not json".to_owned(),
        ] {
            let msg = parse_document("r", &body)
                .expect_err("malformed")
                .to_string();
            assert!(
                !msg.contains("sek-ret") && !msg.contains("12345678") && !msg.contains("tok-en"),
                "{msg}"
            );
        }
    }

    #[test]
    fn refresh_is_due_within_the_margin() {
        let now = SystemTime::now();
        let mk = |left: Duration| Credentials {
            access_key_id: "a".into(),
            access_key_secret: Secret::new("s"),
            security_token: None,
            expiration: Some(now + left),
        };
        assert!(needs_refresh(&mk(Duration::from_secs(179)), now));
        assert!(!needs_refresh(&mk(Duration::from_secs(3600)), now));
    }
}
