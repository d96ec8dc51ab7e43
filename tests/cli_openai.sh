#!/usr/bin/env bash
# cli_openai.sh - the official `openai` npm client (tests/openai: package.json and the committed
# package-lock.json, installed by tests/openai/install.sh into the build folder) against
# `vkmoe serve` on the tiny fixture with an API key: a non-streamed and a streamed chat and a
# completion equal `vkmoe run` (greedy), usage and finish reasons, and a refused request (n: 2)
# reaches the SDK as a 400 naming the field. Skipped (77) without node, npm, python3 or a Vulkan
# device, or when the client cannot be installed (no registry).
# usage: cli_openai.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
# shellcheck source=lib_serve.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_serve.sh"
serve_setup openai
serve_need node npm python3 curl
cli_skip_without_device

client=$PWD/openai-client
if ! "$(dirname "$0")/openai/install.sh" "$client" 2>"$TMP/install.err"; then
    echo "SKIP: the openai client could not be installed: $(cat "$TMP/install.err")"
    exit 77
fi

RUN=("$VKMOE" run -m "$TINY" --quiet --ignore-eos -c 4096)
"${RUN[@]}" --chat --temp 0 -n 12 -p Hello >"$TMP/run_chat.txt" 2>/dev/null
"${RUN[@]}" --temp 0 -n 10 -p Hello >"$TMP/run_comp.txt" 2>/dev/null

if start_server "$TMP/serve.log" --ignore-eos -c 4096 --api-key test-key --quiet; then
    if timeout 300 node "$client/test.mjs" "http://127.0.0.1:$PORT/v1" test-key >"$TMP/sdk.json" \
        2>"$TMP/sdk.err"; then
        pass=$((pass + 1))
        check "SDK chat = run --chat" J same "$TMP/sdk.json" chat "$TMP/run_chat.txt"
        check "SDK stream = run --chat" J same "$TMP/sdk.json" streamed "$TMP/run_chat.txt"
        check "SDK completion = run -p" J same "$TMP/sdk.json" completion "$TMP/run_comp.txt"
        check "SDK chat finish" test "$(J get "$TMP/sdk.json" chat_finish)" = length
        check "SDK stream finish" test "$(J get "$TMP/sdk.json" stream_finish)" = length
        check "SDK usage" test "$(J get "$TMP/sdk.json" chat_usage.completion_tokens)" = 12
        check "SDK stream usage" test "$(J get "$TMP/sdk.json" stream_usage)" = \
            "$(J get "$TMP/sdk.json" chat_usage)"
        check "SDK refused n=2: 400" test "$(J get "$TMP/sdk.json" refused.status)" = 400
        check "SDK refused n=2: message names n" grep -q "'n' must be 1" "$TMP/sdk.json"
    else
        echo "FAIL: the openai client failed:"
        head -30 "$TMP/sdk.err"
        fail=$((fail + 1))
    fi
    kill -TERM "$SPID"
    cli_wait "$SPID" 60
    rc=$?
    check "server exit 0 (got $rc)" test $rc -eq 0
    [ $rc -eq 0 ] || tail -30 "$TMP/serve.log"
else
    fail=$((fail + 1))
fi

cli_done
