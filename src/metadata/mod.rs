//! The instance metadata service (`http://100.100.100.200/latest/meta-data/`):
//! the instance's identity, the per-MAC facts of every attached ENI, and the
//! instance RAM role's credentials.
//!
//! Hardened mode is used when the service offers it: a token is fetched with
//! `PUT /latest/api/token`, cached, renewed at half its lifetime and fetched
//! again once on a 401. Without a token the client reads tokenless unless
//! `require_token` is set. 429, 5xx and transport errors are retried with a
//! short backoff; a 404 on an optional key means "absent". Token requests
//! carry `X-aliyun-ecs-metadata-token-ttl-seconds` (21600 at most), reads
//! carry the token as `X-aliyun-ecs-metadata-token`.

mod client;
mod parse;
mod types;

pub use client::{DEFAULT_ENDPOINT, MetadataClient, MetadataOptions};
pub use parse::ParseError;
pub use types::{InstanceIdentity, InterfaceFacts};

/// What went wrong talking to the metadata service.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("the metadata service at {endpoint} is unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    #[error("metadata {path} answered HTTP {status} (retryable) after {attempts} attempts")]
    Busy {
        path: String,
        status: u16,
        attempts: u32,
    },
    #[error("metadata {path} does not exist (HTTP 404)")]
    NotFound { path: String },
    #[error(
        "the metadata service refuses tokenless reads (HTTP 403, hardened mode) and no token could be had: {reason}"
    )]
    HardenedOnly { reason: String },
    #[error("metadata.require_token is set but the metadata service gave no token: {reason}")]
    TokenRequired { reason: String },
    #[error(
        "metadata {path} rejected the token twice (HTTP 401); check the clock and the service's hardened-mode settings"
    )]
    Unauthorized { path: String },
    #[error("metadata {path} answered HTTP {status}, which the agent cannot handle")]
    Status { path: String, status: u16 },
    #[error("metadata {path} has an unexpected value: {source}")]
    Malformed {
        path: String,
        #[source]
        source: ParseError,
    },
    #[error("cannot build the metadata HTTP client: {0}")]
    Client(String),
}

impl MetadataError {
    /// True when the same read may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unreachable { .. } | Self::Busy { .. })
    }
}
