#!/usr/bin/env bash
# cli_shaders.sh - `vkmoe bench --shaders`: every pipeline the fixture models use compiles for real
# AMD ISA on Mesa's RADV null device (no GPU needed: RADV_FORCE_FAMILY=gfx1100 = RX 7900 XTX,
# navi21 = RX 6800/6900, polaris10 = RX 480/580) with the kernel plan's specialization constants,
# the driver reports statistics for each (VGPRs, code size, occupancy), none spills registers,
# the GEMV kernels' main loops are found in the disassembly and the decode GEMVs' (gemv) loops
# stay straight-line (few full drains of the loads, <= 64 VGPRs), their integer-dot variants
# (gemv_q8_*, quant_q8) where the chip accelerates 4x8-bit dot products and not elsewhere nor in
# the float layout; the JSON has one entry per pipeline;
# the IQ fixtures' gemv variants likewise (all chips build them, no spills, the same loop bounds);
# the same runs compile-only on the default device (lavapipe: no statistics, said so); usage
# errors exit 2. The RADV part is skipped (noted) where the radeon ICD is not installed; the
# whole script exits 77 without any Vulkan device.
# usage: cli_shaders.sh VKMOE_BINARY FIXTURES_DIR
set -u
# shellcheck source=lib_cli.sh source-path=SCRIPTDIR
. "$(dirname "$0")/lib_cli.sh"
cli_tmpdir shaders
Q4=$FIX/small-v3-q4_k_m.gguf
F32=$FIX/tiny-v3-f32.gguf

cli_skip_without_device

expect "--shaders without -m" 2 "--shaders needs -m MODEL" -- "$VKMOE" bench --shaders
expect "--shaders with -p" 2 "--shaders takes only" -- "$VKMOE" bench --shaders -m "$Q4" -p 16
expect "--shaders with two models" 2 "take one model" -- "$VKMOE" bench --shaders -m "$Q4,$F32"
expect "--shaders on a missing file" 1 "nonexistent.gguf" -- \
    "$VKMOE" bench --shaders -m "$TMP/nonexistent.gguf"
expect "--shaders on the default device" 0 "[0-9]+ pipelines built" -- \
    "$VKMOE" bench --shaders -m "$F32"

# rows of the table: name spec VGPR SGPR code occ spill | loop...
rows() { sed -n '/^pipeline /,$p' "$1" | tail -n +2 | grep -v '^vkmoe:'; }

ICD=/usr/share/vulkan/icd.d/radeon_icd.x86_64.json
if [ ! -r "$ICD" ]; then
    echo "note: $ICD not found: the RADV null-device checks are skipped"
    cli_done
    exit $?
fi
# the kernel plan of each chip (devices --kernels needs no queues: compile-only)
for fr in "gfx1100:AMD RDNA" "navi21:AMD RDNA" "polaris10:AMD GCN"; do
    expect "devices --kernels on ${fr%%:*}: the ${fr#*:} row" 0 "kernel plan: GPU family, ${fr#*:} row" \
        -- env VK_ICD_FILENAMES="$ICD" RADV_FORCE_FAMILY="${fr%%:*}" "$VKMOE" devices --kernels
done
for fam in gfx1100 navi21 polaris10; do
    for m in "$Q4" "$F32"; do
        name="$fam $(basename "$m")"
        VK_ICD_FILENAMES=$ICD RADV_FORCE_FAMILY=$fam "$VKMOE" bench --shaders -m "$m" \
            --json "$TMP/$fam.json" >"$TMP/$fam.out" 2>"$TMP/$fam.err"
        rc=$?
        ok "$name: exit 0 (got $rc: $(head -c 300 "$TMP/$fam.err"))" test $rc -eq 0
        n=$(sed -n 's/^\([0-9]*\) pipelines for .* on Null hardware (RADV .*/\1/p' "$TMP/$fam.out")
        ok "$name: on the RADV null device, pipelines listed (${n:-none})" test "${n:-0}" -gt 5
        ok "$name: every pipeline built with driver statistics" \
            grep -q "vkmoe: $n pipelines built, $n with driver statistics" "$TMP/$fam.err"
        ok "$name: the table has a row per pipeline" test "$(rows "$TMP/$fam.out" | wc -l)" -eq "$n"
        ok "$name: VGPRs reported for every pipeline" \
            test "$(rows "$TMP/$fam.out" | awk '$3 <= 0' | wc -l)" -eq 0
        ok "$name: no register spills" test "$(rows "$TMP/$fam.out" | awk '$7 != 0' | wc -l)" -eq 0
        ok "$name: the GEMV main loops are found in the ISA" \
            test "$(rows "$TMP/$fam.out" | grep '^matmul_sg' | grep -c '| *-$')" -eq 0
        # the decode GEMVs (shaders/gemv.comp): straight-line main loops whose loads are issued
        # together: at most one full drain (vmcnt(0)) per 3 vector loads (matmul_sg: one per
        # load), at most 64 VGPRs; their several-column variants (batched decode of several
        # streams, spec 2 = columns per pass > 1) only have to build without spills (above)
        g=$(rows "$TMP/$fam.out" | grep -c '^gemv')
        ok "$name: the GPU plan uses the gemv kernels ($g)" test "$g" -gt 0
        bad=$(rows "$TMP/$fam.out" |
            awk '/^gemv/ { split($2, sp, ","); if (sp[3] == 1 && ($3 > 64 || $NF * 3 > $(NF - 2))) print }')
        ok "$name: one-column gemv loops drain at most once per 3 loads, <= 64 VGPRs${bad:+: $bad}" \
            test -z "$bad"
        ok "$name: the JSON lists every pipeline" \
            test "$(grep -c '"built":	true' "$TMP/$fam.json")" -eq "$n"
        # gemv's integer-dot variants (8-bit X, quant_q8) where RADV says 4x8-bit dot products
        # are accelerated (RDNA2+; not GCN gfx8), for the Q4_K_M file's block types (the checks
        # above hold for them too: no spills, <= 64 VGPRs, the drain bound)
        q=$(rows "$TMP/$fam.out" | grep -c '^gemv_q8')
        qq=$(rows "$TMP/$fam.out" | grep -c '^quant_q8 ')
        if [ "$m" = "$Q4" ] && [ "$fam" != polaris10 ]; then
            ok "$name: integer-dot GEMVs and the activation quantizer ($q, $qq)" \
                test "$q" -ge 5 -a "$qq" -eq 1
        else
            ok "$name: no integer-dot GEMVs ($q)" test "$q" -eq 0 -a "$qq" -eq 0
        fi
    done
done
# the IQ fixtures (all 9 IQ types but IQ2_XS, which no fixture has; test_gpu_iq checks its
# kernels): gemv's IQ variants build for every chip without spills, and their one-column loops
# keep the drain and VGPR bounds above; the integer-dot ones (all 9 IQ types) where the chip
# accelerates 4x8-bit dot products; every fixture on gfx1100, two (IQ1_S, IQ2_XXS, IQ4_NL, IQ2_S,
# IQ3_S) on navi21 and polaris10
for fam in gfx1100 navi21 polaris10; do
    for f in iq1_s iq2_m iq1_m iq2_xxs iq3_xxs iq4_xs; do
        case $fam:$f in gfx1100:* | *:iq1_s | *:iq2_m) ;; *) continue ;; esac
        name="$fam $f"
        VK_ICD_FILENAMES=$ICD RADV_FORCE_FAMILY=$fam "$VKMOE" bench --shaders \
            -m "$FIX/iq/small-v3-$f.gguf" >"$TMP/iq.out" 2>"$TMP/iq.err"
        rc=$?
        ok "$name: exit 0 (got $rc: $(head -c 300 "$TMP/iq.err"))" test $rc -eq 0
        n=$(sed -n 's/^\([0-9]*\) pipelines for .* on Null hardware (RADV .*/\1/p' "$TMP/iq.out")
        ok "$name: every pipeline built with driver statistics (${n:-none})" \
            grep -q "vkmoe: $n pipelines built, $n with driver statistics" "$TMP/iq.err"
        ok "$name: no register spills" test "$(rows "$TMP/iq.out" | awk '$7 != 0' | wc -l)" -eq 0
        # (float X, or 8-bit X where 4x8-bit dot products are accelerated)
        g=$(rows "$TMP/iq.out" | awk '/^gemv(_q8)?(_id)?_iq/ { split($2, sp, ","); if (sp[3] == 1) n++ }
                                     END { print n + 0 }')
        ok "$name: the GPU plan uses gemv's IQ variants ($g one-column)" test "$g" -ge 2
        q=$(rows "$TMP/iq.out" | grep -c '^gemv_q8\(_id\)\?_iq')
        if [ "$fam" = polaris10 ]; then
            ok "$name: no integer-dot IQ GEMVs here ($q)" test "$q" -eq 0
        else
            ok "$name: integer-dot IQ GEMVs ($q)" test "$q" -ge 1
        fi
        bad=$(rows "$TMP/iq.out" |
            awk '/^gemv/ { split($2, sp, ","); if (sp[3] == 1 && ($3 > 64 || $NF * 3 > $(NF - 2))) print }')
        ok "$name: one-column gemv loops drain at most once per 3 loads, <= 64 VGPRs${bad:+: $bad}" \
            test -z "$bad"
    done
done
# the float layout turns them off (bench --shaders' before / after)
VKMOE_KERNELS=float VK_ICD_FILENAMES=$ICD RADV_FORCE_FAMILY=gfx1100 "$VKMOE" bench --shaders \
    -m "$Q4" >"$TMP/float.out" 2>"$TMP/float.err"
ok "gfx1100 float layout: exit 0" test $? -eq 0
ok "gfx1100 float layout: gemv without integer-dot variants" \
    test "$(rows "$TMP/float.out" | grep -c '^gemv_q8')" -eq 0 -a \
    "$(rows "$TMP/float.out" | awk '/^gemv_q4_k / { split($2, sp, ","); if (sp[3] == 1) n++ }
                                 END { print n + 0 }')" -eq 1
cli_done
