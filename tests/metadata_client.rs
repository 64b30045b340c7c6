//! The metadata client against a scripted local server: hardened-mode
//! tokens, 401 handling, tokenless fallback, 404 as absent, retries and the
//! value formats of every per-MAC key.

mod support;

use std::net::Ipv4Addr;
use std::time::Duration;

use axum::http::Method;
use eni_agent::backoff::RetryPolicy;
use eni_agent::mac::MacAddr;
use eni_agent::metadata::{MetadataClient, MetadataError, MetadataOptions};
use support::{Recorded, Reply, Scripted};

const TOKEN_PATH: &str = "/latest/api/token";
const MAC: &str = "00:16:3e:00:00:02";

fn options(server: &Scripted, require_token: bool, token_ttl: Duration) -> MetadataOptions {
    MetadataOptions {
        endpoint: server.url(),
        require_token,
        token_ttl,
        timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            max_attempts: 4,
            deadline: Duration::from_secs(5),
        },
    }
}

fn client(server: &Scripted, require_token: bool) -> MetadataClient {
    MetadataClient::new(options(server, require_token, Duration::from_secs(21600))).expect("client")
}

fn meta(path: &str) -> String {
    format!("/latest/meta-data/{path}")
}

fn with_token(token: &'static str) -> impl Fn(&Recorded) -> bool + Send + Sync {
    move |r| r.header("x-aliyun-ecs-metadata-token").as_deref() == Some(token)
}

fn is_token_put(r: &Recorded) -> bool {
    r.method == Method::PUT && r.uri.path() == TOKEN_PATH
}

#[tokio::test]
async fn hardened_mode_token_is_fetched_once_and_sent_with_every_read() {
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "tok-A")]);
    server.on(
        |r| r.uri.path() == meta("instance-id") && with_token("tok-A")(r),
        vec![Reply::new(200, "i-abc")],
    );
    server.on(
        |r| r.uri.path() == meta("region-id") && with_token("tok-A")(r),
        vec![Reply::new(200, "cn-hangzhou\n")],
    );
    server.on(
        |r| r.uri.path() == meta("zone-id") && with_token("tok-A")(r),
        vec![Reply::new(200, "cn-hangzhou-i")],
    );
    let c = client(&server, true);
    let id = c.identity().await.expect("identity");
    assert_eq!(
        (
            id.instance_id.as_str(),
            id.region_id.as_str(),
            id.zone_id.as_str()
        ),
        ("i-abc", "cn-hangzhou", "cn-hangzhou-i")
    );
    assert_eq!(c.text("instance-id").await.expect("again"), "i-abc");
    assert_eq!(server.count(is_token_put), 1, "the token is cached");
    let put = server
        .log()
        .into_iter()
        .find(is_token_put)
        .expect("token put");
    assert_eq!(
        put.header("x-aliyun-ecs-metadata-token-ttl-seconds")
            .as_deref(),
        Some("21600")
    );
}

#[tokio::test]
async fn the_token_is_renewed_before_it_expires() {
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        TOKEN_PATH,
        vec![Reply::new(200, "tok-1"), Reply::new(200, "tok-2")],
    );
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![Reply::new(200, "i-abc")],
    );
    let c = MetadataClient::new(options(&server, true, Duration::from_secs(1))).expect("client");
    c.text("instance-id").await.expect("first");
    c.text("instance-id").await.expect("second, same token");
    assert_eq!(server.count(is_token_put), 1);
    tokio::time::sleep(Duration::from_millis(600)).await; // past half the 1 s lifetime
    c.text("instance-id").await.expect("third, renewed token");
    assert_eq!(server.count(is_token_put), 2);
    let last = server.log().pop().expect("last");
    assert_eq!(
        last.header("x-aliyun-ecs-metadata-token").as_deref(),
        Some("tok-2")
    );
}

#[tokio::test]
async fn a_401_fetches_a_new_token_once() {
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        TOKEN_PATH,
        vec![Reply::new(200, "stale"), Reply::new(200, "fresh")],
    );
    server.on(
        |r| r.uri.path() == meta("instance-id") && with_token("stale")(r),
        vec![Reply::new(401, "Unauthorized")],
    );
    server.on(
        |r| r.uri.path() == meta("instance-id") && with_token("fresh")(r),
        vec![Reply::new(200, "i-abc")],
    );
    let c = client(&server, true);
    assert_eq!(c.text("instance-id").await.expect("after re-auth"), "i-abc");
    assert_eq!(server.count(is_token_put), 2);

    // A token that is rejected every time ends in a clear error, not a loop.
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "bad")]);
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![Reply::new(401, "Unauthorized")],
    );
    let err = client(&server, true)
        .text("instance-id")
        .await
        .expect_err("unauthorized");
    assert!(matches!(err, MetadataError::Unauthorized { .. }), "{err}");
    assert_eq!(server.count(is_token_put), 2);
}

#[tokio::test]
async fn without_token_support_reads_fall_back_to_tokenless_unless_required() {
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(404, "Not Found")]);
    server.on(
        |r| {
            r.uri.path() == meta("instance-id") && r.header("x-aliyun-ecs-metadata-token").is_none()
        },
        vec![Reply::new(200, "i-abc")],
    );
    assert_eq!(
        client(&server, false)
            .text("instance-id")
            .await
            .expect("tokenless"),
        "i-abc"
    );

    let err = client(&server, true)
        .text("instance-id")
        .await
        .expect_err("token required");
    assert!(matches!(err, MetadataError::TokenRequired { .. }), "{err}");
    assert!(err.to_string().contains("require_token"), "{err}");

    // Hardened-only service that still gives no token: a 403 explained.
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(403, "Forbidden")]);
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![Reply::new(403, "Forbidden")],
    );
    let err = client(&server, false)
        .text("instance-id")
        .await
        .expect_err("hardened only");
    assert!(matches!(err, MetadataError::HardenedOnly { .. }), "{err}");
    assert!(err.to_string().contains("HTTP 403"), "{err}");
}

#[tokio::test]
async fn busy_answers_are_retried_and_404_means_absent() {
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "t")]);
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![
            Reply::new(429, "slow down"),
            Reply::new(500, "oops"),
            Reply::new(503, "busy"),
            Reply::new(200, "i-abc"),
        ],
    );
    let c = client(&server, true);
    assert_eq!(c.text("instance-id").await.expect("after retries"), "i-abc");
    assert_eq!(server.count(|r| r.uri.path() == meta("instance-id")), 4);
    assert_eq!(c.get("no/such/key").await.expect("404 is absent"), None);
    let err = c.get_required("no/such/key").await.expect_err("required");
    assert!(err.to_string().contains("no/such/key"), "{err}");

    let server = Scripted::start().await;
    server.on(
        |r| r.uri.path() == meta("instance-id"),
        vec![Reply::new(500, "down")],
    );
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "t")]);
    let err = client(&server, true)
        .text("instance-id")
        .await
        .expect_err("gives up");
    assert!(
        matches!(
            err,
            MetadataError::Busy {
                status: 500,
                attempts: 4,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.is_transient());
}

#[tokio::test]
async fn per_mac_keys_are_read_in_their_formats() {
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "t")]);
    let key = |k: &str| meta(&format!("network/interfaces/macs/{MAC}/{k}"));
    let values = [
        ("network-interface-id", "eni-bp1b2c0jvnj0g17b0001"),
        ("primary-ip-address", "192.168.1.10"),
        (
            "private-ipv4s",
            r#"["192.168.1.10","192.168.1.11","192.168.1.12"]"#,
        ),
        ("netmask", "255.255.255.0"),
        ("gateway", "192.168.1.253"),
        ("vswitch-cidr-block", "192.168.1.0/24"),
        ("vpc-cidr-block", "192.168.0.0/16"),
        (
            "ipv6s",
            "[2408:4000:325:a204:1875:217f:184a:e4e,2408:4000:325:a204::2]",
        ),
        ("ipv6-gateway", "2408:4000:325:a204:ffff:ffff:ffff:fff7"),
        ("vswitch-ipv6-cidr-block", "2408:4000:325:a204::/64"),
        ("ipv4-prefixes", "192.168.1.32/28"),
    ];
    for (k, v) in values {
        let path = key(k);
        server.on(move |r| r.uri.path() == path, vec![Reply::new(200, v)]);
    }
    server.on(
        |r| r.uri.path() == meta("network/interfaces/macs/"),
        vec![Reply::new(200, "00:16:3e:00:00:01/\n00:16:3e:00:00:02/")],
    );
    let c = client(&server, true);
    let macs = c.macs().await.expect("listing");
    assert_eq!(macs.len(), 2);
    let mac: MacAddr = MAC.parse().expect("mac");
    assert_eq!(macs[1], mac);
    let f = c.interface(mac).await.expect("facts");
    assert_eq!(
        f.network_interface_id.as_deref(),
        Some("eni-bp1b2c0jvnj0g17b0001")
    );
    assert_eq!(f.primary_ip_address, Some(Ipv4Addr::new(192, 168, 1, 10)));
    assert_eq!(f.private_ipv4s.len(), 3);
    assert_eq!(f.netmask_len, Some(24));
    assert_eq!(f.gateway, Some(Ipv4Addr::new(192, 168, 1, 253)));
    assert_eq!(
        f.vswitch_cidr_block.map(|n| n.to_string()).as_deref(),
        Some("192.168.1.0/24")
    );
    assert_eq!(f.vpc_cidr_block.map(|n| n.prefix_len()), Some(16));
    assert_eq!(f.ipv6s.len(), 2);
    assert_eq!(
        f.ipv6_gateway.map(|g| g.to_string()).as_deref(),
        Some("2408:4000:325:a204:ffff:ffff:ffff:fff7")
    );
    assert_eq!(f.vswitch_ipv6_cidr_block.map(|n| n.prefix_len()), Some(64));
    assert_eq!(f.ipv4_prefixes.len(), 1);
    assert!(f.ipv6_prefixes.is_empty(), "404 means absent");
}

#[tokio::test]
async fn absent_ipv6_is_not_a_failure_and_malformed_values_are_named() {
    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "t")]);
    let p = meta(&format!("network/interfaces/macs/{MAC}/private-ipv4s"));
    server.on(
        move |r| r.uri.path() == p,
        vec![Reply::new(200, "192.168.1.10")],
    );
    let c = client(&server, true);
    let err = c
        .interface(MAC.parse().expect("mac"))
        .await
        .expect_err("not a JSON array");
    let msg = err.to_string();
    assert!(
        msg.contains("private-ipv4s") && msg.contains("192.168.1.10"),
        "{msg}"
    );

    let server = Scripted::start().await;
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(200, "t")]);
    let facts = client(&server, true)
        .interface(MAC.parse().expect("mac"))
        .await
        .expect("all keys absent");
    assert!(facts.ipv6s.is_empty() && facts.gateway.is_none());
}

#[tokio::test]
async fn an_unreachable_service_is_a_transient_error_naming_the_endpoint() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let opts = MetadataOptions {
        endpoint: format!("http://127.0.0.1:{port}"),
        require_token: false,
        token_ttl: Duration::from_secs(60),
        timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            max_attempts: 2,
            deadline: Duration::from_secs(2),
        },
    };
    let err = MetadataClient::new(opts)
        .expect("client")
        .text("instance-id")
        .await
        .expect_err("unreachable");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains(&port.to_string()), "{err}");
}

#[test]
fn endpoint_is_overridable_by_the_environment() {
    let cfg = eni_agent::config::MetadataConfig::default();
    assert_eq!(
        MetadataOptions::from_config(&cfg, |_| None).endpoint,
        "http://100.100.100.200"
    );
    let env =
        |k: &str| (k == "ENI_AGENT_METADATA_ENDPOINT").then(|| "http://127.0.0.1:1".to_owned());
    assert_eq!(
        MetadataOptions::from_config(&cfg, env).endpoint,
        "http://127.0.0.1:1"
    );
    assert!(
        MetadataClient::new(MetadataOptions {
            endpoint: "not a url".into(),
            ..MetadataOptions::from_config(&cfg, |_| None)
        })
        .is_err()
    );
}

// --- Hostile identity values never reach a URL ---

#[tokio::test]
async fn identity_values_must_have_their_documented_shape() {
    for (key, bad) in [
        ("region-id", "x@127.0.0.1:18443#"),
        ("region-id", "cn-hangzhou.evil.example"),
        ("instance-id", "i-abc/../x"),
        ("zone-id", "cn-hangzhou-i?x=1"),
    ] {
        let server = Scripted::start().await;
        for (k, v) in [
            ("instance-id", "i-abc"),
            ("region-id", "cn-hangzhou"),
            ("zone-id", "cn-hangzhou-i"),
        ] {
            let value = if k == key { bad } else { v };
            let path = meta(k);
            server.on(
                move |r| r.uri.path() == path,
                vec![Reply::new(200, value.to_owned())],
            );
        }
        server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(404, "")]);
        let err = client(&server, false)
            .identity()
            .await
            .expect_err(bad)
            .to_string();
        assert!(err.contains(key), "{key}={bad}: {err}");
        assert!(err.contains("not a valid"), "{key}={bad}: {err}");
    }
    // The VPC id too.
    let server = Scripted::start().await;
    server.on(
        |r| r.uri.path() == meta("vpc-id"),
        vec![Reply::new(200, "vsw-notavpc")],
    );
    server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(404, "")]);
    let err = client(&server, false).vpc_id().await.expect_err("vsw");
    assert!(err.to_string().contains("VPC id"), "{err}");
}

#[tokio::test]
async fn per_mac_ids_must_have_their_documented_shape() {
    for (key, bad, kind) in [
        ("network-interface-id", "eni-a\nmanaged=0", "ENI id"),
        ("vswitch-id", "vsw-a/../b", "vSwitch id"),
    ] {
        let server = Scripted::start().await;
        let path = meta(&format!("network/interfaces/macs/{MAC}/{key}"));
        server.on(
            move |r| r.uri.path() == path,
            vec![Reply::new(200, bad.to_owned())],
        );
        server.route(Method::PUT, TOKEN_PATH, vec![Reply::new(404, "")]);
        let err = client(&server, false)
            .interface(MAC.parse::<MacAddr>().expect("mac"))
            .await
            .expect_err(bad)
            .to_string();
        assert!(err.contains(key) && err.contains(kind), "{key}: {err}");
    }
}
