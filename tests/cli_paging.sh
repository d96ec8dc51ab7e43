#!/usr/bin/env bash
# cli_paging.sh - the expert-paging flags of the CLI on the tiny fixture: --prefetch on|off on
# `logits`, `run` and `bench` (usage errors exit 2), logits under a paging budget with prefetch on
# and off equal to the unpaged ones byte for byte, and the exact `--stats` line keys (prefetch
# counters non-zero only with prefetch on), the router guess recorded only with prefetch on
# (--profile), and logits unchanged with VKMOE_STAGING_THREADS=0 and 3. Exits 77 (skipped) without a Vulkan device.
# usage: cli_paging.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir paging
TINY=$FIX/tiny-v3-f32.gguf
IDS=$FIX/prompt.ids

cli_skip_without_device

# ---- usage errors ----
L=("$VKMOE" logits -m "$TINY" --tokens-file "$IDS" -o "$TMP/x.f32")
expect "logits --prefetch bad" 2 "needs on or off" -- "${L[@]}" --prefetch maybe
expect "logits --prefetch no value" 2 "needs on or off" -- "${L[@]}" --prefetch
expect "run --prefetch bad" 2 "needs on or off" -- "$VKMOE" run -m "$TINY" -p hi --prefetch 1
expect "bench --prefetch bad" 2 "needs on or off" -- "$VKMOE" bench -m "$TINY" --prefetch yes
expect "logits --help names --prefetch" 0 "--prefetch on\|off" -- "$VKMOE" logits --help

# ---- logits: paged with prefetch off / on == unpaged ----
STATS='^experts: hits=[0-9]+ misses=[0-9]+ prefetched=[0-9]+ prefetch_used=[0-9]+ uploaded_bytes=[0-9]+ stall_ms=[0-9.]+ cpu_experts=[0-9]+ cpu_bytes=[0-9]+ cpu_ms=[0-9.]+ admitted=[0-9]+$'
ok "logits unpaged" "${L[@]}" --step -o "$TMP/ref.f32"
for pf in off on; do
    rc=0
    "${L[@]}" --step -o "$TMP/$pf.f32" --vram-budget 900K --stats --prefetch "$pf" \
        2>"$TMP/$pf.err" >/dev/null || rc=$?
    ok "logits paged prefetch $pf" test "$rc" -eq 0
    ok "logits prefetch $pf equal to unpaged" cmp -s "$TMP/ref.f32" "$TMP/$pf.f32"
    ok "stats line keys ($pf)" grep -Eq "$STATS" "$TMP/$pf.err"
done
ok "prefetch off: no prefetched units" grep -Eq 'prefetched=0 prefetch_used=0' "$TMP/off.err"
ok "prefetch on: prefetched units" grep -Eq 'prefetched=[1-9]' "$TMP/on.err"

# ---- the next layer's router guess runs only with prefetch on (the profile names it) ----
for pf in off on; do
    "${L[@]}" -o "$TMP/p$pf.f32" --vram-budget 900K --prefetch "$pf" --profile \
        >"$TMP/prof$pf.txt" 2>&1 || true
done
ok "profile names router_guess with prefetch on" grep -q router_guess "$TMP/profon.txt"
ok "no router_guess with prefetch off" test "$(grep -c router_guess "$TMP/profoff.txt")" -eq 0

# ---- staging threads: same logits ----
for n in 0 3; do
    ok "logits with $n staging threads equal to unpaged" env VKMOE_STAGING_THREADS=$n \
        VKMOE_STAGING_PIECE=256 "${L[@]}" --step -o "$TMP/st$n.f32" --vram-budget 900K
    ok "staging threads $n: same bytes" cmp -s "$TMP/ref.f32" "$TMP/st$n.f32"
done
expect "bad VKMOE_STAGING_THREADS" 1 "VKMOE_STAGING_THREADS" -- env VKMOE_STAGING_THREADS=x \
    "${L[@]}" --vram-budget 900K

# ---- run and bench accept it ----
expect "run --prefetch on" 0 "" -- "$VKMOE" run -m "$TINY" -p Hello -n 4 --temp 0 --quiet \
    --vram-budget 900K --prefetch on
expect "bench --prefetch off" 0 "tg2" -- "$VKMOE" bench -m "$TINY" -p 4 -n 2 -r 1 --quiet \
    --vram-budget 900K --prefetch off

cli_done
