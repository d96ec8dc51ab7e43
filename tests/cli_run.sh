#!/usr/bin/env bash
# cli_run.sh - `vkmoe run` and `vkmoe chat` on the tiny fixture model: streamed output, same
# seed = same text, -n 0, chat templates (the fixture has the <｜User｜>/<｜Assistant｜> tokens but
# no tokenizer.chat_template key: deepseek3 is inferred from them, said on stderr; a file with the
# key uses it), KV-cache reuse across chat turns
# (a greedy second turn equals a one-shot run of the whole rendered conversation), context
# limits, Ctrl-C (while generating and during a long prompt), and usage errors (exit 2). Exits
# 77 (skipped) without a Vulkan device; if the engine cannot run the model, only the usage
# checks run and the script exits 77 with a message.
# usage: cli_run.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir run
TINY=$FIX/tiny-v3-f32.gguf

cli_skip_without_device

# ---- usage errors (no engine needed) ----
R=("$VKMOE" run -m "$TINY" -p hi)
expect "run --help" 0 "usage: vkmoe run" -- "$VKMOE" run --help
expect "chat --help" 0 "usage: vkmoe chat" -- "$VKMOE" chat --help
expect "run no -m" 2 "usage:" -- "$VKMOE" run -p hi
expect "run no prompt" 2 "usage:" -- "$VKMOE" run -m "$TINY"
expect "run -p and -f" 2 "usage:" -- "$VKMOE" run -m "$TINY" -p hi -f "$TMP/x"
expect "run unknown flag" 2 "unknown option" -- "${R[@]}" --bogus
expect "run extra argument" 2 "unexpected argument" -- "${R[@]}" extra
expect "run -p without text" 2 "usage:" -- "$VKMOE" run -m "$TINY" -p
for bad in "--temp -1" "--temp abc" "--top-p 1.5" "--top-p -0.1" "--min-p 2" "-n -2" "-n x" \
    "-c 16777217" "-c -5" "--top-k -1" "--seed -3" "-s -2" "--seed 1.5" "--repeat-penalty -1" \
    "--device x" "--chat-template chatml" "--temp" "-t 0" "-t x" "-r"; do
    # shellcheck disable=SC2086
    expect "run $bad" 2 "usage:" -- "${R[@]}" $bad
done
expect "run --system without --chat" 2 "need --chat" -- "${R[@]}" --system "be brief"
expect "run -sys without --chat" 2 "need --chat" -- "${R[@]}" -sys "be brief"
expect "run -n too large names the maximum" 2 "-n needs a number of tokens -1\.\.2147483647" -- \
    "${R[@]}" -n 99999999999
expect "run -r empty" 2 "non-empty" -- "${R[@]}" -r ""
expect "run --help: -t" 0 "LP_NUM_THREADS.*GPUs ignore it" -- \
    bash -c '"$1" run --help | tr -d "\n" | tr -s " "' _ "$VKMOE"
expect "run usage lists --prefetch" 2 "usage: .*--prefetch on\|off" -- "$VKMOE" run
expect "chat usage lists --prefetch" 2 "usage: .*--prefetch on\|off" -- "$VKMOE" chat
expect "chat no -m" 2 "usage:" -- "$VKMOE" chat
expect "chat unknown flag" 2 "unknown option" -- "$VKMOE" chat -m "$TINY" --bogus
expect "chat -p and -f" 2 "usage:" -- "$VKMOE" chat -m "$TINY" -p hi -f "$TMP/x"
expect "run missing model" 1 "^vkmoe: .*nonexistent.gguf" -- \
    "$VKMOE" run -m "$TMP/nonexistent.gguf" -p hi
expect "run missing prompt file" 1 "nofile.txt" -- "$VKMOE" run -m "$TINY" -f "$TMP/nofile.txt"

# ---- does the engine run the model at all? ----
if ! "$VKMOE" run -m "$TINY" -p Hello -n 1 --temp 0 --quiet >"$TMP/probe.out" 2>&1; then
    echo "SKIP: the engine cannot run $TINY yet; engine-dependent checks skipped:"
    head -5 "$TMP/probe.out"
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ] && exit 77
    exit 1
fi

# ---- run ----
G=("$VKMOE" run -m "$TINY" --quiet)
"${G[@]}" -p Hello -n 8 --temp 0 >"$TMP/g1.out" 2>"$TMP/g1.err"
ok "run -n 8 --temp 0 exits 0" test $? -eq 0
ok "run prints something" test -s "$TMP/g1.out"
"${G[@]}" -p Hello -n 8 --temp 0 >"$TMP/g2.out" 2>&1
ok "greedy twice is identical" cmp -s "$TMP/g1.out" "$TMP/g2.out"
# Expert paging on run: a budget holding part of the experts gives the same greedy text and
# --stats prints the counters line.
"${G[@]}" -p Hello -n 8 --temp 0 --vram-budget 800K --stats >"$TMP/p1.out" 2>"$TMP/p1.err"
ok "run --vram-budget 800K --stats exits 0" test $? -eq 0
ok "paged greedy text equals the resident one" cmp -s "$TMP/g1.out" "$TMP/p1.out"
ok "run --stats prints the experts line" grep -qE "^experts: hits=[0-9]+ misses=[1-9]" "$TMP/p1.err"
expect "run --expert-policy bad" 2 "^usage:" -- "${G[@]}" -p Hello --expert-policy fifo
expect "run --vram-budget bad" 2 "^usage:" -- "${G[@]}" -p Hello --vram-budget -5
"${G[@]}" -p Hello -n 16 --temp 0.9 --seed 7 >"$TMP/s1.out" 2>&1
"${G[@]}" -p Hello -n 16 --temp 0.9 --seed 7 >"$TMP/s2.out" 2>&1
ok "same seed, same text" cmp -s "$TMP/s1.out" "$TMP/s2.out"
ok "seeded run prints something" test -s "$TMP/s1.out"
"${G[@]}" -p Hello -n 16 --temp 0.9 --seed 8 >/dev/null 2>&1 # may differ: not asserted
ok "--seed 8 exits 0" test $? -eq 0
"${G[@]}" -p Hello -n 0 >"$TMP/n0.out" 2>&1
ok "-n 0 exits 0" test $? -eq 0
ok "-n 0 prints nothing" test ! -s "$TMP/n0.out"
# a longer greedy run starts with the shorter one (streaming is prefix-stable)
"${G[@]}" -p Hello -n 16 --temp 0 >"$TMP/g16.out" 2>&1
ok "-n 16 extends -n 8" cmp -s "$TMP/g1.out" <(head -c "$(wc -c <"$TMP/g1.out")" "$TMP/g16.out")
printf 'Hello' >"$TMP/prompt.txt"
"${G[@]}" -f "$TMP/prompt.txt" -n 8 --temp 0 >"$TMP/f.out" 2>&1
ok "-f gives the same as -p" cmp -s "$TMP/g1.out" "$TMP/f.out"
"${G[@]}" -f - -n 8 --temp 0 <"$TMP/prompt.txt" >"$TMP/fs.out" 2>&1
ok "-f - reads stdin" cmp -s "$TMP/g1.out" "$TMP/fs.out"

# llama.cpp's spellings: -s, --seed -1 (random, printed), -c 0, -r/--stop, --ignore-eos, -t
"${G[@]}" -p Hello -n 16 --temp 0.9 -s 7 >"$TMP/s7.out" 2>&1
ok "-s is --seed" cmp -s "$TMP/s7.out" "$TMP/s1.out"
"$VKMOE" run -m "$TINY" -p Hello -n 16 --temp 0.9 --seed -1 >"$TMP/sr.out" 2>"$TMP/sr.err"
seed=$(sed -n 's/^vkmoe: seed \([0-9]*\) (random.*/\1/p' "$TMP/sr.err")
ok "--seed -1 prints the seed it drew (${seed:-none})" test -n "$seed"
"${G[@]}" -p Hello -n 16 --temp 0.9 --seed "${seed:-0}" >"$TMP/sr2.out" 2>&1
ok "the printed seed repeats the run" cmp -s "$TMP/sr.out" "$TMP/sr2.out"
train=$("$VKMOE" info -m "$TINY" | sed -n 's/.*context_length *UINT32 *\([0-9]*\).*/\1/p')
expect "-c 0 is the model's context ($train)" 0 "context $train," -- \
    "$VKMOE" run -m "$TINY" -p Hello -n 1 -c 0
# greedy "The" ends with EOS after some tokens; --ignore-eos goes on to -n
n_eos=$("$VKMOE" run -m "$TINY" -p The -n 300 --temp 0 2>&1 >/dev/null |
    sed -n 's/.*generate .* \([0-9][0-9]*\) tokens .*/\1/p')
ok "greedy 'The' stops at EOS (${n_eos:-?} of 300 tokens)" test "${n_eos:-300}" -lt 300
expect "--ignore-eos generates -n tokens" 0 "generate .* $((${n_eos:-0} + 10)) tokens" -- \
    "$VKMOE" run -m "$TINY" -p The -n $((${n_eos:-0} + 10)) --temp 0 --ignore-eos
# a stop text taken from the greedy output: generation ends once it has been printed
out16=$(LC_ALL=C cat "$TMP/g16.out")
stop=${out16:6:2}
LC_ALL=C "${G[@]}" -p Hello -n 16 --temp 0 -r "$stop" >"$TMP/r.out" 2>&1
ok "-r stops early ($(wc -c <"$TMP/r.out") of $(wc -c <"$TMP/g16.out") bytes)" \
    test "$(wc -c <"$TMP/r.out")" -lt "$(wc -c <"$TMP/g16.out")"
ok "-r output is a prefix of the greedy text" \
    cmp -s "$TMP/r.out" <(head -c "$(wc -c <"$TMP/r.out")" "$TMP/g16.out")
ok "-r output contains the stop text" grep -qaF -- "$stop" "$TMP/r.out"
LC_ALL=C "${G[@]}" -p Hello -n 16 --temp 0 --stop "$stop" >"$TMP/st.out" 2>&1
ok "--stop is -r" cmp -s "$TMP/r.out" "$TMP/st.out"
"${G[@]}" -p Hello -n 8 --temp 0 -t 1 >"$TMP/t1.out" 2>&1
ok "-t 1 gives the same text" cmp -s "$TMP/g1.out" "$TMP/t1.out"
expect "timings on stderr" 0 "generate .* 8 tokens .*tokens/s" -- \
    "$VKMOE" run -m "$TINY" -p Hello -n 8 --temp 0
expect "warm-up time on stderr" 0 "warm-up .* s  \(device pipelines" -- \
    "$VKMOE" run -m "$TINY" -p Hello -n 2 --temp 0
# stdout and stderr as one stream (2>&1): the text's line is ended before the timing lines
"$VKMOE" run -m "$TINY" -p Hello -n 16 --temp 0 >"$TMP/both.out" 2>&1
ok "2>&1: the timings start on their own line" grep -q "^vkmoe: load" "$TMP/both.out"
# on a terminal, bytes that are not printable UTF-8 are shown escaped; piped they stay raw (the
# greedy text of the noise model holds control bytes)
ok "piped output holds raw control bytes" bash -c "LC_ALL=C grep -q \$'[\x01-\x08\x0e-\x1f]' '$TMP/g16.out'"
if command -v script >/dev/null; then
    script -qec "$(printf '%q ' "${G[@]}") -p Hello -n 16 --temp 0" /dev/null </dev/null \
        >"$TMP/tty.out" 2>&1
    ok "terminal output escapes control bytes" grep -q '\\x[0-9a-f][0-9a-f]' "$TMP/tty.out"
    ok "terminal output has no raw control bytes" \
        bash -c "! LC_ALL=C grep -q \$'[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]' '$TMP/tty.out'"
fi
expect "--quiet has no timings" 0 "" -- "${G[@]}" -p Hello -n 2
ok "--quiet stderr is empty" test ! -s "$TMP/g1.err"
expect "--profile" 0 "" -- "$VKMOE" run -m "$TINY" -p Hello -n 2 --profile
# a decode step is one submit and one host wait, also where device memory is not host-visible
# (VKMOE_FORCE_STAGING: every upload and download through staging, as on a discrete GPU)
expect "--profile: one host wait per decode step" 0 \
    "dispatches per decode step: [0-9.]+, host waits per decode step: 1\.0 \(3 steps\)" -- \
    "$VKMOE" run -m "$TINY" -p Hello -n 4 --temp 0 --profile
expect "--profile: the host's share of a decode step" 0 \
    "decode step: [0-9.]+ ms wall, [0-9.]+ ms GPU \(timestamps\), -?[0-9.]+ ms on the host" -- \
    "$VKMOE" run -m "$TINY" -p Hello -n 4 --temp 0 --profile
# dispatches per decode step in both kernel layouts (the kernel plan's fused forms: a fusion that
# falls back to separate dispatches shows here): the tiny fixture records 43 with the GPU kernels
# (gemv's gated, q_a+kv_a pair and shared-expert forms, routing and grouping in one), 49 with
# lavapipe's CPU-device kernels
dispatches() {
    env VKMOE_KERNELS="$1" "$VKMOE" run -m "$TINY" -p Hello -n 4 --temp 0 --profile 2>&1 >/dev/null |
        sed -n 's/^dispatches per decode step: \([0-9]*\)\.0,.*/\1/p'
}
d_gpu=$(dispatches gpu)
ok "GPU kernels: 43 dispatches per decode step (got ${d_gpu:-none})" test "${d_gpu:-0}" -eq 43
if grep -q "type cpu" "$TMP/devices.txt"; then
    d_cpu=$(dispatches cpu)
    ok "CPU-device kernels: 49 dispatches per decode step (got ${d_cpu:-none})" \
        test "${d_cpu:-0}" -eq 49
fi
VKMOE_FORCE_STAGING=1 VKMOE_IMPORT=off "$VKMOE" run -m "$TINY" -p Hello -n 8 --temp 0 --profile \
    >"$TMP/fs.out" 2>"$TMP/fs.err"
ok "staged: one host wait per decode step" grep -qE "host waits per decode step: 1\.0 " "$TMP/fs.err"
ok "staged: the greedy text" cmp -s "$TMP/fs.out" <(head -c "$(wc -c <"$TMP/fs.out")" "$TMP/g16.out")
expect "VKMOE_FORCE_STAGING malformed" 1 "VKMOE_FORCE_STAGING=yes: expected 0 or 1" -- \
    env VKMOE_FORCE_STAGING=yes "$VKMOE" run -m "$TINY" -p Hello -n 1
expect "--kv-f32 --no-bos" 0 "" -- "${G[@]}" -p Hello -n 2 --kv-f32 --no-bos
expect "--repeat-penalty/top-k/top-p/min-p" 0 "" -- \
    "${G[@]}" -p Hello -n 4 --repeat-penalty 1.3 --top-k 5 --top-p 0.5 --min-p 0.1

# context: prompt "Hello" is 6 tokens with BOS
expect "prompt longer than -c" 1 "longer than the context" -- "${G[@]}" -p "Hello world" -c 5
"${G[@]}" -p Hello -n 50 -c 10 --temp 0 >"$TMP/c10.out" 2>"$TMP/c10.err"
ok "context end exits 0" test $? -eq 0
ok "context end is reported" grep -q "context is full" "$TMP/c10.err"
ok "context end output is a prefix of the greedy text" \
    cmp -s "$TMP/c10.out" <(head -c "$(wc -c <"$TMP/c10.out")" "$TMP/g16.out")
expect "prompt exactly the context" 0 "" -- "${G[@]}" -p Hello -n 3 -c 6

# ---- chat templates ----
expect "--chat without a template key infers deepseek3" 0 \
    "no tokenizer.chat_template; using deepseek3, inferred from the vocabulary's <｜User｜>/<｜Assistant｜>" \
    -- "$VKMOE" run -m "$TINY" -p hi -n 4 --chat
"${G[@]}" -p hi -n 8 --temp 0 --chat >"$TMP/ci.out" 2>&1
"${G[@]}" -p hi -n 8 --temp 0 --chat --chat-template deepseek3 >"$TMP/cx.out" 2>&1
ok "the inferred template is deepseek3" cmp -s "$TMP/ci.out" "$TMP/cx.out"
# a vocabulary-only file: the missing weights are the error, not the template
VOCAB=$FIX/vocab/ggml-vocab-deepseek-llm.gguf
expect "run --chat on a vocabulary-only file" 1 "no deepseek2 weights: the file holds no tensors" \
    -- "$VKMOE" run -m "$VOCAB" -p hi --chat
expect "chat on a vocabulary-only file" 1 "no deepseek2 weights" -- \
    bash -c 'printf "hi\n" | "$@"' _ "$VKMOE" chat -m "$VOCAB"
# a file with tokenizer.chat_template (gen-model writes one): detected from it
"$VKMOE" gen-model --preset tiny --quant f32 --chat-template deepseek2 -o "$TMP/t2.gguf" --quiet \
    >/dev/null
expect "--chat detects deepseek2 from the file's template" 0 "chat template deepseek2" -- \
    "$VKMOE" run -m "$TMP/t2.gguf" -p hi -n 2 --chat
expect "--chat --chat-template deepseek3" 0 "" -- \
    "${G[@]}" -p hi -n 4 --chat --chat-template deepseek3
expect "--chat deepseek2 + system + hide" 0 "" -- "${G[@]}" -p hi -n 4 --chat \
    --chat-template deepseek2 --system "be brief" --hide-thinking
# --chat equals the raw run of the rendered template
"${G[@]}" -p hi -n 8 --temp 0 --chat --chat-template deepseek3 --system S >"$TMP/c1.out" 2>&1
"${G[@]}" -p 'S

<｜User｜>hi<｜Assistant｜>' -n 8 --temp 0 >"$TMP/c2.out" 2>&1
ok "--chat renders the deepseek3 template" cmp -s "$TMP/c1.out" "$TMP/c2.out"

# ---- chat ----
C=("$VKMOE" chat -m "$TINY" --quiet --chat-template deepseek3)
expect "chat hi /quit" 0 "" -- bash -c 'printf "hi\n/quit\n" | "$@"' _ "${C[@]}" -n 4
expect "chat EOF" 0 "" -- bash -c 'printf "hi\n" | "$@"' _ "${C[@]}" -n 4
expect "chat without a template key infers it" 0 "inferred from the vocabulary" -- \
    bash -c 'printf "hi\n" | "$@"' _ "$VKMOE" chat -m "$TINY" -n 2
expect "chat /reset" 0 "" -- bash -c 'printf "hi\n/reset\nhi\n" | "$@"' _ "${C[@]}" -n 4
# unknown /commands are not sent; /help lists the commands; // sends a leading /
printf '/bogus x\n/help\n' | "${C[@]}" -n 4 >"$TMP/cmd.out" 2>"$TMP/cmd.err"
ok "chat unknown /command exits 0" test "${PIPESTATUS[1]}" -eq 0
ok "chat warns about an unknown /command" grep -q "unknown command /bogus" "$TMP/cmd.err"
ok "chat does not send an unknown /command" test ! -s "$TMP/cmd.out"
ok "chat /help lists the commands" grep -q '/reset.*/quit.*/help' <(tr '\n' ' ' <"$TMP/cmd.err")
# a """ block is one message: one answer, equal to that of the same text as -p
printf '"""\nhi\nthere\n"""\n' | "${C[@]}" -n 4 --temp 0 >"$TMP/blk.out" 2>&1
ok "chat \"\"\" block gives one answer" test "$(wc -l <"$TMP/blk.out")" -eq 1
printf '' | "${C[@]}" -n 4 --temp 0 -p "hi
there" >"$TMP/blkp.out" 2>&1
ok "chat \"\"\" block = the same text as -p" cmp -s "$TMP/blk.out" "$TMP/blkp.out"
# on a terminal, lines pasted at once are one message: one answer, then the next prompt
if command -v script >/dev/null; then
    # script(1) passes on the end of its input only once the program has read what came before
    # (it gives up after 2 s), so the input stays open until the answer's prompt is shown, then
    # ends with /quit; timeout keeps a wrong answer from hanging the suite.
    (
        printf 'hi\nthere\n'
        for _ in $(seq 1200); do
            [ "$(grep -ac '^> ' "$TMP/paste.out" 2>/dev/null)" -ge 2 ] && break
            sleep 0.1
        done
        printf '/quit\n'
    ) | timeout 180 script -qec "$(printf '%q ' "${C[@]}") -n 4 --temp 0" \
        /dev/null >"$TMP/paste.out" 2>&1
    rc=${PIPESTATUS[1]}
    ok "chat paste through script(1) exits 0 (got $rc)" test "$rc" -eq 0
    n_prompts=$(grep -ac '^> ' "$TMP/paste.out")
    ok "chat: a paste of two lines is one message ($n_prompts prompts shown, want 2)" \
        test "$n_prompts" -eq 2
fi
# run -i / -cnv is chat with the prompt as the first message
printf '' | "$VKMOE" run -m "$TINY" --quiet --chat-template deepseek3 -p hi -n 4 --temp 0 -cnv \
    >"$TMP/cnv.out" 2>&1
printf 'hi\n' | "${C[@]}" -n 4 --temp 0 >"$TMP/cnv2.out" 2>&1
ok "run -cnv is chat with -p first" cmp -s "$TMP/cnv.out" "$TMP/cnv2.out"
printf 'hi\n' | "$VKMOE" run -m "$TINY" --quiet -n 4 --temp 0 -i >"$TMP/i.out" 2>&1
ok "run -i is chat" cmp -s "$TMP/i.out" "$TMP/cnv2.out"
printf 'hi\nhow are you\n' | "${C[@]}" -n 6 --temp 0 >"$TMP/chat.out" 2>&1
ok "chat exits 0" test "${PIPESTATUS[1]}" -eq 0
ok "chat prints one line per answer" test "$(wc -l <"$TMP/chat.out")" -eq 2
# the second answer continues the KV cache of the first turn; it must equal a fresh run of the
# whole rendered conversation
A1=$(head -n 1 "$TMP/chat.out")
printf '<｜User｜>hi<｜Assistant｜>%s<｜end▁of▁sentence｜><｜User｜>how are you<｜Assistant｜>' \
    "$A1" >"$TMP/conv.txt"
"${G[@]}" -f "$TMP/conv.txt" -n 6 --temp 0 >"$TMP/conv.out" 2>&1
ok "second chat turn reuses the cache correctly" \
    test "$(sed -n 2p "$TMP/chat.out")" == "$(cat "$TMP/conv.out")"
# after /reset the first answer comes again
printf 'hi\n/reset\nhi\n' | "${C[@]}" -n 6 --temp 0 >"$TMP/reset.out" 2>&1
ok "/reset starts over" test "$(sed -n 1p "$TMP/reset.out")" == "$(sed -n 2p "$TMP/reset.out")"
expect "chat conversation longer than -c" 0 "more than the context" -- \
    bash -c 'printf "hello there\n/quit\n" | "$@"' _ "${C[@]}" -c 5

# ---- Ctrl-C ----
# run: stops generating, prints timings, exits 130
"$VKMOE" run -m "$TINY" -p hi -n -1 --temp 0 >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
for _ in $(seq 200); do [ -s "$TMP/int.out" ] && break; sleep 0.1; done
kill -INT "$pid"
cli_wait "$pid"
ok "run Ctrl-C exits 130" test $? -eq 130
ok "run Ctrl-C prints timings" grep -q "generate" "$TMP/int.err"
ok "run Ctrl-C says interrupted" grep -q "interrupted" "$TMP/int.err"
# chat: stops the answer, not the program (greedy "hi" runs for hundreds of tokens)
mkfifo "$TMP/fifo"
"${C[@]}" -n 400 --temp 0 <"$TMP/fifo" >"$TMP/cint.out" 2>"$TMP/cint.err" &
pid=$!
exec 3>"$TMP/fifo"
echo hi >&3
for _ in $(seq 200); do [ -s "$TMP/cint.out" ] && break; sleep 0.1; done
kill -INT "$pid"
for _ in $(seq 100); do grep -q interrupted "$TMP/cint.err" && break; sleep 0.1; done
echo /quit >&3
exec 3>&-
cli_wait "$pid"
ok "chat Ctrl-C during an answer keeps running, /quit exits 0" test $? -eq 0
ok "chat Ctrl-C reports the interrupted answer" grep -q "answer interrupted" "$TMP/cint.err"

# a long prompt (6802 tokens, 14 chunks of 512: about 9 s here) stops at the end of the current
# chunk: run exits 130 without generating, chat forgets the question and answers the next one
for _ in $(seq 170); do printf 'hello world, this is a test of a long prompt. '; done >"$TMP/long.txt"
"$VKMOE" run -m "$TINY" -f "$TMP/long.txt" -c 8192 -n 8 --temp 0 >"$TMP/lint.out" 2>"$TMP/lint.err" &
pid=$!
for _ in $(seq 200); do grep -q "loaded in" "$TMP/lint.err" && break; sleep 0.1; done
sleep 1
kill -INT "$pid"
cli_wait "$pid"
ok "run Ctrl-C during the prompt exits 130" test $? -eq 130
ok "run Ctrl-C during the prompt generates nothing" test ! -s "$TMP/lint.out"
n=$(sed -n 's/.*prompt .* \([0-9][0-9]*\) tokens .*/\1/p' "$TMP/lint.err")
total=$("$VKMOE" tokenize -m "$TINY" -f "$TMP/long.txt" | wc -w)
ok "run Ctrl-C stops the prompt early (${n:-?} of $total tokens)" test "${n:-$total}" -lt "$total"
mkfifo "$TMP/lfifo"
"${C[@]}" -c 8192 -n 4 --temp 0 <"$TMP/lfifo" >"$TMP/lc.out" 2>"$TMP/lc.err" &
pid=$!
exec 3>"$TMP/lfifo"
cat "$TMP/long.txt" >&3
echo >&3
sleep 1.5
kill -INT "$pid"
for _ in $(seq 200); do grep -q "prompt interrupted" "$TMP/lc.err" && break; sleep 0.1; done
echo hi >&3
echo /quit >&3
exec 3>&-
cli_wait "$pid"
ok "chat Ctrl-C during a prompt keeps running, /quit exits 0" test $? -eq 0
ok "chat Ctrl-C reports the interrupted prompt" grep -q "prompt interrupted" "$TMP/lc.err"
ok "chat answers the next question after it" \
    test "$(cat "$TMP/lc.out")" == "$(printf 'hi\n' | "${C[@]}" -n 4 --temp 0 2>/dev/null)"

# a malformed VKMOE_IMPORT (core/engine.h) is an error naming the variable, exit 1
VKMOE_IMPORT=bogus "$VKMOE" run -m "$TINY" -p hi -n 1 >"$TMP/imp.out" 2>"$TMP/imp.err"
rc=$?
ok "VKMOE_IMPORT=bogus exits 1 (got $rc)" test $rc -eq 1
ok "VKMOE_IMPORT=bogus names the variable" grep -q "VKMOE_IMPORT='bogus'" "$TMP/imp.err"

cli_done
