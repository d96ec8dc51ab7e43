# lib_cli.sh - shared bookkeeping of the CLI test scripts (tests/cli_*.sh), sourced by each as
#   . "$(dirname "$0")/lib_cli.sh"
# with the script's own arguments (<vkmoe> <fixtures-dir>) still in $1 and $2. Named so that it
# does not match tests/CMakeLists.txt's cli_*.sh glob: it is not a test itself.
#
# Sets VKMOE=$1, FIX=$2, pass=0, fail=0 and defines:
#   cli_tmpdir NAME             TMP = a fresh /tmp/vkmoe-cli-NAME-XXXXXX, removed on exit
#   cli_skip_without_device     exit 77 (skipped) when `vkmoe devices` fails (needs TMP)
#   expect NAME WANT_RC PATTERN -- COMMAND...
#   ok NAME COMMAND...          passes if the command succeeds (FAIL line on stdout)
#   check NAME COMMAND...       the same with the FAIL line on stderr
#   cli_wait PID [SECONDS]      wait for a background job, at most SECONDS (default 300): then it
#                               is killed, a failure counted and 124 returned; else its status
#   cli_done                    prints the counts; its status (the script's last) is 0 iff none failed
# Every check adds 1 to pass or to fail; a failure prints one "FAIL: NAME..." line.
# shellcheck disable=SC2034 # used by the sourcing scripts
VKMOE=${1-} FIX=${2-}
pass=0
fail=0

cli_tmpdir() {
    TMP=$(mktemp -d "/tmp/vkmoe-cli-$1-XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
}

cli_skip_without_device() {
    if ! "$VKMOE" devices >"$TMP/devices.txt" 2>&1; then
        echo "SKIP: no Vulkan device: $(head -3 "$TMP/devices.txt")"
        exit 77
    fi
}

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

# ok NAME COMMAND...: the command must succeed
ok() {
    local name=$1
    shift
    if "$@"; then
        pass=$((pass + 1))
    else
        echo "FAIL: $name"
        fail=$((fail + 1))
    fi
}

# check NAME COMMAND...: as ok, but the FAIL line goes to stderr
check() {
    local name=$1
    shift
    if "$@"; then pass=$((pass + 1)); else echo "FAIL: $name" >&2; fail=$((fail + 1)); fi
}

cli_wait() {
    local pid=$1 limit=${2:-300} i
    for ((i = 0; i < limit * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "FAIL: process $pid still running after ${limit} s; killed"
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        fail=$((fail + 1))
        return 124
    fi
    wait "$pid"
}

cli_done() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
