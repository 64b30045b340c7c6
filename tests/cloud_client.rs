//! The ECS client against a scripted local server: request shape, retries,
//! backoff, `x-acs-retry-after`, deadlines, error decoding, pagination.

mod support;

use std::time::{Duration, Instant};

use axum::http::Method;
use eni_agent::backoff::{RetryPolicy, ThrottleBackoff};
use eni_agent::cloud::ecs::{
    AttachNetworkInterface, DescribeNetworkInterfaceAttribute, DescribeNetworkInterfaces, EniStatus,
};
use eni_agent::cloud::{CloudError, EcsClient, EcsOptions, ErrorClass, SignatureVersion};
use eni_agent::config::ApiConfig;
use eni_agent::credentials::{CredentialProvider, Credentials};
use eni_agent::secret::Secret;
use support::{Reply, Scripted};

const SECRET: &str = "test-access-key-secret-value";

fn provider(token: Option<&str>) -> CredentialProvider {
    CredentialProvider::Static {
        credentials: Credentials {
            access_key_id: "LTAItest".into(),
            access_key_secret: Secret::new(SECRET),
            security_token: token.map(Secret::new),
            expiration: None,
        },
        origin: "test".into(),
    }
}

fn client_with(
    server: &Scripted,
    signature: SignatureVersion,
    retry: RetryPolicy,
    token: Option<&str>,
) -> EcsClient {
    let options = EcsOptions {
        endpoint: server.url(),
        region: "cn-hangzhou".into(),
        signature,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(500),
        retry,
        throttle: ThrottleBackoff {
            min_delay: Duration::ZERO,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
    };
    EcsClient::new(options, provider(token)).expect("client")
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_attempts: 5,
        deadline: Duration::from_secs(10),
    }
}

fn error_body(code: &str, request_id: &str) -> String {
    format!(
        r#"{{"RequestId":"{request_id}","HostId":"ecs-vpc.cn-hangzhou.aliyuncs.com","Code":"{code}","Message":"msg for {code}","Recommend":"https://api.aliyun.com/troubleshoot?q={code}"}}"#
    )
}

const DESCRIBE_OK: &str = r#"{"RequestId":"REQ-OK","NetworkInterfaceId":"eni-1","Status":"InUse","MacAddress":"00:16:3e:00:00:01",
    "PrivateIpAddress":"10.0.0.5","QueueNumber":4,"InstanceId":"i-1",
    "PrivateIpSets":{"PrivateIpSet":[{"PrivateIpAddress":"10.0.0.5","Primary":true},{"PrivateIpAddress":"10.0.0.6","Primary":false}]}}"#;

fn is_action(action: &'static str) -> impl Fn(&support::Recorded) -> bool + Send + Sync {
    move |r| {
        r.header("x-acs-action").as_deref() == Some(action)
            || r.query("Action").as_deref() == Some(action)
    }
}

#[tokio::test]
async fn throttled_twice_then_ok_takes_three_attempts_with_three_nonces() {
    for signature in [SignatureVersion::V3, SignatureVersion::V2] {
        let server = Scripted::start().await;
        server.on(
            is_action("DescribeNetworkInterfaceAttribute"),
            vec![
                Reply::new(400, error_body("Throttling.User", "REQ-T1")),
                Reply::new(400, error_body("Throttling", "REQ-T2")),
                Reply::new(200, DESCRIBE_OK),
            ],
        );
        let client = client_with(&server, signature, fast_retry(), None);
        let resp = client
            .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
            .await
            .expect("succeeds on the third attempt");
        assert_eq!(resp.attempts, 3);
        assert_eq!(resp.request_id, "REQ-OK");
        assert_eq!(resp.body.status, EniStatus::InUse);
        assert_eq!(resp.body.queue_number, Some(4));
        let log = server.log();
        assert_eq!(log.len(), 3);
        let nonces: std::collections::HashSet<String> = log
            .iter()
            .map(|r| {
                r.header("x-acs-signature-nonce")
                    .or_else(|| r.query("SignatureNonce"))
                    .expect("nonce")
            })
            .collect();
        assert_eq!(
            nonces.len(),
            3,
            "{signature:?}: every attempt is signed with a fresh nonce"
        );
        let signatures: std::collections::HashSet<String> = log
            .iter()
            .map(|r| {
                r.header("authorization")
                    .or_else(|| r.query("Signature"))
                    .expect("signature")
            })
            .collect();
        assert_eq!(
            signatures.len(),
            3,
            "{signature:?}: every attempt is signed anew"
        );
    }
}

#[tokio::test]
async fn a_permanent_error_is_sent_once_and_explained() {
    let server = Scripted::start().await;
    server.on(
        is_action("AttachNetworkInterface"),
        vec![Reply::new(
            403,
            error_body("EniPerInstanceLimitExceeded", "REQ-LIMIT"),
        )],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .attach_network_interface(&AttachNetworkInterface {
            network_interface_id: "eni-1".into(),
            instance_id: "i-1".into(),
            network_card_index: None,
        })
        .await
        .expect_err("permanent");
    assert_eq!(server.log().len(), 1);
    assert_eq!(err.class(), ErrorClass::Permanent);
    assert_eq!(err.code(), Some("EniPerInstanceLimitExceeded"));
    let msg = err.to_string();
    assert!(msg.contains("REQ-LIMIT"), "RequestId in the message: {msg}");
    assert!(
        msg.contains("detach an ENI") && msg.contains("larger instance type"),
        "remedy in the message: {msg}"
    );
    let api = err.api().expect("api error");
    assert_eq!(api.http_status, 403);
    assert_eq!(api.host_id, "ecs-vpc.cn-hangzhou.aliyuncs.com");
    assert!(api.recommend.contains("troubleshoot"));
}

#[tokio::test]
async fn wait_for_state_errors_are_not_retried_by_the_client() {
    let server = Scripted::start().await;
    server.on(
        is_action("AttachNetworkInterface"),
        vec![Reply::new(
            400,
            error_body("InvalidOperation.InvalidEniState", "REQ-S"),
        )],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .attach_network_interface(&AttachNetworkInterface::default())
        .await
        .expect_err("state");
    assert_eq!(err.class(), ErrorClass::WaitForState);
    assert_eq!(server.log().len(), 1);
}

#[tokio::test]
async fn retry_after_header_is_honoured() {
    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaceAttribute"),
        vec![
            Reply::new(400, error_body("Throttling.Api", "REQ-RA"))
                .header("x-acs-retry-after", "400"),
            Reply::new(200, DESCRIBE_OK),
        ],
    );
    // With a zero backoff, only the header can make the client wait.
    let retry = RetryPolicy {
        base_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        max_attempts: 3,
        deadline: Duration::from_secs(10),
    };
    let client = client_with(&server, SignatureVersion::V3, retry, None);
    let started = Instant::now();
    client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("ok");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400),
        "waited {elapsed:?}, the service asked for 400 ms"
    );
    assert!(elapsed < Duration::from_secs(3), "waited {elapsed:?}");
}

#[tokio::test]
async fn the_deadline_and_attempt_limit_bound_retries() {
    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaceAttribute"),
        vec![Reply::new(503, error_body("ServiceUnavailable", "REQ-U"))],
    );
    let retry = RetryPolicy {
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
        max_attempts: 100,
        deadline: Duration::from_millis(300),
    };
    let client = client_with(&server, SignatureVersion::V3, retry, None);
    let started = Instant::now();
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("gives up");
    assert!(started.elapsed() < Duration::from_secs(2));
    let CloudError::RetriesExhausted { attempts, .. } = &err else {
        panic!("expected RetriesExhausted, got {err}")
    };
    assert!(*attempts > 1 && *attempts < 100, "attempts {attempts}");
    assert!(err.to_string().contains("REQ-U"), "{err}");

    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaceAttribute"),
        vec![Reply::new(500, error_body("InternalError", "REQ-I"))],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("gives up");
    assert_eq!(server.log().len(), 5, "max_attempts = 5");
    assert!(
        matches!(err, CloudError::RetriesExhausted { attempts: 5, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn transport_errors_and_timeouts_are_retried() {
    // Nothing listens on this port: connection refused every time.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let options = EcsOptions {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_millis(200),
        request_timeout: Duration::from_millis(200),
        retry: RetryPolicy {
            max_attempts: 3,
            ..fast_retry()
        },
        throttle: ThrottleBackoff {
            min_delay: Duration::ZERO,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
    };
    let client = EcsClient::new(options, provider(None)).expect("client");
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("refused");
    let CloudError::RetriesExhausted {
        attempts: 3, last, ..
    } = &err
    else {
        panic!("expected 3 attempts, got {err}")
    };
    assert!(matches!(**last, CloudError::Transport { .. }), "{last}");

    // A response slower than the request timeout, then a fast one.
    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaceAttribute"),
        vec![
            Reply::new(200, DESCRIBE_OK).delayed(Duration::from_secs(3)),
            Reply::new(200, DESCRIBE_OK),
        ],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let resp = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("ok");
    assert_eq!(resp.attempts, 2);
}

#[tokio::test]
async fn requests_are_posts_to_root_with_parameters_in_the_query() {
    let server = Scripted::start().await;
    server.on(|_| true, vec![Reply::new(200, DESCRIBE_OK)]);
    let client = client_with(
        &server,
        SignatureVersion::V3,
        fast_retry(),
        Some("sts-token-value"),
    );
    client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("ok");
    let r = &server.log()[0];
    assert_eq!(r.method, Method::POST);
    assert_eq!(r.uri.path(), "/");
    assert!(r.body.is_empty());
    assert_eq!(r.query("NetworkInterfaceId").as_deref(), Some("eni-1"));
    assert_eq!(r.query("RegionId").as_deref(), Some("cn-hangzhou"));
    assert_eq!(r.header("x-acs-version").as_deref(), Some("2014-05-26"));
    assert_eq!(r.header("host"), Some(server.addr.to_string()));
    assert_eq!(
        r.header("x-acs-security-token").as_deref(),
        Some("sts-token-value")
    );
    let auth = r.header("authorization").expect("authorization");
    assert!(
        auth.starts_with("ACS3-HMAC-SHA256 Credential=LTAItest,SignedHeaders=host;x-acs-action;"),
        "{auth}"
    );
    assert!(auth.contains("x-acs-security-token"), "{auth}");

    let server = Scripted::start().await;
    server.on(|_| true, vec![Reply::new(200, DESCRIBE_OK)]);
    let client = client_with(
        &server,
        SignatureVersion::V2,
        fast_retry(),
        Some("sts-token-value"),
    );
    client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("ok");
    let r = &server.log()[0];
    assert_eq!(r.method, Method::POST);
    for (k, v) in [
        ("Action", "DescribeNetworkInterfaceAttribute"),
        ("Version", "2014-05-26"),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SecurityToken", "sts-token-value"),
    ] {
        assert_eq!(r.query(k).as_deref(), Some(v), "{k}");
    }
    assert!(r.header("authorization").is_none());
}

#[tokio::test]
async fn bad_answers_are_clear_errors() {
    let server = Scripted::start().await;
    server.on(
        |_| true,
        vec![Reply::new(200, "<html>captive portal</html>")],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("not json");
    assert!(matches!(err, CloudError::InvalidResponse { .. }), "{err}");
    assert_eq!(server.log().len(), 1, "a malformed success is not retried");

    let server = Scripted::start().await;
    server.on(
        |_| true,
        vec![Reply::new(
            200,
            r#"{"RequestId":"R","NetworkInterfaceId":"eni-other"}"#,
        )],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("wrong eni");
    assert!(err.to_string().contains("eni-other"), "{err}");

    let server = Scripted::start().await;
    server.on(
        |_| true,
        vec![
            Reply::new(502, "Bad Gateway").header("x-acs-request-id", "REQ-GW"),
            Reply::new(200, DESCRIBE_OK),
        ],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let resp = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("retried");
    assert_eq!(resp.attempts, 2, "a 5xx without an API body is retried");
}

#[tokio::test]
async fn describe_network_interfaces_follows_next_token_to_the_end() {
    let server = Scripted::start().await;
    let page = |token: &str, id: &str| {
        format!(
            r#"{{"RequestId":"REQ-{id}","NextToken":"{token}","NetworkInterfaceSets":{{"NetworkInterfaceSet":[{{"NetworkInterfaceId":"{id}","Status":"Available"}}]}}}}"#
        )
    };
    server.on(
        |r| r.query("NextToken").is_none(),
        vec![Reply::new(200, page("t1", "eni-a"))],
    );
    server.on(
        |r| r.query("NextToken").as_deref() == Some("t1"),
        vec![Reply::new(200, page("t2", "eni-b"))],
    );
    server.on(
        |r| r.query("NextToken").as_deref() == Some("t2"),
        vec![Reply::new(200, page("", "eni-c"))],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let request = DescribeNetworkInterfaces {
        instance_id: Some("i-1".into()),
        status: Some("Available".into()),
        ..Default::default()
    };
    let (enis, request_ids) = client
        .describe_network_interfaces(&request)
        .await
        .expect("ok");
    let ids: Vec<&str> = enis
        .iter()
        .map(|e| e.network_interface_id.as_str())
        .collect();
    assert_eq!(ids, ["eni-a", "eni-b", "eni-c"]);
    assert_eq!(request_ids, ["REQ-eni-a", "REQ-eni-b", "REQ-eni-c"]);
    assert!(
        server
            .log()
            .iter()
            .all(|r| r.query("InstanceId").as_deref() == Some("i-1"))
    );
}

#[test]
fn endpoint_defaults_to_the_vpc_endpoint_and_the_environment_overrides_it() {
    let config = ApiConfig::default();
    let none = |_: &str| None;
    assert_eq!(
        EcsOptions::from_config(&config, &region("cn-beijing"), none).endpoint,
        "https://ecs-vpc.cn-beijing.aliyuncs.com"
    );
    let configured = ApiConfig {
        endpoint: Some("http://127.0.0.1:9".into()),
        ..ApiConfig::default()
    };
    assert_eq!(
        EcsOptions::from_config(&configured, &region("cn-r"), none).endpoint,
        "http://127.0.0.1:9"
    );
    let env = |k: &str| (k == "ENI_AGENT_ECS_ENDPOINT").then(|| "http://127.0.0.1:10".to_owned());
    assert_eq!(
        EcsOptions::from_config(&configured, &region("cn-r"), env).endpoint,
        "http://127.0.0.1:10"
    );
}

/// `Throttling*` answers wait at least the throttle floor (5xx ones use the
/// ordinary, here zero, backoff) and do not use up `max_attempts`: under a
/// budget shared by a fleet only the deadline bounds them.
#[tokio::test]
async fn throttles_use_their_own_backoff_and_only_the_deadline_bounds_them() {
    let server = Scripted::start().await;
    let mut replies: Vec<Reply> = (0..4)
        .map(|i| Reply::new(400, error_body("Throttling.User", &format!("REQ-T{i}"))))
        .collect();
    replies.push(Reply::new(503, error_body("ServiceUnavailable", "REQ-U")));
    replies.push(Reply::new(200, DESCRIBE_OK));
    server.on(is_action("DescribeNetworkInterfaceAttribute"), replies);
    let options = EcsOptions {
        endpoint: server.url(),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            base_delay: Duration::ZERO,
            max_delay: Duration::ZERO,
            max_attempts: 2,
            deadline: Duration::from_secs(10),
        },
        throttle: ThrottleBackoff {
            min_delay: Duration::from_millis(60),
            base_delay: Duration::from_millis(80),
            max_delay: Duration::from_millis(80),
        },
    };
    let client = EcsClient::new(options, provider(None)).expect("client");
    let started = Instant::now();
    let resp = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("four throttles and one 503 fit in max_attempts = 2");
    let elapsed = started.elapsed();
    assert_eq!(resp.attempts, 6);
    assert!(
        elapsed >= Duration::from_millis(240),
        "four throttle waits of at least 60 ms each: {elapsed:?}"
    );
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");

    // max_attempts = 1 still means "never retry", throttles included.
    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaceAttribute"),
        vec![Reply::new(400, error_body("Throttling.User", "REQ-T"))],
    );
    let retry = RetryPolicy {
        max_attempts: 1,
        ..fast_retry()
    };
    let err = client_with(&server, SignatureVersion::V3, retry, None)
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("not retried");
    assert_eq!(err.code(), Some("Throttling.User"));
    assert_eq!(server.log().len(), 1);
}

// --- Hostile answers: secrets in echoed messages, bounds, ids, endpoints ---

fn region(r: &str) -> eni_agent::ids::RegionId {
    r.parse().expect("region")
}

/// An STS token with characters that every encoding changes.
const STS: &str = "CAISsts+Token/Value==tail";

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).expect("utf8")
}

/// A server that answers every call `SignatureDoesNotMatch` echoing what it
/// received the way Alibaba's gateway does: V2 the string to sign (the query
/// encoded twice, SecurityToken and AccessKeyId in it), V3 the string to
/// sign and the canonical request (x-acs-security-token in it), plus the raw
/// query and the Authorization header for good measure.
async fn echoing_server() -> String {
    use axum::body::Body;
    use axum::http::{Request, Response};
    let app = axum::Router::new().fallback(|req: Request<Body>| async move {
        let query = req.uri().query().unwrap_or("").to_owned();
        let pairs: Vec<(String, String)> = query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), percent_decode(v)))
            .collect();
        let v2 = eni_agent::cloud::sign_v2::string_to_sign(
            "POST",
            pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let mut headers: Vec<String> = req
            .headers()
            .iter()
            .filter(|(k, _)| k.as_str().starts_with("x-acs-") || k.as_str() == "host")
            .map(|(k, v)| format!("{}:{}", k, v.to_str().unwrap_or("")))
            .collect();
        headers.sort();
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let message = format!(
            "Specified signature is not matched with our calculation. server string to sign is:{v2} canonical request is:POST\n/\n{query}\n{}\n\nAuthorization: {auth} url: /?{query}\u{1b}[2J",
            headers.join("\n")
        );
        let body = serde_json::json!({
            "RequestId": "REQ-SIG",
            "Code": "SignatureDoesNotMatch",
            "Message": message,
            "Recommend": format!("https://api.example/?q={query}"),
        });
        Response::builder()
            .status(400)
            .body(Body::from(body.to_string()))
            .expect("response")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn sts_client(endpoint: String, signature: SignatureVersion) -> EcsClient {
    let options = EcsOptions {
        endpoint,
        region: "cn-hangzhou".into(),
        signature,
        connect_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_millis(500),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_attempts: 2,
            deadline: Duration::from_secs(5),
        },
        throttle: ThrottleBackoff::default(),
    };
    let provider = CredentialProvider::Static {
        credentials: Credentials {
            access_key_id: "STS.NUkeyid0001".into(),
            access_key_secret: Secret::new(SECRET),
            security_token: Some(Secret::new(STS)),
            expiration: None,
        },
        origin: "test".into(),
    };
    EcsClient::new(options, provider).expect("client")
}

fn assert_clean(text: &str, what: &str) {
    for leak in [
        STS,
        "CAISsts",
        "Token%2FValue",
        "Token%252FValue",
        "STS.NUkeyid0001",
        SECRET,
    ] {
        assert!(!text.contains(leak), "{what} leaks {leak:?}:\n{text}");
    }
    assert!(
        !text.contains("Signature=") || text.contains("Signature=***"),
        "{what} leaks a signature:\n{text}"
    );
    assert!(
        !text.chars().any(|c| c.is_control()),
        "{what} has control characters:\n{text:?}"
    );
}

#[tokio::test]
async fn echoed_strings_to_sign_never_carry_the_sts_token_v2_and_v3() {
    let url = echoing_server().await;
    for signature in [SignatureVersion::V2, SignatureVersion::V3] {
        let err = sts_client(url.clone(), signature)
            .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
            .await
            .expect_err("signature mismatch");
        assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
        let api = err.api().expect("api error");
        assert!(
            api.message.contains("server string to sign is"),
            "the message is kept, only scrubbed: {}",
            api.message
        );
        assert!(
            api.message.chars().count() <= eni_agent::secret::MAX_MESSAGE_CHARS + 1,
            "bounded: {}",
            api.message.len()
        );
        for (what, text) in [
            ("Display", err.to_string()),
            ("Debug", format!("{err:?}")),
            ("message", api.message.clone()),
            ("recommend", api.recommend.clone()),
        ] {
            assert_clean(&text, &format!("{signature:?} {what}"));
        }
    }
}

#[tokio::test]
async fn transport_errors_do_not_carry_the_signed_url() {
    // A port nobody listens on: reqwest's error names the URL, whose query
    // (V2) holds the token and the signature.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let err = sts_client(format!("http://127.0.0.1:{port}"), SignatureVersion::V2)
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("nobody listens");
    assert_clean(&err.to_string(), "transport error");
    assert_clean(&format!("{err:?}"), "transport error Debug");
}

#[tokio::test]
async fn pagination_is_bounded_in_pages_bytes_and_enis() {
    use eni_agent::cloud::ecs::describe_interfaces_limits as limits;
    // Endless distinct NextTokens.
    let server = Scripted::start().await;
    let page = |token: &str, ids: &[String], pad: usize| {
        let set: Vec<String> = ids
            .iter()
            .map(|id| format!(r#"{{"NetworkInterfaceId":"{id}","Status":"Available"}}"#))
            .collect();
        format!(
            r#"{{"RequestId":"R","NextToken":"{token}","Junk":"{}","NetworkInterfaceSets":{{"NetworkInterfaceSet":[{}]}}}}"#,
            "x".repeat(pad),
            set.join(",")
        )
    };
    let replies: Vec<Reply> = (0..limits::MAX_PAGES + 5)
        .map(|n| Reply::new(200, page(&format!("t{n}"), &[format!("eni-p{n}")], 0)))
        .collect();
    server.on(is_action("DescribeNetworkInterfaces"), replies);
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interfaces(&DescribeNetworkInterfaces::default())
        .await
        .expect_err("endless pages");
    assert!(err.to_string().contains("pages"), "{err}");
    assert_eq!(server.log().len(), limits::MAX_PAGES);

    // Pages just under the per-page limit: the total stops it.
    let server = Scripted::start().await;
    let big = limits::MAX_PAGE_BYTES - 4096;
    let replies: Vec<Reply> = (0..20)
        .map(|n| Reply::new(200, page(&format!("t{n}"), &[format!("eni-b{n}")], big)))
        .collect();
    server.on(is_action("DescribeNetworkInterfaces"), replies);
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interfaces(&DescribeNetworkInterfaces::default())
        .await
        .expect_err("too many bytes");
    assert!(err.to_string().contains("larger than"), "{err}");
    assert!(server.log().len() <= limits::MAX_TOTAL_BYTES / big + 1);

    // One page over the per-page limit is refused, not buffered.
    let server = Scripted::start().await;
    server.on(
        is_action("DescribeNetworkInterfaces"),
        vec![Reply::new(
            200,
            page("", &["eni-a".into()], limits::MAX_PAGE_BYTES + 10),
        )],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interfaces(&DescribeNetworkInterfaces::default())
        .await
        .expect_err("page too large");
    assert!(err.to_string().contains("larger than"), "{err}");

    // More ENIs than the caller allows.
    let server = Scripted::start().await;
    let ids: Vec<String> = (0..5).map(|n| format!("eni-n{n}")).collect();
    server.on(
        is_action("DescribeNetworkInterfaces"),
        vec![Reply::new(200, page("", &ids, 0))],
    );
    let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
    let err = client
        .describe_network_interfaces(&DescribeNetworkInterfaces {
            max_items: Some(4),
            ..Default::default()
        })
        .await
        .expect_err("too many ENIs");
    assert!(
        err.to_string().contains("more than 4 network interfaces"),
        "{err}"
    );
}

#[tokio::test]
async fn a_listed_eni_id_of_the_wrong_shape_is_refused() {
    for bad in [
        "eni-x\\nmatch-device=interface-name:eth0",
        "eni-a/../b",
        "i-123",
        "",
    ] {
        let server = Scripted::start().await;
        server.on(
            is_action("DescribeNetworkInterfaces"),
            vec![Reply::new(
                200,
                format!(
                    r#"{{"RequestId":"R","NextToken":"","NetworkInterfaceSets":{{"NetworkInterfaceSet":[{{"NetworkInterfaceId":"{bad}","Status":"Available"}}]}}}}"#
                ),
            )],
        );
        let client = client_with(&server, SignatureVersion::V3, fast_retry(), None);
        let err = client
            .describe_network_interfaces(&DescribeNetworkInterfaces::default())
            .await
            .expect_err(bad);
        let text = err.to_string();
        assert!(
            text.contains("NetworkInterfaceId") && text.contains("ENI id"),
            "{bad}: {text}"
        );
        assert!(!text.contains('\n'), "{text:?}");
    }
}

#[test]
fn endpoints_and_regions_that_could_redirect_signed_requests_are_refused() {
    for endpoint in [
        "https://x@127.0.0.1:18443",
        "https://user:pw@ecs-vpc.cn-hangzhou.aliyuncs.com",
        "https://127.0.0.1:18443/#",
        "https://127.0.0.1:18443#frag",
        "https://127.0.0.1:18443/?a=b",
        "https://127.0.0.1:18443/path",
        "ftp://127.0.0.1",
    ] {
        let options = EcsOptions {
            endpoint: endpoint.into(),
            ..EcsOptions::from_config(&ApiConfig::default(), &region("cn-hangzhou"), |_| None)
        };
        let err = EcsClient::new(options, provider(None)).expect_err(endpoint);
        assert!(
            err.to_string().contains("ECS endpoint"),
            "{endpoint}: {err}"
        );
    }
    // The metadata service's region-id goes into the default endpoint's host.
    for bad in [
        "x@127.0.0.1:18443#",
        "cn-hangzhou.evil.example",
        "cn hangzhou",
        "",
    ] {
        assert!(bad.parse::<eni_agent::ids::RegionId>().is_err(), "{bad}");
        let options = EcsOptions {
            region: bad.into(),
            ..EcsOptions::from_config(&ApiConfig::default(), &region("cn-hangzhou"), |_| None)
        };
        let err = EcsClient::new(options, provider(None)).expect_err(bad);
        assert!(err.to_string().contains("region id"), "{bad}: {err}");
    }
}
