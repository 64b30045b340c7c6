//! Shared harness of the network-namespace tests.
//!
//! Each test runs on its own thread that unshares CLONE_NEWNET and drives a
//! current-thread tokio runtime, so every socket, /proc/sys access and `ip`
//! child process lives in a private, anonymous namespace that vanishes with
//! the thread. The host's network is never touched.
//!
//! Not root: the test is skipped with a message, unless `CI=true`, where it
//! fails instead.

#![allow(dead_code)]

use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::time::Duration;

use eni_agent::apply::{Reconciler, diff};
use eni_agent::plan::{self, EniFacts, EniOptions, EniType, IpNet, MacAddr, Plan, SubnetFacts};

/// The table the tests allocate.
pub const TABLE: u32 = 10001;

/// Runs `f` in a fresh network namespace, or skips when not root.
pub fn in_netns<F, Fut>(name: &str, f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    if !nix::unistd::Uid::effective().is_root() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!(
                "{name}: needs root for a private network namespace, and CI=true forbids skipping"
            );
        }
        eprintln!(
            "SKIPPED {name}: needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN) for a private network namespace"
        );
        return;
    }
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("unshare(CLONE_NEWNET)");
            ip(&["link", "set", "lo", "up"]);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(f());
        })
        .expect("spawn test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// Runs `ip ARGS` (in the namespace) and returns stdout; panics on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fake primary NIC `prim0` (192.168.100.2/24, fd00::2/64) with the main
/// table's default routes through it, like an ECS instance's eth0.
pub fn fake_primary() {
    ip(&[
        "link", "add", "prim0", "type", "veth", "peer", "name", "prim1",
    ]);
    ip(&["link", "set", "prim1", "up"]);
    ip(&["link", "set", "prim0", "up"]);
    ip(&["address", "add", "192.168.100.2/24", "dev", "prim0"]);
    ip(&[
        "-6",
        "address",
        "add",
        "fd00::2/64",
        "dev",
        "prim0",
        "nodad",
    ]);
    ip(&[
        "route",
        "add",
        "default",
        "via",
        "192.168.100.1",
        "dev",
        "prim0",
    ]);
    ip(&[
        "-6", "route", "add", "default", "via", "fd00::1", "dev", "prim0",
    ]);
}

/// Objects owned by someone else, seeded to prove they survive.
pub fn seed_foreign() {
    ip(&[
        "route",
        "add",
        "198.51.100.0/24",
        "via",
        "192.168.100.1",
        "table",
        "100",
    ]);
    ip(&[
        "rule",
        "add",
        "from",
        "192.0.2.9",
        "lookup",
        "100",
        "pref",
        "20100",
    ]);
    ip(&[
        "rule",
        "add",
        "lookup",
        "main",
        "suppress_prefixlength",
        "0",
        "pref",
        "20200",
    ]);
    ip(&[
        "-6", "rule", "add", "from", "fd00::99", "lookup", "100", "pref", "20300",
    ]);
}

/// Asserts the seeded foreign objects are all still there.
pub fn assert_foreign_intact() {
    assert!(ip(&["route", "show", "table", "100"]).contains("198.51.100.0/24 via 192.168.100.1"));
    let rules = ip(&["rule", "show"]);
    assert!(
        rules.contains("20100:\tfrom 192.0.2.9 lookup 100"),
        "{rules}"
    );
    assert!(
        rules.lines().any(|l| l
            .starts_with("20200:\tfrom all lookup main suppress_prefixlength 0")
            && !l.contains("proto")),
        "{rules}"
    );
    assert!(ip(&["-6", "rule", "show"]).contains("20300:\tfrom fd00::99 lookup 100"));
    assert!(ip(&["route", "show"]).contains("default via 192.168.100.1 dev prim0"));
}

/// The ENI's MAC in test `n`.
pub fn mac(n: u8) -> MacAddr {
    MacAddr([0x00, 0x16, 0x3e, 0x00, 0x00, n])
}

/// Creates the veth `name` with `mac` and `queues` queues; its peer is up.
pub fn add_nic(name: &str, mac: MacAddr, queues: u32) {
    let q = queues.to_string();
    let peer = format!("{name}p");
    let m = mac.to_string();
    ip(&[
        "link",
        "add",
        name,
        "address",
        &m,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        &peer,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
    ]);
    ip(&["link", "set", &peer, "up"]);
}

/// The ifindex of `name`.
pub fn ifindex(name: &str) -> u32 {
    nix::net::if_::if_nametoindex(name).expect("interface exists")
}

/// ENI facts in 10.0.n.0/24 and 2001:db8:n::/64.
pub fn facts(n: u8, queues: Option<u32>) -> (EniFacts, SubnetFacts) {
    let v4 = |h| Ipv4Addr::new(10, 0, n, h);
    let v6 = |h| Ipv6Addr::new(0x2001, 0xdb8, u16::from(n), 0, 0, 0, 0, h);
    let eni = EniFacts {
        eni_id: format!("eni-test{n}"),
        mac: mac(n),
        primary_ipv4: v4(5),
        secondary_ipv4: vec![v4(6)],
        ipv6: vec![v6(5)],
        ipv4_prefixes: vec![IpNet::new(v4(32), 28)],
        ipv6_prefixes: vec![],
        queue_number: queues,
        network_card_index: Some(0),
        eni_type: EniType::Secondary,
    };
    let subnet = SubnetFacts {
        vswitch_cidr: Some(IpNet::new(v4(0), 24)),
        netmask: None,
        gateway: v4(253),
        ipv6_gateway: Some(v6(0xfffd)),
        vswitch_ipv6_cidr: Some(IpNet::new(v6(0), 64)),
        vpc_cidr: None,
    };
    (eni, subnet)
}

/// The plan for test ENI `n` in table `table`.
pub fn test_plan(n: u8, table: u32, queues: Option<u32>) -> Plan {
    test_plan_with(n, table, queues, &EniOptions::default())
}

/// The plan for test ENI `n` with `options`.
pub fn test_plan_with(n: u8, table: u32, queues: Option<u32>, options: &EniOptions) -> Plan {
    let (e, s) = facts(n, queues);
    plan::plan(&e, &s, options, table).expect("valid test facts")
}

/// The operations still needed to converge `plan` on `index` (read-only).
pub async fn pending_ops(rec: &Reconciler, plan: &Plan, index: u32) -> Option<usize> {
    let obs = rec.observe(plan, index).await.ok()?;
    diff(plan, &obs).ok().map(|ops| ops.len())
}

/// Waits until the kernel matches `plan` on `name`, checking read-only.
pub async fn wait_converged(
    rec: &Reconciler,
    plan: &Plan,
    name: &str,
    timeout: Duration,
) -> Duration {
    let start = tokio::time::Instant::now();
    loop {
        if let Ok(index) = nix::net::if_::if_nametoindex(name) {
            if pending_ops(rec, plan, index).await == Some(0) {
                return start.elapsed();
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{} did not converge on {name} within {timeout:?}",
            plan.eni_id
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Number of routes and rules with our protocol, everywhere.
pub fn agent_owned_objects() -> usize {
    let proto = plan::ROUTE_PROTOCOL.to_string();
    let tag = format!("proto {proto}");
    let routes = [
        ip(&["route", "show", "table", "all", "proto", &proto]),
        ip(&["-6", "route", "show", "table", "all", "proto", &proto]),
    ];
    // `ip rule show` has no protocol filter: match the printed tag.
    let rules = [ip(&["rule", "show"]), ip(&["-6", "rule", "show"])];
    routes
        .iter()
        .map(|s| s.lines().filter(|l| !l.trim().is_empty()).count())
        .sum::<usize>()
        + rules
            .iter()
            .map(|s| s.lines().filter(|l| l.contains(&tag)).count())
            .sum::<usize>()
}
