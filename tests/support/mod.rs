//! A scripted HTTP server on 127.0.0.1 for client tests: it records every
//! request and answers from a script keyed by path, so tests can walk a
//! client through throttling, errors, 401s and 404s without any real service.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Request, Response, StatusCode, Uri};

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        self.uri.query()?.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == name).then(|| decode(v))
        })
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() + 1 {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex escape"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub delay: std::time::Duration,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn new(status: u16, body: impl Into<String>) -> Self {
        Self {
            delay: std::time::Duration::ZERO,
            status,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    /// Answer only after `delay`.
    pub fn delayed(mut self, delay: std::time::Duration) -> Self {
        self.delay = delay;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// A predicate on requests plus the replies for it, in order; the last
/// reply repeats.
type Rule = (
    Box<dyn Fn(&Recorded) -> bool + Send + Sync>,
    VecDeque<Reply>,
);

#[derive(Default)]
struct State {
    rules: Vec<Rule>,
    log: Vec<Recorded>,
}

/// The server handle.
#[derive(Clone)]
pub struct Scripted {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl Scripted {
    /// Starts the server on an ephemeral loopback port.
    pub async fn start() -> Self {
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let app = Router::new().fallback(move |req: Request<Body>| {
            let st = st.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, 1 << 20)
                    .await
                    .unwrap_or_default();
                let rec = Recorded {
                    method: parts.method,
                    uri: parts.uri,
                    headers: parts.headers,
                    body,
                };
                let reply = {
                    let mut s = st.lock().expect("lock");
                    s.log.push(rec.clone());
                    let rule = s.rules.iter_mut().find(|(matches, _)| matches(&rec));
                    match rule {
                        Some((_, replies)) if replies.len() > 1 => replies.pop_front(),
                        Some((_, replies)) => replies.front().cloned(),
                        None => None,
                    }
                };
                let reply = reply.unwrap_or_else(|| Reply::new(404, "no script for this request"));
                tokio::time::sleep(reply.delay).await;
                let mut resp =
                    Response::builder().status(StatusCode::from_u16(reply.status).expect("status"));
                for (k, v) in &reply.headers {
                    resp = resp.header(k, v);
                }
                resp.body(Body::from(reply.body)).expect("response")
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Requests matching `pred` get `replies` in order (the last repeats).
    pub fn on(
        &self,
        pred: impl Fn(&Recorded) -> bool + Send + Sync + 'static,
        replies: Vec<Reply>,
    ) {
        self.state
            .lock()
            .expect("lock")
            .rules
            .push((Box::new(pred), replies.into()));
    }

    /// Shorthand: requests to `path` with `method`.
    pub fn route(&self, method: Method, path: &'static str, replies: Vec<Reply>) {
        self.on(move |r| r.method == method && r.uri.path() == path, replies);
    }

    pub fn log(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").log.clone()
    }

    pub fn count(&self, pred: impl Fn(&Recorded) -> bool) -> usize {
        self.state
            .lock()
            .expect("lock")
            .log
            .iter()
            .filter(|r| pred(r))
            .count()
    }
}
