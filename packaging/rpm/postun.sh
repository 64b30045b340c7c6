# eni-agent %postun. Plain POSIX sh (no rpm macros). $1 is 0 on erase, 1 or
# more on upgrade. On upgrade: restart the daemon if it runs (try-restart), so
# the new binary takes over; the restart leaves configured NICs untouched.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart eni-agent.service >/dev/null 2>&1 || :
    fi
fi
exit 0
