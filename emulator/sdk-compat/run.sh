#!/usr/bin/env bash
# SDK compatibility suite: the official Alibaba Cloud Python SDK
# (alibabacloud-ecs20140526, default V3 signature and signature_algorithm='v2')
# and alibabacloud-credentials' ECS RAM role provider against ecs-emulator.
#
# Creates a throw-away virtual environment (pip reaches PyPI only), builds
# or reuses target/debug/ecs-emulator, starts it on loopback, runs
# sdk_check.py. Exits non-zero on any failure.
#
# Environment: ECS_EMULATOR_BIN (use this binary instead of building),
# SDK_COMPAT_VENV (reuse an existing venv that has both packages).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/ecs-sdk-compat.XXXXXX")"
emu_pid=""

cleanup() {
    if [ -n "$emu_pid" ] && kill -0 "$emu_pid" 2>/dev/null; then
        kill "$emu_pid" 2>/dev/null || true
        wait "$emu_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Nothing but PyPI and loopback: no proxies for loopback, no ambient cloud
# credentials that the SDK or the credentials chain could pick up.
export NO_PROXY="127.0.0.1,localhost${NO_PROXY:+,$NO_PROXY}"
export no_proxy="$NO_PROXY"
for v in $(env | sed -n 's/^\(ALIBABA_CLOUD_[A-Z_]*\)=.*/\1/p'); do unset "$v"; done

if [ -n "${SDK_COMPAT_VENV:-}" ]; then
    venv="$SDK_COMPAT_VENV"
else
    venv="$work/venv"
    echo "sdk-compat: creating venv and installing the SDK from PyPI"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        alibabacloud-ecs20140526 alibabacloud-credentials
fi
"$venv/bin/pip" list --disable-pip-version-check 2>/dev/null \
    | grep -Ei '^(alibabacloud-ecs20140526|alibabacloud-credentials|alibabacloud-tea-openapi) ' || true

bin="${ECS_EMULATOR_BIN:-}"
if [ -z "$bin" ]; then
    echo "sdk-compat: building ecs-emulator"
    (cd "$root" && cargo build --quiet -p ecs-emulator)
    bin="$root/target/debug/ecs-emulator"
fi

"$bin" serve >"$work/ready.json" 2>"$work/emulator.log" &
emu_pid=$!
for _ in $(seq 1 300); do
    [ -s "$work/ready.json" ] && break
    if ! kill -0 "$emu_pid" 2>/dev/null; then
        echo "sdk-compat: emulator exited early" >&2
        cat "$work/emulator.log" >&2
        exit 1
    fi
    sleep 0.1
done
if [ "$(wc -l <"$work/ready.json")" -ne 1 ]; then
    echo "sdk-compat: expected exactly one ready line on stdout" >&2
    cat "$work/ready.json" "$work/emulator.log" >&2
    exit 1
fi

status=0
"$venv/bin/python" "$here/sdk_check.py" "$work/ready.json" || status=$?
if [ "$status" -ne 0 ]; then
    echo "sdk-compat: FAILED; emulator log follows" >&2
    tail -n 50 "$work/emulator.log" >&2
fi
exit "$status"
