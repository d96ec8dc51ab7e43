/* cmd_bench_shaders.c - `vkmoe bench --shaders -m MODEL`: every pipeline the engine would build
 * for the model on the chosen device, with the kernel plan's specialization constants, and what
 * the driver says of each (VK_KHR_pipeline_executable_properties): registers, code size,
 * occupancy, spills, and, where the driver gives its disassembly (RADV), the main loop's
 * instruction mix.
 *
 * The engine is opened compile-only (core/vkmoe.h: no weights uploaded, no device memory, nothing
 * run), a session's warm-up records the passes of a 512-token prompt and of a decode step dry,
 * which builds exactly the kernels those evaluations would use. This works on drivers that cannot
 * run anything: RADV's null device (RADV_FORCE_FAMILY=gfx1100 / navi21 / polaris10 with the
 * radeon ICD) compiles for a real AMD chip without one, so the ISA can be compared anywhere.
 *
 * The loop figures come from the disassembly as text: labels "BBn:" and one instruction per line;
 * a branch to an earlier label closes a loop, and the loop reported is the one with the most
 * vector memory loads (a GEMV's weight loop): its instructions, VALU (v_*), SALU (s_* but
 * branches, waits and scalar loads), vector memory (buffer_ / global_ / flat_), branches other
 * than the back edge, and s_waitcnt on vmcnt(0) (a full drain of the wave's loads). Counted over
 * the loop's text, not along the executed path. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_bench.h"
#include "engine.h"
#include "qtype.h"
#include "vkmoe.h"

typedef struct loop_stats {
    bool found;
    int instructions, valu, salu, vmem, branches, drains, blocks;
} loop_stats;

/* One line's instruction mnemonic into m (empty for labels, comments, blank lines). */
static void mnemonic(const char *line, char *m, size_t n) {
    while (*line == ' ' || *line == '\t') line++;
    size_t k = 0;
    while (line[k] && line[k] != ' ' && line[k] != '\t' && line[k] != '\n' && k + 1 < n) {
        m[k] = line[k];
        k++;
    }
    m[k] = 0;
    if (k && (m[k - 1] == ':' || m[0] == ';' || m[0] == '/')) m[0] = 0;
}

/* The label a line defines ("BB12:" -> 12), or -1. */
static int label_of(const char *line) {
    int id = -1, used = 0;
    if (sscanf(line, "BB%d:%n", &id, &used) == 1 && used > 0) return id;
    return -1;
}

/* The label a branch instruction targets ("s_cbranch_scc1 BB3" -> 3), or -1. */
static int branch_target(const char *line) {
    const char *b = strstr(line, " BB");
    int id = -1;
    if (b && sscanf(b + 3, "%d", &id) == 1) return id;
    return -1;
}

typedef struct isa_line {
    const char *text;
    int label; /* defined here, -1 = none */
    char m[40];
} isa_line;

static loop_stats analyse(const char *isa) {
    loop_stats best = {0};
    if (!isa) return best;
    size_t cap = 1024, n = 0;
    isa_line *L = malloc(cap * sizeof *L);
    for (const char *p = isa; L && *p;) {
        const char *e = strchr(p, '\n');
        if (n == cap) {
            isa_line *t = realloc(L, 2 * cap * sizeof *L);
            if (!t) break;
            L = t;
            cap *= 2;
        }
        L[n].text = p;
        L[n].label = label_of(p);
        mnemonic(p, L[n].m, sizeof L[n].m);
        n++;
        if (!e) break;
        p = e + 1;
    }
    if (!L) return best;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(L[i].m, "s_branch", 8) && strncmp(L[i].m, "s_cbranch", 9)) continue;
        const int t = branch_target(L[i].text);
        size_t h = i;
        while (h > 0 && L[h].label != t) h--;
        if (t < 0 || L[h].label != t) continue; /* a forward branch */
        loop_stats s = {.found = true};
        for (size_t j = h; j <= i; j++) {
            const char *m = L[j].m;
            if (L[j].label >= 0) s.blocks++;
            if (!m[0]) continue;
            s.instructions++;
            if (!strncmp(m, "v_", 2))
                s.valu++;
            else if (!strncmp(m, "buffer_", 7) || !strncmp(m, "global_", 7) ||
                     !strncmp(m, "flat_", 5) || !strncmp(m, "tbuffer_", 8))
                s.vmem++;
            else if (!strncmp(m, "s_waitcnt", 9)) {
                const char *w = strstr(L[j].text, "vmcnt(0)");
                const char *eol = strchr(L[j].text, '\n');
                if (w && (!eol || w < eol)) s.drains++;
            } else if (!strncmp(m, "s_branch", 8) || !strncmp(m, "s_cbranch", 9)) {
                if (j != i) s.branches++;
            } else if (!strncmp(m, "s_", 2) && strncmp(m, "s_load", 6) &&
                       strncmp(m, "s_buffer_load", 13) && strncmp(m, "s_nop", 5))
                s.salu++;
        }
        if (!best.found || s.vmem > best.vmem ||
            (s.vmem == best.vmem && s.instructions > best.instructions))
            best = s;
    }
    free(L);
    return best;
}

/* The weight type a variant name ends with ("gemv_id_q4_k" -> "q4_k"), or NULL. */
static const char *type_of(const char *name, char *buf, size_t n) {
    const size_t len = strlen(name);
    size_t best = 0;
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) {
        const char *q = vkm_qtype_name(t);
        const size_t ql = q ? strlen(q) : 0;
        if (!ql || ql + 1 > len || ql < best || name[len - ql - 1] != '_') continue;
        bool same = true;
        for (size_t i = 0; i < ql && same; i++)
            same = name[len - ql + i] == tolower((unsigned char)q[i]);
        if (same) best = ql;
    }
    if (!best || best >= n) return NULL;
    memcpy(buf, name + len - best, best + 1);
    return buf;
}

static double stat_of(const vkm_gpu_kernel_report *r, const char *name, double missing) {
    for (int i = 0; i < r->n_stats; i++)
        if (!strcmp(r->stats[i].name, name)) return r->stats[i].value;
    return missing;
}

static cJSON *report_json(const vkm_gpu_kernel_report *r, const loop_stats *ls) {
    cJSON *o = cJSON_CreateObject(), *spec = cJSON_CreateArray(), *st = cJSON_CreateObject();
    if (!o || !spec || !st) {
        cJSON_Delete(o);
        cJSON_Delete(spec);
        cJSON_Delete(st);
        return NULL;
    }
    cJSON_AddStringToObject(o, "name", r->name);
    char tb[16];
    const char *type = type_of(r->name, tb, sizeof tb);
    if (type) cJSON_AddStringToObject(o, "type", type);
    for (int i = 0; i < r->n_spec; i++) cJSON_AddItemToArray(spec, cJSON_CreateNumber(r->spec[i]));
    cJSON_AddItemToObject(o, "spec", spec);
    cJSON_AddBoolToObject(o, "built", r->built);
    if (r->subgroup_size) cJSON_AddNumberToObject(o, "subgroup_size", r->subgroup_size);
    for (int i = 0; i < r->n_stats; i++)
        if (!cJSON_GetObjectItemCaseSensitive(st, r->stats[i].name))
            cJSON_AddNumberToObject(st, r->stats[i].name, r->stats[i].value);
    cJSON_AddItemToObject(o, "stats", st);
    if (ls->found) {
        cJSON *l = cJSON_AddObjectToObject(o, "loop");
        if (l) {
            cJSON_AddNumberToObject(l, "blocks", ls->blocks);
            cJSON_AddNumberToObject(l, "instructions", ls->instructions);
            cJSON_AddNumberToObject(l, "valu", ls->valu);
            cJSON_AddNumberToObject(l, "salu", ls->salu);
            cJSON_AddNumberToObject(l, "vmem", ls->vmem);
            cJSON_AddNumberToObject(l, "branches", ls->branches);
            cJSON_AddNumberToObject(l, "drains", ls->drains);
        }
    }
    return o;
}

int bench_shaders_run(const bench_shaders_opts *o, cJSON *root) {
    vkm_engine_opts eo = {.model_path = o->model,
                          .device = o->device,
                          .quiet = true,
                          .kernels = o->kernels,
                          .compile_only = true};
    vkm_engine *e = NULL;
    vkm_session *s = NULL;
    /* a 512-token prompt, decode steps, and batched decode steps of up to 8 streams (serve) */
    if (vkm_engine_open(&eo, &e) || vkm_session_create(e, NULL, &s) || vkm_session_warmup(s, 512) ||
        vkm_session_warmup_batched(s, 8, NULL, NULL)) {
        const int rc = cli_fail_last();
        vkm_session_destroy(s);
        vkm_engine_close(e);
        return rc;
    }
    vkm_gpu *gpu = vkm_engine_gpu(e);
    const int n = vkm_gpu_kernel_count(gpu);
    cJSON *arr = cJSON_CreateArray();
    int rc = arr ? CLI_OK : cli_fail("bench: out of memory");
    int n_stats = 0, n_failed = 0;
    printf("%d pipelines for %s on %s (kernel plan: %s)\n", n, o->model, vkm_gpu_info(gpu)->name,
           vkm_kernels_layout_name(vkm_gpu_plan(gpu)->layout));
    printf("%-28s %-22s %5s %5s %6s %5s %6s | %s\n", "pipeline", "spec", "VGPR", "SGPR", "code",
           "occ", "spill", "main loop: instr VALU SALU VMEM branch vmcnt(0)");
    for (int i = 0; !rc && i < n; i++) {
        vkm_gpu_kernel_report r;
        if (vkm_gpu_kernel_describe(gpu, i, &r)) {
            rc = cli_fail_last();
            break;
        }
        if (!r.built) n_failed++;
        if (r.n_stats) n_stats++;
        const loop_stats ls = analyse(r.isa);
        char spec[64] = "-";
        for (int j = 0, k = 0; j < r.n_spec && k < (int)sizeof spec - 12; j++)
            k += snprintf(spec + k, sizeof spec - (size_t)k, "%s%u", j ? "," : "", r.spec[j]);
        printf("%-28s %-22s %5.0f %5.0f %6.0f %5.0f %6.0f |", r.name, spec,
               stat_of(&r, "VGPRs", -1), stat_of(&r, "SGPRs", -1), stat_of(&r, "Code size", -1),
               stat_of(&r, "Subgroups per SIMD", -1),
               stat_of(&r, "Spilled VGPRs", 0) + stat_of(&r, "Spilled SGPRs", 0));
        if (ls.found)
            printf(" %5d %4d %4d %4d %6d %8d\n", ls.instructions, ls.valu, ls.salu, ls.vmem,
                   ls.branches, ls.drains);
        else
            printf(" -\n");
        cJSON *j = report_json(&r, &ls);
        free(r.isa);
        if (!j || !cJSON_AddItemToArray(arr, j)) rc = cli_fail("bench: out of memory");
    }
    if (!rc && !bench_json_add(root, "pipelines", arr))
        rc = cli_fail("bench: out of memory");
    else if (rc)
        cJSON_Delete(arr);
    if (!rc)
        fprintf(stderr, "vkmoe: %d pipelines built%s, %d with driver statistics%s\n", n - n_failed,
                n_failed ? " (some failed)" : "", n_stats,
                n_stats ? "" : " (the driver offers no VK_KHR_pipeline_executable_properties)");
    if (!rc && n_failed) rc = cli_fail("bench: %d pipelines failed to build", n_failed);
    vkm_session_destroy(s);
    vkm_engine_close(e);
    return rc;
}
