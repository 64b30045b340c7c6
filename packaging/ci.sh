#!/usr/bin/env bash
# Packaging checks. .ci/run runs this after the cargo tests, as root with
# CI=true, on a fresh Debian 12 machine. It installs the check tools it lacks
# (apt: lintian, rpm, rpmlint, cloud-init, binutils), builds the .deb and the
# .rpm (packaging/build.sh, which keeps its build tools in
# target/packaging/tools), then checks:
#   - the cloud-init examples against cloud-init's schema;
#   - the binary's glibc floor (<= 2.28) and that the package dependencies
#     cover every library it needs;
#   - the .deb's files, conffiles, dependencies and maintainer scripts; lintian;
#   - the .rpm's files (rpm -qpl), config files, requirements and scriptlets
#     (rpm -qp --scripts), the scriptlets' behaviour against a stub systemctl;
#     rpmlint;
#   - that every lintian/rpmlint warning left is justified in
#     packaging/README.md;
#   - install, upgrade, remove and purge of the .deb in a throw-away root (an
#     overlay over / in a private mount namespace: packaging/throwaway-root.sh,
#     packaging/install-test.sh), which must leave nothing behind. The host's
#     package database is never changed and the daemon is never started.
# Any failure exits non-zero.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=target/packaging
TRIPLE=x86_64-unknown-linux-gnu
MAX_GLIBC=2.28

say() { echo "packaging: $*"; }
fail() {
    echo "packaging: FAIL: $*" >&2
    exit 1
}
checks=0
ok() {
    checks=$((checks + 1))
    echo "packaging: ok: $*"
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- tools --------------------------------------------------------------------
need_apt=()
command -v lintian >/dev/null || need_apt+=(lintian)
command -v rpm >/dev/null || need_apt+=(rpm)
command -v rpmlint >/dev/null || need_apt+=(rpmlint)
[ -x /usr/bin/cloud-init ] || need_apt+=(cloud-init)
command -v objdump >/dev/null || need_apt+=(binutils)
command -v unshare >/dev/null || need_apt+=(util-linux) # packaging/throwaway-root.sh
command -v gzip >/dev/null || need_apt+=(gzip)
dpkg -s ca-certificates >/dev/null 2>&1 || need_apt+=(ca-certificates)
if [ "${#need_apt[@]}" -gt 0 ]; then
    say "installing ${need_apt[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
# cargo-deb, cargo-generate-rpm, cargo-zigbuild and zig: packaging/build.sh
# installs the ones it lacks into target/packaging/tools.
export PATH="$ROOT/$OUT/tools/bin:$ROOT/$OUT/tools/venv/bin:$PATH"

# --- cloud-init examples --------------------------------------------------------
shopt -s nullglob
examples=(packaging/cloud-init/*.yaml)
[ "${#examples[@]}" -ge 2 ] || fail "expected the cloud-init examples in packaging/cloud-init/"
for f in "${examples[@]}"; do
    head -n 1 "$f" | grep -qx '#cloud-config' || fail "$f: first line must be #cloud-config"
    cloud-init schema --config-file "$f" || fail "$f: cloud-init schema"
    ok "cloud-init schema: $f"
done
# The validator must actually reject a bad file (no vacuous pass).
printf '#cloud-config\nruncmd: 5\nwrite_files:\n  - path: /x\n    defer: maybe\n' >"$work/bad.yaml"
if cloud-init schema --config-file "$work/bad.yaml" >/dev/null 2>&1; then
    fail "cloud-init schema accepted an invalid file"
fi
ok "cloud-init schema rejects an invalid file"
grep -q 'eni-agent, attach, eni-' packaging/cloud-init/attach-at-first-boot.yaml ||
    fail "attach-at-first-boot.yaml must run eni-agent attach ENI_ID"
grep -q 'path: /etc/eni-agent/config.toml' packaging/cloud-init/daemon-with-config.yaml ||
    fail "daemon-with-config.yaml must write /etc/eni-agent/config.toml"
grep -q 'systemctl, enable, --now, eni-agent.service' packaging/cloud-init/daemon-with-config.yaml ||
    fail "daemon-with-config.yaml must enable the daemon"

# --- the maintainer scripts are plain POSIX sh -------------------------------
for s in packaging/debian/postrm packaging/rpm/*.sh; do
    dash -n "$s" || fail "$s: not valid POSIX sh"
    if sed 's/#.*//' "$s" | grep -q '%'; then
        fail "$s: contains a % outside comments (an rpm macro?)"
    fi
done
ok "maintainer scripts parse with dash, no rpm macros"

# --- build --------------------------------------------------------------------
packaging/build.sh
deb=$(ls "$OUT"/eni-agent_*_amd64.deb)
rpmf=$(ls "$OUT"/eni-agent-*.x86_64.rpm)
version=$(dpkg-deb -f "$deb" Version)
say "built $deb and $rpmf"

# --- the binary: glibc floor and libraries -------------------------------------
bin=target/$TRIPLE/release/eni-agent
floor=$(objdump -T "$bin" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[ -n "$floor" ] || fail "no GLIBC_ symbol versions found in $bin"
say "glibc floor of $bin: GLIBC_$floor (limit $MAX_GLIBC)"
[ "$(printf '%s\n%s\n' "$floor" "$MAX_GLIBC" | sort -V | tail -n 1)" = "$MAX_GLIBC" ] ||
    fail "the binary needs GLIBC_$floor, more than $MAX_GLIBC"
ok "glibc floor GLIBC_$floor <= $MAX_GLIBC"
depends=$(dpkg-deb -f "$deb" Depends)
declared=$(printf '%s\n' "$depends" | sed -n 's/.*libc6 (>= \([0-9.]*\)).*/\1/p')
[ -n "$declared" ] || fail "Depends has no versioned libc6: $depends"
[ "$(printf '%s\n%s\n' "$floor" "$declared" | sort -V | tail -n 1)" = "$declared" ] ||
    fail "Depends says libc6 (>= $declared) but the binary needs $floor"
ok "Depends libc6 (>= $declared) covers GLIBC_$floor"
for lib in $(objdump -p "$bin" | awk '$1 == "NEEDED" { print $2 }'); do
    case "$lib" in
        libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux-x86-64.so.2) pkg=libc6 ;;
        libgcc_s.so.1) pkg=libgcc-s1 ;;
        *) fail "$bin needs $lib, which no declared dependency provides" ;;
    esac
    printf '%s\n' "$depends" | grep -qw -- "$pkg" || fail "$bin needs $lib but Depends lacks $pkg"
done
ok "every NEEDED library is covered by Depends ($depends)"
printf '%s\n' "$depends" | grep -qw ca-certificates || fail "Depends lacks ca-certificates"
readelf -S "$bin" | grep -q '\.symtab' && fail "$bin is not stripped"
"$bin" --version | grep -qx "eni-agent ${version%-*}" || fail "--version does not print eni-agent ${version%-*}"
ok "binary runs here and is stripped"

# --- the .deb -----------------------------------------------------------------
dpkg-deb -c "$deb" | awk '{ print $NF }' | sed 's|^\./|/|' | grep -v '/$' | sort >"$work/deb.files"
cat >"$work/deb.expected" <<'EOF'
/etc/eni-agent/config.toml
/usr/bin/eni-agent
/usr/lib/systemd/system/eni-agent.service
/usr/lib/tmpfiles.d/eni-agent.conf
/usr/share/doc/eni-agent/README.md
/usr/share/doc/eni-agent/changelog.Debian.gz
/usr/share/doc/eni-agent/copyright
/usr/share/doc/eni-agent/examples/cloud-init/attach-at-first-boot.yaml
/usr/share/doc/eni-agent/examples/cloud-init/daemon-with-config.yaml
/usr/share/doc/eni-agent/examples/monitoring/eni-agent.dashboard.json
/usr/share/doc/eni-agent/examples/monitoring/eni-agent.rules.yml
/usr/share/man/man8/eni-agent.8.gz
EOF
for f in "$OUT"/man/eni-agent-*.8.gz; do echo "/usr/share/man/man8/$(basename "$f")"; done >>"$work/deb.expected"
sort -o "$work/deb.expected" "$work/deb.expected"
diff -u "$work/deb.expected" "$work/deb.files" || fail ".deb contents differ from the expected list"
ok ".deb contents ($(wc -l <"$work/deb.files") files)"
mkdir "$work/control"
dpkg-deb -e "$deb" "$work/control"
grep -qx /etc/eni-agent/config.toml "$work/control/conffiles" || fail "/etc/eni-agent/config.toml is not a conffile"
for s in postinst prerm postrm; do
    [ -f "$work/control/$s" ] || fail ".deb has no $s"
    head -n 1 "$work/control/$s" | grep -qx '#!/bin/sh' || fail "$s is not a /bin/sh script"
    dash -n "$work/control/$s" || fail "$s: not valid POSIX sh"
done
grep -q 'deb-systemd-helper enable eni-agent.service' "$work/control/postinst" || fail "postinst does not enable the unit"
grep -q 'try-restart eni-agent.service' "$work/control/postinst" || fail "postinst does not restart the daemon on upgrade"
grep -qE 'deb-systemd-invoke (start|restart) ' "$work/control/postinst" && fail "postinst starts the daemon"
grep -q 'deb-systemd-invoke stop eni-agent.service' "$work/control/prerm" || fail "prerm does not stop the daemon on removal"
grep -q 'rm -rf /etc/eni-agent /var/lib/eni-agent' "$work/control/postrm" || fail "postrm does not purge config and state"
ok ".deb conffile and maintainer scripts (enable, no start, try-restart on upgrade, stop on remove, purge)"

# Warnings left must be listed (as `tag`) in packaging/README.md.
justified() { # tool tag
    grep -q "^| $1 | \`$2\`" packaging/README.md
}
say "lintian $deb"
lintian --fail-on error --display-level '>=warning' "$deb" | tee "$work/lintian.out" || fail "lintian reports errors"
for tag in $(awk -F': ' '/^W: / { split($3, a, " "); print a[1] }' "$work/lintian.out" | sort -u); do
    justified lintian "$tag" || fail "lintian warning $tag is not justified in packaging/README.md"
done
ok "lintian: $(grep -c '^E: ' "$work/lintian.out" || true) errors, $(grep -c '^W: ' "$work/lintian.out" || true) warnings (all justified)"

# --- the .rpm -------------------------------------------------------------------
rpm -qp --nosignature -l "$rpmf" | sort >"$work/rpm.files"
sed -e '/changelog.Debian.gz$/d' -e '/\/copyright$/d' "$work/deb.expected" >"$work/rpm.expected"
echo /usr/share/licenses/eni-agent/LICENSE >>"$work/rpm.expected"
sort -o "$work/rpm.expected" "$work/rpm.expected"
diff -u "$work/rpm.expected" "$work/rpm.files" || fail "rpm -qpl differs from the expected list"
ok "rpm -qpl ($(wc -l <"$work/rpm.files") files)"
rpm -qp --nosignature --configfiles "$rpmf" | grep -qx /etc/eni-agent/config.toml || fail "config.toml is not an rpm config file"
rpm -qp --nosignature --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpmf" | grep -qx 'cn /etc/eni-agent/config.toml' ||
    fail "config.toml is not %config(noreplace)"
rpm -qp --nosignature --requires "$rpmf" >"$work/rpm.requires"
grep -qx ca-certificates "$work/rpm.requires" || fail "rpm does not require ca-certificates"
rpm_floor=$(grep -o 'GLIBC_[0-9][0-9.]*' "$work/rpm.requires" | sed 's/GLIBC_//' | sort -uV | tail -n 1)
[ "$(printf '%s\n%s\n' "${rpm_floor:-0}" "$MAX_GLIBC" | sort -V | tail -n 1)" = "$MAX_GLIBC" ] ||
    fail "rpm requires GLIBC_$rpm_floor"
rpm -K --nosignature "$rpmf" >/dev/null || fail "rpm digests"
ok "rpm config (noreplace), requires (ca-certificates, GLIBC_${rpm_floor:-none} max), digests"
rpm -qp --nosignature --scripts "$rpmf" | tee "$work/rpm.scripts"
for s in 'postinstall scriptlet' 'preuninstall scriptlet' 'postuninstall scriptlet'; do
    grep -q "^$s (using /bin/sh)" "$work/rpm.scripts" || fail "rpm has no $s"
done
sed 's/#.*//' "$work/rpm.scripts" | grep -q '%' && fail "an rpm scriptlet contains a % outside comments (unexpanded macro?)"
ok "rpm -qp --scripts: post, preun, postun with /bin/sh, no macros"

# Run the scriptlets as shipped against a stub systemctl that logs its calls.
mkdir -p "$work/stub"
cat >"$work/stub/systemctl" <<EOF
#!/bin/sh
echo "systemctl \$*" >>"$work/calls"
EOF
chmod 755 "$work/stub/systemctl"
scriptlet() { # tag arg -> the calls it makes
    rpm -qp --nosignature --qf "%{$1}" "$rpmf" >"$work/scriptlet"
    : >"$work/calls"
    PATH="$work/stub:$PATH" sh "$work/scriptlet" "$2" || fail "scriptlet $1 $2 failed"
    tr '\n' ';' <"$work/calls"
}
[ -d /run/systemd/system ] && running=1 || running=0
[ "$(scriptlet POSTIN 1)" = "$([ $running = 1 ] && echo -n 'systemctl daemon-reload;')systemctl --no-reload enable eni-agent.service;" ] ||
    fail "%post 1 (install) must enable and start nothing: $(cat "$work/calls")"
[ "$(scriptlet POSTIN 2)" = "$([ $running = 1 ] && echo -n 'systemctl daemon-reload;')" ] ||
    fail "%post 2 (upgrade) must not re-enable: $(cat "$work/calls")"
case "$(scriptlet PREUN 0)" in
    "systemctl --no-reload disable eni-agent.service;"*) ;;
    *) fail "%preun 0 (erase) must disable and stop: $(cat "$work/calls")" ;;
esac
[ -z "$(scriptlet PREUN 1)" ] || fail "%preun 1 (upgrade) must do nothing: $(cat "$work/calls")"
if [ $running = 1 ]; then
    scriptlet POSTUN 1 | grep -q 'try-restart eni-agent.service' || fail "%postun 1 (upgrade) must try-restart"
else
    [ -z "$(scriptlet POSTUN 1)" ] || fail "%postun without systemd must do nothing: $(cat "$work/calls")"
fi
ok "rpm scriptlets behave (install enables only, upgrade keeps, erase disables)"

# Install and erase the rpm in a scratch root (without scriptlets: the root has
# no shell). cargo-generate-rpm cannot own directories, so %postun removes the
# package's empty ones: every directory the erase leaves must be on its list.
rr="$work/rpmroot"
mkdir "$rr"
rpm --root "$rr" --initdb
rpm -i --root "$rr" --nodeps --noscripts "$rpmf" 2>/dev/null || fail "rpm -i into a scratch root"
rpm -q --root "$rr" eni-agent >/dev/null || fail "rpm -i into a scratch root: not installed"
"$rr/usr/bin/eni-agent" check-config "$rr/etc/eni-agent/config.toml" >/dev/null || fail "check-config of the rpm's config"
rpm -e --root "$rr" --nodeps --noscripts eni-agent 2>/dev/null || fail "rpm -e in the scratch root"
rpm -qp --nosignature --qf '%{POSTUN}' "$rpmf" | tr -s ' ;\\\t' '\n' >"$work/postun.words"
for p in $(cd "$rr" && find . \( -path ./root -o -path ./var/lib/rpm \) -prune -o -name '*eni-agent*' -print | sed 's|^\.||'); do
    [ -d "$rr$p" ] || fail "rpm -e left the file $p"
    grep -qx -- "$p" "$work/postun.words" || fail "rpm -e leaves $p, which %postun does not remove"
done
ok "rpm -i/-e in a scratch root; %postun removes every directory the erase leaves"

say "rpmlint $rpmf"
rpmlint -c packaging/rpmlint.toml "$rpmf" | tee "$work/rpmlint.out" || true
grep -q ' 0 errors' "$work/rpmlint.out" || fail "rpmlint reports errors"
for tag in $(awk -F': ' '/ W: / { split($3, a, " "); print a[1] }' "$work/rpmlint.out" | sort -u); do
    justified rpmlint "$tag" || fail "rpmlint warning $tag is not justified in packaging/README.md"
done
ok "rpmlint: $(grep -o '[0-9]* errors, [0-9]* warnings' "$work/rpmlint.out")"
# For the record: upstream's generic defaults, whose only extra errors may be
# the five tags packaging/rpmlint.toml filters (see packaging/README.md).
rpmlint "$rpmf" >"$work/rpmlint.raw" 2>&1 || true
say "rpmlint with upstream defaults: $(grep -o '[0-9]* errors, [0-9]* warnings' "$work/rpmlint.raw")"
for tag in $(awk -F': ' '/ E: / { split($3, a, " "); print a[1] }' "$work/rpmlint.raw" | sort -u); do
    case "$tag" in
        no-group-tag | no-packager-tag | no-signature | no-changelogname-tag | no-buildhost-tag) ;;
        *) fail "rpmlint (upstream defaults) reports error $tag" ;;
    esac
done

# --- the example configurations are valid -----------------------------------------
"$bin" check-config packaging/config.toml >/dev/null || fail "packaging/config.toml does not pass check-config"
grep -v '^\s*#' packaging/config.toml | grep -q '[^[:space:]]' && fail "packaging/config.toml must be all comments"
ok "the example config is all comments and passes check-config"
# The one-ENI configurations (README, cloud-init).
/usr/bin/python3 - packaging/cloud-init/daemon-with-config.yaml "$work/cloud-init.toml" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
[f] = [f for f in doc["write_files"] if f["path"] == "/etc/eni-agent/config.toml"]
open(sys.argv[2], "w").write(f["content"])
PY
awk '/<!-- packaging\/ci.sh: minimal config -->/ { f = 1; next }
    f && /^[ \t]*```toml/ { p = 1; next }
    p && /^[ \t]*```/ { exit }
    p { sub(/^[ \t]+/, ""); print }' README.md >"$work/readme.toml"
grep -q '^\[\[eni\]\]' "$work/readme.toml" || fail "README's minimal config (after its marker) has no [[eni]]"
for c in "$work/cloud-init.toml" "$work/readme.toml"; do
    "$bin" check-config "$c" >/dev/null || fail "a one-ENI example config does not pass check-config: $(cat "$c")"
done
ok "the one-ENI configs (README, cloud-init) pass check-config"

# --- install, upgrade, remove, purge of the .deb, in a throw-away root ---------
# An overlay over / in a private mount namespace (packaging/throwaway-root.sh):
# dpkg runs for real, with the host's dpkg database and maintainer-script
# tools, but nothing reaches the host.
say "install test of $deb in a throw-away root"
cargo deb --locked --no-build -p eni-agent --target "$TRIPLE" --deb-revision 2 -o "$work/" >/dev/null
deb2=$(ls "$work"/eni-agent_*-2_amd64.deb)
host_view() {
    ls -ld /etc/eni-agent /var/lib/eni-agent /usr/bin/eni-agent /usr/lib/systemd/system/eni-agent.service \
        /etc/systemd/system/multi-user.target.wants/eni-agent.service 2>/dev/null || true
    dpkg-query -W -f '${Status} ${Version}\n' eni-agent 2>/dev/null || true
}
host_before=$(host_view)
packaging/throwaway-root.sh packaging/install-test.sh "$deb" "$deb2" || fail "the install test (above)"
[ "$(host_view)" = "$host_before" ] || fail "the install test reached the host: before: $host_before; after: $(host_view)"
ok "install, upgrade, remove, purge in a throw-away root; the host untouched"

say "all $checks checks green"
