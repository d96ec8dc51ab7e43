#!/usr/bin/env bash
# cli_logits.sh - `vkmoe logits`: output size and content on the tiny fixture (batch and --step,
# F32 and F16 cache), exit codes 0/1/2 and their messages.
# usage: cli_logits.sh VKMOE_BINARY FIXTURES_DIR. Exits 77 (skipped) when no Vulkan device exists.
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir logits

cli_skip_without_device

# close A B TOL: two float32 files of equal length differ by at most TOL everywhere
close() {
    paste <(od -An -tf4 -w4 -v "$1") <(od -An -tf4 -w4 -v "$2") |
        awk -v tol="$3" '{ d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d; n++ }
            END { exit !(n > 0 && m <= tol) }'
}

TINY=$FIX/tiny-v3-f32.gguf
IDS=$FIX/prompt.ids
SIZE=$((33 * 268 * 4))

expect "batch" 0 "" -- "$VKMOE" logits -m "$TINY" --tokens-file "$IDS" -o "$TMP/batch.f32" --kv-f32
ok "batch output size" test "$(stat -c %s "$TMP/batch.f32")" -eq $SIZE
ok "batch matches llama.cpp (max abs <= 1e-3)" close "$TMP/batch.f32" "$FIX/tiny-v3-f32.logits.f32" 1e-3
expect "--step" 0 "" -- "$VKMOE" logits -m "$TINY" --tokens-file "$IDS" -o "$TMP/step.f32" --step
ok "step output size" test "$(stat -c %s "$TMP/step.f32")" -eq $SIZE
# F16 cache (default): tiny-v3-f32 differs from llama.cpp's F32-cache logits by 0.0017 at most
ok "step matches llama.cpp (max abs <= 0.01)" close "$TMP/step.f32" "$FIX/tiny-v3-f32.logits.f32" 0.01
expect "--tokens" 0 "" -- "$VKMOE" logits -m "$TINY" --tokens "264 72 101" -o "$TMP/three.f32" \
    --ctx 16 --device 0
ok "--tokens output size" test "$(stat -c %s "$TMP/three.f32")" -eq $((3 * 268 * 4))
# the first three rows of the prompt run equal the three-token run (same tokens, causal)
head -c $((3 * 268 * 4)) "$TMP/step.f32" >"$TMP/step3.f32"
ok "prefix rows agree" close "$TMP/three.f32" "$TMP/step3.f32" 1e-3
expect "--profile" 0 "moe_down" -- "$VKMOE" logits -m "$TINY" --tokens "264 72" -o "$TMP/p.f32" \
    --profile

expect "--help" 0 "usage: vkmoe logits" -- "$VKMOE" logits --help
expect "no -m" 2 "usage:" -- "$VKMOE" logits --tokens "1 2" -o "$TMP/x.f32"
expect "no -o" 2 "usage:" -- "$VKMOE" logits -m "$TINY" --tokens "1 2"
expect "no tokens" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32"
expect "both token sources" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" \
    --tokens "1" --tokens-file "$IDS"
expect "empty tokens" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" --tokens " "
expect "non-numeric token" 2 "bad token id 'abc'" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" \
    --tokens "1 abc"
printf '264 72 x1\n' >"$TMP/bad.ids"
expect "non-numeric in file" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" \
    --tokens-file "$TMP/bad.ids"
expect "bad --ctx" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" --tokens 1 --ctx -1
expect "bad -c" 2 "0 = the model's" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" --tokens 1 -c x
# -c like run's (0 = the model's context), -o - = stdout
expect "-c 0" 0 "" -- "$VKMOE" logits -m "$TINY" --tokens "264 72 101" -o "$TMP/c0.f32" -c 0
ok "-c 0 gives the same logits" cmp -s "$TMP/c0.f32" "$TMP/three.f32"
"$VKMOE" logits -m "$TINY" --tokens "264 72 101" -c 16 -o - >"$TMP/dash.f32" 2>"$TMP/dash.err"
ok "-o - exits 0" test $? -eq 0
ok "-o - writes the logits to stdout" cmp -s "$TMP/dash.f32" "$TMP/three.f32"
ok "-o - creates no file named -" test ! -e ./-
# the bad token is named by its place in the input, with --step too (not "token 0")
expect "--step names the bad token's index" 1 "token 2 = 2000 is outside the vocabulary" -- \
    "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" --tokens "0 100 2000" --step
expect "unknown flag" 2 "usage:" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" --tokens 1 --bogus
expect "token out of range" 1 "^vkmoe: .*outside the vocabulary" -- "$VKMOE" logits -m "$TINY" \
    -o "$TMP/x.f32" --tokens "1 268"
expect "negative token" 1 "outside the vocabulary" -- "$VKMOE" logits -m "$TINY" \
    -o "$TMP/x.f32" --tokens "-1"
expect "context overflow" 1 "exceed the 2-token context" -- "$VKMOE" logits -m "$TINY" \
    -o "$TMP/x.f32" --tokens "1 2 3" --ctx 2
expect "missing model" 1 "^vkmoe: .*nonexistent.gguf" -- "$VKMOE" logits -m "$TMP/nonexistent.gguf" \
    -o "$TMP/x.f32" --tokens 1
expect "missing tokens file" 1 "^vkmoe: .*nope.ids" -- "$VKMOE" logits -m "$TINY" -o "$TMP/x.f32" \
    --tokens-file "$TMP/nope.ids"
expect "unwritable output" 1 "^vkmoe: logits: -o .*: the directory .* does not exist" -- \
    "$VKMOE" logits -m "$TINY" -o "$TMP/no/such/dir/x.f32" --tokens 1

cli_done
