//! Benchmark 5 in BENCHMARKS.md: a boot storm.
//!
//! N emulated instances (default 200), each its own named namespace
//! (`ip netns add ebstorm-K`), served by ONE `ecs-emulator` (in its own
//! namespace `ebstorm-emu`, `--instance-netns ID=ebstorm-K` for each, the
//! metadata service at 100.100.100.200 and the API at 100.100.100.201
//! inside every instance namespace) with an account-wide budget of
//! `--rps` requests per second (default 20; `Throttling.User` beyond it)
//! and the default attach delay (`--delay-ms`, 1500). Each instance has its
//! primary ENI (plugged as eth0) and one Available secondary ENI in the
//! same vSwitch. At t0 every instance starts what cloud-init would run,
//! `eni-agent attach ENI` (the one-shot; release binary), all at once.
//!
//! Figures: API calls per ENI from the emulator's call log, throttled ones
//! included (goal ≤ 4); time from t0 to the last agent's exit 0 against the
//! ideal, (calls the agent needs per ENI × N) ÷ budget (goal ≤ 1.5×). Every
//! instance's NIC is then checked in its namespace: the ENI's MAC carries
//! its primary IPv4. Namespaces and processes are removed on every exit
//! path, Ctrl-C included.
//!
//! Run: `cargo bench --bench bootstorm -- --instances 200 --bin-dir DIR`
//! (root).

mod support;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::*;

/// Calls the agent needs per ENI when nothing is throttled:
/// DescribeNetworkInterfaceAttribute (read the ENI, check it, plan) and
/// AttachNetworkInterface; the NIC's appearance confirms the attach.
const NEEDED_CALLS_PER_ENI: usize = 2;

/// Set by Ctrl-C; every waiting loop checks it and unwinds (cleaning up).
static STOP: AtomicBool = AtomicBool::new(false);

fn stop_on_ctrl_c() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("interrupted: cleaning up");
                STOP.store(true, Ordering::SeqCst);
            }
        });
    });
}

fn check_stop() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

fn instance_id(k: usize) -> String {
    format!("i-storm{k:06}")
}

fn eni_id(k: usize) -> String {
    format!("eni-storm{k:06}")
}

fn mac(kind: u8, k: usize) -> String {
    format!(
        "00:16:3e:{kind:02x}:{:02x}:{:02x}",
        (k >> 8) & 0xff,
        k & 0xff
    )
}

/// The n-th address of the vSwitch 192.168.0.0/18.
fn ip(n: usize) -> Ipv4Addr {
    let n = u32::try_from(n).expect("small index");
    Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 168, 0, 0)) + n)
}

/// Secondary ENI `k`'s primary IPv4.
fn eni_ip(k: usize) -> Ipv4Addr {
    ip(2048 + 2 * k)
}

/// N instances with their primary ENIs, N Available secondaries.
fn storm_scenario(n: usize, rps: u32, delay_ms: u64) -> String {
    let mut s = String::from(
        r#"region_id = "cn-hangzhou"
account_id = "1234567890123456"
metadata_instance_id = "i-storm000000"
max_enis = 10000

[[access_keys]]
id = "LTAIbenchRootKey0001"
secret = "benchRootSecret0123456789abcdefg"

[[instance_types]]
name = "ecs.storm.large"
eni_quantity = 2
ipv4_per_eni = 10
ipv6_per_eni = 0
network_cards = 1
max_queues_per_eni = 2
total_queues = 8
primary_queue_number = 1
secondary_queue_number = 1

[[vpcs]]
id = "vpc-storm0main"
cidr = "192.168.0.0/16"

[[vswitches]]
id = "vsw-storm0zonei"
vpc_id = "vpc-storm0main"
zone_id = "cn-hangzhou-i"
cidr = "192.168.0.0/18"

[[security_groups]]
id = "sg-storm0main"
vpc_id = "vpc-storm0main"
"#,
    );
    for k in 0..n {
        s.push_str(&format!(
            r#"
[[instances]]
id = "{inst}"
instance_type = "ecs.storm.large"
vswitch_id = "vsw-storm0zonei"

[[enis]]
id = "eni-stormp{k:06}"
type = "Primary"
vswitch_id = "vsw-storm0zonei"
instance_id = "{inst}"
mac = "{pmac}"
primary_ip = "{pip}"
security_group_ids = ["sg-storm0main"]

[[enis]]
id = "{eni}"
vswitch_id = "vsw-storm0zonei"
mac = "{emac}"
primary_ip = "{eip}"
secondary_ips = ["{sip}"]
queue_number = 1
security_group_ids = ["sg-storm0main"]
"#,
            inst = instance_id(k),
            pmac = mac(0x50, k),
            pip = ip(256 + k),
            eni = eni_id(k),
            emac = mac(0x60, k),
            eip = eni_ip(k),
            sip = ip(2048 + 2 * k + 1),
        ));
    }
    s.push_str(&format!(
        "\n[settings.timing]\nattach_delay_ms = {delay_ms}\n\n[settings.faults]\nrequests_per_second = {rps}\n"
    ));
    s
}

/// The agents; on drop every one still running gets SIGTERM, then SIGKILL.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        let mut running: Vec<&mut Child> = Vec::new();
        for c in &mut self.0 {
            if matches!(c.try_wait(), Ok(None)) {
                running.push(c);
            }
        }
        for c in &running {
            if let Ok(pid) = i32::try_from(c.id()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        for c in running {
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// What one storm measured.
struct Report {
    /// Per agent: ms after t0 when it exited, and whether with 0.
    exits: Vec<Option<(f64, bool)>>,
    failures: Vec<String>,
    calls: Vec<serde_json::Value>,
    verified: usize,
    spawn_ms: f64,
}

fn run(
    n: usize,
    rps: u32,
    delay_ms: u64,
    timeout: Duration,
    dir: &std::path::Path,
) -> Result<Report, String> {
    let started = Instant::now();
    let emu_ns = NamedNetns::new("ebstorm-emu");
    let mut namespaces = Vec::with_capacity(n);
    for k in 0..n {
        check_stop()?;
        namespaces.push(NamedNetns::new(&format!("ebstorm-{k}")));
    }
    eprintln!("{n} namespaces in {:.1} s", started.elapsed().as_secs_f64());
    let scen = dir.join("scenario.toml");
    std::fs::write(&scen, storm_scenario(n, rps, delay_ms)).map_err(|e| e.to_string())?;
    let mut args: Vec<String> = vec![
        "--metadata-in-netns".into(),
        "--api-in-netns".into(),
        "100.100.100.201:80".into(),
    ];
    for (k, ns) in namespaces.iter().enumerate() {
        args.push("--instance-netns".into());
        args.push(format!("{}={}", instance_id(k), ns.name));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let t = Instant::now();
    let emu = start_emulator_with(&emu_ns, &scen, &args, &dir.join("emulator.log"));
    eprintln!("emulator ready in {:.1} s", t.elapsed().as_secs_f64());
    // Let the primary NICs (eth0) be plugged before the boot.
    std::thread::sleep(Duration::from_secs(2));
    check_stop()?;
    let mut env = emu.agent_env();
    for (k, v) in &mut env {
        if k == "ENI_AGENT_ECS_ENDPOINT" {
            *v = "http://100.100.100.201:80/".into();
        }
    }
    let configs: Vec<std::path::PathBuf> = (0..n)
        .map(|k| {
            let d = dir.join(format!("agent-{k}"));
            std::fs::create_dir_all(&d).expect("agent dir");
            agent_config(&d, &[], "")
        })
        .collect();
    let timeout_arg = format!("{}s", timeout.as_secs());
    let t0 = Instant::now();
    let mut agents = Agents(Vec::with_capacity(n));
    let mut exits: Vec<Option<(f64, bool)>> = Vec::with_capacity(n);
    let mut failures = Vec::new();
    for (k, ns) in namespaces.iter().enumerate() {
        let d = dir.join(format!("agent-{k}"));
        let file = |name: &str| std::fs::File::create(d.join(name)).map_err(|e| e.to_string());
        let child = ns
            .cmd(bin_dir().join("eni-agent"))
            .arg("--config")
            .arg(&configs[k])
            .args(["attach", &eni_id(k), "--timeout", &timeout_arg])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(file("stdout")?)
            .stderr(file("stderr")?)
            .spawn()
            .map_err(|e| format!("spawn eni-agent: {e}"))?;
        agents.0.push(child);
        // Spawning takes a while: reap the early ones meanwhile.
        exits.push(None);
        reap(&mut agents, &mut exits, &mut failures, t0, dir);
    }
    let spawn_ms = ms(t0, Instant::now());
    while exits.iter().any(Option::is_none) {
        check_stop()?;
        if t0.elapsed() > timeout + Duration::from_secs(30) {
            let left = exits.iter().filter(|e| e.is_none()).count();
            return Err(format!("{left} agents still running after {timeout:?}"));
        }
        reap(&mut agents, &mut exits, &mut failures, t0, dir);
        std::thread::sleep(Duration::from_millis(20));
    }
    let calls: serde_json::Value =
        serde_json::from_str(&emu.control(&emu_ns, "GET", "calls", None))
            .map_err(|e| format!("call log: {e}"))?;
    let calls = calls.as_array().cloned().unwrap_or_default();
    let verified = namespaces
        .iter()
        .enumerate()
        .filter(|(k, ns)| nic_configured(ns, &mac(0x60, *k), eni_ip(*k)))
        .count();
    drop(agents);
    drop(emu);
    Ok(Report {
        exits,
        failures,
        calls,
        verified,
        spawn_ms,
    })
}

/// Records the exit time (ms after `t0`) and success of every agent that
/// has exited since the last call, and the stderr tail of those that
/// failed.
fn reap(
    agents: &mut Agents,
    exits: &mut [Option<(f64, bool)>],
    failures: &mut Vec<String>,
    t0: Instant,
    dir: &std::path::Path,
) {
    for (k, c) in agents.0.iter_mut().enumerate() {
        if exits.get(k).is_none_or(Option::is_some) {
            continue;
        }
        if let Ok(Some(status)) = c.try_wait() {
            exits[k] = Some((ms(t0, Instant::now()), status.success()));
            if !status.success() {
                let err = std::fs::read_to_string(dir.join(format!("agent-{k}/stderr")))
                    .unwrap_or_default();
                let tail: Vec<&str> = err.lines().rev().take(3).collect();
                failures.push(format!("agent {k}: {status}: {}", tail.join(" | ")));
            }
        }
    }
}

/// True if the link with `mac` in `ns` carries `ip`.
fn nic_configured(ns: &NamedNetns, mac: &str, ip: Ipv4Addr) -> bool {
    let out = run_ok("ip", &["-n", &ns.name, "-j", "addr", "show"]);
    let links: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
    links.as_array().into_iter().flatten().any(|l| {
        l["address"] == mac
            && l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| a["local"] == ip.to_string().as_str())
    })
}

fn main() {
    require_root("bootstorm");
    stop_on_ctrl_c();
    let n: usize = arg("--instances", 200);
    let rps: u32 = arg("--rps", 20);
    let delay_ms: u64 = arg("--delay-ms", 1500);
    let timeout = Duration::from_secs(arg("--timeout-secs", 300));
    println!(
        "boot storm: {n} instances x 1 ENI, one emulator, budget {rps} requests/s (Throttling.User beyond), attach delay {delay_ms} ms"
    );
    println!("machine: {}", machine());
    let dir = tempfile::Builder::new()
        .prefix("ebstorm-")
        .tempdir()
        .expect("tempdir");
    let report = match run(n, rps, delay_ms, timeout, dir.path()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("boot storm failed: {e} (logs in {})", dir.keep().display());
            std::process::exit(1);
        }
    };
    for f in report.failures.iter().take(10) {
        eprintln!("{f}");
    }

    let total = report.calls.len();
    let is_throttled = |c: &serde_json::Value| {
        c["code"]
            .as_str()
            .is_some_and(|s| s.starts_with("Throttling"))
    };
    let throttled = report.calls.iter().filter(|c| is_throttled(c)).count();
    let mut by_action: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut per_eni: BTreeMap<String, usize> = BTreeMap::new();
    for c in &report.calls {
        let e = by_action
            .entry(c["action"].as_str().unwrap_or("?").to_owned())
            .or_default();
        e.0 += 1;
        e.1 += usize::from(is_throttled(c));
        *per_eni
            .entry(
                c["params"]["NetworkInterfaceId"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned(),
            )
            .or_default() += 1;
    }
    let per_eni_counts: Vec<f64> = per_eni.values().map(|&c| c as f64).collect();
    let eni_stats = stats(if per_eni_counts.is_empty() {
        &[0.0]
    } else {
        &per_eni_counts
    });
    let calls_per_eni = total as f64 / n as f64;
    let ideal_s = (NEEDED_CALLS_PER_ENI * n) as f64 / f64::from(rps);
    // Convergence is an exit 0; failed agents count only in `ok`.
    let converged: Vec<f64> = report
        .exits
        .iter()
        .flatten()
        .filter(|(_, success)| *success)
        .map(|(t, _)| *t)
        .collect();
    let ok = n - report.failures.len();
    let last_s = converged.iter().copied().fold(0.0, f64::max) / 1000.0;
    let ratio = last_s / ideal_s;
    let conv = stats(if converged.is_empty() {
        &[0.0]
    } else {
        &converged
    });
    let actions: Vec<String> = by_action
        .iter()
        .map(|(a, (c, t))| format!("{a} {c} ({t} throttled)"))
        .collect();
    println!();
    print_table(
        &["figure", "value", "goal"],
        &[
            vec![
                "agents converged (exit 0)".into(),
                format!("{ok} of {n}"),
                format!("{n}"),
            ],
            vec![
                "NICs verified (primary IPv4 on the ENI's MAC)".into(),
                format!("{} of {n}", report.verified),
                format!("{n}"),
            ],
            vec![
                "API calls, all (throttled)".into(),
                format!("{total} ({throttled})"),
                String::new(),
            ],
            vec!["  by action".into(), actions.join(", "), String::new()],
            vec![
                "API calls per ENI, throttled included".into(),
                format!(
                    "{calls_per_eni:.2} (per ENI: median {:.0}, p95 {:.0}, max {:.0})",
                    eni_stats.median, eni_stats.p95, eni_stats.max
                ),
                "<= 4".into(),
            ],
            vec![
                "successful calls per ENI".into(),
                format!("{:.2}", (total - throttled) as f64 / n as f64),
                format!("needed: {NEEDED_CALLS_PER_ENI} (Describe, Attach)"),
            ],
            vec![
                "ideal (needed calls x N / budget)".into(),
                format!("{ideal_s:.1} s"),
                String::new(),
            ],
            vec![
                "last convergence (from t0)".into(),
                if ok < n {
                    format!(
                        "{last_s:.1} s = {ratio:.2} x ideal, but {} agents failed",
                        n - ok
                    )
                } else {
                    format!("{last_s:.1} s = {ratio:.2} x ideal")
                },
                "<= 1.5 x ideal".into(),
            ],
            vec![
                "convergence per agent".into(),
                format!(
                    "median {:.1} s, p95 {:.1} s, min {:.1} s",
                    conv.median / 1000.0,
                    conv.p95 / 1000.0,
                    conv.min / 1000.0
                ),
                String::new(),
            ],
            vec![
                "spawning the agents took".into(),
                format!("{:.0} ms", report.spawn_ms),
                String::new(),
            ],
        ],
    );
    let json = serde_json::json!({
        "bench": "bootstorm",
        "instances": n,
        "rps": rps,
        "attach_delay_ms": delay_ms,
        "converged": ok,
        "verified": report.verified,
        "calls": total,
        "throttled": throttled,
        "calls_per_eni": (calls_per_eni * 1000.0).round() / 1000.0,
        "calls_by_action": by_action.iter().map(|(a, (c, t))| (a.clone(), serde_json::json!({"calls": c, "throttled": t}))).collect::<serde_json::Map<_, _>>(),
        "needed_calls_per_eni": NEEDED_CALLS_PER_ENI,
        "ideal_s": ideal_s,
        "last_convergence_s": (last_s * 1000.0).round() / 1000.0,
        "ratio_to_ideal": (ratio * 1000.0).round() / 1000.0,
        "convergence": stats_json(&conv),
        "spawn_ms": report.spawn_ms.round(),
        "machine": machine(),
    });
    println!("{json}");
    if ok < n || report.verified < n {
        eprintln!(
            "not every instance converged; agent and emulator logs kept in {}",
            dir.keep().display()
        );
        std::process::exit(1);
    }
}
