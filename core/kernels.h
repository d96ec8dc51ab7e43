/* kernels.h - the kernel plan: which kernel a device runs for every op the forward pass records,
 * with its tuning (specialization constants) and the fused forms the device has.
 *
 * One plan per vkm_gpu, built once when it is created (vkm_gpu_create calls vkm_kernels_plan) from
 * the device's capabilities and the requested layout, and read by core/ops*.c, core/forward.c
 * and core/session.c through vkm_gpu_plan(). This is the only file that decides by device type,
 * vendor or architecture; everything else asks the plan. The decision table:
 *
 *   op                 GPU family (discrete, integrated, virtual)    CPU-device family (lavapipe)
 *   GEMV (<= 8 cols)   gemv (straight-line loop) for every type      matmul_tex (texel buffers)
 *                      with a gemv variant (all 22); else matmul_sg  > matmul_lane (64-bit) >
 *                      or k-split matmul_vec per type and row count  matmul_lane32 (32-bit)
 *                      (measured on an H200)
 *   GEMM (> 8 cols)    matmul_mm (tiled, shared memory)              the GEMV kernels, 4 rows/lane
 *   rmsnorm family     workgroup reduction (VKM_OPS_RED_WG)          one subgroup, subgroupAdd
 *   attention          mla_attn                                      mla_attn_lane; one query:
 *                                                                    mla_attn_dec (3 passes)
 *   router             router, then moe_group                        router_lane_group (1 pass)
 *   fused forms        combine+norm, kv_a norm+rope+store,           all of the GPU's, and q_a+kv_a
 *                      gate+up+SwiGLU (gemv's gated form; not with   pair, the shared expert as an
 *                      the forced ksplit / sg layouts)               extra z group, router+grouping
 *
 * Architecture rows (NVIDIA, AMD RDNA, AMD GCN, Intel, other) have their own fill function
 * (kernels.c); today they share the GPU defaults, measured on an NVIDIA H200. Where the device
 * says 4x8-bit packed dot products are accelerated (caps.int_dot_accel), gemv reads 8-bit
 * activations (quantized once per matmul input, quant_q8.comp) and multiplies with integer dot
 * products for the types it has those variants for (plan.gemv_idot); layout IDOT forces that on
 * any device with the feature (lavapipe: tests).
 *
 * The CPU-device family's shaders live in shaders/cpu/ and are recorded by core/ops_cpu.c (matmuls)
 * and core/ops.c (attention, router, norms).
 *
 * Shader variants are named by the generated enum vkm_shader_id (build/gen/shader_ids.h); the
 * per-type variants are found here in O(1) (vkm_kernels_matmul_shader, _get_rows_shader). */
#ifndef VKM_KERNELS_H
#define VKM_KERNELS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "qtype.h"
#include "shader_ids.h"

/* Kernel layouts (vkm_gpu_options.kernels, vkm_engine_opts.kernels): the device's own, or forced
 * so that tests cover the GPU layouts (k-split GEMV, tiled GEMM) on lavapipe and the CPU ones
 * anywhere. On GPUs each weight type's GEMV uses whichever of two kernels measured faster;
 * KSPLIT and SG force one of them for every type, to compare. CPU32 is the CPU layout with the
 * 32-bit loads that devices without shaderInt64 use; CPU64 the CPU layout with 64-bit
 * storage-buffer loads instead of the texel-buffer fetches CPU devices use by default. */
typedef enum vkm_kernels_layout {
    VKM_KERNELS_AUTO,
    VKM_KERNELS_GPU,
    VKM_KERNELS_CPU,
    VKM_KERNELS_KSPLIT,
    VKM_KERNELS_SG,
    VKM_KERNELS_CPU32,
    VKM_KERNELS_CPU64,
    VKM_KERNELS_IDOT,  /* the GPU layout with gemv's integer-dot variants for every type they
                          cover, accelerated or not (needs caps.int_dot) */
    VKM_KERNELS_FLOAT, /* the GPU layout with float activations only (the integer-dot GEMVs
                          off: bench --shaders' before / after) */
    VKM_KERNELS_COUNT
} vkm_kernels_layout;

/* The device classes the plan has rows for. */
typedef enum vkm_kernels_arch {
    VKM_ARCH_GPU_OTHER,
    VKM_ARCH_NVIDIA,
    VKM_ARCH_AMD_RDNA,
    VKM_ARCH_AMD_GCN,
    VKM_ARCH_INTEL,
    VKM_ARCH_CPU_DEVICE,
    VKM_ARCH_COUNT
} vkm_kernels_arch;

/* The matmul kernel families (each a set of shader variants, one per weight type). */
typedef enum vkm_matmul_family {
    VKM_MMK_KSPLIT, /* matmul_vec: GPU GEMV, a workgroup splits k */
    VKM_MMK_SG,     /* matmul_sg: GPU GEMV, subgroups per row */
    VKM_MMK_MM,     /* matmul_mm: GPU tiled GEMM */
    VKM_MMK_LANE32, /* matmul_lane32: CPU devices, 32-bit loads (shaders/cpu/matmul_lane.comp) */
    VKM_MMK_LANE64, /* matmul_lane: CPU devices, 64-bit loads */
    VKM_MMK_TEX,    /* matmul_tex: CPU devices, uniform texel buffers */
    VKM_MMK_GEMV,   /* gemv: GPU GEMV, a subgroup per row, no control flow in the main loop */
    VKM_MMK_COUNT
} vkm_matmul_family;

/* What the device's capabilities say, as far as the plan needs them (a subset of
 * vkm_gpu_device_info, so that a unit test can describe any device). */
typedef struct vkm_kernels_caps {
    int vendor; /* enum vkm_gpu_vendor */
    int type;   /* enum vkm_gpu_type */
    uint32_t device_id;
    const char *name; /* the device name (NULL = "") */
    uint32_t subgroup_size;
    bool int64;
    uint64_t texel_bytes; /* CPU devices: the largest texel buffer the kernels may view, else 0 */
    bool int_dot;         /* shaderIntegerDotProduct */
    bool int_dot_accel;   /* 4x8-bit packed signed dot products are accelerated */
} vkm_kernels_caps;

/* The fused forms a device records (fewer dispatches). */
typedef struct vkm_kernels_fusions {
    bool glu;          /* gate + up + SwiGLU in one matmul dispatch (plain and indexed) */
    bool qa_kva;       /* q_a and kv_a projections in one GEMV */
    bool shared_z;     /* the shared expert as one more z group of the routed dispatches */
    bool router_group; /* routing, top-k and grouping by expert in one dispatch (decode) */
    bool combine_norm; /* experts' weighted sum + residual add + next RMSNorm */
    bool kv_rope;      /* kv_a norm, k_pe/q_pe RoPE and the cache store in one dispatch */
    /* the norms before matmuls (rmsnorm, rmsnorm_add, combine+norm) also write their output as
     * 8-bit activations in decode steps, for the integer-dot GEMVs (no quant_q8 dispatch) */
    bool norm_q8;
    /* the attention of a multi-sequence batch whose caches share one buffer (KV pools) in one
     * kv_rope and one attention dispatch per layer for all its sequences (GPU kernels) */
    bool attn_pool;
} vkm_kernels_fusions;

/* GEMV tuning: the specialization constants of one dispatch. */
typedef struct vkm_gemv_tuning {
    uint32_t wg;        /* threads per workgroup */
    uint32_t rows;      /* rows per thread (lane_rows) or per workgroup */
    uint32_t lane_rows; /* 1: the CPU family's row-per-invocation matmuls (core/ops_cpu.c) */
    uint32_t sg;        /* 1: matmul_sg, `ks` subgroups per row (GPUs) */
    uint32_t ks;
    uint32_t gemv; /* 1: gemv.comp, one subgroup per row, `rows` rows per workgroup (GPUs) */
    uint32_t idot; /* gemv: 1 = the integer-dot variant on 8-bit activations (quant_q8.comp) */
} vkm_gemv_tuning;

typedef struct vkm_kernel_plan {
    vkm_kernels_layout layout; /* resolved: GPU, KSPLIT, SG, IDOT, FLOAT or CPU (never AUTO,
                                  CPU32, CPU64) */
    vkm_kernels_arch arch;
    bool cpu_family;   /* the CPU-device kernels: every invocation owns whole rows */
    bool lane64;       /* CPU family: 64-bit loads (matmul_lane) where texel buffers do not fit */
    bool texel;        /* CPU family: texel-buffer kernels (matmul_tex, mla_attn_dec) */
    uint32_t subgroup; /* the device's subgroup size */
    /* GEMV: on GPUs, the family per weight type for matrices below gemv_big_rows rows and for
     * larger ones (VKM_MMK_GEMV, VKM_MMK_SG or VKM_MMK_KSPLIT) */
    uint8_t gemv_small[VKM_QTYPE_COUNT], gemv_big[VKM_QTYPE_COUNT];
    uint32_t gemv_big_rows;
    /* gemv: the integer-dot variant (8-bit activations) per weight type */
    bool gemv_idot[VKM_QTYPE_COUNT];
    bool gemm_lane;     /* GEMM by the CPU family's GEMV kernels (else matmul_mm) */
    bool norm_subgroup; /* rmsnorm family: one subgroup reduces a row (else VKM_OPS_RED_WG) */
    bool attn_lane;     /* attention: mla_attn_lane (else mla_attn) */
    bool attn_dec;      /* one-query attention: mla_attn_dec's three passes where windows fit */
    bool router_lane;   /* router: router_lane / router_lane_group (else router + moe_group) */
    bool loop_limit;    /* the driver ends an invocation after 65535 loop iterations (llvmpipe):
                           GEMMs split into column windows, batches bounded */
    bool prime_warmup;  /* pipelines compile at their first dispatch: the warm-up submits its
                           passes once with no workgroups */
    vkm_kernels_fusions fuse;
} vkm_kernel_plan;

/* Fills *out for a device. `layout` VKM_KERNELS_AUTO = the device's own family. Fails
 * (VKM_EINVAL) on a layout outside the enum. */
int vkm_kernels_plan(const vkm_kernels_caps *caps, vkm_kernels_layout layout, vkm_kernel_plan *out);

/* The GEMV family for `rows` rows of weight type `wtype` (GPU family: the plan's per-type
 * choice; CPU family: TEX, LANE64 or LANE32 by what the device has, before window checks). */
vkm_matmul_family vkm_kernels_gemv_family(const vkm_kernel_plan *p, uint32_t wtype, uint64_t rows);

/* The GEMV tuning for a dispatch of `rows` rows in all (of which `fixed_rows` do not depend on
 * the routing) of weight type wtype over `cols` columns. */
vkm_gemv_tuning vkm_kernels_gemv_tuning(const vkm_kernel_plan *p, uint64_t rows,
                                        uint64_t fixed_rows, uint32_t wtype, int64_t cols);

/* The shader variant of a matmul family for weight type wtype, plain or indexed (id);
 * VKM_SHADER_COUNT when there is none. */
vkm_shader_id vkm_kernels_matmul_shader(vkm_matmul_family f, bool id, uint32_t wtype);
/* gemv's integer-dot variant (gemv_q8_<type>, gemv_q8_id_<type>) for weight type wtype;
 * VKM_SHADER_COUNT when there is none. */
vkm_shader_id vkm_kernels_gemv_q8_shader(bool id, uint32_t wtype);
/* The embedding-lookup variant for a table of type `type`; VKM_SHADER_COUNT when none. */
vkm_shader_id vkm_kernels_get_rows_shader(uint32_t type);

/* Names for messages and the plan table. */
const char *vkm_kernels_layout_name(vkm_kernels_layout l); /* "auto", "gpu", "cpu", ... */
const char *vkm_kernels_arch_name(vkm_kernels_arch a);     /* "NVIDIA", "AMD RDNA", ... */
const char *vkm_kernels_family_name(vkm_matmul_family f);  /* "matmul_sg", ... */

/* Parses a layout name (auto|gpu|cpu|ksplit|sg|cpu32|cpu64|idot|float); VKM_EINVAL naming `what`
 * and the accepted names otherwise. */
int vkm_kernels_parse(const char *s, const char *what, vkm_kernels_layout *out);
/* The tools' override: $VKMOE_KERNELS parsed into *out (unchanged when unset or empty). */
int vkm_kernels_env(vkm_kernels_layout *out);

/* Writes the plan as a table (op, kernel, spec constants, fused forms) to f. With types
 * (n_types > 0, e.g. a model's weight types with the row counts of their largest matrix), the
 * GEMV rows name each type's kernel and tuning for that shape. */
void vkm_kernels_print(const vkm_kernel_plan *p, FILE *f, const uint32_t *types,
                       const uint64_t *rows, int n_types);

#endif
