//! Metrics end to end: the daemon against the emulator with two ENIs serves
//! `/metrics`; after an attach, a drift repair, throttled calls and an API
//! error the scrape has the right values, passes `promtool check metrics`,
//! and a real Prometheus server scraping it inside the test's namespace
//! answers queries that match `eni-agent status --json`. The one-shot writes
//! a valid node_exporter textfile by rename.
//!
//! promtool and prometheus come from Debian's `prometheus` package (.ci/run
//! installs it); without them the test is skipped, or fails under CI=true.

mod e2e;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use e2e::*;
use serde_json::{Value, json};

const METRICS_ADDR: &str = "127.0.0.1:9839";
const PROMETHEUS_ADDR: &str = "127.0.0.1:19090";

/// True when `tool` is installed; otherwise prints SKIPPED (panics under CI=true).
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{test}: {tool} is missing (apt-get install prometheus), and CI=true forbids skipping"
        );
        eprintln!("SKIPPED {test}: {tool} is not installed (apt-get install prometheus)");
    }
    found
}

/// `GET path` (HTTP/1.0) to `addr` inside `netns`; (status line, body).
fn http_get(netns: &str, addr: &str, path: &str, accept: Option<&str>) -> (String, String) {
    let (netns, addr, path) = (netns.to_owned(), addr.to_owned(), path.to_owned());
    let accept = accept.map(str::to_owned);
    std::thread::spawn(move || {
        // Only this thread enters the namespace.
        let ns = std::fs::File::open(format!("/run/netns/{netns}")).expect("netns file");
        nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
            return (String::new(), String::new());
        };
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n");
        if let Some(a) = accept {
            req.push_str(&format!("Accept: {a}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).expect("send");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        (
            head.lines().next().unwrap_or("").to_owned(),
            body.to_owned(),
        )
    })
    .join()
    .expect("http thread")
}

fn scrape(env: &Env) -> String {
    let (status, body) = http_get(&env.netns, METRICS_ADDR, "/metrics", None);
    assert!(status.contains(" 200 "), "scrape: {status}\n{body}");
    body
}

/// The value of the sample `series` (name and labels exactly as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The sum of every sample of `name` whose labels contain all of `labels`.
fn total(text: &str, name: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

fn promtool_check(text: &str, dir: &Path) {
    let file = dir.join("scrape.prom");
    std::fs::write(&file, text).expect("write scrape");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).expect("open"))
        .output()
        .expect("run promtool");
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prometheus in the test's namespace; killed when dropped.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_prometheus(env: &Env) -> Prometheus {
    let dir = env.path("prometheus");
    std::fs::create_dir_all(dir.join("data")).expect("prometheus dir");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: eni-agent\n    static_configs:\n      - targets: ['{METRICS_ADDR}']\n"
        ),
    )
    .expect("prometheus.yml");
    let log = std::fs::File::create(dir.join("prometheus.log")).expect("log");
    let child = Command::new("ip")
        .args(["netns", "exec", &env.netns, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={PROMETHEUS_ADDR}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn prometheus");
    Prometheus(child)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// An instant query's result vector (empty while Prometheus is not up).
fn query(env: &Env, q: &str) -> Vec<Value> {
    let (status, body) = http_get(
        &env.netns,
        PROMETHEUS_ADDR,
        &format!("/api/v1/query?query={}", urlencode(q)),
        None,
    );
    if !status.contains(" 200 ") {
        return Vec::new();
    }
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

fn value_of(result: &Value) -> f64 {
    result["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn the_daemon_serves_metrics_that_prometheus_scrapes() {
    const TEST: &str = "e2e_metrics_daemon";
    if !gate(TEST) || !have("promtool", TEST) || !have("prometheus", TEST) {
        return;
    }
    let Some(env) = Env::new("metrics_daemon") else {
        return;
    };
    env.write_config("", &[Env::eni(ENI1), Env::eni(ENI2)]);
    let _daemon = env.spawn(&["run"], &[]);
    let (dev1, table1) = env.wait_configured(ENI1, Duration::from_secs(30));
    env.wait_configured(ENI2, Duration::from_secs(30));

    // A drift repair: a rule deleted behind the agent's back.
    env.ip(&["rule", "del", "pref", "20300", "from", ENI1_SECONDARIES[0]]);
    let repaired = wait_for(Duration::from_secs(10), || {
        total(
            &scrape(&env),
            "eni_agent_drift_repairs_total",
            &[&format!("eni=\"{ENI1}\""), "kind=\"rule\""],
        ) >= 1.0
    });
    assert!(repaired, "the repair is counted:\n{}", scrape(&env));
    env.assert_eni1_configured(&dev1, table1);

    // Throttled calls, then an API error, on the periodic Describe.
    let describe = "DescribeNetworkInterfaceAttribute";
    for (fault, series) in [
        ("throttling_rate", "eni_agent_api_throttled_total"),
        ("internal_error_rate", "eni_agent_api_requests_total"),
    ] {
        env.patch_settings(&json!({"faults": {"actions": {describe: {fault: 1.0}}}}));
        let labels: Vec<String> = if fault == "throttling_rate" {
            vec![format!("action=\"{describe}\"")]
        } else {
            vec![
                format!("action=\"{describe}\""),
                "code=\"InternalError\"".into(),
            ]
        };
        let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
        let seen = wait_for(Duration::from_secs(20), || {
            total(&scrape(&env), series, &labels) >= 1.0
        });
        env.patch_settings(&json!({"faults": {"actions": {describe: {fault: 0.0}}}}));
        assert!(seen, "{fault}: {series} {labels:?}:\n{}", scrape(&env));
    }

    let text = scrape(&env);
    // Phases: both ENIs went through the whole attach once.
    for phase in [
        "described",
        "attach_accepted",
        "link_seen",
        "in_use_confirmed",
        "configured",
    ] {
        assert_eq!(
            sample(
                &text,
                &format!("eni_agent_phase_duration_seconds_count{{phase=\"{phase}\"}}")
            ),
            Some(2.0),
            "phase {phase}:\n{text}"
        );
    }
    // Requests by action and code, as the emulator logged them.
    let attaches = env.successes("AttachNetworkInterface", ENI1)
        + env.successes("AttachNetworkInterface", ENI2);
    assert_eq!(attaches, 2);
    assert_eq!(
        sample(
            &text,
            "eni_agent_api_requests_total{action=\"AttachNetworkInterface\",code=\"Success\"}"
        ),
        Some(2.0),
        "{text}"
    );
    let emulator_describes = env
        .calls()
        .iter()
        .filter(|c| c["action"] == describe)
        .count() as f64;
    let agent_describes = total(
        &text,
        "eni_agent_api_requests_total",
        &[&format!("action=\"{describe}\"")],
    );
    assert!(
        agent_describes >= 1.0 && agent_describes <= emulator_describes,
        "{agent_describes} Describe requests counted, the emulator logged {emulator_describes}"
    );
    assert!(
        total(&text, "eni_agent_api_retries_total", &[]) >= 1.0,
        "{text}"
    );
    assert!(
        total(
            &text,
            "eni_agent_metadata_requests_total",
            &["result=\"ok\""]
        ) >= 1.0
    );
    for eni in [ENI1, ENI2] {
        assert_eq!(
            sample(
                &text,
                &format!("eni_agent_eni_state{{eni=\"{eni}\",state=\"configured\"}}")
            ),
            Some(1.0),
            "{text}"
        );
        assert!(text.contains(&format!("eni_agent_eni_info{{eni=\"{eni}\",mac=\"")));
    }
    assert_eq!(
        sample(
            &text,
            &format!("eni_agent_eni_addresses_desired{{eni=\"{ENI1}\",family=\"ipv4\"}}")
        ),
        sample(
            &text,
            &format!("eni_agent_eni_addresses_configured{{eni=\"{ENI1}\",family=\"ipv4\"}}")
        ),
    );
    assert!(text.contains("eni_agent_build_info{version=\""));
    promtool_check(&text, env.dir.path());

    // OpenMetrics when asked for.
    let (status, om) = http_get(
        &env.netns,
        METRICS_ADDR,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    );
    assert!(
        status.contains(" 200 ") && om.ends_with("# EOF\n"),
        "{status}\n{om}"
    );

    // A real Prometheus scrapes the agent; its answers match `status --json`.
    let _prometheus = start_prometheus(&env);
    let scraped = wait_for(Duration::from_secs(60), || {
        query(&env, "up{job=\"eni-agent\"} == 1").len() == 1
            && !query(&env, "eni_agent_phase_duration_seconds_count").is_empty()
    });
    assert!(
        scraped,
        "Prometheus did not scrape the agent:\n{}",
        std::fs::read_to_string(env.path("prometheus/prometheus.log")).unwrap_or_default()
    );
    let status = env.status();
    let rows = status.as_array().expect("status --json is an array");
    let configured: Vec<&str> = rows
        .iter()
        .filter(|r| r["progress"] == "configured")
        .filter_map(|r| r["eni_id"].as_str())
        .collect();
    let mut in_prometheus: Vec<String> =
        query(&env, "eni_agent_eni_state{state=\"configured\"} == 1")
            .iter()
            .filter_map(|r| r["metric"]["eni"].as_str().map(str::to_owned))
            .collect();
    in_prometheus.sort();
    let mut configured: Vec<String> = configured.into_iter().map(str::to_owned).collect();
    configured.sort();
    assert_eq!(
        in_prometheus, configured,
        "configured ENIs: Prometheus vs status --json"
    );

    let marks_ms = |phase: &str| -> Vec<f64> {
        rows.iter()
            .flat_map(|r| r["timeline"].as_array().cloned().unwrap_or_default())
            .filter(|m| m["phase"] == phase)
            .filter_map(|m| m["at"].as_f64())
            .collect()
    };
    for phase in ["described", "attach_accepted", "configured"] {
        let ms = marks_ms(phase);
        let count = query(
            &env,
            &format!("eni_agent_phase_duration_seconds_count{{phase=\"{phase}\"}}"),
        );
        let sum = query(
            &env,
            &format!("eni_agent_phase_duration_seconds_sum{{phase=\"{phase}\"}}"),
        );
        assert_eq!(count.len(), 1, "{phase}: {count:?}");
        assert_eq!(value_of(&count[0]), ms.len() as f64, "{phase} count");
        // status --json keeps whole milliseconds.
        let expected: f64 = ms.iter().sum::<f64>() / 1000.0;
        let got = value_of(&sum[0]);
        assert!(
            (got - expected).abs() <= 0.001 * ms.len() as f64,
            "{phase}: sum {got} s in Prometheus, {expected} s in status --json"
        );
    }
}

#[test]
fn the_one_shot_writes_a_valid_textfile_by_rename() {
    const TEST: &str = "e2e_metrics_textfile";
    if !gate(TEST) || !have("promtool", TEST) {
        return;
    }
    let Some(env) = Env::new("metrics_textfile") else {
        return;
    };
    let dir = env.path("textfile_collector");
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("eni_agent.prom");
    std::fs::write(&file, "stale\n").expect("stale file");
    let old_inode = std::fs::metadata(&file).expect("meta").ino();
    env.write_config(
        &format!("\n[metrics]\ntextfile = \"{}\"", file.display()),
        &[Env::eni(ENI1)],
    );
    env.attach(ENI1).expect_code(0, "attach");

    let meta = std::fs::metadata(&file).expect("textfile written");
    assert_ne!(
        meta.ino(),
        old_inode,
        "replaced by a rename, not rewritten in place"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    let names: Vec<String> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["eni_agent.prom"], "no temporary file left");
    let text = std::fs::read_to_string(&file).expect("read");
    assert_eq!(
        sample(
            &text,
            &format!("eni_agent_eni_state{{eni=\"{ENI1}\",state=\"configured\"}}")
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "eni_agent_phase_duration_seconds_count{phase=\"configured\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "eni_agent_api_requests_total{action=\"AttachNetworkInterface\",code=\"Success\"}"
        ),
        Some(1.0),
        "{text}"
    );
    promtool_check(&text, env.dir.path());
}
