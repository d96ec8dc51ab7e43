#!/usr/bin/env bash
# cli_serve_batch.sh - `vkmoe serve --parallel N` (continuous batching) on the tiny fixture, and
# that `vkmoe bench --serve` runs (its usage errors, a 1,2-stream run's JSON): four
# different prompts sent at once to --parallel 4 give each the tokens `vkmoe run` gives it alone
# (greedy, and seeded sampling), also under a VRAM budget that pages experts; steps really batch
# (decode tokens per step > 1); per-slot prefix reuse (two interleaved conversations: each next
# prompt prefills only its new tokens, counted exactly with /tokenize); a prompt longer than a
# slot's context (-c / N) is a 400 naming it; a bounded load (8 clients x 10 requests, whole and
# streamed, all 200 with the greedy text); clients killed mid-stream free their slots (a queued
# request then runs, the next one works); SIGTERM with streams in flight (all end, exit 0).
# Needs curl and python3 (else 77); 77 without a Vulkan device. Every background job is waited
# for with a bound (cli_wait).
# usage: cli_serve_batch.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
# shellcheck source=lib_serve.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_serve.sh"
serve_setup serve_batch
serve_need curl python3


expect "bench --serve no -m" 2 "needs -m MODEL" -- "$VKMOE" bench --serve
expect "bench --parallel-list alone" 2 "go with --serve" -- "$VKMOE" bench -m "$TINY" --parallel-list 2
expect "bench --parallel-list 0" 2 "1..64" -- "$VKMOE" bench --serve -m "$TINY" --parallel-list 0
expect "bench --serve -n 1" 2 "at least 2" -- "$VKMOE" bench --serve -m "$TINY" -n 1

cli_skip_without_device

expect "serve -c 2 --parallel 4" 1 "cannot be shared by 4" -- "$VKMOE" serve -m "$TINY" --port 0 \
    -c 2 --parallel 4 --quiet
expect "serve -c 8 --parallel 4" 1 "4 slots need a batch of 4 tokens" -- "$VKMOE" serve -m "$TINY" \
    --port 0 -c 8 --parallel 4 --quiet

# the benchmark runs (its numbers are not checked: on lavapipe they are noise at this size)
expect "bench --serve" 0 "decode tok/s" -- "$VKMOE" bench --serve -m "$TINY" --parallel-list 1,2 -n 4 \
    --json "$TMP/bench.json" --quiet
check "bench --serve JSON: 2 rows, the second batching 2 streams" python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["serve"]["throughput"]
assert [r["streams"] for r in t] == [1, 2] and t[1]["decode_tokens"] == 2 * t[1]["decode_steps"], t
' "$TMP/bench.json"

metric() { curl -s -m 10 "$BASE/metrics" | J metric /dev/stdin "$1"; }

PROMPTS=("Hello" "The cat sat" "Once upon a time" "1 2 3 4 5")
# four completions at once (greedy, 16 tokens), each compared with `vkmoe run` alone
same_as_run() {
    local tag=$1 i
    shift
    for i in "${!PROMPTS[@]}"; do
        python3 -c 'import json,sys; print(json.dumps({"prompt":sys.argv[1],"max_tokens":16,"temperature":0}))' \
            "${PROMPTS[i]}" >"$TMP/p$i.json"
        curl -s -m 120 -o "$TMP/${tag}_$i.json" "$BASE/v1/completions" -d "@$TMP/p$i.json" &
        pids[i]=$!
    done
    for i in "${!PROMPTS[@]}"; do cli_wait "${pids[i]}" 120; done
    for i in "${!PROMPTS[@]}"; do
        [ -f "$TMP/run_$i.txt" ] ||
            "$VKMOE" run -m "$TINY" --quiet --ignore-eos -c 4096 --temp 0 -n 16 -p "${PROMPTS[i]}" \
                >"$TMP/run_$i.txt" 2>/dev/null
        check "$tag: prompt $i = run alone" J same "$TMP/${tag}_$i.json" choices.0.text "$TMP/run_$i.txt"
    done
}

# ---- the main server: 4 slots of 4096 tokens ----
if ! start_server "$TMP/serve.log" --parallel 4 -c 16384 --ignore-eos; then
    fail=$((fail + 1))
    cli_done
    exit 1
fi
MAIN=$SPID
BASE=http://127.0.0.1:$PORT
check "startup names the slots" grep -q "4 slots, context 4096 tokens each, 16384 in all" "$TMP/serve.log"
check "slots_total 4" test "$(metric vkmoe_slots_total)" = 4

s0=$(metric vkmoe_decode_steps_total)
t0=$(metric vkmoe_decode_step_tokens_total)
same_as_run batched
s1=$(metric vkmoe_decode_steps_total)
t1=$(metric vkmoe_decode_step_tokens_total)
check "steps batch several slots ($((t1 - t0)) tokens in $((s1 - s0)) steps)" \
    test $((t1 - t0)) -gt $((s1 - s0))

# seeded sampling per slot: two requests at once, each = run with its seed
for s in 3 7; do
    curl -s -m 120 -o "$TMP/seed$s.json" "$BASE/v1/completions" \
        -d "{\"prompt\":\"Hello\",\"max_tokens\":12,\"temperature\":0.8,\"seed\":$s}" &
    spids[s]=$!
done
for s in 3 7; do
    cli_wait "${spids[s]}" 120
    "$VKMOE" run -m "$TINY" --quiet --ignore-eos -c 4096 --temp 0.8 -s "$s" -n 12 -p Hello \
        >"$TMP/run_seed$s.txt" 2>/dev/null
    check "seed $s = run -s $s" J same "$TMP/seed$s.json" choices.0.text "$TMP/run_seed$s.txt"
done

# max_tokens 0: the prompt is evaluated, nothing generated
code=$(curl -s -m 60 -o "$TMP/out" -w '%{http_code}' "$BASE/v1/completions" -d '{"prompt":"Hello","max_tokens":0}')
check "max_tokens 0: 200 (got $code)" test "$code" = 200
check "max_tokens 0: no completion tokens" test "$(J get "$TMP/out" usage.completion_tokens)" = 0

# a prompt longer than a slot's context (4096 = 16384 / 4)
python3 -c 'import json; print(json.dumps({"prompt":" ".join(map(str, range(3000))),"max_tokens":1}))' >"$TMP/long.json"
code=$(curl -s -m 60 -o "$TMP/out" -w '%{http_code}' "$BASE/v1/completions" -d "@$TMP/long.json")
check "long prompt: 400 (got $code)" test "$code" = 400
check "long prompt: names the slot context" grep -q "context of 4096 tokens of a slot (-c 16384 shared by --parallel 4)" "$TMP/out"

# per-slot prefix reuse: conversations A and B interleaved; each next prompt extends its own
# previous one, so it prefills only the tokens its slot does not hold
tok() { # tok TEXT: the prompt's token ids (BOS as the server adds it)
    python3 -c 'import json,sys; print(json.dumps({"content":sys.argv[1],"add_special":True}))' "$1" >"$TMP/tk.json"
    curl -s -m 10 "http://127.0.0.1:$PORT/tokenize" -d "@$TMP/tk.json" | J get /dev/stdin tokens
}
complete1() { # complete1 TEXT: one greedy token
    python3 -c 'import json,sys; print(json.dumps({"prompt":sys.argv[1],"max_tokens":1,"temperature":0}))' "$1" >"$TMP/c1.json"
    curl -s -m 60 -o /dev/null -w '%{http_code}' "$BASE/v1/completions" -d "@$TMP/c1.json"
}
A="Alpha beta gamma delta epsilon zeta eta theta iota kappa"
B="One two three four five six seven eight nine ten eleven"
complete1 "$A" >/dev/null
complete1 "$B" >/dev/null
for conv in A B; do
    first=${!conv}
    next="$first lambda mu"
    want=$(python3 -c 'import sys
a, b = sys.argv[1].split(), sys.argv[2].split()
c = 0
while c < len(a) and c < len(b) and a[c] == b[c]: c += 1
print(len(b) - min(c, len(b) - 1))' "$(tok "$first")" "$(tok "$next")")
    p0=$(metric vkmoe_prefill_tokens_total)
    code=$(complete1 "$next")
    p1=$(metric vkmoe_prefill_tokens_total)
    check "reuse $conv: 200" test "$code" = 200
    check "reuse $conv: prefilled $((p1 - p0)) tokens, the new ones: $want" test $((p1 - p0)) -eq "$want"
done

# a bounded load: 8 clients x 10 requests (whole and streamed) on 4 slots, all 200 and greedy
CHAT='{"messages":[{"role":"user","content":"Hello"}],"max_tokens":6,"temperature":0'
curl -s -m 60 -o "$TMP/chat.json" "$BASE/v1/chat/completions" -d "$CHAT}"
serve_load 8 10 240
check "load: 80 answers, all 200" test "$(cat "$TMP"/load_*.codes | grep -c '^200$')" -eq 80
# (one python for all 80: a process per file costs more than the load itself)
lbad=$(python3 - "$TMP" <<'EOF'
import glob, json, sys
want = json.load(open(sys.argv[1] + "/chat.json"))["choices"][0]["message"]["content"]
bad = 0
for f in glob.glob(sys.argv[1] + "/load_*_*.json"):
    bad += json.load(open(f))["choices"][0]["message"]["content"] != want
for f in glob.glob(sys.argv[1] + "/load_*_*.sse"):
    text = open(f, encoding="utf-8").read()
    out = "".join(json.loads(e[6:])["choices"][0]["delta"].get("content", "") or ""
                  for e in text.split("\n\n")[:-2])
    bad += not text.endswith("data: [DONE]\n\n") or out != want
print(bad)
EOF
)
check "load: every answer the greedy text ($lbad differ)" test "$lbad" -eq 0

# clients killed mid-stream free their slots: 4 long streams fill the slots, a fifth request
# waits; killing one stream lets it run; killing the rest empties every slot
LONG='{"prompt":"Hello","max_tokens":4000,"stream":true}'
c0=$(metric 'vkmoe_requests_total{result="cancelled"}')
for ((i = 0; i < 4; i++)); do
    curl -s -m 120 -N "$BASE/v1/completions" -d "$LONG" >"$TMP/long$i.txt" &
    lp[i]=$!
done
for ((i = 0; i < 4; i++)); do
    for ((t = 0; t < 300; t++)); do
        grep -q '^data: ' "$TMP/long$i.txt" 2>/dev/null && break
        sleep 0.05
    done
done
curl -s -m 120 -o "$TMP/queued.json" -w '%{http_code}' "$BASE/v1/completions" \
    -d '{"prompt":"Hello","max_tokens":16,"temperature":0}' >"$TMP/queued.code" &
qp=$!
for ((t = 0; t < 200; t++)); do
    [ "$(metric vkmoe_queue_length)" = 1 ] && break
    sleep 0.05
done
check "a fifth request waits (4 slots busy)" test "$(metric vkmoe_slots_busy)" = 4
{ # (no "Killed" job notice)
    kill -KILL "${lp[0]}"
    cli_wait "${lp[0]}" 10
} 2>/dev/null
cli_wait "$qp" 60
check "killed stream: the queued request ran" test "$(cat "$TMP/queued.code")" = 200
check "killed stream: queued answer = run" J same "$TMP/queued.json" choices.0.text "$TMP/run_0.txt"
{ # (no "Killed" job notices)
    for ((i = 1; i < 4; i++)); do kill -KILL "${lp[i]}"; done
    for ((i = 1; i < 4; i++)); do cli_wait "${lp[i]}" 10; done
} 2>/dev/null
for ((t = 0; t < 200; t++)); do
    [ "$(metric vkmoe_slots_busy)" = 0 ] && break
    sleep 0.05
done
check "killed streams: every slot free" test "$t" -lt 200
c1=$(metric 'vkmoe_requests_total{result="cancelled"}')
check "killed streams: 4 cancelled ($c0 -> $c1)" test $((c1 - c0)) -eq 4
code=$(curl -s -m 60 -o "$TMP/after.json" -w '%{http_code}' "$BASE/v1/completions" -d "@$TMP/p1.json")
check "after killed streams: 200" test "$code" = 200
check "after killed streams: = run" J same "$TMP/after.json" choices.0.text "$TMP/run_1.txt"

# a long prompt is prefilled in chunks of at most 128 tokens while a stream decodes: every one
# of its steps also decodes the stream
curl -s -m 120 -N "$BASE/v1/completions" -d "$LONG" >"$TMP/inter.txt" &
ip=$!
for ((t = 0; t < 300; t++)); do
    grep -q '^data: ' "$TMP/inter.txt" 2>/dev/null && break
    sleep 0.05
done
x0=$(metric vkmoe_mixed_steps_total)
f0=$(metric vkmoe_prefill_tokens_total)
python3 -c 'import json; print(json.dumps({"prompt":" ".join(map(str, range(500))),"max_tokens":1}))' >"$TMP/mid.json"
code=$(curl -s -m 60 -o "$TMP/out" -w '%{http_code}' "$BASE/v1/completions" -d "@$TMP/mid.json")
x1=$(metric vkmoe_mixed_steps_total)
f1=$(metric vkmoe_prefill_tokens_total)
check "interleaved: the long prompt answered (got $code)" test "$code" = 200
check "interleaved: $((f1 - f0)) prompt tokens in $((x1 - x0)) steps with the stream" \
    test $((x1 - x0)) -eq $(((f1 - f0 + 127) / 128))
check "interleaved: the stream goes on" kill -0 "$ip"
{
    kill -KILL "$ip"
    cli_wait "$ip" 10
} 2>/dev/null

# SIGTERM with 3 streams in flight: every stream ends, the server exits 0
for ((i = 0; i < 3; i++)); do
    curl -s -m 120 -N "$BASE/v1/completions" -d "$LONG" >"$TMP/term$i.txt" &
    tp[i]=$!
done
for ((i = 0; i < 3; i++)); do
    for ((t = 0; t < 300; t++)); do
        grep -q '^data: ' "$TMP/term$i.txt" 2>/dev/null && break
        sleep 0.05
    done
done
kill -TERM "$MAIN"
cli_wait "$MAIN" 60
rc=$?
check "SIGTERM: exit 0 (got $rc)" test $rc -eq 0
[ $rc -eq 0 ] || tail -30 "$TMP/serve.log"
for ((i = 0; i < 3; i++)); do
    cli_wait "${tp[i]}" 30
    check "SIGTERM: stream $i ended" grep -q '^data: \[DONE\]' "$TMP/term$i.txt"
done

# ---- batched decoding under a VRAM budget that pages experts (as tests/cli_paging.sh) ----
if start_server "$TMP/serve_paged.log" --parallel 4 -c 1024 --ignore-eos --quiet --vram-budget 900K; then
    BASE=http://127.0.0.1:$PORT
    same_as_run paged
    check "paged: experts are paged" test "$(metric vkmoe_expert_paging)" = 1
    check "paged: experts were uploaded" test "$(metric vkmoe_expert_uploaded_bytes_total)" -gt 0
    kill -TERM "$SPID"
    cli_wait "$SPID" 60
    check "paged: exit 0" test $? -eq 0
else
    fail=$((fail + 1))
fi

cli_done
