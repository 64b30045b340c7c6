//! Building one signed request: the business parameters plus the common
//! parameters (V2) or headers (V3), signed with fresh nonce and timestamp.

use std::time::SystemTime;

use serde::Deserialize;

use super::encode::{canonical_query, hex_lower};
use super::{API_VERSION, sign_v2, sign_v3};
use crate::credentials::Credentials;

/// Which signature algorithm to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SignatureVersion {
    /// `ACS3-HMAC-SHA256` in the `Authorization` header (the default).
    #[default]
    V3,
    /// The legacy RPC `HMAC-SHA1` signature in the query string.
    V2,
}

/// The business parameters of a call, in order of insertion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }

    /// Adds `key=value` when `value` is present.
    pub fn set_opt<V: ToString>(self, key: &str, value: Option<V>) -> Self {
        match value {
            Some(v) => self.set(key, v.to_string()),
            None => self,
        }
    }

    /// Adds a repeated parameter: `key.1=a&key.2=b…` (1-based).
    pub fn set_list<V: ToString>(mut self, key: &str, values: &[V]) -> Self {
        for (i, v) in values.iter().enumerate() {
            self.0.push((format!("{key}.{}", i + 1), v.to_string()));
        }
        self
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// A request ready to send: the full query string and the extra headers.
#[derive(Debug)]
pub struct SignedRequest {
    /// Canonical (sorted, encoded) query string, without `?`.
    pub query: String,
    pub headers: Vec<(String, String)>,
    /// The nonce used, for logs and tests.
    pub nonce: String,
}

/// What varies per attempt: every retry is signed anew.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub action: &'a str,
    /// `host[:port]` exactly as sent in the Host header.
    pub host: &'a str,
    pub nonce: String,
    pub time: SystemTime,
}

/// A random 128-bit nonce in hex.
pub fn new_nonce() -> String {
    let mut buf = [0u8; 16];
    buf[..8].copy_from_slice(&crate::backoff::random_u64().to_le_bytes());
    buf[8..].copy_from_slice(&crate::backoff::random_u64().to_le_bytes());
    hex_lower(&buf)
}

/// `2023-10-26T10:22:32Z`.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// Signs `params` for `POST /` with the chosen algorithm.
pub fn sign(
    version: SignatureVersion,
    attempt: &Attempt<'_>,
    params: &Params,
    credentials: &Credentials,
) -> SignedRequest {
    let time = timestamp(attempt.time);
    match version {
        SignatureVersion::V3 => {
            let payload = sign_v3::hashed_payload(b"");
            let mut headers = vec![
                ("host".to_owned(), attempt.host.to_owned()),
                ("x-acs-action".to_owned(), attempt.action.to_owned()),
                ("x-acs-version".to_owned(), API_VERSION.to_owned()),
                ("x-acs-date".to_owned(), time),
                ("x-acs-signature-nonce".to_owned(), attempt.nonce.clone()),
                ("x-acs-content-sha256".to_owned(), payload.clone()),
            ];
            if let Some(token) = &credentials.security_token {
                headers.push(("x-acs-security-token".to_owned(), token.expose().to_owned()));
            }
            let (creq, signed_headers) = sign_v3::canonical_request(&sign_v3::CanonicalInput {
                method: "POST",
                path: "/",
                query: params.pairs(),
                headers: &headers,
                hashed_payload: &payload,
            });
            let signature = sign_v3::signature(
                &sign_v3::string_to_sign(&creq),
                credentials.access_key_secret.expose(),
            );
            headers.push((
                "authorization".to_owned(),
                sign_v3::authorization(&credentials.access_key_id, &signed_headers, &signature),
            ));
            let query =
                canonical_query(params.pairs().iter().map(|(k, v)| (k.as_str(), v.as_str())));
            SignedRequest {
                query,
                headers,
                nonce: attempt.nonce.clone(),
            }
        }
        SignatureVersion::V2 => {
            let mut all: Vec<(&str, &str)> = params
                .pairs()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            all.extend([
                ("Action", attempt.action),
                ("Version", API_VERSION),
                ("Format", "JSON"),
                ("AccessKeyId", credentials.access_key_id.as_str()),
                ("SignatureMethod", sign_v2::SIGNATURE_METHOD),
                ("SignatureVersion", sign_v2::SIGNATURE_VERSION),
                ("SignatureNonce", attempt.nonce.as_str()),
                ("Timestamp", time.as_str()),
            ]);
            if let Some(token) = &credentials.security_token {
                all.push(("SecurityToken", token.expose()));
            }
            let signature = sign_v2::signature(
                &sign_v2::string_to_sign("POST", all.iter().copied()),
                credentials.access_key_secret.expose(),
            );
            all.push(("Signature", signature.as_str()));
            let query = canonical_query(all.iter().copied());
            SignedRequest {
                query,
                headers: Vec::new(),
                nonce: attempt.nonce.clone(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn creds(token: Option<&str>) -> Credentials {
        Credentials {
            access_key_id: "YourAccessKeyId".into(),
            access_key_secret: Secret::new("YourAccessKeySecret"),
            security_token: token.map(Secret::new),
            expiration: None,
        }
    }

    fn attempt() -> Attempt<'static> {
        Attempt {
            action: "RunInstances",
            host: "ecs.cn-shanghai.aliyuncs.com",
            nonce: "3156853299f313e23d1673dc12e1703d".into(),
            time: humantime::parse_rfc3339("2023-10-26T10:22:32Z").expect("ts"),
        }
    }

    #[test]
    fn v3_request_reproduces_the_official_example() {
        let params = Params::new()
            .set(
                "ImageId",
                "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
            )
            .set("RegionId", "cn-shanghai");
        let signed = sign(SignatureVersion::V3, &attempt(), &params, &creds(None));
        let auth = signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .expect("auth header");
        assert!(
            auth.1.ends_with(
                "Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
            ),
            "{}",
            auth.1
        );
        assert_eq!(
            signed.query,
            "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai"
        );
    }

    #[test]
    fn v3_sends_and_signs_the_security_token() {
        let signed = sign(
            SignatureVersion::V3,
            &attempt(),
            &Params::new(),
            &creds(Some("sts-token")),
        );
        let auth = &signed
            .headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .expect("auth")
            .1;
        assert!(auth.contains("x-acs-security-token"), "{auth}");
        assert!(
            signed
                .headers
                .iter()
                .any(|(k, v)| k == "x-acs-security-token" && v == "sts-token")
        );
        let without = sign(
            SignatureVersion::V3,
            &attempt(),
            &Params::new(),
            &creds(None),
        );
        assert_ne!(
            auth,
            &without
                .headers
                .iter()
                .find(|(k, _)| k == "authorization")
                .expect("auth")
                .1
        );
    }

    #[test]
    fn v2_signs_security_token_and_common_parameters() {
        let signed = sign(
            SignatureVersion::V2,
            &attempt(),
            &Params::new().set("RegionId", "r"),
            &creds(Some("tok")),
        );
        for part in [
            "Action=RunInstances",
            "Version=2014-05-26",
            "SecurityToken=tok",
            "SignatureMethod=HMAC-SHA1",
            "SignatureNonce=3156853299f313e23d1673dc12e1703d",
            "Timestamp=2023-10-26T10%3A22%3A32Z",
            "Signature=",
        ] {
            assert!(
                signed.query.contains(part),
                "{part} missing from {}",
                signed.query
            );
        }
        // The signature is over everything but itself: recompute it.
        let pairs: Vec<(String, String)> = signed
            .query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let sig = pairs
            .iter()
            .find(|(k, _)| k == "Signature")
            .map(|(_, v)| v.clone())
            .expect("signature");
        let sts =
            sign_v2::string_to_sign("POST", pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        assert_eq!(sign_v2::signature(&sts, "YourAccessKeySecret"), sig);
    }

    fn percent_decode(s: &str) -> String {
        let mut out = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn nonces_are_unique() {
        let a = new_nonce();
        assert_eq!(a.len(), 32);
        assert_ne!(a, new_nonce());
    }

    #[test]
    fn params_flatten_lists_one_based() {
        let p = Params::new()
            .set_list("NetworkInterfaceId", &["eni-a", "eni-b"])
            .set_opt::<u32>("X", None);
        assert_eq!(
            p.pairs(),
            &[
                ("NetworkInterfaceId.1".into(), "eni-a".into()),
                ("NetworkInterfaceId.2".into(), "eni-b".into())
            ]
        );
    }
}
