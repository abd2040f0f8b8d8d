#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the libFuzzer targets with clang (ASan + UBSan) into build-fuzz/ and
# runs each for SECONDS (default 60), one after another.
#
#   tests/fuzz/run.sh 600            # ten minutes per target
#   tests/fuzz/run.sh 60 frame       # one target
#
# Each target starts from its seed corpus (tests/fuzz/corpus/NAME, never
# modified) plus what earlier runs found (build-fuzz/corpus/NAME), with the
# dictionary tests/fuzz/NAME.dict when there is one. A crash, leak, timeout
# or sanitizer report leaves the input in build-fuzz/findings/NAME/ and makes
# the script exit 1; copy it to tests/fuzz/regressions/NAME/ with the fix so
# every build replays it (ctest FuzzReplay.NAME).
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-60}"
shift || true
NAMES=("$@")
[ ${#NAMES[@]} -gt 0 ] || NAMES=(frame job_json policy_yaml http)

if ! command -v clang++ >/dev/null; then
  echo "fuzz: clang++ is missing; run deploy/install-deps.sh" >&2
  exit 2
fi
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DPORTOLAN_FUZZ=ON >/dev/null
targets=()
for n in "${NAMES[@]}"; do targets+=("fuzz_$n"); done
cmake --build build-fuzz -j "${JOBS:-2}" --target "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:fast_unwind_on_malloc=0"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
failed=()
for n in "${NAMES[@]}"; do
  corpus="build-fuzz/corpus/$n"
  findings="build-fuzz/findings/$n"
  mkdir -p "$corpus" "$findings"
  dict=()
  [ -f "tests/fuzz/$n.dict" ] && dict=(-dict="tests/fuzz/$n.dict")
  echo "== fuzz_$n for ${SECONDS_EACH}s (corpus $corpus, seeds tests/fuzz/corpus/$n)"
  if build-fuzz/fuzz/fuzz_"$n" "$corpus" "tests/fuzz/corpus/$n" "${dict[@]}" \
      -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
      -artifact_prefix="$findings/" -print_final_stats=1 >"build-fuzz/fuzz_$n.log" 2>&1; then
    grep -E "^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb" \
      "build-fuzz/fuzz_$n.log" | tr '\n' ' '
    echo
    tail -n 1 "build-fuzz/fuzz_$n.log" | grep -E "^Done|DONE" || true
  else
    echo "fuzz_$n: FINDING (see build-fuzz/fuzz_$n.log; input in $findings/)" >&2
    grep -E "ERROR|SUMMARY|==[0-9]+==" "build-fuzz/fuzz_$n.log" | head -n 5 >&2 || true
    failed+=("$n")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings in ${NAMES[*]} (${SECONDS_EACH}s each)"
