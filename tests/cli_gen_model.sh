#!/usr/bin/env bash
# cli_gen_model.sh - `vkmoe gen-model`: writes loadable files (checked with `vkmoe info`), the
# tiny preset reproduces the fixture's metadata, same seed = same bytes, exit codes 0/1/2.
# usage: cli_gen_model.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir gen

G="$VKMOE gen-model"
expect "tiny f32" 0 "wrote .*t32.gguf" -- $G --preset tiny --quant f32 -o "$TMP/t32.gguf"
expect "info on it" 0 "tensors: 52 " -- "$VKMOE" info -m "$TMP/t32.gguf"
# the metadata listing equals the fixture's (everything from "metadata:" to the tensor summary)
meta() { "$VKMOE" info -m "$1" | sed -n '/^metadata:/,/^tensors:/p' | grep -v '^tensors:'; }
ok "tiny metadata equals the fixture's" diff <(meta "$TMP/t32.gguf") <(meta "$FIX/tiny-v3-f32.gguf")
ok "same size as the fixture" test "$(stat -c %s "$TMP/t32.gguf")" = "$(stat -c %s "$FIX/tiny-v3-f32.gguf")"
expect "tiny default q4_k_m" 0 "Q4_K|Q5_0|Q8_0" -- $G --preset tiny --seed 5 -o "$TMP/a.gguf" --quiet
expect "info quantized" 0 "general.file_type +UINT32 +15" -- "$VKMOE" info -m "$TMP/a.gguf"
$G --preset tiny --seed 5 -o "$TMP/b.gguf" --quiet >/dev/null 2>&1
$G --preset tiny --seed 6 -o "$TMP/c.gguf" --quiet >/dev/null 2>&1
ok "same seed, same bytes" cmp -s "$TMP/a.gguf" "$TMP/b.gguf"
ok "other seed, other bytes" bash -c "! cmp -s '$TMP/a.gguf' '$TMP/c.gguf'"
expect "layers and experts" 0 "deepseek2.expert_count +UINT32 +8" -- \
    bash -c "$G --preset tiny --layers 5 --experts 8 --quant q8_0 -o '$TMP/d.gguf' >/dev/null && '$VKMOE' info -m '$TMP/d.gguf'"
expect "grouping dropped note" 0 "grouping dropped" -- $G --preset tiny --experts 6 -o "$TMP/e.gguf"
expect "v3 dry run" 0 "tensors: 60 " -- $G --preset v3 --layers 4 --experts 16 --dry-run
expect "v2-lite lite note" 0 "q_lora" -- $G --preset v3 --layers 27 --dry-run
expect "--help lists presets" 0 "bench-small" -- $G --help
expect "--help lists mixes" 0 "q4_k_m" -- $G --help
expect "--help says byte vocab" 0 "268-token" -- $G --help
# tokenizer.chat_template: the preset's (tiny: none, like the fixture), or --chat-template
expect "v3 writes deepseek3" 0 "chat template deepseek3" -- $G --preset v3 --layers 4 --dry-run
expect "v2-lite writes deepseek2" 0 "chat template deepseek2" -- $G --preset v2-lite --dry-run
ok "tiny has no chat template" bash -c "! '$VKMOE' info -m '$TMP/t32.gguf' | grep -q chat_template"
expect "--chat-template deepseek3 on tiny" 0 "tokenizer.chat_template +STRING" -- \
    bash -c "$G --preset tiny --quant f32 --chat-template deepseek3 -o '$TMP/ct.gguf' >/dev/null && '$VKMOE' info -m '$TMP/ct.gguf'"
expect "--chat-template none" 0 "chat template none" -- $G --preset v3 --layers 4 --chat-template none --dry-run
expect "--chat-template bogus" 2 "deepseek3" -- $G --preset tiny --chat-template chatml -o "$TMP/x.gguf"
# written to FILE.part and renamed at the end: no partial file after a write, none after Ctrl-C
ok "no .part file left" test ! -e "$TMP/t32.gguf.part"
$G --preset bench-small -o "$TMP/big.gguf" --quiet >/dev/null 2>&1 &
pid=$!
for _ in $(seq 200); do [ -e "$TMP/big.gguf.part" ] && break; sleep 0.05; done
kill -INT "$pid"
cli_wait "$pid"
rc=$?
ok "Ctrl-C in gen-model exits 130 (got $rc)" test "$rc" -eq 130
ok "Ctrl-C in gen-model leaves no file" test ! -e "$TMP/big.gguf" -a ! -e "$TMP/big.gguf.part"
expect "top-level help" 0 "gen-model" -- "$VKMOE" --help

expect "no preset" 2 "usage:" -- $G -o "$TMP/x.gguf"
expect "no output" 2 "usage:" -- $G --preset tiny
expect "unknown preset" 2 "unknown preset" -- $G --preset v9 -o "$TMP/x.gguf"
expect "unknown quant" 2 "unknown quant" -- $G --preset tiny --quant q4_k_s -o "$TMP/x.gguf"
expect "layers 0" 2 "usage:" -- $G --preset tiny --layers 0 -o "$TMP/x.gguf"
expect "layers junk" 2 "usage:" -- $G --preset tiny --layers 3x -o "$TMP/x.gguf"
expect "experts 0" 2 "usage:" -- $G --preset tiny --experts 0 -o "$TMP/x.gguf"
expect "experts 513" 2 "usage:" -- $G --preset tiny --experts 513 -o "$TMP/x.gguf"
expect "experts below top-k" 2 "below" -- $G --preset tiny --experts 3 -o "$TMP/x.gguf"
expect "dense > layers" 2 "usage:" -- $G --preset tiny --layers 2 --dense 3 -o "$TMP/x.gguf"
expect "bad seed" 2 "usage:" -- $G --preset tiny --seed -1 -o "$TMP/x.gguf"
expect "unknown flag" 2 "usage:" -- $G --preset tiny --bogus 1 -o "$TMP/x.gguf"
expect "missing value" 2 "usage:" -- $G --preset tiny -o
ok "nothing written on usage errors" test ! -e "$TMP/x.gguf"
expect "unwritable" 1 "^vkmoe: " -- $G --preset tiny -o "$TMP/no/such/dir/x.gguf"

cli_done
