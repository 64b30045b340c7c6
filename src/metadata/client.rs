//! The metadata HTTP client: token handling, retries, typed readers.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::sync::Mutex;
use tracing::debug;

use super::MetadataError;
use super::parse::{self, ParseError};
use super::types::{InstanceIdentity, InterfaceFacts};
use crate::backoff::RetryPolicy;
use crate::config::{ENV_METADATA_ENDPOINT, MetadataConfig};
use crate::mac::MacAddr;
use crate::secret::Secret;

/// The real service's address.
pub const DEFAULT_ENDPOINT: &str = "http://100.100.100.200";
const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "X-aliyun-ecs-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "X-aliyun-ecs-metadata-token";
/// After the service declined to issue tokens, ask again this much later.
const TOKEN_RETRY_AFTER: Duration = Duration::from_secs(300);
const BODY_LIMIT: usize = 256 * 1024;

/// How to reach the service.
#[derive(Debug, Clone)]
pub struct MetadataOptions {
    pub endpoint: String,
    pub require_token: bool,
    pub token_ttl: Duration,
    pub timeout: Duration,
    pub retry: RetryPolicy,
}

impl MetadataOptions {
    /// From the configuration, with `ENI_AGENT_METADATA_ENDPOINT` (read
    /// through `lookup`) overriding the configured endpoint.
    pub fn from_config(config: &MetadataConfig, lookup: impl Fn(&str) -> Option<String>) -> Self {
        let endpoint = lookup(ENV_METADATA_ENDPOINT)
            .filter(|v| !v.is_empty())
            .or_else(|| config.endpoint.clone())
            .unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Self {
            endpoint,
            require_token: config.require_token,
            token_ttl: config.token_ttl,
            timeout: config.timeout,
            retry: RetryPolicy {
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(1),
                max_attempts: 5,
                deadline: Duration::from_secs(10),
            },
        }
    }
}

/// Hardened-mode token state.
#[derive(Debug)]
enum Token {
    /// Not asked yet, or dropped after a 401.
    Unknown,
    Valid {
        token: Secret,
        renew_at: Instant,
    },
    /// The service declined to issue one; read tokenless until `retry_at`.
    Declined {
        reason: String,
        retry_at: Instant,
    },
}

/// A client of the instance metadata service. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct MetadataClient {
    http: reqwest::Client,
    base: reqwest::Url,
    options: MetadataOptions,
    token: Mutex<Token>,
}

/// One attempt's outcome.
enum Attempt {
    Done(Option<String>),
    Retry(MetadataError),
    Unauthorized,
}

/// An attempt's outcome as `eni_agent_metadata_requests_total{result}`.
fn metric_result(outcome: &Result<Attempt, MetadataError>) -> &'static str {
    match outcome {
        Ok(Attempt::Done(Some(_))) => "ok",
        Ok(Attempt::Done(None)) => "not_found",
        Ok(Attempt::Unauthorized) | Err(MetadataError::HardenedOnly { .. }) => "unauthorized",
        Ok(Attempt::Retry(MetadataError::Busy { .. })) => "busy",
        Ok(Attempt::Retry(MetadataError::Unreachable { .. })) => "unreachable",
        Ok(Attempt::Retry(_)) | Err(_) => "error",
    }
}

impl MetadataClient {
    /// Builds a client; fails on an endpoint that is not an http(s) URL.
    pub fn new(options: MetadataOptions) -> Result<Self, MetadataError> {
        let base = crate::config::check_url(&options.endpoint).map_err(|e| {
            MetadataError::Client(format!("metadata endpoint {:?}: {e}", options.endpoint))
        })?;
        let http = crate::http::client(options.timeout, options.timeout)
            .map_err(|e| MetadataError::Client(e.to_string()))?;
        Ok(Self {
            http,
            base,
            options,
            token: Mutex::new(Token::Unknown),
        })
    }

    /// The endpoint in use.
    pub fn endpoint(&self) -> &str {
        &self.options.endpoint
    }

    /// `GET /latest/meta-data/<path>`: `Some(body)`, or `None` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<String>, MetadataError> {
        let policy = &self.options.retry;
        let started = Instant::now();
        let mut reauthorized = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let outcome = self.attempt(path).await;
            crate::metrics::global().metadata_request(metric_result(&outcome));
            let outcome = outcome?;
            let error = match outcome {
                Attempt::Done(body) => return Ok(body),
                Attempt::Unauthorized if !reauthorized => {
                    // The token expired or the service restarted: fetch a new
                    // one once, without counting it as a failed attempt.
                    reauthorized = true;
                    *self.token.lock().await = Token::Unknown;
                    attempt -= 1;
                    continue;
                }
                Attempt::Unauthorized => {
                    return Err(MetadataError::Unauthorized {
                        path: path.to_owned(),
                    });
                }
                Attempt::Retry(e) => e,
            };
            let delay = policy.delay(attempt);
            if attempt >= policy.max_attempts || started.elapsed() + delay > policy.deadline {
                return Err(match error {
                    MetadataError::Busy { path, status, .. } => MetadataError::Busy {
                        path,
                        status,
                        attempts: attempt,
                    },
                    other => other,
                });
            }
            debug!(path, attempt, error = %error, delay_ms = delay.as_millis(), "metadata read failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    /// Like [`get`](Self::get), but a 404 is an error.
    pub async fn get_required(&self, path: &str) -> Result<String, MetadataError> {
        self.get(path)
            .await?
            .ok_or_else(|| MetadataError::NotFound {
                path: path.to_owned(),
            })
    }

    async fn attempt(&self, path: &str) -> Result<Attempt, MetadataError> {
        let token = self.token().await?;
        let url = self.url(&format!(
            "/latest/meta-data/{}",
            path.trim_start_matches('/')
        ));
        let mut request = self.http.get(url);
        if let Some(token) = &token {
            request = request.header(TOKEN_HEADER, token.expose());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => return Ok(Attempt::Retry(self.unreachable(&e))),
        };
        let status = response.status();
        match status {
            StatusCode::OK => {
                let body = crate::http::read_limited(response, BODY_LIMIT)
                    .await
                    .map_err(|e| MetadataError::Unreachable {
                        endpoint: self.options.endpoint.clone(),
                        reason: e.to_string(),
                    });
                match body {
                    Ok(bytes) => Ok(Attempt::Done(Some(
                        String::from_utf8_lossy(&bytes).into_owned(),
                    ))),
                    Err(e) => Ok(Attempt::Retry(e)),
                }
            }
            StatusCode::NOT_FOUND => Ok(Attempt::Done(None)),
            StatusCode::UNAUTHORIZED if token.is_some() => Ok(Attempt::Unauthorized),
            StatusCode::FORBIDDEN if token.is_none() => {
                let reason = match &*self.token.lock().await {
                    Token::Declined { reason, .. } => reason.clone(),
                    _ => "no token was requested".into(),
                };
                Err(MetadataError::HardenedOnly { reason })
            }
            s if s == StatusCode::TOO_MANY_REQUESTS || s.is_server_error() => {
                Ok(Attempt::Retry(MetadataError::Busy {
                    path: path.to_owned(),
                    status: s.as_u16(),
                    attempts: 1,
                }))
            }
            s => Err(MetadataError::Status {
                path: path.to_owned(),
                status: s.as_u16(),
            }),
        }
    }

    /// The current token, fetching or renewing it when due; `None` means
    /// read tokenless.
    async fn token(&self) -> Result<Option<Secret>, MetadataError> {
        let mut state = self.token.lock().await;
        let now = Instant::now();
        match &*state {
            Token::Valid { token, renew_at } if now < *renew_at => return Ok(Some(token.clone())),
            Token::Declined { retry_at, .. } if now < *retry_at => return Ok(None),
            _ => {}
        }
        match self.fetch_token().await {
            Ok(token) => {
                *state = Token::Valid {
                    token: token.clone(),
                    renew_at: now + self.options.token_ttl / 2,
                };
                Ok(Some(token))
            }
            Err(reason) if self.options.require_token => {
                Err(MetadataError::TokenRequired { reason })
            }
            Err(reason) => {
                debug!(%reason, "no metadata token; reading tokenless");
                *state = Token::Declined {
                    reason,
                    retry_at: now + TOKEN_RETRY_AFTER,
                };
                Ok(None)
            }
        }
    }

    /// `PUT /latest/api/token`; the error is a reason for the log.
    async fn fetch_token(&self) -> Result<Secret, String> {
        let ttl = self.options.token_ttl.as_secs().clamp(1, 21600);
        let response = self
            .http
            .put(self.url(TOKEN_PATH))
            .header(TTL_HEADER, ttl.to_string())
            .send()
            .await
            .map_err(|e| format!("token request failed: {}", crate::http::error_chain(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!("token request answered HTTP {}", status.as_u16()));
        }
        let body = crate::http::read_limited(response, 4096)
            .await
            .map_err(|e| e.to_string())?;
        let token = String::from_utf8(body).map_err(|_| "the token is not UTF-8".to_owned())?;
        let token = token.trim();
        if token.is_empty() {
            return Err("the token is empty".into());
        }
        Ok(Secret::new(token))
    }

    fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base.clone();
        url.set_path(path);
        url
    }

    fn unreachable(&self, e: &reqwest::Error) -> MetadataError {
        MetadataError::Unreachable {
            endpoint: self.options.endpoint.clone(),
            reason: crate::http::error_chain(e),
        }
    }

    /// A required key, parsed.
    async fn required<T>(
        &self,
        path: &str,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<T, MetadataError> {
        let text = self.get_required(path).await?;
        parse(&text).map_err(|source| MetadataError::Malformed {
            path: path.to_owned(),
            source,
        })
    }

    /// An optional key, parsed; 404 is `None`.
    async fn optional<T>(
        &self,
        path: String,
        parse: impl Fn(&str) -> Result<T, ParseError>,
    ) -> Result<Option<T>, MetadataError> {
        match self.get(&path).await? {
            Some(text) if !text.trim().is_empty() => parse(&text)
                .map(Some)
                .map_err(|source| MetadataError::Malformed { path, source }),
            _ => Ok(None),
        }
    }

    /// A required plain-text value, trimmed and non-empty.
    pub async fn text(&self, path: &str) -> Result<String, MetadataError> {
        self.required(path, |t| {
            let t = t.trim();
            if t.is_empty() || t.contains(char::is_whitespace) {
                Err(ParseError {
                    what: "expected one non-empty word".into(),
                    value: t.chars().take(80).collect(),
                })
            } else {
                Ok(t.to_owned())
            }
        })
        .await
    }

    /// A required id, parsed into its type: `T::from_str` checks the
    /// documented shape, so a hostile value never reaches a URL or a file.
    pub async fn id<T>(&self, path: &str) -> Result<T, MetadataError>
    where
        T: std::str::FromStr<Err = crate::ids::IdError>,
    {
        self.required(path, |t| {
            t.trim().parse::<T>().map_err(|e| ParseError {
                what: format!("not a valid {}: expected {}", e.kind, e.shape),
                value: e.value,
            })
        })
        .await
    }

    /// `instance-id`, `region-id`, `zone-id`.
    pub async fn identity(&self) -> Result<InstanceIdentity, MetadataError> {
        let (instance_id, region_id, zone_id) = tokio::try_join!(
            self.id("instance-id"),
            self.id("region-id"),
            self.id("zone-id")
        )?;
        Ok(InstanceIdentity {
            instance_id,
            region_id,
            zone_id,
        })
    }

    /// The primary NIC's MAC (`mac`).
    pub async fn primary_mac(&self) -> Result<MacAddr, MetadataError> {
        self.required("mac", |t| {
            t.trim().parse::<MacAddr>().map_err(|e| ParseError {
                what: e.to_string(),
                value: String::new(),
            })
        })
        .await
    }

    /// The instance's VPC (`vpc-id`).
    pub async fn vpc_id(&self) -> Result<crate::ids::VpcId, MetadataError> {
        self.id("vpc-id").await
    }

    /// The MACs listed under `network/interfaces/macs/`.
    pub async fn macs(&self) -> Result<Vec<MacAddr>, MetadataError> {
        let path = "network/interfaces/macs/";
        let Some(text) = self.get(path).await? else {
            return Ok(Vec::new());
        };
        parse::listing(&text)
            .iter()
            .map(|entry| {
                entry
                    .parse::<MacAddr>()
                    .map_err(|e| MetadataError::Malformed {
                        path: path.to_owned(),
                        source: ParseError {
                            what: e.to_string(),
                            value: String::new(),
                        },
                    })
            })
            .collect()
    }

    /// Every per-MAC key of `mac`, read concurrently; absent keys are `None`
    /// or empty.
    pub async fn interface(&self, mac: MacAddr) -> Result<InterfaceFacts, MetadataError> {
        let p = |key: &str| format!("network/interfaces/macs/{mac}/{key}");
        let (id, primary, v4s, mask, gw, vsw, vpc) = tokio::try_join!(
            self.optional(p("network-interface-id"), checked_id::<crate::ids::EniId>),
            self.optional(p("primary-ip-address"), parse::ipv4),
            self.optional(p("private-ipv4s"), parse::ipv4_json_array),
            self.optional(p("netmask"), parse::netmask),
            self.optional(p("gateway"), parse::ipv4),
            self.optional(p("vswitch-cidr-block"), parse::ipv4_net),
            self.optional(p("vpc-cidr-block"), parse::ipv4_net),
        )?;
        let (v6s, gw6, vsw6, prefixes, prefixes6, vswitch_id) = tokio::try_join!(
            self.optional(p("ipv6s"), parse::ipv6_bracket_list),
            self.optional(p("ipv6-gateway"), parse::ipv6),
            self.optional(p("vswitch-ipv6-cidr-block"), parse::ipv6_net),
            self.optional(p("ipv4-prefixes"), parse::ipv4_net_list),
            self.optional(p("ipv6-prefixes"), parse::ipv6_net_list),
            self.optional(p("vswitch-id"), checked_id::<crate::ids::VSwitchId>),
        )?;
        Ok(InterfaceFacts {
            network_interface_id: id,
            vswitch_id,
            primary_ip_address: primary,
            private_ipv4s: v4s.unwrap_or_default(),
            netmask_len: mask,
            gateway: gw,
            vswitch_cidr_block: vsw,
            vpc_cidr_block: vpc,
            ipv6s: v6s.unwrap_or_default(),
            ipv6_gateway: gw6,
            vswitch_ipv6_cidr_block: vsw6,
            ipv4_prefixes: prefixes.unwrap_or_default(),
            ipv6_prefixes: prefixes6.unwrap_or_default(),
            mac: Some(mac),
        })
    }
}

/// `text` as an id of type `T` (shape checked), kept as a string.
fn checked_id<T>(text: &str) -> Result<String, ParseError>
where
    T: std::str::FromStr<Err = crate::ids::IdError> + std::fmt::Display,
{
    text.trim()
        .parse::<T>()
        .map(|id| id.to_string())
        .map_err(|e| ParseError {
            what: format!("not a valid {}: expected {}", e.kind, e.shape),
            value: e.value,
        })
}
