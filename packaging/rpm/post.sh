# eni-agent %post. Plain POSIX sh: cargo-generate-rpm copies scriptlets
# verbatim, so no rpm macros. $1 is 1 on first install, 2 or more on upgrade.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    # The hand-off directories under /run (NetworkManager, networkd, udev)
    # must exist before the hardened unit starts, not only after a reboot.
    systemd-tmpfiles --create eni-agent.conf >/dev/null 2>&1 || :
fi
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    # Enable for the next boot and start nothing now: the shipped
    # /etc/eni-agent/config.toml names no ENI, so there is nothing to do
    # until an operator (or cloud-init) configures one.
    systemctl --no-reload enable eni-agent.service >/dev/null 2>&1 || :
fi
exit 0
