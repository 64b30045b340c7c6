//! The exposition: the registry encoded as OpenMetrics or as Prometheus text
//! format 0.0.4, and `GET /metrics` served by one task on the daemon's
//! runtime (HTTP/1.1, one request per connection, bounded request size,
//! timeouts, a bounded number of connections at once).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::Metrics;

/// The request head may be this large (`431` beyond).
const MAX_REQUEST: usize = 8 * 1024;
/// A client has this long to send its request and take the answer.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 16;

const CONTENT_TYPE_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const CONTENT_TYPE_OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics as OpenMetrics (`openmetrics`) or Prometheus text format.
pub fn encode(metrics: &Metrics, openmetrics: bool) -> String {
    metrics.refresh_fights();
    let mut out = String::with_capacity(8 * 1024);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &metrics.f.registry);
    if openmetrics {
        out
    } else {
        to_prometheus_text(&out)
    }
}

/// OpenMetrics text → Prometheus text 0.0.4: counters' HELP and TYPE lines
/// name the `_total` series, and the `# EOF` and `# UNIT` lines go.
fn to_prometheus_text(open: &str) -> String {
    let counters: Vec<&str> = open
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open.len() + 16 * counters.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The metrics endpoint could not be opened.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot listen for metrics on {addr}: {source} (set [metrics] listen to a free address, or \"\" to turn the endpoint off)"
)]
pub struct ServeError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// The running endpoint; dropping it stops it.
#[derive(Debug)]
pub struct MetricsServer {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves `/metrics` of [`global`](super::global) on `listen` (`None`: off).
pub async fn serve(listen: Option<SocketAddr>) -> Result<Option<MetricsServer>, ServeError> {
    let Some(addr) = listen else {
        info!("the metrics endpoint is off ([metrics] listen = \"\")");
        return Ok(None);
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError { addr, source })?;
    let addr = listener.local_addr().unwrap_or(addr);
    if addr.ip().is_loopback() {
        info!(%addr, "serving metrics at http://{addr}/metrics");
    } else {
        warn!(%addr, "serving metrics at http://{addr}/metrics on a non-loopback address: anyone who can reach it can read the ENI ids, MACs and API error counts");
    }
    let task = tokio::spawn(accept_loop(listener));
    Ok(Some(MetricsServer { addr, task }))
}

async fn accept_loop(listener: TcpListener) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(async move {
                    if let Err(e) = tokio::time::timeout(IO_TIMEOUT, answer(stream)).await {
                        debug!(%peer, "metrics client too slow: {e}");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a moment rather
                // than spinning.
                warn!(error = %e, "metrics endpoint: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request and answers it.
async fn answer(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let head = loop {
        if let Some(end) = find_head_end(&buf) {
            break Some(end);
        }
        if buf.len() >= MAX_REQUEST {
            break None;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let response = match head {
        None => reply(
            "431 Request Header Fields Too Large",
            "text/plain",
            "request too large\n",
        ),
        Some(end) => route(&String::from_utf8_lossy(&buf[..end])),
    };
    stream.write_all(&response).await?;
    stream.shutdown().await
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n")
}

/// The response to a request head.
fn route(head: &str) -> Vec<u8> {
    let mut lines = head.split("\r\n");
    let mut request = lines.next().unwrap_or("").split(' ');
    let (method, target, version) = (request.next(), request.next(), request.next());
    if !version.is_some_and(|v| v.starts_with("HTTP/1.")) {
        return reply("400 Bad Request", "text/plain", "not an HTTP/1 request\n");
    }
    let path = target.unwrap_or("").split('?').next().unwrap_or("");
    if path != "/metrics" {
        return reply(
            "404 Not Found",
            "text/plain",
            "only /metrics is served here\n",
        );
    }
    if method != Some("GET") {
        return reply(
            "405 Method Not Allowed",
            "text/plain",
            "only GET is served\n",
        );
    }
    let openmetrics = lines.any(|l| {
        l.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("accept")
                && value.contains("application/openmetrics-text")
        })
    });
    let body = encode(super::global(), openmetrics);
    let content_type = if openmetrics {
        CONTENT_TYPE_OPENMETRICS
    } else {
        CONTENT_TYPE_TEXT
    };
    reply("200 OK", content_type, &body)
}

fn reply(status: &str, content_type: &str, body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status.starts_with("405") {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_named_by_their_total_series_in_text_format() {
        let open = "# HELP a_requests Requests.\n# TYPE a_requests counter\na_requests_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n# EOF\n";
        let text = to_prometheus_text(open);
        assert_eq!(
            text,
            "# HELP a_requests_total Requests.\n# TYPE a_requests_total counter\na_requests_total 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1\n"
        );
    }

    #[test]
    fn requests_are_routed() {
        let ok = String::from_utf8(route("GET /metrics HTTP/1.1\r\nHost: x")).expect("utf8");
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(ok.contains("version=0.0.4") && ok.contains("eni_agent_build_info{"));
        assert!(!ok.contains("# EOF"));
        let om = String::from_utf8(route(
            "GET /metrics HTTP/1.1\r\naccept: application/openmetrics-text;version=1.0.0",
        ))
        .expect("utf8");
        assert!(om.contains("application/openmetrics-text") && om.ends_with("# EOF\n"));
        for (req, status) in [
            ("GET / HTTP/1.1", "404"),
            ("POST /metrics HTTP/1.1", "405"),
            ("GET /metrics", "400"),
            ("garbage", "400"),
        ] {
            let r = String::from_utf8(route(req)).expect("utf8");
            assert!(r.starts_with(&format!("HTTP/1.1 {status}")), "{req}: {r}");
        }
    }
}
