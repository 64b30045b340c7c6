//! End-to-end: the daemon (`eni-agent run`) against ecs-emulator in a
//! private named network namespace: sd-notify READY/STATUS/WATCHDOG on a
//! test NOTIFY_SOCKET, SIGHUP add and remove, SIGTERM leaving the network
//! configured, drift repair, restart idempotence.

mod e2e;

use std::time::Duration;

use e2e::*;
use nix::sys::signal::Signal;

/// READY=1 with STATUS once both ENIs are configured, WATCHDOG=1 with
/// WATCHDOG_USEC; SIGHUP adds one ENI (attached) and removes another
/// (unconfigured, Available, with detach_on_remove); SIGTERM exits 0 and
/// leaves the network as it is.
#[test]
fn daemon_notifies_reloads_and_stops_cleanly() {
    let Some(env) = Env::new("daemon_notify_reload_stop") else {
        return;
    };
    let third = env.seed_third_eni();
    let mut notify = NotifySocket::bind(env.dir.path());
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let daemon = env.spawn(
        &["run"],
        &[
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".into()),
        ],
    );
    let ready = notify
        .wait_for(Duration::from_secs(30), |m| {
            m.lines().any(|l| l == "READY=1")
        })
        .unwrap_or_else(|| panic!("no READY=1; got {:?}", notify.messages));
    assert!(
        ready.contains("STATUS=2/2 ENIs configured"),
        "READY carries the summary: {ready:?}"
    );
    let (dev1, table1) = env.configured(ENI1).expect("ENI1 configured at READY");
    let (dev2, table2) = env.configured(ENI2).expect("ENI2 configured at READY");
    assert_ne!(table1, table2);
    env.assert_eni1_configured(&dev1, table1);
    assert!(
        env.addresses(&dev2)
            .contains(&"192.168.10.30/24".to_owned()),
        "{:?}",
        env.addresses(&dev2)
    );
    // WATCHDOG_USEC=1s: pets every 0.5 s.
    notify.messages.clear();
    assert!(
        notify
            .wait_for(Duration::from_secs(3), |m| m
                .lines()
                .any(|l| l == "WATCHDOG=1"))
            .is_some(),
        "no WATCHDOG=1; got {:?}",
        notify.messages
    );
    let pets_before = notify.messages.len();
    std::thread::sleep(Duration::from_millis(2000));
    notify.drain();
    assert!(
        notify.messages[pets_before..]
            .iter()
            .filter(|m| m.contains("WATCHDOG=1"))
            .count()
            >= 2,
        "the watchdog is petted regularly: {:?}",
        notify.messages
    );

    // SIGHUP: ENI2 out, the third ENI in.
    env.write_config(
        "detach_on_remove = true",
        &[Env::eni(ENI1), Env::eni(third)],
    );
    notify.messages.clear();
    env.signal(&daemon, Signal::SIGHUP);
    let (dev3, table3) = env.wait_configured(third, Duration::from_secs(20));
    assert!(
        env.addresses(&dev3)
            .contains(&"192.168.10.70/24".to_owned()),
        "{:?}",
        env.addresses(&dev3)
    );
    assert_eq!(env.eni_state(third), ("InUse".into(), INSTANCE.into()));
    assert!(
        wait_for(Duration::from_secs(10), || env.eni_state(ENI2).0
            == "Available"),
        "ENI2 detached after its removal: {:?}",
        env.eni_state(ENI2)
    );
    assert!(
        wait_for(Duration::from_secs(5), || env.record(ENI2).is_none()),
        "ENI2's record removed"
    );
    let eni2_sources = [
        "192.168.10.30 ",
        "192.168.10.31 ",
        "192.168.10.32 ",
        "192.168.10.144/28 ",
        "2408:4005:3a0:7101::30 ",
    ];
    assert!(
        env.our_rules().iter().all(|r| !eni2_sources
            .iter()
            .any(|s| r.contains(&format!("from {s}")))),
        "ENI2's rules removed:\n{}",
        env.rules()
    );
    assert!(
        wait_for(Duration::from_secs(3), || env
            .link_with_mac("00:16:3e:10:00:03")
            .is_none()),
        "ENI2's NIC unplugged"
    );
    assert!(env.table_routes(table2).is_empty() || table2 == table3);
    assert!(
        notify
            .wait_for(Duration::from_secs(10), |m| m
                .contains("STATUS=2/2 ENIs configured"))
            .is_some(),
        "STATUS after the reload: {:?}",
        notify.messages
    );
    env.assert_eni1_configured(&dev1, table1);

    // SIGTERM: exit 0, nothing touched.
    let before = (
        env.snapshot(&dev1, table1),
        env.snapshot(&dev3, table3),
        env.eni_state(ENI1),
        env.eni_state(third),
    );
    let calls_before = env.calls().len();
    env.signal(&daemon, Signal::SIGTERM);
    let out = env.wait(&daemon, Duration::from_secs(10));
    out.expect_code(0, "daemon after SIGTERM");
    notify.drain();
    assert!(
        notify.messages.iter().any(|m| m.contains("STOPPING=1")),
        "STOPPING=1: {:?}",
        notify.messages
    );
    let after = (
        env.snapshot(&dev1, table1),
        env.snapshot(&dev3, table3),
        env.eni_state(ENI1),
        env.eni_state(third),
    );
    assert_eq!(after, before, "SIGTERM leaves the network configured");
    let late: Vec<_> = env.calls()[calls_before..]
        .iter()
        .filter(|c| c["action"] != "DescribeNetworkInterfaceAttribute")
        .cloned()
        .collect();
    assert!(late.is_empty(), "no mutating call on SIGTERM: {late:?}");
    env.assert_eni1_configured(&dev1, table1);
}

/// Deleting the agent's rule, address or route while the daemon runs: put
/// back within a couple of seconds.
#[test]
fn daemon_repairs_drift() {
    let Some(env) = Env::new("daemon_repairs_drift") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let _daemon = env.spawn(&["run"], &[]);
    let (dev, table) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.assert_eni1_configured(&dev, table);
    let t = table.to_string();
    let repaired = |what: &str| {
        assert!(
            wait_for(Duration::from_secs(3), || {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    env.assert_eni1_configured(&dev, table)
                }))
                .is_ok()
            }),
            "{what} not repaired within 3 s:\n{}\n{:?}\n{:?}",
            env.rules(),
            env.table_routes(table),
            env.addresses(&dev)
        );
    };
    env.ip(&[
        "rule",
        "del",
        "priority",
        "20300",
        "from",
        ENI1_SECONDARIES[0],
        "table",
        &t,
    ]);
    repaired("a deleted rule");
    env.ip(&[
        "-6",
        "rule",
        "del",
        "priority",
        "20100",
        "from",
        ENI1_IPV6[0],
        "table",
        &t,
    ]);
    repaired("a deleted IPv6 rule");
    env.ip(&[
        "addr",
        "del",
        &format!("{}/32", ENI1_SECONDARIES[1]),
        "dev",
        &dev,
    ]);
    repaired("a deleted address");
    env.ip(&["route", "del", "default", "table", &t]);
    repaired("a deleted route");
    env.ip(&["rule", "del", "priority", "20200"]);
    repaired("the deleted shared main rule");
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);
}

/// Drift of the link itself: set down, MTU changed, the table flushed —
/// all put back.
#[test]
fn daemon_repairs_link_drift() {
    let Some(env) = Env::new("daemon_repairs_link_drift") else {
        return;
    };
    env.write_config("", &[format!("id = \"{ENI1}\"\nmtu = 9000")]);
    let _daemon = env.spawn(&["run"], &[]);
    let (dev, table) = env.wait_configured(ENI1, Duration::from_secs(30));
    assert!(env.ip(&["link", "show", &dev]).contains("mtu 9000"));
    env.ip(&["link", "set", &dev, "mtu", "1500"]);
    assert!(
        wait_for(Duration::from_secs(3), || env
            .ip(&["link", "show", &dev])
            .contains("mtu 9000")),
        "MTU put back: {}",
        env.ip(&["link", "show", &dev])
    );
    env.ip(&["route", "flush", "table", &table.to_string()]);
    assert!(
        wait_for(Duration::from_secs(3), || env.table_routes(table).len()
            == 4),
        "table routes put back: {:?}",
        env.table_routes(table)
    );
    env.ip(&["link", "set", &dev, "down"]);
    assert!(
        wait_for(Duration::from_secs(3), || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                env.assert_eni1_configured(&dev, table)
            }))
            .is_ok()
        }),
        "link set up and fully configured again: {}\n{:?}\n{:?}",
        env.ip(&["link", "show", &dev]),
        env.table_routes(table),
        env.addresses(&dev)
    );
}

/// Restarting the daemon (and a one-shot before it) sends no second Attach
/// and changes nothing.
#[test]
fn daemon_restart_is_idempotent() {
    let Some(env) = Env::new("daemon_restart_idempotent") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    env.attach(ENI1).expect_code(0, "one-shot first");
    let before = env.snapshot("eth1", TABLE);
    for round in 0..2 {
        let mut notify = NotifySocket::bind(&env.path(&format!("n{round}")).tap_mkdir());
        let daemon = env.spawn(
            &["run"],
            &[("NOTIFY_SOCKET", notify.path.display().to_string())],
        );
        assert!(
            notify
                .wait_for(Duration::from_secs(30), |m| m.contains("READY=1"))
                .is_some(),
            "round {round}: READY=1; got {:?}",
            notify.messages
        );
        assert_eq!(env.configured(ENI1), Some(("eth1".into(), TABLE)));
        assert_eq!(env.snapshot("eth1", TABLE), before, "round {round}");
        env.signal(&daemon, Signal::SIGTERM);
        env.wait(&daemon, Duration::from_secs(10))
            .expect_code(0, "SIGTERM");
    }
    assert_eq!(
        env.codes("AttachNetworkInterface", ENI1),
        ["Success"],
        "exactly one AttachNetworkInterface"
    );
    env.assert_eni1_configured("eth1", TABLE);
}

/// A second agent on the same state directory is refused while the daemon
/// holds the lock.
#[test]
fn a_second_agent_is_refused_while_the_daemon_runs() {
    let Some(env) = Env::new("second_agent_refused") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let _daemon = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    let out = env.attach(ENI2);
    out.expect_code(1, "locked");
    assert!(out.stderr.contains("another eni-agent"), "{}", out.stderr);
    assert!(env.codes("AttachNetworkInterface", ENI2).is_empty());
}

/// A daemon whose ENI fails permanently still says READY=1, with the
/// failure in STATUS.
#[test]
fn daemon_is_ready_when_an_eni_failed_permanently() {
    let Some(env) = Env::new("daemon_ready_with_failure") else {
        return;
    };
    let mut notify = NotifySocket::bind(env.dir.path());
    env.write_config("", &[Env::eni(ENI1), Env::eni(OTHER_ZONE)]);
    let _daemon = env.spawn(
        &["run"],
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    let ready = notify
        .wait_for(Duration::from_secs(30), |m| m.contains("READY=1"))
        .unwrap_or_else(|| panic!("no READY=1; got {:?}", notify.messages));
    assert!(
        ready.contains("1/2 ENIs configured") && ready.contains(OTHER_ZONE),
        "{ready:?}"
    );
    let (dev, table) = env.configured(ENI1).expect("ENI1 configured");
    env.assert_eni1_configured(&dev, table);
    let rec = env.record(OTHER_ZONE).expect("a record for the failed ENI");
    assert_eq!(rec["progress"], "failed", "{rec}");
    assert!(
        rec["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("cn-hangzhou-j")),
        "{rec}"
    );
}

/// IPs assigned and unassigned after the attach are picked up by the
/// periodic Describe (describe_interval = 5 s) and configured.
#[test]
fn daemon_picks_up_ip_changes() {
    let Some(env) = Env::new("daemon_picks_up_ip_changes") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let _daemon = env.spawn(&["run"], &[]);
    let (dev, table) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.api(
        "AssignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI1),
            ("PrivateIpAddress.1", "192.168.10.24"),
        ],
    )
    .expect("assign");
    let t = table.to_string();
    assert!(
        wait_for(Duration::from_secs(12), || {
            env.addresses(&dev).contains(&"192.168.10.24/32".to_owned())
                && env
                    .our_rules()
                    .iter()
                    .any(|r| r.contains("from 192.168.10.24 ") && r.contains(&t))
        }),
        "the assigned IP is configured: {:?}\n{}",
        env.addresses(&dev),
        env.rules()
    );
    env.api(
        "UnassignPrivateIpAddresses",
        &[
            ("NetworkInterfaceId", ENI1),
            ("PrivateIpAddress.1", ENI1_SECONDARIES[2]),
        ],
    )
    .expect("unassign");
    let gone = format!("{}/32", ENI1_SECONDARIES[2]);
    assert!(
        wait_for(Duration::from_secs(12), || {
            !env.addresses(&dev).contains(&gone)
                && !env
                    .our_rules()
                    .iter()
                    .any(|r| r.contains(&format!("from {} ", ENI1_SECONDARIES[2])))
        }),
        "the unassigned IP is removed: {:?}\n{}",
        env.addresses(&dev),
        env.rules()
    );
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);
}

/// An ENI detached behind the daemon's back (console, another tool) is
/// attached again by the periodic Describe.
#[test]
fn daemon_reattaches_an_eni_detached_behind_its_back() {
    let Some(env) = Env::new("daemon_reattaches_eni") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let _daemon = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    env.api(
        "DetachNetworkInterface",
        &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
    )
    .expect("detach behind the agent's back");
    assert!(
        wait_for(Duration::from_secs(5), || env.eni_state(ENI1).0
            == "Available"),
        "detached"
    );
    assert!(
        wait_for(Duration::from_secs(15), || {
            env.successes("AttachNetworkInterface", ENI1) == 2
                && env.eni_state(ENI1) == ("InUse".into(), INSTANCE.into())
        }),
        "attached again; Attach calls: {:?}, state {:?}",
        env.codes("AttachNetworkInterface", ENI1),
        env.eni_state(ENI1)
    );
    let mut ok = false;
    wait_for(Duration::from_secs(10), || {
        ok = env
            .link_with_mac("00:16:3e:10:00:02")
            .is_some_and(|dev| env.addresses(&dev).len() == 6);
        ok
    });
    assert!(ok, "configured again");
}

/// Killed -9 while a SIGHUP removal was detaching an ENI: the next start
/// finishes the detach (the intent is in the state directory), although
/// the ENI is no longer in the configuration.
#[test]
fn daemon_resumes_an_interrupted_detach_on_restart() {
    let Some(env) = Env::new("daemon_resumes_detach") else {
        return;
    };
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let d = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    env.patch_settings(
        &serde_json::json!({"faults": {"actions": {"DetachNetworkInterface": {"latency_ms": 3000}}}}),
    );
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1)]);
    env.signal(&d, Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || env
            .record(ENI2)
            .is_some_and(|r| r["intent"] == "detach")),
        "the detach intent is recorded"
    );
    std::thread::sleep(Duration::from_millis(500));
    env.kill9(&d);
    env.patch_settings(&serde_json::json!({"faults": {"actions": null}}));
    let _d = env.spawn(&["run"], &[]);
    assert!(
        wait_for(Duration::from_secs(15), || env.eni_state(ENI2).0
            == "Available"
            && env.record(ENI2).is_none()),
        "the interrupted detach is finished: {:?}, record {:?}",
        env.eni_state(ENI2),
        env.record(ENI2)
    );
    assert!(
        env.our_rules().iter().all(|r| !r.contains("192.168.10.3")),
        "no rule of ENI2 left:\n{}",
        env.rules()
    );
}

/// An invalid configuration on SIGHUP is refused; the daemon keeps running
/// with the old one.
#[test]
fn daemon_keeps_running_on_an_invalid_reload() {
    let Some(env) = Env::new("daemon_invalid_reload") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let d = env.spawn(&["run"], &[]);
    let (dev, table) = env.wait_configured(ENI1, Duration::from_secs(30));
    std::fs::write(env.config_path(), "[agent]\nbogus_key = 1\n").expect("write");
    env.signal(&d, Signal::SIGHUP);
    let log = || std::fs::read_to_string(&d.stderr).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains("the new configuration is invalid")),
        "the reload is refused: {}",
        log()
    );
    env.assert_eni1_configured(&dev, table);
    let stderr = log();
    assert!(
        stderr.contains("bogus_key"),
        "the error names the key: {stderr}"
    );
    env.signal(&d, Signal::SIGTERM);
    env.wait(&d, Duration::from_secs(10))
        .expect_code(0, "SIGTERM");
}

/// `tag = "team=net"` selects every Available ENI so tagged in this zone.
#[test]
fn daemon_selects_enis_by_tag() {
    let Some(env) = Env::new("daemon_selects_by_tag") else {
        return;
    };
    env.write_config("", &["tag = \"team=net\"".to_owned()]);
    let _d = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    env.assert_eni1_configured(&dev1, table1);
    for eni in [OTHER_ZONE, OTHER_VPC] {
        assert!(env.codes("AttachNetworkInterface", eni).is_empty());
    }
}

/// SIGTERM while an ENI is still Attaching: the daemon stops at once with
/// exit 0 and sends nothing more (no detach).
#[test]
fn daemon_stops_promptly_on_sigterm_during_an_attach() {
    let Some(env) = Env::new("daemon_sigterm_during_attach") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    env.patch_settings(&serde_json::json!({"faults": {"stuck_attaching": [ENI1]}}));
    let d = env.spawn(&["run"], &[]);
    env.wait_call("AttachNetworkInterface", ENI1, Duration::from_secs(10));
    let started = std::time::Instant::now();
    env.signal(&d, Signal::SIGTERM);
    env.wait(&d, Duration::from_secs(5))
        .expect_code(0, "SIGTERM while Attaching");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(env.codes("DetachNetworkInterface", ENI1).is_empty());
    assert_eq!(env.eni_state(ENI1).0, "Attaching");
}

/// SIGHUP with changed settings for a configured ENI (a queue override)
/// re-applies them without attaching again.
#[test]
fn daemon_applies_changed_settings_on_reload() {
    let Some(env) = Env::new("daemon_reload_settings") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI2)]);
    let d = env.spawn(&["run"], &[]);
    let (dev, _) = env.wait_configured(ENI2, Duration::from_secs(30));
    assert_eq!(env.channels(&dev), (4, 4), "QueueNumber 4 from the API");
    env.write_config("", &[format!("id = \"{ENI2}\"\nqueues = 2")]);
    env.signal(&d, Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(10), || env.channels(&dev) == (2, 2)),
        "queues = 2 applied: {:?}",
        env.channels(&dev)
    );
    assert_eq!(env.successes("AttachNetworkInterface", ENI2), 1);
}

/// The watchdog keeps being petted while a SIGHUP removal waits for a slow
/// detach (WatchdogSec would otherwise kill the daemon mid-detach).
#[test]
fn daemon_pets_the_watchdog_during_a_slow_reload() {
    let Some(env) = Env::new("daemon_watchdog_reload") else {
        return;
    };
    let mut notify = NotifySocket::bind(env.dir.path());
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let d = env.spawn(
        &["run"],
        &[
            ("NOTIFY_SOCKET", notify.path.display().to_string()),
            ("WATCHDOG_USEC", "1000000".into()),
        ],
    );
    assert!(
        notify
            .wait_for(Duration::from_secs(30), |m| m.contains("READY=1"))
            .is_some(),
        "READY=1: {:?}",
        notify.messages
    );
    env.patch_settings(&serde_json::json!({"timing": {"detach_delay_ms": 3000}}));
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1)]);
    notify.drain();
    env.signal(&d, Signal::SIGHUP);
    // Record when each WATCHDOG=1 arrives for 4 s.
    let mut stamps = vec![std::time::Instant::now()];
    let until = std::time::Instant::now() + Duration::from_secs(4);
    while std::time::Instant::now() < until {
        if notify
            .recv(Duration::from_millis(100))
            .is_some_and(|m| m.contains("WATCHDOG=1"))
        {
            stamps.push(std::time::Instant::now());
        }
    }
    stamps.push(std::time::Instant::now());
    let max_gap = stamps
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::from_secs(4));
    assert!(
        max_gap < Duration::from_millis(1000),
        "WATCHDOG=1 gap of {max_gap:?} during the reload (WATCHDOG_USEC = 1 s); {} pets",
        stamps.len()
    );
}

/// `eni-agent plan` prints the operations and changes nothing.
#[test]
fn plan_prints_and_changes_nothing() {
    let Some(env) = Env::new("plan_changes_nothing") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    let before = env.snapshot("eth1", TABLE);
    let calls_before = env.calls().len();
    // Right after the attach (the metadata service may still lag): nothing
    // would change on the configured ENI.
    let out = env.run(&["plan", ENI1], Duration::from_secs(20));
    out.expect_code(0, "plan");
    assert!(out.stdout.contains("# 0 changes on eth1"), "{}", out.stdout);
    assert!(
        !out.stdout.lines().any(|l| l.starts_with("ip ")),
        "{}",
        out.stdout
    );
    let out = env.run(&["plan", ENI1, "--full"], Duration::from_secs(20));
    out.expect_code(0, "plan --full");
    assert!(
        out.stdout.contains("eth1") && out.stdout.contains(&TABLE.to_string()),
        "{}",
        out.stdout
    );
    assert_eq!(env.snapshot("eth1", TABLE), before);
    let mutating: Vec<_> = env.calls()[calls_before..]
        .iter()
        .filter(|c| {
            !c["action"]
                .as_str()
                .is_some_and(|a| a.starts_with("Describe"))
        })
        .cloned()
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
}

/// SIGHUP removing an ENI with detach_on_remove = false (the default):
/// left attached and configured.
#[test]
fn daemon_leaves_a_removed_eni_attached_by_default() {
    let Some(env) = Env::new("daemon_remove_keeps") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let d = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    let before = env.snapshot(&dev1, table1);
    env.write_config("", &[Env::eni(ENI2)]);
    env.signal(&d, Signal::SIGHUP);
    let log = || std::fs::read_to_string(&d.stderr).unwrap_or_default();
    assert!(
        wait_for(Duration::from_secs(10), || log()
            .contains("left attached and configured")),
        "the reload handled the removal: {}",
        log()
    );
    assert_eq!(env.snapshot(&dev1, table1), before);
    assert_eq!(env.eni_state(ENI1), ("InUse".into(), INSTANCE.into()));
    assert!(env.codes("DetachNetworkInterface", ENI1).is_empty());
    env.signal(&d, Signal::SIGTERM);
    env.wait(&d, Duration::from_secs(10))
        .expect_code(0, "SIGTERM");
}

/// HA failover: another instance took the ENI over (its agent has
/// takeover = true too). This daemon must not take it back on its periodic
/// Describe — two agents with takeover = true would move the ENI back and
/// forth every describe_interval.
#[test]
fn daemon_does_not_steal_back_an_eni_taken_over_elsewhere() {
    let Some(env) = Env::new("daemon_no_steal_back") else {
        return;
    };
    let other = "i-emu0instance0002";
    env.seed(&serde_json::json!({"instances": [{"id": other,
        "instance_type": "ecs.g7.xlarge", "vswitch_id": "vsw-emu0zonei"}]}));
    env.write_config("", &[format!("id = \"{ENI1}\"\ntakeover = true")]);
    let _d = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    // The other node's agent takes it over (detach here, attach there).
    env.patch_settings(&serde_json::json!({"timing": {"detach_delay_ms": 50}}));
    env.api(
        "DetachNetworkInterface",
        &[("NetworkInterfaceId", ENI1), ("InstanceId", INSTANCE)],
    )
    .expect("detach here");
    assert!(wait_for(Duration::from_secs(3), || env.eni_state(ENI1).0
        == "Available"));
    env.api(
        "AttachNetworkInterface",
        &[("NetworkInterfaceId", ENI1), ("InstanceId", other)],
    )
    .expect("attach there");
    assert!(wait_for(Duration::from_secs(3), || env.eni_state(ENI1)
        == ("InUse".into(), other.into())));
    // Two periodic Describes of the ENI (every 5 s) find it elsewhere.
    let describes = || env.codes("DescribeNetworkInterfaceAttribute", ENI1).len();
    let before = describes();
    assert!(
        wait_for(Duration::from_secs(20), || describes() >= before + 2),
        "no periodic Describe"
    );
    assert_eq!(
        env.eni_state(ENI1),
        ("InUse".into(), other.into()),
        "the ENI stays with the instance that took it over"
    );
}

/// SIGHUP removes an ENI whose attach is still in progress (Attaching),
/// with detach_on_remove: it ends Available and unconfigured.
#[test]
fn daemon_removes_an_eni_that_is_still_attaching() {
    let Some(env) = Env::new("daemon_remove_attaching") else {
        return;
    };
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1), Env::eni(ENI2)]);
    env.patch_settings(&serde_json::json!({"timing": {"attach_delay_ms": 2000}}));
    let d = env.spawn(&["run"], &[]);
    env.wait_call("AttachNetworkInterface", ENI2, Duration::from_secs(10));
    env.write_config("detach_on_remove = true", &[Env::eni(ENI1)]);
    env.signal(&d, Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(15), || env.eni_state(ENI2).0
            == "Available"
            && env.record(ENI2).is_none()),
        "ENI2 detached after the attach landed: {:?}, record {:?}",
        env.eni_state(ENI2),
        env.record(ENI2)
    );
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(15));
    env.assert_eni1_configured(&dev1, table1);
    assert!(
        env.our_rules().iter().all(|r| !r.contains("192.168.10.3")),
        "no rule of ENI2:\n{}",
        env.rules()
    );
}

/// A long-running daemon on the instance RAM role: the STS credentials
/// expire and are rotated; later calls still succeed.
#[test]
fn daemon_survives_sts_credential_rotation() {
    let Some(env) = Env::new("daemon_sts_rotation") else {
        return;
    };
    env.ram_role_only
        .store(true, std::sync::atomic::Ordering::Relaxed);
    env.patch_settings(&serde_json::json!({"metadata": {
        "credential_ttl_secs": 6, "credential_refresh_secs": 4
    }}));
    env.write_config("", &[Env::eni(ENI1)]);
    let d = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    // The first credentials expire 6 s after they were issued.
    std::thread::sleep(Duration::from_secs(8));
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    env.signal(&d, Signal::SIGHUP);
    env.wait_configured(ENI2, Duration::from_secs(20));
    let calls = env.calls();
    let keys: std::collections::BTreeSet<&str> = calls
        .iter()
        .filter_map(|c| c["access_key_id"].as_str())
        .collect();
    assert!(keys.len() >= 2, "the credentials were rotated: {keys:?}");
    let expired: Vec<_> = calls
        .iter()
        .filter(|c| {
            c["code"]
                .as_str()
                .is_some_and(|code| code.contains("Expired"))
        })
        .collect();
    assert!(
        expired.is_empty(),
        "no call with expired credentials: {expired:?}"
    );
}

/// The NIC vanishes and comes back (the emulator unplugs an instance's NICs
/// while it is Stopped and plugs them again when Running): the daemon
/// configures the new link without attaching again.
#[test]
fn daemon_configures_a_nic_that_comes_back() {
    let Some(env) = Env::new("daemon_nic_comes_back") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1)]);
    let _d = env.spawn(&["run"], &[]);
    env.wait_configured(ENI1, Duration::from_secs(30));
    let mac = "00:16:3e:10:00:02";
    let path = format!("/instances/{INSTANCE}");
    let (st, body) = env.control(
        "PATCH",
        &path,
        Some(&serde_json::json!({"status": "Stopped"})),
    );
    assert_eq!(st, 200, "{body}");
    assert!(
        wait_for(Duration::from_secs(5), || env.link_with_mac(mac).is_none()),
        "the NIC is unplugged while Stopped"
    );
    let (st, body) = env.control(
        "PATCH",
        &path,
        Some(&serde_json::json!({"status": "Running"})),
    );
    assert_eq!(st, 200, "{body}");
    let mut dev = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            dev = env.link_with_mac(mac);
            dev.is_some()
        }),
        "the NIC is back"
    );
    let dev = dev.expect("dev");
    let table = u32::try_from(
        env.record(ENI1).expect("record")["table"]
            .as_u64()
            .expect("table"),
    )
    .expect("u32");
    assert!(
        wait_for(Duration::from_secs(5), || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                env.assert_eni1_configured(&dev, table)
            }))
            .is_ok()
        }),
        "configured again: {:?}\n{}",
        env.addresses(&dev),
        env.rules()
    );
    assert_eq!(env.successes("AttachNetworkInterface", ENI1), 1);
}

/// No ENI configured: READY=1 at once; a SIGHUP adding one attaches it.
#[test]
fn daemon_without_enis_is_ready_at_once() {
    let Some(env) = Env::new("daemon_without_enis") else {
        return;
    };
    let mut notify = NotifySocket::bind(env.dir.path());
    env.write_config("", &[]);
    let d = env.spawn(
        &["run"],
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    assert!(
        notify
            .wait_for(Duration::from_secs(10), |m| m.contains("READY=1"))
            .is_some(),
        "READY=1: {:?}",
        notify.messages
    );
    env.write_config("", &[Env::eni(ENI1)]);
    env.signal(&d, Signal::SIGHUP);
    let (dev, table) = env.wait_configured(ENI1, Duration::from_secs(20));
    env.assert_eni1_configured(&dev, table);
    assert!(
        notify
            .wait_for(Duration::from_secs(10), |m| m
                .contains("STATUS=1/1 ENIs configured"))
            .is_some(),
        "STATUS: {:?}",
        notify.messages
    );
}

trait TapMkdir {
    fn tap_mkdir(self) -> Self;
}

impl TapMkdir for std::path::PathBuf {
    fn tap_mkdir(self) -> Self {
        std::fs::create_dir_all(&self).expect("mkdir");
        self
    }
}
