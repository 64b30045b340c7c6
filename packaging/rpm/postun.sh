# eni-agent %postun. Plain POSIX sh (no rpm macros). $1 is 0 on erase, 1 or
# more on upgrade. On upgrade: restart the daemon if it runs (try-restart), so
# the new binary takes over; the restart leaves configured NICs untouched.
# On erase: remove the package's now-empty directories.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart eni-agent.service >/dev/null 2>&1 || :
    fi
fi
if [ "$1" -eq 0 ]; then
    # cargo-generate-rpm cannot own directories, so remove the package's
    # directories here when they are empty (an edited config survives as
    # config.toml.rpmsave, which keeps /etc/eni-agent). packaging/ci.sh checks
    # that this list matches what an erase leaves behind.
    for d in /usr/share/doc/eni-agent/examples/cloud-init \
        /usr/share/doc/eni-agent/examples /usr/share/doc/eni-agent \
        /usr/share/licenses/eni-agent /etc/eni-agent; do
        rmdir "$d" 2>/dev/null || :
    done
fi
exit 0
