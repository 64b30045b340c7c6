//! Faults: the daemon converges every ENI through a hostile ECS
//! and metadata service — 30 % InternalError/ServiceUnavailable, throttling,
//! dropped connections, a 2 s latency spike on Attach, metadata 5xx and lag —
//! without a panic, with every API error logged with its RequestId, and
//! without flooding the log.

mod e2e;

use std::time::Duration;

use e2e::*;
use serde_json::{Value, json};

#[test]
fn the_daemon_converges_through_api_and_metadata_faults() {
    let Some(env) = Env::new("faults") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    // Every kind of API fault is injected for certain first: Describe fails
    // with one kind at a time until the call log shows it, then the next.
    // Only then do the random faults start, so the premise never depends on
    // how many calls the daemon happened to make.
    let describe_fails_with = |fault: Value| {
        env.patch_settings(&json!({
            "faults": {"actions": {"DescribeNetworkInterfaceAttribute": fault}}
        }));
    };
    describe_fails_with(json!({"internal_error_rate": 1.0}));
    let daemon = env.spawn(&["run"], &[]);
    let injected = |code: &str| {
        env.calls()
            .iter()
            .any(|c| c["code"] == code && c["action"] == "DescribeNetworkInterfaceAttribute")
    };
    for (code, next) in [
        ("InternalError", json!({"service_unavailable_rate": 1.0})),
        ("ServiceUnavailable", json!({"throttling_rate": 1.0})),
        ("Throttling", json!({"drop_rate": 1.0})),
        ("ConnectionDropped", Value::Null),
    ] {
        assert!(
            wait_for(Duration::from_secs(30), || injected(code)),
            "no {code} injected within 30s"
        );
        describe_fails_with(next);
    }
    env.patch_settings(&json!({
        "timing": {"metadata_lag_ms": 1000},
        "faults": {
            "default": {
                "internal_error_rate": 0.15,
                "service_unavailable_rate": 0.15,
                "throttling_rate": 0.1,
                "drop_rate": 0.05
            },
            "actions": {
                "AttachNetworkInterface": {"latency_ms": 2000, "internal_error_rate": 0.15, "service_unavailable_rate": 0.15}
            },
            "metadata": {"server_error_rate": 0.2, "too_many_requests_rate": 0.1}
        }
    }));
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(90));
    env.wait_configured(ENI2, Duration::from_secs(90));
    env.assert_eni1_configured(&dev1, table1);
    assert_eq!(
        env.successes("AttachNetworkInterface", ENI1),
        1,
        "one successful Attach per ENI"
    );
    assert_eq!(
        env.successes("AttachNetworkInterface", ENI2),
        1,
        "one successful Attach per ENI"
    );

    let codes: Vec<String> = env
        .calls()
        .iter()
        .filter_map(|c| c["code"].as_str().map(str::to_owned))
        .collect();
    for kind in [
        "InternalError",
        "ServiceUnavailable",
        "Throttling",
        "ConnectionDropped",
    ] {
        assert!(
            codes.iter().any(|c| c == kind),
            "{kind} was injected: {codes:?}"
        );
    }

    let log = std::fs::read_to_string(&daemon.stderr).expect("daemon log");
    assert!(!log.contains("panicked"), "no panic:\n{log}");
    for line in log
        .lines()
        .filter(|l| l.contains("ECS call failed") && l.contains("(HTTP"))
    {
        assert!(
            line.contains("RequestId"),
            "an API error logged without its RequestId: {line}"
        );
    }
    // Bounded: retries back off, so a minute of faults is tens of lines, not thousands.
    let noisy = log
        .lines()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .count();
    assert!(noisy <= 120, "{noisy} warning/error lines:\n{log}");
}
