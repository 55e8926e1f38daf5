#!/usr/bin/env bash
# The whole test suite: install dependencies, then build and run every test
# twice: optimized (Release) and under AddressSanitizer + UndefinedBehaviorSanitizer.
# Then every file parser is fuzzed for a bounded time (FERN_FUZZ_SECONDS per
# target, default 10).
# Usage: scripts/test.sh [--quick]   (--quick: Release build only)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)

echo "== Release build and tests =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs")

if [ "${1:-}" != "--quick" ]; then
  echo "== bounded fuzzing of every parser (libFuzzer + ASan + UBSan) =="
  FUZZ_BUILD=build-fuzz sh fuzz/run.sh "${FERN_FUZZ_SECONDS:-10}"

  echo "== ASan + UBSan build and tests =="
  cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DFERN_SANITIZE=ON -DFERN_BUILD_BENCH=OFF >/dev/null
  cmake --build build-asan -j"$jobs"
  (cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
     UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")
fi
