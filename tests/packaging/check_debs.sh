#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the three .deb packages with CPack from BUILD_DIR, unpacks them into
# a scratch root (dpkg -x, no installation on this machine) and checks the
# layout, the control data, the units and the configuration; then runs the
# unpacked scheduler, agent and CLI together on loopback (mutual TLS, the
# shipped config files with paths redirected by flags) until a job succeeds.
#
#   tests/packaging/check_debs.sh build
set -euo pipefail
BUILD="$(cd "${1:?usage: check_debs.sh BUILD_DIR}" && pwd)"
SRC="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="$(mktemp -d /tmp/portolan-debs.XXXXXX)"
chmod 755 "$WORK"  # jobs run as nobody and must reach the agent state directory
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "check_debs: FAIL: $*" >&2; exit 1; }

(cd "$BUILD" && cpack -G DEB -B "$WORK/out" >"$WORK/cpack.log" 2>&1) || { cat "$WORK/cpack.log"; fail "cpack"; }
ROOT="$WORK/root"
mkdir -p "$ROOT"
for pkg in portolan-scheduler portolan-agent portolan-cli; do
  deb=$(ls "$WORK"/out/${pkg}_*_amd64.deb 2>/dev/null | head -1)
  [ -n "$deb" ] || fail "no $pkg package"
  [ "$(dpkg-deb -f "$deb" Package)" = "$pkg" ] || fail "$deb: wrong Package field"
  dpkg-deb -f "$deb" Depends | grep -q libprotobuf || fail "$pkg: Depends lacks the shared libraries"
  dpkg-deb -x "$deb" "$ROOT"
  dpkg-deb -e "$deb" "$WORK/control-$pkg"
  if [ -f "$WORK/control-$pkg/conffiles" ]; then
    while read -r f; do [ -f "$ROOT$f" ] || fail "$pkg: conffile $f not in the package"; done <"$WORK/control-$pkg/conffiles"
  fi
  echo "check_debs: $pkg $(dpkg-deb -f "$deb" Version), $(du -k "$deb" | cut -f1) KiB"
done
grep -qx /etc/portolan/scheduler.yaml "$WORK/control-portolan-scheduler/conffiles" || fail "scheduler.yaml is not a conffile"
grep -q adduser "$WORK/control-portolan-scheduler/postinst" || fail "postinst does not create the user"

for f in /usr/bin/portolan-scheduler /usr/bin/portolan-agent /usr/bin/portolan \
         /lib/systemd/system/portolan-scheduler.service /lib/systemd/system/portolan-agent.service \
         /etc/portolan/scheduler.yaml /etc/portolan/agent.yaml /etc/portolan/policy.yaml \
         /etc/default/portolan-scheduler /etc/default/portolan-agent \
         /usr/share/doc/portolan-scheduler/operations.md /usr/share/portolan/dev-ca.sh \
         /usr/share/bash-completion/completions/portolan; do
  [ -e "$ROOT$f" ] || fail "missing $f"
done
# Debian metadata, man pages and completions.
for pkg in portolan-scheduler portolan-agent portolan-cli; do
  for f in copyright changelog.gz; do
    [ -f "$ROOT/usr/share/doc/$pkg/$f" ] || fail "$pkg: no /usr/share/doc/$pkg/$f"
  done
  grep -q "^License: Apache-2.0" "$ROOT/usr/share/doc/$pkg/copyright" || fail "$pkg: copyright names no Apache-2.0"
  zcat "$ROOT/usr/share/doc/$pkg/changelog.gz" | head -1 |
    grep -q "^portolan ($(dpkg-deb -f "$WORK"/out/${pkg}_*_amd64.deb Version))" ||
    fail "$pkg: the changelog's first entry is not this version"
done
[ -f "$ROOT/usr/share/zsh/vendor-completions/_portolan" ] || fail "no zsh completion"
# Each man page renders without groff warnings and documents what its binary
# offers: every --flag of a daemon's --help, every command of the CLI.
man_text() { LC_ALL=C.UTF-8 MANWIDTH=200 man --warnings -l "$1" 2>"$WORK/man.err"; }
for entry in "portolan-scheduler:man8/portolan-scheduler.8.gz" "portolan-agent:man8/portolan-agent.8.gz" \
             "portolan:man1/portolan.1.gz"; do
  bin=${entry%%:*}
  page="$ROOT/usr/share/man/${entry#*:}"
  [ -f "$page" ] || fail "no man page $page"
  text=$(man_text "$page")
  [ -s "$WORK/man.err" ] && { cat "$WORK/man.err"; fail "$page: groff warnings"; }
  if [ "$bin" = portolan ]; then
    words=$("$ROOT/usr/bin/portolan" --help | sed -n 's/^  \([a-z]\+\) .*/\1/p' | sort -u)
  else
    words=$("$ROOT/usr/bin/$bin" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u)
  fi
  n=0
  for w in $words; do
    grep -qF -- "$w" <<<"$text" || fail "$page does not mention $w"
    n=$((n + 1))
  done
  echo "check_debs: $(basename "$page"): the $n options/commands of $bin --help all documented"
done
# lintian, as Debian checks packages: no errors and no warnings (intended
# exceptions are overrides in the package, each with its reason).
if command -v lintian >/dev/null; then
  rc=0
  lintian --tag-display-limit 0 --fail-on error,warning "$WORK"/out/*.deb >"$WORK/lintian.log" 2>&1 || rc=$?
  grep -v "root privileges" "$WORK/lintian.log" || true
  [ "$rc" -eq 0 ] || fail "lintian found errors or warnings (above)"
  echo "check_debs: lintian: no errors, no warnings"
else
  fail "lintian is not installed (deploy/install-deps.sh installs it)"
fi

# The hardening Debian builds with (CMakeLists.txt, PORTOLAN_HARDENING):
# PIE, stack protector, _FORTIFY_SOURCE, full RELRO on every packaged binary
# (hardening-check, from devscripts). hardening-check finds the stack
# protector and fortified calls through dynamic symbols, which the static,
# stripped portolan-job-init has none of: it is checked for PIE, RELRO and
# BIND_NOW only (it is compiled with the same flags).
if command -v hardening-check >/dev/null; then
  for bin in usr/bin/portolan-scheduler usr/bin/portolan-agent usr/bin/portolan \
             usr/lib/portolan/portolan-job-init; do
    skip=""
    if [ "${bin##*/}" = portolan-job-init ]; then
      skip="--nofortify --nostackprotector"
    fi
    # Control-flow protection (CET) is compiled in where the compiler has it
    # but not required: hardening-check cannot see it through every library.
    hardening-check --nocfprotection $skip "$ROOT/$bin" >"$WORK/hardening.log" 2>&1 \
      || { cat "$WORK/hardening.log"; fail "$bin lacks hardening (above)"; }
  done
  echo "check_debs: hardening-check: PIE, stack protector, fortify, RELRO and BIND_NOW on every binary"
else
  fail "hardening-check is not installed (deploy/install-deps.sh installs devscripts)"
fi

for unit in portolan-scheduler portolan-agent; do
  u="$ROOT/lib/systemd/system/$unit.service"
  for line in "Type=notify" "WatchdogSec=" "NoNewPrivileges=yes" "ProtectSystem=" \
              "EnvironmentFile=-/etc/default/$unit" "--config /etc/portolan/"; do
    grep -q -- "$line" "$u" || fail "$unit.service lacks '$line'"
  done
done
grep -q "StateDirectory=portolan" "$ROOT/lib/systemd/system/portolan-scheduler.service" || fail "no StateDirectory"
if command -v systemd-analyze >/dev/null; then
  # Syntax only: the binaries are not installed at /usr/bin here.
  systemd-analyze verify "$ROOT/lib/systemd/system/portolan-scheduler.service" 2>&1 |
    grep -v "is not executable\|No such file\|Command /usr/bin" | grep -i "unknown\|invalid" &&
    fail "systemd-analyze found problems"
fi
"$ROOT/usr/bin/portolan-scheduler" --version | grep -q "portolan-scheduler" || fail "scheduler --version"
"$ROOT/usr/bin/portolan-agent" --version | grep -q "portolan-agent" || fail "agent --version"
"$ROOT/usr/bin/portolan" --help >/dev/null || fail "portolan --help"
# The shipped configs parse (--help exits after reading --config).
"$ROOT/usr/bin/portolan-scheduler" --config "$ROOT/etc/portolan/scheduler.yaml" --help >/dev/null ||
  fail "scheduler.yaml does not load"
"$ROOT/usr/bin/portolan-agent" --config "$ROOT/etc/portolan/agent.yaml" --help >/dev/null ||
  fail "agent.yaml does not load"

# Run the unpacked daemons: the shipped configs, with paths and addresses
# redirected to the scratch directory by flags (flags win over the file).
PKI="$WORK/pki"
bash "$ROOT/usr/share/portolan/dev-ca.sh" "$PKI" init >/dev/null
bash "$ROOT/usr/share/portolan/dev-ca.sh" "$PKI" scheduler >/dev/null
bash "$ROOT/usr/share/portolan/dev-ca.sh" "$PKI" agent pkg-agent lingang-idc-1 >/dev/null
TOKEN="ptk_packaging_check_$$"
printf 'tokens:\n  - {name: pkg-admin, role: admin, sha256: %s}\n' \
  "$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$WORK/tokens.yaml"
chmod 600 "$WORK/tokens.yaml"
"$ROOT/usr/bin/portolan-scheduler" --config "$ROOT/etc/portolan/scheduler.yaml" \
  --rest-addr 127.0.0.1:0 --rpc-addr 127.0.0.1:0 --state-dir "$WORK/state" \
  --policy "$ROOT/etc/portolan/policy.yaml" --tokens "$WORK/tokens.yaml" \
  --tls-cert "$PKI/scheduler.pem" --tls-key "$PKI/scheduler.key" --tls-ca "$PKI/ca.pem" \
  --https-cert "$PKI/scheduler.pem" --https-key "$PKI/scheduler.key" \
  --ports-file "$WORK/ports.json" >"$WORK/scheduler.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do [ -f "$WORK/ports.json" ] && break; sleep 0.1; done
[ -f "$WORK/ports.json" ] || { cat "$WORK/scheduler.log"; fail "the unpacked scheduler did not start"; }
REST=$(sed 's/.*"rest": \([0-9]*\).*/\1/' "$WORK/ports.json")
RPC=$(sed 's/.*"rpc": \([0-9]*\).*/\1/' "$WORK/ports.json")
"$ROOT/usr/bin/portolan-agent" --config "$ROOT/etc/portolan/agent.yaml" --id pkg-agent \
  --scheduler "127.0.0.1:$RPC" --state-dir "$WORK/agent" \
  --tls-cert "$PKI/agent-pkg-agent.pem" --tls-key "$PKI/agent-pkg-agent.key" --tls-ca "$PKI/ca.pem" \
  --topology-synthetic "pack:1 numa:1(memory=4GiB) core:2 pu:1" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
export PORTOLAN_SERVER="https://127.0.0.1:$REST" PORTOLAN_CA="$PKI/ca.pem" PORTOLAN_TOKEN="$TOKEN"
for _ in $(seq 1 100); do
  "$ROOT/usr/bin/portolan" -o json agents 2>/dev/null | grep -q '"connected": true' && break
  sleep 0.1
done
out=$("$ROOT/usr/bin/portolan" submit --name pkg --tenant acme --cpus 1 --memory-mb 64 --wait -- /bin/echo packaged 2>&1) ||
  { echo "$out"; cat "$WORK/scheduler.log" "$WORK/agent.log"; fail "job through the unpacked binaries"; }
echo "$out" | grep -q succeeded || { echo "$out"; fail "job did not succeed"; }
echo "check_debs: the unpacked scheduler, agent and CLI ran a job over mutual TLS and HTTPS"
echo "check_debs: OK"
