#!/usr/bin/env bash
# cloud-init compatibility suite: Debian's cloud-init (its AliYun datasource
# and its EC2-style metadata helpers) against ecs-emulator's metadata
# service at 100.100.100.200, in a network namespace this script creates
# (never on the host's network), with one secondary ENI attached and
# hot-plugged so that cloud-init renders network configuration for it.
#
# Needs root (a named network namespace). Uses Debian's cloud-init: the
# installed package, or else the package fetched with apt and unpacked into a
# temporary directory (no cloud-init service is enabled on this machine). Builds or reuses target/debug/ecs-emulator, runs
# ci_check.py inside the namespace. Exits non-zero on any failure; the last
# line is "cloudinit-compat: N passed, M failed".
#
# Environment: ECS_EMULATOR_BIN (use this binary instead of building),
# CLOUDINIT_COMPAT_UNPACK=1 (unpack the package even if one is installed).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [ "$(id -u)" -ne 0 ]; then
    if [ "${CI:-}" = "true" ]; then
        echo "cloudinit-compat: needs root (a network namespace); CI=true makes that fatal" >&2
        exit 1
    fi
    echo "cloudinit-compat: SKIPPED (needs root for a network namespace)"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/ecs-cloudinit-compat.XXXXXX")"
ns="ecs-cic-$$"
emu_pid=""
cleanup() {
    if [ -n "$emu_pid" ] && kill -0 "$emu_pid" 2>/dev/null; then
        kill "$emu_pid" 2>/dev/null || true
        wait "$emu_pid" 2>/dev/null || true
    fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Debian's cloud-init: the installed one, or else the package unpacked here
# (its Python dependencies installed with apt), so that no cloud-init
# service gets enabled on this machine.
pythonpath=""
if [ "${CLOUDINIT_COMPAT_UNPACK:-}" = 1 ] \
    || ! /usr/bin/python3 -c 'import cloudinit.sources.DataSourceAliYun' 2>/dev/null; then
    echo "cloudinit-compat: unpacking Debian's cloud-init package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        python3-configobj python3-jinja2 python3-jsonpatch python3-jsonschema \
        python3-netifaces python3-oauthlib python3-requests python3-serial python3-yaml
    (cd "$work" && apt-get download -qq cloud-init)
    dpkg -x "$work"/cloud-init_*.deb "$work/cloud-init"
    pythonpath="$work/cloud-init/usr/lib/python3/dist-packages"
fi
PYTHONPATH="$pythonpath" /usr/bin/python3 -c \
    'import cloudinit.version as v, cloudinit; print("cloudinit-compat: cloud-init", v.version_string(), "from", cloudinit.__path__[0])'

bin="${ECS_EMULATOR_BIN:-}"
if [ -z "$bin" ]; then
    echo "cloudinit-compat: building ecs-emulator"
    (cd "$root" && cargo build --quiet -p ecs-emulator)
    bin="$root/target/debug/ecs-emulator"
fi

# The built-in scenario with its first secondary ENI attached from the start
# (the emulator plugs InUse ENIs of a Running instance when it starts).
sed '/^id = "eni-emu0secondary001"$/a instance_id = "i-emu0instance0001"' \
    "$root/emulator/scenarios/default.toml" >"$work/scenario.toml"
grep -q '^instance_id = "i-emu0instance0001"$' "$work/scenario.toml"

ip netns add "$ns"
ip -n "$ns" link set lo up
"$bin" serve --scenario "$work/scenario.toml" --netns "$ns" --metadata-in-netns \
    --api-in-netns 100.100.100.201:80 >"$work/ready.json" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 1 300); do
    [ -s "$work/ready.json" ] && break
    if ! kill -0 "$emu_pid" 2>/dev/null; then
        echo "cloudinit-compat: emulator exited early" >&2
        cat "$work/emulator.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "cloudinit-compat: emulator never got ready" >&2; exit 1; }

status=0
ip netns exec "$ns" env -u http_proxy -u https_proxy -u HTTP_PROXY -u HTTPS_PROXY \
    PYTHONPATH="$pythonpath" /usr/bin/python3 "$here/ci_check.py" "$work/ready.json" || status=$?
if [ "$status" -ne 0 ]; then
    echo "cloudinit-compat: FAILED; emulator log follows" >&2
    tail -n 30 "$work/emulator.log" >&2
fi
exit "$status"
