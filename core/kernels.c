/* kernels.c - the kernel plan (kernels.h): one fill function per device family and architecture
 * row, the GEMV tuning, and the O(1) tables from (family, weight type) to shader variant.
 *
 * Invariants: a plan never has layout AUTO, CPU32 or CPU64 (those resolve to CPU with lane64 /
 * texel set); the CPU-family flags are only set for subgroup sizes the lane kernels support
 * (matmul 8..64, attention and router 4..64, norms 4..VKM_OPS_RED_WG powers of two). */
#include "kernels.h"

#include <stdlib.h>
#include <string.h>

#include "../shaders/matmul_common.h"
#include "../shaders/ops_common.h"
#include "err.h"
#include "gpu.h"

/* ---- shader tables: every weight type with matmul kernels ---- */

/* the float and classic block types */
#define VKM_KERNEL_TYPES_K(X)                                                                      \
    X(F32)                                                                                         \
    X(F16) X(BF16) X(Q4_0) X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K)
/* the IQ types (ggml's importance-matrix quants: quant.glsl's IQ section) */
#define VKM_KERNEL_TYPES_IQ(X)                                                                     \
    X(IQ1_S) X(IQ1_M) X(IQ2_XXS) X(IQ2_XS) X(IQ2_S) X(IQ3_XXS) X(IQ3_S) X(IQ4_NL) X(IQ4_XS)
#define VKM_KERNEL_TYPES(X) VKM_KERNEL_TYPES_K(X) VKM_KERNEL_TYPES_IQ(X)

/* Entries hold id + 1 so that 0 means "no such variant". */
#define ROW(prefix, T) [VKM_##T] = VKM_SH_##prefix##_##T + 1,
#define TABLE(name, prefix)                                                                        \
    static const uint16_t name[VKM_QTYPE_COUNT] = {VKM_KERNEL_TYPES(ROW_##prefix)};
#define ROW_VEC(T) ROW(MATMUL_VEC, T)
#define ROW_VEC_ID(T) ROW(MATMUL_VEC_ID, T)
#define ROW_SG(T) ROW(MATMUL_SG, T)
#define ROW_SG_ID(T) ROW(MATMUL_SG_ID, T)
#define ROW_MM(T) ROW(MATMUL_MM, T)
#define ROW_MM_ID(T) ROW(MATMUL_MM_ID, T)
#define ROW_LANE(T) ROW(MATMUL_LANE, T)
#define ROW_LANE_ID(T) ROW(MATMUL_LANE_ID, T)
#define ROW_LANE32(T) ROW(MATMUL_LANE32, T)
#define ROW_LANE32_ID(T) ROW(MATMUL_LANE32_ID, T)
#define ROW_TEX(T) ROW(MATMUL_TEX, T)
#define ROW_TEX_ID(T) ROW(MATMUL_TEX_ID, T)
#define ROW_GEMV(T) ROW(GEMV, T)
#define ROW_GEMV_ID(T) ROW(GEMV_ID, T)
#define ROW_GET_ROWS(T) ROW(GET_ROWS, T)
/* gemv.comp decodes these types (shaders/gemv_decode.glsl, the IQ types' units gemv_iq.glsl); a
 * type without a gemv variant keeps matmul_sg / the k-split kernel (gpu_defaults) */
#define VKM_GEMV_TYPES(X) VKM_KERNEL_TYPES_K(X) VKM_KERNEL_TYPES_IQ(X)
static const uint16_t t_gemv[VKM_QTYPE_COUNT] = {VKM_GEMV_TYPES(ROW_GEMV)};
static const uint16_t t_gemv_id[VKM_QTYPE_COUNT] = {VKM_GEMV_TYPES(ROW_GEMV_ID)};
/* gemv's integer-dot variants (shaders/gemv_q8.glsl): 8-bit activations, 4x8-bit dot products;
 * the IQ types' (gemv_iq.glsl) for all 9 (IQ1-IQ3: the signed grid bytes; IQ4_NL / IQ4_XS: their
 * levels are int8 values, looked up as bytes from a table indexed by a byte of nibbles) */
#define VKM_GEMV_Q8_TYPES_IQ(X)                                                                    \
    X(IQ1_S) X(IQ1_M) X(IQ2_XXS) X(IQ2_XS) X(IQ2_S) X(IQ3_XXS) X(IQ3_S) X(IQ4_NL) X(IQ4_XS)
#define VKM_GEMV_Q8_TYPES(X)                                                                       \
    X(Q4_0)                                                                                        \
    X(Q4_1) X(Q5_0) X(Q5_1) X(Q8_0) X(Q2_K) X(Q3_K) X(Q4_K) X(Q5_K) X(Q6_K) VKM_GEMV_Q8_TYPES_IQ(X)
#define ROW_GEMV_Q8(T) ROW(GEMV_Q8, T)
#define ROW_GEMV_Q8_ID(T) ROW(GEMV_Q8_ID, T)
static const uint16_t t_gemv_q8[VKM_QTYPE_COUNT] = {VKM_GEMV_Q8_TYPES(ROW_GEMV_Q8)};
static const uint16_t t_gemv_q8_id[VKM_QTYPE_COUNT] = {VKM_GEMV_Q8_TYPES(ROW_GEMV_Q8_ID)};
TABLE(t_vec, VEC)
TABLE(t_vec_id, VEC_ID)
TABLE(t_sg, SG)
TABLE(t_sg_id, SG_ID)
TABLE(t_mm, MM)
TABLE(t_mm_id, MM_ID)
TABLE(t_lane, LANE)
TABLE(t_lane_id, LANE_ID)
TABLE(t_lane32, LANE32)
TABLE(t_lane32_id, LANE32_ID)
TABLE(t_tex, TEX)
TABLE(t_tex_id, TEX_ID)
TABLE(t_get_rows, GET_ROWS)

static const uint16_t *const matmul_tables[VKM_MMK_COUNT][2] = {
    [VKM_MMK_KSPLIT] = {t_vec, t_vec_id},   [VKM_MMK_SG] = {t_sg, t_sg_id},
    [VKM_MMK_MM] = {t_mm, t_mm_id},         [VKM_MMK_LANE32] = {t_lane32, t_lane32_id},
    [VKM_MMK_LANE64] = {t_lane, t_lane_id}, [VKM_MMK_TEX] = {t_tex, t_tex_id},
    [VKM_MMK_GEMV] = {t_gemv, t_gemv_id},
};

static vkm_shader_id from_table(const uint16_t *t, uint32_t type) {
    if (type >= VKM_QTYPE_COUNT || !t[type]) return VKM_SHADER_COUNT;
    return (vkm_shader_id)(t[type] - 1);
}

vkm_shader_id vkm_kernels_matmul_shader(vkm_matmul_family f, bool id, uint32_t wtype) {
    if ((unsigned)f >= VKM_MMK_COUNT) return VKM_SHADER_COUNT;
    return from_table(matmul_tables[f][id ? 1 : 0], wtype);
}

vkm_shader_id vkm_kernels_gemv_q8_shader(bool id, uint32_t wtype) {
    return from_table(id ? t_gemv_q8_id : t_gemv_q8, wtype);
}

vkm_shader_id vkm_kernels_get_rows_shader(uint32_t type) {
    return from_table(t_get_rows, type);
}

/* ---- names ---- */

static const char *const layout_names[VKM_KERNELS_COUNT] = {
    [VKM_KERNELS_AUTO] = "auto",     [VKM_KERNELS_GPU] = "gpu",   [VKM_KERNELS_CPU] = "cpu",
    [VKM_KERNELS_KSPLIT] = "ksplit", [VKM_KERNELS_SG] = "sg",     [VKM_KERNELS_CPU32] = "cpu32",
    [VKM_KERNELS_CPU64] = "cpu64",   [VKM_KERNELS_IDOT] = "idot", [VKM_KERNELS_FLOAT] = "float"};

const char *vkm_kernels_layout_name(vkm_kernels_layout l) {
    return (unsigned)l < VKM_KERNELS_COUNT ? layout_names[l] : "unknown";
}

const char *vkm_kernels_arch_name(vkm_kernels_arch a) {
    static const char *const n[VKM_ARCH_COUNT] = {
        [VKM_ARCH_GPU_OTHER] = "other GPU", [VKM_ARCH_NVIDIA] = "NVIDIA",
        [VKM_ARCH_AMD_RDNA] = "AMD RDNA",   [VKM_ARCH_AMD_GCN] = "AMD GCN",
        [VKM_ARCH_INTEL] = "Intel",         [VKM_ARCH_CPU_DEVICE] = "CPU device"};
    return (unsigned)a < VKM_ARCH_COUNT ? n[a] : "unknown";
}

const char *vkm_kernels_family_name(vkm_matmul_family f) {
    static const char *const n[VKM_MMK_COUNT] = {
        [VKM_MMK_KSPLIT] = "matmul_vec",  [VKM_MMK_SG] = "matmul_sg",
        [VKM_MMK_MM] = "matmul_mm",       [VKM_MMK_LANE32] = "matmul_lane32",
        [VKM_MMK_LANE64] = "matmul_lane", [VKM_MMK_TEX] = "matmul_tex",
        [VKM_MMK_GEMV] = "gemv"};
    return (unsigned)f < VKM_MMK_COUNT ? n[f] : "unknown";
}

int vkm_kernels_parse(const char *s, const char *what, vkm_kernels_layout *out) {
    for (int i = 0; s && i < VKM_KERNELS_COUNT; i++)
        if (!strcmp(s, layout_names[i])) {
            *out = (vkm_kernels_layout)i;
            return 0;
        }
    return vkm_error(VKM_EINVAL,
                     "%s=%s: expected auto, gpu, cpu, ksplit, sg, cpu32, cpu64, idot or float",
                     what, s ? s : "(null)");
}

int vkm_kernels_env(vkm_kernels_layout *out) {
    const char *env = getenv("VKMOE_KERNELS");
    if (!env || !*env) return 0;
    return vkm_kernels_parse(env, "VKMOE_KERNELS", out);
}

/* ---- architecture ---- */

/* AMD: RDNA (gfx10+) or GCN (gfx6-9) from the PCI device id (Navi 1x-4x are 0x73xx-0x75xx and
 * 0x7Exx; Mesa's RADV also names the chip, "NAVI21", "GFX1100"); APUs and unknown ids count as
 * RDNA when the name says so, else GCN. */
static vkm_kernels_arch amd_arch(const vkm_kernels_caps *c) {
    const uint32_t hi = c->device_id >> 8;
    if (hi == 0x73 || hi == 0x74 || hi == 0x75 || hi == 0x7E) return VKM_ARCH_AMD_RDNA;
    const char *n = c->name ? c->name : "";
    if (strstr(n, "NAVI") || strstr(n, "GFX1") || strstr(n, "gfx1") || strstr(n, "RDNA"))
        return VKM_ARCH_AMD_RDNA;
    return VKM_ARCH_AMD_GCN;
}

static vkm_kernels_arch arch_of(const vkm_kernels_caps *c) {
    if (c->type == VKM_DEV_CPU) return VKM_ARCH_CPU_DEVICE;
    switch (c->vendor) {
    case VKM_VENDOR_NVIDIA:
        return VKM_ARCH_NVIDIA;
    case VKM_VENDOR_AMD:
        return amd_arch(c);
    case VKM_VENDOR_INTEL:
        return VKM_ARCH_INTEL;
    default:
        return VKM_ARCH_GPU_OTHER;
    }
}

/* ---- the GPU family ---- */

/* The GEMV family per type. gemv.comp (a subgroup per row, no branch in its main loop: see the
 * shader) for the types it decodes (all 22: the 13 classic types and the 9 IQ types), at every
 * row count: its main loops, compiled for
 * gfx1100 by RADV's null device (README, ../shared/tools/isa-stats), have at most 1 vmcnt(0) drain
 * per KiB of weights against matmul_sg's 3-13 and the k-split kernel's 13-57, and as few VALU per
 * weight as llama.cpp's (not yet timed on a GPU). For any other type, whether matmul_sg beats the
 * k-split matmul_vec. Measured with bench --micro, both kernels in one session on an NVIDIA H200
 * (README): matmul_sg wins for the float types at every shape (F16: 49-54% of copy on the expert
 * shapes, against 35-36%), and for Q8_0, Q5_x and the K-quants on the expert and attention shapes
 * (Q4_K 7168x2048: 9.5% against 6.9%), while the k-split kernel wins for Q4_0/Q4_1 and, among the
 * block types, on the 129280-row output matrix (gemv_big_rows). */
static void gpu_defaults(vkm_kernel_plan *p) {
    p->gemv_big_rows = 32768;
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) {
        const bool flt = t == VKM_F32 || t == VKM_F16 || t == VKM_BF16;
        const bool q4 = t == VKM_Q4_0 || t == VKM_Q4_1;
        p->gemv_small[t] = q4 ? VKM_MMK_KSPLIT : VKM_MMK_SG;
        p->gemv_big[t] = flt ? VKM_MMK_SG : VKM_MMK_KSPLIT;
        if (t_gemv[t]) p->gemv_small[t] = p->gemv_big[t] = VKM_MMK_GEMV;
    }
    p->fuse.combine_norm = true;
    p->fuse.kv_rope = true;
    /* gemv's gated form, its q_a + kv_a pair and the shared expert as one more z group of the
     * routed dispatches (types without gemv, and GEMMs, fall back to separate dispatches) */
    p->fuse.glu = p->fuse.qa_kva = p->fuse.shared_z = true;
    p->fuse.router_group = true; /* router.comp's GROUP variant for decode */
    p->fuse.attn_pool = true;    /* mla_kv_rope / mla_attn's POOL variants */
}

/* gemv's integer-dot variants (8-bit activations, quantized once per matmul input) for every type
 * they cover: their main loops, compiled for gfx1100 / navi21 by RADV's null device (README), take
 * fewer VALU per 256 weights than the float-activation ones (v_dot4_i32_iu8 / v_dot4_i32_i8 do 4
 * multiply-adds) and read 1.5 bytes of X per element instead of 4. The result differs from the
 * float path by the activations' 8-bit rounding (as llama.cpp's Vulkan backend does; tolerance in
 * tests/test_gpu_forward.c). */
static void gemv_int_dot(vkm_kernel_plan *p) {
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++)
        p->gemv_idot[t] = t_gemv_q8[t] && p->gemv_small[t] == VKM_MMK_GEMV;
}

/* NVIDIA (measured: H200), AMD RDNA, AMD GCN (wave64), Intel and other GPUs: the GPU defaults
 * until each is measured on its own (RADV null-device ISA: ../shared/tools/isa-stats), and the
 * integer-dot GEMVs where the device says 4x8-bit dot products are accelerated (RDNA2+ and
 * Vega20 on AMD, Turing+ on NVIDIA, Xe on Intel report them so; GCN before gfx906 does not). */
static void kernels_for_nvidia(vkm_kernel_plan *p, const vkm_kernels_caps *c) {
    gpu_defaults(p);
    if (c->int_dot_accel) gemv_int_dot(p);
}
static void kernels_for_amd_rdna(vkm_kernel_plan *p, const vkm_kernels_caps *c) {
    gpu_defaults(p);
    if (c->int_dot_accel) gemv_int_dot(p);
}
static void kernels_for_amd_gcn(vkm_kernel_plan *p, const vkm_kernels_caps *c) {
    gpu_defaults(p);
    if (c->int_dot_accel) gemv_int_dot(p);
}
static void kernels_for_intel(vkm_kernel_plan *p, const vkm_kernels_caps *c) {
    gpu_defaults(p);
    if (c->int_dot_accel) gemv_int_dot(p);
}

static void kernels_for_gpu(vkm_kernel_plan *p, const vkm_kernels_caps *c,
                            vkm_kernels_layout layout) {
    switch (p->arch) {
    case VKM_ARCH_NVIDIA:
        kernels_for_nvidia(p, c);
        break;
    case VKM_ARCH_AMD_RDNA:
        kernels_for_amd_rdna(p, c);
        break;
    case VKM_ARCH_AMD_GCN:
        kernels_for_amd_gcn(p, c);
        break;
    case VKM_ARCH_INTEL:
        kernels_for_intel(p, c);
        break;
    default:
        gpu_defaults(p);
        break;
    }
    if (layout == VKM_KERNELS_IDOT) gemv_int_dot(p); /* forced: tests on lavapipe */
    if (layout == VKM_KERNELS_FLOAT) memset(p->gemv_idot, 0, sizeof p->gemv_idot);
    if (layout == VKM_KERNELS_KSPLIT || layout == VKM_KERNELS_SG) { /* one GEMV for every type */
        const uint8_t f = layout == VKM_KERNELS_SG ? VKM_MMK_SG : VKM_MMK_KSPLIT;
        memset(p->gemv_small, f, sizeof p->gemv_small);
        memset(p->gemv_big, f, sizeof p->gemv_big);
        p->fuse.glu = p->fuse.qa_kva = p->fuse.shared_z = false; /* gemv's forms only */
        memset(p->gemv_idot, 0, sizeof p->gemv_idot);
    }
    /* the integer-dot GEMVs' activations come from the norms before them where they can */
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) p->fuse.norm_q8 |= p->gemv_idot[t];
}

/* ---- the CPU-device family ---- */

/* CPU devices (lavapipe; a subgroup is one SIMD register of >= 8 lanes): every invocation owns
 * whole rows, so the GEMVs need no reduction, shared memory or barrier (barriers are coroutine
 * switches there), X travels between lanes by subgroupShuffle, and the same kernels do the GEMM.
 * Measured on llvmpipe (2 cores): GEMV 3-10x the k-split layout, GEMM 3-4x matmul_mm. A dispatch
 * costs 20-40 us there, so every fusion the lane kernels have is on. */
static void kernels_for_cpu_device(vkm_kernel_plan *p, const vkm_kernels_caps *c,
                                   vkm_kernels_layout layout) {
    const uint32_t s = c->subgroup_size;
    gpu_defaults(p); /* the GEMV rows below apply where the lane kernels cannot (subgroup < 8) */
    p->cpu_family = true;
    p->lane64 = layout != VKM_KERNELS_CPU32 && c->int64;
    p->texel = layout == VKM_KERNELS_CPU && c->texel_bytes > 0;
    const bool lane_mm = s >= 8 && s <= 64;
    p->gemm_lane = lane_mm;
    p->norm_subgroup = s >= 4 && s <= VKM_OPS_RED_WG && (s & (s - 1)) == 0;
    p->attn_lane = s >= 4 && s <= 64;
    p->attn_dec = p->texel && p->attn_lane;
    p->router_lane = true;
    p->fuse.router_group = true;
    p->fuse.glu = p->fuse.qa_kva = p->fuse.shared_z = p->texel && lane_mm;
    p->fuse.attn_pool = false; /* the lane attention kernels take one sequence a dispatch */
}

int vkm_kernels_plan(const vkm_kernels_caps *caps, vkm_kernels_layout layout,
                     vkm_kernel_plan *out) {
    memset(out, 0, sizeof *out);
    if ((unsigned)layout >= VKM_KERNELS_COUNT)
        return vkm_error(VKM_EINVAL, "kernel layout %d does not exist", (int)layout);
    if (layout == VKM_KERNELS_IDOT && !caps->int_dot)
        return vkm_error(VKM_EUNSUPPORTED,
                         "kernel layout idot: %s has no integer dot products "
                         "(shaderIntegerDotProduct)",
                         caps->name ? caps->name : "the device");
    out->arch = arch_of(caps);
    out->subgroup = caps->subgroup_size;
    if (layout == VKM_KERNELS_AUTO)
        layout = caps->type == VKM_DEV_CPU ? VKM_KERNELS_CPU : VKM_KERNELS_GPU;
    const bool cpu =
        layout == VKM_KERNELS_CPU || layout == VKM_KERNELS_CPU32 || layout == VKM_KERNELS_CPU64;
    out->layout = cpu ? VKM_KERNELS_CPU : layout;
    if (cpu)
        kernels_for_cpu_device(out, caps, layout);
    else
        kernels_for_gpu(out, caps, layout);
    /* what the driver does, not the kernels chosen: lavapipe's loop limit and lazy compiling */
    out->loop_limit = caps->type == VKM_DEV_CPU;
    out->prime_warmup = caps->type == VKM_DEV_CPU;
    return 0;
}

/* ---- GEMV ---- */

vkm_matmul_family vkm_kernels_gemv_family(const vkm_kernel_plan *p, uint32_t wtype, uint64_t rows) {
    if (p->gemm_lane) return p->texel ? VKM_MMK_TEX : p->lane64 ? VKM_MMK_LANE64 : VKM_MMK_LANE32;
    if (wtype >= VKM_QTYPE_COUNT) return VKM_MMK_KSPLIT;
    return (vkm_matmul_family)(rows < p->gemv_big_rows ? p->gemv_small[wtype] : p->gemv_big[wtype]);
}

/* CPU family: several rows per thread share each X load (X loads cost more than the weights'
 * 16-byte chunk loads on llvmpipe). Measured on llvmpipe (2 cores), 4 rows against 2: GEMM (64
 * columns) Q4_K 1.5-1.9x, Q8_0 2x, Q6_K 1.5x, F16 1.1x, 8 columns 1.7x; GEMV (1 column) alike, so
 * that keeps 2 rows: lavapipe compiles the 4-row variants about 2x slower, on every process start
 * (2.5 s more for bench-small). Workgroups shrink from 32 threads (to 16, then 8, not below a
 * subgroup) while a dispatch would have fewer than 4, so that small matrices still spread over
 * the cores (a workgroup runs on one): the 32-row router GEMV 1.6-2x faster.
 * GPU family: gemv workgroups of 4 subgroups (32..256 threads), a row each; matmul_sg workgroups
 * of 4 subgroups, each row split over more subgroups when there are few rows (fewer than 4096
 * subgroups would leave a large GPU idle); the k-split matmul_vec with 2 rows per workgroup of 4
 * subgroups (64..128 threads). */
vkm_gemv_tuning vkm_kernels_gemv_tuning(const vkm_kernel_plan *p, uint64_t rows,
                                        uint64_t fixed_rows, uint32_t wtype, int64_t cols) {
    if (p->gemm_lane) {
        uint32_t wg = 32;
        while (wg > p->subgroup && (fixed_rows + wg * 2 - 1) / (wg * 2) < 4) wg /= 2;
        return (vkm_gemv_tuning){wg, cols > 1 ? 4 : 2, 1, 0, 1, 0, 0};
    }
    const uint32_t s = p->subgroup;
    const vkm_matmul_family fam = vkm_kernels_gemv_family(p, wtype, rows);
    if (fam == VKM_MMK_GEMV) {
        const uint32_t w = s * 4 < 32 ? 32 : s * 4 > VKM_MM_VEC_MAX_WG ? VKM_MM_VEC_MAX_WG : s * 4;
        return (vkm_gemv_tuning){
            w, s && w / s ? w / s : 1, 0, 0, 1, 1, wtype < VKM_QTYPE_COUNT && p->gemv_idot[wtype]};
    }
    if (fam == VKM_MMK_SG) {
        const uint32_t w = s * 4 < 32 ? 32 : s * 4 > VKM_MM_VEC_MAX_WG ? VKM_MM_VEC_MAX_WG : s * 4;
        const uint32_t n_sg = s && w / s ? w / s : 1;
        const uint32_t ks = rows >= 4096 || n_sg < 2 ? 1 : rows >= 1024 || n_sg < 4 ? 2 : 4;
        return (vkm_gemv_tuning){w, n_sg / ks, 0, 1, ks, 0, 0};
    }
    const uint32_t w = s * 4;
    return (vkm_gemv_tuning){w < 64 ? 64 : w > 128 ? 128 : w, 2, 0, 0, 1, 0, 0};
}

/* ---- the table ---- */

static void yes_no(FILE *f, const char *name, bool on) {
    fprintf(f, "  %-14s %s\n", name, on ? "yes" : "no");
}

void vkm_kernels_print(const vkm_kernel_plan *p, FILE *f, const uint32_t *types,
                       const uint64_t *rows, int n_types) {
    fprintf(f, "kernel plan: %s family, %s row, layout %s, subgroup %u%s%s\n",
            p->cpu_family ? "CPU-device" : "GPU", vkm_kernels_arch_name(p->arch),
            vkm_kernels_layout_name(p->layout), p->subgroup,
            p->cpu_family ? (p->texel ? ", texel buffers" : ", no texel buffers") : "",
            p->cpu_family ? (p->lane64 ? ", 64-bit loads" : ", 32-bit loads") : "");
    fprintf(f, "%-22s %-34s %s\n", "op", "kernel", "spec constants / notes");
    if (n_types > 0) {
        for (int i = 0; i < n_types; i++) {
            const uint32_t t = types[i];
            const vkm_matmul_family fam = vkm_kernels_gemv_family(p, t, rows[i]);
            const vkm_gemv_tuning tu = vkm_kernels_gemv_tuning(p, rows[i], rows[i], t, 1);
            char op[40];
            snprintf(op, sizeof op, "gemv %s x%llu", vkm_qtype_name(t),
                     (unsigned long long)rows[i]);
            fprintf(f, "%-22s %-34s wg=%u rows=%u %s=%u%s\n", op, vkm_kernels_family_name(fam),
                    tu.wg, tu.rows, tu.sg || tu.gemv ? "ks" : "lane_rows",
                    tu.sg || tu.gemv ? tu.ks : tu.lane_rows, tu.idot ? ", int8 dot" : "");
        }
    } else {
        const uint32_t t[] = {VKM_F16, VKM_Q4_0, VKM_Q8_0, VKM_Q4_K, VKM_Q6_K};
        for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
            char op[40];
            snprintf(op, sizeof op, "gemv %s", vkm_qtype_name(t[i]));
            const vkm_matmul_family a = vkm_kernels_gemv_family(p, t[i], 1);
            const vkm_matmul_family b = vkm_kernels_gemv_family(p, t[i], p->gemv_big_rows);
            char k[64];
            if (a == b)
                snprintf(k, sizeof k, "%s", vkm_kernels_family_name(a));
            else
                snprintf(k, sizeof k, "%s; >= %u rows %s", vkm_kernels_family_name(a),
                         p->gemv_big_rows, vkm_kernels_family_name(b));
            const vkm_gemv_tuning tu = vkm_kernels_gemv_tuning(p, 4096, 4096, t[i], 1);
            fprintf(f, "%-22s %-34s wg=%u rows=%u %s=%u (4096 rows)%s\n", op, k, tu.wg, tu.rows,
                    tu.sg || tu.gemv ? "ks" : "lane_rows", tu.sg || tu.gemv ? tu.ks : tu.lane_rows,
                    tu.idot ? ", int8 dot" : "");
        }
    }
    const vkm_gemv_tuning g = vkm_kernels_gemv_tuning(p, 4096, 4096, VKM_Q4_K, 64);
    if (p->gemm_lane)
        fprintf(f, "%-22s %-34s wg=%u rows=%u, %u columns a pass%s\n", "gemm (> 8 columns)",
                vkm_kernels_family_name(vkm_kernels_gemv_family(p, VKM_Q4_K, 4096)), g.wg, g.rows,
                VKM_MM_VEC_MAX_COLS, p->loop_limit ? ", column windows" : "");
    else
        fprintf(f, "%-22s %-34s tiles of shared memory\n", "gemm (> 8 columns)", "matmul_mm");
    fprintf(f, "%-22s %-34s wg=%u\n", "rmsnorm, rmsnorm_add",
            p->norm_subgroup ? "rmsnorm (one subgroup)" : "rmsnorm (workgroup)",
            p->norm_subgroup ? p->subgroup : VKM_OPS_RED_WG);
    fprintf(f, "%-22s %-34s %s\n", "attention", p->attn_lane ? "mla_attn_lane" : "mla_attn",
            p->attn_dec ? "one query: mla_attn_dec score/softmax/value" : "");
    fprintf(f, "%-22s %-34s %s\n", "router", p->router_lane ? "router_lane" : "router",
            !p->fuse.router_group ? "then moe_group"
            : p->router_lane      ? "decode: router_lane_group"
                                  : "decode (<= 4 tokens): router_group");
    fprintf(f, "fused forms:\n");
    yes_no(f, "glu", p->fuse.glu);
    yes_no(f, "qa_kva pair", p->fuse.qa_kva);
    yes_no(f, "shared z", p->fuse.shared_z);
    yes_no(f, "router+group", p->fuse.router_group);
    yes_no(f, "combine+norm", p->fuse.combine_norm);
    yes_no(f, "norm 8-bit out", p->fuse.norm_q8);
    yes_no(f, "kv norm+rope", p->fuse.kv_rope);
    yes_no(f, "pooled attn", p->fuse.attn_pool);
}
