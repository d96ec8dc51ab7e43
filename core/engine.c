/* engine.c - vkm_engine: a deepseek2 GGUF file loaded onto one Vulkan device (core/vkmoe.h).
 *
 * Opening maps and validates the file (gguf.c, model.c), creates the gpu, and places the weights
 * (weights.c: resident in a few big device buffers or used in place from imported regions of the
 * file mapping, imports.c), paging the routed experts when they exceed the VRAM budget
 * (experts.c, with its staging ring in staging.c and the policy in pager.c). This file holds
 * open/close, the engine's info and accessors, and the profile accumulator; the state it shares
 * with those files is core/engine_impl.h.
 *
 * Invariants: the gguf mapping outlives the model, which outlives the device tensors and the
 * imported regions; close frees in the reverse order of open and accepts a partly opened engine. */
#include "engine_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "experts.h"
#include "imports.h"
#include "weights.h"

#define MAX_MARKS 4096 /* gpu.h: marks per batch */

/* ------------------------------------------------------------------------- public ---- */

int vkm_engine_open(const vkm_engine_opts *opts, vkm_engine **out) {
    *out = NULL;
    if (!opts || !opts->model_path) return vkm_error(VKM_EINVAL, "vkm_engine_open: no model path");
    if (opts->expert_policy < VKM_EXPERT_POLICY_DEFAULT || opts->expert_policy > VKM_EXPERT_LFU)
        return vkm_error(VKM_EINVAL, "vkm_engine_open: unknown expert policy %d",
                         opts->expert_policy);
    if (opts->prefetch < VKM_PREFETCH_AUTO || opts->prefetch > VKM_PREFETCH_OFF)
        return vkm_error(VKM_EINVAL, "vkm_engine_open: unknown prefetch mode %d", opts->prefetch);
    if (opts->expert_exec < VKM_EXPERT_EXEC_GPU || opts->expert_exec > VKM_EXPERT_EXEC_CPU ||
        opts->n_cpu_moe < 0 || opts->cpu_threads < 0 || opts->cpu_threads > 257)
        return vkm_error(VKM_EINVAL,
                         "vkm_engine_open: expert_exec %d (0..2), n_cpu_moe %d (>= 0), "
                         "cpu_threads %d (0..257)",
                         opts->expert_exec, opts->n_cpu_moe, opts->cpu_threads);
    vkm_engine *e = calloc(1, sizeof *e);
    if (!e) return vkm_error(VKM_ENOMEM, "out of memory");
    e->opts = *opts;
    if (e->opts.expert_policy == VKM_EXPERT_POLICY_DEFAULT) e->opts.expert_policy = VKM_EXPERT_LFU;
    int rc;
    if ((rc = vkm_gguf_open(opts->model_path, &e->gguf)) ||
        (rc = vkm_model_load(e->gguf, &e->model)))
        goto fail;
    const vkm_hparams *hp = &e->model->hp;
    e->dm.hp = hp;
    if (!(e->dm.layers = calloc(hp->n_layer, sizeof *e->dm.layers)) ||
        !(e->timings = calloc(MAX_MARKS, sizeof *e->timings))) {
        rc = vkm_error(VKM_ENOMEM, "out of memory");
        goto fail;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) e->dm.layers[il].moe = e->model->layers[il].moe;
    if ((rc = vkm_op_rope_params(&e->dm.rope, hp->n_rot, hp->rope_freq_base, hp->freq_scale,
                                 hp->ext_factor, hp->attn_factor, hp->n_ctx_orig, 32.0f, 1.0f)))
        goto fail;
    if ((rc = vkm_import_mode_from_env(&e->import_mode))) goto fail;
    e->imp.mode = e->import_mode;
    vkm_gpu_options go = {.device = opts->device,
                          .validation = opts->validation,
                          .kernels = opts->kernels,
                          .compile_only = opts->compile_only};
    if ((rc = vkm_gpu_create(&go, &e->gpu))) goto fail;
    if ((rc = vkm_weights_upload(e))) goto fail;
    e->prefetch = opts->prefetch == VKM_PREFETCH_ON ||
                  (opts->prefetch == VKM_PREFETCH_AUTO && vkm_gpu_info(e->gpu)->transfer_queue);

    vkm_engine_info *in = &e->info;
    in->n_vocab = (int)hp->n_vocab;
    in->n_ctx_train = (int)hp->n_ctx_train;
    in->n_layer = (int)hp->n_layer;
    in->n_embd = (int)hp->n_embd;
    in->n_expert = (int)hp->n_expert;
    in->n_expert_used = (int)hp->n_expert_used;
    for (int64_t i = 0; i < vkm_gguf_n_tensors(e->gguf); i++)
        in->weight_bytes += vkm_gguf_tensor_at(e->gguf, i)->nbytes;
    snprintf(in->device_name, sizeof in->device_name, "%s", vkm_gpu_info(e->gpu)->name);
    vkm_model_describe(e->model, in->model_desc, sizeof in->model_desc);
    *out = e;
    return 0;
fail:
    vkm_engine_close(e);
    return rc;
}

void vkm_engine_close(vkm_engine *e) {
    if (!e) return;
    for (int b = 0; b < e->n_bufs; b++) vkm_gpu_buf_destroy(e->gpu, e->bufs[b]);
    free(e->bufs);
    vkm_experts_destroy(e);
    for (int r = 0; r < e->n_regions; r++) vkm_gpu_buf_destroy(e->gpu, e->regions[r].buf);
    free(e->regions);
    vkm_gpu_destroy(e->gpu);
    free(e->dm.layers);
    free(e->timings);
    vkm_model_free(e->model);
    vkm_gguf_close(e->gguf);
    free(e);
}

void vkm_engine_get_info(const vkm_engine *e, vkm_engine_info *out) {
    *out = e->info;
}

vkm_gpu *vkm_engine_gpu(vkm_engine *e) {
    return e->gpu;
}

const vkm_model *vkm_engine_model(const vkm_engine *e) {
    return e->model;
}

const vkm_dmodel *vkm_engine_dmodel(const vkm_engine *e) {
    return &e->dm;
}

void vkm_engine_import_stats_get(const vkm_engine *e, vkm_engine_import_stats *out) {
    *out = e->imp;
}

bool vkm_engine_profiling(const vkm_engine *e) {
    return e->opts.profile;
}

/* ------------------------------------------------------------------------ profile ---- */

int vkm_engine_profile_collect(vkm_engine *e, uint64_t *gpu_ns) {
    int n = 0;
    int rc = vkm_gpu_timings(e->gpu, e->timings, MAX_MARKS, &n);
    if (rc) return rc;
    if (n > MAX_MARKS) n = MAX_MARKS;
    for (int i = 0; i < n; i++) {
        if (gpu_ns) *gpu_ns += e->timings[i].ns;
        const char *label = e->timings[i].label;
        int j = 0;
        while (j < e->n_prof && e->prof[j].label != label && strcmp(e->prof[j].label, label)) j++;
        if (j == e->n_prof) {
            if (e->n_prof == MAX_PROFILE_LABELS) continue; /* more labels than we track */
            e->prof[e->n_prof++] = (prof_entry){label, 0, 0};
        }
        e->prof[j].calls++;
        e->prof[j].ns += e->timings[i].ns;
    }
    return 0;
}

static int prof_cmp(const void *a, const void *b) {
    const prof_entry *x = a, *y = b;
    return x->ns < y->ns ? 1 : x->ns > y->ns ? -1 : 0;
}

int vkm_engine_profile_print(vkm_engine *e, void *file) {
    FILE *fp = file;
    if (!e->opts.profile)
        return vkm_error(VKM_EINVAL, "profiling is off (open the engine with opts.profile)");
    uint64_t total = 0;
    for (int i = 0; i < e->n_prof; i++) total += e->prof[i].ns;
    qsort(e->prof, (size_t)e->n_prof, sizeof e->prof[0], prof_cmp);
    fprintf(fp, "%-16s %8s %12s %7s\n", "kernel", "calls", "total ms", "%");
    for (int i = 0; i < e->n_prof; i++)
        fprintf(fp, "%-16s %8llu %12.3f %6.1f%%\n", e->prof[i].label,
                (unsigned long long)e->prof[i].calls, (double)e->prof[i].ns / 1e6,
                total ? 100.0 * (double)e->prof[i].ns / (double)total : 0.0);
    fprintf(fp, "%-16s %8s %12.3f %6.1f%%\n", "total", "", (double)total / 1e6, 100.0);
    e->n_prof = 0;
    return 0;
}
