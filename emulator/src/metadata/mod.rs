//! The instance metadata service (`http://100.100.100.200/<version>/…`,
//! `latest` and the dated `2016-01-01` alike) of an
//! emulated instance (each listener answers as one instance: the
//! scenario's metadata instance, or the one whose namespace it is in), on
//! its own listener: token PUT with the 400/401/403
//! rules, optional hardened-only mode, plain-text leaves, directory
//! listings with a trailing `/` on sub-directories, per-MAC entries for
//! attached ENIs (after the configured lag) and rotating RAM-role
//! credentials. Modelled on Firecracker's MMDS: one JSON tree, walked by
//! path; here the tree is rebuilt from the model on every request.

pub mod credentials;
mod tree;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};

use crate::engine::Emulator;
use crate::server::Dropped;
use crate::util;

/// Token TTL bounds (seconds) of `PUT /latest/api/token`.
pub const MIN_TOKEN_TTL_SECONDS: u64 = 1;
/// Upper bound of the token TTL.
pub const MAX_TOKEN_TTL_SECONDS: u64 = 21600;
/// Request header carrying the wanted TTL.
pub const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
/// The versions served, as `GET /` lists them (the documented dated one
/// and `latest`); every path below is the same under each. Any other first
/// path segment is 404.
pub const VERSIONS: [&str; 2] = ["2016-01-01", "latest"];
/// Request header carrying the token.
pub const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";

fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut r = Response::new(Body::from(body.into()));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    r
}

/// Handles one metadata request, answering as `instance` (`None`: the
/// scenario's metadata instance).
pub async fn handle(
    emu: Arc<Emulator>,
    instance: Option<Arc<str>>,
    req: Request<Body>,
) -> Result<Response<Body>, Dropped> {
    let settings = emu.settings();
    let f = &settings.faults.metadata;
    if f.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(f.latency_ms)).await;
    }
    if util::chance(f.too_many_requests_rate) {
        return Ok(text(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests"));
    }
    if util::chance(f.server_error_rate) {
        return Ok(text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
        ));
    }
    if util::chance(f.unavailable_rate) {
        return Ok(text(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable"));
    }
    let now = SystemTime::now();
    let path = req.uri().path().to_string();
    let headers = req.headers();
    if path == "/latest/api/token" {
        if req.method() != Method::PUT {
            return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"));
        }
        if headers.contains_key("x-forwarded-for") {
            return Ok(text(StatusCode::FORBIDDEN, "Forbidden"));
        }
        let ttl = headers
            .get(TTL_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|t| (MIN_TOKEN_TTL_SECONDS..=MAX_TOKEN_TTL_SECONDS).contains(t));
        let Some(ttl) = ttl else {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                "Missing or Invalid Parameters",
            ));
        };
        let token = util::random_hex::<24>();
        let mut st = emu.state();
        st.metadata_tokens.retain(|_, exp| *exp > now);
        st.metadata_tokens
            .insert(token.clone(), now + Duration::from_secs(ttl));
        return Ok(text(StatusCode::OK, token));
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"));
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => {
            let valid = emu
                .state()
                .metadata_tokens
                .get(token)
                .is_some_and(|exp| *exp > now);
            if !valid {
                return Ok(text(StatusCode::UNAUTHORIZED, "Unauthorized"));
            }
        }
        None if settings.metadata.hardened_only => {
            return Ok(text(StatusCode::FORBIDDEN, "Forbidden"));
        }
        None => {}
    }
    if path == "/" {
        return Ok(text(StatusCode::OK, VERSIONS.join("\n")));
    }
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    if !segments.next().is_some_and(|v| VERSIONS.contains(&v)) {
        return Ok(text(StatusCode::NOT_FOUND, "Not Found"));
    }
    let segments: Vec<&str> = segments.collect();
    let answer = {
        let mut st = emu.state();
        let id = instance.map_or_else(|| st.metadata_instance_id.clone(), |i| i.to_string());
        tree::lookup(&mut st, &id, &settings.metadata, &segments, now)
    };
    Ok(match answer {
        Some(body) => text(StatusCode::OK, body),
        None => text(StatusCode::NOT_FOUND, "Not Found"),
    })
}
