#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds Portolan into build/ and runs the whole test suite (unit and
# integration tests, which start the real daemons on loopback); then builds
# it again with AddressSanitizer + UndefinedBehaviorSanitizer into
# build-asan/ and runs the suite there too. Installs missing Debian packages
# first. Then builds the libraries that carry locking annotations with clang's
# thread-safety analysis as errors, and the libFuzzer targets with clang, and
# runs each for a short smoke run (tests/fuzz/run.sh). Exits non-zero on any failure,
# sanitizer report or fuzz finding.
#
#   PORTOLAN_SKIP_SANITIZERS=1 tests/run.sh   # the plain build only (no ASan, no fuzz)
#   PORTOLAN_FUZZ_SECONDS=0 tests/run.sh      # skip the fuzz smoke run (default 20 s per target)
#   tests/run.sh -R Lifecycle                  # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
JOBS="${JOBS:-2}"

echo "== build/ (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
cmake --build build -j "$JOBS"
(cd build && ctest --output-on-failure -j "$JOBS" --timeout 300 "$@")

if [ "${PORTOLAN_SKIP_SANITIZERS:-0}" = "1" ]; then
  echo "== sanitizer build skipped (PORTOLAN_SKIP_SANITIZERS=1)"
  exit 0
fi

# -O1 (as ASan's authors advise) and line tables only: the instrumented
# daemons run several times faster than at -O0, so the integration tests'
# timings hold, and the objects link much faster; reports still name file and
# line. Assertions stay on (Debug). No benchmark programs.
echo "== build-asan/ (Debug at -O1, ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DPORTOLAN_SANITIZE=ON \
  "-DCMAKE_CXX_FLAGS_DEBUG=-O1 -g1" -DPORTOLAN_BUILD_BENCH=OFF
cmake --build build-asan -j "$JOBS"
# Full stacks so the leak suppression (third-party hwloc plugins only) can
# match; any other leak, ASan or UBSan report fails the test that hit it.
export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
(cd build-asan && ctest --output-on-failure -j "$JOBS" --timeout 300 "$@")

# The locking annotations, checked: clang's -Wthread-safety (an error in any
# clang build, CMakeLists.txt) over every library that carries them. In
# build-fuzz/, whose clang objects the fuzz smoke run below reuses.
echo "== thread-safety analysis (clang -Wthread-safety -Werror) in build-fuzz/"
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DPORTOLAN_FUZZ=ON >/dev/null
cmake --build build-fuzz -j "$JOBS" --target portolan_agent portolan_scheduler portolan_rpc \
  portolan_rest portolan_policy portolan_placement portolan_metrics portolan_daemon portolan_cli \
  portolan_etcd portolan_ha portolan_store

FUZZ_SECONDS="${PORTOLAN_FUZZ_SECONDS:-20}"
if [ "$FUZZ_SECONDS" -gt 0 ]; then
  echo "== fuzz smoke run: ${FUZZ_SECONDS}s per target (tests/fuzz/run.sh)"
  tests/fuzz/run.sh "$FUZZ_SECONDS"
fi
