#!/usr/bin/env bash
# lint_vk_tables.sh - every device-level Vulkan call in vk/ goes through the device's volk table
# (`d->vk.vkCmdDispatch(...)`, volkLoadDeviceTable), never through volk's global function
# pointers, which dispatch through the loader and belong to the last device volk loaded. Newer
# volk enforces this at compile time with VOLK_NO_DEVICE_PROTOTYPES; Debian 12's volk (header
# version 239) predates it, so this test lists the functions of struct VolkDeviceTable from the
# system volk.h and fails on any call of one of them in vk/*.c that is not a member access.
# Exits 77 (skipped) when volk.h is not found.
# usage: lint_vk_tables.sh SOURCE_DIR [VOLK_H]
set -u
src=${1:?usage: lint_vk_tables.sh SOURCE_DIR [VOLK_H]}
volk=${2:-/usr/include/volk.h}
[ -r "$volk" ] || { echo "SKIP: $volk not found"; exit 77; }
fns=$(awk '/^struct VolkDeviceTable$/,/^};/' "$volk" | sed -n 's/.*PFN_\(vk[A-Za-z0-9]*\) .*/\1/p' |
    sort -u)
n=$(wc -w <<<"$fns")
[ "$n" -gt 100 ] || { echo "FAIL: only $n functions found in $volk's VolkDeviceTable"; exit 1; }
pattern="(^|[^.>A-Za-z0-9_\"])($(tr '\n' '|' <<<"$fns" | sed 's/|$//'))[[:space:]]*\\("
hits=$(grep -nE "$pattern" "$src"/vk/*.c "$src"/vk/*.h | grep -vE '^[^:]*:[0-9]+:[[:space:]]*(/\*|\*)')
if [ -n "$hits" ]; then
    echo "FAIL: device-level Vulkan calls outside the device table:"
    echo "$hits"
    exit 1
fi
echo "ok: no call of the $n device-level functions outside the device table in vk/"
