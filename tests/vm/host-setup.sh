#!/usr/bin/env bash
# Host prerequisites of the VM suite: image tools (mmdebstrap, mkfs.ext4,
# cloud-localds), dnsmasq, and QEMU. QEMU comes from apt when installing it
# removes nothing; otherwise (a backported qemu-utils that Breaks Debian 12's
# qemu-system-common) Debian 12's QEMU packages are unpacked into a private
# prefix under the cache directory and nothing on the system changes.
# Prints the path of qemu-system-x86_64 on its last line.
set -euo pipefail
CACHE=${ENI_VM_CACHE:-/var/cache/eni-agent-vm}
mkdir -p "$CACHE"
export DEBIAN_FRONTEND=noninteractive
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v cloud-localds >/dev/null || need+=(cloud-image-utils)
command -v dnsmasq >/dev/null || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
command -v python3 >/dev/null || need+=(python3)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
    echo "vm: installing ${need[*]}" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if command -v qemu-system-x86_64 >/dev/null; then
    command -v qemu-system-x86_64
    exit 0
fi
PRIVATE=$CACHE/qemu-root/usr/bin/qemu-system-x86_64
if [ -x "$PRIVATE" ] && "$PRIVATE" --version >/dev/null 2>&1; then
    echo "$PRIVATE"
    exit 0
fi
if ! plan=$(apt-get install -y --no-install-recommends --dry-run qemu-system-x86 2>&1) ||
    grep -q '^Remv' <<<"$plan"; then
    echo "vm: installing qemu-system-x86 would remove packages; unpacking Debian's QEMU into $CACHE/qemu-root" >&2
    # The shared libraries QEMU links against (installing them removes nothing).
    apt-get install -y -qq --no-install-recommends libaio1 libbpf1 libcapstone4 libfdt1 libfuse3-3 \
        libglib2.0-0 libgmp10 libgnutls30 libibverbs1 libjpeg62-turbo libnuma1 libpixman-1-0 libpmem1 \
        libpng16-16 librdmacm1 libsasl2-2 libseccomp2 libslirp0 liburing2 libvdeplug2 libzstd1 >/dev/null
    v=$(apt-cache policy qemu-system-x86 | awk '/Candidate/{print $2}')
    rm -rf "$CACHE/debs" "$CACHE/qemu-root"
    mkdir -p "$CACHE/debs" "$CACHE/qemu-root"
    (cd "$CACHE/debs" && apt-get download -qq "qemu-system-x86=$v" "qemu-system-common=$v" \
        qemu-system-data seabios ipxe-qemu)
    for d in "$CACHE"/debs/*.deb; do dpkg-deb -x "$d" "$CACHE/qemu-root"; done
    "$PRIVATE" --version >/dev/null
    echo "$PRIVATE"
else
    echo "vm: installing qemu-system-x86" >&2
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends qemu-system-x86 >/dev/null
    command -v qemu-system-x86_64
fi
