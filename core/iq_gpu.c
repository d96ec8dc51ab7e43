/* iq_gpu.c - the IQ grids as constant device buffers (iq_gpu.h): one slot of vkm_gpu_const_buf
 * per grid, filled from the C reference's tables (iq_tables.c, the words of shaders/iq_grids.h);
 * IQ1_S and IQ1_M share theirs, IQ4_NL and IQ4_XS their byte tables (vkm_iq4_grid). */
#include "iq_gpu.h"

#include "iq_tables.h"
#include "qtype.h"

/* The grid of `type`: its words and constant-buffer slot; NULL when it has none. */
static const uint32_t *grid_of(uint32_t type, size_t *words, int *slot) {
    switch (type) {
    case VKM_IQ2_XXS:
        *words = 512, *slot = 0;
        return vkm_iq2xxs_grid;
    case VKM_IQ2_XS:
        *words = 1024, *slot = 1;
        return vkm_iq2xs_grid;
    case VKM_IQ2_S:
        *words = 2048, *slot = 2;
        return vkm_iq2s_grid;
    case VKM_IQ3_XXS:
        *words = 256, *slot = 3;
        return vkm_iq3xxs_grid;
    case VKM_IQ3_S:
        *words = 512, *slot = 4;
        return vkm_iq3s_grid;
    case VKM_IQ1_S:
    case VKM_IQ1_M:
        *words = 2048, *slot = 5;
        return vkm_iq1s_grid;
    case VKM_IQ4_NL:
    case VKM_IQ4_XS:
        *words = 512, *slot = 6;
        return vkm_iq4_grid;
    default:
        return NULL;
    }
}

bool vkm_iq_grid_binds(uint32_t type) {
    size_t words;
    int slot;
    return grid_of(type, &words, &slot) != NULL;
}

int vkm_iq_grid_arg(vkm_gpu *gpu, uint32_t type, vkm_gpu_arg *out) {
    size_t words = 0;
    int slot = 0;
    const uint32_t *g = grid_of(type, &words, &slot);
    if (!g) return 0;
    vkm_gpu_buf *b = NULL;
    const int rc = vkm_gpu_const_buf(gpu, slot, g, words * 4, &b);
    if (rc) return rc;
    *out = (vkm_gpu_arg){b, 0, 0};
    return 1;
}
