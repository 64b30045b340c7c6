//! End-to-end: hostile or mistaken answers from the (emulated) cloud against
//! the real binaries in a private network namespace. For each, the agent
//! exits non-zero (the daemon keeps running) with an error naming what is
//! wrong, and the namespace's primary NIC `eth0` keeps its addresses, its
//! routes, the main table and its sysctls byte for byte — through attach,
//! detach and daemon restart.

mod e2e;

use std::time::Duration;

use e2e::*;
use nix::sys::signal::Signal;
use serde_json::json;

/// ENI1's MAC in the built-in scenario.
const ENI1_MAC: &str = "00:16:3e:10:00:02";
/// The instance's primary MAC (the metadata service's `mac`).
const PRIMARY_MAC: &str = "00:16:3e:10:00:01";

/// The emulator plugs the primary ENI as `eth0`; configure it like an ECS
/// instance's (as the OS would): `mac` (when given), 192.168.10.10/24, an
/// IPv6 address and the main table's default routes through it.
fn fake_eth0(env: &Env, mac: Option<&str>) {
    // The emulator plugs it right after its ready line.
    assert!(
        wait_for(Duration::from_secs(10), || env
            .ip_try(&["link", "show", "dev", "eth0"])
            .0),
        "the emulator never plugged the primary NIC eth0"
    );
    if let Some(mac) = mac {
        env.ip(&["link", "set", "eth0", "address", mac]);
    }
    env.ip(&["link", "set", "eth0", "up"]);
    env.ip(&["address", "add", "192.168.10.10/24", "dev", "eth0"]);
    env.ip(&[
        "-6",
        "address",
        "add",
        "fd00::10/64",
        "dev",
        "eth0",
        "nodad",
    ]);
    env.ip(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
    env.ip(&[
        "-6", "route", "add", "default", "via", "fd00::1", "dev", "eth0",
    ]);
    // The kernel's own duplicate address detection of the link-local address
    // changes its flags: let it finish before the snapshot.
    assert!(
        wait_for(Duration::from_secs(10), || !env
            .ip(&["address", "show", "dev", "eth0"])
            .contains("tentative")),
        "eth0's link-local address stays tentative"
    );
}

/// eth0's addresses, the main table (both families), every rule and eth0's
/// sysctls, as text.
fn primary_snapshot(env: &Env) -> String {
    let mut s = env.ip(&["-d", "address", "show", "dev", "eth0"]);
    s += &env.ip(&["route", "show", "table", "main"]);
    s += &env.ip(&["-6", "route", "show", "table", "main"]);
    s += &env.rules();
    for key in [
        "ipv4/conf/eth0/rp_filter",
        "ipv4/conf/eth0/arp_ignore",
        "ipv4/conf/eth0/arp_announce",
        "ipv6/conf/eth0/accept_ra",
        "ipv6/conf/eth0/disable_ipv6",
    ] {
        let (ok, v) = env.exec(&["cat", &format!("/proc/sys/net/{key}")]);
        assert!(ok, "{key}: {v}");
        s += &format!("{key}={v}");
    }
    s
}

fn stderr_of(agent: &Agent) -> String {
    std::fs::read_to_string(&agent.stderr).unwrap_or_default()
}

/// An ENI whose MAC is the NIC holding the default route: the one-shot
/// refuses before anything (no hand-off, no Attach), naming the ENI, the MAC
/// and why; detach leaves eth0 alone as well.
#[test]
fn oneshot_refuses_the_nic_holding_the_default_route() {
    let Some(env) = Env::new("hostile_default_route_nic") else {
        return;
    };
    env.write_config("", &[]);
    fake_eth0(&env, Some(ENI1_MAC));
    let before = primary_snapshot(&env);

    let out = env.attach(ENI1);
    out.expect_code(1, "attach of an ENI whose MAC is eth0's");
    assert!(
        out.stderr.contains(ENI1)
            && out.stderr.contains(ENI1_MAC)
            && out.stderr.contains("default route"),
        "the refusal names the ENI, the MAC and why: {}",
        out.stderr
    );
    assert!(
        env.codes("AttachNetworkInterface", ENI1).is_empty(),
        "nothing attached"
    );
    assert_eq!(
        primary_snapshot(&env),
        before,
        "attach changed the primary NIC"
    );

    env.detach(ENI1);
    assert_eq!(
        primary_snapshot(&env),
        before,
        "detach changed the primary NIC"
    );
    assert_eq!(env.our_rules(), Vec::<String>::new());
}

/// An ENI that ECS says has the instance's primary MAC (metadata `mac`) is
/// refused even though no NIC of this namespace carries it.
#[test]
fn oneshot_refuses_the_primary_mac() {
    let Some(env) = Env::new("hostile_primary_mac") else {
        return;
    };
    env.write_config("", &[]);
    fake_eth0(&env, None);
    let before = primary_snapshot(&env);
    let hostile = "eni-emu0hostile00001";
    env.seed(&json!({"enis": [{
        "id": hostile, "vswitch_id": "vsw-emu0zonei", "mac": PRIMARY_MAC,
        "primary_ip": "192.168.10.80"
    }]}));
    let out = env.attach(hostile);
    out.expect_code(1, "attach of an ENI with the primary MAC");
    assert!(
        out.stderr.contains(hostile)
            && out.stderr.contains(PRIMARY_MAC)
            && out.stderr.contains("primary NIC"),
        "{}",
        out.stderr
    );
    assert!(env.codes("AttachNetworkInterface", hostile).is_empty());
    assert_eq!(primary_snapshot(&env), before);
}

/// The daemon with such an ENI keeps running, refuses it, and leaves eth0
/// alone; so does a restart.
#[test]
fn daemon_keeps_running_and_never_touches_the_primary_nic() {
    let Some(env) = Env::new("hostile_daemon_primary") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    fake_eth0(&env, Some(ENI1_MAC));
    let before = primary_snapshot(&env);
    for round in 0..2 {
        let d = env.spawn(&["run"], &[]);
        // The other ENI is configured normally.
        let (dev2, _) = env.wait_configured(ENI2, Duration::from_secs(30));
        assert!(
            wait_for(Duration::from_secs(30), || {
                let e = stderr_of(&d);
                e.contains("refusing") && e.contains(ENI1) && e.contains("default route")
            }),
            "round {round}: the daemon reports the refusal: {}",
            stderr_of(&d)
        );
        assert_eq!(
            without(&primary_snapshot(&env), &dev2),
            without(&before, &dev2),
            "round {round}: the primary NIC changed"
        );
        assert!(env.codes("AttachNetworkInterface", ENI1).is_empty());
        env.signal(&d, Signal::SIGTERM);
        env.wait(&d, Duration::from_secs(10))
            .expect_code(0, "SIGTERM");
    }
}

/// A snapshot without what belongs to the ENI the daemon configures
/// normally: its rules (protocol 237) and the kernel's routes on its NIC.
fn without(snapshot: &str, dev: &str) -> String {
    snapshot
        .lines()
        .filter(|l| !l.contains("proto 237") && !l.contains(&format!("dev {dev} ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// In tag mode an API error is not "no ENIs": DescribeNetworkInterfaces
/// failing at a SIGHUP keeps every tag-selected ENI (nothing is detached,
/// even with detach_on_remove), and the lookup is retried until it works.
#[test]
fn daemon_keeps_tag_selected_enis_when_the_list_fails() {
    let Some(env) = Env::new("hostile_tag_list_fails") else {
        return;
    };
    env.write_config(
        "detach_on_remove = true",
        &["tag = \"team=net\"".to_owned()],
    );
    let d = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    let fault =
        json!({"faults": {"actions": {"DescribeNetworkInterfaces": {"internal_error_rate": 1.0}}}});
    env.patch_settings(&fault);
    env.signal(&d, Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(60), || stderr_of(&d)
            .contains("keeping the last successful answer")),
        "the failed lookup is reported: {}",
        stderr_of(&d)
    );
    env.patch_settings(&json!({"faults": {"actions": {"DescribeNetworkInterfaces": null}}}));
    assert!(
        wait_for(Duration::from_secs(60), || stderr_of(&d)
            .contains("the tag lookups succeeded again")),
        "the lookup is retried: {}",
        stderr_of(&d)
    );
    for eni in [ENI1, ENI2] {
        assert!(
            env.codes("DetachNetworkInterface", eni).is_empty(),
            "{eni} detached"
        );
        assert_eq!(env.eni_state(eni).0, "InUse", "{eni}");
    }
    env.assert_eni1_configured(&dev1, table1);
}

/// One unreadable state record does not fail `status`: the record is named
/// and the others are listed.
#[test]
fn status_survives_a_corrupt_record() {
    let Some(env) = Env::new("hostile_corrupt_record") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach");
    std::fs::write(env.state_dir().join("enis/eni-broken.json"), b"{not json").expect("write");
    let out = env.run(&["status", "--json"], Duration::from_secs(10));
    out.expect_code(0, "status with a corrupt record");
    assert!(out.stderr.contains("eni-broken.json"), "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).expect("JSON");
    assert_eq!(v[0]["eni_id"], ENI1, "{v}");
}

/// vSwitch facts no ENI can have — a CIDR that pulls half the Internet into
/// the ENI's table, a vSwitch outside its VPC — are refused before anything
/// reaches the kernel; the refusal names the field and the value.
#[test]
fn oneshot_refuses_hostile_vswitch_facts() {
    let Some(env) = Env::new("hostile_vswitch_facts") else {
        return;
    };
    env.write_config("", &[]);
    fake_eth0(&env, None);
    let before = primary_snapshot(&env);
    env.seed(&json!({
        "vswitches": [
            {"id": "vsw-emu0halfnet", "vpc_id": "vpc-emu0main", "zone_id": "cn-hangzhou-i", "cidr": "0.0.0.0/1"},
            {"id": "vsw-emu0outside", "vpc_id": "vpc-emu0main", "zone_id": "cn-hangzhou-i", "cidr": "10.99.0.0/24"}
        ],
        "enis": [
            {"id": "eni-emu0halfnet0001", "vswitch_id": "vsw-emu0halfnet", "mac": "00:16:3e:10:00:91", "primary_ip": "0.0.0.91"},
            {"id": "eni-emu0outside0001", "vswitch_id": "vsw-emu0outside", "mac": "00:16:3e:10:00:92", "primary_ip": "10.99.0.92"}
        ]
    }));
    for (eni, needles) in [
        ("eni-emu0halfnet0001", ["subnet.vswitch_cidr", "0.0.0.0/1"]),
        ("eni-emu0outside0001", ["10.99.0.0/24", "192.168.0.0/16"]),
    ] {
        let out = env.attach(eni);
        out.expect_code(1, eni);
        for n in needles {
            assert!(
                out.stderr.contains(n),
                "{eni}: expected {n:?} in {}",
                out.stderr
            );
        }
        assert_eq!(
            env.our_rules(),
            Vec::<String>::new(),
            "{eni}: rules were added"
        );
        assert_eq!(
            primary_snapshot(&env),
            before,
            "{eni}: the primary NIC changed"
        );
        env.detach(eni);
        assert_eq!(
            primary_snapshot(&env),
            before,
            "{eni}: detach changed the primary NIC"
        );
    }
}
