/* test_kernels.c - the kernel plan (core/kernels.c) without a GPU: for lavapipe's capabilities,
 * the same forced to each layout, and synthetic NVIDIA, AMD (RDNA, GCN) and Intel devices, which
 * kernel every op gets (op -> kernel), the fused forms, the GEMV tuning, the shader tables and
 * the layout names. */
#include <string.h>

#include "check.h"
#include "gpu.h"
#include "kernels.h"

static vkm_kernels_caps lavapipe(void) {
    return (vkm_kernels_caps){
        VKM_VENDOR_OTHER, VKM_DEV_CPU, 0,    "llvmpipe (LLVM 15.0.6, 256 bits)", 8, true,
        128ull << 20,     true,        false};
}

static vkm_kernel_plan plan_of(vkm_kernels_caps c, vkm_kernels_layout l) {
    vkm_kernel_plan p;
    CHECK_OK(vkm_kernels_plan(&c, l, &p));
    return p;
}

static void test_cpu_device(void) {
    const vkm_kernel_plan p = plan_of(lavapipe(), VKM_KERNELS_AUTO);
    CHECK(p.layout == VKM_KERNELS_CPU && p.arch == VKM_ARCH_CPU_DEVICE && p.cpu_family);
    CHECK(p.texel && p.lane64 && p.gemm_lane && p.norm_subgroup && p.attn_lane && p.attn_dec);
    CHECK(p.router_lane && p.loop_limit && p.prime_warmup);
    CHECK(p.fuse.glu && p.fuse.qa_kva && p.fuse.shared_z && p.fuse.router_group);
    CHECK(p.fuse.combine_norm && p.fuse.kv_rope && !p.fuse.norm_q8);
    CHECK(vkm_kernels_gemv_family(&p, VKM_Q4_K, 2048) == VKM_MMK_TEX);
    const vkm_gemv_tuning t1 = vkm_kernels_gemv_tuning(&p, 2048, 2048, VKM_Q4_K, 1);
    CHECK(t1.lane_rows == 1 && t1.rows == 2 && t1.wg == 32 && !t1.sg);
    const vkm_gemv_tuning t64 = vkm_kernels_gemv_tuning(&p, 2048, 2048, VKM_Q4_K, 64);
    CHECK(t64.rows == 4);
    /* small matrices: workgroups shrink to a subgroup so that there are 4 of them */
    const vkm_gemv_tuning ts = vkm_kernels_gemv_tuning(&p, 32, 32, VKM_F32, 1);
    CHECK(ts.wg == 8);

    /* forced CPU layouts: 64-bit storage loads, 32-bit loads */
    const vkm_kernel_plan p64 = plan_of(lavapipe(), VKM_KERNELS_CPU64);
    CHECK(p64.layout == VKM_KERNELS_CPU && !p64.texel && p64.lane64 && !p64.attn_dec);
    CHECK(!p64.fuse.glu && !p64.fuse.qa_kva && !p64.fuse.shared_z && p64.fuse.router_group);
    CHECK(vkm_kernels_gemv_family(&p64, VKM_Q4_K, 2048) == VKM_MMK_LANE64);
    const vkm_kernel_plan p32 = plan_of(lavapipe(), VKM_KERNELS_CPU32);
    CHECK(!p32.texel && !p32.lane64);
    CHECK(vkm_kernels_gemv_family(&p32, VKM_Q4_K, 2048) == VKM_MMK_LANE32);
    vkm_kernels_caps no64 = lavapipe();
    no64.int64 = false;
    CHECK(!plan_of(no64, VKM_KERNELS_CPU64).lane64);
}

/* The IQ types (ggml's importance-matrix quants). */
static bool is_iq(uint32_t t) {
    const vkm_qtype_info *qi = vkm_qtype_get(t);
    return qi && qi->name && !strncmp(qi->name, "IQ", 2);
}
/* The types gemv.comp decodes: every type with device kernels. */
static bool has_gemv(uint32_t t) {
    const vkm_qtype_info *qi = vkm_qtype_get(t);
    return qi && qi->supported && qi->gpu;
}

/* GPU layouts: gemv for every type, at every row count (the forced ksplit / sg layouts keep the
 * per-type choice measured on the H200 reachable). */
static void check_gpu_gemv(const vkm_kernel_plan *p) {
    CHECK(!p->cpu_family && !p->texel && !p->gemm_lane && !p->norm_subgroup && !p->attn_lane);
    CHECK(!p->router_lane && p->fuse.router_group && p->fuse.glu && p->fuse.qa_kva &&
          p->fuse.shared_z);
    CHECK(p->fuse.combine_norm && p->fuse.kv_rope);
    int n = 0;
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++)
        if (has_gemv(t)) {
            n++;
            CHECK_MSG(vkm_kernels_gemv_family(p, t, 2048) == VKM_MMK_GEMV, "%s", vkm_qtype_name(t));
            CHECK_MSG(vkm_kernels_gemv_family(p, t, 129280) == VKM_MMK_GEMV, "%s",
                      vkm_qtype_name(t));
        }
    CHECK(n == 22);
    int n_iq = 0;
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) n_iq += is_iq(t) && has_gemv(t);
    CHECK(n_iq == 9);
}

static void test_gpus(void) {
    const struct {
        vkm_kernels_caps caps;
        vkm_kernels_arch arch;
    } cases[] = {
        {{VKM_VENDOR_NVIDIA, VKM_DEV_DISCRETE, 0x2684, "NVIDIA GeForce RTX 4090", 32, true, 0, true,
          true},
         VKM_ARCH_NVIDIA},
        {{VKM_VENDOR_AMD, VKM_DEV_DISCRETE, 0x744C, "AMD Radeon RX 7900 XTX (RADV NAVI31)", 64,
          true, 0, true, true},
         VKM_ARCH_AMD_RDNA},
        {{VKM_VENDOR_AMD, VKM_DEV_DISCRETE, 0x73BF, "AMD Radeon RX 6900 XT", 64, true, 0, true,
          true},
         VKM_ARCH_AMD_RDNA},
        {{VKM_VENDOR_AMD, VKM_DEV_INTEGRATED, 0x15BF, "AMD Radeon 780M (RADV GFX1103_R1)", 64, true,
          0, true, true},
         VKM_ARCH_AMD_RDNA},
        {{VKM_VENDOR_AMD, VKM_DEV_DISCRETE, 0x67DF, "AMD Radeon RX 580 (RADV POLARIS10)", 64, true,
          0, true, false},
         VKM_ARCH_AMD_GCN},
        {{VKM_VENDOR_INTEL, VKM_DEV_DISCRETE, 0x56A0, "Intel(R) Arc(tm) A770 Graphics (DG2)", 32,
          true, 0, true, true},
         VKM_ARCH_INTEL},
        {{VKM_VENDOR_OTHER, VKM_DEV_INTEGRATED, 0x1, "Mali-G710", 16, false, 0, false, false},
         VKM_ARCH_GPU_OTHER},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const vkm_kernel_plan p = plan_of(cases[i].caps, VKM_KERNELS_AUTO);
        CHECK_MSG(p.arch == cases[i].arch, "%s: arch %s", cases[i].caps.name,
                  vkm_kernels_arch_name(p.arch));
        CHECK(p.layout == VKM_KERNELS_GPU && !p.loop_limit && !p.prime_warmup);
        check_gpu_gemv(&p);
        /* the integer-dot GEMVs where the device accelerates them, for the types they cover (all
         * block types, the IQ types included) */
        const bool acc = cases[i].caps.int_dot_accel;
        CHECK_MSG(p.gemv_idot[VKM_Q4_K] == acc && p.gemv_idot[VKM_Q8_0] == acc &&
                      p.gemv_idot[VKM_Q6_K] == acc && p.gemv_idot[VKM_Q2_K] == acc &&
                      p.gemv_idot[VKM_IQ4_NL] == acc && p.gemv_idot[VKM_IQ4_XS] == acc &&
                      p.gemv_idot[VKM_IQ2_XXS] == acc && !p.gemv_idot[VKM_F16] &&
                      p.fuse.norm_q8 == acc,
                  "%s: integer-dot GEMVs", cases[i].caps.name);
        CHECK(vkm_kernels_gemv_tuning(&p, 4096, 4096, VKM_Q4_K, 1).idot == (uint32_t)acc);
        /* gemv: 4 subgroups a workgroup, a row each, at every row count */
        const uint32_t s = cases[i].caps.subgroup_size;
        const uint32_t wg4 = s * 4 < 32 ? 32 : s * 4 > 256 ? 256 : s * 4;
        const vkm_gemv_tuning tg = vkm_kernels_gemv_tuning(&p, 8192, 8192, VKM_Q4_K, 1);
        CHECK(tg.gemv == 1 && tg.sg == 0 && tg.lane_rows == 0 && tg.wg == wg4 &&
              tg.rows == wg4 / s);
        const vkm_gemv_tuning tg2 = vkm_kernels_gemv_tuning(&p, 512, 512, VKM_Q6_K, 1);
        CHECK(tg2.gemv == 1 && tg2.rows == wg4 / s);
        /* forcing one GEMV kernel for every type: matmul_sg, 4 subgroups a workgroup, rows split
         * over subgroups when there are few; the k-split kernel, 2 rows per workgroup */
        const vkm_kernel_plan ks = plan_of(cases[i].caps, VKM_KERNELS_KSPLIT);
        const vkm_kernel_plan sgp = plan_of(cases[i].caps, VKM_KERNELS_SG);
        const vkm_gemv_tuning t = vkm_kernels_gemv_tuning(&sgp, 8192, 8192, VKM_Q3_K, 1);
        CHECK(t.sg == 1 && t.ks == 1 && !t.gemv && t.wg == wg4);
        const vkm_gemv_tuning tk = vkm_kernels_gemv_tuning(&sgp, 512, 512, VKM_Q3_K, 1);
        CHECK(tk.sg == 1 && tk.ks > 1);
        const vkm_gemv_tuning tv = vkm_kernels_gemv_tuning(&ks, 40000, 40000, VKM_Q5_0, 1);
        CHECK(tv.sg == 0 && !tv.gemv && tv.lane_rows == 0 && tv.rows == 2 && tv.wg >= 64 &&
              tv.wg <= 128);
        CHECK(vkm_kernels_gemv_family(&ks, VKM_F16, 10) == VKM_MMK_KSPLIT);
        CHECK(!vkm_kernels_gemv_tuning(&ks, 8192, 8192, VKM_Q4_K, 1).gemv);
        CHECK(!ks.fuse.glu && !sgp.fuse.glu); /* the gated form is gemv's, and the pairs */
        CHECK(!ks.fuse.qa_kva && !sgp.fuse.qa_kva && !ks.fuse.shared_z && !sgp.fuse.shared_z);
        CHECK(!ks.fuse.norm_q8 && !sgp.fuse.norm_q8); /* no integer-dot GEMV to feed */
        const vkm_kernel_plan sg = plan_of(cases[i].caps, VKM_KERNELS_SG);
        CHECK(vkm_kernels_gemv_family(&sg, VKM_Q4_0, 200000) == VKM_MMK_SG);
        CHECK(vkm_kernels_gemv_family(&sg, VKM_Q4_K, 2048) == VKM_MMK_SG);
    }
    /* lavapipe with the GPU layout forced (the *_gpu_layout tests) */
    const vkm_kernel_plan g = plan_of(lavapipe(), VKM_KERNELS_GPU);
    CHECK(g.layout == VKM_KERNELS_GPU && g.arch == VKM_ARCH_CPU_DEVICE);
    check_gpu_gemv(&g);
    CHECK(g.loop_limit && g.prime_warmup); /* the driver's facts stay */
    CHECK(!g.gemv_idot[VKM_Q4_K] &&
          !g.fuse.norm_q8); /* lavapipe does not accelerate integer dot products */
    /* the integer-dot GEMVs forced (test_gpu_matmul_idot, test_gpu_forward_idot): the GPU layout
     * with them for every type they cover; refused without the feature */
    const vkm_kernel_plan gi = plan_of(lavapipe(), VKM_KERNELS_IDOT);
    CHECK(gi.layout == VKM_KERNELS_IDOT && !gi.cpu_family && gi.fuse.glu && gi.fuse.qa_kva &&
          gi.fuse.norm_q8);
    CHECK(gi.gemv_idot[VKM_Q4_0] && gi.gemv_idot[VKM_Q8_0] && gi.gemv_idot[VKM_Q4_K] &&
          gi.gemv_idot[VKM_Q5_K] && gi.gemv_idot[VKM_Q6_K] && !gi.gemv_idot[VKM_F16]);
    const vkm_gemv_tuning ti = vkm_kernels_gemv_tuning(&gi, 2048, 2048, VKM_Q6_K, 1);
    CHECK(ti.gemv && ti.idot);
    CHECK(vkm_kernels_gemv_tuning(&gi, 2048, 2048, VKM_Q3_K, 1).idot);
    CHECK(!vkm_kernels_gemv_tuning(&gi, 2048, 2048, VKM_BF16, 1).idot);
    vkm_kernels_caps nodot = lavapipe();
    nodot.int_dot = false;
    vkm_kernel_plan np;
    CHECK(vkm_kernels_plan(&nodot, VKM_KERNELS_IDOT, &np) == VKM_EUNSUPPORTED);
    CHECK(vkm_kernels_gemv_q8_shader(true, VKM_Q4_K) == VKM_SH_GEMV_Q8_ID_Q4_K);
    CHECK(vkm_kernels_gemv_q8_shader(false, VKM_F16) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_gemv_q8_shader(false, VKM_IQ4_NL) == VKM_SH_GEMV_Q8_IQ4_NL);
    CHECK(vkm_kernels_gemv_q8_shader(true, VKM_IQ4_XS) == VKM_SH_GEMV_Q8_ID_IQ4_XS);
}

static void test_tables(void) {
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_SG, false, VKM_Q4_K) == VKM_SH_MATMUL_SG_Q4_K);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_SG, true, VKM_Q4_K) == VKM_SH_MATMUL_SG_ID_Q4_K);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_TEX, true, VKM_F16) == VKM_SH_MATMUL_TEX_ID_F16);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_LANE32, false, VKM_Q8_0) == VKM_SH_MATMUL_LANE32_Q8_0);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_MM, false, VKM_F32) == VKM_SH_MATMUL_MM_F32);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_GEMV, false, VKM_Q4_K) == VKM_SH_GEMV_Q4_K);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_GEMV, true, VKM_Q6_K) == VKM_SH_GEMV_ID_Q6_K);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_GEMV, false, VKM_Q3_K) == VKM_SH_GEMV_Q3_K);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_GEMV, false, VKM_Q8_1) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_SG, false, VKM_Q8_K) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_SG, false, 999) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_COUNT, false, VKM_F32) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_get_rows_shader(VKM_Q6_K) == VKM_SH_GET_ROWS_Q6_K);
    CHECK(vkm_kernels_get_rows_shader(VKM_Q8_1) == VKM_SHADER_COUNT);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_TEX, true, VKM_IQ1_M) == VKM_SH_MATMUL_TEX_ID_IQ1_M);
    CHECK(vkm_kernels_get_rows_shader(VKM_IQ2_XXS) == VKM_SH_GET_ROWS_IQ2_XXS);
    CHECK(vkm_kernels_matmul_shader(VKM_MMK_SG, false, 34) == VKM_SHADER_COUNT); /* TQ1_0 */
    /* every type with device kernels has every family */
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) {
        const vkm_qtype_info *qi = vkm_qtype_get(t);
        if (!qi || !qi->supported || !qi->gpu) continue;
        for (int f = 0; f < VKM_MMK_COUNT; f++)
            for (int id = 0; id < 2; id++)
                CHECK_MSG(
                    (vkm_kernels_matmul_shader((vkm_matmul_family)f, id, t) != VKM_SHADER_COUNT),
                    "%s: no %s%s kernel", qi->name, vkm_kernels_family_name((vkm_matmul_family)f),
                    id ? " (indexed)" : "");
        CHECK_MSG(vkm_kernels_get_rows_shader(t) != VKM_SHADER_COUNT, "%s: no get_rows", qi->name);
    }
}

static void test_names(void) {
    vkm_kernels_layout l = VKM_KERNELS_AUTO;
    for (int i = 0; i < VKM_KERNELS_COUNT; i++) {
        CHECK_OK(vkm_kernels_parse(vkm_kernels_layout_name((vkm_kernels_layout)i), "x", &l));
        CHECK(l == (vkm_kernels_layout)i);
    }
    CHECK(vkm_kernels_parse("bogus", "VKMOE_KERNELS", &l) == VKM_EINVAL);
    CHECK(strstr(vkm_errmsg(), "VKMOE_KERNELS=bogus") != NULL);
    CHECK(vkm_kernels_parse(NULL, "x", &l) == VKM_EINVAL);
    vkm_kernel_plan p;
    const vkm_kernels_caps c = lavapipe();
    CHECK(vkm_kernels_plan(&c, VKM_KERNELS_COUNT, &p) == VKM_EINVAL);
    /* the table prints every op */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f != NULL);
    if (!f) return;
    p = plan_of(c, VKM_KERNELS_AUTO);
    const uint32_t types[1] = {VKM_Q4_K};
    const uint64_t rows[1] = {2048};
    vkm_kernels_print(&p, f, types, rows, 1);
    fclose(f);
    CHECK(strstr(buf, "gemv Q4_K x2048") && strstr(buf, "matmul_tex") && strstr(buf, "glu"));
    CHECK(strstr(buf, "router_lane_group") && strstr(buf, "mla_attn_dec"));
    free(buf);
}

int main(void) {
    test_cpu_device();
    test_gpus();
    test_tables();
    test_names();
    return check_done();
}
