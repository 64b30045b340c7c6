//! Harness of the end-to-end tests: the real `eni-agent` binary against the
//! real `ecs-emulator` binary, both inside a named network namespace that the
//! test creates (`ip netns add`) and deletes again, with the metadata service
//! at 100.100.100.200 inside it and hot-plugged veth NICs.
//!
//! [`Env::new`] returns `None` (after printing `SKIPPED ...`) when not root,
//! and panics instead when `CI=true`. Dropping the [`Env`] kills every process
//! it started and deletes the namespace, also when the test panics (then the
//! emulator's and the agents' logs are printed first).

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub const ENI1: &str = "eni-emu0secondary001";
pub const ENI2: &str = "eni-emu0secondary002";
pub const OTHER_ZONE: &str = "eni-emu0otherzone01";
pub const OTHER_VPC: &str = "eni-emu0othervpc001";
pub const INSTANCE: &str = "i-emu0instance0001";
/// The first table the agent allocates.
pub const TABLE: u32 = 10001;

/// The addresses of ENI1 in the built-in scenario.
pub const ENI1_PRIMARY: &str = "192.168.10.20";
pub const ENI1_SECONDARIES: [&str; 3] = ["192.168.10.21", "192.168.10.22", "192.168.10.23"];
pub const ENI1_PREFIX: &str = "192.168.10.128/28";
pub const ENI1_IPV6: [&str; 2] = ["2408:4005:3a0:7101::20", "2408:4005:3a0:7101::21"];
pub const GATEWAY: &str = "192.168.10.253";

/// Emulator timing for the tests: short, but each state still visible.
pub fn fast_timing() -> Value {
    json!({"timing": {"attach_delay_ms": 400, "detach_delay_ms": 300, "metadata_lag_ms": 100}})
}

/// True when the test may run; prints `SKIPPED` (or panics under CI=true).
pub fn gate(test: &str) -> bool {
    if nix::unistd::Uid::effective().is_root() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: needs root for network namespaces, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED {test}: needs root (ip netns, CAP_NET_ADMIN)");
    false
}

/// The eni-agent binary.
pub fn agent_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_eni-agent"))
}

/// The ecs-emulator binary, next to eni-agent.
pub fn emulator_bin() -> PathBuf {
    let p = agent_bin().with_file_name("ecs-emulator");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build -p ecs-emulator` first (cargo test --workspace builds it)",
        p.display()
    );
    p
}

/// Runs a command, returns (success, stdout, stderr).
pub fn sh(program: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Polls `f` every 50 ms until it is true or `timeout` passes.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The outcome of a finished agent command.
#[derive(Debug)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn expect_code(&self, code: i32, what: &str) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "{what}: exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// A long-running agent (the daemon, or a one-shot to be killed).
#[derive(Debug)]
pub struct Agent {
    pub pid: i32,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// One test's namespace, emulator, state directory and processes.
#[derive(Debug)]
pub struct Env {
    pub test: String,
    pub netns: String,
    pub dir: tempfile::TempDir,
    pub ready: Value,
    pub api_url: String,
    pub control_path: String,
    emulator: Mutex<Option<Child>>,
    children: Mutex<Vec<(Child, PathBuf, PathBuf)>>,
    runs: Mutex<u32>,
    /// No access key in the agent's environment: it must use the instance's
    /// RAM role from the metadata service.
    pub ram_role_only: std::sync::atomic::AtomicBool,
}

impl Env {
    /// A fresh namespace with the emulator (built-in scenario, fast timing).
    /// `None` when skipped.
    pub fn new(test: &str) -> Option<Env> {
        if !gate(test) {
            return None;
        }
        let emu = emulator_bin();
        let short: String = test
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let netns = format!("e2e-{short}-{}", std::process::id());
        let _ = sh("ip", &["netns", "del", &netns]);
        let (ok, _, err) = sh("ip", &["netns", "add", &netns]);
        assert!(ok, "ip netns add {netns}: {err}");
        let dir = tempfile::Builder::new()
            .prefix(&format!("e2e-{short}-"))
            .tempdir()
            .expect("temp dir");
        // From here on the guard cleans up.
        let mut env = Env {
            test: test.to_owned(),
            netns,
            dir,
            ready: Value::Null,
            api_url: String::new(),
            control_path: String::new(),
            emulator: Mutex::new(None),
            children: Mutex::new(Vec::new()),
            runs: Mutex::new(0),
            ram_role_only: std::sync::atomic::AtomicBool::new(false),
        };
        env.ip(&["link", "set", "lo", "up"]);
        let log = std::fs::File::create(env.dir.path().join("emulator.log")).expect("log file");
        let mut child = Command::new("ip")
            .args(["netns", "exec", &env.netns])
            .arg(&emu)
            .args(["serve", "--netns", &env.netns, "--metadata-in-netns"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn ecs-emulator");
        let stdout = child.stdout.take().expect("piped stdout");
        *env.emulator.lock().expect("lock") = Some(child);
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the emulator's ready line");
        assert!(
            !line.trim().is_empty(),
            "ecs-emulator exited without its ready line:\n{}",
            env.emulator_log()
        );
        env.ready = serde_json::from_str(line.trim()).expect("ready line is JSON");
        env.api_url = env.ready["api_url"].as_str().expect("api_url").to_owned();
        let control = env.ready["control_url"].as_str().expect("control_url");
        // http://127.0.0.1:PORT/_emulator -> PORT and path
        env.control_path = control.to_owned();
        env.patch_settings(&fast_timing());
        std::fs::create_dir_all(env.state_dir()).expect("state dir");
        Some(env)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.path("state")
    }

    pub fn config_path(&self) -> PathBuf {
        self.path("config.toml")
    }

    pub fn emulator_log(&self) -> String {
        std::fs::read_to_string(self.path("emulator.log")).unwrap_or_default()
    }

    /// Writes the agent's configuration: test defaults, `agent_extra` lines
    /// in `[agent]`, and one `[[eni]]` per entry (raw TOML body, e.g.
    /// `id = "eni-..."\ntakeover = true`).
    pub fn write_config(&self, agent_extra: &str, enis: &[String]) {
        let mut text = format!(
            "[agent]\nstate_dir = \"{}\"\nmanage_network_managers = false\ndescribe_interval = \"5s\"\nattach_timeout = \"30s\"\n{agent_extra}\n\
             [api]\nrequest_timeout = \"5s\"\n\
             [api.retry]\nbase_delay = \"50ms\"\nmax_delay = \"400ms\"\nmax_attempts = 25\ndeadline = \"30s\"\n\
             throttle_min_delay = \"50ms\"\nthrottle_base_delay = \"200ms\"\nthrottle_max_delay = \"400ms\"\n",
            self.state_dir().display()
        );
        for e in enis {
            text.push_str("\n[[eni]]\n");
            text.push_str(e);
            text.push('\n');
        }
        std::fs::write(self.config_path(), text).expect("write config");
    }

    /// `[[eni]]` body for an id.
    pub fn eni(id: &str) -> String {
        format!("id = \"{id}\"")
    }

    fn agent_command(&self, args: &[&str], extra_env: &[(&str, String)]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.netns])
            .arg(agent_bin())
            .arg("--config")
            .arg(self.config_path())
            .args(args)
            .env("ENI_AGENT_ECS_ENDPOINT", &self.api_url)
            .env("ENI_AGENT_METADATA_ENDPOINT", "http://100.100.100.200")
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_ID",
                self.ready["access_key_id"].as_str().expect("key id"),
            )
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                self.ready["access_key_secret"].as_str().expect("secret"),
            )
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .env_remove("JOURNAL_STREAM")
            .env_remove("INVOCATION_ID")
            .env_remove("RUST_LOG")
            .env_remove("ENI_AGENT_LOG")
            .stdin(Stdio::null());
        for (k, v) in extra_env {
            c.env(k, v);
        }
        if self
            .ram_role_only
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            c.env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
                .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET");
        }
        c
    }

    fn next_log_paths(&self, what: &str) -> (PathBuf, PathBuf) {
        let mut n = self.runs.lock().expect("lock");
        *n += 1;
        let safe: String = what
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .take(24)
            .collect();
        (
            self.path(&format!("agent-{n:02}-{safe}.out")),
            self.path(&format!("agent-{n:02}-{safe}.err")),
        )
    }

    /// Starts `eni-agent ARGS` in the namespace; it is killed when the Env
    /// is dropped.
    pub fn spawn(&self, args: &[&str], extra_env: &[(&str, String)]) -> Agent {
        let (out, err) = self.next_log_paths(&args.join(" "));
        let child = self
            .agent_command(args, extra_env)
            .stdout(std::fs::File::create(&out).expect("stdout file"))
            .stderr(std::fs::File::create(&err).expect("stderr file"))
            .spawn()
            .expect("spawn eni-agent");
        let pid = i32::try_from(child.id()).expect("pid");
        self.children
            .lock()
            .expect("lock")
            .push((child, out.clone(), err.clone()));
        Agent {
            pid,
            stdout: out,
            stderr: err,
        }
    }

    /// Waits up to `timeout` for a spawned agent to exit; its exit code
    /// (`None`: killed by a signal). Panics when it is still running.
    pub fn wait(&self, agent: &Agent, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        loop {
            {
                let mut children = self.children.lock().expect("lock");
                let pos = children
                    .iter()
                    .position(|(c, _, _)| i32::try_from(c.id()).ok() == Some(agent.pid))
                    .expect("a child of this Env");
                if let Some(status) = children[pos].0.try_wait().expect("try_wait") {
                    children.remove(pos);
                    return Output {
                        code: status.code(),
                        stdout: std::fs::read_to_string(&agent.stdout).unwrap_or_default(),
                        stderr: std::fs::read_to_string(&agent.stderr).unwrap_or_default(),
                    };
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "eni-agent (pid {}) still runs after {timeout:?}\n--- stderr\n{}",
                    agent.pid,
                    std::fs::read_to_string(&agent.stderr).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Runs `eni-agent ARGS` to completion (at most `timeout`).
    pub fn run(&self, args: &[&str], timeout: Duration) -> Output {
        let a = self.spawn(args, &[]);
        self.wait(&a, timeout)
    }

    /// Sends `signal` to a spawned agent.
    pub fn signal(&self, agent: &Agent, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.pid), signal)
            .expect("signal the agent");
    }

    /// kill -9 and reap.
    pub fn kill9(&self, agent: &Agent) {
        self.signal(agent, nix::sys::signal::Signal::SIGKILL);
        let out = self.wait(agent, Duration::from_secs(5));
        assert_eq!(out.code, None, "killed by SIGKILL");
    }

    /// kill -9 unless it has exited already; reaps it either way.
    pub fn kill9_any(&self, agent: &Agent) -> Output {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(agent.pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        self.wait(agent, Duration::from_secs(5))
    }

    /// `eni-agent attach ENI` with a test timeout.
    pub fn attach(&self, eni: &str) -> Output {
        self.run(
            &["attach", eni, "--timeout", "30s"],
            Duration::from_secs(40),
        )
    }

    /// `eni-agent detach ENI`.
    pub fn detach(&self, eni: &str) -> Output {
        self.run(&["detach", eni], Duration::from_secs(40))
    }

    /// `eni-agent status --json`.
    pub fn status(&self) -> Value {
        let out = self.run(&["status", "--json"], Duration::from_secs(10));
        out.expect_code(0, "status --json");
        serde_json::from_str(&out.stdout).expect("status --json prints JSON")
    }

    /// The state record of `eni`, if any.
    pub fn record(&self, eni: &str) -> Option<Value> {
        let p = self.state_dir().join("enis").join(format!("{eni}.json"));
        let text = std::fs::read_to_string(p).ok()?;
        serde_json::from_str(&text).ok()
    }

    // ---- the namespace ----------------------------------------------------

    /// `ip -n NETNS ARGS`; panics on failure.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", &self.netns];
        full.extend_from_slice(args);
        let (ok, out, err) = sh("ip", &full);
        assert!(ok, "ip {}: {err}", full.join(" "));
        out
    }

    /// `ip -n NETNS ARGS`; (success, stdout + stderr).
    pub fn ip_try(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec!["-n", &self.netns];
        full.extend_from_slice(args);
        let (ok, out, err) = sh("ip", &full);
        (ok, out + &err)
    }

    /// A command run inside the namespace (`ip netns exec`).
    pub fn exec(&self, args: &[&str]) -> (bool, String) {
        let mut full = vec!["netns", "exec", &self.netns];
        full.extend_from_slice(args);
        let (ok, out, err) = sh("ip", &full);
        (ok, out + &err)
    }

    /// Every rule of both families, one per line.
    pub fn rules(&self) -> String {
        self.ip(&["-4", "rule", "show"]) + &self.ip(&["-6", "rule", "show"])
    }

    /// The agent's rules (proto 237), normalised and sorted.
    pub fn our_rules(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .rules()
            .lines()
            .filter(|l| l.contains("proto 237"))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        v.sort();
        v
    }

    /// Routes of `table`, both families, normalised and sorted.
    pub fn table_routes(&self, table: u32) -> Vec<String> {
        let t = table.to_string();
        let mut v: Vec<String> = ["-4", "-6"]
            .iter()
            .flat_map(|f| {
                let out = self.ip_try(&[f, "route", "show", "table", &t]).1;
                if out.contains("FIB table does not exist") {
                    return Vec::new();
                }
                out.lines()
                    .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    }

    /// Global addresses of `dev` as `addr/len`, sorted (empty if no such dev).
    pub fn addresses(&self, dev: &str) -> Vec<String> {
        let (ok, out) = self.ip_try(&["-o", "addr", "show", "dev", dev, "scope", "global"]);
        if !ok {
            return Vec::new();
        }
        let mut v: Vec<String> = out
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                it.position(|w| w == "inet" || w == "inet6")?;
                it.next().map(str::to_owned)
            })
            .collect();
        v.sort();
        v
    }

    /// The name of the link with `mac`, if present.
    pub fn link_with_mac(&self, mac: &str) -> Option<String> {
        let out = self.ip(&["-o", "link", "show"]);
        out.lines().find(|l| l.contains(mac)).and_then(|l| {
            let name = l.split(": ").nth(1)?;
            Some(name.split('@').next()?.to_owned())
        })
    }

    /// Everything the agent configured: rules, the table's routes, the
    /// addresses of `dev`.
    pub fn snapshot(&self, dev: &str, table: u32) -> (Vec<String>, Vec<String>, Vec<String>) {
        (
            self.our_rules(),
            self.table_routes(table),
            self.addresses(dev),
        )
    }

    /// (rx, tx) channel counts of `dev` from `ethtool -l`.
    pub fn channels(&self, dev: &str) -> (u32, u32) {
        let (ok, out) = self.exec(&["ethtool", "-l", dev]);
        assert!(ok, "ethtool -l {dev}: {out}");
        let current = out
            .split("Current hardware settings:")
            .nth(1)
            .expect("current settings");
        let get = |key: &str| {
            current
                .lines()
                .find(|l| l.trim_start().starts_with(key))
                .and_then(|l| l.split(':').nth(1))
                .and_then(|v| v.trim().parse::<u32>().ok())
                .unwrap_or(0)
        };
        (get("RX"), get("TX"))
    }

    /// Asserts the full configuration of ENI1 on `dev` with `table`.
    pub fn assert_eni1_configured(&self, dev: &str, table: u32) {
        let t = table.to_string();
        let addrs = self.addresses(dev);
        let mut want = vec![format!("{ENI1_PRIMARY}/24")];
        want.extend(ENI1_SECONDARIES.iter().map(|a| format!("{a}/32")));
        want.extend(ENI1_IPV6.iter().map(|a| format!("{a}/64")));
        want.sort();
        assert_eq!(addrs, want, "addresses of {dev}");
        let rules = self.our_rules();
        for src in std::iter::once(ENI1_PRIMARY)
            .chain(ENI1_SECONDARIES)
            .chain([ENI1_PREFIX])
            .chain(ENI1_IPV6)
        {
            for prio in ["20100", "20300"] {
                assert!(
                    rules.iter().any(|r| r.starts_with(&format!("{prio}:"))
                        && r.contains(&format!("from {src} "))
                        && r.contains(&format!("lookup {t}"))),
                    "rule {prio} from {src} lookup {t} missing:\n{}",
                    rules.join("\n")
                );
            }
        }
        assert!(
            rules
                .iter()
                .filter(|r| r.starts_with("20200:") && r.contains("lookup main"))
                .count()
                == 2,
            "the 20200 main rules (v4 + v6):\n{}",
            rules.join("\n")
        );
        let routes = self.table_routes(table);
        for want in [
            format!("default via {GATEWAY} dev {dev}"),
            format!("192.168.10.0/24 dev {dev}"),
            format!("default via 2408:4005:3a0:7101:ffff:ffff:ffff:fff7 dev {dev}"),
            format!("2408:4005:3a0:7101::/64 dev {dev}"),
        ] {
            assert!(
                routes.iter().any(|r| r.starts_with(&want)),
                "route {want:?} missing from table {t}:\n{}",
                routes.join("\n")
            );
        }
        // Functionally: traffic from the ENI's addresses leaves through it.
        for src in [ENI1_PRIMARY, ENI1_SECONDARIES[0]] {
            let out = self.ip(&["route", "get", "1.1.1.1", "from", src]);
            assert!(
                out.contains(&format!("via {GATEWAY} dev {dev}")) && out.contains(&t),
                "route get 1.1.1.1 from {src}: {out}"
            );
        }
        let out = self.ip(&["-6", "route", "get", "2001:db8::1", "from", ENI1_IPV6[1]]);
        assert!(
            out.contains(&format!("dev {dev}")),
            "route get 2001:db8::1 from {}: {out}",
            ENI1_IPV6[1]
        );
    }

    /// Asserts nothing of the agent's is left: no proto 237 rule, no routes
    /// in `table`.
    pub fn assert_nothing_left(&self, table: u32) {
        assert!(
            self.our_rules().is_empty(),
            "leaked rules:\n{}",
            self.rules()
        );
        assert!(
            self.table_routes(table).is_empty(),
            "leaked routes in table {table}: {:?}",
            self.table_routes(table)
        );
    }

    /// Seeds objects that are not eni-agent's: a rule between the agent's
    /// priorities, routes in main and in a table of their own, an address on
    /// `lo`. Returns their snapshot for [`Env::assert_foreign_intact`].
    pub fn seed_foreign(&self) -> Vec<String> {
        self.ip(&[
            "rule",
            "add",
            "from",
            "192.0.2.77",
            "lookup",
            "77",
            "pref",
            "20250",
        ]);
        self.ip(&[
            "-6",
            "rule",
            "add",
            "from",
            "2001:db8:77::1",
            "lookup",
            "77",
            "pref",
            "20250",
        ]);
        self.ip(&[
            "route",
            "add",
            "unreachable",
            "198.51.100.0/24",
            "table",
            "77",
        ]);
        self.ip(&[
            "route",
            "add",
            "unreachable",
            "203.0.113.0/24",
            "proto",
            "static",
        ]);
        self.ip(&["address", "add", "192.0.2.77/32", "dev", "lo"]);
        self.foreign_snapshot()
    }

    /// Everything not eni-agent's that [`Env::seed_foreign`] put there.
    pub fn foreign_snapshot(&self) -> Vec<String> {
        let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut v: Vec<String> = self
            .rules()
            .lines()
            .filter(|l| !l.contains("proto 237"))
            .map(norm)
            .collect();
        v.extend(self.table_routes(77));
        v.extend(
            self.ip(&["route", "show", "proto", "static"])
                .lines()
                .map(norm),
        );
        v.extend(
            self.ip(&["-o", "address", "show", "dev", "lo"])
                .lines()
                .map(norm),
        );
        v.sort();
        v
    }

    /// Panics unless the foreign objects are exactly as seeded.
    pub fn assert_foreign_intact(&self, seeded: &[String], when: &str) {
        assert_eq!(
            self.foreign_snapshot(),
            seeded,
            "{when}: objects eni-agent does not own changed"
        );
    }

    // ---- the emulator's control API --------------------------------------

    /// An HTTP request to the control API (in the namespace): (status, JSON).
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let url = format!("{}{path}", self.control_path);
        let rest = url.strip_prefix("http://").expect("http control url");
        let (host, path) = rest.split_at(rest.find('/').expect("path"));
        let host = host.to_owned();
        let path = path.to_owned();
        let method = method.to_owned();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let netns = format!("/var/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).expect("open netns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let mut s = std::net::TcpStream::connect(&host).expect("connect to the control API");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            write!(
                s,
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .expect("send");
            let mut raw = Vec::new();
            s.read_to_end(&mut raw).expect("read the answer");
            parse_http(&raw)
        })
        .join()
        .expect("control thread")
    }

    pub fn patch_settings(&self, patch: &Value) {
        let (status, body) = self.control("PATCH", "/settings", Some(patch));
        assert_eq!(status, 200, "PATCH settings {patch}: {body}");
    }

    /// The call log.
    pub fn calls(&self) -> Vec<Value> {
        let (status, body) = self.control("GET", "/calls", None);
        assert_eq!(status, 200, "GET calls: {body}");
        body.as_array().expect("array").clone()
    }

    /// Calls of `action` for `eni` (any outcome), as their result codes.
    pub fn codes(&self, action: &str, eni: &str) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c["action"] == action && c["params"]["NetworkInterfaceId"] == eni)
            .map(|c| c["code"].as_str().unwrap_or("?").to_owned())
            .collect()
    }

    /// Successful calls of `action` for `eni`.
    pub fn successes(&self, action: &str, eni: &str) -> usize {
        self.codes(action, eni)
            .iter()
            .filter(|c| *c == "Success")
            .count()
    }

    /// The emulator's view of `eni`: (status, instance id).
    pub fn eni_state(&self, eni: &str) -> (String, String) {
        let (status, body) = self.control("GET", "/state", None);
        assert_eq!(status, 200, "GET state: {body}");
        let e = body["enis"]
            .as_array()
            .expect("enis")
            .iter()
            .find(|e| e["id"] == eni)
            .unwrap_or_else(|| panic!("{eni} not in the emulator's state: {body}"))
            .clone();
        let field = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
        (field("status"), field("instance_id"))
    }

    /// Seeds resources (a scenario fragment).
    pub fn seed(&self, fragment: &Value) {
        let (status, body) = self.control("POST", "/seed", Some(fragment));
        assert_eq!(status, 200, "seed {fragment}: {body}");
    }

    fn dump_logs(&self) {
        eprintln!("===== {}: emulator log (tail)", self.test);
        eprintln!("{}", tail(&self.emulator_log(), 40));
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        for f in files {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with("agent-") {
                eprintln!("===== {}: {name} (tail)", self.test);
                eprintln!(
                    "{}",
                    tail(&std::fs::read_to_string(&f).unwrap_or_default(), 40)
                );
            }
        }
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Ok(mut children) = self.children.lock() {
            for (c, _, _) in children.iter_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Ok(mut emu) = self.emulator.lock() {
            if let Some(c) = emu.as_mut() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        let _ = sh("ip", &["netns", "del", &self.netns]);
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Parses an HTTP/1.1 answer (Content-Length or chunked) into (status, JSON).
fn parse_http(raw: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("HTTP head");
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&after[..n]);
            rest = after[n..].trim_start_matches("\r\n");
        }
        out
    } else {
        body.to_owned()
    };
    let value = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or(Value::String(body))
    };
    (status, value)
}

/// A test NOTIFY_SOCKET: a unix datagram socket the test binds.
#[derive(Debug)]
pub struct NotifySocket {
    pub path: PathBuf,
    sock: UnixDatagram,
    pub messages: Vec<String>,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify.sock");
        let sock = UnixDatagram::bind(&path).expect("bind the notify socket");
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        Self {
            path,
            sock,
            messages: Vec::new(),
        }
    }

    /// Reads datagrams until one satisfies `pred` (returned) or `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(m) = self.messages.iter().find(|m| pred(m)) {
            return Some(m.clone());
        }
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push(m.clone());
                if pred(&m) {
                    return Some(m);
                }
            }
        }
        None
    }

    /// The next datagram within `timeout`, if any (also kept in `messages`).
    pub fn recv(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = self.sock.recv(&mut buf) {
                let m = String::from_utf8_lossy(&buf[..n]).into_owned();
                self.messages.push(m.clone());
                return Some(m);
            }
        }
        None
    }

    /// Drains what has arrived so far.
    pub fn drain(&mut self) {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = self.sock.recv(&mut buf) {
            self.messages
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

impl Env {
    /// (ifname, table) of `eni` once its state record says configured.
    pub fn configured(&self, eni: &str) -> Option<(String, u32)> {
        let r = self.record(eni)?;
        if r["progress"] != "configured" {
            return None;
        }
        Some((
            r["ifname"].as_str()?.to_owned(),
            u32::try_from(r["table"].as_u64()?).ok()?,
        ))
    }

    /// Waits until `eni` is configured (state record); its (ifname, table).
    pub fn wait_configured(&self, eni: &str, timeout: Duration) -> (String, u32) {
        let mut found = None;
        let ok = wait_for(timeout, || {
            found = self.configured(eni);
            found.is_some()
        });
        assert!(
            ok,
            "{eni} not configured within {timeout:?}; record: {:?}",
            self.record(eni)
        );
        found.expect("configured")
    }

    /// Waits until the call log has a successful `action` for `eni`.
    pub fn wait_call(&self, action: &str, eni: &str, timeout: Duration) {
        assert!(
            wait_for(timeout, || self.successes(action, eni) > 0),
            "no successful {action} for {eni} within {timeout:?}"
        );
    }

    /// A third Available ENI in the instance's vSwitch (QueueNumber 2).
    pub fn seed_third_eni(&self) -> &'static str {
        let id = "eni-emu0third00001";
        self.seed(&json!({"enis": [{
            "id": id, "vswitch_id": "vsw-emu0zonei", "mac": "00:16:3e:10:00:77",
            "primary_ip": "192.168.10.70", "secondary_ips": ["192.168.10.71"],
            "ipv6s": ["2408:4005:3a0:7101::70"], "queue_number": 2
        }]}));
        id
    }
}

/// A pseudo-random number from the clock (the tests print what they drew).
pub fn random_below(n: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % n.max(1)
}

impl Env {
    /// Calls the emulated ECS API as the account owner (a signed request
    /// from inside the namespace, with the agent's own client); the
    /// answer's body, or the error as text.
    pub fn api(&self, action: &'static str, params: &[(&str, &str)]) -> Result<Value, String> {
        use eni_agent::cloud::{EcsClient, EcsOptions, Params, SignatureVersion};
        use eni_agent::credentials::{CredentialProvider, Credentials};
        let mut p = Params::new();
        for (k, v) in params {
            p = p.set(*k, *v);
        }
        let options = EcsOptions {
            endpoint: self.api_url.clone(),
            region: "cn-hangzhou".into(),
            signature: SignatureVersion::V3,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            retry: eni_agent::backoff::RetryPolicy {
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(200),
                max_attempts: 10,
                deadline: Duration::from_secs(10),
            },
            throttle: eni_agent::backoff::ThrottleBackoff::default(),
        };
        let credentials = CredentialProvider::Static {
            credentials: Credentials {
                access_key_id: self.ready["access_key_id"]
                    .as_str()
                    .expect("key")
                    .to_owned(),
                access_key_secret: eni_agent::secret::Secret::new(
                    self.ready["access_key_secret"].as_str().expect("secret"),
                ),
                security_token: None,
                expiration: None,
            },
            origin: "e2e test".into(),
        };
        let netns = format!("/var/run/netns/{}", self.netns);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&netns).expect("open netns");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let client = EcsClient::new(options, credentials).map_err(|e| e.to_string())?;
                client
                    .call::<Value>(action, p)
                    .await
                    .map(|r| r.body)
                    .map_err(|e| e.to_string())
            })
        })
        .join()
        .expect("api thread")
    }
}

impl Env {
    /// A sysctl read inside the namespace.
    pub fn sysctl(&self, key: &str) -> String {
        let (ok, out) = self.exec(&["cat", &format!("/proc/sys/{}", key.replace('.', "/"))]);
        assert!(ok, "sysctl {key}: {out}");
        out.trim().to_owned()
    }
}
