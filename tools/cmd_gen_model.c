/* cmd_gen_model.c - `vkmoe gen-model`: writes a deepseek2 GGUF with random weights from a preset
 * (core/genmodel.h), optionally cut down (--layers, --experts) and quantized with a mix.
 * Exit status per cli.h: 0 ok, 1 the file could not be written, 2 usage error, 130 Ctrl-C.
 * Notes about adjusted hyperparameters and the progress bar go to stderr; the summary goes to
 * stdout. The file is written as FILE.part and renamed at the end (gguf_write.h); Ctrl-C removes
 * the partial file, so FILE is either complete or untouched. */
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "cli.h"
#include "err.h"
#include "genmodel.h"
#include "gguf_write.h"
#include "qtype.h"

static const char *const USAGE = "vkmoe gen-model --preset P [--layers N] [--dense N] "
                                 "[--experts N] [--quant T] [--seed S] [--routing uniform|skewed] "
                                 "[--chat-template NAME] "
                                 "[--dry-run] [--quiet] -o FILE.gguf";

/* The partial file to remove on Ctrl-C. */
static char g_part[4096];

static void on_sigint(int sig) {
    (void)sig;
    static const char msg[] = "\nvkmoe: interrupted; nothing written\n";
    if (g_part[0]) unlink(g_part);
    if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
        /* exiting anyway */
    }
    _exit(130);
}

static void print_help(void) {
    printf("usage: %s\n\n"
           "Writes a deepseek2 (MLA layout) GGUF with random weights that vkmoe and llama.cpp\n"
           "load. Same options and seed give a byte-identical file. The vocabulary is always the\n"
           "268-token byte-level one of the test fixtures (no real vocabulary is embedded), so\n"
           "token_embd and output have 268 rows.\n\n"
           "  --preset P     model dimensions (below)\n"
           "  --layers N     number of layers (1..512); the dense lead is kept but at most N-1\n"
           "  --dense N      number of leading dense layers (<= layers)\n"
           "  --experts N    routed experts (1..512, >= top-k); grouping is dropped if N does\n"
           "                 not split into the preset's groups\n"
           "  --quant T      quantization mix (below), default q4_k_m\n"
           "  --seed S       random seed (default 1)\n"
           "  --routing R    expert popularity: uniform (default; i.i.d. router rows) or skewed\n"
           "                 (Zipf-like: in each layer a seeded order of the experts, rank r\n"
           "                 weighted 1/(r+1) through the router rows' scale and, where the\n"
           "                 preset has them, the selection biases exp_probs_b)\n"
           "  --chat-template NAME\n"
           "                 tokenizer.chat_template to write: deepseek3, deepseek2 or none\n"
           "                 (default: the preset's; tiny has none, like the fixture, and chat\n"
           "                 then infers deepseek3 from the vocabulary)\n"
           "  -o, --output F the file to write\n"
           "  --dry-run      print the tensor summary and size, write nothing\n"
           "  --quiet        no progress bar (shown on a terminal or for files > 64 MiB)\n"
           "  -h, --help     this help\n\npresets:\n",
           USAGE);
    for (int i = 0; i < vkm_genmodel_n_presets(); i++)
        printf("  %-12s %s\n", vkm_genmodel_preset_name(i), vkm_genmodel_preset_desc(i));
    printf("\nquant mixes (norms, the router and its bias always stay F32):\n");
    for (uint32_t m = 0; m < VKM_GENMODEL_MIX_COUNT; m++)
        printf("  %-12s %s\n", vkm_genmodel_mix_name(m), vkm_genmodel_mix_desc(m));
}

static void human(uint64_t bytes, char *buf, size_t n) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int u = 0;
    while (v >= 1024 && u < 4) v /= 1024, u++;
    snprintf(buf, n, u ? "%.2f %s" : "%.0f %s", v, units[u]);
}

typedef struct progress {
    bool quiet;
    int state; /* 0 undecided, 1 shown, 2 hidden */
    int last_pct;
} progress;

static void on_progress(void *user, uint64_t done, uint64_t total) {
    progress *p = user;
    if (p->state == 0)
        p->state = !p->quiet && (isatty(STDERR_FILENO) || total > (64ull << 20)) ? 1 : 2;
    if (p->state != 1 || total == 0) return;
    int pct = (int)(done * 100.0 / (double)total);
    if (pct == p->last_pct) return;
    p->last_pct = pct;
    char d[32], t[32];
    human(done, d, sizeof d);
    human(total, t, sizeof t);
    fprintf(stderr, "\rgen-model: %3d%% (%s of %s)   ", pct, d, t);
    fflush(stderr);
}

static void print_plan(const vkm_genmodel_plan *plan) {
    int64_t count[VKM_QTYPE_COUNT] = {0};
    uint64_t bytes[VKM_QTYPE_COUNT] = {0};
    for (int64_t i = 0; i < plan->n; i++) {
        count[plan->tensors[i].type]++;
        bytes[plan->tensors[i].type] += plan->tensors[i].nbytes;
    }
    char sz[32];
    human(plan->data_bytes, sz, sizeof sz);
    printf("tensors: %" PRId64 " (%" PRIu64 " bytes of data, %s)\n", plan->n, plan->data_bytes, sz);
    for (uint32_t t = 0; t < VKM_QTYPE_COUNT; t++) {
        if (!count[t]) continue;
        human(bytes[t], sz, sizeof sz);
        printf("  %-8s %6" PRId64 " tensors %16" PRIu64 " bytes (%s)\n", vkm_qtype_name(t),
               count[t], bytes[t], sz);
    }
}

int cmd_gen_model(int argc, char **argv) {
    const char *preset = NULL, *quant = "q4_k_m", *out = NULL;
    const char *chat_template = NULL;
    long layers = -1, dense = -1, experts = -1, seed = 1;
    bool dry = false, skewed = false;
    progress prog = {.last_pct = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        }
        if (!strcmp(a, "--dry-run")) {
            dry = true;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            prog.quiet = true;
            continue;
        }
        if (i + 1 >= argc) return cli_usage_error(USAGE, "unknown option or missing value: %s", a);
        const char *v = argv[++i];
        if (!strcmp(a, "--preset")) {
            preset = v;
        } else if (!strcmp(a, "--quant")) {
            quant = v;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            out = v;
        } else if (!strcmp(a, "--layers")) {
            if (!cli_parse_long(v, 1, 512, &layers))
                return cli_usage_error(USAGE, "--layers must be 1..512, not '%s'", v);
        } else if (!strcmp(a, "--dense")) {
            if (!cli_parse_long(v, 0, 512, &dense))
                return cli_usage_error(USAGE, "--dense must be 0..512, not '%s'", v);
        } else if (!strcmp(a, "--experts")) {
            if (!cli_parse_long(v, 1, 512, &experts))
                return cli_usage_error(USAGE, "--experts must be 1..512, not '%s'", v);
        } else if (!strcmp(a, "--chat-template")) {
            enum vkm_chat_template t;
            if (strcmp(v, "none") && vkm_chat_template_from_name(v, &t))
                return cli_usage_error(USAGE, "--chat-template: %s, or none", vkm_errmsg());
            chat_template = v;
        } else if (!strcmp(a, "--routing")) {
            if (strcmp(v, "uniform") && strcmp(v, "skewed"))
                return cli_usage_error(USAGE, "--routing must be uniform or skewed, not '%s'", v);
            skewed = !strcmp(v, "skewed");
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_long(v, 0, LONG_MAX, &seed))
                return cli_usage_error(USAGE, "--seed must be a non-negative integer, not '%s'", v);
        } else {
            return cli_usage_error(USAGE, "unknown option '%s'", a);
        }
    }
    if (!preset) return cli_usage_error(USAGE, "--preset is required");
    if (!out && !dry) return cli_usage_error(USAGE, "-o FILE.gguf is required");

    vkm_genmodel_hparams hp;
    uint32_t mix;
    if (vkm_genmodel_preset(preset, &hp)) return cli_usage_error(USAGE, "%s", vkm_errmsg());
    if (vkm_genmodel_mix_parse(quant, &mix)) return cli_usage_error(USAGE, "%s", vkm_errmsg());
    if (chat_template) {
        enum vkm_chat_template t = VKM_CHAT_NONE;
        if (strcmp(chat_template, "none")) vkm_chat_template_from_name(chat_template, &t);
        hp.chat_template = (uint32_t)t;
    }
    char note[256];
    if (experts >= 0) {
        if (vkm_genmodel_set_experts(&hp, (uint32_t)experts, note, sizeof note))
            return cli_usage_error(USAGE, "%s", vkm_errmsg());
        if (note[0]) fprintf(stderr, "vkmoe: note: %s\n", note);
    }
    if (layers >= 0 || dense >= 0) {
        uint32_t nl = layers >= 0 ? (uint32_t)layers : hp.n_layer;
        if (vkm_genmodel_set_layers(&hp, nl, dense >= 0 ? (uint32_t)dense : VKM_GENMODEL_AUTO, note,
                                    sizeof note))
            return cli_usage_error(USAGE, "%s", vkm_errmsg());
        if (note[0]) fprintf(stderr, "vkmoe: note: %s\n", note);
    }
    if (skewed) hp.routing = VKM_GENMODEL_ROUTING_SKEWED;
    if (vkm_genmodel_check(&hp)) return cli_usage_error(USAGE, "%s", vkm_errmsg());

    printf("%s: %u layers (%u dense), E %u, H %u, q_lora %u, kv_lora %u, experts %u (top-%u, "
           "groups %u/%u) + %u shared, Fe %u, quant %s, seed %ld, chat template %s%s\n",
           preset, hp.n_layer, hp.n_dense_lead, hp.n_embd, hp.n_head, hp.q_lora, hp.kv_lora,
           hp.n_expert, hp.n_expert_used, hp.n_group, hp.n_group_used, hp.n_expert_shared,
           hp.n_ff_exp, vkm_genmodel_mix_name(mix), seed,
           vkm_chat_template_name((enum vkm_chat_template)hp.chat_template),
           skewed ? ", skewed routing" : "");
    vkm_genmodel_plan *plan;
    if (vkm_genmodel_plan_create(&hp, mix, &plan)) return cli_fail_last();
    print_plan(plan);
    vkm_genmodel_plan_destroy(plan);
    if (dry) return CLI_OK;

    if (!vkm_gguf_w_temp_path(out, g_part, sizeof g_part)) g_part[0] = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int rc = vkm_genmodel_write(&hp, mix, (uint64_t)seed, out, on_progress, &prog);
    if (prog.state == 1) fputc('\n', stderr);
    if (rc) return cli_fail_last();
    printf("wrote %s\n", out);
    return CLI_OK;
}
