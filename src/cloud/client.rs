//! Sending calls: credentials, signing, HTTP, decoding, classification and
//! the retry loop (full-jitter backoff, a larger one after `Throttling*`
//! answers, `x-acs-retry-after`, attempt and deadline bounds; every attempt
//! signed anew).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tracing::{debug, warn};

use super::codes::ErrorClass;
use super::error::{ApiError, CloudError};
use super::request::{self, Attempt, Params, SignatureVersion};
use crate::backoff::{RetryPolicy, ThrottleBackoff};
use crate::config::{ApiConfig, ENV_ECS_ENDPOINT};
use crate::credentials::CredentialProvider;
use crate::ids::RegionId;

/// The largest response body any call reads (a larger one is an error).
const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// `https://ecs-vpc.<region>.aliyuncs.com`: reachable from inside a VPC
/// without internet access. The region is a checked [`RegionId`], so the
/// host cannot be bent elsewhere (`x@127.0.0.1#` is not a region).
pub fn default_endpoint(region: &RegionId) -> String {
    format!("https://ecs-vpc.{region}.aliyuncs.com")
}

/// Everything the client needs besides credentials.
#[derive(Debug, Clone)]
pub struct EcsOptions {
    pub endpoint: String,
    pub region: String,
    pub signature: SignatureVersion,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub retry: RetryPolicy,
    /// The backoff after `Throttling*` answers (see [`ThrottleBackoff`]).
    pub throttle: ThrottleBackoff,
}

impl EcsOptions {
    /// From the configuration for `region`; `ENI_AGENT_ECS_ENDPOINT` (read
    /// through `lookup`) overrides the configured endpoint.
    pub fn from_config(
        config: &ApiConfig,
        region: &RegionId,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Self {
        let endpoint = lookup(ENV_ECS_ENDPOINT)
            .filter(|v| !v.is_empty())
            .or_else(|| config.endpoint.clone())
            .unwrap_or_else(|| default_endpoint(region));
        Self {
            endpoint,
            region: region.to_string(),
            signature: config.signature,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            retry: config.retry.policy(),
            throttle: config.retry.throttle(),
        }
    }
}

/// A decoded success response.
#[derive(Debug, Clone)]
pub struct ApiResponse<T> {
    pub body: T,
    pub request_id: String,
    /// Attempts it took, the successful one included.
    pub attempts: u32,
    /// The size of the body read, in bytes.
    pub body_len: usize,
}

/// The ECS client. Clones share one connection pool.
#[derive(Debug, Clone)]
pub struct EcsClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    url: reqwest::Url,
    /// `host[:port]`, signed by V3 and sent as the Host header.
    host: String,
    options: EcsOptions,
    credentials: CredentialProvider,
}

/// The fields every error body carries.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ErrorBody {
    code: Option<String>,
    message: Option<String>,
    request_id: Option<String>,
    host_id: Option<String>,
    recommend: Option<String>,
}

impl EcsClient {
    pub fn new(options: EcsOptions, credentials: CredentialProvider) -> Result<Self, CloudError> {
        // The region goes into every request (RegionId) and, by default,
        // into the endpoint's host name.
        RegionId::parse(&options.region)
            .map_err(|e| CloudError::Setup(format!("ECS region: {e}")))?;
        let url = crate::config::check_url(&options.endpoint)
            .map_err(|e| CloudError::Setup(format!("ECS endpoint {:?}: {e}", options.endpoint)))?;
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => {
                return Err(CloudError::Setup(format!(
                    "ECS endpoint {:?} has no host",
                    options.endpoint
                )));
            }
        };
        let http = crate::http::client(options.connect_timeout, options.request_timeout)
            .map_err(|e| CloudError::Setup(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                url,
                host,
                options,
                credentials,
            }),
        })
    }

    pub fn region(&self) -> &str {
        &self.inner.options.region
    }

    pub fn endpoint(&self) -> &str {
        &self.inner.options.endpoint
    }

    /// Calls `action` with `params` (RegionId is added when absent) and
    /// decodes the body as `T`, retrying transient failures.
    pub async fn call<T: DeserializeOwned>(
        &self,
        action: &'static str,
        params: Params,
    ) -> Result<ApiResponse<T>, CloudError> {
        self.call_limited(action, params, BODY_LIMIT).await
    }

    /// [`Self::call`], reading at most `body_limit` bytes of a response
    /// (never more than the client's own limit).
    pub async fn call_limited<T: DeserializeOwned>(
        &self,
        action: &'static str,
        params: Params,
        body_limit: usize,
    ) -> Result<ApiResponse<T>, CloudError> {
        let body_limit = body_limit.min(BODY_LIMIT);
        let params = if params.get("RegionId").is_none() {
            params.set("RegionId", self.region())
        } else {
            params
        };
        let policy = &self.inner.options.retry;
        let throttle = &self.inner.options.throttle;
        let started = Instant::now();
        let mut attempt = 0;
        // Attempts refused by throttling; they count against the deadline
        // only (see ThrottleBackoff).
        let mut throttled = 0;
        let mut refetched = false;
        loop {
            attempt += 1;
            let sent = Instant::now();
            let outcome = self.send_once::<T>(action, &params, body_limit).await;
            record_request(action, outcome.as_ref().err(), sent.elapsed());
            let error = match outcome {
                Ok((body, request_id, body_len)) => {
                    return Ok(ApiResponse {
                        body,
                        request_id,
                        attempts: attempt,
                        body_len,
                    });
                }
                Err(e) => e,
            };
            if !refetched && is_expired_credentials(&error) {
                // Cached STS credentials the service calls expired: drop
                // them and try once more with fresh ones (not counted as a
                // retry; a second expiry is final).
                refetched = true;
                if let Some(key) = self.last_key_id().await {
                    if self.inner.credentials.invalidate(&key).await {
                        warn!(action, error = %error, "credentials expired; fetching new ones");
                        continue;
                    }
                }
            }
            if error.class() != ErrorClass::Retry {
                return Err(error);
            }
            let backoff = if error.is_throttling() {
                throttled += 1;
                throttle.delay(throttled)
            } else {
                policy.delay(attempt - throttled)
            };
            let delay = error.retry_after().unwrap_or(backoff);
            let elapsed = started.elapsed();
            let exhausted = policy.max_attempts <= 1 || attempt - throttled >= policy.max_attempts;
            if exhausted || elapsed + delay > policy.deadline {
                return Err(if attempt == 1 {
                    error
                } else {
                    CloudError::RetriesExhausted {
                        action,
                        attempts: attempt,
                        elapsed,
                        last: Box::new(error),
                    }
                });
            }
            crate::metrics::global().api_retry(action);
            warn!(action, attempt, delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                  error = %error, "ECS call failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// The AccessKeyId the provider currently hands out (for invalidation).
    async fn last_key_id(&self) -> Option<String> {
        self.inner
            .credentials
            .credentials()
            .await
            .ok()
            .map(|c| c.access_key_id)
    }

    /// One signed attempt.
    async fn send_once<T: DeserializeOwned>(
        &self,
        action: &'static str,
        params: &Params,
        body_limit: usize,
    ) -> Result<(T, String, usize), CloudError> {
        let inner = &*self.inner;
        let credentials = inner
            .credentials
            .credentials()
            .await
            .map_err(|source| CloudError::Credentials { action, source })?;
        let token = credentials
            .security_token
            .as_ref()
            .map_or("", |t| t.expose());
        let known = [
            credentials.access_key_id.as_str(),
            credentials.access_key_secret.expose(),
            token,
        ];
        // Whatever the service or the transport echoes back (the string to
        // sign, the canonical request, the URL with its query) is scrubbed
        // of these before it becomes an error.
        self.send_signed(action, params, body_limit, &credentials)
            .await
            .map_err(|e| e.scrubbed(&known))
    }

    async fn send_signed<T: DeserializeOwned>(
        &self,
        action: &'static str,
        params: &Params,
        body_limit: usize,
        credentials: &crate::credentials::Credentials,
    ) -> Result<(T, String, usize), CloudError> {
        let inner = &*self.inner;
        let attempt = Attempt {
            action,
            host: &inner.host,
            nonce: request::new_nonce(),
            time: SystemTime::now(),
        };
        let signed = request::sign(inner.options.signature, &attempt, params, credentials);
        let mut url = inner.url.clone();
        url.set_query(Some(&signed.query));
        let mut req = inner.http.post(url);
        for (name, value) in &signed.headers {
            req = req.header(name.as_str(), value.as_str());
        }
        debug!(action, nonce = %signed.nonce, "ECS request");
        let transport = |e: &reqwest::Error| CloudError::Transport {
            action,
            endpoint: inner.options.endpoint.clone(),
            reason: crate::http::error_chain(e),
        };
        let response = req.send().await.map_err(|e| transport(&e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let retry_after = header("x-acs-retry-after")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        let header_request_id = header("x-acs-request-id").unwrap_or_default();
        let body = crate::http::read_limited(response, body_limit)
            .await
            .map_err(|e| match e {
                crate::http::BodyError::Transport(e) => transport(&e),
                too_large => CloudError::InvalidResponse {
                    action,
                    request_id: header_request_id.clone(),
                    reason: too_large.to_string(),
                },
            })?;
        if (200..300).contains(&status) {
            decode_success(action, &body, &header_request_id).map(|(t, id)| (t, id, body.len()))
        } else {
            Err(decode_error(
                action,
                status,
                &body,
                header_request_id,
                retry_after,
            ))
        }
    }
}

/// Codes that mean the credentials themselves have run out.
const EXPIRED_CREDENTIAL_CODES: &[&str] = &[
    "InvalidSecurityToken.Expired",
    "SecurityTokenExpired",
    "InvalidAccessKeyId.Expired",
];

fn is_expired_credentials(error: &CloudError) -> bool {
    error
        .code()
        .is_some_and(|c| EXPIRED_CREDENTIAL_CODES.contains(&c))
}

/// Counts one request (attempt) in the metrics.
fn record_request(action: &str, error: Option<&CloudError>, took: Duration) {
    if let Some(CloudError::Credentials { .. }) = error {
        return; // nothing was sent
    }
    let code = error.map_or("Success", CloudError::metric_code);
    let throttled = error.is_some_and(CloudError::is_throttling);
    crate::metrics::global().api_request(action, code, took, throttled);
}

/// Decodes a 2xx body as `T`, with its RequestId.
fn decode_success<T: DeserializeOwned>(
    action: &'static str,
    body: &[u8],
    header_request_id: &str,
) -> Result<(T, String), CloudError> {
    // Straight into `T` (never through a `serde_json::Value`, which costs
    // many times the body's size).
    #[derive(Deserialize)]
    struct Id {
        #[serde(rename = "RequestId")]
        request_id: Option<String>,
    }
    let request_id = serde_json::from_slice::<Id>(body)
        .ok()
        .and_then(|id| id.request_id)
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| header_request_id.to_owned());
    let request_id = crate::secret::bound_message(&request_id, 128);
    let decoded = serde_json::from_slice(body).map_err(|e| CloudError::InvalidResponse {
        action,
        request_id: request_id.clone(),
        reason: if e.is_syntax() || e.is_eof() {
            format!("not JSON: {e}")
        } else {
            e.to_string()
        },
    })?;
    Ok((decoded, request_id))
}

/// Turns an error answer into a [`CloudError`].
fn decode_error(
    action: &'static str,
    status: u16,
    body: &[u8],
    header_request_id: String,
    retry_after: Option<Duration>,
) -> CloudError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if b.code.as_deref().is_some_and(|c| !c.is_empty()) => {
            CloudError::Api(Box::new(ApiError {
                action,
                http_status: status,
                code: b.code.unwrap_or_default(),
                message: b.message.unwrap_or_default(),
                request_id: b
                    .request_id
                    .filter(|r| !r.is_empty())
                    .unwrap_or(header_request_id),
                host_id: b.host_id.unwrap_or_default(),
                recommend: b.recommend.unwrap_or_default(),
                retry_after,
            }))
        }
        _ => CloudError::Http {
            action,
            status,
            request_id: if header_request_id.is_empty() {
                "none".into()
            } else {
                header_request_id
            },
            snippet: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        },
    }
}
