//! The credential chain: environment, file, instance RAM role (discovered,
//! refreshed before expiry, used as STS by the ECS client), and redaction of
//! every secret from Debug output, errors and logs.

mod support;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::http::Method;
use eni_agent::backoff::{RetryPolicy, ThrottleBackoff};
use eni_agent::cloud::ecs::DescribeNetworkInterfaceAttribute;
use eni_agent::cloud::{EcsClient, EcsOptions, SignatureVersion};
use eni_agent::config::CredentialsConfig;
use eni_agent::credentials::{CredentialProvider, CredentialsError};
use eni_agent::metadata::{MetadataClient, MetadataOptions};
use support::{Reply, Scripted};

const ROLES: &str = "/latest/meta-data/ram/security-credentials/";
const ROLE_PATH: &str = "/latest/meta-data/ram/security-credentials/EniAgentRole";
const AK_SECRET: &str = "ak-secret-5f2b9c";
const STS_TOKEN: &str = "sts-token-8d1e77";
const MD_TOKEN: &str = "metadata-token-4c3a";

fn role_document(secret: &str, token: &str, expires_in: Duration) -> String {
    let exp = humantime::format_rfc3339_seconds(SystemTime::now() + expires_in);
    format!(
        r#"{{"AccessKeyId":"STS.key","AccessKeySecret":"{secret}","Expiration":"{exp}","SecurityToken":"{token}","LastUpdated":"2024-11-08T03:44:50Z","Code":"Success"}}"#
    )
}

fn metadata(server: &Scripted) -> Arc<MetadataClient> {
    Arc::new(
        MetadataClient::new(MetadataOptions {
            endpoint: server.url(),
            require_token: false,
            token_ttl: Duration::from_secs(21600),
            timeout: Duration::from_millis(500),
            retry: RetryPolicy {
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_attempts: 3,
                deadline: Duration::from_secs(2),
            },
        })
        .expect("metadata client"),
    )
}

fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
    move |k| {
        vars.iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| (*v).to_owned())
    }
}

fn credentials_file(mode: u32) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp");
    writeln!(
        f,
        "[default]\naccess_key_id = LTAIfile\naccess_key_secret = {AK_SECRET}"
    )
    .expect("write");
    std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
    f
}

#[tokio::test]
async fn the_chain_prefers_environment_then_file_then_ram_role() {
    let server = Scripted::start().await;
    let file = credentials_file(0o600);
    let with_file = CredentialsConfig {
        file: Some(file.path().to_owned()),
        ..Default::default()
    };
    let vars = [
        ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIenv"),
        ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", AK_SECRET),
    ];

    let p = CredentialProvider::resolve(&with_file, env(&vars), metadata(&server)).expect("env");
    assert_eq!(
        p.credentials().await.expect("creds").access_key_id,
        "LTAIenv"
    );

    let p = CredentialProvider::resolve(&with_file, env(&[]), metadata(&server)).expect("file");
    assert_eq!(
        p.credentials().await.expect("creds").access_key_id,
        "LTAIfile"
    );
    assert!(p.origin().contains(&file.path().display().to_string()));

    let p = CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
        .expect("role");
    assert!(matches!(p, CredentialProvider::RamRole(_)));
    assert_eq!(
        server.log().len(),
        0,
        "resolving the chain makes no request"
    );

    // A named file that is absent passes the turn to the RAM role; one that
    // is there but malformed is an error.
    let dir = tempfile::tempdir().expect("tempdir");
    let absent = CredentialsConfig {
        file: Some(dir.path().join("absent")),
        ..Default::default()
    };
    let p = CredentialProvider::resolve(&absent, env(&[]), metadata(&server))
        .expect("an absent file falls through");
    assert!(
        matches!(p, CredentialProvider::RamRole(_)),
        "{}",
        p.origin()
    );
    let malformed = dir.path().join("malformed");
    std::fs::write(&malformed, "[default]\naccess_key_id\n").expect("write");
    std::fs::set_permissions(&malformed, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let err = CredentialProvider::resolve(
        &CredentialsConfig {
            file: Some(malformed.clone()),
            ..Default::default()
        },
        env(&[]),
        metadata(&server),
    )
    .expect_err("malformed file");
    assert!(matches!(err, CredentialsError::File { .. }), "{err}");

    let open = credentials_file(0o644);
    let err = CredentialProvider::resolve(
        &CredentialsConfig {
            file: Some(open.path().to_owned()),
            ..Default::default()
        },
        env(&[]),
        metadata(&server),
    )
    .expect_err("world-readable file");
    assert!(
        matches!(err, CredentialsError::FilePermissions { .. }),
        "{err}"
    );
}

#[tokio::test]
async fn ram_role_is_discovered_and_refreshed_before_it_expires() {
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        "/latest/api/token",
        vec![Reply::new(200, MD_TOKEN)],
    );
    server.route(Method::GET, ROLES, vec![Reply::new(200, "EniAgentRole")]);
    server.route(
        Method::GET,
        ROLE_PATH,
        vec![
            // First credentials are already inside the 3-minute margin...
            Reply::new(
                200,
                role_document("secret-1", "token-1", Duration::from_secs(120)),
            ),
            // ...so the next call refreshes; these last an hour.
            Reply::new(
                200,
                role_document("secret-2", "token-2", Duration::from_secs(3600)),
            ),
        ],
    );
    let p = CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
        .expect("role");
    let first = p.credentials().await.expect("first");
    assert_eq!(
        first
            .security_token
            .as_ref()
            .map(|t| t.expose().to_owned())
            .as_deref(),
        Some("token-1")
    );
    let second = p.credentials().await.expect("second");
    assert_eq!(
        second.access_key_secret.expose(),
        "secret-2",
        "refreshed inside the margin"
    );
    let third = p.credentials().await.expect("third");
    assert_eq!(third.access_key_secret.expose(), "secret-2");
    assert_eq!(
        server.count(|r| r.uri.path() == ROLE_PATH),
        2,
        "cached while far from expiry"
    );
    assert_eq!(
        server.count(|r| r.uri.path() == ROLES),
        1,
        "the role is discovered once"
    );
}

#[tokio::test]
async fn a_ram_role_failure_is_explained() {
    let server = Scripted::start().await;
    server.route(Method::GET, ROLES, vec![Reply::new(404, "")]);
    let p = CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
        .expect("role");
    let err = p.credentials().await.expect_err("no role");
    assert!(matches!(err, CredentialsError::NoRamRole), "{err}");

    let server = Scripted::start().await;
    server.route(
        Method::GET,
        ROLE_PATH,
        vec![Reply::new(200, r#"{"Code":"Failed","AccessKeyId":"x"}"#)],
    );
    let cfg = CredentialsConfig {
        ram_role: Some("EniAgentRole".into()),
        ..Default::default()
    };
    let p = CredentialProvider::resolve(&cfg, env(&[]), metadata(&server)).expect("role");
    let err = p.credentials().await.expect_err("bad code").to_string();
    assert!(
        err.contains("Failed") && err.contains("EniAgentRole"),
        "{err}"
    );
}

/// A writer that keeps everything the log subscriber prints.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn sts_credentials_reach_the_api_and_no_secret_reaches_logs_debug_or_errors() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        "/latest/api/token",
        vec![Reply::new(200, MD_TOKEN)],
    );
    server.route(Method::GET, ROLES, vec![Reply::new(200, "EniAgentRole/")]);
    server.route(
        Method::GET,
        ROLE_PATH,
        vec![Reply::new(
            200,
            role_document(AK_SECRET, STS_TOKEN, Duration::from_secs(3600)),
        )],
    );
    server.route(
        Method::POST,
        "/",
        vec![
            Reply::new(
                503,
                r#"{"RequestId":"R1","Code":"ServiceUnavailable","Message":"try later"}"#,
            ),
            Reply::new(
                403,
                r#"{"RequestId":"R2","Code":"Forbidden.RAM","Message":"denied"}"#,
            ),
        ],
    );
    let provider =
        CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
            .expect("role");
    let options = EcsOptions {
        endpoint: server.url(),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_attempts: 3,
            deadline: Duration::from_secs(5),
        },
        throttle: ThrottleBackoff {
            min_delay: Duration::ZERO,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
        },
    };
    let client = EcsClient::new(options, provider.clone()).expect("client");
    let err = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("forbidden");

    let api_call = server
        .log()
        .into_iter()
        .find(|r| r.method == Method::POST)
        .expect("api call");
    assert_eq!(
        api_call.header("x-acs-security-token").as_deref(),
        Some(STS_TOKEN),
        "the STS token is sent"
    );
    assert!(
        err.to_string().contains("ecs:AttachNetworkInterface"),
        "remedy names the RAM action: {err}"
    );

    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf8");
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    let debug = format!(
        "{client:?} {provider:?} {err:?} {:?}",
        provider.credentials().await.expect("creds")
    );
    for secret in [AK_SECRET, STS_TOKEN, MD_TOKEN] {
        assert!(!logs.contains(secret), "secret {secret} in logs:\n{logs}");
        assert!(
            !debug.contains(secret),
            "secret {secret} in Debug output:\n{debug}"
        );
        assert!(
            !err.to_string().contains(secret),
            "secret {secret} in the error"
        );
    }
}

// --- The credentials file is checked as opened; expired tokens are dropped ---

fn load_file(path: &std::path::Path) -> Result<CredentialProvider, CredentialsError> {
    CredentialProvider::resolve(
        &CredentialsConfig {
            file: Some(path.to_owned()),
            ..Default::default()
        },
        |_: &str| None,
        Arc::new(
            MetadataClient::new(MetadataOptions {
                endpoint: "http://127.0.0.1:9".into(),
                require_token: false,
                token_ttl: Duration::from_secs(60),
                timeout: Duration::from_millis(100),
                retry: RetryPolicy {
                    base_delay: Duration::from_millis(1),
                    max_delay: Duration::from_millis(1),
                    max_attempts: 1,
                    deadline: Duration::from_secs(1),
                },
            })
            .expect("metadata client"),
        ),
    )
}

#[test]
fn a_credentials_file_behind_a_symlink_or_owned_by_another_user_is_refused() {
    let file = credentials_file(0o600);
    let dir = tempfile::tempdir().expect("dir");
    let link = dir.path().join("credentials");
    std::os::unix::fs::symlink(file.path(), &link).expect("symlink");
    let err = load_file(&link).expect_err("symlink").to_string();
    assert!(err.contains("symbolic link"), "{err}");
    assert!(!err.contains(AK_SECRET), "{err}");

    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED owner check: needs root to chown the file");
        return;
    }
    std::os::unix::fs::chown(file.path(), Some(4242), Some(4242)).expect("chown");
    let err = load_file(file.path())
        .expect_err("foreign owner")
        .to_string();
    assert!(err.contains("uid 4242") && err.contains("chown"), "{err}");
    std::os::unix::fs::chown(file.path(), Some(0), Some(0)).expect("chown back");
    load_file(file.path()).expect("root-owned 0600 file");
}

#[tokio::test]
async fn an_expired_sts_token_drops_the_cached_credentials_and_is_fetched_once_more() {
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        "/latest/api/token",
        vec![Reply::new(200, MD_TOKEN)],
    );
    server.route(Method::GET, ROLES, vec![Reply::new(200, "EniAgentRole/")]);
    // Both documents say an hour is left; the service disagrees about the first.
    server.route(
        Method::GET,
        ROLE_PATH,
        vec![
            Reply::new(
                200,
                role_document(AK_SECRET, "sts-token-old", Duration::from_secs(3600)),
            ),
            Reply::new(
                200,
                role_document(AK_SECRET, "sts-token-new", Duration::from_secs(3600)),
            ),
        ],
    );
    let expired = r#"{"RequestId":"R1","Code":"InvalidSecurityToken.Expired","Message":"Specified SecurityToken is expired."}"#;
    let ok = r#"{"RequestId":"R2","NetworkInterfaceId":"eni-1","Status":"Available"}"#;
    server.on(
        |r| {
            r.method == Method::POST
                && r.header("x-acs-security-token").as_deref() == Some("sts-token-old")
        },
        vec![Reply::new(400, expired)],
    );
    server.on(
        |r| {
            r.method == Method::POST
                && r.header("x-acs-security-token").as_deref() == Some("sts-token-new")
        },
        vec![Reply::new(200, ok)],
    );
    let provider =
        CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
            .expect("role");
    let options = EcsOptions {
        endpoint: server.url(),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_attempts: 1,
            deadline: Duration::from_secs(5),
        },
        throttle: ThrottleBackoff::default(),
    };
    let client = EcsClient::new(options, provider).expect("client");
    let resp = client
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect("the second token works");
    assert_eq!(resp.request_id, "R2");
    assert_eq!(
        server.count(|r| r.method == Method::GET && r.uri.path() == ROLE_PATH),
        2,
        "the role's credentials were read again"
    );

    // A token that is still called expired after the refetch is final: one
    // refetch per call, no loop.
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        "/latest/api/token",
        vec![Reply::new(200, MD_TOKEN)],
    );
    server.route(Method::GET, ROLES, vec![Reply::new(200, "EniAgentRole/")]);
    server.route(
        Method::GET,
        ROLE_PATH,
        vec![Reply::new(
            200,
            role_document(AK_SECRET, STS_TOKEN, Duration::from_secs(3600)),
        )],
    );
    server.on(|r| r.method == Method::POST, vec![Reply::new(400, expired)]);
    let provider =
        CredentialProvider::resolve(&CredentialsConfig::default(), env(&[]), metadata(&server))
            .expect("role");
    let options = EcsOptions {
        endpoint: server.url(),
        ..client_options_template()
    };
    let err = EcsClient::new(options, provider)
        .expect("client")
        .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new("eni-1"))
        .await
        .expect_err("still expired");
    assert_eq!(err.code(), Some("InvalidSecurityToken.Expired"));
    assert_eq!(server.count(|r| r.method == Method::POST), 2);
}

fn client_options_template() -> EcsOptions {
    EcsOptions {
        endpoint: String::new(),
        region: "cn-hangzhou".into(),
        signature: SignatureVersion::V3,
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        retry: RetryPolicy {
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_attempts: 1,
            deadline: Duration::from_secs(5),
        },
        throttle: ThrottleBackoff::default(),
    }
}
