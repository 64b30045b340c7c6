#!/usr/bin/env bash
# Install → upgrade (with an operator's edit of the conffile) → remove →
# purge of the .deb, checked step by step. Meant to run inside a throw-away
# root (packaging/throwaway-root.sh; packaging/ci.sh does that), never on a
# machine whose package database matters: it installs and purges eni-agent.
# The daemon is never started (no systemd runs in the throw-away root, and a
# policy-rc.d forbids it anyway).
#
# usage: install-test.sh REVISION1.deb REVISION2.deb
set -euo pipefail
deb=$1
deb2=$2

say() { echo "packaging: install test: $*"; }
fail() {
    echo "packaging: install test: FAIL: $*" >&2
    exit 1
}
ok() { echo "packaging: ok: $*"; }

[ -d /run/systemd/system ] && fail "systemd runs here: this must run in a throw-away root (packaging/throwaway-root.sh)"
if dpkg -s eni-agent >/dev/null 2>&1; then
    fail "eni-agent is installed in the base system; the install test needs a machine without it"
fi
[ ! -e /etc/eni-agent ] && [ ! -e /var/lib/eni-agent ] || fail "/etc/eni-agent or /var/lib/eni-agent exists before the install"
version=$(dpkg-deb -f "$deb" Version)

snapshot() {
    find /etc /usr /var/lib /opt -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/ucf -o -path /etc/ld.so.cache \) -prune -o \
        -printf '%p %y %m\n' 2>/dev/null | sort
}
# The packaged binary running in this root.
daemon_running() {
    local p
    for p in /proc/[0-9]*/exe; do
        [ "$(readlink "$p" 2>/dev/null)" = /usr/bin/eni-agent ] && return 0
    done
    return 1
}
snapshot >/tmp/before
policy_rc_d=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_rc_d=1
fi

DEBIAN_FRONTEND=noninteractive dpkg -i "$deb" || fail "dpkg -i"
[ "$(dpkg-query -W -f '${Status}' eni-agent)" = "install ok installed" ] || fail "not installed"
/usr/bin/eni-agent --version || fail "eni-agent --version"
/usr/bin/eni-agent check-config /etc/eni-agent/config.toml || fail "check-config of the installed config"
[ -L /etc/systemd/system/multi-user.target.wants/eni-agent.service ] || fail "install did not enable the unit"
daemon_running && fail "the daemon runs after install"
ok "installed: --version, check-config, unit enabled, nothing started"

# Upgrade to a new revision with a locally edited config.
echo '# edited by the operator' >>/etc/eni-agent/config.toml
DEBIAN_FRONTEND=noninteractive dpkg -i --force-confold "$deb2" || fail "upgrade"
[ "$(dpkg-query -W -f '${Version}' eni-agent)" = "${version%-*}-2" ] || fail "upgrade did not install revision 2"
grep -qx '# edited by the operator' /etc/eni-agent/config.toml || fail "upgrade lost the operator's config edit"
[ -L /etc/systemd/system/multi-user.target.wants/eni-agent.service ] || fail "upgrade disabled the unit"
daemon_running && fail "the daemon runs after upgrade (it was not running before)"
ok "upgraded: config edit kept, unit still enabled"

# State and an operator's credentials file, as the daemon would leave them.
mkdir -p /var/lib/eni-agent/enis
echo '{}' >/var/lib/eni-agent/enis/eni-test.json
install -m 600 /dev/null /etc/eni-agent/credentials
dpkg --remove eni-agent || fail "dpkg --remove"
[ ! -e /usr/bin/eni-agent ] || fail "remove left the binary"
[ -f /etc/eni-agent/config.toml ] && [ -d /var/lib/eni-agent ] || fail "remove deleted config or state (only purge may)"
ok "removed: binary gone, config and state kept"
dpkg --purge eni-agent || fail "dpkg --purge"
dpkg -s eni-agent >/dev/null 2>&1 && fail "still known to dpkg after purge"
[ ! -e /etc/eni-agent ] && [ ! -e /var/lib/eni-agent ] || fail "purge left /etc/eni-agent or /var/lib/eni-agent"
[ "$policy_rc_d" = 1 ] && rm -f /usr/sbin/policy-rc.d
snapshot >/tmp/after
# The lower layer is the live host: its own changes meanwhile show through
# and are reported without failing; anything of ours fails.
diff /tmp/before /tmp/after | grep '^[<>]' >/tmp/diff || true
if grep -E 'eni-agent|^[<>] /etc/systemd/|^[<>] /var/lib/systemd/' /tmp/diff; then
    fail "purge left something behind (above)"
fi
[ -s /tmp/diff ] && say "unrelated changes on the host meanwhile (not ours): $(tr '\n' ' ' </tmp/diff)"
ok "purged: nothing left behind in /etc /usr /var/lib /opt"
