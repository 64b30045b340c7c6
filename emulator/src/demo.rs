//! `ecs-emulator demo`: the whole flow on one machine, for people evaluating
//! eni-agent. It creates a private network namespace for an emulated
//! instance, starts the emulator inside it (API on the namespace's loopback,
//! metadata at 100.100.100.200, hot-plug into the namespace), runs
//! `eni-agent attach` for a secondary ENI, prints the phase timeline and the
//! resulting interface configuration, detaches, and removes everything.
//!
//! The kernel state is printed once the kernel reports the NIC's link as up,
//! for the NIC alone and for both address families.
//!
//! Nothing outside the demo's own namespace is touched. Needs root and
//! iproute2 (`ip`), and the `eni-agent` binary next to this one (a
//! `cargo build --workspace` puts both in `target/debug`) or on PATH.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo needs root (it creates a network namespace); run it as root")]
    NotRoot,
    #[error(
        "cannot find the eni-agent binary next to {0} or on PATH; run `cargo build --workspace` first"
    )]
    NoAgent(PathBuf),
    #[error("`{cmd}` failed: {reason}")]
    Command { cmd: String, reason: String },
    #[error("the emulator did not print its ready line: {0}")]
    NotReady(String),
}

/// Removes the namespace and stops the emulator, even on failure.
struct Cleanup {
    netns: String,
    emulator: Option<Child>,
    state: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(mut child) = self.emulator.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn run(cmd: &mut Command) -> Result<String, DemoError> {
    let shown = format!("{cmd:?}").replace('"', "");
    let out = cmd.output().map_err(|e| DemoError::Command {
        cmd: shown.clone(),
        reason: e.to_string(),
    })?;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(DemoError::Command {
            cmd: shown,
            reason: format!("{}: {}", out.status, text.trim()),
        })
    }
}

fn find_agent(me: &Path) -> Result<PathBuf, DemoError> {
    let beside = me.with_file_name("eni-agent");
    if beside.is_file() {
        return Ok(beside);
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("eni-agent"))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| DemoError::NoAgent(me.to_owned()))
}

/// How long the demo waits for the kernel to report the NIC's link as up.
const OPER_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The name of the interface with `mac` in `netns`.
fn nic_with_mac(netns: &str, mac: &str) -> Result<String, DemoError> {
    let out = run(Command::new("ip").args(["-n", netns, "-j", "link", "show"]))?;
    let links: serde_json::Value = serde_json::from_str(&out).map_err(|e| DemoError::Command {
        cmd: format!("ip -n {netns} -j link show"),
        reason: format!("unreadable JSON: {e}"),
    })?;
    links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| {
            l["address"]
                .as_str()
                .is_some_and(|a| a.eq_ignore_ascii_case(mac))
        })
        .and_then(|l| l["ifname"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| DemoError::Command {
            cmd: format!("ip -n {netns} -j link show"),
            reason: format!("no interface with MAC {mac}"),
        })
}

/// Waits (at most [`OPER_WAIT`]) until the kernel reports `ifname`'s
/// operational state as UP, and returns the state it has then. The agent
/// sets the link up as part of "configured"; the kernel updates the
/// operational state (what `ip` prints as UP or DOWN) a moment later, from its
/// link-watch work, so printing right after the attach would show DOWN for a
/// NIC that is up.
fn wait_oper_up(netns: &str, ifname: &str) -> Result<String, DemoError> {
    let deadline = std::time::Instant::now() + OPER_WAIT;
    loop {
        let out = run(Command::new("ip").args(["-n", netns, "-j", "link", "show", "dev", ifname]))?;
        let state = serde_json::from_str::<serde_json::Value>(&out)
            .ok()
            .and_then(|v| v[0]["operstate"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "UNKNOWN".into());
        if state == "UP" || std::time::Instant::now() >= deadline {
            return Ok(state);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

fn section(title: &str) {
    println!("\n== {title}");
}

/// Runs the demo; `eni` picks the ENI (default: the first secondary one).
pub fn demo(eni: Option<String>) -> Result<(), DemoError> {
    if !nix::unistd::geteuid().is_root() {
        return Err(DemoError::NotRoot);
    }
    let me = std::env::current_exe().map_err(|e| DemoError::Command {
        cmd: "current_exe".into(),
        reason: e.to_string(),
    })?;
    let agent = find_agent(&me)?;
    let netns = format!("eni-demo-{}", std::process::id());
    let state = std::env::temp_dir().join(&netns);
    let mut cleanup = Cleanup {
        netns: netns.clone(),
        emulator: None,
        state: state.clone(),
    };

    section(&format!(
        "an emulated ECS instance in network namespace {netns}"
    ));
    run(Command::new("ip").args(["netns", "add", &netns]))?;
    run(Command::new("ip").args(["-n", &netns, "link", "set", "lo", "up"]))?;
    let mut child = Command::new("ip")
        .args(["netns", "exec", &netns])
        .arg(&me)
        .args(["serve", "--netns", &netns, "--metadata-in-netns"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| DemoError::Command {
            cmd: "ecs-emulator serve".into(),
            reason: e.to_string(),
        })?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| DemoError::NotReady("no stdout".into()))?;
    cleanup.emulator = Some(child);
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| DemoError::NotReady(e.to_string()))?;
    let ready: serde_json::Value =
        serde_json::from_str(&line).map_err(|e| DemoError::NotReady(format!("{e}: {line:?}")))?;
    let field = |k: &str| ready[k].as_str().unwrap_or_default().to_owned();
    let eni = match eni {
        Some(e) => e,
        None => ready["eni_ids"][0]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| DemoError::NotReady("no ENI in the scenario".into()))?,
    };
    println!(
        "instance {} in {}, ECS API {}, metadata http://100.100.100.200",
        field("instance_id"),
        field("region_id"),
        field("api_url")
    );

    std::fs::create_dir_all(&state).map_err(|e| DemoError::Command {
        cmd: "mkdir".into(),
        reason: e.to_string(),
    })?;
    let config = state.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = {:?}\nmanage_network_managers = false\n",
            state.join("state").display().to_string()
        ),
    )
    .map_err(|e| DemoError::Command {
        cmd: "write config".into(),
        reason: e.to_string(),
    })?;
    let agent_cmd = |args: &[&str]| {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &netns])
            .arg(&agent)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("ENI_AGENT_ECS_ENDPOINT", field("api_url"))
            .env("ENI_AGENT_METADATA_ENDPOINT", "http://100.100.100.200")
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", field("access_key_id"))
            .env(
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
                field("access_key_secret"),
            )
            .env("ENI_AGENT_LOG", "warn");
        c
    };

    section(&format!("eni-agent attach {eni}"));
    print!(
        "{}",
        run(&mut agent_cmd(&["attach", &eni, "--timeout", "60s"]))?
    );

    let mac = ready["enis"]
        .as_array()
        .and_then(|enis| enis.iter().find(|e| e["id"].as_str() == Some(eni.as_str())))
        .and_then(|e| e["mac"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| DemoError::NotReady(format!("the scenario has no MAC for {eni}")))?;
    let ifname = nic_with_mac(&netns, &mac)?;
    let ifname = ifname.as_str();
    let oper = wait_oper_up(&netns, ifname)?;

    section(
        "the NIC as the kernel has it (ip -br link/address; ip rule; ip -6 rule; routes with proto 237)",
    );
    if oper != "UP" {
        println!("(the link's operational state is still {oper} after {OPER_WAIT:?})");
    }
    for args in [
        &["-br", "link", "show", "dev", ifname][..],
        &["-br", "address", "show", "dev", ifname],
        &["-4", "rule"],
        &["-6", "rule"],
        &["-4", "route", "show", "table", "all", "proto", "237"],
        &["-6", "route", "show", "table", "all", "proto", "237"],
    ] {
        print!(
            "{}",
            run(Command::new("ip").args(["-n", &netns]).args(args))?
        );
    }

    section("eni-agent status");
    print!("{}", run(&mut agent_cmd(&["status"]))?);

    section(&format!("eni-agent detach {eni}"));
    let out = run(&mut agent_cmd(&["detach", &eni]))?;
    println!("{}", out.lines().last().unwrap_or_default());

    section("cleaning up the namespace");
    drop(cleanup);
    println!("done");
    Ok(())
}
