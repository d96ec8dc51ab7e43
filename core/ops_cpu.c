/* ops_cpu.c - the CPU-device family's matmul recording (ops_cpu.h): the variant of
 * shaders/cpu/matmul_lane.comp, its specialization constants, and the column windows of
 * lavapipe's loop limit.
 *
 * Invariants: the kernels are made with the push size of vkm_matmul_cpu_push and dispatched with
 * one (the GPU kernels' block and the window); every dispatch of a matmul uses the same kernel,
 * chosen once by ops_matmul.c for the whole tensor, whatever its weight windows. */
#include "ops_cpu.h"

#include "../shaders/cpu/matmul_cpu.h"
#include "err.h"
#include "qtype.h"

bool vkm_op_cpu_texel(vkm_gpu *gpu, const vkm_gpu_arg *args) {
    return vkm_gpu_texel_window(gpu, &args[0]) && vkm_gpu_texel_window(gpu, &args[1]);
}

/* The kernel's X columns per pass for `cols` expected ones: the power of two >= cols, at most
 * VKM_MM_VEC_MAX_COLS (the code grows with it). */
static uint32_t pass_cols(int64_t cols) {
    uint32_t nc = 1;
    while (nc < cols && nc < VKM_MM_VEC_MAX_COLS) nc *= 2;
    return nc;
}

int vkm_op_cpu_matmul_kernel(vkm_gpu *gpu, vkm_gemv_tuning *t, bool id, uint32_t wtype,
                             int64_t cols, bool xal, bool wal, const vkm_matmul_push *pc,
                             const vkm_gpu_arg *args, int n_bind, vkm_gpu_kernel **out) {
    /* The texel kernels keep 2 rows per thread for several columns too: lavapipe compiles them
     * like the 4-row 64-bit kernels (8-9 s for a Q4_K GEMM variant), runs them 1.2-1.3x faster
     * (GEMM, 64 columns), and their 4-row variants compile 1.8x slower (measured, 2 cores). */
    const bool tex = vkm_op_cpu_texel(gpu, args);
    if (tex) t->rows = 2;
    const vkm_matmul_family fam = tex                         ? VKM_MMK_TEX
                                  : vkm_gpu_plan(gpu)->lane64 ? VKM_MMK_LANE64
                                                              : VKM_MMK_LANE32;
    const vkm_shader_id shader = vkm_kernels_matmul_shader(fam, id, wtype);
    if (shader == VKM_SHADER_COUNT)
        return vkm_error(VKM_EUNSUPPORTED, "matmul: no %s kernel for weight type %s",
                         vkm_kernels_family_name(fam), vkm_qtype_name(wtype));
    /* WG, ROWS, NC; XAL, WAL; IDH, GLU: the form of the dispatch (the other is compiled out:
     * llvmpipe runs both sides of a branch, so these are chosen per dispatch, not tested in the
     * shader) */
    const uint32_t spec[7] = {
        t->wg, t->rows, pass_cols(cols), xal, wal, id && pc->mode == VKM_MM_ID_HEADS, pc->glu != 0};
    VKM_ASSERT(spec[0] <= VKM_MM_VEC_MAX_WG && spec[1] <= VKM_MM_VEC_MAX_ROWS);
    return vkm_gpu_kernel_get(gpu, shader, spec, 7, n_bind, sizeof(vkm_matmul_cpu_push), out);
}

uint32_t vkm_op_cpu_rows_per_wg(const vkm_gemv_tuning *t, bool glu) {
    return t->wg * (glu ? 1 : t->rows);
}

/* Loop iterations one invocation may spend: lavapipe (gallivm) ends a shader invocation after
 * 65535 loop iterations in all, silently, so a GEMM whose column passes times k-steps would
 * exceed it is split into several dispatches over column windows (vkm_matmul_cpu_push.c_begin,
 * c_end); the margin covers the kernel's small loops outside the k loop. */
#define LANE_LOOP_BUDGET 50000u

/* Whether the kernel walks a block of wtype in a loop over its runs of 32 elements, each a loop
 * of 8 groups (the IQ types, matmul_lane.comp): 9 loop steps a run against the limit above. */
static bool lane_runs32(uint32_t wtype) {
    switch (wtype) {
    case VKM_IQ1_S:
    case VKM_IQ1_M:
    case VKM_IQ2_XXS:
    case VKM_IQ2_XS:
    case VKM_IQ2_S:
    case VKM_IQ3_XXS:
    case VKM_IQ3_S:
    case VKM_IQ4_NL:
    case VKM_IQ4_XS:
        return true;
    default:
        return false;
    }
}

int vkm_op_cpu_matmul_dispatch(vkm_gpu *gpu, vkm_gpu_kernel *kern, const vkm_gemv_tuning *t,
                               uint32_t wtype, int64_t cols, int64_t nc_cols,
                               const vkm_gpu_arg *args, int n_args, const vkm_matmul_push *pc,
                               uint32_t gx, uint32_t gy, uint32_t gz) {
    const vkm_qtype_info *ti = vkm_qtype_get(wtype);
    const bool flt = wtype == VKM_F32 || wtype == VKM_F16 || wtype == VKM_BF16;
    const uint64_t nc = pass_cols(nc_cols); /* the kernel's columns per pass */
    /* per pass: the k steps, the float types' 4-element tail (each with a small loop per row and
     * column), the pass's own setup */
    uint64_t steps =
        lane_runs32(wtype) ? pc->k / 32u * 9u + 4 : pc->k / (flt ? 32u : ti->block) + 4;
    if (flt && pc->k % 32) steps += 8 * 5 * nc * t->rows;
    const uint64_t passes = LANE_LOOP_BUDGET / steps;
    const uint64_t window = (passes ? passes : 1) * nc;
    vkm_matmul_cpu_push cp = {.mm = *pc};
    int rc = 0;
    for (uint64_t c = 0; c < (uint64_t)cols && !rc; c += window) {
        cp.c_begin = (uint32_t)c;
        cp.c_end = c + window < UINT32_MAX ? (uint32_t)(c + window) : UINT32_MAX;
        rc = vkm_gpu_dispatch(gpu, kern, args, n_args, &cp, gx, gy, gz);
    }
    return rc;
}
