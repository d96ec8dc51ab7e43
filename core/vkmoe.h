/* vkmoe.h - the public API of the engine: what tools/ (and any embedding program) use.
 *
 * Two opaque types: vkm_engine (a model file loaded onto one Vulkan device: weights resident or
 * paged, kernels ready) and vkm_session (one sequence: its latent KV cache and position).
 * Options structs open them; zero-initialised options mean sane defaults. Every function returns
 * 0 or a negative VKM_E* code with a message (err.h). Thread-compatible, not thread-safe. */
#ifndef VKMOE_H
#define VKMOE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "kernels.h"

typedef struct vkm_engine vkm_engine;
typedef struct vkm_session vkm_session;

/* Routing trace hook (offline analysis, e.g. `vkmoe bench --paging`): called once per expert
 * pager request, only while experts are paged, with the MoE layer, the size class it pages in
 * (cls) and that class's slot count, and the n distinct experts made resident together. The
 * pager's hit/miss counters count exactly these requests. */
typedef void (*vkm_expert_trace_fn)(void *user, uint32_t layer, uint32_t cls, uint32_t cls_slots,
                                    const int32_t *experts, uint32_t n);

/* Speculative prefetch of paged experts: at each MoE layer the GPU also applies the next MoE
 * layer's router to the current hidden state; the experts it picks are uploaded asynchronously
 * into free or cold slots while the current layer computes. */
typedef enum vkm_prefetch {
    VKM_PREFETCH_AUTO = 0, /* on where the device has a dedicated transfer queue */
    VKM_PREFETCH_ON = 1,
    VKM_PREFETCH_OFF = 2,
} vkm_prefetch;

/* Expert paging: when the routed experts do not fit the budget they stay in host memory (the
 * mapped file) and each (layer, expert) is uploaded on demand into a fixed set of device slots. */
typedef enum vkm_expert_policy {
    VKM_EXPERT_POLICY_DEFAULT = 0, /* the engine's choice, VKM_EXPERT_LFU (README: it held more
                                      experts resident than LRU on skewed and uniform routing) */
    VKM_EXPERT_LRU = 1,            /* evict the least recently used */
    VKM_EXPERT_LFU = 2,            /* evict the least frequently used, counts decaying with time
                                      (a half-life of 32 forward passes) */
} vkm_expert_policy;

/* Where a paged layer's chosen experts that are not resident in a device slot (misses) are
 * computed (expert paging, vkm_engine_opts.expert_exec). Resident experts always run on the GPU.
 * The CPU path computes an expert from the mapped file with the host thread pool (core/moe_cpu.c:
 * activations rounded to 8-bit blocks for quantized weights, core/cpu_matmul.h), while the GPU
 * computes the resident experts and the shared expert of the same layer. A weight type without
 * a CPU kernel (the IQ types) always takes the upload path. */
typedef enum vkm_expert_exec {
    VKM_EXPERT_EXEC_GPU = 0,    /* every expert on the GPU: a miss is uploaded into a slot and the
                                   layer waits for it (the paging of before; the default) */
    VKM_EXPERT_EXEC_UPLOAD = 0, /* the same (the path (c), by its name) */
    VKM_EXPERT_EXEC_AUTO = 1,   /* per miss, the cost model (vkm_expert_stats.auto_*) picks: the
                                   CPU when its tokens take less CPU time than the upload (a
                                   decode step's misses, on most machines), else the upload (a
                                   prefill batch where many tokens share the expert) */
    VKM_EXPERT_EXEC_CPU = 2,    /* every miss on the CPU; it is also uploaded into a slot when
                                   the policy admits it (a free slot; with LFU also over a colder
                                   unit the step does not use), in the background: nothing waits
                                   for the copy, and no round reads the slot before it completed */
} vkm_expert_exec;

typedef struct vkm_engine_opts {
    const char *model_path; /* GGUF file (first part of a split model) */
    int device;             /* Vulkan device index (vkm_gpu_list order), -1 = default choice */
    bool validation;        /* enable Vulkan validation layers (tests, diagnostics) */
    bool profile;           /* record per-kernel GPU timestamps (vkm_engine_profile) */
    uint64_t vram_budget;   /* bytes for weights + expert cache; 0 = automatic */
    bool quiet;             /* no progress output on stderr */
    vkm_expert_policy expert_policy;  /* eviction of paged experts (0 = default: LFU) */
    vkm_expert_trace_fn expert_trace; /* NULL = off (see vkm_expert_trace_fn) */
    void *expert_trace_user;          /* passed to expert_trace */
    vkm_prefetch prefetch;            /* speculative expert prefetch while paging (0 = auto) */
    vkm_kernels_layout kernels; /* kernel layouts (core/kernels.h): 0 = AUTO, the device's own;
                                   the tools take $VKMOE_KERNELS (vkm_kernels_env) */
    /* The session the automatic budget leaves room for (as vkm_session_opts; 0 = its defaults):
     * its KV cache and work buffer are subtracted from the device's memory. */
    int n_ctx;
    bool kv_f32;
    int max_batch;
    /* Compile only (`vkmoe bench --shaders`): the gpu is created with gpu.h's compile_only, the
     * weights are not uploaded and nothing is paged; a session's warm-up then builds every kernel
     * the model's evaluations would use, and vkm_gpu_kernel_describe reports them. Evaluating
     * gives zero logits. */
    bool compile_only;
    /* Routed experts on the CPU (core/moe_cpu.c). expert_exec: where paged misses run (above);
     * without paging nothing misses and it changes nothing. cpu_moe: every MoE layer's routed
     * experts are computed on the CPU from the mapped file, none in device memory, none paged
     * (llama.cpp's --cpu-moe); n_cpu_moe > 0: the same for the first n_cpu_moe MoE layers
     * (--n-cpu-moe), the others' experts resident or, over the budget, paged (they then go
     * through the paging hook, in slots of their own). Layers whose expert types lack a CPU
     * kernel stay on the GPU. cpu_threads: host threads computing them (0 = one per online
     * CPU core; 1 = the calling thread alone). */
    vkm_expert_exec expert_exec;
    bool cpu_moe;
    int n_cpu_moe;
    int cpu_threads;
} vkm_engine_opts;

typedef struct vkm_expert_stats {
    bool paged;              /* false: every expert is resident (the other fields are 0) */
    uint32_t n_slots;        /* device slots, all size classes together */
    uint64_t slot_bytes;     /* device bytes of the slots */
    uint64_t hits, misses;   /* per (eval chunk, MoE layer, distinct chosen expert): found
                                resident (prefetched units included) or not */
    uint64_t prefetched;     /* units uploaded speculatively (prefetch) */
    uint64_t prefetch_used;  /* prefetched units requested before they were evicted */
    uint64_t uploaded_bytes; /* host -> device expert bytes (misses and prefetches) */
    double stall_ms;         /* host time the forward pass spent issuing expert uploads (staging
                                memcpy + waits for staging/slots), misses and prefetches */
    /* routed experts computed on the CPU (expert_exec cpu/auto misses, --cpu-moe layers): per
     * (eval chunk, MoE layer, expert), the expert bytes they read, the tokens, the host time */
    uint64_t cpu_experts, cpu_bytes, cpu_tokens;
    double cpu_ms;
    uint32_t cpu_layers; /* MoE layers whose experts are all on the CPU (cpu_moe / n_cpu_moe) */
    /* The cost model of VKM_EXPERT_EXEC_AUTO (core/moe_cpu.h vkm_moe_cpu_prefer), measured at
     * open by a short probe (0 when not measured): the CPU expert FFN's rate for one token and
     * the upload rate of one expert, in GB/s of expert bytes; a miss of up to auto_max_tokens
     * tokens is computed on the CPU. */
    double auto_cpu_gbps, auto_upload_gbps;
    uint32_t auto_max_tokens;
    /* misses computed on the CPU (expert_exec cpu/auto) and also uploaded into a slot for later
     * steps, in the background (core/pager.h vkm_pager_admit); counted in misses too */
    uint64_t admitted;
} vkm_expert_stats;

typedef struct vkm_engine_info {
    int n_vocab;
    int n_ctx_train;
    int n_layer;
    int n_embd;
    int n_expert, n_expert_used;
    uint64_t weight_bytes; /* bytes of all weights in the file */
    char device_name[256];
    char model_desc[256]; /* one line: "deepseek2 3 layers, 16 experts top-4, Q4_K_M-ish mix" */
} vkm_engine_info;

/* Loads the model onto the device: every tensor is uploaded once (progress on stderr for large
 * models unless quiet), or on devices whose memory is host memory (lavapipe, integrated GPUs) used
 * in place from the imported file mapping (VKMOE_IMPORT, core/engine.h), except that routed experts
 * are paged when weights + experts exceed the budget: opts.vram_budget, or automatically the device
 * heap's budget (VK_EXT_memory_budget, else its size) less the KV cache and work buffer of the
 * session opts describe and a margin of 1/16 of the heap budget (at most 512 MiB); weights used in
 * place from the imported mapping are no device allocations and do not count against the
 * automatic budget. A budget below the minimum (the other weights + the top-k experts of one MoE
 * layer per expert size class) is VKM_EDEVMEM naming that minimum and, for the automatic budget,
 * what it was made of.
 * VKM_EIO / VKM_EFORMAT for the file, VKM_EUNSUPPORTED for a tensor type or shape the kernels do
 * not handle, VKM_ENODEV without a device, VKM_EDEVMEM (naming the bytes needed) when the weights
 * do not fit. */
int vkm_engine_open(const vkm_engine_opts *opts, vkm_engine **out);
void vkm_engine_close(vkm_engine *e); /* accepts NULL */
void vkm_engine_get_info(const vkm_engine *e, vkm_engine_info *out);

typedef struct vkm_kv_pool vkm_kv_pool;
typedef struct vkm_session_opts {
    int n_ctx;     /* KV cache length in tokens; 0 = min(n_ctx_train, 4096) */
    bool kv_f32;   /* F32 latent KV cache instead of the default F16 */
    int max_batch; /* largest number of tokens per eval; 0 = 512 */
    /* NULL: a KV cache of its own; else a free slot of this pool (vkm_kv_pool_create), whose
     * n_ctx and kv_f32 then apply (the two above are ignored) */
    vkm_kv_pool *kv_pool;
} vkm_session_opts;

/* One device buffer for the KV caches of n_slots sessions of engine e (each opts->n_ctx tokens,
 * opts->kv_f32; NULL = the defaults): sessions created with vkm_session_opts.kv_pool take its
 * slots. A batched evaluation of several of them (vkm_session_eval_multi) then runs each MLA
 * layer's cache store and attention in one dispatch for all its sequences on GPUs (the kernel
 * plan's "pooled attn"), instead of one each per sequence; the logits are the same. VKM_EINVAL
 * for n_slots outside 1..65536 or a bad n_ctx, VKM_EDEVMEM when the pool does not fit.
 * vkm_kv_pool_destroy with sessions still in its slots frees it with the last of them. */
int vkm_kv_pool_create(vkm_engine *e, int n_slots, const vkm_session_opts *opts, vkm_kv_pool **out);
void vkm_kv_pool_destroy(vkm_kv_pool *p); /* accepts NULL */

/* opts may be NULL (defaults). VKM_EINVAL for a bad n_ctx (1..2^24) or max_batch (1..65536;
 * clamped to n_ctx), VKM_EDEVMEM when the cache or the work buffer does not fit. */
int vkm_session_create(vkm_engine *e, const vkm_session_opts *opts, vkm_session **out);
void vkm_session_destroy(vkm_session *s); /* accepts NULL */

/* Runs n tokens at positions n_past .. n_past+n-1 (longer inputs are split into max_batch
 * chunks) and appends them to the KV cache. logits: NULL, or [n][n_vocab] floats when
 * all_logits, or [n_vocab] for the last token only. VKM_ERANGE when the context would
 * overflow or a token id is outside [0, n_vocab) (the session is then unchanged); VKM_EINVAL for
 * n <= 0. Each max_batch chunk is one GPU submission; only the logits asked for come back. */
int vkm_session_eval(vkm_session *s, const int32_t *tokens, int n, bool all_logits, float *logits);
/* One sequence's part of a batched evaluation (vkm_session_eval_multi). */
typedef struct vkm_seq_eval {
    vkm_session *s;        /* the sequence: its KV cache and position */
    const int32_t *tokens; /* [n] appended at positions n_past .. n_past+n-1 of s */
    int n;                 /* >= 1 */
    float *logits;         /* NULL, or [n_vocab]: the logits after the last of these tokens */
} vkm_seq_eval;
/* Continuous batching (`vkmoe serve`): evaluates the tokens of several sessions of one engine
 * together, in one forward pass through the work buffer of `via` (a session of the same engine,
 * one of seqs[].s or one of its own): every weight matrix and every expert is read once for all
 * of them, while each sequence attends to its own KV cache. A decode step of N streams is
 * seqs[i].n = 1 for each; a new request's prompt may go in the same pass as a chunk. The sum
 * of seqs[].n must not exceed vkm_session_max_batch(via) (VKM_EINVAL), sessions must be
 * distinct and of via's engine (VKM_EINVAL); per sequence the checks of vkm_session_eval
 * (VKM_ERANGE). The logits equal those of evaluating each sequence alone up to the float
 * rounding of batched kernels (tests/test_gpu_multi.c: exact in the CPU layout, within 5e-5 in
 * the GPU layout on the fixtures). On any error no session has changed. Sessions that only ever
 * take part in batched evaluations can be created with max_batch 1: their own work buffer is
 * then small. With paged experts the pass pages once per MoE layer for all sequences together
 * (the experts they share are uploaded once). A pass where every sequence has one token counts
 * as a decode step of via (vkm_session_dispatch_stats). */
int vkm_session_eval_multi(vkm_session *via, const vkm_seq_eval *seqs, int n_seq);
/* Creates the device pipelines that evaluating n_prompt tokens from n_past on (as
 * vkm_session_eval with the last token's logits) and then generating one token at a time will
 * use, without running anything: those passes are recorded dry (gpu.h vkm_gpu_set_dry) and the
 * new kernels built at the end, several at once. On CPU devices, which compile a pipeline's code
 * at its first dispatch (lavapipe), the passes are then submitted once with no workgroups
 * (vkm_gpu_set_prime), which runs nothing. The evaluations that follow then do not pay for
 * shader compilation (on lavapipe seconds per process from Mesa's cache, a minute without it; a
 * driver's own caches make it short on GPUs). Changes nothing else; n_prompt <= 0 prepares the
 * one-token pass only. */
int vkm_session_warmup(vkm_session *s, int n_prompt);
/* The warm-up's progress: fn(user, stage, done, total) after each pipeline built
 * (VKM_WARMUP_BUILD, every device; called from the building threads, one call at a time) and,
 * on CPU devices, after each pipeline's first (empty) dispatch, where its code is compiled
 * (VKM_WARMUP_COMPILE; one pipeline at a time). When fn returns true the warm-up stops after the
 * pipeline in progress with VKM_EINTR; the session is unchanged and the pipelines done are kept.
 * (On lavapipe with a cold Mesa cache the largest kernels take several seconds to compile.) */
enum vkm_warmup_stage { VKM_WARMUP_BUILD = 0, VKM_WARMUP_COMPILE = 1 };
typedef bool (*vkm_progress_fn)(void *user, int stage, int done, int total);
/* vkm_session_warmup with a progress hook (fn NULL = none). */
int vkm_session_warmup_progress(vkm_session *s, int n_prompt, vkm_progress_fn fn, void *user);
/* The pipelines of batched decode steps (vkm_session_eval_multi through s of 2 .. n_seq
 * sequences with one token each; s's batch size bounds n_seq), prepared as vkm_session_warmup
 * does (dry passes, then empty dispatches on CPU devices); n_seq < 2 prepares nothing. */
int vkm_session_warmup_batched(vkm_session *s, int n_seq, vkm_progress_fn fn, void *user);
int vkm_session_n_past(const vkm_session *s);

/* GPU dispatches the session's evaluations recorded (the kernel plan's fused forms show here):
 * `last` of the last batch evaluated (a chunk of the last vkm_session_eval), and the sums over
 * every one-token batch (decode steps) so far: dispatches, the times the host waited for the
 * device (1 per step unpaged; paging adds one per MoE layer and the uploads' waits), the wall
 * time from recording to the logits on the host, and (profiling engines only, else 0) the GPU
 * time by timestamps: wall - GPU is what the host adds to a step. */
typedef struct vkm_dispatch_stats {
    uint64_t last;
    uint64_t decode_steps, decode_dispatches, decode_waits;
    uint64_t decode_wall_ns, decode_gpu_ns;
} vkm_dispatch_stats;
void vkm_session_dispatch_stats(const vkm_session *s, vkm_dispatch_stats *out);
int vkm_session_n_ctx(const vkm_session *s);
/* Tokens per GPU batch: vkm_session_eval evaluates longer inputs in chunks of this many. */
int vkm_session_max_batch(const vkm_session *s);
/* Forgets everything after the first n_past tokens (0 = empty the cache). */
int vkm_session_truncate(vkm_session *s, int n_past);

/* The expert paging counters accumulated since the engine was opened (or the last reset). */
void vkm_engine_expert_stats(const vkm_engine *e, vkm_expert_stats *out);
void vkm_engine_expert_stats_reset(vkm_engine *e);
/* "experts: hits=H misses=M prefetched=P prefetch_used=U uploaded_bytes=B stall_ms=S
 * cpu_experts=C cpu_bytes=Y cpu_ms=T" (no newline) into buf (always NUL-terminated); when the
 * AUTO cost model was measured, " auto_cpu_gbps=G auto_upload_gbps=U auto_max_tokens=N" too.
 * misses counts every chosen expert that was not resident, whether uploaded or computed on
 * the CPU; experts of cpu_moe layers count in cpu_experts only. */
void vkm_expert_stats_line(const vkm_expert_stats *st, char *buf, size_t n);

/* The arithmetic of expert paging that vkm_engine_open applies to a model file, without a device
 * (core/experts.c): the bytes of the weights as the engine places them (each tensor padded to
 * its alignment), the smallest budget that pages, and, for a budget (0 = none), whether the
 * experts are paged and the slots each expert size class gets (before any shrinking for device
 * memory, on a device whose buffers may take 4 GiB). */
#define VKM_PAGING_MAX_CLASSES 8
typedef struct vkm_paging_budget {
    uint64_t main_bytes;     /* every weight but the routed experts (ffn_*_exps) */
    uint64_t expert_bytes;   /* the routed experts */
    uint64_t ranges_bytes;   /* the host-visible slot-range buffer paging adds */
    uint64_t min_slot_bytes; /* the slots of the top-k experts of one MoE layer per size class */
    uint64_t minimum_bytes;  /* the paging minimum: main + ranges + min_slot bytes */
    int n_classes;           /* expert size classes (MoE layers with equal expert matrices) */
    uint32_t top_k;          /* slots per class at the minimum (the experts used, at least 1) */
    /* at the budget asked for */
    uint64_t budget;
    bool paged;          /* the budget is below main + experts and not below the minimum */
    uint32_t n_slots;    /* paged: slots of all classes (as vkm_expert_stats.n_slots) */
    uint64_t slot_bytes; /* paged: their device bytes (as vkm_expert_stats.slot_bytes) */
    uint32_t class_slots[VKM_PAGING_MAX_CLASSES]; /* paged: of the first classes */
} vkm_paging_budget;
/* VKM_EINVAL without a path; the file's errors as vkm_engine_open's; VKM_EUNSUPPORTED when the
 * top-k matrices of a class exceed a buffer. */
int vkm_experts_budget(const char *model_path, uint64_t budget, vkm_paging_budget *out);

/* With opts.profile: per-kernel GPU time accumulated since the last call, printed as a table
 * (label, calls, total ms, %), then reset. VKM_EINVAL when the engine was opened without it. */
int vkm_engine_profile_print(vkm_engine *e, void *file /* FILE* */);

#endif
