#!/usr/bin/env bash
# demo.sh - the README's first command: install dependencies, build, and run the main job on the
# built-in default. For now: list the Vulkan devices and run the compute smoke test on the default one.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
build/vkmoe devices
build/vkmoe devices --test
