#!/bin/bash
# cli_bench_cpu.sh - `vkmoe bench --micro --cpu --quick`: the CPU expert kernels' GEMV table and
# its JSON (cpu_micro: read bandwidth, one entry per type and shape), no device needed; and the
# usage errors of --cpu. Usage: bash cli_bench_cpu.sh <vkmoe> <fixtures-dir>.
vkmoe="$1"
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh" # pass, fail, check, expect, cli_done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out="$dir/out"
res="$dir/cpu.json"

"$vkmoe" bench --micro --cpu --quick --quiet --json "$res" >"$out" 2>&1
rc=$?
check "bench --micro --cpu --quick exits 0 (got $rc: $(tail -3 "$out"))" test $rc -eq 0
check "bench --micro --cpu prints the read bandwidth" grep -q "^memory read: .* GB/s" "$out"
check "bench --micro --cpu prints Q4_K rows" grep -q "^| Q4_K | v3 ffn_down_exps | 2048x7168 |" "$out"
if command -v python3 >/dev/null; then
    check "cpu_micro JSON schema" python3 - "$res" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert "device" not in d and d["build"]["version"]
c = d["cpu_micro"]
assert c["read_gbps"] > 0 and c["threads"] >= 1 and c["isa"] in ("portable", "avx2", "avx512"), c
g = c["gemv"]
assert len(g) == 6 and {e["type"] for e in g} == {"Q8_0", "Q6_K", "Q4_K"}, g
for e in g:
    assert e["gbps"] > 0 and e["seconds"] > 0 and e["k"] * e["m"] == 7168 * 2048, e
PY
fi
"$vkmoe" bench --micro --cpu --quick --quiet --cpu-isa portable --cpu-threads 1 >"$out" 2>&1
check "bench --micro --cpu --cpu-isa portable --cpu-threads 1 (got: $(tail -3 "$out"))" \
    grep -q "^CPU: .*, 1 threads, kernels portable" "$out"
expect "--cpu-isa refuses a bad name" 2 "--cpu-isa needs" -- "$vkmoe" bench --micro --cpu --cpu-isa sse9
expect "--cpu-isa needs --cpu" 2 "--cpu-isa goes with" -- "$vkmoe" bench --micro --cpu-isa avx2
expect "--cpu needs --micro" 2 "--cpu goes with --micro" -- "$vkmoe" bench --cpu -m x.gguf
expect "--cpu refuses -m" 2 "no -m" -- "$vkmoe" bench --micro --cpu -m x.gguf
cli_done
