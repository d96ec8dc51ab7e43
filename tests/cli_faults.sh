#!/usr/bin/env bash
# cli_faults.sh - the CLI under faults and untrusted input: injected device loss and device OOM
# (VKMOE_FAULT, vk/fault.c), Ctrl-C during a long run, a model truncated by one byte, bad flags
# and values, out-of-range --device, unreadable model paths, and host OOM under `ulimit -v`.
# Every failure must be exit 1 (runtime) or 2 (usage) with a "vkmoe: " message, never a signal
# (exit >= 128) or a hang. Exits 77 (skipped) without a Vulkan device.
#
# Host OOM: address-space limits are scanned from the smallest one at which the binary starts
# up to 64 MiB above it; there `info`, `tokenize` and `run` fail while mapping the model, in the
# tokenizer or while the Vulkan loader/driver starts, and must do so cleanly. Higher limits are
# not tested: there lavapipe's LLVM crashes (SIGSEGV inside vkCreateComputePipelines) when an
# allocation fails, and whether our own buffer creation or the driver fails first varies from
# run to run; device OOM is covered by VKMOE_FAULT=device_alloc:N and tests/test_gpu_faults.c.
# Sanitizer builds cannot run under a small address-space limit: that part is skipped there.
# usage: cli_faults.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir faults
TINY=$FIX/tiny-v3-f32.gguf

cli_skip_without_device
if ! "$VKMOE" run -m "$TINY" -p Hello -n 1 --temp 0 --quiet >"$TMP/probe.out" 2>&1; then
    echo "SKIP: the engine cannot run $TINY:"
    head -5 "$TMP/probe.out"
    exit 77
fi

# ---- injected faults (VKMOE_FAULT) ----
expect "logits, device lost at submission 3" 1 "^vkmoe: .*device was lost" -- \
    env VKMOE_FAULT=device_lost:3 "$VKMOE" logits -m "$TINY" --tokens "1 2 3 4 5" --step \
    -o "$TMP/lost.f32"
ok "no logits file after a device loss" test ! -e "$TMP/lost.f32"
expect "logits, device lost at submission 1 (batch)" 1 "^vkmoe: .*device was lost" -- \
    env VKMOE_FAULT=device_lost:1 "$VKMOE" logits -m "$TINY" --tokens "1 2 3" -o "$TMP/lost.f32"
# (the message may follow generated text on the same line: no ^)
expect "run, device lost during generation" 1 "vkmoe: .*device was lost" -- \
    env VKMOE_FAULT=device_lost:3 "$VKMOE" run -m "$TINY" -p hi -n 10 --temp 0 --quiet
expect "run, device OOM at the 2nd buffer" 1 "^vkmoe: .*out of device memory" -- \
    env VKMOE_FAULT=device_alloc:2 "$VKMOE" run -m "$TINY" -p hi -n 4 --quiet
expect "run, device OOM at the 1st buffer" 1 "^vkmoe: .*out of device memory" -- \
    env VKMOE_FAULT=device_alloc:1 "$VKMOE" run -m "$TINY" -p hi -n 4 --quiet
# The session's buffers come after the engine's; how many allocations the engine makes depends
# on the device (staging buffers where device memory is not host visible), so N is searched.
for n in 3 4 5 6 7 8 9 10 11 12; do
    out=$(env VKMOE_FAULT=device_alloc:$n "$VKMOE" logits -m "$TINY" --tokens "1 2" \
        -o "$TMP/oom.f32" 2>&1)
    rc=$?
    grep -qE "^vkmoe: session: .*out of device memory" <<<"$out" && break
    check "logits, device OOM at allocation $n: exit 1 with a message (got $rc)" \
        test "$rc" -eq 1 -a -n "$(grep -E '^vkmoe: .*out of device memory' <<<"$out")"
done
expect "logits, device OOM in the session" 1 "^vkmoe: session: .*out of device memory" -- \
    env VKMOE_FAULT=device_alloc:$n "$VKMOE" logits -m "$TINY" --tokens "1 2" -o "$TMP/oom.f32"
expect "both faults armed" 1 "^vkmoe: .*out of device memory" -- \
    env VKMOE_FAULT=device_lost:1,device_alloc:1 "$VKMOE" run -m "$TINY" -p hi -n 2 --quiet
expect "a fault beyond the run changes nothing" 0 "" -- \
    env VKMOE_FAULT=device_lost:100000 "$VKMOE" run -m "$TINY" -p hi -n 2 --quiet
expect "a bad VKMOE_FAULT is ignored with a warning" 0 "ignoring VKMOE_FAULT" -- \
    env VKMOE_FAULT=device_melt:1 "$VKMOE" run -m "$TINY" -p hi -n 2 --quiet
expect "VKMOE_FAULT with a bad count" 0 "ignoring VKMOE_FAULT" -- \
    env VKMOE_FAULT=device_lost:0 "$VKMOE" run -m "$TINY" -p hi -n 2 --quiet

# ---- Ctrl-C during a long run: exit 130 and the timings ----
"$VKMOE" run -m "$TINY" -p hi -n 100000 -c 4096 --temp 0 >"$TMP/int.out" 2>"$TMP/int.err" &
pid=$!
for _ in $(seq 300); do [ -s "$TMP/int.out" ] && break; sleep 0.1; done
sleep 1
kill -INT "$pid"
for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: run did not stop within 30 s of SIGINT"
    kill -KILL "$pid"
    fail=$((fail + 1))
fi
wait "$pid"
ok "run SIGINT exits 130" test $? -eq 130
ok "run SIGINT prints the load timing" grep -q "load .* s" "$TMP/int.err"
ok "run SIGINT prints the generation timing" grep -q "generate .* tokens/s" "$TMP/int.err"
ok "run SIGINT generated something first" test -s "$TMP/int.out"

# ---- malformed model files: exit 1 at load, never SIGBUS ----
cp "$TINY" "$TMP/trunc.gguf"
truncate -s -1 "$TMP/trunc.gguf"
expect "run, model truncated by one byte" 1 "^vkmoe: .*trunc.gguf" -- \
    "$VKMOE" run -m "$TMP/trunc.gguf" -p hi -n 2
expect "logits, model truncated by one byte" 1 "^vkmoe: .*trunc.gguf" -- \
    "$VKMOE" logits -m "$TMP/trunc.gguf" --tokens "1 2" -o "$TMP/t.f32"
# info still shows the metadata, the truncation as a warning (exit 0)
expect "info, model truncated by one byte" 0 "^vkmoe: warning: .*trunc.gguf.*truncated" -- \
    "$VKMOE" info -m "$TMP/trunc.gguf"
head -c 100 "$TINY" >"$TMP/head.gguf"
expect "run, model cut inside the header" 1 "^vkmoe: .*head.gguf" -- \
    "$VKMOE" run -m "$TMP/head.gguf" -p hi -n 2
: >"$TMP/empty.gguf"
expect "run, empty model file" 1 "^vkmoe: .*empty.gguf" -- \
    "$VKMOE" run -m "$TMP/empty.gguf" -p hi -n 2

# ---- unreadable model paths: exit 1 ----
expect "run, nonexistent model" 1 "^vkmoe: .*nonexistent.gguf" -- \
    "$VKMOE" run -m "$TMP/nonexistent.gguf" -p hi
expect "run, model is a directory" 1 "^vkmoe: " -- "$VKMOE" run -m "$TMP" -p hi
expect "run, model under a regular file" 1 "^vkmoe: .*x.gguf" -- \
    "$VKMOE" run -m "$TINY/x.gguf" -p hi
expect "logits, model is a directory" 1 "^vkmoe: " -- \
    "$VKMOE" logits -m "$TMP" --tokens 1 -o "$TMP/d.f32"
cp "$TINY" "$TMP/noread.gguf"
chmod 000 "$TMP/noread.gguf"
if [ -r "$TMP/noread.gguf" ]; then
    echo "note: running as root: a mode-000 file is still readable; that check is skipped"
else
    expect "run, unreadable model" 1 "^vkmoe: .*noread.gguf" -- \
        "$VKMOE" run -m "$TMP/noread.gguf" -p hi
fi

# ---- bad flags and values: exit 2 with the usage line ----
R=("$VKMOE" run -m "$TINY" -p hi)
for bad in "--bogus" "-x" "-n" "-c" "--device" "--seed" "-n abc" "-c abc" "--temp nan" \
    "--top-k 1e3" "--seed x" "-n -7" "-c -5" "-c 16777217" "--top-k -1" "--device -1" \
    "--device abc" "-c 99999999999999999999"; do
    # shellcheck disable=SC2086
    expect "run $bad" 2 "^usage: vkmoe run" -- "${R[@]}" $bad
done
L=("$VKMOE" logits -m "$TINY" --tokens "1 2" -o "$TMP/l.f32")
for bad in "--bogus" "--ctx" "--ctx -1" "--ctx abc" "--vram-budget -5" "--vram-budget 0" \
    "--vram-budget x" "--device" "--device -2" "--expert-policy fifo"; do
    # shellcheck disable=SC2086
    expect "logits $bad" 2 "^usage: vkmoe logits" -- "${L[@]}" $bad
done
expect "logits, a token that is not a number" 2 "^usage: vkmoe logits" -- \
    "$VKMOE" logits -m "$TINY" --tokens "1 x" -o "$TMP/l.f32"
expect "logits, a negative token id" 1 "outside the vocabulary" -- \
    "$VKMOE" logits -m "$TINY" --tokens "1 -3" -o "$TMP/l.f32"
expect "logits, a token id past the vocabulary" 1 "outside the vocabulary" -- \
    "$VKMOE" logits -m "$TINY" --tokens "99999" -o "$TMP/l.f32"

# ---- --device out of range ----
# The rule: exit 2 with a message naming the device and the usage line.
device_oob() {
    local name=$1
    shift
    local out rc
    out=$("$@" </dev/null 2>&1)
    rc=$?
    if [ "$rc" -eq 2 ] && grep -q "^usage:" <<<"$out" && grep -q "99" <<<"$out"; then
        pass=$((pass + 1))
    else
        echo "FAIL: $name: exit $rc"
        echo "$out" | head -5
        fail=$((fail + 1))
    fi
}
device_oob "run --device 99" "${R[@]}" --device 99
device_oob "logits --device 99" "${L[@]}" --device 99
device_oob "chat --device 99" "$VKMOE" chat -m "$TINY" --chat-template deepseek3 --device 99
device_oob "bench -m --device 99" "$VKMOE" bench -m "$TINY" --device 99 --quiet
device_oob "bench --micro --device 99" "$VKMOE" bench --micro --quick --device 99 --quiet
device_oob "devices --device 99" "$VKMOE" devices --device 99

# ---- host OOM under an address-space limit (see the top of the file) ----
limited() { # limited KB COMMAND...: runs the command under ulimit -v KB, prints output + rc
    (
        ulimit -v "$1" || exit 125
        shift
        "$@" 2>&1
    )
}
base=0
for kb in $(seq 2048 2048 262144); do
    if limited "$kb" "$VKMOE" --help >/dev/null 2>&1; then
        base=$kb
        break
    fi
done
if [ "$base" -eq 0 ] || ! limited $((base + 524288)) "$VKMOE" --help >/dev/null 2>&1; then
    echo "note: the binary does not start under an address-space limit (sanitizer build?);" \
        "host OOM checks skipped"
else
    declare -A failed_clean=()
    for kb in $(seq "$base" 2048 $((base + 65536))); do
        for cmd in info tokenize run; do
            case $cmd in
            info) args=(info -m "$FIX/small-v3-q4_k_m.gguf") ;;
            tokenize) args=(tokenize -m "$FIX/small-v3-q4_k_m.gguf" -p "Hello world, a test") ;;
            run) args=(run -m "$TINY" -p hi -n 2 --quiet) ;;
            esac
            out=$(limited "$kb" "$VKMOE" "${args[@]}")
            rc=$?
            if [ "$rc" -eq 1 ] && grep -q "^vkmoe: " <<<"$out"; then
                failed_clean[$cmd]=1
                pass=$((pass + 1))
            elif [ "$rc" -eq 0 ] || [ "$rc" -eq 127 ]; then # ok, or the loader gave up
                pass=$((pass + 1))
            else
                echo "FAIL: $cmd under ulimit -v $kb: exit $rc"
                echo "$out" | tail -5
                fail=$((fail + 1))
            fi
        done
    done
    for cmd in info tokenize run; do
        ok "$cmd fails cleanly under some address-space limit" test -n "${failed_clean[$cmd]:-}"
    done
fi

cli_done
