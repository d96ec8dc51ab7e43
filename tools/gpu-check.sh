#!/usr/bin/env bash
# gpu-check.sh - the one prepared check for a machine with a real GPU (the `device` tool): builds
# nothing there, runs the binary built here (carried as build/vkmoe) and writes every figure into
# OUTDIR, in well under 8 minutes:
#   devices.txt   `vkmoe devices` and `devices --kernels -m` for both models (the kernel plan)
#   micro.json    `bench --micro` (copy roofline, GEMV GB/s and % of copy per type, GEMM)
#   model.json    `bench -m` on bench-small (Q4_K_M) and a 4-layer v2-lite-shaped Q4_K_M file:
#                 pp512, tg64, pp512+tg64
#   paging.json   `bench --paging` on the v2-lite-shaped file (+ paging.png)
#   serve.json    `bench --serve` on the v2-lite-shaped file: 1/2/4/8 batched streams, and the
#                 expert bytes per token at a 50% expert budget (1 vs 8 streams)
#   profile.txt   `run --profile` on both (per-kernel GPU time, dispatches, host waits and the
#                 host's share of a decode step)
#   log.txt       what ran, each step's time and exit status
# Each step has its own time limit, so one slow step does not lose the others; the models are
# generated there (gen-model is deterministic: the same files as here).
# Before it, with the Vulkan loader and the libraries the binary needs carried as .deb files in
# .gl/ (see the README, "Checking on a GPU"): `for f in .gl/*.deb; do dpkg -x $f /; done; ldconfig`.
# usage: tools/gpu-check.sh OUTDIR [VKMOE_BINARY]   (GPU_CHECK_QUICK=1: small shapes, for a dry run
#        on lavapipe)
set -u
out=${1:?usage: tools/gpu-check.sh OUTDIR [VKMOE_BINARY]}
vk=${2:-build/vkmoe}
mkdir -p "$out" || exit 1
log=$out/log.txt
: >"$log"
models=${TMPDIR:-/tmp}/vkmoe-gpu-check
mkdir -p "$models"
quick=${GPU_CHECK_QUICK:-0}

say() { echo "$*" | tee -a "$log"; }

# step NAME LIMIT_S COMMAND...: runs it with stdout+stderr appended to the log (or redirected by
# the caller inside COMMAND), records its time and status
step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    say "== $name (limit ${limit} s): $*"
    timeout --signal=INT --kill-after=10 "$limit" "$@" >>"$log" 2>&1
    local rc=$?
    say "== $name: exit $rc after $((SECONDS - t0)) s"
    return $rc
}

if [ ! -x "$vk" ]; then
    say "no vkmoe binary at $vk (build it on the machine that calls this and carry build/)"
    exit 1
fi
missing=$(ldd "$vk" 2>/dev/null | grep "not found")
if [ -n "$missing" ]; then
    say "libraries missing for $vk (carry their .deb files in .gl/):"
    say "$missing"
    exit 1
fi
if ! "$vk" devices >"$out/devices.txt" 2>&1; then
    if [ -z "${VK_DRIVER_FILES:-}" ] && [ -r /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json ]; then
        export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
        say "no device found; retrying with VK_DRIVER_FILES=$VK_DRIVER_FILES"
    fi
    if ! "$vk" devices >"$out/devices.txt" 2>&1; then
        say "vkmoe devices failed:"
        cat "$out/devices.txt" | tee -a "$log"
        exit 1
    fi
fi
cat "$out/devices.txt" >>"$log"
say "host: $(nproc) cores, $(uname -m); $(date -u)"

small=$models/bench-small.gguf
lite=$models/v2-lite-4l.gguf
if [ "$quick" = 1 ]; then
    lite=$models/tiny-q4.gguf
    step gen-small 120 "$vk" gen-model --preset bench-small --quant q4_k_m -o "$small" --quiet
    step gen-lite 60 "$vk" gen-model --preset tiny --quant q4_k -o "$lite" --quiet
    P=16 N=8 micro=(--micro --quick -r 2 --max-run 1)
else
    step gen-small 120 "$vk" gen-model --preset bench-small --quant q4_k_m -o "$small" --quiet
    step gen-lite 180 "$vk" gen-model --preset v2-lite --layers 4 --quant q4_k_m -o "$lite" --quiet
    P=512 N=64 micro=(--micro)
fi
for m in "$small" "$lite"; do
    echo "== devices --kernels -m $m" >>"$out/devices.txt"
    "$vk" devices --kernels -m "$m" >>"$out/devices.txt" 2>&1
done

step micro 150 "$vk" bench "${micro[@]}" --json "$out/micro.json"
step model 150 "$vk" bench -m "$small,$lite" -p "$P" -n "$N" -pg "$P,$N" -r 3 --json "$out/model.json"
step paging 120 "$vk" bench --paging -m "$lite" -n "$N" --json "$out/paging.json" --png "$out/paging.png"
step serve 120 "$vk" bench --serve -m "$lite" -n "$N" --json "$out/serve.json"
: >"$out/profile.txt"
for m in "$small" "$lite"; do
    echo "== run --profile -m $m" >>"$out/profile.txt"
    step "profile $(basename "$m")" 60 bash -c '"$1" run -m "$2" -p "Hello world" -n "$3" --temp 0 \
        --profile 2>>"$4" >/dev/null' _ "$vk" "$m" "$N" "$out/profile.txt"
done
say "done in $SECONDS s; files in $out: $(ls "$out" | tr '\n' ' ')"
