//! The monitoring examples in packaging/monitoring/: the alerting rules pass
//! `promtool check rules`, and every query of the rules and of the Grafana
//! dashboard names only metrics the agent exports.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use eni_agent::metrics::{EniState, Metrics, encode};
use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("packaging/monitoring")
        .join(name)
}

/// The series names the agent exports, from a registry with one sample of
/// every family.
fn exported() -> BTreeSet<String> {
    let m = Metrics::new();
    m.eni_state("eni-x", EniState::Attaching);
    m.eni_desired_addresses("eni-x", ["10.0.0.2".parse().expect("ip")]);
    m.eni_configured("eni-x", "00:16:3e:00:00:01", "eth1", 10001);
    m.eni_converged("eni-x");
    m.phase_reached("configured", Duration::from_millis(5));
    m.api_request(
        "AttachNetworkInterface",
        "Throttling",
        Duration::from_millis(5),
        true,
    );
    m.api_retry("AttachNetworkInterface");
    m.metadata_request("ok");
    m.drift_repaired(
        "eni-x",
        &["ip rule add from 10.0.0.2 lookup 10001".into()],
        true,
    );
    m.netlink_resync("start");
    m.handoff_files("udev", 1);
    encode(&m, false)
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// The `eni_agent_*` names in a PromQL expression.
fn names_in(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("eni_agent_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        out.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    out
}

#[test]
fn the_export_list_covers_every_family() {
    let names = exported();
    for family in [
        "eni_agent_build_info",
        "eni_agent_eni_info",
        "eni_agent_eni_state",
        "eni_agent_eni_addresses_desired",
        "eni_agent_eni_addresses_configured",
        "eni_agent_phase_duration_seconds_bucket",
        "eni_agent_api_requests_total",
        "eni_agent_api_request_duration_seconds_count",
        "eni_agent_api_throttled_total",
        "eni_agent_api_retries_total",
        "eni_agent_metadata_requests_total",
        "eni_agent_drift_repairs_total",
        "eni_agent_tug_of_war",
        "eni_agent_netlink_resyncs_total",
        "eni_agent_last_converge_timestamp_seconds",
        "eni_agent_handoff_files",
    ] {
        assert!(names.contains(family), "{family} missing from {names:?}");
    }
}

#[test]
fn every_dashboard_query_uses_exported_metrics() {
    let names = exported();
    let text = std::fs::read_to_string(example("eni-agent.dashboard.json")).expect("dashboard");
    let dash: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    assert!(dash["schemaVersion"].as_u64().is_some_and(|v| v >= 30));
    let panels = dash["panels"].as_array().expect("panels");
    assert!(
        panels.len() >= 8,
        "phase timings, API calls and errors, drift repairs"
    );
    let mut ids = BTreeSet::new();
    let mut used = BTreeSet::new();
    for p in panels {
        let title = p["title"].as_str().expect("a panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("id")),
            "{title}: duplicate id"
        );
        for key in ["h", "w", "x", "y"] {
            assert!(p["gridPos"][key].is_u64(), "{title}: gridPos.{key}");
        }
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        for t in targets {
            let expr = t["expr"].as_str().expect("expr");
            let found = names_in(expr);
            assert!(!found.is_empty(), "{title}: {expr} names no agent metric");
            for n in found {
                assert!(
                    names.contains(&n),
                    "{title}: {n} is not exported by the agent"
                );
                used.insert(n);
            }
        }
    }
    for wanted in [
        "eni_agent_phase_duration_seconds_bucket",
        "eni_agent_api_requests_total",
        "eni_agent_drift_repairs_total",
    ] {
        assert!(used.contains(wanted), "the dashboard shows {wanted}");
    }
}

#[test]
fn the_alerting_rules_pass_promtool_and_use_exported_metrics() {
    let path = example("eni-agent.rules.yml");
    let text = std::fs::read_to_string(&path).expect("rules");
    let names = exported();
    let exprs: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .collect();
    assert!(
        exprs.len() >= 4,
        "not configured, tug-of-war, API errors, throttling"
    );
    for expr in exprs {
        for n in names_in(expr) {
            assert!(
                names.contains(&n),
                "{expr}: {n} is not exported by the agent"
            );
        }
    }
    match Command::new("promtool")
        .args(["check", "rules"])
        .arg(&path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "promtool check rules: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "promtool is missing ({e}); apt-get install prometheus"
            );
            eprintln!("SKIPPED promtool check rules: promtool is not installed ({e})");
        }
    }
}
