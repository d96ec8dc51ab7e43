#!/bin/bash
# cli_devices.sh - `vkmoe devices`: listing, --json, --test (smoke shader), exit codes.
# Usage: bash cli_devices.sh <vkmoe> <fixtures-dir>. Exits 77 (skipped) with no Vulkan device.
vkmoe="$1"
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh" # pass, fail, check, cli_done
out=$(mktemp)
trap 'rm -f "$out"' EXIT

"$vkmoe" devices >"$out" 2>&1
rc=$?
if [ $rc -ne 0 ] && grep -qi "no vulkan" "$out"; then
    echo "SKIP: no Vulkan device: $(cat "$out")"
    exit 77
fi
check "devices exits 0 (got $rc)" test $rc -eq 0
check "devices lists a device with its vendor and type" grep -qE "vendor .*, type " "$out"
check "devices marks the default device" grep -q '^\* [0-9]' "$out"
check "devices shows features" grep -q "features:" "$out"

"$vkmoe" devices --json >"$out" 2>&1
check "devices --json exits 0" test $? -eq 0
check "devices --json is an array with a name" grep -q '"name": ' "$out"
check "devices --json gives the host-import alignment" grep -q '"import_align": [0-9]' "$out"
if command -v python3 >/dev/null; then
    check "devices --json parses" python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$out"
fi

"$vkmoe" devices --test >"$out" 2>&1
rc=$?
check "devices --test exits 0 (got $rc: $(tail -1 "$out"))" test $rc -eq 0
check "devices --test prints smoke test: ok" grep -q "smoke test: ok" "$out"

"$vkmoe" devices --device 0 --test >"$out" 2>&1
check "devices --device 0 --test exits 0" test $? -eq 0

# a bad kernel-layout override (diagnostics, core/gpu.h) is a clean error naming the variable
VKMOE_KERNELS=bogus "$vkmoe" devices --test >"$out" 2>&1
rc=$?
check "VKMOE_KERNELS=bogus exits 1 (got $rc)" test $rc -eq 1
check "VKMOE_KERNELS=bogus names the variable" grep -q "VKMOE_KERNELS=bogus" "$out"
VKMOE_KERNELS=ksplit "$vkmoe" devices --test >"$out" 2>&1
check "VKMOE_KERNELS=ksplit devices --test exits 0" test $? -eq 0

"$vkmoe" devices --device 99 >"$out" 2>&1
rc=$?
check "devices --device 99 exits 2 (got $rc)" test $rc -eq 2
check "devices --device 99 says it does not exist" grep -q "does not exist" "$out"

"$vkmoe" devices --device abc >"$out" 2>&1
rc=$?
check "devices --device abc exits 2 (got $rc)" test $rc -eq 2
check "devices --device abc prints usage" grep -q "usage:" "$out"

"$vkmoe" devices --device >"$out" 2>&1
check "devices --device without value exits 2" test $? -eq 2

"$vkmoe" devices --bogus >"$out" 2>&1
check "devices --bogus exits 2" test $? -eq 2

"$vkmoe" devices --help >"$out" 2>&1
check "devices --help exits 0" test $? -eq 0
check "devices --help prints usage" grep -q "usage:" "$out"

cli_done
