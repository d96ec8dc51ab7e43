#!/usr/bin/env bash
# demo.sh - the README's first command: install dependencies, build, list the Vulkan devices,
# run the compute smoke test, then generate text with the demo model the build creates
# (build/demo-tiny.gguf: DeepSeek-V3-shaped, 3 layers, random weights - so the text is noise,
# but every stage of the engine runs: tokenizer, MLA attention, routed experts, sampling).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"
build/vkmoe devices
build/vkmoe devices --test
build/vkmoe run -m build/demo-tiny.gguf -p "Hello world, the quick brown fox" -n 48 --seed 1
echo
