#!/usr/bin/env bash
# Runs SCRIPT as root in a throw-away copy of this machine's root file
# system: a private mount namespace (unshare) with an overlay whose lower
# layer is `/` and whose upper layer is a tmpfs, entered with chroot. FILES
# are copied to /tmp/throwaway/ inside. Everything SCRIPT changes (dpkg's
# database, /etc, /usr, /var/lib) lands in the tmpfs and is gone when it
# exits; the host is never changed. /run inside is an empty tmpfs, so nothing
# in the root can reach the host's systemd (maintainer scripts see no running
# systemd), and /proc is a fresh mount.
#
# usage: packaging/throwaway-root.sh SCRIPT [FILE...]   (as root)
set -euo pipefail
[ "$#" -ge 1 ] || { echo "usage: $0 SCRIPT [FILE...]" >&2; exit 64; }
[ "$(id -u)" = 0 ] || { echo "throwaway-root: needs root (mount namespaces, overlayfs)" >&2; exit 1; }

if [ -z "${THROWAWAY_ROOT_INSIDE:-}" ]; then
    exec env THROWAWAY_ROOT_INSIDE=1 unshare --mount --propagation private -- "$0" "$@"
fi

top=$(mktemp -d "${TMPDIR:-/tmp}/throwaway-root.XXXXXX")
cleanup() {
    # The mounts die with the namespace; only the empty directory is left.
    umount -R "$top" 2>/dev/null || true
    rmdir "$top" 2>/dev/null || true
}
trap cleanup EXIT
# upper and work must share a file system that can be an overlay's upper
# layer, whatever /tmp is: a tmpfs of our own.
mount -t tmpfs -o mode=700 throwaway "$top"
mkdir "$top/upper" "$top/work" "$top/root"
mount -t overlay throwaway -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$top/root"
root=$top/root
mount -t proc proc "$root/proc"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
mount --rbind /dev "$root/dev"

script=$1
shift
mkdir "$root/tmp/throwaway"
inside=()
for f in "$script" "$@"; do
    cp -- "$f" "$root/tmp/throwaway/"
    inside+=("/tmp/throwaway/$(basename -- "$f")")
done
# Not exec: the trap above unmounts once SCRIPT is done.
chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    /bin/bash "${inside[@]}"
