#!/usr/bin/env bash
# Installs what is missing, builds and runs every test: the CI command (.ci/run calls it).
#
#   scripts/test.sh            everything: CI build (warnings are errors) + all tests,
#                              ASan+UBSan build + all tests, fuzz smoke runs
#   scripts/test.sh --quick    the CI build and its tests only
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1

# Each stage prints its duration when it ends, and the summary at the end (or at the failure)
# lists them all, so a slow stage (CI must stay under 30 minutes) is plain to see.
stage_name="" stage_start=$SECONDS
timings=()
stage() { # stage "NAME": ends the running stage (printing its time), starts the next
  if [ -n "$stage_name" ]; then
    timings+=("$(printf '%5ds  %s' $((SECONDS - stage_start)) "$stage_name")")
    echo "== $stage_name: $((SECONDS - stage_start)) s"
  fi
  stage_name=$1 stage_start=$SECONDS
  [ -z "$stage_name" ] || echo "== $stage_name"
}
summary() {
  local rc=$?
  [ -z "$stage_name" ] || stage ""
  echo "== stage durations (total ${SECONDS} s)$([ "$rc" = 0 ] || echo ", FAILED with status $rc"):"
  printf '%s\n' "${timings[@]}"
}
trap summary EXIT

stage "setup (Debian packages)"
scripts/setup.sh --bench # the peers too: tests/system/test_bench_smoke.sh runs the benchmark harness
jobs=$(nproc)

stage "build (ci preset: warnings are errors)"
cmake --preset ci >/dev/null
cmake --build build/ci -j "$jobs"
stage "tests (ci)"
ctest --test-dir build/ci --output-on-failure -j "$jobs" --timeout 900

[ "$quick" = 1 ] && exit 0

stage "build (asan preset: AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake --preset asan >/dev/null
cmake --build build/asan -j "$jobs"
stage "tests (asan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs" --timeout 1200

stage "fuzz (libFuzzer, a short run per target over its corpus)"
# a budget for the whole stage (CI must stay under 30 minutes), shared by the targets:
# 10 to 20 s each; MESH_FUZZ_SECONDS sets the time per target instead
ntargets=$(ls fuzz/fuzz_*.c | wc -l)
per=$(( ${MESH_FUZZ_BUDGET:-300} / ntargets ))
[ "$per" -lt 10 ] && per=10
[ "$per" -gt 20 ] && per=20
scripts/fuzz.sh "${MESH_FUZZ_SECONDS:-$per}"
stage ""
echo "== all tests passed"
