/* spirv_bindings.c - descriptor types of a shader's bindings from its SPIR-V (spirv_bindings.h).
 *
 * One pass over the instructions records, per result id, the type declarations (pointer, sampled
 * image, image, int, float) and the Binding / DescriptorSet decorations; then every
 * UniformConstant variable with a binding is classified. Every id and word count is checked
 * against the module's bound and length before use. */
#include "spirv_bindings.h"

#include <stdlib.h>
#include <string.h>

#include "err.h"

enum {
    OP_TYPE_INT = 21,
    OP_TYPE_FLOAT = 22,
    OP_TYPE_IMAGE = 25,
    OP_TYPE_SAMPLED_IMAGE = 27,
    OP_TYPE_POINTER = 32,
    OP_VARIABLE = 59,
    OP_DECORATE = 71,
    DEC_BINDING = 33,
    DEC_SET = 34,
    SC_UNIFORM_CONSTANT = 0,
    DIM_BUFFER = 5,
    NO_BINDING = 0xFFFFFFFFu,
};

typedef struct id_info {
    uint16_t op;      /* the declaring opcode (types and variables only) */
    uint32_t a, b, c; /* its operands: see classify() */
    uint32_t binding; /* Binding decoration, or NO_BINDING */
    uint32_t set;     /* DescriptorSet decoration (0 when absent) */
} id_info;

/* The kind of the texel buffer that UniformConstant variable `v` points to, or -1 when it is not
 * one of the two kinds this project uses. */
static int classify(const id_info *ids, uint32_t bound, uint32_t ptr) {
    if (ptr >= bound || ids[ptr].op != OP_TYPE_POINTER) return -1;
    uint32_t t = ids[ptr].b; /* pointee */
    if (t >= bound || ids[t].op != OP_TYPE_SAMPLED_IMAGE) return -1;
    uint32_t img = ids[t].a;
    if (img >= bound || ids[img].op != OP_TYPE_IMAGE) return -1;
    if (ids[img].b != DIM_BUFFER) return -1;
    uint32_t st = ids[img].a; /* sampled type */
    if (st >= bound) return -1;
    if (ids[st].op == OP_TYPE_INT && ids[st].a == 32 && ids[st].b == 0)
        return VKM_VK_BIND_TEXEL_U32;
    if (ids[st].op == OP_TYPE_FLOAT && ids[st].a == 32) return VKM_VK_BIND_TEXEL_F32;
    return -1;
}

int vkm_vk_spirv_bindings(const uint32_t *w, size_t n, int n_bindings, uint8_t *kinds) {
    if (n_bindings > 0) memset(kinds, VKM_VK_BIND_STORAGE, (size_t)n_bindings);
    if (!w || n < 5 || w[0] != 0x07230203u)
        return vkm_error(VKM_EFORMAT, "SPIR-V: not a SPIR-V module");
    const uint32_t bound = w[3];
    if (bound == 0 || bound > (1u << 22))
        return vkm_error(VKM_EFORMAT, "SPIR-V: id bound %u out of range", bound);
    id_info *ids = calloc(bound, sizeof *ids);
    if (!ids) return vkm_error(VKM_ENOMEM, "SPIR-V: out of memory");
    for (uint32_t i = 0; i < bound; i++) ids[i].binding = NO_BINDING;

    int rc = 0;
    for (size_t i = 5; i < n;) {
        const uint32_t wc = w[i] >> 16, op = w[i] & 0xFFFFu;
        if (wc == 0 || wc > n - i) {
            rc = vkm_error(VKM_EFORMAT, "SPIR-V: bad instruction length at word %zu", i);
            break;
        }
        const uint32_t *o = w + i + 1; /* operands, wc - 1 of them */
        switch (op) {
        case OP_TYPE_INT:           /* result, width, signedness */
        case OP_TYPE_SAMPLED_IMAGE: /* result, image type */
        case OP_TYPE_FLOAT:         /* result, width */
        case OP_TYPE_IMAGE:         /* result, sampled type, dim, ... */
        case OP_TYPE_POINTER:       /* result, storage class, pointee */
        case OP_VARIABLE:           /* result type, result, storage class */
            if (wc < 3) break;
            {
                const uint32_t id = op == OP_VARIABLE ? (wc >= 4 ? o[1] : bound) : o[0];
                if (id >= bound) {
                    rc = vkm_error(VKM_EFORMAT, "SPIR-V: id %u out of range", id);
                    break;
                }
                ids[id].op = (uint16_t)op;
                if (op == OP_VARIABLE) {
                    ids[id].a = o[0]; /* pointer type */
                    ids[id].c = o[2]; /* storage class */
                } else {
                    ids[id].a = o[1];
                    ids[id].b = wc >= 4 ? o[2] : 0;
                }
            }
            break;
        case OP_DECORATE: /* target, decoration, literal */
            if (wc >= 4 && o[0] < bound) {
                if (o[1] == DEC_BINDING) ids[o[0]].binding = o[2];
                if (o[1] == DEC_SET) ids[o[0]].set = o[2];
            }
            break;
        default:
            break;
        }
        if (rc) break;
        i += wc;
    }
    for (uint32_t v = 0; v < bound && !rc; v++) {
        if (ids[v].op != OP_VARIABLE || ids[v].binding == NO_BINDING) continue;
        if (ids[v].set != 0) {
            rc = vkm_error(VKM_EFORMAT, "SPIR-V: binding in descriptor set %u (only set 0 is used)",
                           ids[v].set);
            break;
        }
        if (ids[v].binding >= (uint32_t)(n_bindings > 0 ? n_bindings : 0)) {
            rc = vkm_error(VKM_EFORMAT, "SPIR-V: binding %u, but the kernel has %d", ids[v].binding,
                           n_bindings);
            break;
        }
        if (ids[v].c != SC_UNIFORM_CONSTANT) continue; /* storage buffers */
        const int kind = classify(ids, bound, ids[v].a);
        if (kind < 0) {
            rc = vkm_error(VKM_EFORMAT,
                           "SPIR-V: binding %u is an image or texel buffer of a kind the kernels "
                           "do not use (only 32-bit uint or float uniform texel buffers)",
                           ids[v].binding);
            break;
        }
        kinds[ids[v].binding] = (uint8_t)kind;
    }
    free(ids);
    return rc;
}
