//! A hostile or mistaken cloud, end to end with the real binary in a network
//! namespace: (1) with V2 and V3 signing and an STS token, a
//! SignatureDoesNotMatch answer that echoes the string to sign never puts the
//! token, the secret or the AccessKeyId into stderr, the state files (which
//! are 0600) or `status --json`; (2) a DescribeNetworkInterfaces pagination
//! flood keeps the daemon under 64 MiB of peak RSS (VmHWM).

mod e2e;

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use e2e::*;

const TOKEN: &str = "CAISe2eSts+Token/Value==";
const WRONG_SECRET: &str = "wrong-secret-e2e-7f3a";

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn leaks(text: &str, key_id: &str) -> Vec<String> {
    let once = encode(TOKEN);
    let twice = encode(&once);
    [
        TOKEN.to_owned(),
        once,
        twice,
        "CAISe2eSts".to_owned(),
        WRONG_SECRET.to_owned(),
        key_id.to_owned(),
    ]
    .into_iter()
    .filter(|l| text.contains(l.as_str()))
    .collect()
}

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let p = entry.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn api_errors_state_files_and_status_never_carry_the_sts_token_v2_and_v3() {
    let Some(env) = Env::new("secrets") else {
        return;
    };
    let key_id = env.ready["access_key_id"]
        .as_str()
        .expect("key id")
        .to_owned();
    for signature in ["v2", "v3"] {
        env.write_config("", &[]);
        let text = std::fs::read_to_string(env.config_path()).expect("config");
        std::fs::write(
            env.config_path(),
            text.replacen(
                "[api]\n",
                &format!("[api]\nsignature = \"{signature}\"\n"),
                1,
            ),
        )
        .expect("config");
        let agent = env.spawn(
            &["attach", ENI1, "--timeout", "20s"],
            &[
                ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", WRONG_SECRET.to_owned()),
                ("ALIBABA_CLOUD_SECURITY_TOKEN", TOKEN.to_owned()),
            ],
        );
        let out = env.wait(&agent, Duration::from_secs(40));
        out.expect_code(
            1,
            &format!("{signature}: a wrong secret is a permanent error"),
        );
        assert!(
            out.stderr.contains("SignatureDoesNotMatch"),
            "{signature}: the error is reported:\n{}",
            out.stderr
        );
        // The emulator really echoed the token (else this test proves nothing).
        let echoed = env.emulator_log().contains("SignatureDoesNotMatch")
            || env
                .calls()
                .iter()
                .any(|c| c["code"].as_str() == Some("SignatureDoesNotMatch"));
        assert!(
            echoed,
            "{signature}: the emulator answered SignatureDoesNotMatch"
        );
        let found = leaks(&format!("{}\n{}", out.stdout, out.stderr), &key_id);
        assert!(
            found.is_empty(),
            "{signature}: stderr/stdout leak {found:?}:\n{}",
            out.stderr
        );

        let mut files = Vec::new();
        files_under(&env.state_dir(), &mut files);
        let mut recorded = false;
        for f in &files {
            let text = String::from_utf8_lossy(&std::fs::read(f).expect("read")).into_owned();
            recorded |= text.contains("SignatureDoesNotMatch");
            let found = leaks(&text, &key_id);
            assert!(
                found.is_empty(),
                "{signature}: {} leaks {found:?}:\n{text}",
                f.display()
            );
            if f.extension().is_some_and(|e| e == "json") {
                let mode = std::fs::metadata(f).expect("meta").mode() & 0o777;
                assert_eq!(mode & 0o077, 0, "{}: mode {mode:o}", f.display());
            }
        }
        assert!(
            recorded,
            "{signature}: the error was recorded in a state file: {files:?}"
        );
        let status = env.status().to_string();
        assert!(
            status.contains("SignatureDoesNotMatch"),
            "{signature}: status shows the last error: {status}"
        );
        let found = leaks(&status, &key_id);
        assert!(
            found.is_empty(),
            "{signature}: status leaks {found:?}: {status}"
        );
        // Start the next round from nothing.
        let _ = std::fs::remove_dir_all(env.state_dir());
        std::fs::create_dir_all(env.state_dir()).expect("state dir");
    }
}

/// Peak resident set size of a process, in KiB.
fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One flood page: `enis` network interfaces with `ips` private IPs each,
/// and a fresh NextToken, so the listing never ends by itself.
fn flood_page(n: usize, enis: usize, ips: usize) -> String {
    let ip_set: Vec<String> = (0..ips)
        .map(|i| {
            format!(
                r#"{{"PrivateIpAddress":"10.{}.{}.{}","Primary":false}}"#,
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    let ip_set = ip_set.join(",");
    let items: Vec<String> = (0..enis)
        .map(|e| {
            format!(
                r#"{{"NetworkInterfaceId":"eni-flood{n}x{e}","Status":"Available","Type":"Secondary","ZoneId":"nowhere","PrivateIpSets":{{"PrivateIpSet":[{ip_set}]}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"RequestId":"FLOOD-{n}","NextToken":"next-{n}","TotalCount":999999,"NetworkInterfaceSets":{{"NetworkInterfaceSet":[{}]}}}}"#,
        items.join(",")
    )
}

/// A server for the flood inside the namespace (a thread that joined it),
/// answering every call with the next flood page. Returns its URL and the
/// number of pages served so far.
fn flood_server(netns: &str) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::body::Body;
    use axum::http::{Request, Response};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let ns_path = format!("/run/netns/{netns}");
    std::thread::spawn(move || {
        let ns = std::fs::File::open(&ns_path).expect("open netns");
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            // ~1.9 MB per page: under the agent's per-page limit, so only
            // the page and total bounds stop the flood.
            let app = axum::Router::new().fallback(move |_req: Request<Body>| {
                let counter = counter.clone();
                async move {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    Response::builder()
                        .status(200)
                        .header("content-type", "application/json")
                        .body(Body::from(flood_page(n, 32, 1200)))
                        .expect("response")
                }
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(format!("http://{}", listener.local_addr().expect("addr")))
                .expect("send url");
            axum::serve(listener, app).await.expect("serve");
        });
    });
    let url = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("flood server url");
    (url, served)
}

#[test]
fn a_pagination_flood_keeps_the_daemon_under_64_mib() {
    let Some(env) = Env::new("pageflood") else {
        return;
    };
    let page = flood_page(0, 32, 1200);
    assert!(
        page.len() > 1_500_000 && page.len() < 2 * 1024 * 1024,
        "a flood page is just under the per-page bound: {}",
        page.len()
    );
    let (url, served) = flood_server(&env.netns);
    // The ENI count bound is set high so that the byte bounds are what stop
    // the flood (the count bound is covered in tests/cloud_client.rs).
    env.write_config("max_tag_enis = 1000", &["tag = \"role=flood\"".to_owned()]);
    let daemon = env.spawn(&["run"], &[("ENI_AGENT_ECS_ENDPOINT", url)]);
    let refused = wait_for(Duration::from_secs(60), || {
        std::fs::read_to_string(&daemon.stderr)
            .unwrap_or_default()
            .contains("cannot list ENIs by tag")
    });
    let log = std::fs::read_to_string(&daemon.stderr).unwrap_or_default();
    let pages = served.load(std::sync::atomic::Ordering::SeqCst);
    let hwm = vm_hwm_kib(daemon.pid).expect("VmHWM of the daemon");
    assert!(
        hwm < 64 * 1024,
        "peak RSS {hwm} KiB is over 64 MiB after {pages} flood pages"
    );
    assert!(
        refused,
        "the flood was refused ({pages} pages served):\n{log}"
    );
    assert!(
        log.contains("larger than"),
        "the refusal names the bound:\n{log}"
    );
    assert!(
        pages <= 8,
        "the listing stopped after a few pages, not {pages}"
    );
    eprintln!("pagination flood: {pages} pages served, peak RSS {hwm} KiB");
}

/// `attach`, `detach`, `plan` and `describe` refuse a malformed ENI id with
/// exit 64, naming the argument and the expected shape, before any request
/// (the endpoints point at a listener that must see no connection).
#[test]
fn malformed_eni_ids_on_the_command_line_are_refused_before_any_call() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nstate_dir = \"{}\"\n[api]\nregion = \"cn-hangzhou\"\n",
            dir.path().join("state").display()
        ),
    )
    .expect("config");
    for command in ["attach", "detach", "plan", "describe"] {
        for bad in [
            "eni-x\nmatch-device=interface-name:eth0",
            "eni-a/../../etc",
            "i-123",
            "eni-",
        ] {
            let out = std::process::Command::new(agent_bin())
                .arg("--config")
                .arg(&config)
                .args([command, bad])
                .env("ENI_AGENT_ECS_ENDPOINT", &url)
                .env("ENI_AGENT_METADATA_ENDPOINT", &url)
                .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIcli")
                .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "cli-secret")
                .env_remove("NOTIFY_SOCKET")
                .output()
                .expect("run eni-agent");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{command} {bad:?}: {stderr}");
            assert!(
                stderr.contains("ENI_ID") && stderr.contains("eni- followed by"),
                "{command} {bad:?}: names the argument and the shape: {stderr}"
            );
        }
    }
    assert!(
        matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "no request was made"
    );
    assert!(!dir.path().join("state").exists(), "nothing was written");
}
