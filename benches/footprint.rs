//! Benchmark 3 in BENCHMARKS.md: footprint.
//!
//! - the stripped release binary's size (goal ≤ 6 MB);
//! - the RSS of `eni-agent run` managing 8 ENIs after `--idle-secs`
//!   (default 600) idle seconds (goal ≤ 10 MB);
//! - wake-ups while idle: context switches of every thread of the daemon
//!   over the idle window (each wake-up of a sleeping thread is one
//!   voluntary switch), and the API calls it made meanwhile, against the
//!   Describe period (`describe_interval`, default 60 s, per ENI);
//! - the daemon's CPU time per scrape of `/metrics` (metrics on, as by
//!   default; `--scrapes`, default 1000; goal < 1 ms).
//!
//! The daemon runs in a namespace of its own against `ecs-emulator`, which
//! hot-plugs the 8 ENIs (each 1 + 9 IPv4, 2 IPv6, 1 prefix, 4 queues).
//! Uses the binaries in `--bin-dir` (default `target/release`; build them
//! first with `cargo build --release -p eni-agent -p ecs-emulator`).
//!
//! Run: `cargo bench --bench footprint -- --idle-secs 600` (root).

mod support;

use std::time::{Duration, Instant};

use support::*;

fn main() {
    require_root("footprint");
    let idle_secs: u64 = arg("--idle-secs", 600);
    let enis: usize = arg("--enis", 8);
    let bins = bin_dir();
    let agent_bin = bins.join("eni-agent");
    let size = std::fs::metadata(&agent_bin)
        .unwrap_or_else(|e| {
            panic!(
                "{}: {e} (build the release binaries first)",
                agent_bin.display()
            )
        })
        .len();
    let stripped = !run_ok("file", &[&agent_bin.to_string_lossy()]).contains("not stripped");

    let dir = tempfile::tempdir().expect("tempdir");
    let ns = NamedNetns::new(&format!("ebench-fp-{}", std::process::id()));
    let scen = dir.path().join("scenario.toml");
    std::fs::write(
        &scen,
        scenario(
            enis,
            9,
            2,
            1,
            4,
            "[settings.timing]\nattach_delay_ms = 500\n",
        ),
    )
    .expect("scenario");
    let emu = start_emulator(&ns, &scen, &dir.path().join("emulator.log"));
    let ids: Vec<String> = (0..enis).map(emu_eni_id).collect();
    let cfg = agent_config(dir.path(), &ids, "");
    let log = std::fs::File::create(dir.path().join("agent.log")).expect("log");
    let started = Instant::now();
    let agent = Proc(
        ns.cmd(&agent_bin)
            .arg("--config")
            .arg(&cfg)
            .arg("run")
            .envs(emu.agent_env())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log)
            .spawn()
            .expect("spawn eni-agent run"),
    );
    let pid = agent.pid();
    // Wait until every ENI is configured (the daemon's own state records).
    let deadline = started + Duration::from_secs(120);
    let configured = loop {
        let out = std::process::Command::new(&agent_bin)
            .arg("--config")
            .arg(&cfg)
            .args(["status", "--json"])
            .output()
            .expect("status");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let n = v.as_array().map_or(0, |a| {
            a.iter().filter(|r| r["progress"] == "configured").count()
        });
        if n == enis {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {enis} ENIs configured after 120 s; see {}",
            dir.path().display()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let the start-up settle (first Describe polls, state writes) before the idle window.
    std::thread::sleep(Duration::from_secs(5));
    let (calls0, _) = emu.calls(&ns);
    let read_status = || std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let vol0 = task_sum(pid, "voluntary_ctxt_switches");
    let invol0 = task_sum(pid, "nonvoluntary_ctxt_switches");
    let idle_start = Instant::now();
    println!(
        "footprint: {enis} ENIs configured {:.1} s after start; idle for {idle_secs} s ...",
        configured.as_secs_f64()
    );
    let mut rss_samples = Vec::new();
    // Seconds in which the daemon woke at least once: a timer of 1 s or
    // faster would make every second active.
    let (mut active_secs, mut last_vol) = (0u64, vol0);
    while idle_start.elapsed() < Duration::from_secs(idle_secs) {
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(idle_secs)));
        rss_samples.push(status_field(&read_status(), "VmRSS"));
        let v = task_sum(pid, "voluntary_ctxt_switches");
        if v > last_vol {
            active_secs += 1;
        }
        last_vol = v;
    }
    let idle = idle_start.elapsed().as_secs_f64();
    let vol = task_sum(pid, "voluntary_ctxt_switches") - vol0;
    let invol = task_sum(pid, "nonvoluntary_ctxt_switches") - invol0;
    let (calls1, _) = emu.calls(&ns);
    let st = read_status();
    let rss_kb = status_field(&st, "VmRSS");
    let hwm_kb = status_field(&st, "VmHWM");
    let anon_kb = status_field(&st, "RssAnon");
    let threads = status_field(&st, "Threads");
    let rss_max = rss_samples.iter().copied().max().unwrap_or(rss_kb);
    let per_min = |n: u64| n as f64 * 60.0 / idle;
    let api_calls = calls1.saturating_sub(calls0) as u64;
    // The cost of a scrape of /metrics (metrics on: the default listen
    // address, inside the namespace): the daemon's CPU time over `scrapes`
    // scrapes, one after another.
    let scrapes: u32 = arg("--scrapes", 1000);
    let cpu0 = cpu_ticks(pid);
    let (scrape_bytes, scrape_wall) = scrape_metrics(&ns, scrapes);
    let scrape_cpu_ms = (cpu_ticks(pid) - cpu0) as f64 * 10.0 / f64::from(scrapes);
    let rss_after_scrapes_kb = status_field(&read_status(), "VmRSS");
    drop(agent);
    drop(emu);
    drop(ns);

    let mb = |kb: u64| kb as f64 / 1024.0;
    print_table(
        &["figure", "value", "goal"],
        &[
            vec![
                "binary size (stripped)".into(),
                format!(
                    "{:.2} MiB ({size} bytes, stripped: {stripped})",
                    size as f64 / 1048576.0
                ),
                "<= 6 MB".into(),
            ],
            vec![
                format!("RSS after {idle:.0} s idle, {enis} ENIs"),
                format!(
                    "{:.2} MiB (max during idle {:.2}, peak VmHWM {:.2}, anon {:.2})",
                    mb(rss_kb),
                    mb(rss_max),
                    mb(hwm_kb),
                    mb(anon_kb)
                ),
                "<= 10 MB".into(),
            ],
            vec![
                "wake-ups while idle (all threads)".into(),
                format!(
                    "{:.2}/min ({vol} voluntary + {invol} involuntary switches, {threads} threads)",
                    per_min(vol)
                ),
                "no timer faster than the Describe period".into(),
            ],
            vec![
                "seconds with any wake-up".into(),
                format!("{active_secs} of {:.0}", idle),
                "(a 1 s timer would make it all of them)".into(),
            ],
            vec![
                format!("CPU per scrape of /metrics ({enis} ENIs)"),
                format!(
                    "{scrape_cpu_ms:.3} ms ({scrapes} scrapes of {scrape_bytes} bytes, {:.2} ms wall each; RSS after them {:.2} MiB)",
                    scrape_wall.as_secs_f64() * 1000.0 / f64::from(scrapes),
                    mb(rss_after_scrapes_kb)
                ),
                "< 1 ms".into(),
            ],
            vec![
                "API calls while idle".into(),
                format!(
                    "{:.2}/min ({api_calls} calls; {enis} ENIs x 1 per 60 s = {enis}/min expected)",
                    per_min(api_calls)
                ),
                String::new(),
            ],
        ],
    );
    let json = serde_json::json!({
        "bench": "footprint",
        "binary_bytes": size,
        "binary_stripped": stripped,
        "enis": enis,
        "configured_after_s": configured.as_secs_f64(),
        "idle_s": idle,
        "rss_kib": rss_kb,
        "rss_max_idle_kib": rss_max,
        "vm_hwm_kib": hwm_kb,
        "rss_anon_kib": anon_kb,
        "threads": threads,
        "wakeups_voluntary": vol,
        "switches_involuntary": invol,
        "wakeups_per_min": per_min(vol),
        "active_seconds": active_secs,
        "api_calls_idle": api_calls,
        "api_calls_per_min": per_min(api_calls),
        "scrapes": scrapes,
        "scrape_bytes": scrape_bytes,
        "scrape_cpu_ms": scrape_cpu_ms,
        "rss_after_scrapes_kib": rss_after_scrapes_kb,
        "machine": machine(),
    });
    println!("{json}");
}

/// User + system CPU time of `pid` in clock ticks (USER_HZ = 100).
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the daemon runs");
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
}

/// Scrapes the daemon's `/metrics` (127.0.0.1:9839 in `ns`) `n` times;
/// the size of the last answer and the total wall time.
fn scrape_metrics(ns: &NamedNetns, n: u32) -> (usize, Duration) {
    use std::io::{Read, Write};
    let fd = ns.fd();
    std::thread::spawn(move || {
        enter(&fd);
        let started = Instant::now();
        let mut size = 0;
        for _ in 0..n {
            let mut s =
                std::net::TcpStream::connect("127.0.0.1:9839").expect("connect to /metrics");
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .expect("send");
            let mut body = Vec::new();
            s.read_to_end(&mut body).expect("read");
            assert!(body.starts_with(b"HTTP/1.1 200 "), "scrape failed");
            size = body.len();
        }
        (size, started.elapsed())
    })
    .join()
    .expect("scrape thread")
}
