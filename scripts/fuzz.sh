#!/usr/bin/env bash
# Builds the libFuzzer targets with clang and fuzzes each for N seconds (default 60),
# starting from its seed corpus in fuzz/corpus/<target>/. New inputs go to a scratch
# directory, not into git. A crash fails the script and leaves the input in build/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
cmake --preset fuzz >/dev/null
cmake --build build/fuzz -j "$(nproc)"
for bin in build/fuzz/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin")
  short=${name#fuzz_}
  scratch=$(mktemp -d)
  echo "-- $name ($secs s)"
  (cd build/fuzz && "../../$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
     -print_final_stats=1 "$scratch" "../../fuzz/corpus/$short" 2>&1 | grep -E "stat::number_of_executed_units|ERROR|SUMMARY" || true)
  rm -rf "$scratch"
  # any artifact of the three kinds (a glob that matches nothing stays literal: test each)
  found=$(find build/fuzz -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) -print)
  if [ -n "$found" ]; then
    echo "fuzz: $name found a failing input:"; echo "$found"
    exit 1
  fi
done
