//! A small QMP (QEMU Machine Protocol) client over a Unix socket: greeting
//! and capability negotiation, commands with their answers, and waiting for
//! an event that matches a predicate. Events that arrive while a command
//! waits for its answer are kept for a later [`Qmp::wait_event`].

use std::collections::VecDeque;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

/// A QMP failure.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Connecting, reading or writing failed.
    #[error("QMP socket {path}: {source}")]
    Io {
        /// The socket path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// QEMU closed the connection.
    #[error("QMP socket {0}: QEMU closed the connection (did the VM exit?)")]
    Closed(String),
    /// A line was not a QMP JSON object.
    #[error("QMP socket {path}: not a QMP message: {line:?}")]
    Protocol {
        /// The socket path.
        path: String,
        /// The offending line (truncated).
        line: String,
    },
    /// QEMU answered a command with an error.
    #[error("QMP {command} failed: {class}: {desc}")]
    Command {
        /// The command.
        command: String,
        /// QMP error class.
        class: String,
        /// QEMU's description.
        desc: String,
    },
    /// No answer or event in time.
    #[error("QMP socket {path}: no {what} within {secs} s")]
    Timeout {
        /// The socket path.
        path: String,
        /// What was awaited.
        what: String,
        /// The limit.
        secs: u64,
    },
}

/// A negotiated QMP connection.
#[derive(Debug)]
pub struct Qmp {
    path: String,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    events: VecDeque<Value>,
    timeout: Duration,
}

impl Qmp {
    /// Connects to the QMP socket at `path`, reads the greeting and leaves
    /// capability-negotiation mode. `timeout` bounds every later answer.
    pub async fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let shown = path.display().to_string();
        let stream = UnixStream::connect(path)
            .await
            .map_err(|source| QmpError::Io {
                path: shown.clone(),
                source,
            })?;
        let (r, w) = stream.into_split();
        let mut qmp = Qmp {
            path: shown,
            reader: BufReader::new(r),
            writer: w,
            events: VecDeque::new(),
            timeout,
        };
        let greeting = qmp.read_message("greeting").await?;
        if greeting.get("QMP").is_none() {
            return Err(qmp.protocol(&greeting.to_string()));
        }
        qmp.execute("qmp_capabilities", None).await?;
        Ok(qmp)
    }

    fn protocol(&self, line: &str) -> QmpError {
        QmpError::Protocol {
            path: self.path.clone(),
            line: line.chars().take(200).collect(),
        }
    }

    async fn read_message(&mut self, what: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(self.timeout, self.reader.read_line(&mut line))
                .await
                .map_err(|_| QmpError::Timeout {
                    path: self.path.clone(),
                    what: what.to_string(),
                    secs: self.timeout.as_secs(),
                })?
                .map_err(|source| QmpError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(QmpError::Closed(self.path.clone()));
            }
            if line.trim().is_empty() {
                continue;
            }
            return match serde_json::from_str::<Value>(line.trim()) {
                Ok(v) if v.is_object() => Ok(v),
                _ => Err(self.protocol(line.trim())),
            };
        }
    }

    /// Runs `command` with `arguments`; returns its `return` value. Events
    /// read meanwhile are kept for [`Qmp::wait_event`].
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
    ) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut bytes = msg.to_string().into_bytes();
        bytes.push(b'\n');
        self.writer
            .write_all(&bytes)
            .await
            .map_err(|source| QmpError::Io {
                path: self.path.clone(),
                source,
            })?;
        loop {
            let m = self.read_message(&format!("answer to {command}")).await?;
            if m.get("event").is_some() {
                self.events.push_back(m);
                continue;
            }
            if let Some(r) = m.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = m.get("error") {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                return Err(QmpError::Command {
                    command: command.to_string(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            return Err(self.protocol(&m.to_string()));
        }
    }

    /// Waits (up to `limit`) for an event named `name` whose `data` satisfies
    /// `matches`; earlier events that do not match are dropped.
    pub async fn wait_event(
        &mut self,
        name: &str,
        limit: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Result<Value, QmpError> {
        let is_it = |e: &Value| {
            e.get("event").and_then(Value::as_str) == Some(name)
                && matches(e.get("data").unwrap_or(&Value::Null))
        };
        if let Some(pos) = self.events.iter().position(is_it) {
            return Ok(self.events.remove(pos).unwrap_or_default());
        }
        self.events.clear();
        let what = format!("{name} event");
        let wait = async {
            loop {
                let m = self.read_message(&what).await?;
                if is_it(&m) {
                    return Ok(m);
                }
            }
        };
        tokio::time::timeout(limit, wait).await.unwrap_or_else(|_| {
            Err(QmpError::Timeout {
                path: self.path.clone(),
                what: what.clone(),
                secs: limit.as_secs(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::UnixListener;

    /// A scripted QEMU: sends the greeting, then for each expected command
    /// checks it and writes the scripted lines.
    fn scripted(dir: &Path, script: Vec<(&'static str, Vec<&'static str>)>) -> std::path::PathBuf {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).expect("bind");
        tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            let (r, mut w) = s.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\r\n")
                .await
                .expect("greeting");
            for (expect, answers) in script {
                let mut line = String::new();
                r.read_line(&mut line).await.expect("read");
                let v: Value = serde_json::from_str(&line).expect("client sends JSON");
                assert_eq!(v["execute"], expect, "command order");
                for a in answers {
                    w.write_all(format!("{a}\r\n").as_bytes())
                        .await
                        .expect("answer");
                }
            }
            // Keep the socket open until the client is done.
            let mut rest = String::new();
            let _ = r.read_line(&mut rest).await;
        });
        path
    }

    #[tokio::test]
    async fn command_answers_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = scripted(
            dir.path(),
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                (
                    "device_add",
                    vec![
                        r#"{"event": "NIC_RX_FILTER_CHANGED", "data": {}}"#,
                        r#"{"return": {}}"#,
                    ],
                ),
                (
                    "netdev_add",
                    vec![r#"{"error": {"class": "GenericError", "desc": "Duplicate ID 'hn0'"}}"#],
                ),
            ],
        );
        let mut q = Qmp::connect(&path, Duration::from_secs(5))
            .await
            .expect("connect");
        let r = q
            .execute("device_add", Some(json!({"driver": "virtio-net-pci"})))
            .await
            .expect("device_add");
        assert_eq!(r, json!({}));
        assert_eq!(q.events.len(), 1, "the event is kept");
        let e = q.execute("netdev_add", None).await.expect_err("error");
        let text = e.to_string();
        assert!(
            text.contains("netdev_add") && text.contains("Duplicate ID"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn waits_for_the_matching_device_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = scripted(
            dir.path(),
            vec![
                ("qmp_capabilities", vec![r#"{"return": {}}"#]),
                (
                    "device_del",
                    vec![
                        r#"{"return": {}}"#,
                        r#"{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/nic1/virtio-backend"}}"#,
                        r#"{"event": "DEVICE_DELETED", "data": {"device": "nic1", "path": "/machine/peripheral/nic1"}}"#,
                    ],
                ),
            ],
        );
        let mut q = Qmp::connect(&path, Duration::from_secs(5))
            .await
            .expect("connect");
        q.execute("device_del", Some(json!({"id": "nic1"})))
            .await
            .expect("device_del");
        let e = q
            .wait_event("DEVICE_DELETED", Duration::from_secs(5), |d| {
                d.get("device").and_then(Value::as_str) == Some("nic1")
            })
            .await
            .expect("event");
        assert_eq!(e["data"]["path"], "/machine/peripheral/nic1");
    }

    #[tokio::test]
    async fn a_missing_event_times_out_and_a_closed_socket_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = scripted(
            dir.path(),
            vec![(
                "qmp_capabilities",
                vec![
                    r#"{"return": {}}"#,
                    r#"{"event": "DEVICE_DELETED", "data": {"device": "other"}}"#,
                ],
            )],
        );
        let mut q = Qmp::connect(&path, Duration::from_secs(5))
            .await
            .expect("connect");
        let e = q
            .wait_event("DEVICE_DELETED", Duration::from_millis(200), |d| {
                d.get("device").and_then(Value::as_str) == Some("nic1")
            })
            .await
            .expect_err("no such event");
        assert!(matches!(e, QmpError::Timeout { .. }), "{e}");
        let missing = dir.path().join("nothing.sock");
        let e = Qmp::connect(&missing, Duration::from_secs(1))
            .await
            .expect_err("no socket");
        assert!(e.to_string().contains("nothing.sock"), "{e}");
    }
}
