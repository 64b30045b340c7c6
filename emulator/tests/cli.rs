//! The `ecs-emulator serve` binary: exactly one JSON ready line on stdout,
//! logs on stderr, the built-in scenario, `--netns` hot-plug with the
//! metadata service at 100.100.100.200:80 inside the instance namespace, and
//! the checks of `--instance-netns`; and `ecs-emulator demo` end to end.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

type Rest = std::thread::JoinHandle<String>;

/// The emulator process; killed when dropped, so a failing test leaves no
/// process behind.
struct Emu(Child);

impl Drop for Emu {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str]) -> (Emu, Value, Rest) {
    let mut child = Emu(Command::new(env!("CARGO_BIN_EXE_ecs-emulator"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ecs-emulator"));
    let stdout = child.0.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    reader.read_line(&mut line).expect("ready line");
    let info: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    // Keep reading the rest in the background: nothing else may come.
    let rest = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        rest
    });
    (child, info, rest)
}

fn stop(mut child: Emu, rest: Rest) -> String {
    let _ = child.0.kill();
    let _ = child.0.wait();
    let rest = rest.join().expect("stdout reader");
    assert!(rest.is_empty(), "more than one line on stdout: {rest:?}");
    let mut err = String::new();
    if let Some(mut e) = child.0.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    err
}

#[test]
fn serve_prints_one_ready_line() {
    let (child, info, rest) = spawn(&[]);
    for key in [
        "api_url",
        "metadata_url",
        "control_url",
        "access_key_id",
        "access_key_secret",
        "region_id",
        "instance_id",
        "primary_eni_id",
    ] {
        assert!(
            info[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {info}"
        );
    }
    assert_eq!(info["instance_id"], INSTANCE);
    assert_eq!(info["region_id"], REGION);
    assert_eq!(info["eni_ids"].as_array().map(Vec::len), Some(4));
    assert!(
        info["api_url"]
            .as_str()
            .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let http = http_client();
        let md = info["metadata_url"].as_str().unwrap_or_default();
        let r = http
            .get(format!("{md}/latest/meta-data/instance-id"))
            .send()
            .await
            .expect("metadata");
        assert_eq!(r.text().await.expect("text"), INSTANCE);
        let api = info["api_url"].as_str().unwrap_or_default();
        let r = http
            .get(format!("{api}?Action=DescribeNetworkInterfaces"))
            .send()
            .await
            .expect("api");
        assert_eq!(r.status().as_u16(), 400);
    });
    let log = stop(child, rest);
    assert!(
        log.contains("ecs-emulator ready"),
        "logs go to stderr: {log}"
    );
}

#[test]
fn serve_rejects_a_bad_scenario() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[enis]]\nid = \"eni-x\"\nvswitch_id = \"vsw-none\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_ecs-emulator"))
        .args(["serve", "--scenario"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("vsw-none"));
}

#[test]
fn serve_with_netns_hotplugs_and_serves_metadata_inside() {
    in_netns(|| async {
        let ns = new_instance_netns();
        let path = format!("/proc/{}/fd/{}", std::process::id(), ns.as_raw_fd());
        let (child, info, rest) = spawn(&[
            "--netns",
            &path,
            "--metadata-in-netns",
            "--api-in-netns",
            "100.100.100.201:8080",
        ]);
        let start = std::time::Instant::now();
        loop {
            if links_in(&ns)
                .await
                .iter()
                .any(|l| l.mac == "00:16:3e:10:00:01")
            {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "primary NIC not plugged"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // 100.100.100.200:80 answers inside the instance namespace.
        let home = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("enter instance netns");
        let stream = std::net::TcpStream::connect(("100.100.100.200", 80));
        nix::sched::setns(home.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("back");
        let mut stream = stream.expect("connect to 100.100.100.200:80 inside the instance");
        stream
            .write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 100.100.100.200\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut resp = String::new();
        stream.read_to_string(&mut resp).expect("read");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        assert!(resp.ends_with(INSTANCE), "{resp}");
        let urls = info["metadata_urls"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(urls.len(), 2);
        assert_eq!(urls[1], "http://100.100.100.200:80");
        // So does the API at the address given with --api-in-netns.
        assert_eq!(info["api_urls"][1], "http://100.100.100.201:8080/");
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
            .expect("enter instance netns");
        let stream = std::net::TcpStream::connect(("100.100.100.201", 8080));
        nix::sched::setns(home.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("back");
        let mut stream = stream.expect("connect to the API inside the instance");
        stream
            .write_all(b"GET /?Action=DescribeNetworkInterfaces HTTP/1.1\r\nHost: ecs\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut resp = String::new();
        stream.read_to_string(&mut resp).expect("read");
        assert!(
            resp.starts_with("HTTP/1.1 400") && resp.contains("MissingParameter"),
            "{resp}"
        );
        // The API still answers on loopback of the namespace we started it in.
        let http = http_client();
        let api = info["api_url"].as_str().unwrap_or_default();
        let r = http
            .get(format!("{api}?Action=DescribeNetworkInterfaces"))
            .send()
            .await
            .expect("api");
        assert_eq!(r.status().as_u16(), 400);
        stop(child, rest);
    });
}

/// `--instance-netns` takes `INSTANCE_ID=NAME`, and the in-namespace
/// listeners need `--netns` or `--instance-netns`; each mistake is refused
/// with a message saying what is expected (no root needed: parsing only).
#[test]
fn instance_netns_arguments_are_checked() {
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ecs-emulator"))
            .arg("serve")
            .args(args)
            .output()
            .expect("run ecs-emulator")
    };
    let out = run(&["--instance-netns", "no-equals-sign"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("INSTANCE_ID=NAME"), "{err}");

    let out = run(&["--metadata-in-netns"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--netns") || err.contains("--instance-netns"),
        "{err}"
    );

    let out = run(&["--instance-netns", "i-nosuch=/nonexistent/netns"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("/nonexistent/netns"), "{err}");
}

/// The lines of the demo's section whose title starts with `title`.
fn demo_section<'a>(out: &'a str, title: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| !l.starts_with(&format!("== {title}")))
        .skip(1)
        .take_while(|l| !l.starts_with("== "))
        .collect()
}

/// `ecs-emulator demo`, the README's quick start, with the eni-agent binary
/// beside it: it succeeds, and its kernel view agrees with `eni-agent
/// status` — the NIC is up in both, each route is printed once, and every
/// address of the ENI, IPv4 and IPv6, has its policy rules.
#[test]
fn the_demo_shows_a_consistent_picture() {
    if !nix::unistd::Uid::effective().is_root() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "the demo test needs root and CI=true makes it mandatory"
        );
        eprintln!("SKIPPED: the demo needs root");
        return;
    }
    let emulator = std::path::PathBuf::from(env!("CARGO_BIN_EXE_ecs-emulator"));
    assert!(
        emulator.with_file_name("eni-agent").is_file(),
        "{} is missing: run `cargo build -p eni-agent` first (cargo test --workspace builds it)",
        emulator.with_file_name("eni-agent").display()
    );
    let out = Command::new(&emulator)
        .arg("demo")
        .output()
        .expect("run ecs-emulator demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    let kernel = demo_section(&stdout, "the NIC as the kernel has it");
    let status = demo_section(&stdout, "eni-agent status");
    assert!(
        status.iter().any(|l| l.trim_start().starts_with("link up")),
        "status does not say link up: {status:#?}"
    );
    let ifname = status
        .first()
        .and_then(|l| l.split_whitespace().nth(2))
        .expect("status names the interface");
    let nic: Vec<&str> = kernel
        .iter()
        .copied()
        .filter(|l| l.starts_with(&format!("{ifname}@")) || l.starts_with(&format!("{ifname} ")))
        .collect();
    assert!(
        !nic.is_empty(),
        "no `ip -br` line for {ifname}: {kernel:#?}"
    );
    for l in &nic {
        assert_eq!(
            l.split_whitespace().nth(1),
            Some("UP"),
            "status says link up but the kernel view says otherwise: {l}"
        );
    }

    let routes: Vec<&str> = kernel
        .iter()
        .copied()
        .filter(|l| l.contains(" dev ") && l.contains(" table "))
        .collect();
    let unique: std::collections::BTreeSet<&str> = routes.iter().copied().collect();
    assert_eq!(
        unique.len(),
        routes.len(),
        "a route printed twice: {routes:#?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("default via ")
            && r[12..].split(' ').next().is_some_and(|gw| gw.contains(':'))),
        "no IPv6 default route in the ENI's table: {routes:#?}"
    );
    assert!(
        routes.iter().any(|r| r.starts_with("default via ")
            && r[12..].split(' ').next().is_some_and(|gw| gw.contains('.'))),
        "no IPv4 default route in the ENI's table: {routes:#?}"
    );

    let addresses = status
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("addresses "))
        .expect("status lists the addresses");
    let mut families = (0, 0);
    for a in addresses.split_whitespace() {
        let ip = a.split('/').next().unwrap_or(a);
        if ip.contains(':') {
            families.1 += 1;
        } else {
            families.0 += 1;
        }
        for prio in ["20100", "20300"] {
            assert!(
                kernel
                    .iter()
                    .any(|l| l.starts_with(&format!("{prio}:\tfrom {ip} lookup "))
                        && l.ends_with("proto 237")),
                "no rule {prio} for {ip} in the kernel view: {kernel:#?}"
            );
        }
    }
    assert!(
        families.0 > 0 && families.1 > 0,
        "the demo ENI has IPv4 and IPv6 addresses: {addresses}"
    );
}
