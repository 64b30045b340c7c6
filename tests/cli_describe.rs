//! The `eni-agent describe` command end to end: the real binary, its region
//! from the metadata service, RAM-role credentials, and a signed Describe —
//! all against a scripted server on loopback, found through the
//! `ENI_AGENT_*_ENDPOINT` variables.

mod support;

use axum::http::Method;
use support::{Reply, Scripted};

fn role_document() -> String {
    let exp = humantime::format_rfc3339_seconds(
        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
    );
    format!(
        r#"{{"AccessKeyId":"STS.k","AccessKeySecret":"s","Expiration":"{exp}","SecurityToken":"t","Code":"Success"}}"#
    )
}

async fn run_binary(server: &Scripted, args: &[&str]) -> std::process::Output {
    let url = server.url();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_eni-agent"))
            .args(&args)
            .args(["--config", "/dev/null"])
            .env("ENI_AGENT_ECS_ENDPOINT", &url)
            .env("ENI_AGENT_METADATA_ENDPOINT", &url)
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            .output()
            .expect("run eni-agent")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_prints_the_facts_with_the_request_id() {
    let server = Scripted::start().await;
    server.route(
        Method::PUT,
        "/latest/api/token",
        vec![Reply::new(200, "tok")],
    );
    server.route(
        Method::GET,
        "/latest/meta-data/region-id",
        vec![Reply::new(200, "cn-test")],
    );
    server.route(
        Method::GET,
        "/latest/meta-data/ram/security-credentials/",
        vec![Reply::new(200, "Role")],
    );
    server.route(
        Method::GET,
        "/latest/meta-data/ram/security-credentials/Role",
        vec![Reply::new(200, role_document())],
    );
    server.route(
        Method::POST,
        "/",
        vec![Reply::new(
            200,
            r#"{"RequestId":"REQ-CLI","NetworkInterfaceId":"eni-cli","Status":"Available","MacAddress":"00:16:3e:aa:bb:cc",
               "PrivateIpAddress":"10.0.0.9","QueueNumber":2,"Ipv6Sets":{"Ipv6Set":[{"Ipv6Address":"2001:db8::9"}]}}"#,
        )],
    );
    let out = run_binary(&server, &["describe", "eni-cli", "--json"]).await;
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON output");
    assert_eq!(json["request_id"], "REQ-CLI");
    assert_eq!(json["mac_address"], "00:16:3e:aa:bb:cc");
    assert_eq!(json["ipv6_addresses"][0], "2001:db8::9");
    let call = server
        .log()
        .into_iter()
        .find(|r| r.method == Method::POST)
        .expect("api call");
    assert_eq!(
        call.query("RegionId").as_deref(),
        Some("cn-test"),
        "region from the metadata service"
    );
    assert_eq!(
        call.header("x-acs-security-token").as_deref(),
        Some("t"),
        "RAM role credentials"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_failure_exits_1_with_the_remedy() {
    let server = Scripted::start().await;
    server.route(
        Method::GET,
        "/latest/meta-data/region-id",
        vec![Reply::new(200, "cn-test")],
    );
    server.route(
        Method::GET,
        "/latest/meta-data/ram/security-credentials/",
        vec![Reply::new(200, "Role")],
    );
    server.route(
        Method::GET,
        "/latest/meta-data/ram/security-credentials/Role",
        vec![Reply::new(200, role_document())],
    );
    server.route(
        Method::POST,
        "/",
        vec![Reply::new(404, r#"{"RequestId":"REQ-404","Code":"InvalidEniId.NotFound","Message":"The specified ENI does not exist."}"#)],
    );
    let out = run_binary(&server, &["describe", "eni-missing"]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("InvalidEniId.NotFound")
            && stderr.contains("REQ-404")
            && stderr.contains("check the ENI id"),
        "{stderr}"
    );
}
