#!/usr/bin/env python3
"""Hot-plug benchmark inside the VM: from QMP `device_add` of a virtio-net NIC
to "configured" (the NIC's default route exists: in the agent's per-ENI table,
or in main after a DHCP lease), for
  agent     the packaged daemon with the ENI already in its plan (networkd boot,
            the NIC handed off to the agent);
  nm        NetworkManager as Debian ships it, DHCP (agent stopped);
  networkd  systemd-networkd with a `Name=en*` DHCP file (agent stopped).
Times come from `ip -ts monitor route` in the guest, corrected by the
guest-host clock offset measured (QGA guest-get-time) right before each plug.

Usage: bench.py REPO IMAGE_DIR QEMU [ROUNDS]   (run by tests/vm/run.sh --bench)
"""
import datetime
import os
import re
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from suite import NM_BOOT, start_daemon  # noqa: E402
from vm import ENI_A, Failed, Lab, Qmp, probe_accel, run  # noqa: E402


def monitor_events(lab):
    """(guest epoch, line) of `ip -ts monitor route` lines."""
    ev = []
    for line in lab.sh("cat /run/bench-mon.log").splitlines():
        m = re.match(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)\]\s*(.*)", line)
        if m:
            t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
            ev.append((t.replace(tzinfo=datetime.timezone.utc).timestamp(), m.group(2)))
    return ev


def plug_round(lab, qmp, n, mac, keep_netdev=None):
    """Plugs a NIC with `mac`; returns ms from device_add to its default route, then unplugs it."""
    tap, netdev, dev = f"bt-{n}", f"bn{n}", f"bd{n}"
    qmp.cmd("netdev_add", type="tap", id=netdev, ifname=tap, script="no", downscript="no", queues=2, vhost=False)
    run(["ip", "-n", lab.name, "link", "set", tap, "master", "br-vm0a", "up"])
    lab.sh("ip -ts monitor route > /run/bench-mon.log 2>&1 </dev/null & echo $! > /run/bench-mon.pid")
    lab.wait_guest("test -s /run/bench-mon.pid && kill -0 $(cat /run/bench-mon.pid)", "route monitor", 10)
    off = lab.qga().clock_offset()
    t_add = time.time()
    qmp.cmd("device_add", driver="virtio-net-pci", bus="rp4", id=dev, netdev=netdev, mac=mac, mq="on", vectors=6)
    nic = lab.nic(mac, 30)
    lab.wait_guest(f"grep -q 'default .*dev {nic}' /run/bench-mon.log", f"a default route on {nic}", 60)
    ev = [t for t, line in monitor_events(lab) if re.search(rf"^default .*dev {nic}\b", line)]
    lab.sh("kill $(cat /run/bench-mon.pid); rm -f /run/bench-mon.pid")
    ms = (ev[0] - off - t_add) * 1000
    qmp.events.clear()
    qmp.cmd("device_del", id=dev)
    qmp.wait_event("DEVICE_DELETED", dev)
    qmp.cmd("netdev_del", id=netdev)
    lab.wait_guest(f"! ip -o link | grep -qi {mac}", "the NIC gone", 30)
    return ms


def qdev_ids(buses, prefix):
    """The ids of the PCI devices starting with `prefix`, behind root ports too."""
    found = []

    def walk(devices):
        for d in devices:
            if d.get("qdev_id", "").startswith(prefix):
                found.append(d["qdev_id"])
            walk(d.get("pci_bridge", {}).get("devices", []))
    for b in buses:
        walk(b.get("devices", []))
    return found


def measure(lab, mode, rounds):
    qmp = Qmp(f"{lab.run_dir}/qmp.sock")
    out = []
    if mode == "agent":
        start_daemon(lab, [ENI_A])
        # Take the emulator's NIC away; the agent keeps the plan and waits for the MAC to come back.
        dev = qdev_ids(qmp.cmd("query-pci"), "eni")[0]
        qmp.cmd("device_del", id=dev)
        qmp.wait_event("DEVICE_DELETED", dev)
        lab.wait_guest(f"! ip -o link | grep -qi {ENI_A[1]}", "the ENI's NIC gone", 30)
        for n in range(rounds):
            out.append(plug_round(lab, qmp, n, ENI_A[1]))
    else:
        lab.sh("systemctl stop eni-agent")
        for n in range(rounds):
            out.append(plug_round(lab, qmp, n, f"02:00:00:00:01:{n:02x}"))
    return out


def main():
    repo, image, qemu = sys.argv[1:4]
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 10
    base = tempfile.mkdtemp(prefix="eni-vm-bench-")
    accel = probe_accel(qemu, image, base)
    results = {}
    for i, (mode, cmdline) in enumerate([("agent", ""), ("nm", NM_BOOT), ("networkd", "")]):
        lab = Lab(f"enivmb{os.getpid() % 100000}-{i}", repo, image, qemu, accel, os.path.join(base, mode), cmdline)
        try:
            lab.start()
            lab.wait_ready()
            results[mode] = measure(lab, mode, rounds)
        except Failed as e:
            print(f"bench {mode}: {e}")
            sys.exit(1)
        finally:
            lab.stop()
    print(f"accelerator {accel}; {rounds} plugs each; ms from QMP device_add to the NIC's default route")
    print("| configured by | median ms | p95 ms | min | max |")
    print("|---|---|---|---|---|")
    for mode, xs in results.items():
        xs = sorted(xs)
        p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
        print(f"| {mode} | {statistics.median(xs):.0f} | {p95:.0f} | {xs[0]:.0f} | {xs[-1]:.0f} |")


if __name__ == "__main__":
    main()
