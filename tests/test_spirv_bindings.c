/* test_spirv_bindings.c - vk/spirv_bindings.c: the descriptor type of every binding, read from
 * the embedded shaders (storage buffers only; the texel-buffer matmul variants) and from small
 * hand-made modules; malformed modules and kinds the kernels do not use are errors, not crashes.
 * No Vulkan device needed. */
#include <string.h>

#include "check.h"
#include "shader_table.h"
#include "spirv_bindings.h"

static const vkm_shader_blob *shader(const char *name) {
    for (unsigned i = 0; i < vkm_shader_count; i++)
        if (!strcmp(vkm_shader_table[i].name, name)) return &vkm_shader_table[i];
    return NULL;
}

/* kinds of shader `name` with n bindings, or -1 on error */
static int kinds_of(const char *name, int n, uint8_t *kinds) {
    const vkm_shader_blob *s = shader(name);
    if (!s) {
        fprintf(stderr, "no shader %s\n", name);
        return -1;
    }
    return vkm_vk_spirv_bindings(s->words, s->size / 4, n, kinds) ? -1 : 0;
}

#define OP(wc, op) (((uint32_t)(wc) << 16) | (op))

/* A module declaring one uniform texel buffer: sampled type `st` (0 float, 1 uint, 2 signed int),
 * image dim `dim`, at binding `binding` of set `set`. Returns its word count. */
static size_t make_module(uint32_t *w, int st, uint32_t dim, uint32_t binding, uint32_t set) {
    size_t n = 0;
    w[n++] = 0x07230203u;
    w[n++] = 0x00010500u;
    w[n++] = 0;
    w[n++] = 6; /* bound */
    w[n++] = 0;
    w[n++] = OP(4, 71), w[n++] = 5, w[n++] = 33, w[n++] = binding; /* OpDecorate Binding */
    w[n++] = OP(4, 71), w[n++] = 5, w[n++] = 34, w[n++] = set;     /* OpDecorate DescriptorSet */
    if (st == 0) {
        w[n++] = OP(3, 22), w[n++] = 1, w[n++] = 32; /* %1 = OpTypeFloat 32 */
    } else {
        w[n++] = OP(4, 21), w[n++] = 1, w[n++] = 32, w[n++] = st == 2; /* %1 = OpTypeInt 32 s */
    }
    const uint32_t img[9] = {OP(9, 25), 2, 1, dim, 0, 0, 0, 1, 0}; /* %2 = OpTypeImage */
    memcpy(w + n, img, sizeof img);
    n += 9;
    w[n++] = OP(3, 27), w[n++] = 3, w[n++] = 2;             /* %3 = OpTypeSampledImage %2 */
    w[n++] = OP(4, 32), w[n++] = 4, w[n++] = 0, w[n++] = 3; /* %4 = OpTypePointer UC %3 */
    w[n++] = OP(4, 59), w[n++] = 4, w[n++] = 5, w[n++] = 0; /* %5 = OpVariable %4 UC */
    return n;
}

int main(void) {
    uint8_t k[8];

    /* storage buffers only */
    memset(k, 9, sizeof k);
    CHECK(kinds_of("smoke", 2, k) == 0);
    CHECK(k[0] == VKM_VK_BIND_STORAGE && k[1] == VKM_VK_BIND_STORAGE);
    CHECK(kinds_of("matmul_lane_q4_k", 3, k) == 0);
    CHECK(k[0] == VKM_VK_BIND_STORAGE && k[1] == VKM_VK_BIND_STORAGE &&
          k[2] == VKM_VK_BIND_STORAGE);

    /* the texel-buffer matmuls: W uint texels, X float texels, the rest storage buffers */
    memset(k, 9, sizeof k);
    CHECK(kinds_of("matmul_tex_q4_k", 3, k) == 0);
    CHECK(k[0] == VKM_VK_BIND_TEXEL_U32 && k[1] == VKM_VK_BIND_TEXEL_F32 &&
          k[2] == VKM_VK_BIND_STORAGE);
    memset(k, 9, sizeof k);
    CHECK(kinds_of("matmul_tex_id_q6_k", 5, k) == 0);
    CHECK(k[0] == VKM_VK_BIND_TEXEL_U32 && k[1] == VKM_VK_BIND_TEXEL_F32);
    CHECK(k[2] == VKM_VK_BIND_STORAGE && k[3] == VKM_VK_BIND_STORAGE &&
          k[4] == VKM_VK_BIND_STORAGE);
    /* a binding the kernel would not give a descriptor */
    CHECK(kinds_of("matmul_tex_q4_k", 2, k) < 0);

    /* hand-made modules */
    uint32_t w[64];
    size_t n = make_module(w, 0, 5, 1, 0);
    memset(k, 9, sizeof k);
    CHECK_OK(vkm_vk_spirv_bindings(w, n, 2, k));
    CHECK(k[0] == VKM_VK_BIND_STORAGE && k[1] == VKM_VK_BIND_TEXEL_F32);
    n = make_module(w, 1, 5, 0, 0);
    CHECK_OK(vkm_vk_spirv_bindings(w, n, 1, k));
    CHECK(k[0] == VKM_VK_BIND_TEXEL_U32);
    n = make_module(w, 2, 5, 0, 0); /* signed texels */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    n = make_module(w, 0, 1, 0, 0); /* a 2D image */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    n = make_module(w, 0, 5, 0, 1); /* set 1 */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));

    /* malformed */
    n = make_module(w, 0, 5, 0, 0);
    CHECK_ERR(vkm_vk_spirv_bindings(NULL, 0, 1, k));
    CHECK_ERR(vkm_vk_spirv_bindings(w, 4, 1, k));
    w[0] ^= 1; /* magic */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    w[0] ^= 1;
    CHECK_ERR(vkm_vk_spirv_bindings(w, n - 1, 1, k)); /* last instruction cut */
    w[3] = 5;                                         /* bound below the ids used */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    w[3] = 0;
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    w[3] = 6;
    w[5] = OP(0, 71); /* zero word count */
    CHECK_ERR(vkm_vk_spirv_bindings(w, n, 1, k));
    return check_done();
}
