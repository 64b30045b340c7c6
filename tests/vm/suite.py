#!/usr/bin/env python3
"""The VM suite's scenarios: each boots the cached image afresh (copy-on-write)
in its own namespace (see vm.py), asserts from inside the guest (and from the
namespace for the data path) and prints one PASS/FAIL line; the last line is
`N passed, M failed`.

Usage: suite.py REPO IMAGE_DIR QEMU [SCENARIO...]
Env: ENIVM_HANDOFF=off writes `manage_network_managers = false` into the
agent's configuration (the NetworkManager and networkd scenarios must then
fail); ENIVM_ACCEL=kvm|tcg skips the KVM probe; ENIVM_KEEP=1 keeps run dirs.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm import ENI_A, ENI_B, Failed, Lab, probe_accel, run, tap_name  # noqa: E402

NM_BOOT = ("systemd.mask=systemd-networkd.service systemd.mask=systemd-networkd.socket "
           "systemd.mask=systemd-networkd-wait-online.service systemd.wants=NetworkManager.service")
HANDOFF = os.environ.get("ENIVM_HANDOFF", "on") != "off"


def check(cond, message):
    if not cond:
        raise Failed(message)


def config(enis):
    text = '[api]\nendpoint = "http://100.100.100.201"\n\n[agent]\n'
    text += f"manage_network_managers = {'true' if HANDOFF else 'false'}\n"
    for e in enis:
        text += f'\n[[eni]]\nid = "{e[0]}"\n'
    return text


def start_daemon(lab, enis):
    """Writes the configuration and (re)starts the packaged daemon; returns once READY."""
    lab.write("/etc/eni-agent/config.toml", config(enis))
    lab.sh("systemctl enable eni-agent && systemctl restart eni-agent", timeout=300)
    state = lab.sh("systemctl show -p ActiveState -p SubState --value eni-agent").split()
    check(state == ["active", "running"], f"eni-agent is {state} after start, not active/running")
    return {e[0]: configured(lab, e) for e in enis}


def configured(lab, eni):
    """Checks that `eni`'s NIC carries its address and its policy rule; returns the NIC name."""
    nic = lab.nic(eni[1])
    addrs = lab.sh(f"ip -4 -o addr show dev {nic}")
    if f"{eni[2]}/" not in addrs:
        why = lab.sh(f"networkctl status --no-pager -n 20 {nic} 2>&1; "
                     "journalctl -b --no-pager -o short-monotonic -u eni-agent | tail -n 20", check=False)
        raise Failed(f"{nic} lacks {eni[2]}: {addrs.strip()}\n{why}")
    rules = lab.sh("ip -4 rule")
    check(f"from {eni[2]} " in rules, f"no policy rule from {eni[2]}: {rules.strip()}")
    return nic


def default_routes(lab):
    out = lab.sh("ip -4 route show table main default").strip().splitlines()
    check(len(out) == 1 and "192.168.10.253" in out[0],
          f"main must hold exactly the primary's default route, has: {out}")


def no_dhcp_for(lab, mac):
    log = open(os.path.join(lab.run_dir, "dnsmasq.log"), errors="replace").read() \
        if os.path.exists(os.path.join(lab.run_dir, "dnsmasq.log")) else ""
    check(mac.lower() not in log.lower(), f"DHCP ran for {mac}: {[line for line in log.splitlines() if mac in line][:3]}")


# --- scenarios -------------------------------------------------------------------

def s_networkmanager(lab):
    lab.sh("systemctl is-active NetworkManager")
    nics = start_daemon(lab, [ENI_A])
    nic = nics[ENI_A[0]]
    state = lab.wait_guest(
        f"nmcli -t -f DEVICE,STATE device | grep '^{nic}:' | grep -E ':(unmanaged|connected|disconnected)$'",
        f"NetworkManager settling on {nic}", 120, diag="nmcli -t -f DEVICE,STATE device; nmcli device").strip()
    check(state == f"{nic}:unmanaged", f"NetworkManager manages {nic}: {state}")
    conns = lab.sh("nmcli -t -f NAME,DEVICE connection show")
    check(f":{nic}" not in conns, f"NetworkManager has a connection for {nic}: {conns.strip()}")
    default_routes(lab)
    no_dhcp_for(lab, ENI_A[1])
    before = lab.kernel_snapshot()
    lab.sh("systemctl restart NetworkManager && nm-online -s -q -t 60 || true", timeout=120)
    lab.wait_guest(f"nmcli -t -f DEVICE,STATE device | grep -x '{nic}:unmanaged'",
                   f"{nic} unmanaged after NetworkManager's restart", 60)
    default_routes(lab)
    after = lab.kernel_snapshot()
    check(before == after, f"restarting NetworkManager changed the agent's kernel objects:\n{before}\n---\n{after}")
    no_dhcp_for(lab, ENI_A[1])


def networkd_state(lab, nic):
    return lab.wait_guest(
        f"networkctl list --no-legend --no-pager | awk '$2 == \"{nic}\" {{print $5}}' "
        f"| grep -E '^(unmanaged|configured|configuring|failed|degraded)$'",
        f"networkd settling on {nic}", 120, diag="networkctl list --no-pager").strip()


def s_networkd(lab):
    lab.sh("systemctl is-active systemd-networkd")
    lab.sh("test -f /etc/systemd/network/90-wildcard-dhcp.network")
    nics = start_daemon(lab, [ENI_A])
    nic = nics[ENI_A[0]]
    check(networkd_state(lab, nic) == "unmanaged", f"networkd manages {nic}")
    default_routes(lab)
    no_dhcp_for(lab, ENI_A[1])
    before = lab.kernel_snapshot()
    lab.sh("networkctl reload")
    check(networkd_state(lab, nic) == "unmanaged", f"networkd manages {nic} after reload")
    lab.sh("systemctl restart systemd-networkd")
    check(networkd_state(lab, nic) == "unmanaged", f"networkd manages {nic} after restart")
    lab.sh("/lib/systemd/systemd-networkd-wait-online -i $(ip -o link | awk -F': ' '/00:16:3e:ee:00:01/{print $2}') -t 60")
    default_routes(lab)
    after = lab.kernel_snapshot()
    check(before == after, f"networkd reload/restart changed the agent's kernel objects:\n{before}\n---\n{after}")
    no_dhcp_for(lab, ENI_A[1])


def s_daemon(lab):
    lab.sh("systemctl stop eni-agent")
    lab.write("/etc/eni-agent/config.toml", config([ENI_A, ENI_B]))
    lab.sh("systemctl enable --now eni-agent", timeout=300)
    show = lab.sh("systemctl show -p ActiveState -p SubState -p StatusText -p WatchdogUSec -p NRestarts eni-agent")
    check("ActiveState=active" in show and "SubState=running" in show, f"not READY: {show}")
    check("WatchdogUSec=30s" in show, f"the watchdog is not armed: {show}")
    for eni in (ENI_A, ENI_B):
        nic = configured(lab, eni)
        ch = lab.sh(f"ethtool -l {nic}")
        current = ch.split("Current hardware settings:")[-1]
        combined = re.search(r"Combined:\s+(\d+)", current)
        check(combined and int(combined.group(1)) == eni[3],
              f"{nic}: combined channels {combined and combined.group(1)}, QueueNumber {eni[3]}")
        for path in (f"/run/systemd/network/05-eni-agent-{eni[0]}.network",
                     f"/run/NetworkManager/conf.d/90-eni-agent-{eni[0]}.conf",
                     f"/run/udev/rules.d/70-eni-agent-{eni[0]}.rules"):
            mode = lab.sh(f"stat -c %a {path}").strip()
            check(mode == "644", f"{path} has mode {mode}, not 644")
        lab.sh(f"runuser -u systemd-network -- cat /run/systemd/network/05-eni-agent-{eni[0]}.network >/dev/null")
        # Sysctl writes under ProtectKernelTunables=yes + ReadWritePaths=/proc/sys/net.
        plan = lab.sh(f"eni-agent plan {eni[0]} || true")
        for name, value in re.findall(r"(net\.ipv[46]\.conf\.[\w.]+)\s*=\s*(\S+)", plan):
            path = "/proc/sys/" + name.replace(".", "/", 4)
            got = lab.sh(f"cat {path}").strip()
            check(got == value, f"{name} is {got}, the agent plans {value}")
    # Searched in the guest: the whole journal through the guest agent's
    # captured output is not to be relied on.
    # -o verbose: the ENI id is a field of the entry, not part of its MESSAGE.
    journal = "journalctl -b -u eni-agent --no-pager -o verbose"
    for eni in (ENI_A, ENI_B):
        rc, _, _ = lab.qga().sh(f"{journal} | grep -qF {eni[0]}", 60)
        check(rc == 0, f"the journal lacks {eni[0]}: {lab.sh(f'{journal} | tail -n 15')}")
    rc, _, _ = lab.qga().sh(f"{journal} | grep -qF 'cannot write'", 60)
    if rc == 0:
        raise Failed("a sysctl write failed: " + lab.sh(journal + " | grep -F -m 5 'cannot write'"))
    before = lab.kernel_snapshot()
    lab.sh("systemctl restart eni-agent", timeout=300)
    after = lab.kernel_snapshot()
    check(before == after, f"restarting eni-agent changed kernel objects:\n{before}\n---\n{after}")
    # The watchdog keeps it alive: running for more than WatchdogSec, no restart.
    lab.wait_guest("s=$(systemctl show -p ActiveEnterTimestampMonotonic --value eni-agent); "
                   "now=$(cut -d' ' -f1 /proc/uptime | tr -d .)0000; [ $((now - s)) -gt 35000000 ]",
                   "eni-agent running for 35 s", 120)
    show = lab.sh("systemctl show -p ActiveState -p NRestarts -p Result eni-agent")
    check("ActiveState=active" in show and "NRestarts=0" in show and "Result=success" in show,
          f"eni-agent did not stay up under its watchdog: {show}")


def ping(lab, args):
    """Pings from the guest; returns how many echo replies came back (at least one)."""
    out = lab.sh(f"ping -q -c 10 -i 0.2 -W 2 {args}", timeout=60)
    m = re.search(r"(\d+) received", out)
    return int(m.group(1)) if m else 0


def s_datapath(lab):
    start_daemon(lab, [ENI_A, ENI_B])
    for eni in (ENI_A, ENI_B):
        tap = tap_name(eni[1])
        t0, p0 = lab.tap_counters(tap), lab.tap_counters("vmtap0")
        n = ping(lab, f"-I {eni[2]} {eni[5]}")
        t1, p1 = lab.tap_counters(tap), lab.tap_counters("vmtap0")
        check(t1[0] - t0[0] >= n and t1[1] - t0[1] >= n,
              f"{eni[0]}: {n} echo replies, but its tap {tap} saw rx {t1[0]-t0[0]}, tx {t1[1]-t0[1]}")
        check(p1[0] - p0[0] < n, f"{eni[0]}: sourced traffic left through the primary ({p1[0]-p0[0]} packets)")
    # Unsourced traffic to vsw-vm0b's gateway still leaves through the primary.
    tap = tap_name(ENI_B[1])
    t0, p0 = lab.tap_counters(tap), lab.tap_counters("vmtap0")
    n = ping(lab, ENI_B[5])
    t1, p1 = lab.tap_counters(tap), lab.tap_counters("vmtap0")
    why = lab.sh(f"ip route get {ENI_B[5]}; ip -4 rule; ip -4 route show table main").strip()
    check(p1[0] - p0[0] >= n and p1[1] - p0[1] >= n,
          f"unsourced: {n} echo replies, the primary's tap saw rx {p1[0]-p0[0]}, tx {p1[1]-p0[1]}; {why}")
    check(t1[0] - t0[0] < n, f"unsourced traffic used {ENI_B[0]}'s NIC ({t1[0]-t0[0]} packets); {why}")


def s_reboot(lab):
    start_daemon(lab, [ENI_A])
    attaches = len(lab.calls("AttachNetworkInterface"))
    check(attaches == 1, f"{attaches} attach calls before the reboot")
    n = lab.ready_count()
    lab.qga().cmd("guest-exec", path="/bin/systemctl", arg=["reboot"])
    lab.qga_ = None
    lab.wait_ready(n + 1)
    configured(lab, ENI_A)
    attaches = len(lab.calls("AttachNetworkInterface"))
    check(attaches == 1, f"{attaches} attach calls after the reboot (expected no second one)")
    agent = int(lab.sh("systemctl show -p ActiveEnterTimestampMonotonic --value eni-agent").strip())
    online = lab.sh("systemctl show -p ActiveState -p ActiveEnterTimestampMonotonic network-online.target")
    m = re.search(r"ActiveEnterTimestampMonotonic=(\d+)", online)
    if "ActiveState=active" in online and m and int(m.group(1)) > 0:
        check(agent <= int(m.group(1)), f"READY {agent} us after network-online.target ({m.group(1)} us)")
    check(agent > 0, "eni-agent never became READY after the reboot")
    return f"READY {agent / 1e6:.1f} s after kernel start"


def s_detach(lab):
    start_daemon(lab, [ENI_A])
    lab.sh("systemctl stop eni-agent")
    lab.sh(f"eni-agent detach {ENI_A[0]} --timeout 2m", timeout=180)
    lab.wait_guest(f"! ip -o link | grep -qi {ENI_A[1]}", "the NIC unplugged", 60)
    # `ip rule show` ignores a proto filter on Debian 12's iproute2: grep the details.
    left = lab.sh("ip -d -4 rule show | grep -w 'proto 237'; ip -d -6 rule show | grep -w 'proto 237'; "
                  "ip route show table all proto 237; "
                  "ip -6 route show table all proto 237; "
                  "ls /run/NetworkManager/conf.d/ /run/systemd/network/ /run/udev/rules.d/ 2>/dev/null | grep eni-agent || true")
    check(left.strip() == "", f"left behind after detach: {left}")
    tap = tap_name(ENI_A[1])
    check(tap not in run(["ip", "-n", lab.name, "-br", "link"]), f"the tap {tap} is still there")


def s_lifecycle(lab):
    paths = "/usr/bin/eni-agent /etc/eni-agent /var/lib/eni-agent /usr/lib/tmpfiles.d/eni-agent.conf " \
            "/usr/lib/systemd/system/eni-agent.service /etc/systemd/system/multi-user.target.wants/eni-agent.service"
    lab.sh("dpkg --purge eni-agent")
    left = lab.sh(f"ls -d {paths} 2>/dev/null || true").strip()
    check(left == "", f"left after the first purge: {left}")
    lab.sh("dpkg -i /opt/eni-agent/debs/eni-agent.deb", timeout=180)
    check(lab.sh("systemctl is-enabled eni-agent || true").strip() == "enabled", "install did not enable the unit")
    v1 = lab.sh("dpkg-query -W -f '${Version}' eni-agent")
    start_daemon(lab, [ENI_A])
    inv = lab.sh("systemctl show -p InvocationID --value eni-agent").strip()
    lab.sh(f"setsid nohup ping -i 0.2 -I {ENI_A[2]} {ENI_A[5]} </dev/null >/root/ping.log 2>&1 &")
    lab.wait_guest("grep -q 'icmp_seq=3 ' /root/ping.log", "ping through the ENI", 30)
    since = lab.sh("date +%s").strip()
    lab.sh("dpkg -i /opt/eni-agent/debs/eni-agent-upgrade.deb", timeout=300)
    v2 = lab.sh("dpkg-query -W -f '${Version}' eni-agent")
    check(v2 != v1, f"the upgrade did not change the version ({v1})")
    starts = lab.sh(f"journalctl -u eni-agent --since @{since} --no-pager -o cat | grep -c '^Started ' || true").strip()
    inv2 = lab.sh("systemctl show -p InvocationID --value eni-agent").strip()
    check(inv2 != inv and starts == "1", f"the upgrade restarted the daemon {starts} times (expected once)")
    configured(lab, ENI_A)
    seq = lab.sh("grep -o 'icmp_seq=[0-9]*' /root/ping.log | tail -1").strip()
    lab.wait_guest(f"[ $(grep -o 'icmp_seq=[0-9]*' /root/ping.log | tail -1 | cut -d= -f2) -ge "
                   f"$(( $(echo {seq} | cut -d= -f2) + 5 )) ]", "ping going on after the upgrade", 30)
    lab.sh("pkill -INT -x ping; sleep 0.5")
    stats = lab.sh("grep 'packets transmitted' /root/ping.log || cat /root/ping.log")
    m = re.search(r"(\d+) packets transmitted, (\d+) received", stats)
    check(m and m.group(1) == m.group(2), f"traffic disturbed during the upgrade: {stats.strip()[-300:]}")
    lab.sh("dpkg -r eni-agent", timeout=180)
    check(lab.sh("systemctl is-active eni-agent || true").strip() != "active", "the daemon runs after remove")
    configured(lab, ENI_A)  # removing the package never removes a NIC's configuration
    lab.sh("dpkg --purge eni-agent", timeout=180)
    left = lab.sh(f"ls -d {paths} 2>/dev/null; dpkg -s eni-agent 2>/dev/null | grep '^Status' || true").strip()
    check(left == "", f"left after purge: {left}")
    return f"{v1} -> {v2}, {m.group(1)} pings, 0 lost"


def cloud_init_seed(repo, run_dir):
    """The NoCloud seed: packaging/cloud-init/attach-at-first-boot.yaml with its ENI id, the API endpoint of the
    emulator and without its package-repository sections (the guest is offline; the image has the package)."""
    text = open(os.path.join(repo, "packaging", "cloud-init", "attach-at-first-boot.yaml")).read()
    out, skip = [], False
    for line in text.splitlines():
        top = re.match(r"^([a-z_]+):", line)
        if top:
            skip = top.group(1) in ("apt", "yum_repos", "packages")
        if not skip:
            out.append(line)
    user = "\n".join(out).replace("eni-bp1xxxxxxxxxxxxxxxxx", ENI_A[0])
    user = user.replace("[eni-agent, attach,", "[env, ENI_AGENT_ECS_ENDPOINT=http://100.100.100.201, eni-agent, attach,")
    check("ENI_AGENT_ECS_ENDPOINT" in user and ENI_A[0] in user, "the cloud-init example changed shape")
    d = os.path.join(run_dir, "seed")
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, "user-data"), "w").write(user + "\n")
    open(os.path.join(d, "meta-data"), "w").write("instance-id: i-vm0instance0001\nlocal-hostname: enivm\n")
    open(os.path.join(d, "network-config"), "w").write("network:\n  config: disabled\n")
    iso = os.path.join(run_dir, "seed.iso")
    run(["cloud-localds", "-N", os.path.join(d, "network-config"), iso,
         os.path.join(d, "user-data"), os.path.join(d, "meta-data")])
    return iso


def s_cloud_init(lab):
    # `cloud-init status --wait` can return before the final stage has run;
    # result.json is written when cloud-init has finished.
    lab.wait_guest("test -s /run/cloud-init/result.json", "cloud-init finished", 600,
                   diag="cloud-init status --long")
    result = json.loads(lab.sh("cat /run/cloud-init/result.json"))["v1"]
    # Errors of modules the minimal image lacks packages for (locale, ssh) are not ours.
    ours = [e for e in result.get("errors", []) if re.search(r"eni|runcmd|scripts[-_]user", e, re.I)]
    check(not ours, f"cloud-init reports errors caused by the agent: {ours}")
    nic = configured(lab, ENI_A)
    out = lab.sh("cat /var/log/cloud-init-output.log")
    check(ENI_A[0] in out, f"the one-shot did not run from runcmd: {out[-800:]}")
    rendered = lab.sh("grep -ril -e '00:16:3e:ee:00:0a' -e dhcp /etc/systemd/network /run/systemd/network "
                      "/etc/netplan /etc/NetworkManager/system-connections 2>/dev/null | grep -v eni-agent | "
                      "grep -v 90-wildcard-dhcp || true").strip()
    check(rendered == "", f"cloud-init rendered network configuration for the ENI: {rendered}")
    check(networkd_state(lab, nic) == "unmanaged", f"networkd manages {nic}")
    default_routes(lab)


SCENARIOS = {
    "networkmanager": (s_networkmanager, NM_BOOT, False),
    "networkd": (s_networkd, "", False),
    "cloud-init": (s_cloud_init, "cloud-init=enabled ds=nocloud", True),
    "daemon": (s_daemon, "", False),
    "datapath": (s_datapath, "", False),
    "reboot": (s_reboot, "", False),
    "detach": (s_detach, "", False),
    "lifecycle": (s_lifecycle, "", False),
}


def main():
    repo, image, qemu = sys.argv[1:4]
    chosen = sys.argv[4:] or list(SCENARIOS)
    unknown = [c for c in chosen if c not in SCENARIOS]
    if unknown:
        sys.exit(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    base = tempfile.mkdtemp(prefix="eni-vm-")
    accel = probe_accel(qemu, image, base)
    print(f"vm: accelerator {accel}, image {image}, run dir {base}", flush=True)
    passed = failed = 0
    for i, name in enumerate(chosen):
        fn, cmdline, seeded = SCENARIOS[name]
        run_dir = os.path.join(base, name)
        os.makedirs(run_dir, exist_ok=True)
        lab = None
        t0 = time.time()
        try:
            seed = cloud_init_seed(repo, run_dir) if seeded else None
            lab = Lab(f"enivm{os.getpid() % 100000}-{i}", repo, image, qemu, accel, run_dir, cmdline, seed)
            lab.start()
            lab.wait_ready()
            boot = time.time() - lab.t_launch
            note = fn(lab) or ""
            print(f"PASS {name} ({time.time() - t0:.0f} s, boot {boot:.0f} s){' ' + note if note else ''}", flush=True)
            passed += 1
        except Failed as e:
            print(f"FAIL {name}: {e} (logs: {run_dir})", flush=True)
            failed += 1
        except Exception as e:  # a scenario that cannot start fails, with the reason
            print(f"FAIL {name}: {type(e).__name__}: {e} (logs: {run_dir})", flush=True)
            traceback.print_exc()
            failed += 1
        finally:
            if lab is not None:
                lab.stop()
    if not os.environ.get("ENIVM_KEEP") and failed == 0:
        shutil.rmtree(base, ignore_errors=True)
    print(f"{passed} passed, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
