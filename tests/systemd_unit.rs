//! The shipped unit: `systemd-analyze verify` passes and the hardening
//! exposure stays at 2.0 or below, with CAP_NET_ADMIN kept and /proc/sys/net
//! writable (the agent writes per-NIC net sysctls).

use std::path::Path;
use std::process::Command;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd/eni-agent.service");

/// systemd-analyze, or a skip (a failure under CI=true).
fn systemd_analyze() -> Option<&'static str> {
    let found = Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("systemd-analyze");
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "systemd-analyze is missing; .ci/run installs systemd"
    );
    eprintln!("SKIPPED: systemd-analyze is not installed");
    None
}

/// The unit with ExecStart pointing at the binary under test, in a temp dir.
fn unit_copy(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).expect("unit file");
    let text = text.replace("/usr/bin/eni-agent", env!("CARGO_BIN_EXE_eni-agent"));
    let path = dir.join("eni-agent.service");
    std::fs::write(&path, text).expect("write unit copy");
    path
}

#[test]
fn the_unit_verifies() {
    let Some(tool) = systemd_analyze() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(tool)
        .args(["verify", "--man=no"])
        .arg(unit_copy(dir.path()))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn hardening_exposure_is_at_most_2_0_with_net_admin_kept() {
    let Some(tool) = systemd_analyze() else {
        return;
    };
    let out = Command::new(tool)
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(UNIT)
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for eni-agent.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 2.0, "exposure {level} > 2.0:\n{text}");
    let unit = std::fs::read_to_string(UNIT).expect("unit file");
    assert!(unit.contains("CapabilityBoundingSet=CAP_NET_ADMIN"));
    assert!(
        unit.contains("Type=notify")
            && unit.contains("WatchdogSec=")
            && unit.contains("StateDirectory=eni-agent")
    );
    assert!(
        !unit.contains("ProtectKernelTunables=yes")
            || unit.contains("ReadWritePaths=/proc/sys/net"),
        "/proc/sys/net must stay writable"
    );
}
