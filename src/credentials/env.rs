//! Credentials from the environment, as every Alibaba Cloud SDK reads them.

use super::{Credentials, CredentialsError};
use crate::secret::Secret;

pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

/// `None` when neither key variable is set; an error when only one is.
pub fn from_env(
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, CredentialsError> {
    let get = |name| lookup(name).filter(|v: &String| !v.is_empty());
    match (get(ENV_ACCESS_KEY_ID), get(ENV_ACCESS_KEY_SECRET)) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(CredentialsError::IncompleteEnvironment {
            present: ENV_ACCESS_KEY_ID,
            missing: ENV_ACCESS_KEY_SECRET,
        }),
        (None, Some(_)) => Err(CredentialsError::IncompleteEnvironment {
            present: ENV_ACCESS_KEY_SECRET,
            missing: ENV_ACCESS_KEY_ID,
        }),
        (Some(id), Some(secret)) => Ok(Some(Credentials {
            access_key_id: id,
            access_key_secret: Secret::new(secret),
            security_token: get(ENV_SECURITY_TOKEN).map(Secret::new),
            expiration: None,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn both_keys_give_credentials_with_optional_token() {
        let c = from_env(&env(&[
            (ENV_ACCESS_KEY_ID, "id"),
            (ENV_ACCESS_KEY_SECRET, "sec"),
            (ENV_SECURITY_TOKEN, "tok"),
        ]))
        .expect("valid")
        .expect("present");
        assert_eq!(c.access_key_id, "id");
        assert_eq!(c.access_key_secret.expose(), "sec");
        assert_eq!(c.security_token.as_ref().map(Secret::expose), Some("tok"));
    }

    #[test]
    fn absent_is_none_and_half_set_is_an_error_without_the_secret() {
        assert!(from_env(&env(&[])).expect("ok").is_none());
        let err = from_env(&env(&[(ENV_ACCESS_KEY_SECRET, "sec-value")])).expect_err("half set");
        let msg = err.to_string();
        assert!(
            msg.contains(ENV_ACCESS_KEY_ID) && !msg.contains("sec-value"),
            "{msg}"
        );
    }
}
