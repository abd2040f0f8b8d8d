#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian packages Portolan needs to build, test and run
# (chromium and chromium-driver: the web console's browser tests; lintian,
# help2man and zsh: the packages' checks, man pages and zsh completion test;
# prometheus: promtool, which checks the alert rules and the metrics).
# prometheus's own daemon is not used (a machine with systemd will start it:
# `systemctl disable --now prometheus` if unwanted).
# Idempotent: installs only what is missing, running `apt-get update` once
# and only when something is missing.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git curl python3
  protobuf-compiler libprotobuf-dev
  libcpprest-dev libboost-dev libboost-system-dev libboost-program-options-dev
  libhwloc-dev hwloc libsystemd-dev
  libspdlog-dev libfmt-dev
  libabsl-dev libyaml-cpp-dev libsqlite3-dev libssl-dev
  libgtest-dev libgmock-dev
  openssl clang libclang-rt-14-dev lld ccache
  lintian help2man zsh prometheus devscripts
  etcd-server etcd-client libgrpc++-dev protobuf-compiler-grpc
  chromium chromium-driver fonts-dejavu-core
)
# The web console is built with node and npm (scheduler/console/web); a
# machine that already has them (say, from NodeSource) keeps its own.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  PACKAGES+=(nodejs npm)
fi

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

# etcd's own API protos (rpc.proto, kv.proto, auth.proto) for the etcd store's
# gRPC client. Debian ships them only inside golang-etcd-server-dev, whose
# dependencies are 140 Go source packages (430 MB); so the one .deb is fetched
# from Debian's archive and just these three files are taken out of it, into
# ETCD_PROTO_DIR (CMake reads the same default).
ETCD_PROTO_DIR="${ETCD_PROTO_DIR:-/usr/local/share/portolan/etcd-proto}"
ETCD_PROTOS=(etcd/etcdserver/etcdserverpb/rpc.proto etcd/mvcc/mvccpb/kv.proto etcd/auth/authpb/auth.proto)

etcd_protos_present() {
  for f in "${ETCD_PROTOS[@]}"; do [ -f "$ETCD_PROTO_DIR/$f" ] || return 1; done
}

install_etcd_protos() {
  etcd_protos_present && return 0
  local tmp
  tmp="$(mktemp -d)"
  echo "install-deps: taking etcd's API protos out of golang-etcd-server-dev into $ETCD_PROTO_DIR"
  if ! (cd "$tmp" && apt-get download -qq golang-etcd-server-dev >/dev/null 2>&1); then
    $SUDO apt-get update -qq
    (cd "$tmp" && apt-get download -qq golang-etcd-server-dev)
  fi
  dpkg-deb -x "$tmp"/golang-etcd-server-dev_*.deb "$tmp/x"
  for f in "${ETCD_PROTOS[@]}"; do
    $SUDO install -D -m 0644 "$tmp/x/usr/share/gocode/src/go.etcd.io/$f" "$ETCD_PROTO_DIR/$f"
  done
  rm -rf "$tmp"
}

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

if [ ${#missing[@]} -eq 0 ]; then
  install_etcd_protos
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ] && [ -z "$SUDO" ]; then
  echo "install-deps: missing ${missing[*]} and not root (no sudo)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
install_etcd_protos
