#!/usr/bin/env bash
# Builds the eni-agent packages into target/packaging/:
#   eni-agent_<version>-1_amd64.deb   (cargo-deb)
#   eni-agent-<version>-1.x86_64.rpm  (cargo-generate-rpm)
# from a release binary linked against glibc 2.17 by cargo-zigbuild, so one
# binary runs on every glibc >= 2.17 distribution (RHEL/Alibaba Cloud Linux 3
# have 2.28), and man pages rendered from the clap command line.
#
# Tools: cargo-zigbuild, zig, cargo-deb and cargo-generate-rpm, at the
# versions below. Whatever is not already on PATH at that version is installed
# into target/packaging/tools/ (cargo install --root, and a Python venv for
# PyPI's `ziglang`), used from there and nowhere else: nothing is installed on
# the host. Needs a Rust toolchain, python3 with venv (Debian: python3-venv)
# and access to crates.io and PyPI on the first run.
set -euo pipefail
cd "$(dirname "$0")/.."

TRIPLE=x86_64-unknown-linux-gnu
GLIBC_FLOOR=2.17
OUT=target/packaging
TOOLS=$PWD/$OUT/tools

CARGO_DEB=3.8.0
CARGO_GENERATE_RPM=0.21.1
CARGO_ZIGBUILD=0.24.1
ZIGLANG=0.17.1

say() { echo "build: $*"; }
die() {
    echo "build: $*" >&2
    exit 1
}

mkdir -p "$TOOLS/bin"
export PATH="$TOOLS/bin:$TOOLS/venv/bin:$PATH"

# `cargo <sub> --version` prints e.g. "cargo-deb 3.8.0" or "cargo-zigbuild 0.24.1".
has_version() { # command version
    command -v "$1" >/dev/null && "$1" --version 2>/dev/null | grep -qw -- "$2"
}
cargo_tool() { # crate version
    if ! has_version "$1" "$2"; then
        say "installing $1 $2 into $TOOLS (cargo install --root)"
        cargo install --locked --quiet --root "$TOOLS" "$1" --version "$2" ||
            die "cannot install $1 $2 from crates.io; install it yourself (cargo install --locked $1 --version $2) and put it on PATH"
    fi
}
cargo_tool cargo-deb "$CARGO_DEB"
cargo_tool cargo-generate-rpm "$CARGO_GENERATE_RPM"
cargo_tool cargo-zigbuild "$CARGO_ZIGBUILD"

# cargo-zigbuild runs `zig`, or else `python3 -m ziglang`: the venv's python3
# comes first on PATH.
if ! command -v zig >/dev/null && ! python3 -m ziglang version >/dev/null 2>&1; then
    say "installing ziglang $ZIGLANG into $TOOLS/venv (pip, from PyPI)"
    python3 -m venv "$TOOLS/venv" ||
        die "cannot create a Python venv; install python3-venv (Debian/Ubuntu: apt-get install python3-venv)"
    "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check "ziglang==$ZIGLANG" ||
        die "cannot install ziglang $ZIGLANG from PyPI; install zig $ZIGLANG yourself and put it on PATH"
fi

say "eni-agent for $TRIPLE, glibc $GLIBC_FLOOR (cargo zigbuild)"
cargo zigbuild --locked --release -p eni-agent --bin eni-agent --target "$TRIPLE.$GLIBC_FLOOR"

say "man pages"
rm -rf "$OUT/man"
cargo run --locked --quiet -p eni-agent-man -- "$OUT/man"
gzip -9n "$OUT"/man/*.8

rm -f "$OUT"/*.deb "$OUT"/*.rpm
say ".deb (cargo deb)"
cargo deb --locked --no-build -p eni-agent --target "$TRIPLE" -o "$OUT/"
say ".rpm (cargo generate-rpm)"
cargo generate-rpm -p . --target "$TRIPLE" -o "$OUT/"
ls -l "$OUT"/*.deb "$OUT"/*.rpm
