#!/usr/bin/env bash
# test.sh - the README's second command: install dependencies, build with -Werror, run the whole
# ctest suite on the first Vulkan device (lavapipe on machines without a GPU) with validation
# layers, then build the CPU-side code with ASan+UBSan and run the CPU and CLI tests again.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKMOE_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build -j "$jobs" --output-on-failure

echo "== sanitizers (ASan + UBSan): CPU-side tests"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVKMOE_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j "$jobs" -L cpu --output-on-failure
