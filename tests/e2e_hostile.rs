//! End-to-end: hostile or mistaken answers from the (emulated) cloud against
//! the real binaries in a private network namespace. For each, the agent
//! exits non-zero (the daemon keeps running) with an error naming what is
//! wrong, and the namespace's primary NIC `eth0` keeps its addresses, its
//! routes, the main table and its sysctls byte for byte — through attach,
//! drift of a legitimately configured ENI beside it, detach and daemon
//! restart.

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

/// eth0's addresses, the main table (both families), every rule and every
/// readable sysctl of eth0 (`/proc/sys/net/ipv{4,6}/conf/eth0/*`), as text.
fn primary_snapshot(env: &Env) -> String {
    let mut s = env.ip(&["-d", "address", "show", "dev", "eth0"]);
    s += &env.ip(&["route", "show", "table", "main"]);
    s += &env.ip(&["-6", "route", "show", "table", "main"]);
    s += &env.rules();
    s += &primary_sysctls(env);
    s
}

/// Every readable `/proc/sys/net/ipv{4,6}/conf/eth0/*` as `path:value`
/// lines, sorted (`stable_secret` cannot be read until set: skipped).
fn primary_sysctls(env: &Env) -> String {
    // grep exits 2 for the unreadable file even with -s: judge the output.
    let (_, out) = env.exec(&[
        "grep",
        "-rs",
        "",
        "/proc/sys/net/ipv4/conf/eth0",
        "/proc/sys/net/ipv6/conf/eth0",
    ]);
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort_unstable();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("/proc/sys/net/ipv4/conf/eth0/rp_filter:"))
            && lines
                .iter()
                .any(|l| l.starts_with("/proc/sys/net/ipv6/conf/eth0/accept_ra:")),
        "eth0's sysctls unreadable: {out}"
    );
    lines.join("\n") + "\n"
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
        let (dev2, table2) = env.wait_configured(ENI2, Duration::from_secs(30));
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
        drift_the_good_eni(&env, ENI2, &dev2, table2, &|what| {
            assert_eq!(
                without(&primary_snapshot(&env), &dev2),
                without(&before, &dev2),
                "round {round}: the primary NIC changed after {what}"
            );
        });
        env.signal(&d, Signal::SIGTERM);
        env.wait(&d, Duration::from_secs(10))
            .expect_code(0, "SIGTERM");
    }
}

/// A named way to disturb the legitimate ENI's configuration.
type Drift<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// The repairs recorded for `eni` (its state record).
fn repairs(env: &Env, eni: &str) -> u64 {
    env.record(eni)
        .and_then(|r| r["repairs"].as_u64())
        .unwrap_or(0)
}

/// Drift on the ENI the daemon configures legitimately beside a hostile
/// one: one of its rules deleted, one of its addresses deleted, its table
/// flushed together with a sysctl changed, its link set down. After each,
/// waits for the repair (the state record counts it and the ENI's rules,
/// routes, addresses and sysctl are back), then `check` looks at the
/// primary NIC.
fn drift_the_good_eni(env: &Env, eni: &str, dev: &str, table: u32, check: &dyn Fn(&str)) {
    let t = table.to_string();
    let good = env.snapshot(dev, table);
    let rp_key = format!("/proc/sys/net/ipv4/conf/{dev}/rp_filter");
    let sysctl = || env.exec(&["cat", &rp_key]).1.trim().to_owned();
    let good_rp = sysctl();
    let rule = good
        .0
        .iter()
        .find(|l| l.contains(&format!("lookup {t} ")))
        .unwrap_or_else(|| panic!("{eni}: no rule for table {t}: {:?}", good.0))
        .clone();
    let (pref, selector) = rule.split_once(": ").expect("`ip rule` line");
    let address = good
        .2
        .iter()
        .find(|a| a.contains('.'))
        .unwrap_or_else(|| panic!("{eni}: no IPv4 address on {dev}: {:?}", good.2))
        .clone();
    let other_rp = if good_rp == "2" { "1" } else { "2" };
    let drifts: [Drift<'_>; 4] = [
        (
            "a deleted rule",
            Box::new(|| {
                let mut args = vec!["rule", "del", "priority", pref];
                args.extend(selector.split_whitespace());
                env.ip(&args);
            }),
        ),
        (
            "a deleted address",
            Box::new(|| {
                env.ip(&["address", "del", &address, "dev", dev]);
            }),
        ),
        (
            "a flushed table and a changed sysctl",
            Box::new(|| {
                let (ok, out) = env.exec(&["sh", "-c", &format!("echo {other_rp} > {rp_key}")]);
                assert!(ok, "{rp_key}: {out}");
                env.ip(&["route", "flush", "table", &t]);
            }),
        ),
        (
            "a link set down",
            Box::new(|| {
                env.ip(&["link", "set", dev, "down"]);
            }),
        ),
    ];
    for (what, drift) in drifts {
        let before = repairs(env, eni);
        drift();
        assert!(
            wait_for(Duration::from_secs(10), || repairs(env, eni) > before
                && env.snapshot(dev, table) == good
                && sysctl() == good_rp),
            "{what} on {dev} not repaired: {} repairs (was {before}), rp_filter {}\n{:?}\nwant {good:?}",
            repairs(env, eni),
            sysctl(),
            env.snapshot(dev, table)
        );
        check(what);
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

/// The daemon with a legitimate ENI beside every kind of hostile answer it
/// can be given at once — the instance's primary MAC, a NIC carrying
/// addresses that are not the agent's, an address already on another NIC, a vSwitch
/// CIDR covering half the Internet, a vSwitch outside its VPC — and table
/// 10001 already in use by another tool: each hostile ENI is refused by
/// name, the legitimate one gets another table, and through drift of the
/// legitimate ENI, a daemon restart and the detach of everything, eth0's
/// addresses, routes, the main table, the rules and eth0's sysctls stay byte
/// for byte what they were before the agent started, and the foreign table
/// is left alone.
#[test]
fn daemon_beside_hostile_answers_keeps_the_primary_nic_through_drift() {
    let Some(env) = Env::new("hostile_daemon_drift") else {
        return;
    };
    fake_eth0(&env, None);
    // A NIC of another tool, carrying its own address.
    env.ip(&[
        "link",
        "add",
        "foreign0",
        "address",
        "00:16:3e:10:00:93",
        "type",
        "veth",
        "peer",
        "name",
        "foreign0p",
    ]);
    env.ip(&["address", "add", "10.77.0.1/24", "dev", "foreign0"]);
    env.ip(&["address", "add", "192.168.10.95/32", "dev", "foreign0p"]);
    env.ip(&[
        "route",
        "add",
        "unreachable",
        "198.51.100.0/24",
        "table",
        &TABLE.to_string(),
    ]);
    let foreign_table = env.table_routes(TABLE);
    env.seed(&json!({
        "vswitches": [
            {"id": "vsw-emu0halfnet", "vpc_id": "vpc-emu0main", "zone_id": "cn-hangzhou-i", "cidr": "0.0.0.0/1"},
            {"id": "vsw-emu0outside", "vpc_id": "vpc-emu0main", "zone_id": "cn-hangzhou-i", "cidr": "10.99.0.0/24"}
        ],
        "enis": [
            {"id": "eni-emu0primarymac01", "vswitch_id": "vsw-emu0zonei", "mac": PRIMARY_MAC, "primary_ip": "192.168.10.80"},
            {"id": "eni-emu0foreignnic01", "vswitch_id": "vsw-emu0zonei", "mac": "00:16:3e:10:00:93", "primary_ip": "192.168.10.93"},
            {"id": "eni-emu0takenaddr001", "vswitch_id": "vsw-emu0zonei", "mac": "00:16:3e:10:00:94", "primary_ip": "192.168.10.95"},
            {"id": "eni-emu0halfnet0001", "vswitch_id": "vsw-emu0halfnet", "mac": "00:16:3e:10:00:91", "primary_ip": "0.0.0.91"},
            {"id": "eni-emu0outside0001", "vswitch_id": "vsw-emu0outside", "mac": "00:16:3e:10:00:92", "primary_ip": "10.99.0.92"}
        ]
    }));
    let hostile: [(&str, &[&str]); 5] = [
        ("eni-emu0primarymac01", &[PRIMARY_MAC, "primary NIC"]),
        ("eni-emu0foreignnic01", &["foreign0", "10.77.0.1/24"]),
        (
            "eni-emu0takenaddr001",
            &["192.168.10.95", "another link (foreign0p)"],
        ),
        ("eni-emu0halfnet0001", &["subnet.vswitch_cidr", "0.0.0.0/1"]),
        ("eni-emu0outside0001", &["10.99.0.0/24", "192.168.0.0/16"]),
    ];
    let guarded = [
        "eni-emu0primarymac01",
        "eni-emu0foreignnic01",
        "eni-emu0takenaddr001",
    ];
    let mut enis = vec![Env::eni(ENI1)];
    enis.extend(hostile.iter().map(|(id, _)| Env::eni(id)));
    env.write_config("", &enis);
    let before = primary_snapshot(&env);
    for round in 0..2 {
        let d = env.spawn(&["run"], &[]);
        let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
        assert_ne!(table1, TABLE, "round {round}: a table in use was taken");
        for (eni, needles) in hostile {
            assert!(
                wait_for(Duration::from_secs(30), || {
                    let e = stderr_of(&d);
                    e.lines()
                        .any(|l| l.contains(eni) && needles.iter().all(|n| l.contains(n)))
                }),
                "round {round}: the daemon reports refusing {eni} with {needles:?}: {}",
                stderr_of(&d)
            );
            // The guard refuses before the attach; vSwitch facts are known
            // only from the attached NIC's metadata, so those ENIs are
            // attached but never configured.
            if guarded.contains(&eni) {
                assert!(
                    env.codes("AttachNetworkInterface", eni).is_empty(),
                    "round {round}: {eni} attached"
                );
            }
        }
        let check = |when: &str| {
            assert_eq!(
                without(&primary_snapshot(&env), &dev1),
                without(&before, &dev1),
                "round {round}: the primary NIC changed {when}"
            );
            assert_eq!(
                env.table_routes(TABLE),
                foreign_table,
                "round {round}: the foreign table changed {when}"
            );
            for mac in ["00:16:3e:10:00:91", "00:16:3e:10:00:92"] {
                if let Some(nic) = env.link_with_mac(mac) {
                    assert_eq!(
                        env.addresses(&nic),
                        Vec::<String>::new(),
                        "round {round}: the refused ENI's NIC {nic} was configured {when}"
                    );
                }
            }
            assert_eq!(
                (env.addresses("foreign0"), env.addresses("foreign0p")),
                (
                    vec!["10.77.0.1/24".to_owned()],
                    vec!["192.168.10.95/32".to_owned()]
                ),
                "round {round}: the foreign NICs changed {when}"
            );
        };
        check("at attach");
        drift_the_good_eni(&env, ENI1, &dev1, table1, &|what| {
            check(&format!("after {what}"));
        });
        env.signal(&d, Signal::SIGTERM);
        env.wait(&d, Duration::from_secs(10))
            .expect_code(0, "SIGTERM");
        check("at the daemon's stop");
    }
    env.detach(ENI1)
        .expect_code(0, "detach of the legitimate ENI");
    for (eni, _) in hostile {
        env.detach(eni);
        if guarded.contains(&eni) {
            assert!(
                env.codes("DetachNetworkInterface", eni).is_empty(),
                "{eni}: a detach was sent for an ENI never attached"
            );
        }
    }
    assert_eq!(env.our_rules(), Vec::<String>::new());
    assert_eq!(
        primary_snapshot(&env),
        before,
        "detach changed the primary NIC"
    );
    assert_eq!(env.table_routes(TABLE), foreign_table);
    assert_eq!(env.addresses("foreign0"), ["10.77.0.1/24"]);
    assert_eq!(env.addresses("foreign0p"), ["192.168.10.95/32"]);
}

/// In tag mode a DescribeNetworkInterfaces that fails at start-up is
/// retried: once the API answers again, the tag-selected ENIs are
/// configured without a SIGHUP or a restart.
#[test]
fn daemon_retries_a_tag_lookup_that_failed_at_start_up() {
    let Some(env) = Env::new("hostile_tag_lookup_start_up") else {
        return;
    };
    env.write_config("", &["tag = \"team=net\"".to_owned()]);
    env.patch_settings(
        &json!({"faults": {"actions": {"DescribeNetworkInterfaces": {"internal_error_rate": 1.0}}}}),
    );
    let d = env.spawn(&["run"], &[]);
    assert!(
        wait_for(Duration::from_secs(60), || stderr_of(&d)
            .contains("cannot list ENIs by tag")),
        "the failed lookup is reported: {}",
        stderr_of(&d)
    );
    assert!(env.codes("AttachNetworkInterface", ENI1).is_empty());
    env.patch_settings(&json!({"faults": {"actions": {"DescribeNetworkInterfaces": null}}}));
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(60));
    env.wait_configured(ENI2, Duration::from_secs(30));
    assert!(
        stderr_of(&d).contains("the tag lookups succeeded again"),
        "{}",
        stderr_of(&d)
    );
    env.assert_eni1_configured(&dev1, table1);
}

/// A TCP listener on 127.0.0.1:`port` inside the namespace (bound by a
/// thread that joined it; the socket stays in that namespace).
fn listener_in(netns: &str, port: u16) -> std::net::TcpListener {
    let ns_path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&ns_path).expect("open netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let l = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind in the namespace");
        l.set_nonblocking(true).expect("nonblocking");
        l
    })
    .join()
    .expect("listener thread")
}

/// A metadata `region-id` that would redirect the endpoint
/// (`https://ecs-vpc.{region}.aliyuncs.com`) to a local listener, or that
/// carries a newline: the one-shot exits non-zero naming region-id, no
/// connection reaches the listener, eth0 is unchanged and no state is left.
#[test]
fn a_hostile_metadata_region_id_is_refused_before_any_request() {
    let Some(env) = Env::new("hostile_region_id") else {
        return;
    };
    // No api.region: the region comes from the metadata service.
    env.write_config("", &[Env::eni(ENI1)]);
    fake_eth0(&env, None);
    let listener = listener_in(&env.netns, 18443);
    let before = primary_snapshot(&env);
    for region in ["x@127.0.0.1:18443#", "cn-hangzhou\n127.0.0.1:18443"] {
        let path = format!("/instances/{INSTANCE}");
        let (st, body) = env.control("PATCH", &path, Some(&json!({ "region_id": region })));
        assert_eq!(st, 200, "{body}");
        // The endpoint comes from the region: no ENI_AGENT_ECS_ENDPOINT.
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &env.netns])
            .arg(agent_bin())
            .arg("--config")
            .arg(env.config_path())
            .args(["attach", ENI1, "--timeout", "10s"])
            .env_remove("ENI_AGENT_ECS_ENDPOINT")
            .env("ENI_AGENT_METADATA_ENDPOINT", "http://100.100.100.200")
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                env.ready["access_key_id"].as_str().expect("key id"),
            )
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                env.ready["access_key_secret"].as_str().expect("secret"),
            )
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run eni-agent");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && out.status.code().is_some(),
            "{region:?}: exits non-zero: {:?} {stderr}",
            out.status
        );
        assert!(
            stderr.contains("region-id"),
            "{region:?}: the error names region-id: {stderr}"
        );
        assert!(
            matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "{region:?}: no request reached the listener"
        );
        assert_eq!(primary_snapshot(&env), before, "{region:?}: eth0 unchanged");
        assert!(env.record(ENI1).is_none(), "{region:?}: no ENI record");
        assert!(
            env.calls()
                .iter()
                .all(|c| c["action"] != "AttachNetworkInterface"),
            "{region:?}: no Attach reached the emulator"
        );
    }
}

/// In tag mode a DescribeNetworkInterfaces answer carrying an ENI id with a
/// newline (a would-be hand-off line) is refused as a whole: the daemon
/// keeps running with the last good answer (nothing detached), says which
/// field is wrong, and the id reaches neither a state file nor an sd_notify
/// message (each STATUS stays one line).
#[test]
fn daemon_refuses_a_malformed_eni_id_from_the_tag_lookup() {
    let Some(env) = Env::new("hostile_tag_bad_id") else {
        return;
    };
    let hostile = "eni-emu0bad\nmatch-device=interface-name:eth0";
    env.write_config("", &["tag = \"team=net\"".to_owned()]);
    let mut notify = NotifySocket::bind(env.dir.path());
    let d = env.spawn(
        &["run"],
        &[("NOTIFY_SOCKET", notify.path.display().to_string())],
    );
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));
    env.seed(&json!({"enis": [{
        "id": hostile, "vswitch_id": "vsw-emu0zonei", "mac": "00:16:3e:10:00:95",
        "primary_ip": "192.168.10.95", "tags": {"team": "net"}
    }]}));
    env.signal(&d, Signal::SIGHUP);
    assert!(
        wait_for(Duration::from_secs(30), || {
            let e = stderr_of(&d);
            e.contains("NetworkInterfaceId") && e.contains("not a valid ENI id")
        }),
        "the refusal names the id field: {}",
        stderr_of(&d)
    );
    let mut messages = Vec::new();
    while let Some(m) = notify.recv(Duration::from_millis(500)) {
        messages.push(m);
    }
    assert!(
        messages.iter().any(|m| m.contains("READY=1")),
        "the daemon got ready: {messages:?}"
    );
    for m in &messages {
        assert!(
            !m.contains("match-device") && !m.contains("eni-emu0bad"),
            "a notify message carries the id: {m:?}"
        );
        // One `KEY=value` per line: a STATUS split by a newline would leave
        // a line that is not one.
        for line in m.lines() {
            let key = line.split_once('=').map(|(k, _)| k).unwrap_or("");
            assert!(
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "a notify line that is not KEY=value: {line:?} in {m:?}"
            );
        }
    }
    let mut files = Vec::new();
    let mut stack = vec![env.state_dir()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        assert!(
            !text.contains("match-device") && !text.contains("eni-emu0bad"),
            "{} carries the id",
            f.display()
        );
    }
    assert!(
        env.codes("AttachNetworkInterface", hostile).is_empty(),
        "the malformed id is never attached"
    );
    for eni in [ENI1, ENI2] {
        assert!(
            env.codes("DetachNetworkInterface", eni).is_empty(),
            "{eni} detached"
        );
    }
    assert!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(d.pid), None).is_ok(),
        "the daemon keeps running: {}",
        stderr_of(&d)
    );
    env.assert_eni1_configured(&dev1, table1);
}

/// ENI1's rules and table-TABLE routes, as text.
fn eni1_table(env: &Env) -> (Vec<String>, Vec<String>) {
    let lookup = format!("lookup {TABLE}");
    let rules = env
        .our_rules()
        .into_iter()
        .filter(|r| r.contains(&lookup))
        .collect();
    (rules, env.table_routes(TABLE))
}

/// A table that holds another ENI's routes and rules is never handed out
/// again: not after tables.json was deleted (as its corruption message
/// advises), nor to a one-shot with a second state directory. ENI2 gets
/// another table and ENI1's rules and routes stay byte for byte.
#[test]
fn a_table_in_use_is_not_reused_after_tables_json_is_lost_or_by_a_second_state_dir() {
    let Some(env) = Env::new("hostile_table_reuse") else {
        return;
    };
    env.write_config("", &[]);
    env.attach(ENI1).expect_code(0, "attach ENI1");
    env.assert_eni1_configured("eth1", TABLE);
    let before = eni1_table(&env);
    assert!(!before.0.is_empty() && !before.1.is_empty(), "{before:?}");
    let tables = env.state_dir().join("tables.json");
    assert!(tables.exists(), "{} exists", tables.display());

    // (1) tables.json deleted.
    std::fs::remove_file(&tables).expect("remove tables.json");
    env.attach(ENI2)
        .expect_code(0, "attach ENI2 without tables.json");
    assert_eq!(eni1_table(&env), before, "ENI1's table after ENI2's attach");
    env.assert_eni1_configured("eth1", TABLE);
    env.detach(ENI2).expect_code(0, "detach ENI2");
    assert_eq!(eni1_table(&env), before, "ENI1's table after ENI2's detach");

    // (2) a second state directory, no tables.json in it.
    let config = std::fs::read_to_string(env.config_path()).expect("config");
    let first = env.state_dir().display().to_string();
    let second = env.path("state2");
    std::fs::create_dir_all(&second).expect("state2");
    std::fs::write(
        env.config_path(),
        config.replace(&first, &second.display().to_string()),
    )
    .expect("config with state2");
    env.attach(ENI2)
        .expect_code(0, "attach ENI2 from a second state directory");
    assert_eq!(eni1_table(&env), before, "ENI1's table beside state2");
    env.assert_eni1_configured("eth1", TABLE);
    env.detach(ENI2).expect_code(0, "detach ENI2 (state2)");
    assert_eq!(
        eni1_table(&env),
        before,
        "ENI1's table after state2's detach"
    );
    std::fs::write(env.config_path(), config).expect("config back");
    env.detach(ENI1).expect_code(0, "detach ENI1");
}
