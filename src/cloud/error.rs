//! Errors of the ECS client: an API error carries the service's own fields
//! (Code, Message, RequestId, HostId, Recommend, HTTP status) and its
//! classification; transport and decoding errors say what failed. Every
//! text that came from outside is scrubbed of secrets and bounded
//! ([`CloudError::scrubbed`]) before the error leaves the client.

use std::time::Duration;

use super::codes::{self, ErrorClass};
use crate::credentials::CredentialsError;

/// An error answer of the ECS API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub action: &'static str,
    pub http_status: u16,
    pub code: String,
    pub message: String,
    pub request_id: String,
    pub host_id: String,
    pub recommend: String,
    /// `x-acs-retry-after`, when the service sent one.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// The classification of this error.
    pub fn class(&self) -> ErrorClass {
        codes::classify(&self.code, self.http_status)
    }

    /// What a person should do about it.
    pub fn remedy(&self) -> &'static str {
        codes::remedy(&self.code)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed: {} (HTTP {}, RequestId {}): {}",
            self.action,
            self.code,
            self.http_status,
            if self.request_id.is_empty() {
                "none"
            } else {
                &self.request_id
            },
            self.message.trim()
        )?;
        if self.class() == ErrorClass::Permanent {
            write!(f, " — {}", self.remedy())?;
        }
        Ok(())
    }
}

/// Anything that stops an ECS call.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{0}")]
    Api(Box<ApiError>),
    #[error("{action}: the ECS endpoint {endpoint} could not be reached: {reason}")]
    Transport {
        action: &'static str,
        endpoint: String,
        reason: String,
    },
    #[error(
        "{action}: the ECS endpoint answered HTTP {status} with a body that is not an API error (RequestId {request_id}): {snippet:?}"
    )]
    Http {
        action: &'static str,
        status: u16,
        request_id: String,
        snippet: String,
    },
    #[error("{action}: the response (RequestId {request_id}) could not be understood: {reason}")]
    InvalidResponse {
        action: &'static str,
        request_id: String,
        reason: String,
    },
    #[error("{action}: no credentials: {source}")]
    Credentials {
        action: &'static str,
        #[source]
        source: CredentialsError,
    },
    #[error("{action}: gave up after {attempts} attempts in {elapsed:?}: {last}")]
    RetriesExhausted {
        action: &'static str,
        attempts: u32,
        elapsed: Duration,
        last: Box<CloudError>,
    },
    #[error("invalid ECS client settings: {0}")]
    Setup(String),
}

impl CloudError {
    /// The classification: API errors by their code, transport errors and
    /// unreachable credential sources are transient, the rest permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Api(e) => e.class(),
            Self::Transport { .. } => ErrorClass::Retry,
            Self::Http { status, .. } if *status >= 500 || *status == 429 => ErrorClass::Retry,
            Self::Credentials { source, .. } if source.is_transient() => ErrorClass::Retry,
            Self::RetriesExhausted { last, .. } => last.class(),
            _ => ErrorClass::Permanent,
        }
    }

    /// The API error behind this one, if any.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Self::Api(e) => Some(e),
            Self::RetriesExhausted { last, .. } => last.api(),
            _ => None,
        }
    }

    /// The API error code, if the service answered with one.
    pub fn code(&self) -> Option<&str> {
        self.api().map(|e| e.code.as_str())
    }

    /// True for a `Throttling*` answer (a request budget is spent).
    pub fn is_throttling(&self) -> bool {
        self.code().is_some_and(|c| c.starts_with("Throttling"))
    }

    /// This error with every text from outside (API message, recommend,
    /// host id, response snippet, transport reason) scrubbed of the `known`
    /// secret values and of secret-named parameters, without control
    /// characters and bounded in length (see [`crate::secret::scrub`]).
    pub fn scrubbed(self, known: &[&str]) -> Self {
        let clean = |s: String| crate::secret::scrub(&s, known);
        let short = |s: String| crate::secret::bound_message(&crate::secret::scrub(&s, known), 128);
        match self {
            Self::Api(mut e) => {
                e.code = short(std::mem::take(&mut e.code));
                e.message = clean(std::mem::take(&mut e.message));
                e.request_id = short(std::mem::take(&mut e.request_id));
                e.host_id = short(std::mem::take(&mut e.host_id));
                e.recommend = clean(std::mem::take(&mut e.recommend));
                Self::Api(e)
            }
            Self::Transport {
                action,
                endpoint,
                reason,
            } => Self::Transport {
                action,
                endpoint,
                reason: clean(reason),
            },
            Self::Http {
                action,
                status,
                request_id,
                snippet,
            } => Self::Http {
                action,
                status,
                request_id: short(request_id),
                snippet: clean(snippet),
            },
            Self::InvalidResponse {
                action,
                request_id,
                reason,
            } => Self::InvalidResponse {
                action,
                request_id: short(request_id),
                reason: clean(reason),
            },
            Self::RetriesExhausted {
                action,
                attempts,
                elapsed,
                last,
            } => Self::RetriesExhausted {
                action,
                attempts,
                elapsed,
                last: Box::new(last.scrubbed(known)),
            },
            other => other,
        }
    }

    /// The answer as a metric label from a bounded set: the ECS error codes
    /// the client knows, else `Throttling`, `Other` or the kind of failure.
    pub fn metric_code(&self) -> &'static str {
        match self {
            Self::Api(e) => match super::codes::lookup(&e.code) {
                Some(info) => info.code,
                None if e.code.starts_with("Throttling") => "Throttling",
                None => "Other",
            },
            Self::Transport { .. } => "Transport",
            Self::Http { .. } => "Http",
            Self::InvalidResponse { .. } => "InvalidResponse",
            Self::Credentials { .. } => "Credentials",
            Self::RetriesExhausted { last, .. } => last.metric_code(),
            Self::Setup(_) => "Setup",
        }
    }

    /// The wait the service asked for (`x-acs-retry-after`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(|e| e.retry_after)
    }
}
