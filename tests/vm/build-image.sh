#!/usr/bin/env bash
# Builds (or reuses) the guest image of the VM suite, in two cached layers:
#   1. base: Debian 12 from Debian's packages (mmdebstrap): its kernel,
#      systemd, udev, NetworkManager, systemd-networkd, cloud-init,
#      qemu-guest-agent, ethtool, iproute2 — $CACHE/base-<hash>.tar, keyed by
#      the package list and the mmdebstrap options below;
#   2. image: the base, the files under tests/vm/guest/ and the project's .deb
#      installed with dpkg -i as a user would — $CACHE/images/<hash>/, keyed
#      by the base, the guest files, this script and the .deb.
# Prints the image directory (rootfs.img, vmlinuz, initrd.img) on its last
# line. Usage: build-image.sh DEB UPGRADE_DEB
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${ENI_VM_CACHE:-/var/cache/eni-agent-vm}
DEB=$1
DEB2=$2
PKGS=systemd-sysv,udev,dbus,kmod,iproute2,ethtool,iputils-ping,procps,curl,ca-certificates,linux-image-amd64,qemu-guest-agent,network-manager,cloud-init,e2fsprogs,less,python3
BASE_OPTS="--variant=apt --include=$PKGS bookworm"
mkdir -p "$CACHE/images"

base=$CACHE/base-$(echo "$BASE_OPTS" | sha256sum | cut -c1-16).tar
if [ ! -f "$base" ]; then
    MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
    [ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$MIRROR" ] || { echo "vm: no Debian mirror in apt's sources; set DEBIAN_MIRROR" >&2; exit 2; }
    echo "vm: building the base system from $MIRROR (about 2 minutes)" >&2
    rm -rf "$CACHE"/base-*.tar
    # shellcheck disable=SC2086 # BASE_OPTS is a word list
    mmdebstrap --quiet $BASE_OPTS "${base%.tar}.part.tar" "$MIRROR"
    mv "${base%.tar}.part.tar" "$base"
fi

hash=$( {
    basename "$base"
    cat "$0"
    (cd "$HERE/guest" && find . -type f | LC_ALL=C sort | while read -r f; do
        echo "$f"
        cat "$f"
    done)
    sha256sum <"$DEB"
    dpkg-deb -f "$DEB2" Version
} | sha256sum | cut -c1-16)
OUT=$CACHE/images/$hash
if [ -f "$OUT/done" ]; then
    echo "vm: image $hash cached" >&2
    echo "$OUT"
    exit 0
fi
echo "vm: building image $hash" >&2
find "$CACHE/images" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
mkdir -p "$OUT"
ROOT=$OUT/rootfs
mkdir "$ROOT"
tar -C "$ROOT" -xf "$base"
echo enivm >"$ROOT/etc/hostname"
echo "127.0.1.1 enivm" >>"$ROOT/etc/hosts"
echo "/dev/vda / ext4 rw,relatime 0 1" >"$ROOT/etc/fstab"
chroot "$ROOT" sh -c "echo root:root | chpasswd"
cp -a "$HERE/guest/." "$ROOT/"
# NetworkManager ignores keyfiles others can read (git keeps no such mode).
chmod 600 "$ROOT"/etc/NetworkManager/system-connections/*.nmconnection
mkdir -p "$ROOT/opt/eni-agent/debs"
cp "$DEB" "$ROOT/opt/eni-agent/debs/eni-agent.deb"
cp "$DEB2" "$ROOT/opt/eni-agent/debs/eni-agent-upgrade.deb"
chroot "$ROOT" dpkg -i /opt/eni-agent/debs/eni-agent.deb >&2
chroot "$ROOT" systemctl enable enivm-ready.service systemd-networkd.service >&2
chroot "$ROOT" systemctl disable NetworkManager.service >&2
cp -L "$ROOT"/boot/vmlinuz-* "$OUT/vmlinuz"
cp -L "$ROOT"/boot/initrd.img-* "$OUT/initrd.img"
mkfs.ext4 -q -L enivm -d "$ROOT" "$OUT/rootfs.img" 2G
rm -rf "$ROOT"
touch "$OUT/done"
echo "$OUT"
