#!/usr/bin/env bash
# cli_budget.sh - the default VRAM budget (core/vkmoe.h) on the tiny fixture, on a device made to
# report little memory (VKMOE_DEVICE_MEMORY, uploads with VKMOE_IMPORT=off so that the weights
# count): the weights fit and nothing is paged; they do not fit and the experts are paged
# automatically (the paging line names the budget), with the logits of the unpaged run; even
# paging does not fit and `run` / `logits` exit 1 naming what is needed, -c and --vram-budget;
# the context (-c / --ctx) counts, its KV cache taken from the budget; a budget below 0.01 MiB
# is shown in bytes. Weights used in place
# (the default on lavapipe) take no device memory and are never paged by the default budget.
# Exits 77 (skipped) without a Vulkan device.
# usage: cli_budget.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir budget
TINY=$FIX/tiny-v3-f32.gguf
IDS=$FIX/prompt.ids

cli_skip_without_device

L=("$VKMOE" logits -m "$TINY" --tokens-file "$IDS")
ok "logits, default budget" "${L[@]}" -o "$TMP/ref.f32"

# the tiny fixture: 1.2 MiB of weights (0.5 MiB besides the experts), 33-token batches (0.3 MiB of
# work buffers), a 1024-token context (0.3 MiB of KV cache)
export VKMOE_IMPORT=off
expect "fits: nothing paged" 0 "" -- env VKMOE_DEVICE_MEMORY=64M "${L[@]}" -o "$TMP/fit.f32"
ok "fits: logits unchanged" cmp -s "$TMP/ref.f32" "$TMP/fit.f32"
VKMOE_DEVICE_MEMORY=64M "${L[@]}" -o "$TMP/fit.f32" 2>"$TMP/fit.err"
ok "fits: no paging line" test "$(grep -c 'paging experts' "$TMP/fit.err")" -eq 0

expect "does not fit: paged automatically" 0 \
    "paging experts: [0-9]+ slots .*automatic budget [0-9.]+ MiB \(a 1\.5 MiB device budget" -- \
    env VKMOE_DEVICE_MEMORY=1500K "${L[@]}" -o "$TMP/paged.f32"
ok "paged: logits of the unpaged run" cmp -s "$TMP/ref.f32" "$TMP/paged.f32"

NEED='paging the experts at least [0-9.]+ MiB .* KV cache of a 1024-token context .*work buffers .*margin .*Paging needs [0-9.]+ MiB in all; a smaller context \(-c, --ctx\) .*--vram-budget SIZE \(at least [0-9.]+ MiB\)'
expect "paging cannot fit: logits names the need" 1 "$NEED" -- \
    env VKMOE_DEVICE_MEMORY=900K "${L[@]}" -o "$TMP/x.f32"
expect "paging cannot fit: run names the need" 1 "${NEED/1024/64}" -- \
    env VKMOE_DEVICE_MEMORY=700K "$VKMOE" run -m "$TINY" -p hi -n 1 -c 64
expect "an explicit budget still rules" 0 "paging experts" -- \
    env VKMOE_DEVICE_MEMORY=900K "${L[@]}" -o "$TMP/x.f32" --vram-budget 800K

# the context: 1.8 MiB holds the weights with a 64-token cache, not with a 1024-token one
VKMOE_DEVICE_MEMORY=1800K "${L[@]}" --ctx 64 -o "$TMP/c64.f32" 2>"$TMP/c64.err"
ok "--ctx 64: nothing paged" test "$(grep -c 'paging experts' "$TMP/c64.err")" -eq 0
expect "--ctx 1024: paged" 0 "paging experts" -- \
    env VKMOE_DEVICE_MEMORY=1800K "${L[@]}" --ctx 1024 -o "$TMP/c1k.f32"
# run: batches of up to 512 tokens (4.2 MiB of work buffers; 64 with -c 64); 6 MiB holds it all
# with a 64-token context only
expect "run -c 1024: paged" 0 "paging experts" -- \
    env VKMOE_DEVICE_MEMORY=6M "$VKMOE" run -m "$TINY" -p hi -n 1 -c 1024
expect "run -c 64: not paged" 0 "" -- \
    env VKMOE_DEVICE_MEMORY=6M "$VKMOE" run -m "$TINY" -p hi -n 1 -c 64
VKMOE_DEVICE_MEMORY=6M "$VKMOE" run -m "$TINY" -p hi -n 1 -c 64 >/dev/null 2>"$TMP/r64.err"
ok "run -c 64: no paging line" test "$(grep -c 'paging experts' "$TMP/r64.err")" -eq 0

# in place (the default on lavapipe): the weights take no device memory, nothing is paged
unset VKMOE_IMPORT
if "$VKMOE" devices 2>/dev/null | grep -q 'external-memory-host' &&
    "$VKMOE" devices 2>/dev/null | grep -Eq 'type (cpu|integrated)'; then
    VKMOE_DEVICE_MEMORY=900K "${L[@]}" -o "$TMP/ip.f32" 2>"$TMP/ip.err"
    ok "in place: runs on a small device" cmp -s "$TMP/ref.f32" "$TMP/ip.f32"
    ok "in place: no paging line" test "$(grep -c 'paging experts' "$TMP/ip.err")" -eq 0
fi
# a tiny explicit budget is shown in bytes, not as "0.00 MiB"
expect "--vram-budget 1K shows as bytes" 1 "above the budget of 1024 bytes \(--vram-budget\)" -- \
    "$VKMOE" run -m "$TINY" -p hi -n 1 --vram-budget 1K
expect "VKMOE_DEVICE_MEMORY malformed" 1 "VKMOE_DEVICE_MEMORY=12Q: expected a size" -- \
    env VKMOE_DEVICE_MEMORY=12Q "${L[@]}" -o "$TMP/x.f32"
cli_done
