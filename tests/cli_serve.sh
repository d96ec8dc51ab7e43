#!/usr/bin/env bash
# cli_serve.sh - `vkmoe serve` end to end on the tiny fixture, with curl on a free loopback port:
# greedy chat and completions equal `vkmoe run` (also a seeded sampled completion), SSE framing
# and streamed deltas equal the whole answer, usage, stop strings, models / health / metrics /
# tokenize / detokenize, KV-cache reuse across turns, 8 concurrent clients, every bad input with
# its status and an OpenAI-shaped error, the API key, a full queue (503, Retry-After), 60 garbage
# requests then a normal one, clients killed mid-stream, mid-answer and while queued (the
# generation is cancelled, the next request works), SIGTERM and SIGINT (exit 0). Usage errors
# first (no engine needed). Needs curl and python3 (else 77); 77 without a Vulkan device. Every
# background job is waited for with a bound (cli_wait).
# usage: cli_serve.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
# shellcheck source=lib_serve.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_serve.sh"
serve_setup serve

serve_need curl python3

# ---- usage errors (no engine needed) ----
expect "serve --help" 0 "POST /v1/chat/completions" -- "$VKMOE" serve --help
expect "serve listed" 0 "serve" -- "$VKMOE" --help
expect "serve no -m" 2 "missing -m" -- "$VKMOE" serve
expect "serve --parallel 65" 2 "1..64" -- "$VKMOE" serve -m "$TINY" --parallel 65
expect "serve --parallel 0" 2 "usage:" -- "$VKMOE" serve -m "$TINY" --parallel 0
expect "serve --port x" 2 "--port" -- "$VKMOE" serve -m "$TINY" --port x
expect "serve --port 70000" 2 "--port" -- "$VKMOE" serve -m "$TINY" --port 70000
expect "serve --queue 0" 2 "--queue" -- "$VKMOE" serve -m "$TINY" --queue 0
expect "serve --api-key empty" 2 "--api-key" -- "$VKMOE" serve -m "$TINY" --api-key ""
expect "serve --stop refused" 2 "not a serve option" -- "$VKMOE" serve -m "$TINY" --stop x
expect "serve unknown flag" 2 "unknown option" -- "$VKMOE" serve -m "$TINY" --bogus
expect "serve extra argument" 2 "unexpected argument" -- "$VKMOE" serve -m "$TINY" extra
expect "serve missing model" 1 "" -- "$VKMOE" serve -m "$TMP/none.gguf" --port 0
expect "serve address not here" 1 "cannot listen" -- "$VKMOE" serve -m "$TINY" --host 192.0.2.1

cli_skip_without_device

# ---- helpers ----
# req METHOD PATH [BODY|@FILE] [curl args...]: the status code on stdout, the body in $TMP/out.
req() {
    local method=$1 path=$2 body=${3-}
    shift 3 2>/dev/null || shift $#
    if [ -n "$body" ]; then
        [ "${body:0:1}" = @ ] || { printf '%s' "$body" >"$TMP/body" && body=@$TMP/body; }
        curl -s -m 60 -o "$TMP/out" -w '%{http_code}' -X "$method" -H 'Content-Type: application/json' \
            --data-binary "$body" "$@" "http://127.0.0.1:$PORT$path"
    else
        curl -s -m 60 -o "$TMP/out" -w '%{http_code}' -X "$method" "$@" "http://127.0.0.1:$PORT$path"
    fi
}

# expect_status NAME WANT METHOD PATH [BODY] [curl args]: the status, and for errors an
# OpenAI-shaped error object.
expect_status() {
    local name=$1 want=$2 got
    shift 2
    got=$(req "$@")
    if [ "$got" != "$want" ]; then
        echo "FAIL: $name: HTTP $got, expected $want: $(head -c 300 "$TMP/out")"
        fail=$((fail + 1))
    elif [ "$want" -ge 400 ] && ! python3 "$TMP/j.py" error "$TMP/out"; then
        echo "FAIL: $name: not an OpenAI error object: $(head -c 300 "$TMP/out")"
        fail=$((fail + 1))
    else
        pass=$((pass + 1))
    fi
}

# one context size for run and serve (4096: long enough that the abandoned requests below are
# still generating when their clients go, also on a fast GPU)
RUN=("$VKMOE" run -m "$TINY" --quiet --ignore-eos -c 4096)

# ---- the main server ----
if ! start_server "$TMP/serve.log" --ignore-eos -c 4096; then
    fail=$((fail + 1))
    cli_done
    exit 1
fi
MAIN=$SPID
BASE=http://127.0.0.1:$PORT

# greedy chat = run --chat
CHAT='{"model":"tiny","messages":[{"role":"user","content":"Hello"}],"max_tokens":12,"temperature":0'
expect_status "chat" 200 POST /v1/chat/completions "$CHAT}"
cp "$TMP/out" "$TMP/chat.json"
"${RUN[@]}" --chat --temp 0 -n 12 -p Hello >"$TMP/run_chat.txt" 2>"$TMP/run_chat.err"
check "chat text = run --chat" J same "$TMP/chat.json" choices.0.message.content "$TMP/run_chat.txt"
check "chat object" test "$(J get "$TMP/chat.json" object)" = chat.completion
check "chat finish length" test "$(J get "$TMP/chat.json" choices.0.finish_reason)" = length
check "chat usage" test "$(J get "$TMP/chat.json" usage.completion_tokens)" = 12
check "chat usage total" test "$(J get "$TMP/chat.json" usage.total_tokens)" = \
    $(($(J get "$TMP/chat.json" usage.prompt_tokens) + 12))

# streamed: SSE framing, deltas = the whole answer, usage chunk
curl -s -m 60 -N "$BASE/v1/chat/completions" -d "$CHAT,\"stream\":true,\"stream_options\":{\"include_usage\":true}}" \
    -D "$TMP/sse.h" >"$TMP/sse.txt"
check "stream content type" grep -qi '^content-type: text/event-stream' "$TMP/sse.h"
check "stream = whole (chat, usage)" J sse "$TMP/sse.txt" chat "$TMP/chat.json" usage
curl -s -m 60 -N "$BASE/v1/chat/completions" -d "$CHAT,\"stream\":true}" >"$TMP/sse2.txt"
check "stream = whole (chat, no usage)" J sse "$TMP/sse2.txt" chat "$TMP/chat.json" none

# completions = run -p (greedy, and sampled with a seed)
COMP='{"prompt":"Hello","max_tokens":10'
expect_status "completion" 200 POST /v1/completions "$COMP,\"temperature\":0}"
cp "$TMP/out" "$TMP/comp.json"
"${RUN[@]}" --temp 0 -n 10 -p Hello >"$TMP/run_comp.txt" 2>/dev/null
check "completion text = run -p" J same "$TMP/comp.json" choices.0.text "$TMP/run_comp.txt"
check "completion object" test "$(J get "$TMP/comp.json" object)" = text_completion
expect_status "completion seeded" 200 POST /v1/completions "$COMP,\"temperature\":0.8,\"seed\":5}"
cp "$TMP/out" "$TMP/comp_s.json"
"${RUN[@]}" --temp 0.8 -s 5 -n 10 -p Hello >"$TMP/run_comp_s.txt" 2>/dev/null
check "seeded completion = run -s 5" J same "$TMP/comp_s.json" choices.0.text "$TMP/run_comp_s.txt"
curl -s -m 60 -N "$BASE/v1/completions" -d "$COMP,\"temperature\":0,\"stream\":true}" >"$TMP/sse3.txt"
check "stream = whole (completion)" J sse "$TMP/sse3.txt" completion "$TMP/comp.json" none

# a stop string: the answer ends before it, finish_reason stop
# (the first two printable ASCII characters after the first one: their bytes are the text's)
stop=$(J get "$TMP/comp.json" choices.0.text | python3 -c '
import sys
t = sys.stdin.read()
print(next((t[i:i + 2] for i in range(1, len(t) - 1) if t[i:i + 2].isascii() and t[i:i + 2].isprintable() and " " not in t[i:i + 2]), ""), end="")')
if [ -n "$stop" ]; then
    python3 -c 'import json,sys; print(json.dumps({"prompt":"Hello","max_tokens":10,"temperature":0,"stop":["zzzzzz",sys.argv[1]]}))' "$stop" >"$TMP/stop.json"
    expect_status "completion stop" 200 POST /v1/completions "@$TMP/stop.json"
    full=$(J get "$TMP/comp.json" choices.0.text)
    got=$(J get "$TMP/out" choices.0.text)
    check "stop: text ends before the stop string '$stop'" test "$got" = "${full%%"$stop"*}"
    check "stop: finish_reason stop" test "$(J get "$TMP/out" choices.0.finish_reason)" = stop
else
    echo "FAIL: no stop string found in the completion"
    fail=$((fail + 1))
fi

# a second turn reuses the KV cache of the first (prompt + answer)
before=$(curl -s -m 10 "$BASE/metrics" | J metric /dev/stdin vkmoe_prefill_tokens_total)
expect_status "chat turn 1" 200 POST /v1/chat/completions "$CHAT}"
answer=$(J get "$TMP/out" choices.0.message.content)
python3 -c 'import json,sys; print(json.dumps({"messages":[{"role":"user","content":"Hello"},{"role":"assistant","content":sys.argv[1]},{"role":"user","content":"more"}],"max_tokens":4,"temperature":0}))' "$answer" >"$TMP/turn2.json"
m0=$(curl -s -m 10 "$BASE/metrics")
expect_status "chat turn 2" 200 POST /v1/chat/completions "@$TMP/turn2.json"
m1=$(curl -s -m 10 "$BASE/metrics")
p_prompt=$(($(J metric /dev/stdin vkmoe_prompt_tokens_total <<<"$m1") - $(J metric /dev/stdin vkmoe_prompt_tokens_total <<<"$m0")))
p_eval=$(($(J metric /dev/stdin vkmoe_prefill_tokens_total <<<"$m1") - $(J metric /dev/stdin vkmoe_prefill_tokens_total <<<"$m0")))
check "turn 2 reuses the cache ($p_eval of $p_prompt prompt tokens evaluated)" test "$p_eval" -lt "$p_prompt"
[ -n "$before" ] || echo "FAIL: no prefill metric"

# models, health, metrics, tokenize, detokenize
expect_status "models" 200 GET /v1/models
check "models lists the model" test "$(J get "$TMP/out" data.0.id)" = tiny-v3-f32.gguf
expect_status "health" 200 GET /health
check "health ok" test "$(J get "$TMP/out" status)" = ok
expect_status "metrics" 200 GET /metrics
for m in vkmoe_requests_total vkmoe_generated_tokens_total vkmoe_decode_tokens_per_second \
    vkmoe_prefill_tokens_per_second vkmoe_queue_length vkmoe_expert_hits_total \
    vkmoe_expert_misses_total vkmoe_expert_uploaded_bytes_total; do
    check "metrics has $m" grep -q "^# TYPE $m " "$TMP/out"
done
expect_status "tokenize" 200 POST /tokenize '{"content":"Hello world"}'
check "tokenize = vkmoe tokenize --no-bos" test "$(J get "$TMP/out" tokens)" = \
    "$("$VKMOE" tokenize -m "$TINY" --no-bos -p "Hello world")"
expect_status "tokenize add_special" 200 POST /tokenize '{"content":"Hello world","add_special":true}'
check "tokenize add_special = vkmoe tokenize" test "$(J get "$TMP/out" tokens)" = \
    "$("$VKMOE" tokenize -m "$TINY" -p "Hello world")"
expect_status "detokenize" 200 POST /detokenize '{"tokens":[72,101,108,108,111]}'
check "detokenize" test "$(J get "$TMP/out" content)" = Hello

# ---- bad input: status and an OpenAI error object, never a crash ----
M='"messages":[{"role":"user","content":"x"}]'
expect_status "malformed JSON" 400 POST /v1/chat/completions '{"messages": [oops'
expect_status "not an object" 400 POST /v1/chat/completions '[1]'
expect_status "empty body" 400 POST /v1/chat/completions ''
expect_status "missing messages" 400 POST /v1/chat/completions '{"max_tokens":1}'
check "missing messages: param" J error "$TMP/out" messages
expect_status "unknown role" 400 POST /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'
check "unknown role: param" J error "$TMP/out" "messages[0].role"
expect_status "wrong type" 400 POST /v1/chat/completions "{$M,\"max_tokens\":\"many\"}"
check "wrong type: param" J error "$TMP/out" max_tokens
expect_status "temperature type" 400 POST /v1/chat/completions "{$M,\"temperature\":[1]}"
expect_status "n > 1" 400 POST /v1/chat/completions "{$M,\"n\":2}"
check "n > 1: param" J error "$TMP/out" n
expect_status "tools" 400 POST /v1/chat/completions "{$M,\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}"
check "tools: param" J error "$TMP/out" tools
expect_status "completion without prompt" 400 POST /v1/completions '{"max_tokens":3}'
python3 -c 'import json; print(json.dumps({"prompt":" ".join(map(str, range(6000))),"max_tokens":1}))' >"$TMP/long.json"
expect_status "prompt longer than the context" 400 POST /v1/completions "@$TMP/long.json"
check "long prompt: code" test "$(J get "$TMP/out" error.code)" = context_length_exceeded
head -c $((9 << 20)) /dev/zero | tr '\0' ' ' >"$TMP/big.json"
expect_status "oversized body" 413 POST /v1/chat/completions "@$TMP/big.json"
expect_status "oversized chunked body" 413 POST /v1/chat/completions "@$TMP/big.json" -H 'Transfer-Encoding: chunked'
expect_status "unknown path" 404 GET /v1/nothing
expect_status "wrong method" 405 GET /v1/chat/completions
expect_status "wrong method (models)" 405 POST /v1/models '{}'
expect_status "detokenize bad id" 400 POST /detokenize '{"tokens":[99999]}'
expect_status "tokenize no content" 400 POST /tokenize '{"text":"x"}'

# 60 garbage requests: random bytes to every endpoint, raw non-HTTP bytes; then a normal request
paths=(/v1/chat/completions /v1/completions /tokenize /detokenize /v1/models /health /metrics /x)
bad5xx=0
for ((i = 0; i < 60; i++)); do
    head -c $((RANDOM % 400 + 1)) /dev/urandom >"$TMP/garbage"
    p=${paths[$((i % ${#paths[@]}))]}
    code=$(req POST "$p" "@$TMP/garbage")
    case $code in 2* | 4*) ;; *) bad5xx=$((bad5xx + 1)) ;; esac
done
check "garbage: every answer 2xx/4xx" test "$bad5xx" -eq 0
for ((i = 0; i < 5; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT" && head -c 300 /dev/urandom >&3 && timeout 5 cat <&3 >/dev/null) 2>/dev/null
done
check "server alive after garbage" kill -0 "$MAIN"
expect_status "chat after garbage" 200 POST /v1/chat/completions "$CHAT}"
check "chat after garbage: same text" J same "$TMP/out" choices.0.message.content "$TMP/run_chat.txt"

# a bounded load: 8 clients at once, 3 requests each (whole and streamed): every answer 200 and
# the same greedy text (no answer gets another's tokens)
serve_load 8 3 120
check "load: 24 answers, all 200" test "$(cat "$TMP"/load_*.codes | grep -c '^200$')" -eq 24
lbad=0
for f in "$TMP"/load_*_*.json; do J same "$f" choices.0.message.content "$TMP/run_chat.txt" >/dev/null || lbad=$((lbad + 1)); done
for f in "$TMP"/load_*_*.sse; do J sse "$f" chat "$TMP/chat.json" none >/dev/null 2>&1 || lbad=$((lbad + 1)); done
check "load: every answer the greedy text ($lbad differ)" test "$lbad" -eq 0

# a client killed mid-stream: its generation is cancelled; the next request works
c0=$(curl -s -m 10 "$BASE/metrics" | J metric /dev/stdin 'vkmoe_requests_total{result="cancelled"}')
curl -s -m 120 -N "$BASE/v1/completions" -d '{"prompt":"Hello","max_tokens":4000,"stream":true}' >"$TMP/killed.txt" &
cpid=$!
for ((i = 0; i < 300; i++)); do
    grep -q '^data: ' "$TMP/killed.txt" 2>/dev/null && break
    sleep 0.05
done
kill -KILL "$cpid" 2>/dev/null
cli_wait "$cpid" 10 2>/dev/null # (no "Killed" job notice)
# a whole answer abandoned by its client (curl gives up after 0.5 s) is cancelled as well
curl -s -m 0.5 "$BASE/v1/completions" -d '{"prompt":"Hello","max_tokens":4000}' >/dev/null
expect_status "chat after killed clients" 200 POST /v1/chat/completions "$CHAT}"
check "chat after killed clients: same text" J same "$TMP/out" choices.0.message.content "$TMP/run_chat.txt"
c1=$(curl -s -m 10 "$BASE/metrics" | J metric /dev/stdin 'vkmoe_requests_total{result="cancelled"}')
check "both abandoned requests were cancelled ($c0 -> $c1)" test "$((c1 - c0))" -eq 2

# SIGTERM with a stream in flight: the stream ends, the server exits 0
curl -s -m 120 -N "$BASE/v1/completions" -d '{"prompt":"Hello","max_tokens":4000,"stream":true}' >"$TMP/term.txt" &
cpid=$!
for ((i = 0; i < 300; i++)); do
    grep -q '^data: ' "$TMP/term.txt" 2>/dev/null && break
    sleep 0.05
done
kill -TERM "$MAIN"
cli_wait "$MAIN" 60
rc=$?
check "SIGTERM: exit 0 (got $rc)" test $rc -eq 0
[ $rc -eq 0 ] || tail -30 "$TMP/serve.log"
cli_wait "$cpid" 30
check "SIGTERM: the stream was ended" grep -q '^data: \[DONE\]' "$TMP/term.txt"
check "SIGTERM: said stopping" grep -q "serve: stopping" "$TMP/serve.log"

# ---- the API key, a full queue, SIGINT ----
if start_server "$TMP/serve_key.log" --api-key sekrit --quiet --queue 1 --ignore-eos -c 4096; then
    BASE=http://127.0.0.1:$PORT
    AUTH='Authorization: Bearer sekrit'
    expect_status "no key" 401 GET /v1/models
    expect_status "wrong key" 401 GET /v1/models "" -H 'Authorization: Bearer wrong'
    expect_status "right key" 200 GET /v1/models "" -H "$AUTH"
    expect_status "health needs no key" 200 GET /health
    # one request generating, one waiting (the queue holds 1): the next is refused with 503
    LONG='{"prompt":"Hello","max_tokens":4000,"stream":true}'
    curl -s -m 120 -N -H "$AUTH" "$BASE/v1/completions" -d "$LONG" >"$TMP/q1.txt" &
    q1=$!
    for ((i = 0; i < 300; i++)); do
        grep -q '^data: ' "$TMP/q1.txt" 2>/dev/null && break
        sleep 0.05
    done
    curl -s -m 120 -N -H "$AUTH" "$BASE/v1/completions" -d "$LONG" >"$TMP/q2.txt" &
    q2=$!
    for ((i = 0; i < 300; i++)); do
        [ "$(curl -s -m 5 -H "$AUTH" "$BASE/metrics" | J metric /dev/stdin vkmoe_queue_length)" = 1 ] && break
        sleep 0.05
    done
    expect_status "queue full: 503" 503 POST /v1/completions '{"prompt":"Hello","max_tokens":1}' \
        -H "$AUTH" -D "$TMP/q3.h"
    check "queue full: Retry-After" grep -qi '^retry-after: [0-9]' "$TMP/q3.h"
    kill -KILL "$q1" "$q2" 2>/dev/null
    cli_wait "$q1" 10 2>/dev/null
    cli_wait "$q2" 10 2>/dev/null
    # both are cancelled: the one generating at its next token, the waiting one when its
    # connection is seen closed; then the queue is empty again
    for ((i = 0; i < 200; i++)); do
        m=$(curl -s -m 5 -H "$AUTH" "$BASE/metrics")
        [ "$(J metric /dev/stdin vkmoe_queue_length <<<"$m")" = 0 ] &&
            [ "$(J metric /dev/stdin vkmoe_requests_processing <<<"$m")" = 0 ] && break
        sleep 0.05
    done
    check "killed clients: queue empty, nothing generating" test "$i" -lt 200
    expect_status "after a full queue" 200 POST /v1/completions '{"prompt":"Hello","max_tokens":2}' \
        -H "$AUTH"
    kill -INT "$SPID"
    cli_wait "$SPID" 60
    rc=$?
    check "SIGINT: exit 0 (got $rc)" test $rc -eq 0
    [ $rc -eq 0 ] || tail -30 "$TMP/serve_key.log"
else
    fail=$((fail + 1))
fi

cli_done
