/* cmd_bench_tok.c - `vkmoe bench --tokenizer -m MODEL`: tokenizer encode and decode speed on one
 * core (the calling thread; no GPU device is created, a vocab-only GGUF is enough).
 *
 * The input is ~1 MB (TEXT_TARGET bytes, cut at a sentence end) of English-like prose built in
 * memory: sentences from a fixed list, picked by a fixed-seed LCG, with '#' placeholders
 * replaced by numbers derived from a running counter, so the text is deterministic but not one
 * string repeated. It has punctuation, quotes, numbers, newlines and some non-ASCII (accented
 * Latin, Greek, Cyrillic, CJK, typographic dashes) words; it is valid UTF-8.
 *
 * Each of the `reps` repetitions times one vkm_tok_encode of the whole text (add_special false,
 * parse_special true) and one vkm_tok_decode of the resulting ids (render_special true), after
 * an untimed warm-up encode of the first WARMUP_BYTES. Times are wall clock (CLOCK_MONOTONIC);
 * MB = 10^6 bytes; encode MB/s counts input bytes, decode MB/s output bytes. Rates per
 * repetition are reported as mean and sample standard deviation. The decoded text is compared
 * with the input once (a byte-level BPE must give it back exactly); a mismatch is reported as
 * "roundtrip": false and a warning, not as an error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd_bench.h"
#include "err.h"
#include "gguf.h"
#include "tokenizer.h"

#define TEXT_TARGET 1000000u /* bytes of generated text (a little more: ends at a sentence) */
#define SENTENCE_MAX 1024u   /* bound on one expanded sentence + separator */
#define WARMUP_BYTES 65536u  /* untimed warm-up encode of the text's start */

/* '#' is replaced by a number; every sentence is well under SENTENCE_MAX expanded. */
static const char *const SENTENCES[] = {
    "The committee met on Tuesday, # March, to review the budget for the new public library.",
    "Prices rose by #.#% in the last quarter; most analysts had expected a smaller increase.",
    "\"Where are you going?\" she asked. \"To the station,\" he replied, \"platform #.\"",
    "At a small café in Zürich, the naïve tourist ordered a crème brûlée for # francs.",
    "The bridge, built in # and repaired twice since, carries about # cars every day.",
    "Nobody knew why the old clock in the hall had stopped at exactly #:# in the morning.",
    "Her résumé listed # languages, among them Ελληνικά, Русский and 日本語 (Japanese).",
    "It wasn't the rain that bothered them - it was the wind, which blew at # km/h.",
    "Chapter #: in which the travellers reach the coast and find the harbour empty…",
    "The façade of the building was painted blue, although the plans said it would be grey.",
    "Please send the report to the office before Friday; we need # copies for the meeting.",
    "According to the survey, # of # households own at least one bicycle.",
    "He said, quite calmly, that he'd rather walk the # miles than wait for another bus.",
    "Water boils at 100 °C at sea level, but at # metres it boils at a lower temperature.",
    "The recipe calls for # eggs, #g of flour, a pinch of salt and a cup of warm milk.",
    "In the morning the market was busy; by noon the stalls were nearly empty again.",
    "They had been friends since school — almost # years now — and rarely argued.",
    "Section #.# explains how the results were measured and what the error bars mean.",
    "\"I can't believe it's already #,\" said the old man, looking at the calendar.",
    "The museum's collection includes # paintings, # sculptures and a Gutenberg Bible.",
};
#define N_SENTENCES (sizeof SENTENCES / sizeof SENTENCES[0])

/* Appends sentence s to buf at *n (room for SENTENCE_MAX bytes guaranteed by the caller),
 * replacing each '#' with a number from *counter, then the separator sep. */
static void append_sentence(char *buf, size_t *n, const char *s, uint32_t *counter,
                            const char *sep) {
    size_t at = *n;
    for (; *s; s++) {
        if (*s == '#') {
            *counter = *counter * 1103515245u + 12345u;
            char num[16];
            int w = snprintf(num, sizeof num, "%u", (unsigned)((*counter >> 16) % 2000u));
            memcpy(buf + at, num, (size_t)w);
            at += (size_t)w;
        } else {
            buf[at++] = *s;
        }
    }
    size_t sl = strlen(sep);
    memcpy(buf + at, sep, sl);
    *n = at + sl;
}

/* Builds the benchmark text; *len gets its length. NULL on out of memory. */
static char *build_text(size_t *len) {
    char *buf = malloc(TEXT_TARGET + SENTENCE_MAX + 1);
    if (!buf) return NULL;
    size_t n = 0;
    uint32_t pick = 20240601u, counter = 1u;
    unsigned in_par = 0;
    while (n < TEXT_TARGET) {
        pick = pick * 1664525u + 1013904223u;
        const char *s = SENTENCES[(pick >> 8) % N_SENTENCES];
        unsigned par_len = 4 + (pick >> 28) % 5; /* 4..8 sentences a paragraph */
        in_par++;
        append_sentence(buf, &n, s, &counter, in_par >= par_len ? "\n\n" : " ");
        if (in_par >= par_len) in_par = 0;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

/* Mean and sample standard deviation of v[n]. */
static void mean_sd(const double *v, int n, double *mean, double *sd) {
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    *mean = n > 0 ? sum / n : 0;
    for (int i = 0; i < n; i++) sq += (v[i] - *mean) * (v[i] - *mean);
    *sd = n > 1 ? sqrt(sq / (n - 1)) : 0;
}

static int load_tok(const char *path, vkm_tok **tok) {
    vkm_gguf *g = NULL;
    int rc = vkm_gguf_open(path, &g);
    if (rc) return rc;
    rc = vkm_tok_load(g, tok);
    vkm_gguf_close(g);
    return rc;
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

typedef struct tok_result {
    size_t bytes, tokens;
    double enc_mbps, enc_sd, enc_tps, dec_mbps, dec_sd;
    bool roundtrip;
} tok_result;

/* Timed repetitions over text[len]; fills r. */
static int measure(const vkm_tok *tok, const char *text, size_t len, int reps, bool quiet,
                   tok_result *r) {
    double *enc = malloc((size_t)reps * sizeof *enc), *tps = malloc((size_t)reps * sizeof *tps),
           *dec = malloc((size_t)reps * sizeof *dec);
    int rc = (enc && tps && dec) ? VKM_OK : vkm_error(VKM_ENOMEM, "out of memory");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (!rc) { /* warm-up: page in the vocabulary tables and the regex engine */
        rc = vkm_tok_encode(tok, text, len < WARMUP_BYTES ? len : WARMUP_BYTES, false, true, &ids,
                            &n_ids);
        free(ids);
        ids = NULL;
    }
    r->bytes = len;
    r->tokens = 0;
    r->roundtrip = true;
    for (int k = 0; !rc && k < reps; k++) {
        double t0 = bench_now_s();
        rc = vkm_tok_encode(tok, text, len, false, true, &ids, &n_ids);
        double t1 = bench_now_s();
        if (rc) break;
        if (n_ids == 0) {
            rc = vkm_error(VKM_EFORMAT, "the tokenizer produced no tokens");
            break;
        }
        char *out = NULL;
        size_t out_len = 0;
        double t2 = bench_now_s();
        rc = vkm_tok_decode(tok, ids, n_ids, true, &out, &out_len);
        double t3 = bench_now_s();
        if (!rc && k == 0) {
            r->tokens = n_ids;
            r->roundtrip = out_len == len && memcmp(out, text, len) == 0;
        } else if (!rc && n_ids != r->tokens) {
            rc = vkm_error(VKM_EINVAL, "encode gave %zu tokens, then %zu", r->tokens, n_ids);
        }
        free(out);
        free(ids);
        ids = NULL;
        if (rc) break;
        double de = t1 - t0 > 0 ? t1 - t0 : 1e-9, dd = t3 - t2 > 0 ? t3 - t2 : 1e-9;
        enc[k] = (double)len / de / 1e6;
        tps[k] = (double)n_ids / de;
        dec[k] = (double)out_len / dd / 1e6;
        if (!quiet) {
            fprintf(stderr, "bench: tokenizer rep %d/%d: encode %.2f MB/s, decode %.2f MB/s\n",
                    k + 1, reps, enc[k], dec[k]);
            fflush(stderr);
        }
    }
    if (!rc) {
        double unused;
        mean_sd(enc, reps, &r->enc_mbps, &r->enc_sd);
        mean_sd(tps, reps, &r->enc_tps, &unused);
        mean_sd(dec, reps, &r->dec_mbps, &r->dec_sd);
    }
    free(enc);
    free(tps);
    free(dec);
    return rc;
}

static int run(const bench_tok_opts *o, cJSON *root) {
    vkm_tok *tok = NULL;
    int rc = load_tok(o->model, &tok);
    if (rc) return rc;
    size_t len = 0;
    char *text = build_text(&len);
    if (!text) rc = vkm_error(VKM_ENOMEM, "out of memory");
    tok_result r;
    memset(&r, 0, sizeof r);
    if (!rc) {
        if (!o->quiet) fprintf(stderr, "bench: tokenizer: %zu bytes of text\n", len);
        rc = measure(tok, text, len, o->reps, o->quiet, &r);
    }
    if (!rc) {
        cJSON *j = cJSON_CreateObject();
        if (!j || !bench_json_add(root, "tokenizer", j) ||
            !cJSON_AddStringToObject(j, "model", o->model) ||
            !cJSON_AddNumberToObject(j, "bytes", (double)r.bytes) ||
            !cJSON_AddNumberToObject(j, "tokens", (double)r.tokens) ||
            !cJSON_AddNumberToObject(j, "encode_mb_per_s", r.enc_mbps) ||
            !cJSON_AddNumberToObject(j, "encode_stddev", r.enc_sd) ||
            !cJSON_AddNumberToObject(j, "encode_tokens_per_s", r.enc_tps) ||
            !cJSON_AddNumberToObject(j, "decode_mb_per_s", r.dec_mbps) ||
            !cJSON_AddNumberToObject(j, "decode_stddev", r.dec_sd) ||
            !cJSON_AddNumberToObject(j, "reps", o->reps) ||
            !cJSON_AddBoolToObject(j, "roundtrip", r.roundtrip))
            rc = vkm_error(VKM_ENOMEM, "out of memory");
    }
    if (!rc) {
        if (!r.roundtrip)
            fprintf(stderr, "vkmoe: warning: bench --tokenizer: decode(encode(text)) != text\n");
        char enc[64], dec[64];
        snprintf(enc, sizeof enc, "%.2f ± %.2f", r.enc_mbps, r.enc_sd);
        snprintf(dec, sizeof dec, "%.2f ± %.2f", r.dec_mbps, r.dec_sd);
        printf("| %-30s | %9s | %9s | %7s | %16s | %13s | %16s |\n", "model", "bytes", "tokens",
               "B/token", "encode MB/s", "encode tok/s", "decode MB/s");
        printf("| %.30s | %.9s | %.9s | %.7s | %.16s | %.13s | %.16s |\n",
               "------------------------------", "---------", "---------", "-------",
               "----------------", "-------------", "----------------");
        printf("| %-30.30s | %9zu | %9zu | %7.2f | %17s | %13.0f | %17s |\n", base_name(o->model),
               r.bytes, r.tokens, (double)r.bytes / (double)r.tokens, enc, r.enc_tps, dec);
        fflush(stdout);
    }
    free(text);
    vkm_tok_free(tok);
    return rc;
}

int bench_tok_run(const bench_tok_opts *o, cJSON *root) {
    int rc = run(o, root);
    return rc ? cli_fail("bench --tokenizer -m %s: %s", o->model, vkm_errmsg()) : CLI_OK;
}
