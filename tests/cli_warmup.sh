#!/usr/bin/env bash
# cli_warmup.sh - the warm-up of `vkmoe run` with cold caches (a fresh XDG_CACHE_HOME for vkmoe's
# pipeline cache, Mesa's shader cache off): on a terminal it shows its progress (pipelines built
# / compiled of a total), and Ctrl-C stops it within about a second: exit 130, "interrupted",
# nothing generated. The terminal comes from script(1); the check is skipped without it.
# Exits 77 (skipped) without a Vulkan device.
# usage: cli_warmup.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir warmup
TINY=$FIX/tiny-v3-f32.gguf

cli_skip_without_device
if ! command -v script >/dev/null; then
    echo "SKIP: script(1) is missing (util-linux)"
    exit 77
fi

# piped (not a terminal): no progress line
"$VKMOE" run -m "$TINY" -p hi -n 1 --temp 0 >"$TMP/p.out" 2>"$TMP/p.err"
ok "piped run exits 0" test $? -eq 0
ok "no progress line when stderr is not a terminal" \
    bash -c "! grep -qE 'pipelines (built|compiled)' '$TMP/p.err'"

# cold: nothing cached, so the warm-up compiles every pipeline (seconds on lavapipe)
mkdir -p "$TMP/cache"
export XDG_CACHE_HOME=$TMP/cache MESA_SHADER_CACHE_DISABLE=true
script -qefc "exec $(printf '%q' "$VKMOE") run -m $(printf '%q' "$TINY") -p hi -n 4 --temp 0" \
    /dev/null >"$TMP/tty.out" 2>&1 </dev/null &
spid=$!
for _ in $(seq 600); do grep -aqE "pipelines (built|compiled)" "$TMP/tty.out" && break; sleep 0.05; done
pid=$(pgrep -P "$spid" | head -1)
t0=$(date +%s%N)
[ -n "$pid" ] && kill -INT "$pid"
cli_wait "$spid"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
ok "warm-up progress on a terminal" grep -aqE "warm-up: [0-9]+/[0-9]+ pipelines (built|compiled)" \
    "$TMP/tty.out"
if grep -aq "^vkmoe: generate" "$TMP/tty.out" && ! grep -aq interrupted "$TMP/tty.out"; then
    echo "SKIP: the warm-up ended before the Ctrl-C; $pass passed"
    exit 77
fi
ok "Ctrl-C in the warm-up exits 130 (got $rc)" test "$rc" -eq 130
ok "Ctrl-C in the warm-up says interrupted" grep -aq "interrupted" "$TMP/tty.out"
# within a second of the signal (the pipeline being compiled finishes first, or the process
# exits a second after the signal), plus the process exit; 3 s bound for a loaded machine
ok "Ctrl-C in the warm-up stops at once (${ms} ms)" test "$ms" -lt 3000
ok "Ctrl-C in the warm-up generates nothing" \
    bash -c "! grep -aqE 'generate .* [1-9][0-9]* tokens' '$TMP/tty.out'"

cli_done
