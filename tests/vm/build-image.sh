#!/usr/bin/env bash
# Builds (or reuses) the guest image of the VM suite: Debian 12 from Debian's
# packages (mmdebstrap) with its kernel, systemd, udev, NetworkManager,
# systemd-networkd, cloud-init and qemu-guest-agent, the files under
# tests/vm/guest/, and the project's .deb installed with dpkg -i as a user
# would. The image is cached under $CACHE/images/<hash of the inputs>: this
# script, the package list, the guest files and the .deb files. Prints the
# image directory (rootfs.img, vmlinuz, initrd.img, debs/) on its last line.
# Usage: build-image.sh DEB UPGRADE_DEB
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${ENI_VM_CACHE:-/var/cache/eni-agent-vm}
DEB=$1
DEB2=$2
PKGS=systemd-sysv,udev,dbus,kmod,iproute2,ethtool,iputils-ping,procps,curl,ca-certificates,linux-image-amd64,qemu-guest-agent,network-manager,cloud-init,e2fsprogs,less,python3
hash=$( {
    cat "$0"
    echo "$PKGS"
    (cd "$HERE/guest" && find . -type f | LC_ALL=C sort | while read -r f; do
        stat -c '%n %a' "$f"
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
MIRROR=${DEBIAN_MIRROR:-$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
[ -n "$MIRROR" ] || MIRROR=$(awk '/^deb /{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
[ -n "$MIRROR" ] || { echo "vm: no Debian mirror found in apt's sources; set DEBIAN_MIRROR" >&2; exit 2; }
echo "vm: building image $hash from $MIRROR (about 2 minutes)" >&2
rm -rf "$OUT"
mkdir -p "$OUT/debs"
cp "$DEB" "$OUT/debs/eni-agent.deb"
cp "$DEB2" "$OUT/debs/eni-agent-upgrade.deb"
ROOT=$OUT/rootfs
# SOURCE_DATE_EPOCH pins the time stamps mmdebstrap and dpkg write.
SOURCE_DATE_EPOCH=$(stat -c %Y "$DEB") \
mmdebstrap --quiet --variant=apt --include="$PKGS" \
    --customize-hook='echo enivm > "$1/etc/hostname"' \
    --customize-hook='echo "127.0.1.1 enivm" >> "$1/etc/hosts"' \
    --customize-hook='echo "/dev/vda / ext4 rw,relatime 0 1" > "$1/etc/fstab"' \
    --customize-hook='chroot "$1" sh -c "echo root:root | chpasswd"' \
    --customize-hook="copy-in $HERE/guest /tmp" \
    --customize-hook='cp -a "$1/tmp/guest/." "$1/" && rm -rf "$1/tmp/guest"' \
    --customize-hook="copy-in $OUT/debs /opt/eni-agent" \
    --customize-hook='chroot "$1" dpkg -i /opt/eni-agent/debs/eni-agent.deb' \
    --customize-hook='chroot "$1" systemctl enable enivm-ready.service systemd-networkd.service' \
    --customize-hook='chroot "$1" systemctl disable NetworkManager.service' \
    bookworm "$ROOT" "$MIRROR"
cp -L "$ROOT"/boot/vmlinuz-* "$OUT/vmlinuz"
cp -L "$ROOT"/boot/initrd.img-* "$OUT/initrd.img"
mkfs.ext4 -q -L enivm -d "$ROOT" "$OUT/rootfs.img" 2G
rm -rf "$ROOT"
touch "$OUT/done"
# Keep only this image.
find "$CACHE/images" -mindepth 1 -maxdepth 1 ! -name "$hash" -exec rm -rf {} +
echo "$OUT"
