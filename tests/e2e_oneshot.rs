//! End-to-end: the one-shot commands (`attach`, `detach`, `status`) of the
//! real eni-agent binary against ecs-emulator, in a private named network
//! namespace per test (see `tests/e2e/mod.rs`).

mod e2e;

use std::time::Duration;

use e2e::*;
use serde_json::json;

/// Attach → configured: addresses, rules, routes, queues, the FIB; exit 0;
/// `status --json` shows it configured with its phase timings.
#[test]
fn attach_configures_the_eni() {
    let Some(env) = Env::new("attach_configures_the_eni") else {
        return;
    };
    env.write_config("", &[]);
    let out = env.attach(ENI1);
    out.expect_code(0, "attach");
    assert!(
        out.stdout
            .contains(&format!("{ENI1} configured as eth1 (ifindex")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&format!("table {TABLE})")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("timeline:"), "{}", out.stdout);
    env.assert_eni1_configured("eth1", TABLE);
    // QueueNumber 2 in the scenario.
    assert_eq!(env.channels("eth1"), (2, 2));
    for (key, want) in [
        ("net.ipv4.conf.eth1.rp_filter", "2"),
        ("net.ipv4.conf.eth1.arp_ignore", "1"),
        ("net.ipv4.conf.eth1.arp_announce", "2"),
        ("net.ipv6.conf.eth1.accept_ra", "0"),
    ] {
        assert_eq!(env.sysctl(key), want, "{key}");
    }
    assert!(
        env.ip(&["link", "show", "eth1"]).contains(",UP"),
        "the NIC is up"
    );
    assert_eq!(env.eni_state(ENI1), ("InUse".into(), INSTANCE.into()));
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);

    let status = env.status();
    let rec = status
        .as_array()
        .expect("array")
        .iter()
        .find(|r| r["eni_id"] == ENI1)
        .unwrap_or_else(|| panic!("{ENI1} in status: {status}"))
        .clone();
    assert_eq!(rec["progress"], "configured", "{rec}");
    assert_eq!(rec["intent"], "attach", "{rec}");
    assert_eq!(rec["ifname"], "eth1", "{rec}");
    assert_eq!(rec["table"], TABLE, "{rec}");
    assert_eq!(rec["mac"], "00:16:3e:10:00:02", "{rec}");
    assert!(rec["last_error"].is_null(), "{rec}");
    let phases: Vec<&str> = rec["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|m| m["phase"].as_str().expect("phase"))
        .collect();
    for p in [
        "described",
        "attach_accepted",
        "in_use_confirmed",
        "link_seen",
        "configured",
    ] {
        assert!(phases.contains(&p), "phase {p} in {phases:?}");
    }
    // The text form too.
    let text = env.run(&["status"], Duration::from_secs(10));
    text.expect_code(0, "status");
    assert!(
        text.stdout.contains(ENI1) && text.stdout.contains("last timings"),
        "{}",
        text.stdout
    );
}

/// A queue override from the configuration is applied to the NIC.
#[test]
fn attach_applies_the_configured_queue_count() {
    let Some(env) = Env::new("attach_applies_queue_override") else {
        return;
    };
    // eni-emu0secondary002 has QueueNumber 4; ask for 1.
    env.write_config("", &[format!("id = \"{ENI2}\"\nqueues = 1")]);
    env.attach(ENI2).expect_code(0, "attach");
    let dev = env
        .link_with_mac("00:16:3e:10:00:03")
        .expect("the ENI's NIC");
    assert_eq!(env.channels(&dev), (1, 1));
}

/// Attaching again (a restart of the one-shot) sends no second Attach and
/// changes nothing.
#[test]
fn attach_again_is_idempotent() {
    let Some(env) = Env::new("attach_again_is_idempotent") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "first attach");
    let before = env.snapshot("eth1", TABLE);
    let ifindex = env.record(ENI1).expect("record")["ifindex"].clone();
    let out = env.attach(ENI1);
    out.expect_code(0, "second attach");
    assert!(out.stdout.contains("configured as eth1"), "{}", out.stdout);
    assert_eq!(
        env.codes("AttachNetworkInterface", ENI1),
        ["Success"],
        "exactly one AttachNetworkInterface"
    );
    assert_eq!(env.snapshot("eth1", TABLE), before);
    assert_eq!(env.record(ENI1).expect("record")["ifindex"], ifindex);
    env.assert_eni1_configured("eth1", TABLE);
}

/// Detach: the agent's rules, routes and addresses are gone, the ENI is
/// Available, the state record is gone.
#[test]
fn detach_removes_everything() {
    let Some(env) = Env::new("detach_removes_everything") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    let out = env.detach(ENI1);
    out.expect_code(0, "detach");
    assert!(
        out.stdout.contains("detached (Available)"),
        "{}",
        out.stdout
    );
    // What was removed, in `ip` syntax: the rule's priority as `priority N`,
    // the link by its name.
    let removed: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("ip "))
        .collect();
    assert!(
        removed
            .iter()
            .any(|l| l.starts_with("ip rule del priority "))
            && removed.iter().any(|l| l.contains(" dev eth1")),
        "{}",
        out.stdout
    );
    assert!(
        !removed
            .iter()
            .any(|l| l.contains(" dev if") || l.contains("del 20")),
        "{}",
        out.stdout
    );
    assert_eq!(env.eni_state(ENI1).0, "Available");
    assert_eq!(env.successes("DetachNetworkInterface", ENI1), 1);
    assert!(
        wait_for(Duration::from_secs(3), || env
            .link_with_mac("00:16:3e:10:00:02")
            .is_none()),
        "the NIC is unplugged"
    );
    env.assert_nothing_left(TABLE);
    assert!(env.record(ENI1).is_none(), "state record removed");
    let status = env.status();
    assert_eq!(status, json!([]), "no ENI managed any more");
    // Detaching again is harmless.
    let again = env.detach(ENI1);
    again.expect_code(0, "second detach");
    assert!(
        again.stdout.contains("was not attached here"),
        "{}",
        again.stdout
    );
    assert_eq!(env.successes("DetachNetworkInterface", ENI1), 1);
}

/// Detaching one of two ENIs keeps the other one's configuration (and the
/// shared rules) intact.
#[test]
fn detach_leaves_the_other_eni_alone() {
    let Some(env) = Env::new("detach_leaves_other_eni") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach 1");
    env.attach(ENI2).expect_code(0, "attach 2");
    let dev1 = env.link_with_mac("00:16:3e:10:00:02").expect("NIC 1");
    let table1 = u32::try_from(
        env.record(ENI1).expect("record")["table"]
            .as_u64()
            .expect("table"),
    )
    .expect("u32");
    let mine = |env: &Env| {
        let (rules, routes, addrs) = env.snapshot(&dev1, table1);
        let rules: Vec<String> = rules
            .into_iter()
            .filter(|r| r.contains(&format!("lookup {table1} ")) || r.contains("lookup main"))
            .collect();
        (rules, routes, addrs)
    };
    let before = mine(&env);
    env.detach(ENI2).expect_code(0, "detach 2");
    assert_eq!(mine(&env), before);
    env.assert_eni1_configured(&dev1, table1);
}

/// cloud-init may attach several ENIs at once: a second one-shot waits for
/// the first one's lock instead of failing, and both ENIs end configured.
/// A one-shot never waits for a running daemon.
#[test]
fn parallel_one_shots_take_turns() {
    let Some(env) = Env::new("parallel_one_shots") else {
        return;
    };
    env.write_config("", &[]);
    let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
    let b = env.spawn(&["attach", ENI2, "--timeout", "30s"], &[]);
    let (a, b) = (
        env.wait(&a, Duration::from_secs(40)),
        env.wait(&b, Duration::from_secs(40)),
    );
    a.expect_code(0, "first attach");
    b.expect_code(0, "second attach");
    assert!(
        format!("{}{}", a.stderr, b.stderr).contains("waiting for it"),
        "one of them waited for the other's lock:\n{}\n{}",
        a.stderr,
        b.stderr
    );
    assert!(env.link_with_mac("00:16:3e:10:00:02").is_some());
    for eni in [ENI1, ENI2] {
        assert_eq!(
            env.record(eni).expect("record")["progress"],
            "configured",
            "{eni}"
        );
    }

    let daemon = env.spawn(&["run"], &[]);
    assert!(
        wait_for(Duration::from_secs(20), || env.path("state").exists()
            && std::fs::read_to_string(env.state_dir().join("lock"))
                .is_ok_and(|s| s.contains("daemon"))),
        "the daemon took the lock"
    );
    let started = std::time::Instant::now();
    let out = env.run(
        &["detach", ENI2, "--timeout", "30s"],
        Duration::from_secs(40),
    );
    out.expect_code(1, "detach while the daemon runs");
    assert!(
        out.stderr.contains("another eni-agent holds"),
        "{}",
        out.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "it did not wait"
    );
    env.kill9(&daemon);
}

/// Each permanent error: exit 1 with its explanation; bad usage: 64.
#[test]
fn permanent_errors_are_explained() {
    let Some(env) = Env::new("permanent_errors_are_explained") else {
        return;
    };
    env.write_config("", &[]);

    let out = env.attach(OTHER_ZONE);
    out.expect_code(1, "other zone");
    assert!(
        out.stderr.contains("cn-hangzhou-j") && out.stderr.contains("cn-hangzhou-i"),
        "zone mismatch explained: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains("vSwitch of cn-hangzhou-i"),
        "{}",
        out.stderr
    );

    let out = env.attach(OTHER_VPC);
    out.expect_code(1, "other VPC");
    assert!(
        out.stderr.contains("vpc-emu0other") && out.stderr.contains("vpc-emu0main"),
        "VPC mismatch explained: {}",
        out.stderr
    );

    let out = env.attach("eni-emu0doesnotexist");
    out.expect_code(1, "unknown ENI");
    assert!(
        out.stderr.contains("InvalidEniId.NotFound"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("check the ENI id and the region"),
        "remedy: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("eni-emu0doesnotexist does not exist in region cn-hangzhou"),
        "the id and the region are named: {}",
        out.stderr
    );

    // Checked locally: no Attach was sent for any of them.
    for eni in [OTHER_ZONE, OTHER_VPC, "eni-emu0doesnotexist"] {
        assert!(
            env.codes("AttachNetworkInterface", eni).is_empty(),
            "no Attach for {eni}"
        );
    }

    let out = env.attach("not-an-eni");
    out.expect_code(64, "not an ENI id");
    assert!(out.stderr.contains("not a valid ENI id"), "{}", out.stderr);

    let out = env.run(&["attach"], Duration::from_secs(10));
    out.expect_code(64, "usage error (missing argument)");
}

/// An attach that never completes: exit 2 after --timeout, saying how far it
/// got (and not blaming the metadata service, as it once did).
#[test]
fn stuck_attaching_times_out() {
    let Some(env) = Env::new("stuck_attaching_times_out") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"stuck_attaching": [ENI1]}}));
    let started = std::time::Instant::now();
    let out = env.run(
        &["attach", ENI1, "--timeout", "3s"],
        Duration::from_secs(20),
    );
    out.expect_code(2, "timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "gave up after {:?}",
        started.elapsed()
    );
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);
    assert!(
        out.stderr.contains("not configured within 3s") && out.stderr.contains("attach accepted"),
        "the message says what timed out and the last phase: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("in_use_confirmed") && !out.stderr.contains("InUse confirmed"),
        "InUse was never confirmed: {}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("check the metadata service"),
        "the metadata service is fine: {}",
        out.stderr
    );
}

/// `--timeout` is the whole command's deadline: no wait inside (the
/// Describe polls behind the NIC's appearance start after 5 s and back off
/// to 10 s) gives up before it.
#[test]
fn the_timeout_is_the_whole_commands_deadline() {
    let Some(env) = Env::new("timeout_whole_deadline") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"stuck_attaching": [ENI1]}}));
    let started = std::time::Instant::now();
    let out = env.run(
        &["attach", ENI1, "--timeout", "6s"],
        Duration::from_secs(30),
    );
    out.expect_code(2, "timeout");
    assert!(
        started.elapsed() >= Duration::from_secs(6),
        "gave up after {:?}: {}",
        started.elapsed(),
        out.stderr
    );
    assert!(
        out.stderr.contains("not configured within 6s"),
        "{}",
        out.stderr
    );
}

/// The ENI is InUse on another instance: without takeover, exit 1 naming
/// that instance; with takeover = true it is detached there and attached
/// here.
#[test]
fn takeover_moves_the_eni_here() {
    let Some(env) = Env::new("takeover_moves_the_eni_here") else {
        return;
    };
    let eni = "eni-emu0failover01";
    let other = "i-emu0instance0002";
    env.seed(&json!({
        "instances": [{"id": other, "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-emu0zonei"}],
        "enis": [{"id": eni, "vswitch_id": "vsw-emu0zonei", "instance_id": other,
                  "mac": "00:16:3e:10:00:99", "primary_ip": "192.168.10.60",
                  "secondary_ips": ["192.168.10.61"], "ipv6s": ["2408:4005:3a0:7101::60"],
                  "queue_number": 2}]
    }));
    assert_eq!(env.eni_state(eni), ("InUse".into(), other.into()));

    env.write_config("", &[]);
    let out = env.attach(eni);
    out.expect_code(1, "InUse elsewhere without takeover");
    assert!(
        out.stderr.contains(other) && out.stderr.contains("takeover = true"),
        "names the other instance and the remedy: {}",
        out.stderr
    );
    assert!(env.codes("DetachNetworkInterface", eni).is_empty());
    assert_eq!(env.eni_state(eni), ("InUse".into(), other.into()));

    env.write_config("", &[format!("id = \"{eni}\"\ntakeover = true")]);
    env.attach(eni).expect_code(0, "takeover");
    assert_eq!(env.eni_state(eni), ("InUse".into(), INSTANCE.into()));
    let detaches: Vec<_> = env
        .calls()
        .into_iter()
        .filter(|c| c["action"] == "DetachNetworkInterface" && c["code"] == "Success")
        .collect();
    assert_eq!(detaches.len(), 1, "one Detach");
    assert_eq!(detaches[0]["params"]["InstanceId"], other);
    assert_eq!(env.successes("AttachNetworkInterface", eni), 1);
    let dev = env.link_with_mac("00:16:3e:10:00:99").expect("the NIC");
    let addrs = env.addresses(&dev);
    assert!(
        addrs.contains(&"192.168.10.60/24".to_owned())
            && addrs.contains(&"192.168.10.61/32".to_owned()),
        "{addrs:?}"
    );
}

/// Throttling and 5xx storms on every action: still configured; the call log
/// shows the retries.
#[test]
fn throttling_and_5xx_storms_are_survived() {
    let Some(env) = Env::new("storms_are_survived") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"default": {
        "throttling_rate": 0.3, "internal_error_rate": 0.2, "service_unavailable_rate": 0.2
    }}}));
    env.attach(ENI1).expect_code(0, "attach through the storm");
    env.assert_eni1_configured("eth1", TABLE);
    let calls = env.calls();
    let kinds: std::collections::BTreeSet<&str> =
        calls.iter().filter_map(|c| c["code"].as_str()).collect();
    assert_eq!(
        env.successes("AttachNetworkInterface", ENI1),
        1,
        "one successful Attach"
    );
    assert!(
        !kinds.contains("InvalidOperation.InvalidEniState"),
        "no Attach was repeated after it had landed: {kinds:?}"
    );

    // Detach through the same storm.
    env.detach(ENI1).expect_code(0, "detach through the storm");
    // Checked over both: an attach is only two calls (Describe, Attach),
    // which a storm of this rate misses entirely about once in five.
    let calls = env.calls();
    let failed = calls.iter().filter(|c| c["code"] != "Success").count();
    let kinds: std::collections::BTreeSet<&str> =
        calls.iter().filter_map(|c| c["code"].as_str()).collect();
    assert!(failed > 0, "the storm hit some calls: {kinds:?}");
    env.assert_nothing_left(TABLE);
    assert_eq!(env.eni_state(ENI1).0, "Available");
}

/// Account-wide throttling (requests per second): still configured.
#[test]
fn request_budget_throttling_is_survived() {
    let Some(env) = Env::new("request_budget_throttling") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"requests_per_second": 3}}));
    env.attach(ENI1)
        .expect_code(0, "attach under Throttling.User");
    env.assert_eni1_configured("eth1", TABLE);
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);
}

/// The answer to AttachNetworkInterface is lost after ECS ran it (the
/// connection drops): the agent must find out with Describe, not fail or
/// attach twice.
#[test]
fn a_lost_attach_answer_is_recovered() {
    let Some(env) = Env::new("lost_attach_answer") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"actions": {"AttachNetworkInterface": {
        "drop_after_rate": 1.0
    }}}}));
    let out = env.attach(ENI1);
    out.expect_code(0, "attach whose answer was lost");
    env.assert_eni1_configured("eth1", TABLE);
    assert_eq!(env.eni_state(ENI1), ("InUse".into(), INSTANCE.into()));
}

/// Metadata-service errors (429/500/503) are retried.
#[test]
fn metadata_errors_are_survived() {
    let Some(env) = Env::new("metadata_errors_survived") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"metadata": {
        "too_many_requests_rate": 0.1, "server_error_rate": 0.1, "unavailable_rate": 0.1
    }}}));
    env.attach(ENI1)
        .expect_code(0, "attach with a flaky metadata service");
    env.assert_eni1_configured("eth1", TABLE);
}

/// An attach that ECS accepts but that ends back in Available: exit 1,
/// saying the attach failed, with the API's facts.
#[test]
fn a_failed_attach_is_explained() {
    let Some(env) = Env::new("failed_attach_explained") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"faults": {"fail_attach": [ENI1]}}));
    let out = env.attach(ENI1);
    out.expect_code(1, "attach that failed");
    assert!(
        out.stderr.contains("went back to Available") && out.stderr.contains("vsw-emu0zonei"),
        "{}",
        out.stderr
    );
    assert_eq!(env.eni_state(ENI1).0, "Available");
}

/// More ENIs than the instance type allows: EniPerInstanceLimitExceeded
/// with its remedy, exit 1.
#[test]
fn the_eni_limit_is_explained() {
    let Some(env) = Env::new("eni_limit_explained") else {
        return;
    };
    env.write_config("", &[]);
    let third = env.seed_third_eni();
    env.seed(
        &json!({"enis": [{"id": "eni-emu0fourth0001", "vswitch_id": "vsw-emu0zonei",
        "primary_ip": "192.168.10.80", "queue_number": 1}]}),
    );
    for eni in [ENI1, ENI2, third] {
        env.attach(eni).expect_code(0, eni);
    }
    let out = env.attach("eni-emu0fourth0001");
    out.expect_code(1, "one ENI too many");
    assert!(
        out.stderr.contains("EniPerInstanceLimitExceeded"),
        "{}",
        out.stderr
    );
    assert_eq!(env.eni_state("eni-emu0fourth0001").0, "Available");
}

/// No access key in the environment: the agent uses the instance RAM role's
/// STS credentials from the metadata service.
#[test]
fn attach_with_the_instance_ram_role() {
    let Some(env) = Env::new("attach_with_ram_role") else {
        return;
    };
    env.ram_role_only
        .store(true, std::sync::atomic::Ordering::Relaxed);
    env.write_config("", &[]);
    env.attach(ENI1)
        .expect_code(0, "attach with STS credentials");
    env.assert_eni1_configured("eth1", TABLE);
    let keys: std::collections::BTreeSet<String> = env
        .calls()
        .iter()
        .filter_map(|c| c["access_key_id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        keys.iter().all(|k| k.starts_with("STS.")),
        "every call signed with the role's STS key: {keys:?}"
    );
}

/// The legacy V2 signature and the hardened (token-only) metadata mode.
#[test]
fn attach_with_v2_signatures_and_hardened_metadata() {
    let Some(env) = Env::new("attach_v2_hardened") else {
        return;
    };
    env.patch_settings(&json!({"metadata": {"hardened_only": true}}));
    env.write_config("", &[]);
    let text = std::fs::read_to_string(env.config_path()).expect("config");
    let text = text
        .replace("[api]\n", "[api]\nsignature = \"v2\"\n")
        .replace("[agent]\n", "[metadata]\nrequire_token = true\n\n[agent]\n");
    std::fs::write(env.config_path(), text).expect("config");
    env.attach(ENI1).expect_code(0, "attach");
    env.assert_eni1_configured("eth1", TABLE);
    let versions: std::collections::BTreeSet<String> = env
        .calls()
        .iter()
        .filter_map(|c| c["signature_version"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(versions, ["v2".to_owned()].into_iter().collect());
}

/// A corrupt state record is named with its remedy (exit 1), and nothing is
/// attached.
#[test]
fn a_corrupt_state_record_is_explained() {
    let Some(env) = Env::new("corrupt_state_record") else {
        return;
    };
    env.write_config("", &[]);
    let enis = env.state_dir().join("enis");
    std::fs::create_dir_all(&enis).expect("mkdir");
    std::fs::write(enis.join(format!("{ENI1}.json")), "{not json").expect("write");
    let out = env.attach(ENI1);
    out.expect_code(1, "corrupt record");
    assert!(
        out.stderr.contains(&format!("{ENI1}.json")) && out.stderr.contains("move it aside"),
        "{}",
        out.stderr
    );
    assert!(env.codes("AttachNetworkInterface", ENI1).is_empty());
}

fn phase_at(rec: &serde_json::Value, phase: &str) -> u64 {
    rec["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .find(|m| m["phase"] == phase)
        .and_then(|m| m["at"].as_u64())
        .unwrap_or_else(|| panic!("phase {phase} in {rec}"))
}

/// The NIC is configured the moment it appears — before Describe says InUse
/// (the link shows up first) and without waiting for the metadata service's
/// per-MAC entries (they lag by seconds). The NIC itself confirms the
/// attach: no Describe poll was needed for it.
#[test]
fn the_nic_is_configured_the_moment_it_appears() {
    let Some(env) = Env::new("configured_when_it_appears") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"timing": {
        "attach_delay_ms": 2000, "link_offset_ms": -1500, "metadata_lag_ms": 3000
    }}));
    let started = std::time::Instant::now();
    env.attach(ENI1).expect_code(0, "attach");
    let took = started.elapsed();
    env.assert_eni1_configured("eth1", TABLE);
    let rec = env.record(ENI1).expect("record");
    let configured = phase_at(&rec, "configured");
    let accepted = phase_at(&rec, "attach_accepted");
    assert!(
        configured < accepted + 2000,
        "configured at +{configured} ms, before ECS says InUse (+{accepted} ms + 2000 ms): {rec}"
    );
    let confirmed = rec["timeline"]
        .as_array()
        .and_then(|t| t.iter().find(|m| m["phase"] == "in_use_confirmed"))
        .expect("InUse confirmed");
    assert!(
        confirmed["request_id"].is_null(),
        "confirmed by the NIC, not by a Describe: {rec}"
    );
    // Metadata has the MAC only 3 s after InUse: configured before InUse
    // means it did not wait for it.
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

/// Delegated IPv6 prefixes get their rules like IPv4 prefixes.
#[test]
fn delegated_prefixes_get_rules() {
    let Some(env) = Env::new("delegated_prefixes") else {
        return;
    };
    let eni = "eni-emu0prefixes01";
    env.seed(&json!({"enis": [{"id": eni, "vswitch_id": "vsw-emu0zonei",
        "mac": "00:16:3e:10:00:88", "primary_ip": "192.168.10.90",
        "ipv4_prefixes": ["192.168.10.160/28"], "ipv6s": ["2408:4005:3a0:7101::90"],
        "ipv6_prefixes": ["2408:4005:3a0:7101:9000::/80"], "queue_number": 1}]}));
    env.write_config("", &[]);
    env.attach(eni).expect_code(0, "attach");
    let rules = env.our_rules();
    for src in ["192.168.10.160/28", "2408:4005:3a0:7101:9000::/80"] {
        for prio in ["20100:", "20300:"] {
            assert!(
                rules
                    .iter()
                    .any(|r| r.starts_with(prio) && r.contains(&format!("from {src} "))),
                "{prio} rule from {src}:\n{}",
                rules.join("\n")
            );
        }
    }
}

/// An IPv4-only ENI is configured without waiting for IPv6 facts, and gets
/// no IPv6 rules.
#[test]
fn an_ipv4_only_eni_is_configured_promptly() {
    let Some(env) = Env::new("ipv4_only_eni") else {
        return;
    };
    let eni = "eni-emu0ipv4only01";
    env.seed(&json!({"enis": [{"id": eni, "vswitch_id": "vsw-emu0zonei",
        "mac": "00:16:3e:10:00:44", "primary_ip": "192.168.10.44",
        "secondary_ips": ["192.168.10.45"], "queue_number": 1}]}));
    env.write_config("", &[]);
    let started = std::time::Instant::now();
    env.attach(eni).expect_code(0, "attach");
    let took = started.elapsed();
    let dev = env.link_with_mac("00:16:3e:10:00:44").expect("the NIC");
    assert_eq!(
        env.addresses(&dev),
        ["192.168.10.44/24", "192.168.10.45/32"]
    );
    let v6 = env.ip(&["-6", "rule", "show"]);
    assert!(
        !v6.contains(&format!("lookup {TABLE}")),
        "no IPv6 rule for an IPv4-only ENI:\n{v6}"
    );
    assert!(
        took < Duration::from_secs(6),
        "no 10 s wait for IPv6 facts that never come: {took:?}"
    );
}

/// An ENI being detached from another instance (Detaching): the one-shot
/// waits for the transition and attaches it once Available — no takeover
/// needed, no premature Attach.
#[test]
fn attach_waits_for_a_detaching_eni() {
    let Some(env) = Env::new("attach_waits_detaching") else {
        return;
    };
    let eni = "eni-emu0failover01";
    let other = "i-emu0instance0002";
    env.seed(&json!({
        "instances": [{"id": other, "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-emu0zonei"}],
        "enis": [{"id": eni, "vswitch_id": "vsw-emu0zonei", "instance_id": other,
                  "mac": "00:16:3e:10:00:99", "primary_ip": "192.168.10.60", "queue_number": 2}]
    }));
    env.patch_settings(&json!({"timing": {"detach_delay_ms": 2000}}));
    env.api(
        "DetachNetworkInterface",
        &[("NetworkInterfaceId", eni), ("InstanceId", other)],
    )
    .expect("detach there");
    assert_eq!(env.eni_state(eni).0, "Detaching");
    env.write_config("", &[]);
    env.attach(eni)
        .expect_code(0, "attach after the transition");
    assert_eq!(env.eni_state(eni), ("InUse".into(), INSTANCE.into()));
    assert_eq!(
        env.codes("AttachNetworkInterface", eni),
        ["Success"],
        "one Attach, sent once Available"
    );
}

/// An explicit routing table from the configuration is used, and a detach
/// removes everything from it too.
#[test]
fn an_explicit_table_is_used_and_cleaned_up() {
    let Some(env) = Env::new("explicit_table") else {
        return;
    };
    env.write_config("", &[format!("id = \"{ENI1}\"\ntable = 200")]);
    env.attach(ENI1).expect_code(0, "attach");
    env.assert_eni1_configured("eth1", 200);
    env.detach(ENI1).expect_code(0, "detach");
    assert_eq!(env.eni_state(ENI1).0, "Available");
    env.assert_nothing_left(200);
}

/// `detach --timeout` gives up with exit code 2 when the ENI is slow to
/// become Available; a second detach resumes and finishes the job.
#[test]
fn detach_times_out_with_code_2_and_a_rerun_finishes_it() {
    let Some(env) = Env::new("detach_timeout") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    env.patch_settings(&serde_json::json!({"timing": {"detach_delay_ms": 4000}}));
    let out = env.run(
        &["detach", ENI1, "--timeout", "1s"],
        Duration::from_secs(20),
    );
    out.expect_code(2, "detach that outlasts --timeout");
    assert!(
        out.stderr.contains("run the detach again"),
        "{}",
        out.stderr
    );
    env.patch_settings(&serde_json::json!({"timing": {"detach_delay_ms": 200}}));
    env.detach(ENI1)
        .expect_code(0, "the rerun finishes the detach");
    assert!(wait_for(Duration::from_secs(10), || env.eni_state(ENI1).0
        == "Available"));
    env.assert_nothing_left(TABLE);
    assert!(env.record(ENI1).is_none(), "record removed");
}

/// Detaching the primary ENI by mistake: the API refuses it for good, so the
/// intent ends there — a failed detach with the API's code in `status`,
/// never resumed by a daemon start — and `forget` drops the record (refused
/// while the daemon runs) without a call or a kernel change.
#[test]
fn a_refused_detach_ends_the_intent_and_can_be_forgotten() {
    const PRIMARY_ENI: &str = "eni-emu0primary0001";
    let Some(env) = Env::new("refused_detach") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let out = env.detach(PRIMARY_ENI);
    out.expect_code(1, "detach of the primary ENI");
    assert!(
        out.stderr.contains("DetachPrimaryEniNotAllowed"),
        "{}",
        out.stderr
    );
    let status = env.status();
    let rec = status
        .as_array()
        .and_then(|a| a.iter().find(|r| r["eni_id"] == PRIMARY_ENI))
        .unwrap_or_else(|| panic!("no record of {PRIMARY_ENI}: {status}"));
    assert_eq!(rec["intent"], "detach", "{rec}");
    assert_eq!(rec["progress"], "failed", "{rec}");
    assert!(
        rec["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("DetachPrimaryEniNotAllowed")),
        "{rec}"
    );
    let detaches = || env.codes("DetachNetworkInterface", PRIMARY_ENI).len();
    assert_eq!(detaches(), 1);

    let daemon = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    let out = env.run(&["forget", PRIMARY_ENI], Duration::from_secs(20));
    out.expect_code(1, "forget while the daemon runs");
    assert!(out.stderr.contains("no daemon runs"), "{}", out.stderr);
    env.signal(&daemon, nix::sys::signal::Signal::SIGTERM);
    env.wait(&daemon, Duration::from_secs(10))
        .expect_code(0, "SIGTERM");
    let log = std::fs::read_to_string(&daemon.stderr).expect("daemon log");
    assert!(
        !log.contains("resuming an interrupted detach"),
        "a failed detach is not resumed:\n{log}"
    );
    assert_eq!(detaches(), 1, "no second Detach of the primary ENI");

    let calls = env.calls().len();
    let before = env.snapshot(&dev1, table1);
    let out = env.run(&["forget", PRIMARY_ENI], Duration::from_secs(20));
    out.expect_code(0, "forget");
    assert!(env.record(PRIMARY_ENI).is_none(), "record removed");
    assert_eq!(env.calls().len(), calls, "forget calls no API");
    assert_eq!(
        env.snapshot(&dev1, table1),
        before,
        "forget changes no kernel state"
    );
    env.run(&["forget", PRIMARY_ENI], Duration::from_secs(20))
        .expect_code(1, "nothing left to forget");
}
