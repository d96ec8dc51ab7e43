/* pipeline.c - kernel cache and on-disk pipeline cache (see pipeline.h). */
#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "shader_ids.h"
#include "shader_table.h"
#include "spirv_bindings.h"
#include "vk_check.h"

#define CACHE_MAX_BYTES (256u << 20) /* larger files are not ours or not sane */

struct vkm_vk_pipelines {
    vkm_vk_device *d;
    VkPipelineCache cache;
    bool dirty;               /* pipelines were created since the cache was loaded */
    size_t loaded_size;       /* bytes of cache data read from disk */
    char path[1024];          /* disk cache file, "" when disabled */
    vkm_gpu_kernel **kernels; /* [n_kernels] */
    int n_kernels, cap_kernels;
    vkm_gpu_kernel *by_shader[VKM_SHADER_COUNT]; /* each shader's kernels, chained by .next */
    int defer_from; /* vkm_vk_pipeline_defer: kernels from this index on wait (pipeline NULL)
                       for its end; -1 while not deferring */
    vkm_gpu_progress_fn progress; /* vkm_vk_pipeline_set_progress, NULL = none */
    void *progress_user;
    int prime_done, prime_total; /* since vkm_vk_pipeline_prime_begin */
};

/* ---- disk cache ---- */

static bool cache_dir(char *dir, size_t n) {
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int w;
    if (xdg && xdg[0] == '/')
        w = snprintf(dir, n, "%s/vkmoe", xdg);
    else if (home && home[0])
        w = snprintf(dir, n, "%s/.cache/vkmoe", home);
    else
        return false;
    return w > 0 && (size_t)w < n;
}

static void cache_path(vkm_vk_pipelines *p) {
    char dir[900];
    p->path[0] = 0;
    if (!cache_dir(dir, sizeof dir)) return;
    char uuid[2 * VK_UUID_SIZE + 1];
    for (unsigned i = 0; i < VK_UUID_SIZE; i++)
        snprintf(uuid + 2 * i, 3, "%02x", p->d->caps.device_uuid[i]);
    snprintf(p->path, sizeof p->path, "%s/pipelines-%s-%08x.bin", dir, uuid,
             p->d->caps.props.driverVersion);
}

static uint32_t le32(const unsigned char *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Reads the cache file if it exists and its header matches this device; else NULL. */
static void *cache_load(const vkm_vk_pipelines *p, size_t *size) {
    *size = 0;
    if (!p->path[0]) return NULL;
    FILE *f = fopen(p->path, "rb");
    if (!f) return NULL;
    unsigned char *data = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 32 || (unsigned long)n > CACHE_MAX_BYTES || fseek(f, 0, SEEK_SET) != 0) goto out;
    data = malloc((size_t)n);
    if (!data || fread(data, 1, (size_t)n, f) != (size_t)n) goto bad;
    const VkPhysicalDeviceProperties *pr = &p->d->caps.props;
    /* VkPipelineCacheHeaderVersionOne: size, version, vendor, device, uuid[16]. */
    if (le32(data) < 32 || le32(data) > (uint32_t)n ||
        le32(data + 4) != VK_PIPELINE_CACHE_HEADER_VERSION_ONE || le32(data + 8) != pr->vendorID ||
        le32(data + 12) != pr->deviceID ||
        memcmp(data + 16, pr->pipelineCacheUUID, VK_UUID_SIZE) != 0)
        goto bad;
    *size = (size_t)n;
    goto out;
bad:
    free(data);
    data = NULL;
out:
    fclose(f);
    return data;
}

static int mkdir_p(const char *dir) {
    char tmp[1024];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) return -1;
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST) return -1;
        *s = '/';
    }
    return mkdir(tmp, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

/* Best effort: written to a temporary file and renamed, so readers never see half a file. */
static void cache_save(vkm_vk_pipelines *p) {
    if (!p->path[0] || !p->dirty || !p->cache) return;
    vkm_vk_device *d = p->d;
    size_t n = 0;
    if (d->vk.vkGetPipelineCacheData(d->dev, p->cache, &n, NULL) < 0 || n == 0 ||
        n > CACHE_MAX_BYTES || n == p->loaded_size) /* same size: nothing new was compiled */
        return;
    void *data = malloc(n);
    if (!data) return;
    char dir[900], tmp[1100];
    if (d->vk.vkGetPipelineCacheData(d->dev, p->cache, &n, data) < 0 ||
        !cache_dir(dir, sizeof dir) || mkdir_p(dir) < 0)
        goto out;
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", p->path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) goto out;
    bool ok = fwrite(data, 1, n, f) == n;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, p->path) != 0) remove(tmp);
out:
    free(data);
}

/* ---- kernels ---- */

int vkm_vk_pipeline_create(vkm_vk_device *d, bool disk_cache, vkm_vk_pipelines **out) {
    *out = NULL;
    vkm_vk_pipelines *p = calloc(1, sizeof *p);
    if (!p) return vkm_error(VKM_ENOMEM, "out of memory creating the pipeline cache");
    p->d = d;
    p->defer_from = -1;
    if (disk_cache) cache_path(p);
    size_t size = 0;
    void *data = cache_load(p, &size);
    p->loaded_size = size;
    VkPipelineCacheCreateInfo ci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO,
        .initialDataSize = size,
        .pInitialData = data,
    };
    VkResult r = d->vk.vkCreatePipelineCache(d->dev, &ci, NULL, &p->cache);
    if (r < 0 && data) { /* a driver may still reject the data: start empty */
        ci.initialDataSize = 0;
        ci.pInitialData = NULL;
        r = d->vk.vkCreatePipelineCache(d->dev, &ci, NULL, &p->cache);
    }
    free(data);
    if (r < 0) p->cache = VK_NULL_HANDLE; /* pipelines still work without a cache */
    *out = p;
    return VKM_OK;
}

static void kernel_free(vkm_vk_device *d, vkm_gpu_kernel *k) {
    if (!k) return;
    if (k->pipeline) d->vk.vkDestroyPipeline(d->dev, k->pipeline, NULL);
    if (k->layout) d->vk.vkDestroyPipelineLayout(d->dev, k->layout, NULL);
    if (k->set_layout) d->vk.vkDestroyDescriptorSetLayout(d->dev, k->set_layout, NULL);
    free(k);
}

void vkm_vk_pipeline_destroy(vkm_vk_pipelines *p) {
    if (!p) return;
    cache_save(p);
    for (int i = 0; i < p->n_kernels; i++) kernel_free(p->d, p->kernels[i]);
    free(p->kernels);
    if (p->cache) p->d->vk.vkDestroyPipelineCache(p->d->dev, p->cache, NULL);
    free(p);
}

/* The chains of kernels by shader, rebuilt after kernels were dropped from p->kernels. */
static void relink(vkm_vk_pipelines *p) {
    memset(p->by_shader, 0, sizeof p->by_shader);
    for (int i = p->n_kernels - 1; i >= 0; i--) {
        vkm_gpu_kernel *k = p->kernels[i];
        k->next = p->by_shader[k->shader];
        p->by_shader[k->shader] = k;
    }
}

static int kernel_build(vkm_vk_pipelines *p, const vkm_shader_blob *sh, vkm_gpu_kernel *k) {
    vkm_vk_device *d = p->d;
    int rc = vkm_vk_spirv_bindings(sh->words, sh->size / 4, k->n_bindings, k->kinds);
    if (rc) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", vkm_errmsg());
        return vkm_error(rc, "shader %s: %s", sh->name, msg);
    }
    VkDescriptorSetLayoutBinding b[VKM_VK_MAX_BINDINGS];
    for (int i = 0; i < k->n_bindings; i++)
        b[i] = (VkDescriptorSetLayoutBinding){
            .binding = (uint32_t)i,
            .descriptorType = vkm_vk_descriptor_type(k->kinds[i]),
            .descriptorCount = 1,
            .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT,
        };
    k->push_descriptor =
        d->push_descriptor && (uint32_t)k->n_bindings <= d->caps.max_push_descriptors;
    VkDescriptorSetLayoutCreateInfo dci = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = k->push_descriptor ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR : 0,
        .bindingCount = (uint32_t)k->n_bindings,
        .pBindings = b,
    };
    VK_CHECK(d->vk.vkCreateDescriptorSetLayout(d->dev, &dci, NULL, &k->set_layout));
    VkPushConstantRange pcr = {VK_SHADER_STAGE_COMPUTE_BIT, 0, k->push_size};
    VkPipelineLayoutCreateInfo lci = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
        .setLayoutCount = 1,
        .pSetLayouts = &k->set_layout,
        .pushConstantRangeCount = k->push_size ? 1 : 0,
        .pPushConstantRanges = &pcr,
    };
    VK_CHECK(d->vk.vkCreatePipelineLayout(d->dev, &lci, NULL, &k->layout));

    VkShaderModuleCreateInfo sci = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = sh->size,
        .pCode = sh->words,
    };
    VkShaderModule module;
    VK_CHECK(d->vk.vkCreateShaderModule(d->dev, &sci, NULL, &module));
    VkSpecializationMapEntry map[VKM_VK_MAX_SPEC];
    for (int i = 0; i < k->n_spec; i++)
        map[i] = (VkSpecializationMapEntry){(uint32_t)i, (uint32_t)(4 * i), 4};
    VkSpecializationInfo spec = {
        .mapEntryCount = (uint32_t)k->n_spec,
        .pMapEntries = map,
        .dataSize = (size_t)k->n_spec * 4,
        .pData = k->spec,
    };
    VkComputePipelineCreateInfo pci = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage =
            {
                .sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                .module = module,
                .pName = "main",
                .pSpecializationInfo = k->n_spec ? &spec : NULL,
            },
        .layout = k->layout,
    };
    if (d->capture) /* vkm_vk_pipeline_report */
        pci.flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR |
                    VK_PIPELINE_CREATE_CAPTURE_INTERNAL_REPRESENTATIONS_BIT_KHR;
    VkResult r = d->vk.vkCreateComputePipelines(d->dev, p->cache, 1, &pci, NULL, &k->pipeline);
    d->vk.vkDestroyShaderModule(d->dev, module, NULL);
    if (r < 0) {
        k->pipeline = VK_NULL_HANDLE;
        return vkm_vk_fail(r, "vkCreateComputePipelines", __FILE__, __LINE__);
    }
    return VKM_OK;
}

/* Deferred builds (vkm_vk_pipeline_defer): workers take kernels first .. first + n - 1
 * in turn; each failure keeps its own message (vkm_error's buffer is per thread). A kernel not
 * taken because the progress hook asked to stop keeps VKM_EINTR. */
typedef struct build_job {
    vkm_vk_pipelines *p;
    int first, n;
    int next, done; /* next index to take, kernels built: under lock */
    bool stop;      /* the progress hook asked to stop: under lock */
    pthread_mutex_t lock;
    int *rc;          /* [n] */
    char (*msg)[256]; /* [n] */
} build_job;

static void *build_worker(void *arg) {
    build_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->lock);
        const int i = j->stop ? j->n : j->next++;
        pthread_mutex_unlock(&j->lock);
        if (i >= j->n) return NULL;
        vkm_gpu_kernel *k = j->p->kernels[j->first + i];
        j->rc[i] = kernel_build(j->p, &vkm_shader_table[k->shader], k);
        if (j->rc[i]) snprintf(j->msg[i], sizeof j->msg[i], "%s", vkm_errmsg());
        pthread_mutex_lock(&j->lock);
        j->done++;
        if (j->p->progress &&
            j->p->progress(j->p->progress_user, VKM_GPU_STAGE_BUILD, j->done, j->n))
            j->stop = true;
        pthread_mutex_unlock(&j->lock);
    }
}

/* Builds the kernels requested while deferred on up to `threads` threads (this one included);
 * those that fail are dropped from the cache. Returns the first failure. */
static int build_pending(vkm_vk_pipelines *p, int first, int threads) {
    const int n = p->n_kernels - first;
    if (n == 0) return VKM_OK;
    build_job j = {.p = p, .first = first, .n = n};
    j.rc = calloc((size_t)n, sizeof *j.rc);
    j.msg = calloc((size_t)n, sizeof *j.msg);
    if (!j.rc || !j.msg) {
        free(j.rc);
        free(j.msg);
        for (int i = first; i < p->n_kernels; i++) kernel_free(p->d, p->kernels[i]);
        p->n_kernels = first;
        relink(p);
        return vkm_error(VKM_ENOMEM, "out of memory building %d kernels", n);
    }
    for (int i = 0; i < n; i++) {
        j.rc[i] = VKM_EINTR;
        snprintf(j.msg[i], sizeof j.msg[i], "interrupted while building the device pipelines");
    }
    pthread_mutex_init(&j.lock, NULL);
    pthread_t tid[16];
    int started = 0;
    if (threads > n) threads = n;
    if (threads > 16) threads = 16;
    while (started < threads - 1 && pthread_create(&tid[started], NULL, build_worker, &j) == 0)
        started++;
    build_worker(&j);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&j.lock);
    int rc = VKM_OK, kept = first;
    for (int i = 0; i < n; i++) {
        vkm_gpu_kernel *k = p->kernels[first + i];
        if (j.rc[i] == VKM_OK) {
            p->kernels[kept++] = k;
            p->dirty = true;
            continue;
        }
        if (rc == VKM_OK) rc = vkm_error(j.rc[i], "%s", j.msg[i]);
        kernel_free(p->d, k);
    }
    p->n_kernels = kept;
    relink(p);
    free(j.rc);
    free(j.msg);
    return rc;
}

void vkm_vk_pipeline_set_progress(vkm_vk_pipelines *p, vkm_gpu_progress_fn fn, void *user) {
    p->progress = fn;
    p->progress_user = user;
}

void vkm_vk_pipeline_prime_begin(vkm_vk_pipelines *p) {
    p->prime_done = p->prime_total = 0;
    for (int i = 0; i < p->n_kernels; i++)
        if (p->kernels[i]->pipeline && !p->kernels[i]->primed) p->prime_total++;
}

int vkm_vk_pipeline_primed(vkm_vk_pipelines *p, vkm_gpu_kernel *k) {
    k->primed = true;
    if (p->prime_done < p->prime_total) p->prime_done++;
    if (p->progress &&
        p->progress(p->progress_user, VKM_GPU_STAGE_PRIME, p->prime_done, p->prime_total))
        return vkm_error(VKM_EINTR, "interrupted while compiling the device pipelines");
    return VKM_OK;
}

int vkm_vk_pipeline_count(const vkm_vk_pipelines *p) {
    return p->n_kernels;
}

int vkm_vk_pipeline_defer(vkm_vk_pipelines *p, bool on, int threads) {
    const int first = p->defer_from;
    if (on) {
        if (first < 0) p->defer_from = p->n_kernels;
        return VKM_OK;
    }
    p->defer_from = -1;
    return first < 0 ? VKM_OK : build_pending(p, first, threads < 1 ? 1 : threads);
}

int vkm_vk_pipeline_get(vkm_vk_pipelines *p, int shader, const uint32_t *spec, int n_spec,
                        int n_bindings, uint32_t push_size, vkm_gpu_kernel **out) {
    *out = NULL;
    const VkPhysicalDeviceLimits *lim = &p->d->caps.props.limits;
    if (shader < 0 || shader >= VKM_SHADER_COUNT || (unsigned)shader >= vkm_shader_count)
        return vkm_error(VKM_EINVAL, "kernel: no shader with id %d is built in", shader);
    const vkm_shader_blob *sh = &vkm_shader_table[shader];
    if (n_spec < 0 || n_spec > VKM_VK_MAX_SPEC || (n_spec && !spec))
        return vkm_error(VKM_EINVAL, "kernel %s: %d specialization constants (max %d)", sh->name,
                         n_spec, VKM_VK_MAX_SPEC);
    if (n_bindings < 0 || n_bindings > VKM_VK_MAX_BINDINGS ||
        (uint32_t)n_bindings > lim->maxPerStageDescriptorStorageBuffers)
        return vkm_error(VKM_EINVAL, "kernel %s: %d bindings (max %d)", sh->name, n_bindings,
                         VKM_VK_MAX_BINDINGS);
    if (push_size % 4 || push_size > lim->maxPushConstantsSize)
        return vkm_error(VKM_EINVAL, "kernel %s: push constant size %u (multiple of 4, max %u)",
                         sh->name, push_size, lim->maxPushConstantsSize);
    for (vkm_gpu_kernel *k = p->by_shader[shader]; k; k = k->next) {
        if (k->n_spec == n_spec && k->n_bindings == n_bindings && k->push_size == push_size &&
            (n_spec == 0 || !memcmp(k->spec, spec, (size_t)n_spec * sizeof *spec))) {
            *out = k;
            return VKM_OK;
        }
    }
    if (p->n_kernels == p->cap_kernels) {
        int cap = p->cap_kernels ? 2 * p->cap_kernels : 32;
        vkm_gpu_kernel **ks = realloc(p->kernels, (size_t)cap * sizeof *ks);
        if (!ks) return vkm_error(VKM_ENOMEM, "out of memory caching kernels");
        p->kernels = ks;
        p->cap_kernels = cap;
    }
    vkm_gpu_kernel *k = calloc(1, sizeof *k);
    if (!k) return vkm_error(VKM_ENOMEM, "out of memory creating kernel %s", sh->name);
    snprintf(k->name, sizeof k->name, "%s", sh->name);
    k->shader = shader;
    if (n_spec) memcpy(k->spec, spec, (size_t)n_spec * sizeof *spec);
    k->n_spec = n_spec;
    k->n_bindings = n_bindings;
    k->push_size = push_size;
    if (p->defer_from >= 0) { /* built by vkm_vk_pipeline_defer(p, false) */
        p->kernels[p->n_kernels++] = k;
        k->next = p->by_shader[shader];
        p->by_shader[shader] = k;
        *out = k;
        return VKM_OK;
    }
    int rc = kernel_build(p, sh, k);
    if (rc < 0) {
        kernel_free(p->d, k);
        return rc;
    }
    p->dirty = true;
    p->kernels[p->n_kernels++] = k;
    k->next = p->by_shader[shader];
    p->by_shader[shader] = k;
    *out = k;
    return VKM_OK;
}

/* ---- reports (vkm_gpu_kernel_describe) ---- */

/* The disassembly among the executable's internal representations: the text one named like
 * RADV's "Assembly" (or "ISA", "disassembly"); NULL where there is none. */
static char *executable_isa(vkm_vk_device *d, const VkPipelineExecutableInfoKHR *ei) {
    uint32_t n = 0;
    if (d->vk.vkGetPipelineExecutableInternalRepresentationsKHR(d->dev, ei, &n, NULL) < 0 || !n)
        return NULL;
    VkPipelineExecutableInternalRepresentationKHR *ir = calloc(n, sizeof *ir);
    if (!ir) return NULL;
    for (uint32_t i = 0; i < n; i++)
        ir[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INTERNAL_REPRESENTATION_KHR;
    char *text = NULL;
    if (d->vk.vkGetPipelineExecutableInternalRepresentationsKHR(d->dev, ei, &n, ir) >= 0) {
        int pick = -1;
        for (uint32_t i = 0; i < n; i++)
            if (ir[i].isText && (strstr(ir[i].name, "Assembly") || strstr(ir[i].name, "ISA") ||
                                 strstr(ir[i].name, "isassembly")))
                pick = (int)i;
        if (pick >= 0) {
            VkPipelineExecutableInternalRepresentationKHR one = ir[pick];
            one.pData = calloc(1, one.dataSize + 1);
            if (one.pData) {
                uint32_t cnt = (uint32_t)pick + 1; /* the call fills the first cnt entries */
                ir[pick].pData = one.pData;
                for (uint32_t i = 0; i < cnt; i++)
                    if ((int)i != pick) ir[i].dataSize = 0;
                if (d->vk.vkGetPipelineExecutableInternalRepresentationsKHR(d->dev, ei, &cnt, ir) >=
                    0)
                    text = one.pData;
                else
                    free(one.pData);
            }
        }
    }
    free(ir);
    return text;
}

int vkm_vk_pipeline_report(vkm_vk_pipelines *p, int index, vkm_gpu_kernel_report *out) {
    memset(out, 0, sizeof *out);
    if (index < 0 || index >= p->n_kernels)
        return vkm_error(VKM_EINVAL, "kernel %d of %d", index, p->n_kernels);
    const vkm_gpu_kernel *k = p->kernels[index];
    snprintf(out->name, sizeof out->name, "%s", k->name);
    out->shader = (vkm_shader_id)k->shader;
    out->n_spec = k->n_spec;
    memcpy(out->spec, k->spec, sizeof out->spec);
    out->built = k->pipeline != VK_NULL_HANDLE;
    vkm_vk_device *d = p->d;
    if (!d->capture || !k->pipeline) return VKM_OK;
    VkPipelineInfoKHR pi = {.sType = VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR, .pipeline = k->pipeline};
    uint32_t n_exe = 1;
    VkPipelineExecutablePropertiesKHR ep = {
        .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_PROPERTIES_KHR};
    VkResult r = d->vk.vkGetPipelineExecutablePropertiesKHR(d->dev, &pi, &n_exe, &ep);
    if (r < 0 || n_exe == 0) return VKM_OK; /* executable 0 only: a compute pipeline's */
    out->subgroup_size = ep.subgroupSize;
    VkPipelineExecutableInfoKHR ei = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                      .pipeline = k->pipeline,
                                      .executableIndex = 0};
    VkPipelineExecutableStatisticKHR st[VKM_GPU_MAX_STATS];
    for (int i = 0; i < VKM_GPU_MAX_STATS; i++)
        st[i] = (VkPipelineExecutableStatisticKHR){
            .sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR};
    uint32_t n_st = VKM_GPU_MAX_STATS;
    r = d->vk.vkGetPipelineExecutableStatisticsKHR(d->dev, &ei, &n_st, st);
    if (r >= 0) {
        for (uint32_t i = 0; i < n_st && i < VKM_GPU_MAX_STATS; i++) {
            vkm_gpu_stat *o = &out->stats[out->n_stats++];
            snprintf(o->name, sizeof o->name, "%.63s", st[i].name); /* names are short */
            switch (st[i].format) {
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
                o->value = st[i].value.b32;
                break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
                o->value = (double)st[i].value.i64;
                break;
            case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
                o->value = (double)st[i].value.u64;
                break;
            default:
                o->value = st[i].value.f64;
                break;
            }
        }
    }
    out->isa = executable_isa(d, &ei);
    return VKM_OK;
}
