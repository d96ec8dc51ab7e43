#!/usr/bin/env bash
# test.sh - the README's second command: install dependencies, build with -Werror, run the whole
# ctest suite on the first Vulkan device (lavapipe on machines without a GPU) with validation
# layers, then build with ASan+UBSan and run the whole suite again (leaks of the C++ Vulkan layer
# and driver are suppressed by tests/lsan.supp), then fuzz the file loaders for 60 s with clang.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
jobs=$(nproc)

cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVKMOE_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build -j "$jobs" --output-on-failure

echo "== sanitizers (ASan + UBSan): the whole suite"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DVKMOE_SANITIZE=ON >/dev/null
cmake --build build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j "$jobs" --output-on-failure

echo "== fuzzing: GGUF reader, model loader, tokenizer loader (60 s)"
if command -v clang >/dev/null; then
  tools/fuzz.sh 60
else
  echo "clang not found: skipping the fuzz run"
fi
