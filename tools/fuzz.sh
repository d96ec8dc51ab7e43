#!/usr/bin/env bash
# fuzz.sh [SECONDS] - builds the libFuzzer target tests/fuzz/fuzz_gguf.c with clang (ASan+UBSan)
# and fuzzes the GGUF reader, model loader and tokenizer loader for SECONDS (default 60).
#
# Environment (all optional):
#   FUZZ_BUILD  build directory                       (default build-fuzz)
#   FUZZ_DIR    work directory: corpus/ + artifacts/  (default $FUZZ_BUILD/fuzz-run)
#   FUZZ_JOBS   parallel fuzzing processes (-fork=N)  (default 1)
#   VKMOE_FIXTURES_DIR  extra seeds (default ../shared/fixtures, used if present)
# The corpus starts as tests/fuzz/corpus + tests/fuzz/regress + the fixtures' GGUFs (cut to
# -max_len) and grows across runs in FUZZ_DIR; the repository is never written.
# Exits non-zero when the fuzzer finds a crash, leak, timeout or out-of-memory and prints where
# the input was saved. Each one becomes a regression test: copy the file to tests/fuzz/regress/
# (ctest fuzz_gguf_regress runs it in every build).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
build=${FUZZ_BUILD:-build-fuzz}
dir=${FUZZ_DIR:-$build/fuzz-run}
fixtures=${VKMOE_FIXTURES_DIR:-../shared/fixtures}

gen=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then gen=(-G Ninja); fi
# Only vkmoe_core and the fuzz target are built, so -Werror is left to the gcc builds.
cmake -S . -B "$build" "${gen[@]}" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DVKMOE_FUZZ=ON -DVKMOE_WERROR=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target fuzz_gguf >/dev/null

mkdir -p "$dir/corpus" "$dir/artifacts"
cp -n tests/fuzz/corpus/* tests/fuzz/regress/* "$dir/corpus/" 2>/dev/null || true
if [ -d "$fixtures" ]; then
  find "$fixtures" -name '*.gguf' -exec cp -n {} "$dir/corpus/" \;
fi

fork=()
if [ "${FUZZ_JOBS:-1}" -gt 1 ]; then fork=(-fork="$FUZZ_JOBS" -ignore_crashes=0); fi
echo "fuzz.sh: fuzzing for ${secs}s, corpus $dir/corpus"
set +e
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ASAN_OPTIONS=detect_leaks=1 \
  "$build/tests/fuzz/fuzz_gguf" -max_total_time="$secs" -max_len=65536 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -close_fd_mask=2 "${fork[@]}" \
  -artifact_prefix="$dir/artifacts/" "$dir/corpus"
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  echo "fuzz.sh: FAILED (exit $rc). Saved inputs:" >&2
  ls -l "$dir/artifacts/" >&2
  echo "fuzz.sh: reproduce with: $build/tests/fuzz/fuzz_gguf FILE (or fuzz_gguf_regress FILE in" \
    "any build); then copy FILE to tests/fuzz/regress/" >&2
  exit 1
fi
echo "fuzz.sh: no crash in ${secs}s"
