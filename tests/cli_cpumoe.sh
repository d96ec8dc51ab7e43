#!/usr/bin/env bash
# cli_cpumoe.sh - the flags of routed experts on the CPU (--expert-exec, --cpu-moe, --n-cpu-moe,
# --cpu-threads) on the tiny fixture: usage errors (exit 2) for bad values on logits, run and
# bench, the help texts name them, logits with --cpu-moe / --n-cpu-moe 1 / --expert-exec cpu
# under a paging budget (LFU and LRU) within 1e-4 of the resident ones (F32 experts: float
# accumulation only), the --stats line's CPU counters and admissions, and run / bench accepting
# them. Exits 77 without a device.
# usage: cli_cpumoe.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir cpumoe
TINY=$FIX/tiny-v3-f32.gguf
IDS=$FIX/prompt.ids

cli_skip_without_device

# close A B TOL: two float32 files of equal length differ by at most TOL everywhere
close() {
    paste <(od -An -tf4 -w4 -v "$1") <(od -An -tf4 -w4 -v "$2") |
        awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
            END { exit !(n > 0 && m <= tol) }'
}

# ---- usage errors ----
L=("$VKMOE" logits -m "$TINY" --tokens-file "$IDS" -o "$TMP/x.f32")
expect "logits --expert-exec bad" 2 "needs auto, gpu, cpu or upload" -- "${L[@]}" --expert-exec fast
expect "logits --expert-exec no value" 2 "needs auto, gpu, cpu or upload" -- "${L[@]}" --expert-exec
expect "logits --n-cpu-moe -1" 2 "needs a number of MoE layers" -- "${L[@]}" --n-cpu-moe -1
expect "logits --n-cpu-moe x" 2 "needs a number of MoE layers" -- "${L[@]}" --n-cpu-moe x
expect "logits --cpu-threads 300" 2 "needs a number of threads 0..257" -- "${L[@]}" --cpu-threads 300
expect "run --expert-exec bad" 2 "needs auto, gpu, cpu or upload" -- \
    "$VKMOE" run -m "$TINY" -p hi --expert-exec 1
expect "bench --n-cpu-moe bad" 2 "needs a number of MoE layers" -- \
    "$VKMOE" bench -m "$TINY" --n-cpu-moe many
expect "bench --paging --cpu-moe" 2 "--paging takes only" -- "$VKMOE" bench --paging -m "$TINY" --cpu-moe
expect "bench --micro --cpu-moe" 2 "go with -m MODEL" -- "$VKMOE" bench --micro --cpu-moe
for cmd in run chat logits serve; do
    expect "$cmd --help names --cpu-moe" 0 "--n-cpu-moe N" -- "$VKMOE" "$cmd" --help
done

# ---- logits: on the CPU == resident (1e-4) ----
ok "logits resident" "${L[@]}" -o "$TMP/ref.f32"
i=0
for args in "--cpu-moe" "--cpu-moe --cpu-threads 1" "--n-cpu-moe 1" \
    "--vram-budget 900K --expert-exec cpu" "--vram-budget 900K --expert-exec auto --step" \
    "--vram-budget 900K --expert-exec cpu --expert-policy lru"; do
    i=$((i + 1))
    rc=0
    # shellcheck disable=SC2086
    "${L[@]}" -o "$TMP/c$i.f32" $args --stats 2>"$TMP/c$i.err" >/dev/null || rc=$?
    ok "logits $args" test "$rc" -eq 0
    ok "logits $args within 1e-4" close "$TMP/ref.f32" "$TMP/c$i.f32" 1e-4
done
ok "--cpu-moe: experts on the CPU, none uploaded" \
    grep -Eq 'uploaded_bytes=0 .*cpu_experts=[1-9][0-9]* cpu_bytes=[1-9]' "$TMP/c1.err"
ok "--expert-exec cpu: experts on the CPU" grep -Eq 'cpu_experts=[1-9]' "$TMP/c4.err"
ok "--expert-exec cpu: misses admitted into slots" grep -Eq 'admitted=[1-9]' "$TMP/c4.err"

# ---- run and bench accept them ----
expect "run --cpu-moe" 0 "" -- "$VKMOE" run -m "$TINY" -p Hello -n 4 --temp 0 --quiet --cpu-moe \
    --cpu-threads 2
expect "bench --n-cpu-moe 1" 0 "tg2" -- "$VKMOE" bench -m "$TINY" -p 4 -n 2 -r 1 --quiet \
    --n-cpu-moe 1 --expert-exec cpu
cli_done
