#!/usr/bin/env bash
# Installs the Debian packages Portolan needs to build, test and run.
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
  openssl clang libclang-rt-14-dev
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: missing ${missing[*]} and not root (no sudo)" >&2
    exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
