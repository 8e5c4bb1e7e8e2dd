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

scripts/setup.sh --bench # the peers too: tests/system/test_bench_smoke.sh runs the benchmark harness
jobs=$(nproc)

echo "== build (ci preset: warnings are errors)"
cmake --preset ci >/dev/null
cmake --build build/ci -j "$jobs"
echo "== tests (ci)"
ctest --test-dir build/ci --output-on-failure -j "$jobs" --timeout 900

[ "$quick" = 1 ] && exit 0

echo "== build (asan preset: AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake --preset asan >/dev/null
cmake --build build/asan -j "$jobs"
echo "== tests (asan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build/asan --output-on-failure -j "$jobs" --timeout 1200

echo "== fuzz (libFuzzer, a short run per target over its corpus)"
scripts/fuzz.sh "${MESH_FUZZ_SECONDS:-20}"
echo "== all tests passed"
