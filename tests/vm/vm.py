"""VM harness of the VM suite (Python standard library only).

A `Lab` is one private network namespace with the ecs-emulator serving the
ECS API (100.100.100.201:80) and the metadata service (100.100.100.200:80),
its vSwitch bridges (br-vm0a 192.168.10.253/24, br-vm0b 192.168.30.253/24),
a DHCP server on them (dnsmasq), and one QEMU VM booted from the cached image
with copy-on-write (snapshot=on): its boot NIC on br-vm0a, four free
pcie-root-ports for hot-plug, a QMP socket for the emulator and one for the
suite, the guest agent for running commands in the guest. Nothing is created
outside the namespace and the run directory.
"""
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import time

INSTANCE = "i-vm0instance0001"
PRIMARY_MAC = "00:16:3e:ee:00:01"
ENI_A = ("eni-vm0secondary0a1", "00:16:3e:ee:00:0a", "192.168.10.20", 4, "br-vm0a", "192.168.10.253")
ENI_B = ("eni-vm0secondary0b1", "00:16:3e:ee:00:0b", "192.168.30.30", 3, "br-vm0b", "192.168.30.253")
PORTS = ["rp1", "rp2", "rp3", "rp4"]


class Failed(Exception):
    """A scenario's guarantee does not hold (the message says which)."""


def tap_name(mac):
    return "et-" + mac.replace(":", "")[-6:]


class JsonSock:
    def __init__(self, path, timeout=10.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, obj):
        self.s.sendall(json.dumps(obj).encode() + b"\n")

    def recv(self):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("socket closed")
            self.buf += d
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.lstrip(b"\xff").strip()
        if not line:
            return self.recv()
        return json.loads(line)

    def close(self):
        self.s.close()


class Qmp(JsonSock):
    def __init__(self, path, timeout=10.0):
        super().__init__(path, timeout)
        self.events = []
        self.recv()
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.send(msg)
        while True:
            r = self.recv()
            if "event" in r:
                r["_host_time"] = time.time()
                self.events.append(r)
                continue
            if "error" in r:
                raise RuntimeError(f"QMP {name}: {r['error']}")
            return r.get("return")

    def wait_event(self, name, device, timeout=30.0):
        end = time.time() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name and e.get("data", {}).get("device") == device:
                    return self.events.pop(i)
            self.s.settimeout(max(0.01, end - time.time()))
            try:
                r = self.recv()
            except socket.timeout:
                raise Failed(f"no {name} for {device} within {timeout} s")
            r["_host_time"] = time.time()
            self.events.append(r)


class Qga(JsonSock):
    def __init__(self, path, timeout=30.0):
        super().__init__(path, timeout)
        sid = int(time.time() * 1000) % 2**31
        self.send({"execute": "guest-sync-delimited", "arguments": {"id": sid}})
        while self.recv().get("return") != sid:
            pass

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.send(msg)
        r = self.recv()
        if "error" in r:
            raise RuntimeError(f"QGA {name}: {r['error']}")
        return r.get("return")

    def sh(self, command, timeout=120.0):
        pid = self.cmd("guest-exec", path="/bin/sh", arg=["-c", command], **{"capture-output": True})["pid"]
        end = time.time() + timeout
        while True:
            st = self.cmd("guest-exec-status", pid=pid)
            if st.get("exited"):
                out = base64.b64decode(st.get("out-data", "")).decode(errors="replace")
                err = base64.b64decode(st.get("err-data", "")).decode(errors="replace")
                return st.get("exitcode", -1), out, err
            if time.time() > end:
                raise Failed(f"guest command did not finish in {timeout} s: {command}")
            time.sleep(0.05)

    def clock_offset(self, n=5):
        """Guest CLOCK_REALTIME minus host time (s), midpoint of the fastest of n probes."""
        best = None
        for _ in range(n):
            t0 = time.time()
            g = self.cmd("guest-get-time") / 1e9
            t1 = time.time()
            if best is None or (t1 - t0) < best[0]:
                best = (t1 - t0, g - (t0 + t1) / 2)
        return best[1]


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise Failed(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def probe_accel(qemu, image, run_dir):
    """kvm if a stock kernel really boots under /dev/kvm (prints its banner within 20 s), else tcg."""
    if os.environ.get("ENIVM_ACCEL"):
        return os.environ["ENIVM_ACCEL"]
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "tcg"
    log = os.path.join(run_dir, "kvm-probe.log")
    p = subprocess.Popen([qemu, "-machine", "q35", "-accel", "kvm", "-cpu", "host,-arch-capabilities",
                          "-m", "512", "-kernel", os.path.join(image, "vmlinuz"), "-append", "console=ttyS0 panic=-1",
                          "-display", "none", "-serial", f"file:{log}", "-monitor", "none", "-no-reboot", "-nodefaults"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ok = False
    end = time.time() + 20
    while time.time() < end and p.poll() is None:
        if os.path.exists(log) and b"Linux version" in open(log, "rb").read():
            ok = True
            break
        time.sleep(0.2)
    p.kill()
    p.wait()
    return "kvm" if ok else "tcg"


class Lab:
    def __init__(self, name, repo, image, qemu, accel, run_dir, cmdline="", extra_drive=None):
        self.name, self.repo, self.image, self.qemu, self.accel = name, repo, image, qemu, accel
        self.run_dir = run_dir
        self.cmdline, self.extra_drive = cmdline, extra_drive
        self.procs = []
        self.qga_ = None
        os.makedirs(run_dir, exist_ok=True)
        self.serial = os.path.join(run_dir, "serial.log")

    # --- set-up and tear-down ------------------------------------------------
    def ns(self, *cmd, check=True):
        return run(["ip", "netns", "exec", self.name, *cmd], check=check)

    def start(self):
        run(["ip", "netns", "add", self.name])
        ip = ["ip", "-n", self.name]
        run(ip + ["link", "set", "lo", "up"])
        for a in ("100.100.100.200/32", "100.100.100.201/32"):
            run(ip + ["addr", "add", a, "dev", "lo"])
        emu = os.path.join(self.repo, "target", "debug", "ecs-emulator")
        elog = open(os.path.join(self.run_dir, "emulator.log"), "w")
        p = subprocess.Popen(["ip", "netns", "exec", self.name, emu, "serve",
                              "--scenario", os.path.join(self.repo, "tests", "vm", "scenario.toml"),
                              "--metadata-listen", "100.100.100.200:80", "--api-listen", "100.100.100.201:80",
                              "--qemu-vm", f"{INSTANCE}={self.run_dir}/qmp-emu.sock", "--qemu-ports", ",".join(PORTS)],
                             stdout=subprocess.PIPE, stderr=elog, text=True)
        self.procs.append(p)
        line = p.stdout.readline()
        if not line:
            raise Failed(f"the emulator did not start: see {elog.name}")
        self.emulator = json.loads(line)
        dns = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", self.name, dns, "--keep-in-foreground", "--conf-file=/dev/null", "--port=0",
             "--bind-interfaces", "--interface=br-vm0a", "--interface=br-vm0b", "--except-interface=lo",
             "--dhcp-range=192.168.10.100,192.168.10.150,255.255.255.0,1h",
             "--dhcp-range=192.168.30.100,192.168.30.150,255.255.255.0,1h",
             f"--dhcp-leasefile={self.run_dir}/leases", "--user=root", f"--log-facility={self.run_dir}/dnsmasq.log",
             "--log-dhcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        cpu = "host,-arch-capabilities" if self.accel == "kvm" else "max"
        accel = "kvm" if self.accel == "kvm" else "tcg,thread=multi"
        open(self.serial, "w").close()
        args = [self.qemu, "-machine", "q35", "-accel", accel, "-cpu", cpu, "-m", "1024", "-smp", "2",
                "-kernel", os.path.join(self.image, "vmlinuz"), "-initrd", os.path.join(self.image, "initrd.img"),
                "-append", f"root=/dev/vda rw console=ttyS0 {self.cmdline}",
                "-drive", f"file={self.image}/rootfs.img,if=virtio,format=raw,snapshot=on",
                "-netdev", "tap,id=net0,ifname=vmtap0,script=no,downscript=no,vhost=off",
                "-device", f"virtio-net-pci,netdev=net0,mac={PRIMARY_MAC}"]
        for i, p in enumerate(PORTS, 1):
            args += ["-device", f"pcie-root-port,id={p},bus=pcie.0,chassis=1,slot={i}"]
        if self.extra_drive:
            args += ["-drive", f"file={self.extra_drive},if=virtio,format=raw,readonly=on"]
        args += ["-device", "virtio-serial-pci,id=vser0",
                 "-chardev", f"socket,id=qga0,path={self.run_dir}/qga.sock,server=on,wait=off",
                 "-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0",
                 "-qmp", f"unix:{self.run_dir}/qmp.sock,server=on,wait=off",
                 "-qmp", f"unix:{self.run_dir}/qmp-emu.sock,server=on,wait=off",
                 "-display", "none", "-serial", f"file:{self.serial}", "-monitor", "none"]
        qlog = open(os.path.join(self.run_dir, "qemu.log"), "w")
        # The copy-on-write overlay of snapshot=on goes to TMPDIR: keep it in memory.
        env = dict(os.environ, TMPDIR="/dev/shm" if os.path.isdir("/dev/shm") else "/var/tmp")
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", self.name, *args], stdout=qlog, stderr=qlog, env=env))
        end = time.time() + 30
        while "vmtap0" not in run(ip + ["-br", "link"]):
            if time.time() > end or self.procs[-1].poll() is not None:
                raise Failed(f"QEMU did not start: {open(qlog.name).read()[-2000:]}")
            time.sleep(0.1)
        run(ip + ["link", "set", "vmtap0", "master", "br-vm0a", "up"])
        self.t_launch = time.time()

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs = []
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)

    # --- the guest -------------------------------------------------------------
    def ready_count(self):
        return open(self.serial, "rb").read().count(b"ENIVM-READY")

    def wait_ready(self, count=1, timeout=600):
        """Waits for the count-th multi-user marker on the serial console, then for the guest agent."""
        end = time.time() + timeout
        while self.ready_count() < count:
            if time.time() > end:
                raise Failed(f"the guest did not reach multi-user.target in {timeout} s "
                             f"(QEMU: {self.vm_status()}); "
                             f"serial tail: {open(self.serial, errors='replace').read()[-1500:]}")
            if any(p.poll() is not None for p in self.procs):
                raise Failed("QEMU, the emulator or dnsmasq exited during boot")
            time.sleep(0.2)
        self.qga_ = None
        while True:
            try:
                q = Qga(f"{self.run_dir}/qga.sock", timeout=2)
                q.cmd("guest-ping")
                q.close()
                break
            except (OSError, EOFError, socket.timeout, RuntimeError, ValueError):
                if time.time() > end:
                    raise Failed("the guest agent does not answer")
                time.sleep(0.2)

    def vm_status(self):
        try:
            q = Qmp(f"{self.run_dir}/qmp.sock", timeout=5)
            st = q.cmd("query-status")
            q.close()
            return st.get("status")
        except Exception as e:  # only for a diagnostic
            return f"no answer ({e})"

    def qga(self):
        if self.qga_ is None:
            self.qga_ = Qga(f"{self.run_dir}/qga.sock", timeout=60)
        return self.qga_

    def sh(self, command, check=True, timeout=120):
        rc, out, err = self.qga().sh(command, timeout)
        if check and rc != 0:
            raise Failed(f"guest: `{command}` exit {rc}: {(out + err).strip()[-1500:]}")
        return out

    def wait_guest(self, command, what, timeout=60, diag=None):
        """Polls `command` in the guest until it exits 0; returns its output. On time-out the
        failure shows the output of `diag` (a guest command) if given."""
        end = time.time() + timeout
        while True:
            rc, out, err = self.qga().sh(command)
            if rc == 0:
                return out
            if time.time() > end:
                shown = (out + err).strip()[-800:]
                if diag:
                    shown += " | " + " ".join(self.qga().sh(diag)[1:]).strip()[-1200:]
                raise Failed(f"{what}: not within {timeout} s (last: {shown})")
            time.sleep(0.2)

    def nic(self, mac, timeout=60):
        """The udev name of the NIC with `mac`, once renamed."""
        out = self.wait_guest(f"ip -o link | grep -i '{mac}' | grep -v ': eth[0-9]'",
                              f"the NIC {mac} with its udev name", timeout)
        return re.match(r"\d+: ([^:@]+)", out).group(1)

    def write(self, path, text, mode="644"):
        b64 = base64.b64encode(text.encode()).decode()
        self.sh(f"mkdir -p $(dirname {path}) && echo {b64} | base64 -d > {path} && chmod {mode} {path}")

    def kernel_snapshot(self):
        """Everything the agent owns or touches in the guest kernel, for comparison."""
        return self.sh("ip -4 rule; ip -6 rule; ip -4 route show table all proto 237; "
                       "ip -6 route show table all proto 237; "
                       "for l in $(ls /sys/class/net); do echo \"$l $(cat /sys/class/net/$l/ifindex)\"; "
                       "ip -o addr show dev $l | awk '{print $2, $3, $4}'; done")

    # --- the emulator ----------------------------------------------------------
    def calls(self, action):
        """The emulator's call log entries of `action` (asked from inside the namespace)."""
        out = self.ns("curl", "-sS", "--noproxy", "*", f"{self.emulator['control_url']}/calls")
        return [c for c in json.loads(out) if c.get("action") == action]

    def tap_counters(self, tap):
        out = json.loads(run(["ip", "-n", self.name, "-s", "-j", "link", "show", tap]))
        s = out[0]["stats64"]
        return s["rx"]["packets"], s["tx"]["packets"]
