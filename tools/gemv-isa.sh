#!/usr/bin/env bash
# gemv-isa.sh - the README's static ISA figures of the decode GEMV main loops: compiles the built
# gemv / matmul_sg / matmul_vec SPIR-V for an AMD chip on RADV's null device (no GPU needed) with
# ../shared/tools/isa-stats and prints, per type, the innermost loop's executed path per 256
# weights of a wave (instructions, VALU, branches), vmcnt(0) drains per KiB of weights, VGPRs.
#
# usage: tools/gemv-isa.sh [BUILD_DIR] [FAMILY]   (defaults: build, gfx1100; e.g. navi21)
# env: ISA_STATS=path of the isa-stats binary (built to /tmp/isa-stats when absent),
#      KERNELS="gemv q8 sg ksplit" (which kernels; q8 = gemv's integer-dot variants, 8-bit X), GLU=1 (gemv's gated form), WAL=0 (2-byte W),
#      TYPES="q4_k iq2_xs ..." (which types; default all, the IQ types included).
# Spec constants as core/kernels.c picks them for subgroup 64 (n = 1, X 16-byte aligned).
set -euo pipefail
build=${1:-build}
family=${2:-gfx1100}
tool=${ISA_STATS:-/tmp/isa-stats}
src=$(dirname "$0")/../../shared/tools/isa-stats/isa-stats.c
if [ ! -x "$tool" ]; then
  cc -O2 -std=c11 -o "$tool" "$src" -lvulkan -lSPIRV-Tools -lstdc++ -lm
fi
export VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/radeon_icd.x86_64.json RADV_FORCE_FAMILY=$family

# type:bytes per weight
types="f32:4 f16:2 bf16:2 q4_0:0.5625 q4_1:0.625 q5_0:0.6875 q5_1:0.75 q8_0:1.0625
q2_k:0.328125 q3_k:0.4296875 q4_k:0.5625 q5_k:0.6875 q6_k:0.8203125
iq1_s:0.1953125 iq1_m:0.21875 iq2_xxs:0.2578125 iq2_xs:0.2890625 iq2_s:0.3203125
iq3_xxs:0.3828125 iq3_s:0.4296875 iq4_nl:0.5625 iq4_xs:0.53125"
# TYPES="q4_k iq2_xs ..." restricts the list
if [ -n "${TYPES:-}" ]; then
  sel=
  for t in $types; do
    case " $TYPES " in *" ${t%%:*} "*) sel="$sel $t" ;; esac
  done
  types=$sel
fi

# prints one line: NAME, weights per lane per loop trip, bytes per weight, isa-stats arguments
row() {
  local name=$1 wpl=$2 bpw=$3
  shift 3
  "$tool" "$@" --walk 2>&1 | awk -v name="$name" -v wpl="$wpl" -v bpw="$bpw" '
    /^  VGPRs = / { vg = $3 }
    /subgroup size/ { for (i = 1; i <= NF; i++) if ($i == "size") sg = $(i + 1) + 0 }
    /^loop 0:/ { blocks = $0; sub(/.*\), /, "", blocks); sub(/ blocks.*/, "", blocks); want = 1; next }
    want && /executed path/ {
      want = 0; n = $3
      for (i = 1; i <= NF; i++) {
        if ($i ~ /^VALU=/) { split($i, a, "="); valu = a[2] }
        if ($i ~ /^branch=/) { split($i, a, "="); br = a[2] }
        if ($i ~ /vmcnt\(0\)=/) { s = $i; sub(/.*vmcnt\(0\)=/, "", s); sub(/,.*/, "", s); d0 = s }
      }
    }
    /isa-stats:/ { err = $0 }
    END {
      if (n == "") { printf "%-16s %s\n", name, err ? err : "no loop"; exit }
      f = 256 / (sg * wpl); kib = sg * wpl * bpw / 1024
      printf "%-16s blocks %3s  instr %6.1f  VALU %6.1f  branch %5.2f  drains/KiB %5.2f  VGPRs %s\n",
             name, blocks, n * f, valu * f, br * f, d0 / kib, vg
    }'
}

echo "main loop per 256 weights, $family (RADV null device), subgroup 64"
for k in ${KERNELS:-gemv sg ksplit}; do
  for t in $types; do
    n=${t%%:*} b=${t##*:}
    case $k in
    gemv)
      id=; glu=0; wpl=32
      case $n in f32 | f16 | bf16) wpl=16 ;; esac
      if [ "${GLU:-0}" = 1 ]; then id=_id glu=1 wpl=$((wpl * 2)); fi
      args=(--spec "0=256" --spec "1=4" --spec "2=1" --spec "4=1")
      [ "$glu" = 1 ] && args+=(--spec "5=1")
      case $n in f32 | f16 | bf16 | q4_k | q5_k) args+=(--spec "3=${WAL:-1}") ;; esac
      row "gemv$id $n" $wpl "$b" "$build/spv/gemv${id}_$n.spv" "${args[@]}"
      ;;
    q8) # gemv's integer-dot variants (8-bit X: gemv_q8_<type>), the types they cover
      case $n in f32 | f16 | bf16) continue ;; esac
      id=; wpl=32
      case $n in q2_k | q3_k | iq[123]_*) wpl=64 ;; esac # two units a trip (gemv_q8.glsl Q8_UPT)
      args=(--spec "0=256" --spec "1=4" --spec "2=1") # no XAL: X is 8-bit blocks
      if [ "${GLU:-0}" = 1 ]; then id=_id wpl=$((wpl * 2)) args+=(--spec "5=1"); fi
      case $n in q4_k | q5_k) args+=(--spec "3=${WAL:-1}") ;; esac
      row "gemv_q8$id $n" $wpl "$b" "$build/spv/gemv_q8${id}_$n.spv" "${args[@]}"
      ;;
    sg) # matmul_sg: two units a trip (float: 16 bytes, Q8_0: 16 weights, IQ: one run of 32, else 32)
      case $n in f32) wpl=8 ;; f16 | bf16) wpl=16 ;; q8_0 | iq*) wpl=32 ;; *) wpl=64 ;; esac
      row "matmul_sg $n" $wpl "$b" "$build/spv/matmul_sg_$n.spv" \
        --spec 0=256 --spec 1=4 --spec 2=1 --spec 3=1
      ;;
    ksplit) # matmul_vec k-split: 4 elements of 2 rows a trip
      row "matmul_vec $n" 8 "$b" "$build/spv/matmul_vec_$n.spv" \
        --spec 0=128 --spec 1=2 --spec 2=1 --spec 3=0
      ;;
    esac
  done
done
