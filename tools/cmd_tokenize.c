/* cmd_tokenize.c - `vkmoe tokenize` (text -> token ids on one line) and `vkmoe detokenize`
 * (token ids -> text). Both only need the tokenizer keys of a GGUF, so vocab-only files work.
 * Exit status per cli.h: 0 ok, 1 runtime error (bad file, id out of range), 2 usage error. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "err.h"
#include "gguf.h"
#include "tokenizer.h"

static const char *const TOK_USAGE =
    "vkmoe tokenize -m MODEL.gguf (-p TEXT | -f FILE) [--no-bos] [--no-special]";
static const char *const DETOK_USAGE = "vkmoe detokenize -m MODEL.gguf --tokens \"ID ID ...\" "
                                       "[--no-special]";

static int open_tokenizer(const char *path, vkm_tok **tok) {
    vkm_gguf *g;
    if (vkm_gguf_open(path, &g)) return cli_fail_last();
    int rc = vkm_tok_load(g, tok);
    vkm_gguf_close(g);
    return rc ? cli_fail_last() : CLI_OK;
}

/* Reads a whole file ("-" = stdin) into a malloc'ed buffer. */
static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) return cli_fail("%s: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    int rc = CLI_OK;
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *b = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
        if (!b) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = b;
        cap *= 2;
    }
    if (!buf)
        rc = cli_fail("%s: out of memory", path);
    else if (ferror(f))
        rc = cli_fail("%s: read error", path);
    if (f != stdin) fclose(f);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return CLI_OK;
}

static void print_tokenize_help(void) {
    printf("usage: %s\n\n"
           "Prints the token ids of a text on one line, separated by single spaces.\n\n"
           "  -m, --model FILE   a GGUF with a tokenizer (a vocab-only file is enough)\n"
           "  -p, --prompt TEXT  the text to tokenize\n"
           "  -f, --file FILE    read the text from FILE (\"-\" for stdin), bytes as they are\n"
           "  --no-bos           do not add BOS (by default the model's add_bos flag decides)\n"
           "  --no-special       do not turn control-token texts such as <｜User｜> into their\n"
           "                     ids (user-defined tokens are always matched)\n"
           "  -h, --help         this help\n",
           TOK_USAGE);
}

int cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool bos = true, special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_tokenize_help();
            return CLI_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return cli_usage_error(TOK_USAGE, "%s needs a file", a);
            model = argv[++i];
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (i + 1 >= argc) return cli_usage_error(TOK_USAGE, "%s needs a text", a);
            prompt = argv[++i];
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (i + 1 >= argc) return cli_usage_error(TOK_USAGE, "%s needs a file", a);
            file = argv[++i];
        } else if (!strcmp(a, "--no-bos")) {
            bos = false;
        } else if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (a[0] == '-') {
            return cli_usage_error(TOK_USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(TOK_USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error(TOK_USAGE, "missing -m MODEL.gguf");
    if (!prompt == !file) return cli_usage_error(TOK_USAGE, "give exactly one of -p and -f");

    char *text = NULL;
    size_t len = 0;
    if (file) {
        int rc = read_file(file, &text, &len);
        if (rc) return rc;
    } else {
        len = strlen(prompt);
    }
    vkm_tok *tok = NULL;
    int rc = open_tokenizer(model, &tok);
    int32_t *ids = NULL;
    size_t n = 0;
    if (!rc && vkm_tok_encode(tok, text ? text : prompt, len, bos, special, &ids, &n))
        rc = cli_fail_last();
    if (!rc) {
        for (size_t i = 0; i < n; i++) printf(i ? " %" PRId32 : "%" PRId32, ids[i]);
        putchar('\n');
        if (fflush(stdout)) rc = cli_fail("tokenize: cannot write output");
    }
    free(ids);
    free(text);
    vkm_tok_free(tok);
    return rc;
}

static void print_detokenize_help(void) {
    printf("usage: %s\n\n"
           "Prints the text of a list of token ids (followed by a newline).\n\n"
           "  -m, --model FILE   a GGUF with a tokenizer (a vocab-only file is enough)\n"
           "  --tokens \"ID ...\"  the token ids, separated by spaces\n"
           "  --no-special       print nothing for control tokens (BOS, EOS, <｜User｜>, ...)\n"
           "  -h, --help         this help\n",
           DETOK_USAGE);
}

int cmd_detokenize(int argc, char **argv) {
    const char *model = NULL, *list = NULL;
    bool special = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            print_detokenize_help();
            return CLI_OK;
        } else if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (i + 1 >= argc) return cli_usage_error(DETOK_USAGE, "%s needs a file", a);
            model = argv[++i];
        } else if (!strcmp(a, "--tokens")) {
            if (i + 1 >= argc) return cli_usage_error(DETOK_USAGE, "%s needs a list of ids", a);
            list = argv[++i];
        } else if (!strcmp(a, "--no-special")) {
            special = false;
        } else if (a[0] == '-') {
            return cli_usage_error(DETOK_USAGE, "unknown option '%s'", a);
        } else {
            return cli_usage_error(DETOK_USAGE, "unexpected argument '%s'", a);
        }
    }
    if (!model) return cli_usage_error(DETOK_USAGE, "missing -m MODEL.gguf");
    if (!list) return cli_usage_error(DETOK_USAGE, "missing --tokens \"ID ID ...\"");

    /* parse every id before touching the model, so usage errors come first */
    size_t cap = strlen(list) / 2 + 1, n = 0;
    int32_t *ids = malloc(sizeof *ids * cap);
    long *vals = malloc(sizeof *vals * cap);
    char *copy = strdup(list);
    int rc = CLI_OK;
    if (!ids || !vals || !copy) rc = cli_fail("detokenize: out of memory");
    char *save = NULL;
    for (char *w = copy ? strtok_r(copy, " \t\n\r,", &save) : NULL; w && !rc;
         w = strtok_r(NULL, " \t\n\r,", &save)) {
        if (!cli_parse_long(w, LONG_MIN, LONG_MAX, &vals[n]))
            rc = cli_usage_error(DETOK_USAGE, "'%s' is not a token id", w);
        else
            n++; /* n <= cap: each id takes at least one character and one separator */
    }
    vkm_tok *tok = NULL;
    if (!rc) rc = open_tokenizer(model, &tok);
    for (size_t i = 0; i < n && !rc; i++) {
        if (vals[i] < 0 || vals[i] >= vkm_tok_n_vocab(tok))
            rc = cli_fail("detokenize: token id %ld is out of range (vocabulary of %" PRId32 ")",
                          vals[i], vkm_tok_n_vocab(tok));
        else
            ids[i] = (int32_t)vals[i];
    }
    char *text = NULL;
    size_t len = 0;
    if (!rc && vkm_tok_decode(tok, ids, n, special, &text, &len)) rc = cli_fail_last();
    if (!rc) {
        fwrite(text, 1, len, stdout);
        putchar('\n');
        if (fflush(stdout)) rc = cli_fail("detokenize: cannot write output");
    }
    free(text);
    free(ids);
    free(vals);
    free(copy);
    vkm_tok_free(tok);
    return rc;
}
