//! Benchmarks 1 and 4 in BENCHMARKS.md: hot-plug → configured, and the repair of
//! a full drift.
//!
//! Each run gets a fresh network namespace. The issue's ENI (1 primary + 49
//! secondary IPv4, 10 IPv6, 2 IPv4 prefixes, QueueNumber 4; the veth comes
//! with 8 queues, so the count really changes) is configured by one of:
//!
//! - `agent`: the agent's converger (`ConvergerConfig::default()`, as the
//!   daemon runs it), started and idle before the veth appears; the clock
//!   starts at the (last) link's RTM_NEWLINK as seen by the observer, so the
//!   agent's own detection is included (with several ENIs, its time from
//!   the first link is reported as well);
//! - `ip-batch`: the near-limit reference: sysctls and channels written
//!   in-process, then `ip -batch` (link + IPv4) and `ip -6 -batch` (IPv6) run
//!   concurrently; the clock starts once the link exists (detection is free);
//! - `script`: the plan's commands (`Plan`'s Display) as a sequential `sh`
//!   script of `ip`/`ethtool`/`sysctl` commands; the clock starts the same way.
//!
//! An independent observer (its own rtnetlink socket, plus /proc/sys and the
//! ethtool ioctl) stops the clock when every address, route, rule, sysctl and
//! queue count is in place. After each run the agent's reconciler checks
//! read-only that the method left zero operations pending.
//!
//! `--enis N` plugs N such ENIs at once (benchmark 4) and then also measures,
//! for the agent, the repair of a full drift: `ip rule flush` +
//! `ip -6 rule flush`, from the first RTM_DELRULE to every rule back.
//!
//! Run: `cargo bench --bench hotplug -- --runs 30` (root).

mod support;

use std::os::fd::OwnedFd;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use eni_agent::apply::{Converger, ConvergerConfig};
use eni_agent::plan::Plan;
use support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Agent,
    Batch,
    Script,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Agent => "agent",
            Method::Batch => "ip-batch",
            Method::Script => "script",
        }
    }
}

const METHODS: [Method; 3] = [Method::Agent, Method::Batch, Method::Script];
const TIMEOUT: Duration = Duration::from_secs(60);

/// The converger running on its own thread in the namespace.
struct Agent {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

fn start_agent(ns: &OwnedFd, plans: Vec<Plan>) -> Agent {
    let ns = ns.try_clone().expect("dup netns fd");
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        enter(&ns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let (mut conv, handle) = Converger::new(ConvergerConfig::default()).expect("converger");
            for p in plans {
                conv.manage(p).expect("manage");
            }
            let task = tokio::spawn(conv.run(async move {
                let _ = stop_rx.await;
            }));
            // Answered by the run loop, i.e. after the start-up resync: idle.
            handle.status().await.expect("status");
            ready_tx.send(()).expect("ready");
            task.await.expect("converger task").expect("converger");
        });
    });
    ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("agent ready");
    Agent { stop, thread }
}

impl Agent {
    fn stop(self) {
        let _ = self.stop.send(());
        self.thread.join().expect("agent thread");
    }
}

struct Sample {
    /// From the moment every link exists (the same start for all methods).
    ms: f64,
    /// The agent only, with several ENIs: from the first link's appearance.
    from_first_ms: Option<f64>,
    drift_ms: Option<f64>,
}

fn targets(enis: u8) -> Vec<(Plan, String)> {
    (1..=enis)
        .map(|n| (issue_plan(n), format!("eni{n}")))
        .collect()
}

fn run_once(method: Method, enis: u8, hw_queues: u32, drift: bool) -> Result<Sample, String> {
    in_new_netns(move |ns| {
        let ts = targets(enis);
        let create: String = ts
            .iter()
            .map(|(p, name)| veth_batch(name, p.mac, hw_queues))
            .collect();
        let (v4, v6) = batch_files(&ts);
        let script = shell_script(&ts);
        let agent = (method == Method::Agent)
            .then(|| start_agent(&ns, ts.iter().map(|t| t.0.clone()).collect()));
        let (seen_tx, seen_rx) = mpsc::channel();
        let obs = start_observer(&ns, ts.clone(), ObserveMode::Hotplug, TIMEOUT, seen_tx);
        wait_ok(ip_batch_stdin(&create, false), "veth creation");
        let wait_links = || {
            for _ in &ts {
                seen_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("observer saw the link");
            }
            Instant::now()
        };
        let t0 = match method {
            Method::Agent => None,
            Method::Batch => {
                let t0 = wait_links();
                apply_sysctls_and_channels(&ts);
                let a = ip_batch_stdin(&v4, false);
                let b = ip_batch_stdin(&v6, true);
                wait_ok(a, "ip -batch");
                wait_ok(b, "ip -6 -batch");
                Some(t0)
            }
            Method::Script => {
                let t0 = wait_links();
                let child = Command::new("sh")
                    .arg("-c")
                    .arg(&script)
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .expect("sh");
                wait_ok(child, "script");
                Some(t0)
            }
        };
        let o = obs.join().expect("observer thread")?;
        // Every method's clock starts once every link exists: the baselines
        // cannot start earlier. The agent starts on each link as it appears,
        // so it may be done with the first ENIs by then (with several ENIs
        // its time from the first link is reported too).
        let start = t0.unwrap_or_else(|| o.seen.iter().copied().max().expect("a link"));
        let took = ms(start, o.done);
        let from_first_ms = (t0.is_none() && enis > 1)
            .then(|| ms(o.seen.iter().copied().min().expect("a link"), o.done));
        let pending = pending_ops(&ts);
        if pending.iter().any(|n| *n > 0) {
            return Err(format!(
                "{}: operations still pending after the run: {pending:?}",
                method.name()
            ));
        }
        let drift_ms = match (&agent, drift) {
            (Some(_), true) => {
                let (tx, _rx) = mpsc::channel();
                let obs = start_observer(&ns, ts.clone(), ObserveMode::Drift, TIMEOUT, tx);
                let a = Command::new("ip")
                    .args(["rule", "flush"])
                    .spawn()
                    .expect("ip");
                let b = Command::new("ip")
                    .args(["-6", "rule", "flush"])
                    .spawn()
                    .expect("ip");
                wait_ok(a, "ip rule flush");
                wait_ok(b, "ip -6 rule flush");
                let o = obs.join().expect("observer thread")?;
                Some(ms(o.first_delete.expect("a deletion"), o.done))
            }
            _ => None,
        };
        if let Some(a) = agent {
            a.stop();
        }
        Ok(Sample {
            ms: took,
            from_first_ms,
            drift_ms,
        })
    })
}

fn main() {
    require_root("hotplug");
    if std::env::args().any(|a| a == "--log") {
        // The converger's warnings (failed applies, lost events) on stderr.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("eni_agent=warn"))
            .with_writer(std::io::stderr)
            .init();
    }
    let runs: usize = arg("--runs", 30);
    let warmup: usize = arg("--warmup", 2);
    let enis: u8 = arg("--enis", 1);
    let hw_queues: u32 = arg("--hw-queues", 8);
    let drift = enis > 1 || std::env::args().any(|a| a == "--drift");
    let plan = issue_plan(1);
    println!(
        "hot-plug -> configured: {enis} ENI(s), each {}; veth with {hw_queues} queues",
        plan_size(&plan)
    );
    println!("machine: {}", machine());
    println!(
        "{runs} runs per method (+{warmup} warm-up), interleaved (rotating order), fresh netns per run"
    );
    let mut samples: Samples = Samples::new();
    let mut drift_samples = Vec::new();
    let mut from_first = Vec::new();
    let mut failures: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for i in 0..warmup + runs {
        for k in 0..METHODS.len() {
            let m = METHODS[(i + k) % METHODS.len()];
            match run_once(m, enis, hw_queues, drift) {
                Ok(s) if i >= warmup => {
                    samples.entry(m.name()).or_default().push(s.ms);
                    drift_samples.extend(s.drift_ms);
                    from_first.extend(s.from_first_ms);
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("run {i} {}: {e}", m.name());
                    failures.entry(m.name()).or_default().push(e);
                }
            }
        }
        if (i + 1) % 5 == 0 {
            eprintln!("... {} of {} rounds", i + 1, warmup + runs);
        }
    }
    let st: std::collections::BTreeMap<&str, Stats> =
        samples.iter().map(|(k, v)| (*k, stats(v))).collect();
    let agent = st.get("agent").copied();
    let ratio = |a: Option<Stats>, b: Option<&Stats>| match (a, b) {
        (Some(a), Some(b)) => (a.median / b.median, a.p95 / b.p95),
        _ => (f64::NAN, f64::NAN),
    };
    let mut rows = Vec::new();
    for m in METHODS {
        if let Some(s) = st.get(m.name()) {
            let (rm, rp) = ratio(agent, Some(s));
            rows.push(vec![
                m.name().to_owned(),
                s.n.to_string(),
                format!("{:.2}", s.median),
                format!("{:.2}", s.p95),
                format!("{:.2}", s.min),
                format!("{:.2}", s.max),
                format!("{rm:.3}"),
                format!("{rp:.3}"),
                failures.get(m.name()).map_or(0, Vec::len).to_string(),
            ]);
        }
    }
    println!();
    print_table(
        &[
            "method",
            "n",
            "median ms",
            "p95 ms",
            "min ms",
            "max ms",
            "agent/x median",
            "agent/x p95",
            "failed",
        ],
        &rows,
    );
    let (rb, rbp) = ratio(agent, st.get("ip-batch"));
    let (rs, rsp) = ratio(agent, st.get("script"));
    println!(
        "\ngoal: agent <= 0.5 x ip-batch (median {rb:.3}, p95 {rbp:.3}) and <= 0.05 x script (median {rs:.3}, p95 {rsp:.3})"
    );
    let first_stats = (!from_first.is_empty()).then(|| stats(&from_first));
    if let Some(f) = &first_stats {
        println!(
            "agent from the FIRST link's appearance (includes creating the other links): median {:.2} ms p95 {:.2} ms",
            f.median, f.p95
        );
    }
    let drift_stats = (!drift_samples.is_empty()).then(|| stats(&drift_samples));
    if let Some(d) = &drift_stats {
        println!(
            "full drift repair (ip rule flush + ip -6 rule flush, {} rules): n {} median {:.2} ms p95 {:.2} ms",
            plan.rules.len() * usize::from(enis),
            d.n,
            d.median,
            d.p95
        );
    }
    let r3 = |x: f64| (x * 1000.0).round() / 1000.0;
    let json = serde_json::json!({
        "bench": "hotplug",
        "enis": enis,
        "runs": runs,
        "per_eni": {
            "addresses": plan.addresses.len(), "routes": plan.routes.len(),
            "rules": plan.rules.len(), "sysctls": plan.sysctls.len(), "queues": plan.queues,
        },
        "hw_queues": hw_queues,
        "methods": st.iter().map(|(k, v)| ((*k).to_owned(), stats_json(v))).collect::<serde_json::Map<_, _>>(),
        "ratio_agent_ip_batch": {"median": r3(rb), "p95": r3(rbp)},
        "ratio_agent_script": {"median": r3(rs), "p95": r3(rsp)},
        "drift_repair": drift_stats.as_ref().map(stats_json),
        "agent_from_first_link": first_stats.as_ref().map(stats_json),
        "failures": failures.iter().map(|(k, v)| ((*k).to_owned(), v.len())).collect::<std::collections::BTreeMap<_, _>>(),
        "machine": machine(),
    });
    println!("{json}");
}
