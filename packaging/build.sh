#!/usr/bin/env bash
# Builds the eni-agent packages into target/packaging/:
#   eni-agent_<version>-1_amd64.deb   (cargo-deb)
#   eni-agent-<version>-1.x86_64.rpm  (cargo-generate-rpm)
# from a release binary linked against glibc 2.17 by cargo-zigbuild, so one
# binary runs on every glibc >= 2.17 distribution (RHEL/Alibaba Cloud Linux 3
# have 2.28), and man pages rendered from the clap command line.
#
# Needs: cargo-zigbuild and zig (`pip install ziglang`), cargo-deb,
# cargo-generate-rpm. packaging/ci.sh installs them on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
GLIBC_FLOOR=2.17
OUT=target/packaging

echo "build: eni-agent for $TRIPLE, glibc $GLIBC_FLOOR (cargo zigbuild)"
cargo zigbuild --locked --release -p eni-agent --bin eni-agent --target "$TRIPLE.$GLIBC_FLOOR"

echo "build: man pages"
rm -rf "$OUT/man"
cargo run --locked --quiet -p eni-agent-man -- "$OUT/man"
gzip -9n "$OUT"/man/*.8

rm -f "$OUT"/*.deb "$OUT"/*.rpm
echo "build: .deb (cargo deb)"
cargo deb --locked --no-build -p eni-agent --target "$TRIPLE" -o "$OUT/"
echo "build: .rpm (cargo generate-rpm)"
cargo generate-rpm -p . --target "$TRIPLE" -o "$OUT/"
ls -l "$OUT"/*.deb "$OUT"/*.rpm
