/* qtype.c - the table of ggml type ids (spec §1.3). */
#include "qtype.h"

/* name, block, bytes, supported (C reference), gpu (device kernels) */
static const vkm_qtype_info g_types[VKM_QTYPE_COUNT] = {
    [0] = {"F32", 1, 4, true, true},         [1] = {"F16", 1, 2, true, true},
    [2] = {"Q4_0", 32, 18, true, true},      [3] = {"Q4_1", 32, 20, true, true},
    [6] = {"Q5_0", 32, 22, true, true},      [7] = {"Q5_1", 32, 24, true, true},
    [8] = {"Q8_0", 32, 34, true, true},      [9] = {"Q8_1", 32, 36, false, false},
    [10] = {"Q2_K", 256, 84, true, true},    [11] = {"Q3_K", 256, 110, true, true},
    [12] = {"Q4_K", 256, 144, true, true},   [13] = {"Q5_K", 256, 176, true, true},
    [14] = {"Q6_K", 256, 210, true, true},   [15] = {"Q8_K", 256, 292, false, false},
    [16] = {"IQ2_XXS", 256, 66, true, true}, [17] = {"IQ2_XS", 256, 74, true, true},
    [18] = {"IQ3_XXS", 256, 98, true, true}, [19] = {"IQ1_S", 256, 50, true, true},
    [20] = {"IQ4_NL", 32, 18, true, true},   [21] = {"IQ3_S", 256, 110, true, true},
    [22] = {"IQ2_S", 256, 82, true, true},   [23] = {"IQ4_XS", 256, 136, true, true},
    [24] = {"I8", 1, 1, false, false},       [25] = {"I16", 1, 2, false, false},
    [26] = {"I32", 1, 4, false, false},      [27] = {"I64", 1, 8, false, false},
    [28] = {"F64", 1, 8, false, false},      [29] = {"IQ1_M", 256, 56, true, true},
    [30] = {"BF16", 1, 2, true, true},       [34] = {"TQ1_0", 256, 54, false, false},
    [35] = {"TQ2_0", 256, 66, false, false}, [39] = {"MXFP4", 32, 17, false, false},
    [40] = {"NVFP4", 64, 36, false, false},  [41] = {"Q1_0", 32, 6, false, false},
    [42] = {"Q2_0", 32, 10, false, false},
};

const vkm_qtype_info *vkm_qtype_get(uint32_t type) {
    if (type >= VKM_QTYPE_COUNT || !g_types[type].name) return NULL;
    return &g_types[type];
}

const char *vkm_qtype_name(uint32_t type) {
    const vkm_qtype_info *t = vkm_qtype_get(type);
    return t ? t->name : "unknown";
}

size_t vkm_qtype_row_bytes(uint32_t type, uint64_t n) {
    const vkm_qtype_info *t = vkm_qtype_get(type);
    if (!t || n % t->block) return 0;
    return (size_t)(n / t->block) * t->bytes;
}
