//! `eni-agent check-config` and `--timeout` values, through the binary (no
//! root, no network): the effective configuration, a warning for a file that
//! manages nothing, errors that say what is expected.

use std::process::Command;

fn agent(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_eni-agent"))
        .args(args)
        .output()
        .expect("run eni-agent");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config(text: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().expect("temp");
    std::fs::write(f.path(), text).expect("write");
    f
}

#[test]
fn check_config_prints_the_effective_configuration() {
    let f = config(
        "[agent]\nattach_timeout = \"90s\"\n[[eni]]\nid = \"eni-bp1abc\"\nqueues = 4\n[[eni]]\ntag = \"role=db\"\n",
    );
    let path = f.path().to_str().expect("utf-8");
    let (code, stdout, stderr) = agent(&["check-config", path]);
    assert_eq!(code, Some(0), "{stderr}");
    for needle in [
        "[agent]",
        "attach_timeout 1m 30s",
        "[[eni]] #1: eni-bp1abc",
        "queues 4",
        "[[eni]] #2: every Available ENI tagged role=db",
        "the instance RAM role",
    ] {
        assert!(stdout.contains(needle), "{needle}:\n{stdout}");
    }
    assert!(!stderr.contains("manage nothing"), "{stderr}");
}

#[test]
fn a_file_that_manages_nothing_is_warned_about() {
    let f = config("[agent]\n");
    let (code, _, stderr) = agent(&["check-config", f.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("the daemon will manage nothing"),
        "{stderr}"
    );
}

#[test]
fn bad_values_are_refused_saying_what_is_expected() {
    let f = config("[agent]\nattach_timeout = \"0s\"\n");
    let (code, _, stderr) = agent(&["check-config", f.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("agent.attach_timeout"), "{stderr}");

    let f = config("[[eni]]\nid = \"eni-a\"\n\nmtu = 100\n");
    let (code, _, stderr) = agent(&["check-config", f.path().to_str().expect("utf-8")]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("(line 4)"), "the key's line: {stderr}");

    for (value, needle) in [
        ("forever", "expected a duration like 30s or 2m"),
        ("0s", "gives up before starting"),
    ] {
        let (code, _, stderr) = agent(&["attach", "eni-bp1abc", "--timeout", value]);
        assert_eq!(code, Some(64), "{value}: {stderr}");
        assert!(stderr.contains(needle), "{value}: {stderr}");
    }
}
