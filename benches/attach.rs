//! Benchmark 2 in BENCHMARKS.md: attach end to end against the emulator.
//!
//! Each run: a fresh named namespace, a fresh `ecs-emulator` hot-plugging
//! into it with `attach_delay_ms = D` (default 500; the NIC appears at InUse,
//! `link_offset_ms = 0`), and the ENI (1 + 49 IPv4, 10 IPv6, 2
//! prefixes, QueueNumber 4). Two strategies, interleaved:
//!
//! - `agent`: `eni-agent attach ENI` (release binary) is spawned at t0;
//! - `poll-1s`: a model of a poll-every-second agent in the same harness:
//!   at t0 it sends AttachNetworkInterface (the agent's own ECS client),
//!   polls DescribeNetworkInterfaceAttribute every second until InUse, then
//!   runs `eni-agent attach ENI` (which finds it InUse and configures it), so
//!   only the strategy differs.
//!
//! The clock stops at the last rtnetlink event of the configuration as an
//! independent observer sees it: an address on the NIC other than its
//! link-local one, or a route or rule of protocol 237 (the agent writes
//! sysctls, channels and the link state before those). The kernel's own
//! later events are not counted: the carrier coming up (linkwatch runs them
//! up to a second after the link is set up) and the fe80::/64 route that
//! follows. Figure: (end − t0) − D.
//!
//! Run: `cargo bench --bench attach -- --runs 30 --delay-ms 500` (root;
//! uses `--bin-dir`, default `target/release`).

mod support;

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use eni_agent::backoff::{RetryPolicy, ThrottleBackoff};
use eni_agent::cloud::ecs::{AttachNetworkInterface, DescribeNetworkInterfaceAttribute, EniStatus};
use eni_agent::cloud::{EcsClient, EcsOptions, SignatureVersion};
use eni_agent::credentials::{CredentialProvider, Credentials};
use eni_agent::plan::MacAddr;
use eni_agent::secret::Secret;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};
use support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Agent,
    Poll,
}

impl Strategy {
    fn name(self) -> &'static str {
        match self {
            Strategy::Agent => "agent",
            Strategy::Poll => "poll-1s",
        }
    }
}

/// When the last event of the configuration arrived, when the NIC with
/// `mac` first appeared, and how many rules were added.
struct Recording {
    last: Option<Instant>,
    link_seen: Option<Instant>,
    rules: usize,
}

fn record(ns: OwnedFd, mac: MacAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Recording> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        enter(&ns);
        let mut sock = Socket::new(NETLINK_ROUTE).expect("socket");
        sock.bind_auto().expect("bind");
        for g in [1, 5, 7, 8, 9, 11, 19] {
            sock.add_membership(g).expect("group");
        }
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::RcvBufForce, &(16 << 20))
            .expect("rcvbuf");
        let tv = nix::sys::time::TimeVal::new(0, 20_000);
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::ReceiveTimeout, &tv)
            .expect("timeout");
        ready_tx.send(()).expect("ready");
        let mut rec = Recording {
            last: None,
            link_seen: None,
            rules: 0,
        };
        let mut buf = vec![0u8; 1 << 20];
        while !stop.load(Ordering::Relaxed) {
            let Ok(len) = sock.recv(&mut &mut buf[..], 0) else {
                continue;
            };
            let now = Instant::now();
            let mut off = 0;
            while off < len {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[off..len])
                else {
                    break;
                };
                let l = usize::try_from(msg.header.length).expect("length");
                if l == 0 {
                    break;
                }
                off += (l + 3) & !3;
                if is_configuration(&msg.payload) {
                    rec.last = Some(now);
                }
                match &msg.payload {
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewLink(m)) => {
                        let link = eni_agent::netlink::Link::from_message(m);
                        if rec.link_seen.is_none() && link.is_nic_with_mac(mac) {
                            rec.link_seen = Some(now);
                        }
                    }
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewRule(_)) => {
                        rec.rules += 1;
                    }
                    _ => {}
                }
            }
        }
        rec
    });
    ready_rx.recv().expect("recorder ready");
    h
}

/// An event of the agent's configuration: an address other than a
/// link-local one, or a route or rule stamped with the agent's protocol.
fn is_configuration(payload: &NetlinkPayload<RouteNetlinkMessage>) -> bool {
    let NetlinkPayload::InnerMessage(m) = payload else {
        return false;
    };
    match m {
        RouteNetlinkMessage::NewAddress(a) => eni_agent::netlink::Addr::from_message(a)
            .is_some_and(
                |a| !matches!(a.addr, std::net::IpAddr::V6(v6) if v6.segments()[0] == 0xfe80),
            ),
        RouteNetlinkMessage::NewRoute(r) => {
            u8::from(r.header.protocol) == eni_agent::plan::ROUTE_PROTOCOL
        }
        RouteNetlinkMessage::NewRule(r) => eni_agent::netlink::Rule::from_message(r).is_ours(),
        _ => false,
    }
}

struct Sample {
    total_ms: f64,
    link_ms: f64,
    agent_timeline: String,
}

/// The poll-every-second model's cloud part: Attach, then Describe every
/// second until InUse. Runs on a thread inside the namespace (the API
/// listens on its loopback).
fn poll_until_in_use(ns: &NamedNetns, emu: &Emulator, eni: &str) -> Result<(), String> {
    let fd = ns.fd();
    let s = |k: &str| emu.ready[k].as_str().expect("ready field").to_owned();
    let (api, region, instance) = (s("api_url"), s("region_id"), s("instance_id"));
    let creds = Credentials {
        access_key_id: s("access_key_id"),
        access_key_secret: Secret::new(s("access_key_secret")),
        security_token: None,
        expiration: None,
    };
    let eni = eni.to_owned();
    std::thread::spawn(move || {
        enter(&fd);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let client = EcsClient::new(
                EcsOptions {
                    endpoint: api,
                    region,
                    signature: SignatureVersion::V3,
                    connect_timeout: Duration::from_secs(3),
                    request_timeout: Duration::from_secs(10),
                    retry: RetryPolicy {
                        base_delay: Duration::from_millis(200),
                        max_delay: Duration::from_secs(10),
                        max_attempts: 8,
                        deadline: Duration::from_secs(120),
                    },
                    throttle: ThrottleBackoff::default(),
                },
                CredentialProvider::Static {
                    credentials: creds,
                    origin: "bench".into(),
                },
            )
            .map_err(|e| e.to_string())?;
            client
                .attach_network_interface(&AttachNetworkInterface {
                    network_interface_id: eni.clone(),
                    instance_id: instance,
                    network_card_index: None,
                })
                .await
                .map_err(|e| e.to_string())?;
            for _ in 0..120 {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let d = client
                    .describe_network_interface_attribute(&DescribeNetworkInterfaceAttribute::new(
                        eni.clone(),
                    ))
                    .await
                    .map_err(|e| e.to_string())?;
                if d.body.status == EniStatus::InUse {
                    return Ok(());
                }
            }
            Err("never InUse".to_owned())
        })
    })
    .join()
    .expect("poller thread")
}

fn run_once(strategy: Strategy, delay_ms: u64, i: usize) -> Result<Sample, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ns = NamedNetns::new(&format!("ebench-at-{}-{i}", std::process::id()));
    let scen = dir.path().join("scenario.toml");
    std::fs::write(
        &scen,
        scenario(
            1,
            49,
            10,
            2,
            4,
            &format!(
                "[settings.timing]\nattach_delay_ms = {delay_ms}\nlink_offset_ms = 0\nmetadata_lag_ms = 300\n"
            ),
        ),
    )
    .map_err(|e| e.to_string())?;
    let emu = start_emulator(&ns, &scen, &dir.path().join("emulator.log"));
    let eni = emu_eni_id(0);
    let mac: MacAddr = emu.ready["enis"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["id"] == eni.as_str()))
        .and_then(|e| e["mac"].as_str())
        .and_then(|m| m.parse().ok())
        .ok_or("no MAC in the ready line")?;
    let cfg = agent_config(dir.path(), &[], "");
    let stop = Arc::new(AtomicBool::new(false));
    let recorder = record(ns.fd(), mac, stop.clone());
    let attach = || {
        ns.cmd(bin_dir().join("eni-agent"))
            .arg("--config")
            .arg(&cfg)
            .args(["attach", &eni, "--timeout", "60s"])
            .envs(emu.agent_env())
            .output()
            .expect("spawn eni-agent attach")
    };
    let t0 = Instant::now();
    if strategy == Strategy::Poll {
        poll_until_in_use(&ns, &emu, &eni)?;
    }
    let out = attach();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let rec = recorder.join().expect("recorder");
    if !out.status.success() {
        return Err(format!(
            "eni-agent attach: {} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = rec.last.ok_or("no rtnetlink event at all")?;
    if rec.rules < 126 {
        return Err(format!("only {} rules appeared", rec.rules));
    }
    let d = delay_ms as f64;
    Ok(Sample {
        total_ms: ms(t0, last) - d,
        link_ms: rec.link_seen.map_or(f64::NAN, |l| ms(t0, l)) - d,
        agent_timeline: stdout
            .lines()
            .find_map(|l| l.strip_prefix("timeline: "))
            .unwrap_or_default()
            .to_owned(),
    })
}

fn main() {
    require_root("attach");
    let runs: usize = arg("--runs", 30);
    let warmup: usize = arg("--warmup", 1);
    let delay_ms: u64 = arg("--delay-ms", 500);
    println!(
        "attach end to end: D = {delay_ms} ms, link at InUse; ENI 1+49 IPv4, 10 IPv6, 2 prefixes, 4 queues"
    );
    println!("machine: {}", machine());
    println!(
        "{runs} runs per strategy (+{warmup} warm-up), interleaved; fresh netns and emulator per run"
    );
    let strategies = [Strategy::Agent, Strategy::Poll];
    let mut total: Samples = Samples::new();
    let mut link: Samples = Samples::new();
    let mut failures: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut example = String::new();
    for i in 0..warmup + runs {
        for k in 0..strategies.len() {
            let s = strategies[(i + k) % strategies.len()];
            match run_once(s, delay_ms, i * 2 + k) {
                Ok(x) if i >= warmup => {
                    total.entry(s.name()).or_default().push(x.total_ms);
                    link.entry(s.name()).or_default().push(x.link_ms);
                    if s == Strategy::Agent {
                        example = x.agent_timeline;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("run {i} {}: {e}", s.name());
                    *failures.entry(s.name()).or_default() += 1;
                }
            }
        }
        if (i + 1) % 5 == 0 {
            eprintln!("... {} of {} rounds", i + 1, warmup + runs);
        }
    }
    let mut rows = Vec::new();
    let mut methods = serde_json::Map::new();
    for s in strategies {
        if let (Some(t), Some(l)) = (total.get(s.name()), link.get(s.name())) {
            let (t, l) = (stats(t), stats(l));
            rows.push(vec![
                s.name().to_owned(),
                t.n.to_string(),
                format!("{:.1}", t.median),
                format!("{:.1}", t.p95),
                format!("{:.1}", t.min),
                format!("{:.1}", t.max),
                format!("{:.1}", l.median),
                failures.get(s.name()).copied().unwrap_or(0).to_string(),
            ]);
            methods.insert(
                s.name().to_owned(),
                serde_json::json!({"configured_minus_d": stats_json(&t), "link_seen_minus_d": stats_json(&l)}),
            );
        }
    }
    println!();
    print_table(
        &[
            "strategy",
            "n",
            "median ms",
            "p95 ms",
            "min ms",
            "max ms",
            "link seen median ms",
            "failed",
        ],
        &rows,
    );
    println!("(figures are (configured - start) - D; goal: agent <= 50 ms)");
    println!("an agent timeline (its own view, from its attach start): {example}");
    let json = serde_json::json!({
        "bench": "attach",
        "delay_ms": delay_ms,
        "runs": runs,
        "strategies": methods,
        "failures": failures,
        "machine": machine(),
    });
    println!("{json}");
}
