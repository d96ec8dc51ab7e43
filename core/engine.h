/* engine.h - what core/session.c (and tests) may use of an engine beyond the public API of
 * vkmoe.h: its GPU, its host and device models, and the profile accumulator. Internal: tools use
 * vkmoe.h only. */
#ifndef VKM_ENGINE_H
#define VKM_ENGINE_H

#include "forward.h"
#include "gpu.h"
#include "model.h"
#include "vkmoe.h"

vkm_gpu *vkm_engine_gpu(vkm_engine *e);
const vkm_model *vkm_engine_model(const vkm_engine *e);
const vkm_dmodel *vkm_engine_dmodel(const vkm_engine *e);
bool vkm_engine_profiling(const vkm_engine *e);
/* Adds the marks of the batch just submitted to the per-label profile totals; *gpu_ns (if not
 * NULL) gets the batch's GPU time, the sum of its marks. */
int vkm_engine_profile_collect(vkm_engine *e, uint64_t *gpu_ns);

/* What a session with opts (NULL: defaults) allocates on gpu for the model hp: n_ctx and
 * max_batch resolved as vkm_session_create does, the KV cache and work buffer layouts, and the
 * device bytes of all its buffers. Errors as vkm_session_create's for bad options. */
typedef struct vkm_session_layout {
    int n_ctx, max_batch;
    vkm_fwd_kv kv;
    vkm_fwd_work w;
    uint64_t device_bytes;
} vkm_session_layout;
int vkm_session_plan(const vkm_hparams *hp, vkm_gpu *gpu, const vkm_session_opts *opts,
                     vkm_session_layout *out);

/* Whether the routed experts are paged (then every MoE layer needs vkm_engine_expert_page). */
bool vkm_engine_paged(const vkm_engine *e);
/* The pager step of forward.h's vkm_fwd_page_fn for MoE layer il, with no batch open: round 0
 * takes the layer's choices sel[n_sel] (read back from work.sel) and starts the layer; every
 * round makes up to n_slots of the chosen experts resident (uploading misses) and fills *plan.
 * VKM_EINVAL when il is not a paged MoE layer or the round does not exist. */
int vkm_engine_expert_page(vkm_engine *e, uint32_t il, uint32_t round, const int32_t *sel,
                           uint32_t n_sel, vkm_fwd_expert_plan *plan);
/* The plan of a dry recording (vkm_session_warmup) for MoE layer il: one round over every slot
 * of its size class, nothing paged. VKM_EINVAL when il is not a paged MoE layer. */
int vkm_engine_expert_plan_dry(const vkm_engine *e, uint32_t il, vkm_fwd_expert_plan *plan);
/* Whether speculative prefetch is in effect: experts paged and opts.prefetch on (auto: on where
 * the device has a dedicated transfer queue). The session asks forward.c for the router guess
 * (vkm_fwd_batch.guess) only then. */
bool vkm_engine_prefetching(const vkm_engine *e);
/* With prefetch on: the MoE layer whose choices forward.c guesses at layer il's cut (the next
 * MoE layer, when it is paged and has a router), else -1. */
int vkm_engine_prefetch_target(const vkm_engine *e, uint32_t il);
/* Speculative prefetch, after vkm_engine_expert_page's round 0 for the previous MoE layer: the
 * experts of layer il named in the guessed choices sel[n_sel] (most voted first) are uploaded
 * asynchronously into free or cold slots (pager.h) without the next batch waiting for them.
 * Does nothing while prefetch is off or the current layer has rounds left. */
int vkm_engine_expert_prefetch(vkm_engine *e, uint32_t il, const int32_t *sel, uint32_t n_sel);

/* Routed experts on the CPU (core/moe_cpu.c, vkmoe.h expert_exec / cpu_moe / n_cpu_moe).
 * Whether round 0 of MoE layer il may leave experts to the CPU (the session then reads the
 * layer's FFN input work.a back with its choices). */
bool vkm_engine_expert_cpu_possible(const vkm_engine *e, uint32_t il);
/* The experts round 0 of the current layer left to the CPU, not yet computed. */
uint32_t vkm_engine_expert_cpu_pending(const vkm_engine *e);
/* Computes them for MoE layer il: a [n_tok][E] the layer's FFN input, sel [n_tok][K] its
 * choices; each one's grouped rows of eo [n_tok*K][E] (host memory in work.eo's layout) are
 * written, their (first entry, count) go to spans[2 * *n_spans] ([2 * n_expert] room). */
int vkm_engine_expert_cpu_run(vkm_engine *e, uint32_t il, const float *a, const int32_t *sel,
                              uint32_t n_tok, float *eo, int32_t *spans, uint32_t *n_spans);

/* Weights from the file mapping through VK_EXT_external_memory_host (gpu.h vkm_gpu_buf_import),
 * chosen by the environment variable VKMOE_IMPORT at vkm_engine_open:
 *   auto (default, also unset/empty): where device memory is host memory (device type cpu or
 *        integrated) the resident weights are used in place from imported page-aligned regions
 *        of the mapping (no copy); on other devices they are uploaded as before. Paged experts
 *        are copied into their slots straight from imported regions (no staging memcpy), unless
 *        all expert bytes exceed half the physical memory (a driver may pin imported pages).
 *   on:   as auto, and on discrete devices the resident uploads are GPU copies from imported
 *        regions (one region imported at a time); the expert guard is off. Without import
 *        support a one-line note, then uploads.
 *   copy: (tests) the discrete behaviour on any device: resident weights uploaded by GPU copies
 *        from imported regions, paged experts imported as with on.
 *   off:  no import at all: uploads and the staging ring.
 * Any import the driver refuses falls back, region by region, to the upload path. */
enum vkm_import_mode { VKM_IMPORT_AUTO, VKM_IMPORT_ON, VKM_IMPORT_OFF, VKM_IMPORT_COPY };

typedef struct vkm_engine_import_stats {
    int mode;                /* enum vkm_import_mode in effect */
    uint64_t in_place_bytes; /* resident tensor bytes used in place from imported regions */
    uint64_t copied_bytes; /* resident tensor bytes uploaded by GPU copies from imported regions */
    uint64_t uploaded_bytes; /* resident tensor bytes uploaded from host memory (memcpy/staging) */
    uint64_t expert_bytes;   /* paged expert bytes copied to slots from imported regions */
    int n_regions;           /* imported regions the engine holds now */
    int n_failed;            /* imports refused (each fell back to uploads) */
} vkm_engine_import_stats;

void vkm_engine_import_stats_get(const vkm_engine *e, vkm_engine_import_stats *out);

#endif
