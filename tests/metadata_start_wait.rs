//! The daemon's start waits (bounded, backing off) for a metadata service
//! that is not answering yet — at boot the agent may start before the primary
//! NIC has its address — and fails at once on an answer that is wrong.

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;
use eni_agent::agent::context::identity_at_start;
use eni_agent::backoff::RetryPolicy;
use eni_agent::config::Config;
use eni_agent::metadata::{MetadataClient, MetadataOptions};
use support::{Reply, Scripted};

fn client(endpoint: String) -> MetadataClient {
    MetadataClient::new(MetadataOptions {
        endpoint,
        require_token: false,
        token_ttl: Duration::from_secs(60),
        timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_attempts: 2,
            deadline: Duration::from_secs(2),
        },
    })
    .expect("client")
}

fn meta(path: &str) -> String {
    format!("/latest/meta-data/{path}")
}

fn config() -> Config {
    Config::from_toml("", "test").expect("empty configuration")
}

#[tokio::test]
async fn a_busy_service_is_waited_for_until_it_answers() {
    let server = Scripted::start().await;
    server.route(Method::PUT, "/latest/api/token", vec![Reply::new(200, "t")]);
    // Each read retries twice by itself; six refusals outlast three reads.
    let mut replies = vec![Reply::new(503, "not yet"); 6];
    replies.push(Reply::new(200, "i-abc"));
    server.on(|r| r.uri.path() == meta("instance-id"), replies);
    server.on(
        |r| r.uri.path() == meta("region-id"),
        vec![Reply::new(200, "cn-hangzhou")],
    );
    server.on(
        |r| r.uri.path() == meta("zone-id"),
        vec![Reply::new(200, "cn-hangzhou-i")],
    );
    let id = identity_at_start(&config(), &client(server.url()), Duration::from_secs(60))
        .await
        .expect("identity once the service answers");
    assert_eq!(
        (
            id.instance_id.as_str(),
            id.region_id.as_str(),
            id.zone_id.as_str()
        ),
        ("i-abc", "cn-hangzhou", "cn-hangzhou-i")
    );
    assert_eq!(server.count(|r| r.uri.path() == meta("instance-id")), 7);
}

#[tokio::test]
async fn an_unreachable_service_is_waited_for_within_the_bound() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let started = Instant::now();
    let err = identity_at_start(
        &config(),
        &client(format!("http://127.0.0.1:{port}")),
        Duration::from_millis(800),
    )
    .await
    .expect_err("nothing listens");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "gave up after {waited:?}"
    );
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
    let text = err.to_string();
    assert!(text.contains(&port.to_string()), "{text}");
    assert!(text.contains("after waiting"), "{text}");
    assert!(text.contains("agent.instance_id"), "{text}");
}

#[tokio::test]
async fn a_wrong_answer_ends_the_start_at_once() {
    let server = Scripted::start().await;
    server.route(Method::PUT, "/latest/api/token", vec![Reply::new(200, "t")]);
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![Reply::new(200, "not an instance id")],
    );
    let err = identity_at_start(&config(), &client(server.url()), Duration::from_secs(60))
        .await
        .expect_err("malformed instance-id");
    assert!(err.to_string().contains("instance-id"), "{err}");
    assert_eq!(server.count(|r| r.uri.path() == meta("instance-id")), 1);
}
