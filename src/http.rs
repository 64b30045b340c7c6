//! The one place that builds HTTP clients: rustls with the ring provider
//! (installed once per process), no proxy guessing beyond the environment,
//! connect and request timeouts always set.

use std::sync::Once;
use std::time::Duration;

static INSTALL_PROVIDER: Once = Once::new();

/// Builds a client with the given timeouts.
pub fn client(
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    INSTALL_PROVIDER.call_once(|| {
        // Err means another provider is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(request_timeout)
        .user_agent(concat!("eni-agent/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Reads at most `limit` bytes of a response body; a longer body is an error
/// (a misbehaving endpoint must not make the agent buffer without bound).
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("reading the response body failed: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("the response body is larger than {limit} bytes")]
    TooLarge { limit: usize },
}

/// A transport error in words, with its cause chain (reqwest's own Display
/// says little more than "error sending request").
pub fn error_chain(e: &reqwest::Error) -> String {
    let mut reason = if e.is_timeout() {
        "timed out".to_owned()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason.push_str(": ");
        reason.push_str(&s.to_string());
        source = s.source();
    }
    reason
}
