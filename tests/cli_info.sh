#!/usr/bin/env bash
# cli_info.sh - `vkmoe info`: output on a fixture, exit codes 0/1/2 and their messages.
# usage: cli_info.sh VKMOE_BINARY FIXTURES_DIR
set -u
VKMOE=$1
FIX=$2
pass=0
fail=0
TMP=$(mktemp -d /tmp/vkmoe-cli-info-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# expect NAME WANT_RC PATTERN -- COMMAND...   (PATTERN is grepped in stdout+stderr; "" = none)
expect() {
    local name=$1 want=$2 pattern=$3
    shift 4
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want" ]; then
        echo "FAIL: $name: exit $rc, expected $want"
        echo "$out" | head -20
        fail=$((fail + 1))
    elif [ -n "$pattern" ] && ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL: $name: output lacks /$pattern/"
        echo "$out" | head -20
        fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}

TINY=$FIX/tiny-v3-f32.gguf
expect "info tiny" 0 "deepseek2" -- "$VKMOE" info -m "$TINY"
expect "tensor count" 0 "tensors: 52 " -- "$VKMOE" info -m "$TINY"
expect "kv count" 0 "metadata: 41 keys" -- "$VKMOE" info -m "$TINY"
expect "array rendering" 0 "tokenizer.ggml.tokens +ARRAY +\[STRING x 268\]" -- "$VKMOE" info -m "$TINY"
expect "--tensors" 0 "token_embd.weight +F32 +\{64, 268\}" -- "$VKMOE" info -m "$TINY" --tensors
expect "quant summary" 0 "Q6_K" -- "$VKMOE" info --model "$FIX/small-v3-q4_k_m.gguf"
expect "vocab only" 0 "tensors: 0 " -- "$VKMOE" info -m "$FIX/vocab/ggml-vocab-deepseek-llm.gguf"
expect "--help" 0 "usage: vkmoe info" -- "$VKMOE" info --help
expect "no -m" 2 "usage:" -- "$VKMOE" info
expect "-m without file" 2 "usage:" -- "$VKMOE" info -m
expect "unknown flag" 2 "usage:" -- "$VKMOE" info -m "$TINY" --bogus
expect "extra argument" 2 "usage:" -- "$VKMOE" info -m "$TINY" extra
expect "missing file" 1 "^vkmoe: .*nonexistent.gguf" -- "$VKMOE" info -m "$TMP/nonexistent.gguf"
head -c 100000 "$TINY" >"$TMP/trunc.gguf"
expect "truncated file" 1 "^vkmoe: .*trunc.gguf.*truncated" -- "$VKMOE" info -m "$TMP/trunc.gguf"
printf 'not a gguf file at all, really not' >"$TMP/junk.gguf"
expect "not gguf" 1 "magic" -- "$VKMOE" info -m "$TMP/junk.gguf"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
