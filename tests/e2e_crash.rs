//! End-to-end: the kill -9 matrix. The one-shot and the daemon are killed
//! at chosen and at random points of attach, configure and detach; the next
//! start must converge, with no second Attach for an ENI already Attaching or
//! InUse, and no rule left behind after a final detach.

mod e2e;

use std::time::Duration;

use e2e::*;
use serde_json::json;

const ENI1_MAC: &str = "00:16:3e:10:00:02";

/// Rounds of a random-kill test: a few in CI; the long chaos run in BENCHMARKS.md
/// (50 or more) is `ENI_AGENT_CHAOS_ROUNDS=50 cargo test --test e2e_crash random`.
fn chaos_rounds(default: u32) -> u32 {
    std::env::var("ENI_AGENT_CHAOS_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn assert_single_attach(env: &Env, eni: &str) {
    let codes = env.codes("AttachNetworkInterface", eni);
    assert_eq!(
        codes.iter().filter(|c| *c == "Success").count(),
        1,
        "exactly one successful Attach for {eni}: {codes:?}"
    );
    assert!(
        !codes
            .iter()
            .any(|c| c == "InvalidOperation.InvalidEniState"),
        "no Attach sent for an ENI already Attaching/InUse: {codes:?}"
    );
}

fn detach_and_check_clean(env: &Env) {
    env.detach(ENI1).expect_code(0, "final detach");
    assert_eq!(env.eni_state(ENI1).0, "Available");
    env.assert_nothing_left(TABLE);
    assert!(env.record(ENI1).is_none(), "state record removed");
}

/// Killed right after AttachNetworkInterface was accepted (the ENI is still
/// Attaching): the restart waits for it, never attaches again.
#[test]
fn oneshot_killed_after_the_attach_call() {
    let Some(env) = Env::new("kill_after_attach_call") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"timing": {"attach_delay_ms": 1500}}));
    let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
    env.wait_call("AttachNetworkInterface", ENI1, Duration::from_secs(10));
    env.kill9(&a);
    assert_eq!(env.eni_state(ENI1).0, "Attaching");
    let rec = env
        .record(ENI1)
        .expect("the intent is recorded before the call");
    assert_eq!(rec["intent"], "attach", "{rec}");
    assert_eq!(rec["progress"], "attach_requested", "{rec}");
    env.attach(ENI1).expect_code(0, "restart");
    env.assert_eni1_configured("eth1", TABLE);
    assert_single_attach(&env, ENI1);
    detach_and_check_clean(&env);
}

/// Killed the moment the NIC appeared, while Describe still says Attaching
/// (the link shows up before InUse): the restart configures it without a
/// second Attach. (The NIC confirms the attach, so the one-shot may finish
/// within milliseconds of the link and be gone before the kill; the
/// restart must then find everything in place just the same.)
#[test]
fn oneshot_killed_after_the_link_appeared() {
    let Some(env) = Env::new("kill_after_link_appeared") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(
        &json!({"timing": {"attach_delay_ms": 2500, "link_offset_ms": -2000, "metadata_lag_ms": 300}}),
    );
    let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
    assert!(
        wait_for(Duration::from_secs(10), || env
            .link_with_mac(ENI1_MAC)
            .is_some()),
        "the NIC appears"
    );
    env.kill9_any(&a);
    assert_eq!(env.eni_state(ENI1).0, "Attaching");
    env.attach(ENI1).expect_code(0, "restart");
    env.assert_eni1_configured("eth1", TABLE);
    assert_eq!(env.eni_state(ENI1), ("InUse".into(), INSTANCE.into()));
    assert_single_attach(&env, ENI1);
    detach_and_check_clean(&env);
}

/// Killed while configuring: once the first of the agent's rules is in the
/// kernel (the metadata service is slow, so the rest is still missing or
/// just being written).
#[test]
fn oneshot_killed_while_configuring() {
    let Some(env) = Env::new("kill_while_configuring") else {
        return;
    };
    env.write_config("", &[]);
    let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
    assert!(
        wait_for(Duration::from_secs(10), || !env.our_rules().is_empty()
            || !env.addresses("eth1").is_empty()),
        "configuration starts"
    );
    env.kill9_any(&a);
    env.attach(ENI1).expect_code(0, "restart");
    env.assert_eni1_configured("eth1", TABLE);
    assert_single_attach(&env, ENI1);
    detach_and_check_clean(&env);
}

/// Killed after DetachNetworkInterface was accepted (Detaching): the next
/// detach finishes the job; nothing is left.
#[test]
fn oneshot_killed_during_detach() {
    let Some(env) = Env::new("kill_during_detach") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    env.patch_settings(&json!({"timing": {"detach_delay_ms": 1500}}));
    let d = env.spawn(&["detach", ENI1], &[]);
    env.wait_call("DetachNetworkInterface", ENI1, Duration::from_secs(10));
    env.kill9(&d);
    assert_eq!(env.eni_state(ENI1).0, "Detaching");
    let rec = env.record(ENI1).expect("the intent is recorded");
    assert_eq!(rec["intent"], "detach", "{rec}");
    detach_and_check_clean(&env);
    // The restart may repeat the Detach of a Detaching ENI (ECS accepts it);
    // it must not attach it again.
    assert_single_attach(&env, ENI1);
}

/// Killed while the Detach request is in flight (the configuration is
/// already removed, the answer not yet back).
#[test]
fn oneshot_killed_while_the_detach_call_is_in_flight() {
    let Some(env) = Env::new("kill_detach_in_flight") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    env.patch_settings(
        &json!({"faults": {"actions": {"DetachNetworkInterface": {"latency_ms": 1500}}}}),
    );
    let d = env.spawn(&["detach", ENI1], &[]);
    assert!(
        wait_for(Duration::from_secs(10), || env.our_rules().is_empty()),
        "the configuration is removed before the Detach call"
    );
    std::thread::sleep(Duration::from_millis(300));
    env.kill9(&d);
    env.patch_settings(&json!({"faults": {"actions": null}}));
    detach_and_check_clean(&env);
    assert!(
        wait_for(Duration::from_secs(3), || env
            .link_with_mac(ENI1_MAC)
            .is_none()),
        "the NIC is unplugged"
    );
    assert_single_attach(&env, ENI1);
}

/// The daemon is killed while its two ENIs are Attaching; the restarted
/// daemon converges both without attaching either again.
#[test]
fn daemon_killed_during_attach_converges_on_restart() {
    let Some(env) = Env::new("daemon_kill_during_attach") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    env.patch_settings(&json!({"timing": {"attach_delay_ms": 1500}}));
    let d = env.spawn(&["run"], &[]);
    env.wait_call("AttachNetworkInterface", ENI1, Duration::from_secs(10));
    env.wait_call("AttachNetworkInterface", ENI2, Duration::from_secs(10));
    env.kill9(&d);
    let d = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    env.assert_eni1_configured(&dev1, table1);
    assert_single_attach(&env, ENI1);
    assert_single_attach(&env, ENI2);
    // Killed again once configured: the restart changes nothing.
    let before = env.snapshot(&dev1, table1);
    env.kill9(&d);
    let _d = env.spawn(&["run"], &[]);
    std::thread::sleep(Duration::from_millis(1500));
    env.wait_configured(ENI1, Duration::from_secs(30));
    assert_eq!(env.snapshot(&dev1, table1), before);
    assert_single_attach(&env, ENI1);
    assert_single_attach(&env, ENI2);
}

/// kill -9 at random points of attach and detach, several rounds: every
/// restart converges, one Attach per round, nothing left after each detach,
/// nothing foreign touched.
#[test]
fn random_kill_points_converge() {
    let Some(env) = Env::new("random_kill_points") else {
        return;
    };
    env.write_config("", &[]);
    let foreign = env.seed_foreign();
    env.patch_settings(&json!({"timing": {"attach_delay_ms": 600, "detach_delay_ms": 500, "metadata_lag_ms": 300}}));
    for round in 0..chaos_rounds(4) {
        env.control("DELETE", "/calls", None);
        let attach_kill = random_below(2000);
        let detach_kill = random_below(1200);
        eprintln!("round {round}: kill -9 attach at {attach_kill} ms, detach at {detach_kill} ms");
        let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
        std::thread::sleep(Duration::from_millis(attach_kill));
        let killed = env.kill9_any(&a);
        eprintln!("round {round}: attach killed: {}", killed.code.is_none());
        env.attach(ENI1).expect_code(
            0,
            &format!("round {round}: attach after kill at {attach_kill} ms"),
        );
        env.assert_eni1_configured("eth1", TABLE);
        assert_single_attach(&env, ENI1);

        let d = env.spawn(&["detach", ENI1], &[]);
        std::thread::sleep(Duration::from_millis(detach_kill));
        let killed = env.kill9_any(&d);
        eprintln!("round {round}: detach killed: {}", killed.code.is_none());
        env.detach(ENI1).expect_code(
            0,
            &format!("round {round}: detach after kill at {detach_kill} ms"),
        );
        assert_eq!(env.eni_state(ENI1).0, "Available", "round {round}");
        env.assert_nothing_left(TABLE);
        assert!(env.record(ENI1).is_none(), "round {round}: record removed");
        assert_single_attach(&env, ENI1);
        env.assert_foreign_intact(&foreign, &format!("round {round}"));
    }
}

/// Killed during a takeover, after the Detach from the other instance was
/// accepted: the restart finishes it (one Detach there, one Attach here).
#[test]
fn oneshot_killed_during_a_takeover() {
    let Some(env) = Env::new("kill_during_takeover") else {
        return;
    };
    let eni = "eni-emu0failover01";
    let other = "i-emu0instance0002";
    env.seed(&json!({
        "instances": [{"id": other, "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-emu0zonei"}],
        "enis": [{"id": eni, "vswitch_id": "vsw-emu0zonei", "instance_id": other,
                  "mac": "00:16:3e:10:00:99", "primary_ip": "192.168.10.60", "queue_number": 2}]
    }));
    env.write_config("", &[format!("id = \"{eni}\"\ntakeover = true")]);
    env.patch_settings(&json!({"timing": {"detach_delay_ms": 1500}}));
    let a = env.spawn(&["attach", eni, "--timeout", "30s"], &[]);
    env.wait_call("DetachNetworkInterface", eni, Duration::from_secs(10));
    env.kill9(&a);
    assert_eq!(env.eni_state(eni).0, "Detaching");
    env.attach(eni).expect_code(0, "restart");
    assert_eq!(env.eni_state(eni), ("InUse".into(), INSTANCE.into()));
    assert_single_attach(&env, eni);
    let dev = env.link_with_mac("00:16:3e:10:00:99").expect("the NIC");
    assert!(
        env.addresses(&dev).contains(&"192.168.10.60/24".to_owned()),
        "{:?}",
        env.addresses(&dev)
    );
}

/// The daemon killed -9 at random points while bringing up two ENIs, then
/// restarted: both converge, each attached once; a final detach leaves
/// nothing behind, and nothing foreign is touched.
#[test]
fn daemon_random_kill_points_converge() {
    let Some(env) = Env::new("daemon_random_kills") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let foreign = env.seed_foreign();
    env.patch_settings(&json!({"timing": {"attach_delay_ms": 700, "metadata_lag_ms": 300}}));
    for round in 0..chaos_rounds(3) {
        env.control("DELETE", "/calls", None);
        let kill_at = random_below(1800);
        eprintln!("round {round}: kill -9 the daemon at {kill_at} ms");
        let d = env.spawn(&["run"], &[]);
        std::thread::sleep(Duration::from_millis(kill_at));
        env.kill9_any(&d);
        let d = env.spawn(&["run"], &[]);
        let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
        env.wait_configured(ENI2, Duration::from_secs(30));
        env.assert_eni1_configured(&dev1, table1);
        assert_single_attach(&env, ENI1);
        assert_single_attach(&env, ENI2);
        env.signal(&d, nix::sys::signal::Signal::SIGTERM);
        env.wait(&d, Duration::from_secs(10))
            .expect_code(0, "SIGTERM");
        for eni in [ENI1, ENI2] {
            env.detach(eni).expect_code(0, "detach");
            assert_eq!(env.eni_state(eni).0, "Available", "round {round}");
        }
        assert!(
            env.our_rules().is_empty(),
            "round {round}: leaked rules:\n{}",
            env.rules()
        );
        assert!(
            env.status().as_array().is_some_and(|a| a.is_empty()),
            "round {round}: no records left"
        );
        env.assert_foreign_intact(&foreign, &format!("round {round}"));
    }
}

/// The one-shot attach killed while the ENI is Attaching, then the operator
/// gives up and detaches: the detach waits for the attach to land and
/// detaches it (ECS refuses a Detach while Attaching), leaving nothing.
#[test]
fn detach_after_an_attach_killed_while_attaching() {
    let Some(env) = Env::new("detach_after_killed_attach") else {
        return;
    };
    env.write_config("", &[]);
    env.patch_settings(&json!({"timing": {"attach_delay_ms": 1500}}));
    let a = env.spawn(&["attach", ENI1, "--timeout", "30s"], &[]);
    env.wait_call("AttachNetworkInterface", ENI1, Duration::from_secs(10));
    env.kill9(&a);
    assert_eq!(env.eni_state(ENI1).0, "Attaching");
    let started = std::time::Instant::now();
    let out = env.run(&["detach", ENI1], Duration::from_secs(60));
    out.expect_code(0, "detach of an ENI that was Attaching");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(env.eni_state(ENI1).0, "Available");
    env.assert_nothing_left(TABLE);
    assert!(env.record(ENI1).is_none(), "state record removed");
}
