/* engine_impl.h - the state of a vkm_engine, shared by the files that implement it: engine.c
 * (open/close, info, profiling), weights.c (resident weight placement and uploads), imports.c
 * (regions of the file mapping imported as buffers) and experts.c (the routed experts: paging,
 * prefetch, statistics; staging.c is its staging ring). Internal to those files; the rest of
 * core/ sees an engine through engine.h and vkmoe.h only.
 *
 * Each group of fields names the file that writes it; the others only read it. The gguf
 * mapping outlives the model, which outlives the device tensors and the imported regions. */
#ifndef VKM_ENGINE_IMPL_H
#define VKM_ENGINE_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "gguf.h"
#include "moe_cpu.h"
#include "staging.h"

#define MIB (1024.0 * 1024.0)
#define MAX_BUF_BYTES ((uint64_t)4 << 30) /* shaders address 32-bit ranges */
#define MAX_PROFILE_LABELS 64
#define N_KINDS 4 /* enum vkm_expert_kind */

/* A page-aligned range of the file mapping of one part, imported as a buffer (gpu.h
 * vkm_gpu_buf_import). Regions may share a boundary page; each is at most the largest buffer. */
typedef struct region {
    vkm_gpu_buf *buf; /* NULL: not imported (refused, or released after use as a copy source) */
    int file;         /* split part */
    const char *base; /* start in that part's mapping, a multiple of the import granule */
    size_t size;      /* bytes, a multiple of the import granule */
} region;

typedef struct prof_entry {
    const char *label;
    uint64_t calls, ns;
} prof_entry;

/* Paged experts of one size class (experts.c). */
typedef struct expert_class expert_class;

struct vkm_engine {
    /* engine.c */
    vkm_engine_opts opts;
    vkm_gguf *gguf;
    vkm_model *model;
    vkm_gpu *gpu;
    vkm_dmodel dm; /* descriptors: weights.c (resident), experts.c (paged experts' slots) */
    vkm_engine_info info;
    prof_entry prof[MAX_PROFILE_LABELS]; /* [n_prof] totals since the last print */
    int n_prof;
    vkm_gpu_timing *timings; /* [4096] scratch for vkm_gpu_timings */
    /* weights.c */
    vkm_gpu_buf **bufs; /* [n_bufs] weight buffers */
    int n_bufs;
    /* experts.c (paged false: every expert resident in weights.c's expert pool buffers) */
    bool paged;
    expert_class *classes; /* [n_classes] */
    int n_classes;
    int *layer_class;      /* [n_layer] class of each MoE layer, -1 for dense layers */
    vkm_staging *staging;  /* the staging ring (staging.c) */
    vkm_gpu_buf *mats_buf; /* host-visible int32 [2][2 * max n_slots] (regions mats_region
                              bytes apart): the slot ranges of a round, alternating */
    size_t mats_region;
    uint32_t mats_flip;       /* region of the next round */
    int32_t *ranges;          /* [2 * n_expert] (first, count) of each expert in the grouping */
    int32_t *todo;            /* [n_expert] the current layer's chosen experts, in round order */
    int32_t *round_slots;     /* [n_expert] */
    bool *round_miss;         /* [n_expert] */
    uint32_t n_todo, todo_at; /* chosen experts of the current layer; first not yet paged */
    bool prefetch;            /* speculative prefetch on (opts.prefetch resolved; engine.c) */
    int32_t *votes;           /* [n_expert] prefetch: tokens guessing each expert */
    uint64_t page_main, page_minimum; /* plan_paging: other weights, minimum budget (bytes) */
    char page_why[256];  /* plan_paging: the automatic budget that pages, for the paging line */
    int32_t *exp_region; /* [n_layer * N_KINDS] region holding each paged expert tensor, -1 =
                            staging ring; NULL when no expert is imported */
    size_t *exp_off;     /* [n_layer * N_KINDS] offset of its data in that region */
    /* experts.c: routed experts computed on the CPU (core/moe_cpu.c; vkmoe.h expert_exec,
     * cpu_moe, n_cpu_moe) */
    bool *layer_cpu;         /* [n_layer] MoE layers whose experts are all on the CPU, or NULL */
    uint32_t n_layer_cpu;    /* how many */
    vkm_moe_cpu *moe_cpu;    /* NULL when nothing runs on the CPU */
    vkm_moe_cpu_costs costs; /* AUTO's cost model (measured at setup) */
    int32_t *cpu_list;       /* [n_expert] the current layer's experts computed on the CPU */
    uint32_t n_cpu;          /* entries of cpu_list not yet computed */
    int32_t *admit;          /* [n_expert] CPU misses of layer admit_layer admitted into slots */
    int32_t *admit_slot;     /* [n_expert] their slots, uploads not yet issued */
    uint32_t n_admit;        /* entries of admit not yet uploaded */
    uint32_t admit_layer;    /* the layer of those entries */
    uint64_t cpu_experts, cpu_bytes; /* statistics (vkm_expert_stats) */
    uint64_t cpu_tokens, cpu_misses; /* cpu_misses: CPU misses the pager did not see */
    double cpu_ms;
    /* imports of the file mapping (engine.h vkm_import_mode): imports.c keeps the regions,
     * weights.c and experts.c plan them and count what they hold */
    int import_mode; /* enum vkm_import_mode from VKMOE_IMPORT (engine.c) */
    region *regions; /* [n_regions] every region planned (resident and experts) */
    int n_regions, cap_regions;
    vkm_engine_import_stats imp;
};

static inline size_t align_up(size_t v) {
    return (v + VKM_FWD_ALIGN - 1) / VKM_FWD_ALIGN * VKM_FWD_ALIGN;
}

#endif
