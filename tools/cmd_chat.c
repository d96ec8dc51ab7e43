/* cmd_chat.c - `vkmoe chat`: interactive multi-turn chat with the model's chat template.
 *
 * Each turn renders the whole conversation, tokenizes it and lets gen_prefill() evaluate only
 * what is not already in the KV cache (the common token prefix is kept), so a turn costs its new
 * tokens, plus the previous answer again when R1 reasoning is stripped from it. On a terminal
 * input comes through libedit (line editing, history); otherwise lines are read plainly and no
 * prompt is printed, so a pipe can drive it. Commands: /reset, /quit (or /exit, EOF), /help;
 * another "/word" is refused with a warning ("//" sends a line starting with "/"). A message of
 * several lines: between two lines of three quotes ("""), or pasted on a terminal (lines that
 * arrive together are one message). -p/-f give the first message.
 * Ctrl-C stops the answer being generated, or the evaluation of a long question after its
 * current batch (the question is then dropped); at the prompt it exits (status 130).
 *
 * Invariant: msgs[0..n_msgs) is the conversation so far; each content is owned (malloc'ed). */
#include <editline/readline.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"

static const char *const USAGE =
    "vkmoe chat -m MODEL.gguf [-p FIRST | -f FILE] [-n N] [--temp T] [--top-k K] [--top-p P] "
    "[--min-p P] [--repeat-penalty R] [-s SEED] [-c CTX] [-r TEXT] [--ignore-eos] [-t N] "
    "[--device N] [--profile] [-sys TEXT] [--chat-template NAME] [--hide-thinking] [--no-bos] "
    "[--kv-f32] [--vram-budget SIZE] [--expert-policy lru|lfu] [--prefetch on|off] [--stats] "
    "[--quiet] "
    "[--expert-exec auto|gpu|cpu|upload] [--cpu-moe] [--n-cpu-moe N] [--cpu-threads N]";

static const char *const COMMANDS_HELP =
    "/reset clears the conversation, /quit or /exit (or Ctrl-D) exits, /help shows this;\n"
    "\"\"\" on a line of its own starts and ends a message of several lines (a paste is one\n"
    "message too); // sends a line starting with /. Ctrl-C stops an answer, the warm-up or\n"
    "the reading of a long question (Ctrl-C at the prompt exits)\n";

static void print_help(void) {
    printf("usage: %s\n\n"
           "Interactive chat. Each line you type is a user message; the answer streams back.\n"
           "Reasoning (R1's <think>...</think>) is dimmed on a terminal, otherwise framed by\n"
           "\"[thinking]\" and \"[/thinking]\" lines. Earlier answers are sent back without their\n"
           "reasoning. When stdin is not a terminal, lines are read plainly and no prompt is\n"
           "printed.\n%s\n",
           USAGE, COMMANDS_HELP);
    printf("  -p, --prompt TEXT       the first message (then the conversation goes on)\n"
           "  -f, --file FILE         the first message from FILE (\"-\" = stdin)\n");
    gen_print_flags_help(stdout, -1);
    printf("  -h, --help              this help\n");
}

typedef struct convo {
    vkm_chat_msg *msgs; /* [cap]; contents owned */
    size_t n, cap;
} convo;

static int convo_add(convo *c, enum vkm_chat_role role, const char *text, size_t len) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        vkm_chat_msg *m = realloc(c->msgs, cap * sizeof *m);
        if (!m) return cli_fail("out of memory");
        c->msgs = m;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy) return cli_fail("out of memory");
    memcpy(copy, text, len);
    copy[len] = 0;
    c->msgs[c->n++] = (vkm_chat_msg){role, copy};
    return CLI_OK;
}

/* Drops messages from index keep on. */
static void convo_truncate(convo *c, size_t keep) {
    while (c->n > keep) free((char *)c->msgs[--c->n].content);
}

/* Collects the raw answer text while displaying it. */
typedef struct answer {
    gen_display display;
    char *text; /* [cap], NULL until the first piece */
    size_t len, cap;
    bool oom;
} answer;

static void on_text(void *user, const char *s, size_t n) {
    answer *a = user;
    gen_display_text(&a->display, s, n);
    if (a->oom) return;
    if (a->len + n + 1 > a->cap) {
        size_t cap = a->cap ? a->cap : 1024;
        while (cap < a->len + n + 1) cap *= 2;
        char *t = realloc(a->text, cap);
        if (!t) {
            a->oom = true;
            return;
        }
        a->text = t;
        a->cap = cap;
    }
    memcpy(a->text + a->len, s, n);
    a->len += n;
}

static bool g_stdin_eof; /* a pending read on the terminal found its end (Ctrl-D) */

/* Reads one line without its line end into a malloc'ed string; NULL at EOF. */
static char *read_line(bool interactive, const char *prompt) {
    if (g_stdin_eof) return NULL;
    if (interactive) return readline(prompt);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    return line;
}

/* True when more input is already waiting (the rest of a paste) on a terminal. */
static bool more_pending(void) {
    struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
    return poll(&p, 1, 25) == 1 && (p.revents & POLLIN);
}

/* The line more_pending() saw, read from the terminal in its cooked mode, where a read returns
 * one whole line, or nothing for an end of input (Ctrl-D): libedit would switch the terminal to
 * raw mode first, which drops a pending end of input, and then wait for a key. NULL at EOF (then
 * g_stdin_eof) or when out of memory. */
static char *read_pending_line(void) {
    size_t len = 0, cap = 256;
    char *line = malloc(cap);
    while (line) {
        if (len + 1 >= cap) {
            char *t = realloc(line, 2 * cap);
            if (!t) break; /* the line so far */
            line = t;
            cap *= 2;
        }
        const ssize_t n = read(STDIN_FILENO, line + len, cap - 1 - len);
        if (n <= 0) {
            g_stdin_eof = true;
            if (len > 0) break; /* a last line without its line end */
            free(line);
            return NULL;
        }
        len += (size_t)n;
        if (line[len - 1] == '\n') break;
    }
    if (!line) return NULL;
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
    line[len] = 0;
    return line;
}

/* Appends "\n" and line to *msg (malloc'ed, or NULL for the first line). False: out of memory. */
static bool join_line(char **msg, const char *line) {
    const size_t a = *msg ? strlen(*msg) : 0, b = strlen(line);
    char *m = realloc(*msg, a + b + 2);
    if (!m) return false;
    if (a) m[a] = '\n';
    memcpy(m + (a ? a + 1 : 0), line, b + 1);
    *msg = m;
    return true;
}

static bool is_quotes(const char *line) {
    return !strcmp(line, "\"\"\"");
}

/* One message: a line; the lines between two \"\"\" lines; on a terminal also the lines of a paste
 * (those already waiting when a line ends). NULL at EOF (a \"\"\" block cut by EOF is sent). */
static char *read_message(bool interactive) {
    char *line = read_line(interactive, "> ");
    if (!line) return NULL;
    char *msg = NULL;
    bool ok = true;
    if (is_quotes(line)) {
        free(line);
        while ((line = read_line(interactive, "... ")) && !is_quotes(line)) {
            ok = ok && join_line(&msg, line);
            free(line);
        }
        free(line);
        if (!msg) msg = calloc(1, 1);
    } else {
        ok = join_line(&msg, line);
        free(line);
        while (ok && interactive && !g_stdin_eof && more_pending() &&
               (line = read_pending_line())) {
            ok = join_line(&msg, line);
            free(line);
        }
    }
    if (!ok || !msg) {
        free(msg);
        cli_fail("out of memory reading the message");
        return calloc(1, 1);
    }
    return msg;
}

/* One turn: user text in, answer out. CLI_OK also when the turn was refused (too long). */
static int chat_turn(gen_ctx *g, convo *c, const char *line) {
    const size_t before = c->n;
    int rc = convo_add(c, VKM_CHAT_USER, line, strlen(line));
    if (rc) return rc;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int n_ids = 0;
    vkm_chat_render_opts ro = {.add_generation_prompt = true};
    if (vkm_chat_render(g->tmpl, c->msgs, c->n, &ro, &text, &len)) {
        convo_truncate(c, before);
        return cli_fail_last();
    }
    rc = gen_tokenize(g, text, len, &ids, &n_ids);
    free(text);
    if (rc) {
        convo_truncate(c, before);
        return rc;
    }
    if (n_ids > g->n_ctx) {
        fprintf(stderr,
                "vkmoe: the conversation is %d tokens, more than the context of %d; "
                "/reset to start over (or raise -c)\n",
                n_ids, g->n_ctx);
        free(ids);
        convo_truncate(c, before);
        return CLI_OK;
    }
    rc = gen_prefill(g, ids, n_ids);
    free(ids);
    /* an error, or Ctrl-C during the prompt: forget the question */
    if (rc || !g->seq.have_logits) {
        if (!rc) fprintf(stderr, "vkmoe: (prompt interrupted)\n");
        convo_truncate(c, before);
        return rc;
    }
    answer a;
    memset(&a, 0, sizeof a);
    gen_display_init(&a.display, stdout, true, g->opts->hide_thinking);
    enum gen_stop why = GEN_STOP_LIMIT;
    rc = gen_generate(g, g->opts->n_predict, on_text, &a, &why);
    gen_display_end(&a.display, true);
    if (why == GEN_STOP_INTR) fprintf(stderr, "vkmoe: (answer interrupted)\n");
    if (!rc && a.oom) rc = cli_fail("out of memory");
    if (!rc && (a.len || why != GEN_STOP_INTR))
        rc = convo_add(c, VKM_CHAT_ASSISTANT, a.text ? a.text : "", a.len);
    else if (!rc)
        convo_truncate(c, before); /* interrupted before any text: forget the question */
    free(a.text);
    return rc;
}

int cmd_chat(int argc, char **argv) {
    gen_opts o;
    gen_opts_init(&o, -1);
    const char *first = NULL, *first_file = NULL;
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
            first = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return cli_usage_error(USAGE, "%s needs a file", a);
            first_file = argv[++i];
        } else if (a[0] == '-') {
            return cli_usage_error(USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!o.model) return cli_usage_error(USAGE, "missing -m MODEL.gguf");
    if (first && first_file) return cli_usage_error(USAGE, "give at most one of -p and -f");

    gen_ctx g;
    convo c = {0};
    char *file_text = NULL;
    size_t file_len = 0;
    if (first_file && gen_read_file(first_file, &file_text, &file_len)) return CLI_ERROR;
    if (file_text) first = file_text;
    int rc = gen_open(&g, &o, true);
    const size_t n_fixed = o.system ? 1 : 0; /* messages /reset keeps */
    if (!rc && o.system) rc = convo_add(&c, VKM_CHAT_SYSTEM, o.system, strlen(o.system));
    const bool interactive = isatty(STDIN_FILENO);
    if (!rc && interactive) {
        if (!o.quiet) fputs(COMMANDS_HELP, stderr);
        using_history();
    }
    if (!rc) gen_sigint_install(false);
    if (!rc && first && first[0]) {
        if (interactive) printf("> %s\n", first);
        rc = chat_turn(&g, &c, first);
    }
    while (!rc) {
        gen_interrupted = 0;
        gen_at_prompt = 1;
        fflush(stdout);
        char *line = read_message(interactive);
        gen_at_prompt = 0;
        if (!line) {
            if (interactive) fputc('\n', stdout);
            break;
        }
        if (!line[0]) {
            free(line);
            continue;
        }
        if (interactive) add_history(line);
        if (!strcmp(line, "/quit") || !strcmp(line, "/exit")) {
            free(line);
            break;
        } else if (!strcmp(line, "/reset")) {
            convo_truncate(&c, n_fixed);
            rc = gen_reset(&g);
            if (!o.quiet) fprintf(stderr, "vkmoe: conversation cleared\n");
        } else if (!strcmp(line, "/help")) {
            fputs(COMMANDS_HELP, stderr);
        } else if (line[0] == '/' && line[1] != '/' && !strchr(line, '\n')) {
            size_t w = strcspn(line, " \t");
            fprintf(stderr,
                    "vkmoe: unknown command %.*s (not sent; /help lists the commands, "
                    "// sends a line starting with /)\n",
                    (int)w, line);
        } else {
            rc = chat_turn(&g, &c, line[0] == '/' && line[1] == '/' ? line + 1 : line);
        }
        free(line);
    }
    if (g.seq.session) gen_print_timings(&g);
    convo_truncate(&c, 0);
    free(c.msgs);
    free(file_text);
    gen_close(&g);
    return rc;
}
