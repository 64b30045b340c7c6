//! Shared pieces of the benchmarks: private network namespaces, the ENI
//! facts the issue asks for, an independent netlink observer, statistics and
//! the machine description.
//!
//! Everything runs in namespaces created here (unshare on a dedicated
//! thread; other threads join with setns); the host's network is never
//! touched.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, OwnedFd};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eni_agent::ethtool::{channels_get, plan_channels};
use eni_agent::netlink::{Addr, Link, Route, Rule};
use eni_agent::plan::{self, EniFacts, EniOptions, EniType, IpNet, MacAddr, Plan, SubnetFacts};
use eni_agent::sysctl::Sysctl;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

/// Exits with a message unless running as root (namespaces need it).
pub fn require_root(bench: &str) {
    if !nix::unistd::Uid::effective().is_root() {
        eprintln!("{bench}: needs root (private network namespaces)");
        std::process::abort();
    }
}

/// Command-line flags `--name value`; anything else (cargo's `--bench`) is ignored.
pub fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `f` on a new thread inside a fresh, anonymous network namespace
/// (with `lo` up); `f` gets the namespace's fd so that helper threads can
/// join it. The namespace vanishes when the last thread and fd are gone.
pub fn in_new_netns<R, F>(f: F) -> R
where
    R: Send + 'static,
    F: FnOnce(OwnedFd) -> R + Send + 'static,
{
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let fd: OwnedFd = std::fs::File::open("/proc/thread-self/ns/net")
            .expect("open own netns")
            .into();
        run_ok("ip", &["link", "set", "lo", "up"]);
        f(fd)
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Moves the calling thread into the namespace `fd`.
pub fn enter(fd: impl AsFd) {
    nix::sched::setns(fd, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns(CLONE_NEWNET)");
}

/// Runs a command, panicking with its stderr on failure; returns stdout.
pub fn run_ok(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC of benchmark ENI `n`.
pub fn mac(n: u8) -> MacAddr {
    MacAddr([0x00, 0x16, 0x3e, 0x5b, 0x00, n])
}

/// The issue's ENI: 1 primary + `secondaries` IPv4 in 10.n.0.0/16 (one /24
/// per 250 addresses), `v6` IPv6 in 2001:db8:n::/64, `prefixes` IPv4 /28
/// prefixes, QueueNumber `queues`.
pub fn facts(
    n: u8,
    secondaries: usize,
    v6: usize,
    prefixes: usize,
    queues: u32,
) -> (EniFacts, SubnetFacts) {
    let v4 = |i: usize| {
        let third = u8::try_from(i / 250).expect("fewer than 64000 addresses");
        let fourth = u8::try_from(i % 250 + 5).expect("< 255");
        Ipv4Addr::new(10, n, third, fourth)
    };
    let v6a = |h: usize| {
        Ipv6Addr::new(
            0x2001,
            0xdb8,
            u16::from(n),
            0,
            0,
            0,
            0,
            u16::try_from(h).expect("small"),
        )
    };
    let eni = EniFacts {
        eni_id: format!("eni-bench{n}"),
        mac: mac(n),
        primary_ipv4: v4(0),
        secondary_ipv4: (1..=secondaries).map(v4).collect(),
        ipv6: (0..v6).map(|i| v6a(i + 5)).collect(),
        ipv4_prefixes: (0..prefixes)
            .map(|i| {
                let base = u8::try_from(i * 16).expect("< 16 prefixes");
                IpNet::new(Ipv4Addr::new(10, n, 200, base), 28)
            })
            .collect(),
        ipv6_prefixes: vec![],
        queue_number: Some(queues),
        network_card_index: Some(0),
        eni_type: EniType::Secondary,
    };
    let subnet = SubnetFacts {
        vswitch_cidr: Some(IpNet::new(Ipv4Addr::new(10, n, 0, 0), 16)),
        netmask: None,
        gateway: Ipv4Addr::new(10, n, 255, 253),
        ipv6_gateway: Some(v6a(0xfffd)),
        vswitch_ipv6_cidr: Some(IpNet::new(v6a(0), 64)),
        vpc_cidr: None,
    };
    (eni, subnet)
}

/// The issue's hot-plug ENI `n` (1 + 49 IPv4, 10 IPv6, 2 prefixes, 4 queues)
/// in routing table 10000 + n.
pub fn issue_plan(n: u8) -> Plan {
    let (e, s) = facts(n, 49, 10, 2, 4);
    plan::plan(&e, &s, &EniOptions::default(), 10000 + u32::from(n)).expect("valid facts")
}

/// Counts of a plan's objects, for the tables.
pub fn plan_size(p: &Plan) -> String {
    format!(
        "{} addresses, {} routes, {} rules, {} sysctls, queues {:?}",
        p.addresses.len(),
        p.routes.len(),
        p.rules.len(),
        p.sysctls.len(),
        p.queues
    )
}

/// `ip -batch` line to create veth `name` with `mac` and `queues` queues,
/// and one to bring its peer up (the peer plays the hypervisor's side).
pub fn veth_batch(name: &str, mac: MacAddr, queues: u32) -> String {
    format!(
        "link add {name} address {mac} numtxqueues {queues} numrxqueues {queues} type veth \
         peer name {name}p numtxqueues {queues} numrxqueues {queues}\nlink set {name}p up\n"
    )
}

/// Runs `ip -batch -` with `input` on stdin.
pub fn ip_batch_stdin(input: &str, v6: bool) -> std::process::Child {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    if v6 {
        cmd.arg("-6");
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("spawn ip -batch");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write batch");
    child
}

/// Waits for a child and panics if it failed.
pub fn wait_ok(mut child: std::process::Child, what: &str) {
    let st = child.wait().expect("wait");
    assert!(st.success(), "{what} failed: {st}");
}

// ---------------------------------------------------------------- observer

/// One NIC the observer waits for.
#[derive(Debug)]
struct Target {
    plan: Plan,
    name: String,
    ifindex: Option<u32>,
    seen: Option<Instant>,
    up: bool,
    addrs: Vec<bool>,
    routes: Vec<bool>,
    /// Copies of each planned rule present (the agent may briefly hold a
    /// duplicate while an external flush races it; one copy is enough).
    rules: Vec<u32>,
}

impl Target {
    fn netlink_done(&self) -> bool {
        self.ifindex.is_some()
            && self.up
            && self.addrs.iter().all(|b| *b)
            && self.routes.iter().all(|b| *b)
            && self.rules.iter().all(|n| *n > 0)
    }

    fn missing(&self) -> String {
        format!(
            "{}: ifindex {:?} up {} addrs {}/{} routes {}/{} rules {}/{}",
            self.name,
            self.ifindex,
            self.up,
            self.addrs.iter().filter(|b| **b).count(),
            self.addrs.len(),
            self.routes.iter().filter(|b| **b).count(),
            self.routes.len(),
            self.rules.iter().filter(|n| **n > 0).count(),
            self.rules.len()
        )
    }

    /// Sysctls and channel counts, read from /proc/sys and the ethtool ioctl.
    fn rest_done(&self, sysctl: &Sysctl) -> bool {
        let sysctls = self
            .plan
            .sysctls
            .iter()
            .all(|s| sysctl.get(s.key, &self.name).ok() == Some(s.value));
        let queues = self.plan.queues.is_none_or(|q| {
            channels_get(&self.name)
                .ok()
                .and_then(|cur| plan_channels(&cur, q).map(|c| !c.changes(&cur)))
                .unwrap_or(false)
        });
        sysctls && queues
    }

    fn on_message(&mut self, msg: &RouteNetlinkMessage, now: Instant) {
        match msg {
            RouteNetlinkMessage::NewLink(m) => {
                let l = Link::from_message(m);
                if self.ifindex.is_none() && l.is_nic_with_mac(self.plan.mac) {
                    self.ifindex = Some(l.index);
                    self.seen = Some(now);
                }
                if self.ifindex == Some(l.index) {
                    self.up = l.up;
                }
            }
            RouteNetlinkMessage::NewAddress(m) | RouteNetlinkMessage::DelAddress(m) => {
                let new = matches!(msg, RouteNetlinkMessage::NewAddress(_));
                if let Some(a) = Addr::from_message(m) {
                    if Some(a.index) == self.ifindex {
                        for (spec, ok) in self.plan.addresses.iter().zip(&mut self.addrs) {
                            if spec.addr == a.addr {
                                *ok = new && a.matches(spec);
                            }
                        }
                    }
                }
            }
            RouteNetlinkMessage::NewRoute(m) | RouteNetlinkMessage::DelRoute(m) => {
                let new = matches!(msg, RouteNetlinkMessage::NewRoute(_));
                if let (Some(r), Some(ix)) = (Route::from_message(m), self.ifindex) {
                    for (spec, ok) in self.plan.routes.iter().zip(&mut self.routes) {
                        if r.matches(spec, ix) {
                            *ok = new;
                        }
                    }
                }
            }
            RouteNetlinkMessage::NewRule(m) | RouteNetlinkMessage::DelRule(m) => {
                let new = matches!(msg, RouteNetlinkMessage::NewRule(_));
                let r = Rule::from_message(m);
                for (spec, copies) in self.plan.rules.iter().zip(&mut self.rules) {
                    if r.matches(spec) {
                        *copies = if new {
                            copies.saturating_add(1)
                        } else {
                            copies.saturating_sub(1)
                        };
                    }
                }
            }
            _ => {}
        }
    }
}

/// What the observer saw.
#[derive(Debug, Clone)]
pub struct Observation {
    /// When each target's link first appeared (RTM_NEWLINK with its MAC).
    pub seen: Vec<Instant>,
    /// When the first rule deletion was seen (drift mode).
    pub first_delete: Option<Instant>,
    /// When every object of every target was in place.
    pub done: Instant,
    /// Netlink messages received.
    pub messages: usize,
}

/// How the observer is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveMode {
    /// Wait for the links to appear and be configured.
    Hotplug,
    /// Everything is configured already: wait for a rule deletion, then for
    /// every object to be back.
    Drift,
}

/// Starts the observer thread in namespace `ns`: an rtnetlink socket of its
/// own on the link, address, route and rule groups, timestamping each
/// message on arrival; plus reads of /proc/sys and the ethtool ioctl once
/// the netlink objects are complete (sysctls and channel counts have no
/// rtnetlink events). `ready` fires once subscribed; each link's first
/// sighting goes to `seen`.
pub fn start_observer(
    ns: &OwnedFd,
    targets: Vec<(Plan, String)>,
    mode: ObserveMode,
    timeout: Duration,
    seen: mpsc::Sender<Instant>,
) -> std::thread::JoinHandle<Result<Observation, String>> {
    let ns = ns.try_clone().expect("dup netns fd");
    let (ready_tx, ready_rx) = mpsc::channel();
    let h = std::thread::spawn(move || {
        enter(&ns);
        observe(targets, mode, timeout, &ready_tx, &seen)
    });
    ready_rx.recv().expect("observer ready");
    h
}

fn observe(
    targets: Vec<(Plan, String)>,
    mode: ObserveMode,
    timeout: Duration,
    ready: &mpsc::Sender<()>,
    seen_tx: &mpsc::Sender<Instant>,
) -> Result<Observation, String> {
    let mut sock = Socket::new(NETLINK_ROUTE).map_err(|e| e.to_string())?;
    sock.bind_auto().map_err(|e| e.to_string())?;
    // RTNLGRP_LINK, IPV4_IFADDR, IPV4_ROUTE, IPV4_RULE, IPV6_IFADDR, IPV6_ROUTE, IPV6_RULE
    for g in [1, 5, 7, 8, 9, 11, 19] {
        sock.add_membership(g).map_err(|e| e.to_string())?;
    }
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))
        .map_err(|e| e.to_string())?;
    let tv = nix::sys::time::TimeVal::new(0, 50_000);
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
        .map_err(|e| e.to_string())?;
    let sysctl = Sysctl::default();
    let mut ts: Vec<Target> = targets
        .into_iter()
        .map(|(plan, name)| {
            let (a, r, u) = (plan.addresses.len(), plan.routes.len(), plan.rules.len());
            let done = mode == ObserveMode::Drift;
            Target {
                plan,
                ifindex: done.then(|| nix::net::if_::if_nametoindex(name.as_str()).expect("link")),
                seen: done.then(Instant::now),
                up: done,
                name,
                addrs: vec![done; a],
                routes: vec![done; r],
                rules: vec![u32::from(done); u],
            }
        })
        .collect();
    ready.send(()).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let mut buf = vec![0u8; 1 << 20];
    let mut messages = 0;
    let mut first_delete = None;
    let mut announced = vec![mode == ObserveMode::Drift; ts.len()];
    loop {
        let netlink_done = ts.iter().all(Target::netlink_done);
        let armed = mode == ObserveMode::Hotplug || first_delete.is_some();
        if armed && netlink_done && ts.iter().all(|t| t.rest_done(&sysctl)) {
            let done = Instant::now();
            return Ok(Observation {
                seen: ts.iter().map(|t| t.seen.unwrap_or(done)).collect(),
                first_delete,
                done,
                messages,
            });
        }
        if start.elapsed() > timeout {
            let missing: Vec<String> = ts.iter().map(Target::missing).collect();
            return Err(format!(
                "not configured within {timeout:?}: {}",
                missing.join("; ")
            ));
        }
        // Netlink complete but a sysctl or the channels not yet: poll them fast.
        let fast = netlink_done && armed;
        let flags = if fast { nix::libc::MSG_DONTWAIT } else { 0 };
        let len = match sock.recv(&mut &mut buf[..], flags) {
            Ok(len) => len,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if fast {
                    std::thread::sleep(Duration::from_micros(50));
                }
                continue;
            }
            Err(e) => return Err(format!("observer recv: {e} (events lost?)")),
        };
        let now = Instant::now();
        let mut off = 0;
        while off < len {
            let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..len])
                .map_err(|e| e.to_string())?;
            let l = usize::try_from(msg.header.length).map_err(|e| e.to_string())?;
            if l == 0 {
                break;
            }
            off += (l + 3) & !3;
            messages += 1;
            if let NetlinkPayload::InnerMessage(inner) = &msg.payload {
                if matches!(inner, RouteNetlinkMessage::DelRule(_)) && first_delete.is_none() {
                    first_delete = Some(now);
                }
                for (t, ann) in ts.iter_mut().zip(&mut announced) {
                    t.on_message(inner, now);
                    if !*ann && t.seen.is_some() {
                        *ann = true;
                        let _ = seen_tx.send(now);
                    }
                }
            }
        }
    }
}

/// Read-only check with the agent's own reconciler: how many operations
/// each plan still needs on its link (0 = the method produced exactly the
/// agent's desired state).
pub fn pending_ops(targets: &[(Plan, String)]) -> Vec<usize> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let rec = eni_agent::apply::Reconciler::connect().expect("netlink");
        let mut out = Vec::new();
        for (p, name) in targets {
            let ix = nix::net::if_::if_nametoindex(name.as_str()).expect("link");
            let obs = rec.observe(p, ix).await.expect("observe");
            out.push(eni_agent::apply::diff(p, &obs).expect("diff").len());
        }
        out
    })
}

// ------------------------------------------------------- baselines' inputs

/// The plan's commands as a sequential shell script (the shell-based
/// tools' way): `Plan`'s Display with the device name, comments dropped,
/// `ethtool -L combined` replaced by `rx/tx` (what veth supports).
pub fn shell_script(targets: &[(Plan, String)]) -> String {
    let mut s = String::from("set -e\n");
    // The `lookup main` rules are shared by every ENI: once.
    let mut once = std::collections::HashSet::new();
    for (p, name) in targets {
        for line in p.with_dev(name).to_string().lines() {
            if line.starts_with('#') || !once.insert(line.to_owned()) {
                continue;
            }
            if let (Some(q), true) = (p.queues, line.starts_with("ethtool -L")) {
                s.push_str(&format!("ethtool -L {name} rx {q} tx {q}\n"));
                continue;
            }
            s.push_str(line);
            s.push('\n');
        }
    }
    s
}

/// The plan's `ip` commands as two batch files: IPv4 (and link) for
/// `ip -batch`, IPv6 for `ip -6 -batch` (iproute2's batch mode cannot switch
/// family per line and `ip rule` defaults to IPv4). Sysctls and channels are
/// not `ip` commands: the caller applies them in-process.
pub fn batch_files(targets: &[(Plan, String)]) -> (String, String) {
    let (mut v4, mut v6) = (String::new(), String::new());
    // The `lookup main` rules are shared by every ENI: once.
    let mut once = std::collections::HashSet::new();
    for (p, name) in targets {
        for line in p.with_dev(name).to_string().lines() {
            if !once.insert(line.to_owned()) {
                continue;
            }
            if let Some(rest) = line.strip_prefix("ip -6 ") {
                v6.push_str(rest);
                v6.push('\n');
            } else if let Some(rest) = line.strip_prefix("ip ") {
                if rest.starts_with("link ") {
                    v4.push_str(rest);
                    v4.push('\n');
                    v6.push_str(rest);
                    v6.push('\n');
                } else if rest.starts_with("address ") && rest.contains(':') {
                    v6.push_str(rest);
                    v6.push('\n');
                } else {
                    v4.push_str(rest);
                    v4.push('\n');
                }
            }
        }
    }
    (v4, v6)
}

/// Sysctls and channel counts written in-process (the cheapest possible
/// way: no process per command), for the `ip -batch` reference.
pub fn apply_sysctls_and_channels(targets: &[(Plan, String)]) {
    let sysctl = Sysctl::default();
    for (p, name) in targets {
        for s in &p.sysctls {
            sysctl.set(s.key, name, s.value).expect("sysctl");
        }
        if let Some(q) = p.queues {
            let cur = channels_get(name).expect("channels");
            if let Some(c) = plan_channels(&cur, q) {
                if c.changes(&cur) {
                    eni_agent::ethtool::channels_set(name, &c.target).expect("channels");
                }
            }
        }
    }
}

// -------------------------------------------------------------- statistics

/// Median, p95 and extremes of a sample (nearest-rank percentiles).
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
}

/// Computes [`Stats`]; panics on an empty sample.
pub fn stats(samples: &[f64]) -> Stats {
    assert!(!samples.is_empty(), "no samples");
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = |pct: usize| {
        let n = v.len();
        // Nearest rank: ceil(pct/100 * n), 1-based.
        v[(pct * n).div_ceil(100).clamp(1, n) - 1]
    };
    Stats {
        n: v.len(),
        median: rank(50),
        p95: rank(95),
        min: v[0],
        max: v[v.len() - 1],
    }
}

/// The JSON object of a sample's statistics (milliseconds).
pub fn stats_json(s: &Stats) -> serde_json::Value {
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    serde_json::json!({
        "n": s.n, "median_ms": r(s.median), "p95_ms": r(s.p95),
        "min_ms": r(s.min), "max_ms": r(s.max),
    })
}

/// Milliseconds between two instants.
pub fn ms(from: Instant, to: Instant) -> f64 {
    to.saturating_duration_since(from).as_secs_f64() * 1000.0
}

/// `nproc`, memory, kernel and CPU model, for the report.
pub fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    serde_json::json!({"nproc": nproc, "mem": mem, "kernel": kernel, "cpu": cpu, "loadavg": load})
}

/// Prints a table: a header and rows of cells, columns padded.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(x) = w.get_mut(i) {
                *x = (*x).max(c.len());
            }
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = w.get(i).copied().unwrap_or(0)))
            .collect();
        println!("{}", s.join("  ").trim_end());
    };
    line(header.iter().map(|h| (*h).to_owned()).collect());
    line(w.iter().map(|n| "-".repeat(*n)).collect());
    for r in rows {
        line(r.clone());
    }
}

/// Groups samples by method name.
pub type Samples = BTreeMap<&'static str, Vec<f64>>;

// ---------------------------------------------------------------- emulator

/// Where the release binaries are (`--bin-dir`, default `target/release`).
pub fn bin_dir() -> std::path::PathBuf {
    let d: String = arg("--bin-dir", String::new());
    if d.is_empty() {
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release")
    } else {
        std::path::PathBuf::from(d)
    }
}

/// The id of benchmark ENI `i` in the emulator's scenario.
pub fn emu_eni_id(i: usize) -> String {
    format!("eni-bench{i:010}")
}

/// A scenario: one Running instance whose type allows `enis` secondaries,
/// each with 1 + `secondaries` IPv4, `v6` IPv6, `prefixes` IPv4 /28 prefixes
/// and QueueNumber `queues`, all Available in the instance's vSwitch.
/// `settings` is appended verbatim (TOML).
pub fn scenario(
    enis: usize,
    secondaries: usize,
    v6: usize,
    prefixes: usize,
    queues: u32,
    settings: &str,
) -> String {
    let mut s = format!(
        r#"region_id = "cn-hangzhou"
account_id = "1234567890123456"
metadata_instance_id = "i-bench00000000001"
max_enis = 1000

[[access_keys]]
id = "LTAIbenchRootKey0001"
secret = "benchRootSecret0123456789abcdefg"

[[ram_roles]]
name = "EniAgentRole"

[[instance_types]]
name = "ecs.bench.large"
eni_quantity = {q}
ipv4_per_eni = 64
ipv6_per_eni = 32
network_cards = 1
max_queues_per_eni = 8
total_queues = 1024
primary_queue_number = 4
secondary_queue_number = 4

[[vpcs]]
id = "vpc-bench0main"
cidr = "192.168.0.0/16"
ipv6_cidr = "2408:4005:3a0:7100::/56"

[[vswitches]]
id = "vsw-bench0zonei"
vpc_id = "vpc-bench0main"
zone_id = "cn-hangzhou-i"
cidr = "192.168.0.0/18"
ipv6_cidr = "2408:4005:3a0:7101::/64"

[[security_groups]]
id = "sg-bench0main"
vpc_id = "vpc-bench0main"

[[instances]]
id = "i-bench00000000001"
instance_type = "ecs.bench.large"
vswitch_id = "vsw-bench0zonei"
status = "Running"
ram_role = "EniAgentRole"

[[enis]]
id = "eni-bench0primary01"
type = "Primary"
vswitch_id = "vsw-bench0zonei"
instance_id = "i-bench00000000001"
primary_ip = "192.168.0.10"
security_group_ids = ["sg-bench0main"]
"#,
        q = enis + 1
    );
    for i in 0..enis {
        s.push_str(&format!(
            r#"
[[enis]]
id = "{id}"
vswitch_id = "vsw-bench0zonei"
secondary_ip_count = {secondaries}
ipv6_count = {v6}
ipv4_prefix_count = {prefixes}
queue_number = {queues}
security_group_ids = ["sg-bench0main"]
"#,
            id = emu_eni_id(i)
        ));
    }
    s.push('\n');
    s.push_str(settings);
    s
}

/// A named network namespace (`ip netns add`), deleted on drop.
#[derive(Debug)]
pub struct NamedNetns {
    pub name: String,
}

impl NamedNetns {
    pub fn new(name: &str) -> Self {
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        run_ok("ip", &["netns", "add", name]);
        run_ok("ip", &["-n", name, "link", "set", "lo", "up"]);
        Self {
            name: name.to_owned(),
        }
    }

    /// A command run inside the namespace (`ip netns exec`, which execs:
    /// the child's pid is the program's).
    pub fn cmd(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// The namespace's fd.
    pub fn fd(&self) -> OwnedFd {
        std::fs::File::open(format!("/var/run/netns/{}", self.name))
            .expect("open netns")
            .into()
    }
}

impl Drop for NamedNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// A child process killed (SIGTERM, then SIGKILL) on drop.
#[derive(Debug)]
pub struct Proc(pub std::process::Child);

impl Proc {
    pub fn pid(&self) -> i32 {
        i32::try_from(self.0.id()).expect("pid")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.pid());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running emulator and its ready line.
#[derive(Debug)]
pub struct Emulator {
    pub proc: Proc,
    pub ready: serde_json::Value,
}

/// Starts `ecs-emulator serve --scenario FILE --netns NS --metadata-in-netns`
/// inside `ns` and waits for its ready line. Logs go to `log`.
pub fn start_emulator(
    ns: &NamedNetns,
    scenario_file: &std::path::Path,
    log: &std::path::Path,
) -> Emulator {
    start_emulator_with(
        ns,
        scenario_file,
        &["--netns", &ns.name, "--metadata-in-netns"],
        log,
    )
}

/// Starts `ecs-emulator serve --scenario FILE ARGS…` inside `ns` and waits
/// for its ready line. Logs go to `log`.
pub fn start_emulator_with(
    ns: &NamedNetns,
    scenario_file: &std::path::Path,
    args: &[&str],
    log: &std::path::Path,
) -> Emulator {
    use std::io::BufRead;
    let mut child = ns
        .cmd(bin_dir().join("ecs-emulator"))
        .arg("serve")
        .arg("--scenario")
        .arg(scenario_file)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(log).expect("log file"))
        .spawn()
        .expect("spawn ecs-emulator");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("emulator ready line {line:?}: {e}; see {}", log.display()));
    Emulator { proc, ready }
}

impl Emulator {
    /// `curl` on the control API, inside the namespace.
    pub fn control(&self, ns: &NamedNetns, method: &str, path: &str, body: Option<&str>) -> String {
        let url = format!(
            "{}/{}",
            self.ready["control_url"].as_str().expect("control_url"),
            path.trim_start_matches('/')
        );
        let mut c = ns.cmd("curl");
        c.args(["-sS", "-X", method, &url]);
        if let Some(b) = body {
            c.args(["-H", "content-type: application/json", "--data", b]);
        }
        let out = c.output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The number of API calls in the emulator's log, and of throttled ones.
    pub fn calls(&self, ns: &NamedNetns) -> (usize, usize) {
        let v: serde_json::Value =
            serde_json::from_str(&self.control(ns, "GET", "calls", None)).expect("calls JSON");
        let calls = v.as_array().cloned().unwrap_or_default();
        let throttled = calls
            .iter()
            .filter(|c| {
                c["code"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("Throttling"))
            })
            .count();
        (calls.len(), throttled)
    }

    /// The environment for the agent: endpoint, metadata and keys.
    pub fn agent_env(&self) -> Vec<(String, String)> {
        let s = |k: &str| self.ready[k].as_str().expect("ready field").to_owned();
        vec![
            ("ENI_AGENT_ECS_ENDPOINT".into(), s("api_url")),
            (
                "ENI_AGENT_METADATA_ENDPOINT".into(),
                "http://100.100.100.200".into(),
            ),
            ("ALIBABA_CLOUD_ACCESS_KEY_ID".into(), s("access_key_id")),
            (
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET".into(),
                s("access_key_secret"),
            ),
        ]
    }
}

/// An agent configuration file for the ENIs `ids` in `dir`.
pub fn agent_config(
    dir: &std::path::Path,
    ids: &[String],
    extra_agent: &str,
) -> std::path::PathBuf {
    let mut s = format!(
        "[agent]\nstate_dir = \"{}\"\nmanage_network_managers = false\n{extra_agent}\n",
        dir.join("state").display()
    );
    for id in ids {
        s.push_str(&format!("\n[[eni]]\nid = \"{id}\"\n"));
    }
    let p = dir.join("config.toml");
    std::fs::write(&p, s).expect("write config");
    p
}

/// Sum of a `/proc/PID/task/*/status` field over every thread.
pub fn task_sum(pid: i32, field: &str) -> u64 {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    rd.flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|s| status_field(&s, field))
        .sum()
}

/// A numeric field of a `/proc/.../status` text (the first number).
pub fn status_field(status: &str, field: &str) -> u64 {
    status
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
