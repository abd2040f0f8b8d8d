#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Packs what tests/device/gpu_check.sh needs on a machine that has a GPU but
# none of Portolan's Debian packages (and no network to fetch them): the
# binaries, stripped, and the shared libraries they load from Debian, except
# the C and C++ runtimes (the target's own, newer ones are used). Jobs must
# not inherit the folder's LD_LIBRARY_PATH (gpu_check.sh unsets it for them).
#
#   tests/device/pack.sh [OUT=.device-pack] [BUILD=build]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${1:-$ROOT/.device-pack}"
BUILD="${2:-build}"
rm -rf "$OUT"
mkdir -p "$OUT/bin" "$OUT/lib" "$OUT/tests/bench"
for b in portolan-scheduler portolan-agent portolan portolan-job-init; do
  strip -o "$OUT/bin/$b" "$ROOT/$BUILD/bin/$b"
done
# The end-to-end benchmark's programs, where tests/bench/e2e.sh looks for
# them (run it as `tests/bench/e2e.sh 2000 .device-pack`).
for b in spawn_limit e2e_bench; do
  strip -o "$OUT/tests/bench/$b" "$ROOT/$BUILD/tests/bench/$b"
done
for b in "$OUT"/bin/* "$OUT"/tests/bench/*; do
  ldd "$b" 2>/dev/null | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.* | libm.so.* | libpthread.so.* | libdl.so.* | librt.so.* | ld-linux* | libstdc++.so.* | libgcc_s.so.*) ;;
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
cp "$ROOT/deploy/policy/default.yaml" "$OUT/policy.yaml"
du -sh "$OUT"
