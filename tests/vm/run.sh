#!/usr/bin/env bash
# The VM suite: boots a Debian 12 guest under QEMU (KVM where a stock kernel
# really boots under it, TCG otherwise) once per scenario and checks the agent
# there with real virtio-net PCI hot-plug, systemd, NetworkManager,
# systemd-networkd, cloud-init and the .deb. As root; everything runs in
# network namespaces the suite creates.
# Usage: tests/vm/run.sh [SCENARIO...]   (default: all; see suite.py)
#        tests/vm/run.sh --bench [ROUNDS]   the hot-plug benchmark (bench.py)
# Env: ENI_VM_CACHE (default /var/cache/eni-agent-vm) holds QEMU (when apt
# cannot install it) and the image, rebuilt when its inputs change.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TERM_COLOR=never
[ "$(id -u)" = 0 ] || { echo "FAIL vm-suite: needs root (network namespaces, taps)"; echo "0 passed, 1 failed"; exit 1; }
CACHE=${ENI_VM_CACHE:-/var/cache/eni-agent-vm}
export ENI_VM_CACHE=$CACHE
t0=$(date +%s)
fail_setup() {
    echo "FAIL vm-suite: $*"
    echo "0 passed, 1 failed"
    exit 1
}
qemu=$(tests/vm/host-setup.sh | tail -1) || fail_setup "host set-up (QEMU, mmdebstrap, dnsmasq) failed"
cargo build --locked -q -p ecs-emulator || fail_setup "cannot build ecs-emulator"
deb=$(ls -t target/packaging/eni-agent_*_amd64.deb 2>/dev/null | head -1 || true)
newer=$(find src systemd packaging Cargo.toml Cargo.lock -newer "${deb:-/nonexistent}" -print -quit 2>/dev/null || echo stale)
if [ -z "$deb" ] || [ -n "$newer" ]; then
    packaging/build.sh >&2 || fail_setup "packaging/build.sh failed (it needs cargo-deb, cargo-zigbuild and zig; packaging/ci.sh installs them)"
    deb=$(ls -t target/packaging/eni-agent_*_amd64.deb | head -1)
fi
# The upgrade: the same package with the next Debian revision.
up=$CACHE/upgrade
rm -rf "$up" && mkdir -p "$up"
dpkg-deb -R "$deb" "$up/tree"
v=$(dpkg-deb -f "$deb" Version)
sed -i "s/^Version: .*/Version: ${v%-*}-$(( ${v##*-} + 1 ))/" "$up/tree/DEBIAN/control"
dpkg-deb --root-owner-group -Zxz -b "$up/tree" "$up/eni-agent-upgrade.deb" >/dev/null
image=$(tests/vm/build-image.sh "$deb" "$up/eni-agent-upgrade.deb" | tail -1) || fail_setup "the guest image could not be built"
echo "vm: set-up took $(( $(date +%s) - t0 )) s"
rc=0
if [ "${1:-}" = --bench ]; then
    shift
    python3 tests/vm/bench.py "$PWD" "$image" "$qemu" "$@" || rc=$?
else
    python3 tests/vm/suite.py "$PWD" "$image" "$qemu" "$@" || rc=$?
fi
echo "vm: total $(( $(date +%s) - t0 )) s"
exit $rc
