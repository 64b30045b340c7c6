# eni-agent %preun. Plain POSIX sh (no rpm macros). $1 is 0 on erase, 1 on
# upgrade. On erase: disable and stop the daemon. Stopping never removes a
# NIC's configuration, so every configured NIC keeps working.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable eni-agent.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl stop eni-agent.service >/dev/null 2>&1 || :
    fi
fi
exit 0
