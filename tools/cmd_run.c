/* cmd_run.c - `vkmoe run`: one prompt in, generated text streamed to stdout.
 *
 * Raw mode continues the prompt text as is. --chat wraps it in the model's chat template (one
 * user turn, optional system message) and shows R1 reasoning apart from the answer (gen.h).
 * Output is flushed after every piece and never splits a UTF-8 character; timings go to
 * stderr. Exit status: 0 ok, 1 runtime error (model, device, prompt longer than the context),
 * 2 usage error, 130 interrupted by Ctrl-C (after printing the timings). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"

static const char *const USAGE =
    "vkmoe run -m MODEL.gguf (-p PROMPT | -f FILE) [-n N] [--temp T] [--top-k K] [--top-p P] "
    "[--min-p P] [--repeat-penalty R] [-s SEED] [-c CTX] [-r TEXT] [--ignore-eos] [-t N] "
    "[--device N] [--profile] [--chat] [-i | -cnv] [-sys TEXT] [--chat-template NAME] "
    "[--hide-thinking] [--no-bos] [--kv-f32] [--vram-budget SIZE] [--expert-policy lru|lfu] "
    "[--prefetch on|off] [--stats] [--quiet] "
    "[--expert-exec auto|gpu|cpu|upload] [--cpu-moe] [--n-cpu-moe N] [--cpu-threads N]";

enum { RUN_DEFAULT_N = 128 };

static void print_help(void) {
    printf("usage: %s\n\n"
           "Generates text from a prompt and streams it to stdout; load time, warm-up time\n"
           "(building the device pipelines the prompt and decoding use), prompt and generation\n"
           "speed go to stderr. The warm-up and a prompt of several batches show their progress\n"
           "on a terminal. Ctrl-C stops the warm-up (within a second), the prompt after its\n"
           "current batch, or generation (exit status 130).\n\n"
           "  -p, --prompt TEXT       the prompt\n"
           "  -f, --file FILE         read the prompt from FILE (\"-\" = stdin)\n"
           "  --chat                  format the prompt as one user turn of the model's chat\n"
           "                          template and show reasoning apart from the answer: dimmed\n"
           "                          on a terminal, otherwise between the lines \"[thinking]\"\n"
           "                          and \"[/thinking]\"\n"
           "  -i, -cnv                interactive: `vkmoe chat` with these options, the prompt\n"
           "                          (if any) as the first message (also --interactive,\n"
           "                          --conversation)\n",
           USAGE);
    gen_print_flags_help(stdout, RUN_DEFAULT_N);
    printf("  -h, --help              this help\n");
}

/* run -i / -cnv: chat with the other options (--chat dropped: chat always uses the template). */
static int run_interactive(int argc, char **argv) {
    char **av = malloc((size_t)(argc + 1) * sizeof *av);
    if (!av) return cli_fail("out of memory");
    int n = 0;
    av[n++] = "chat";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-i") || !strcmp(a, "-cnv") || !strcmp(a, "--interactive") ||
            !strcmp(a, "--conversation") || !strcmp(a, "--chat"))
            continue;
        av[n++] = argv[i];
    }
    av[n] = NULL;
    const int rc = cmd_chat(n, av);
    free(av);
    return rc;
}

int cmd_run(int argc, char **argv) {
    gen_opts o;
    gen_opts_init(&o, RUN_DEFAULT_N);
    const char *prompt = NULL, *file = NULL;
    bool chat = false;
    for (int i = 1; i < argc; i++) { /* -i / -cnv: the same options go to chat */
        const char *a = argv[i];
        if (!strcmp(a, "-i") || !strcmp(a, "-cnv") || !strcmp(a, "--interactive") ||
            !strcmp(a, "--conversation"))
            return run_interactive(argc, argv);
        if (cli_is_help(a)) break;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_help();
            return CLI_OK;
        }
        int rc = gen_parse_flag(&o, argc, argv, &i, USAGE);
        if (rc != GEN_NOT_MINE) {
            if (rc) return rc;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "%s needs a text", a);
            prompt = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "%s needs a file", a);
            file = argv[++i];
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (a[0] == '-') {
            return cli_usage_error(USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!o.model) return cli_usage_error(USAGE, "missing -m MODEL.gguf");
    if (!prompt == !file) return cli_usage_error(USAGE, "give exactly one of -p and -f");
    if (!chat && (o.system || o.chat_template || o.hide_thinking))
        return cli_usage_error(USAGE, "--system, --chat-template and --hide-thinking need --chat");

    char *file_text = NULL, *rendered = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int n_ids = 0, rc = CLI_OK;
    gen_ctx g;
    memset(&g, 0, sizeof g);
    if (file && (rc = gen_read_file(file, &file_text, &len))) goto done;
    const char *text = file ? file_text : prompt;
    if (!file) len = strlen(prompt);
    if ((rc = gen_open(&g, &o, chat))) goto done;
    if (chat) {
        vkm_chat_msg msgs[2];
        size_t n = 0;
        if (o.system) msgs[n++] = (vkm_chat_msg){VKM_CHAT_SYSTEM, o.system};
        msgs[n++] = (vkm_chat_msg){VKM_CHAT_USER, text};
        vkm_chat_render_opts ro = {.add_generation_prompt = true};
        if (vkm_chat_render(g.tmpl, msgs, n, &ro, &rendered, &len)) {
            rc = cli_fail_last();
            goto done;
        }
        text = rendered;
    }
    if ((rc = gen_tokenize(&g, text, len, &ids, &n_ids))) goto done;

    gen_sigint_install(true);
    if ((rc = gen_prefill(&g, ids, n_ids))) goto done;
    enum gen_stop why = GEN_STOP_LIMIT;
    gen_display d;
    gen_display_init(&d, stdout, chat, o.hide_thinking);
    if (!gen_interrupted) rc = gen_generate(&g, o.n_predict, gen_display_text, &d, &why);
    gen_display_end(&d, d.tty || (!o.quiet && gen_same_stream()));
    gen_print_timings(&g);
    if (!rc && gen_interrupted) {
        fprintf(stderr, "vkmoe: interrupted\n");
        rc = 130;
    }
done:
    gen_close(&g);
    free(ids);
    free(rendered);
    free(file_text);
    return rc;
}
