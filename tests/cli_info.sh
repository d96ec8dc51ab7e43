#!/usr/bin/env bash
# cli_info.sh - `vkmoe info`: output on a fixture, exit codes 0/1/2 and their messages.
# usage: cli_info.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir info

TINY=$FIX/tiny-v3-f32.gguf
expect "info tiny" 0 "deepseek2" -- "$VKMOE" info -m "$TINY"
expect "tensor count" 0 "tensors: 52 " -- "$VKMOE" info -m "$TINY"
expect "kv count" 0 "metadata: 41 keys" -- "$VKMOE" info -m "$TINY"
expect "array rendering" 0 "tokenizer.ggml.tokens +ARRAY +\[STRING x 268\]" -- "$VKMOE" info -m "$TINY"
expect "--tensors" 0 "token_embd.weight +F32 +\{64, 268\}" -- "$VKMOE" info -m "$TINY" --tensors
expect "quant summary" 0 "Q6_K" -- "$VKMOE" info --model "$FIX/small-v3-q4_k_m.gguf"
# the IQ fixtures: every type listed by name, none unsupported
for q in iq1_s:IQ1_S iq1_m:IQ1_M iq2_xxs:IQ2_XXS iq2_m:IQ2_S iq2_m:IQ3_S iq2_m:IQ4_NL \
    iq3_xxs:IQ3_XXS iq4_xs:IQ4_XS; do
    f=${q%%:*} t=${q#*:}
    expect "info $f lists $t" 0 "^  $t +[0-9]+ tensors" -- "$VKMOE" info -m "$FIX/iq/small-v3-$f.gguf"
    ok "info $f: no unsupported type" \
        bash -c '! "$0" info -m "$1" | grep -q unsupported' "$VKMOE" "$FIX/iq/small-v3-$f.gguf"
done
expect "vocab only" 0 "tensors: 0 " -- "$VKMOE" info -m "$FIX/vocab/ggml-vocab-deepseek-llm.gguf"
expect "--help" 0 "usage: vkmoe info" -- "$VKMOE" info --help
expect "no -m" 2 "usage:" -- "$VKMOE" info
expect "-m without file" 2 "usage:" -- "$VKMOE" info -m
expect "unknown flag" 2 "usage:" -- "$VKMOE" info -m "$TINY" --bogus
expect "extra argument" 2 "usage:" -- "$VKMOE" info -m "$TINY" extra
expect "missing file" 1 "^vkmoe: .*nonexistent.gguf" -- "$VKMOE" info -m "$TMP/nonexistent.gguf"
head -c 100000 "$TINY" >"$TMP/trunc.gguf"
# tensor data cut short: the metadata is still shown, the truncation is a warning (exit 0)
expect "truncated file" 0 "^vkmoe: warning: .*trunc.gguf.*truncated" -- \
    "$VKMOE" info -m "$TMP/trunc.gguf"
expect "truncated file: metadata shown" 0 "general.architecture +STRING +\"deepseek2\"" -- \
    "$VKMOE" info -m "$TMP/trunc.gguf"
expect "truncated file: missing tensors marked" 0 "missing: past the end" -- \
    "$VKMOE" info -m "$TMP/trunc.gguf" --tensors
expect "truncated file: run refuses it" 1 "truncated" -- \
    "$VKMOE" run -m "$TMP/trunc.gguf" -p hi -n 1
head -c 3000 "$TINY" >"$TMP/trunc-header.gguf"
expect "header cut: an error" 1 "^vkmoe: .*trunc-header.gguf: .*(at byte [0-9]+)" -- \
    "$VKMOE" info -m "$TMP/trunc-header.gguf"
printf 'not a gguf file at all, really not' >"$TMP/junk.gguf"
expect "not gguf" 1 "magic" -- "$VKMOE" info -m "$TMP/junk.gguf"

cli_done
