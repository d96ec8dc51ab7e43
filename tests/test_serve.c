/* test_serve.c - the pure parts of `vkmoe serve` (tools/serve.h), no device or network: the output
 * filter (stop strings and the <think> split fed whole, at every split point and byte by byte:
 * the same result, tags and stop strings never leak), request parsing and its errors (each
 * naming the field), the response and chunk JSON, SSE framing and UTF-8 cleaning. */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "check.h"
#include "serve.h"

/* ---- the filter ---- */

typedef struct sink {
    char reasoning[1024], answer[1024];
    size_t nr, na;
    int pieces;
} sink;

static void on_run(void *user, bool reasoning, const char *text, size_t len) {
    sink *s = user;
    char *dst = reasoning ? s->reasoning : s->answer;
    size_t *n = reasoning ? &s->nr : &s->na;
    if (*n + len < sizeof s->answer) memcpy(dst + *n, text, len), *n += len, dst[*n] = 0;
    s->pieces++;
}

/* Feeds text in pieces of `step` bytes (0: split once at `at`). */
static void run_filter(const char *text, const char *const *stop, int n_stop, bool split, size_t at,
                       size_t step, sink *s, bool *stopped) {
    memset(s, 0, sizeof *s);
    serve_filter f;
    serve_filter_init(&f, stop, n_stop, split, on_run, s);
    const size_t len = strlen(text);
    if (step) {
        for (size_t i = 0; i < len; i += step)
            serve_filter_feed(&f, text + i, len - i < step ? len - i : step);
    } else {
        serve_filter_feed(&f, text, at);
        serve_filter_feed(&f, text + at, len - at);
    }
    serve_filter_end(&f);
    *stopped = f.stopped;
    serve_filter_free(&f);
}

static void check_split(const char *text, const char *const *stop, int n_stop, bool split,
                        const char *want_r, const char *want_a, bool want_stop) {
    const size_t len = strlen(text);
    for (size_t at = 0; at <= len + 1; at++) { /* len + 1: byte by byte */
        sink s;
        bool stopped;
        if (at <= len)
            run_filter(text, stop, n_stop, split, at, 0, &s, &stopped);
        else
            run_filter(text, stop, n_stop, split, 0, 1, &s, &stopped);
        CHECK_MSG(!strcmp(s.reasoning, want_r) && !strcmp(s.answer, want_a) && stopped == want_stop,
                  "'%s' split at %zu: reasoning '%s' answer '%s' stopped %d", text, at, s.reasoning,
                  s.answer, stopped);
    }
}

static void test_filter(void) {
    /* reasoning apart, tags never in either part */
    check_split("<think>\nweigh it\n</think>\n\nThe answer.", NULL, 0, true, "weigh it\n",
                "The answer.", false);
    /* raw (reasoning_format none): everything is answer, tags included */
    check_split("<think>x</think>y", NULL, 0, false, "", "<think>x</think>y", false);
    /* stop strings: the match and what follows are dropped, also across pieces */
    const char *stop1[] = {"END"};
    check_split("hello END more", stop1, 1, false, "", "hello ", true);
    check_split("hello EN", stop1, 1, false, "", "hello EN", false); /* a prefix at the end */
    const char *stop2[] = {"zz", "\n\n"};
    check_split("a\nb\n\nc zz", stop2, 2, false, "", "a\nb", true);
    /* the earliest match of several */
    const char *stop3[] = {"cd", "bcde"};
    check_split("abcdef", stop3, 2, false, "", "a", true);
    check_split("abcdx", stop3, 2, false, "", "ab", true); /* the longer one failed */
    /* a stop inside the reasoning ends it (matched on the raw text) */
    const char *stop4[] = {"STOP"};
    check_split("<think>ab STOP cd</think>x", stop4, 1, true, "ab ", "", true);
    /* UTF-8: held-back text is never cut inside a character */
    const char *stop5[] = {"\xc3\xa9xyz"};
    sink s;
    bool stopped;
    run_filter("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac", stop5, 1, false, 0, 1, &s, &stopped);
    CHECK(!strcmp(s.answer, "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac") && !stopped);
    /* empty stop strings are ignored */
    const char *stop6[] = {""};
    check_split("abc", stop6, 1, false, "", "abc", false);
}

/* ---- requests ---- */

static int parse_chat(const char *body, serve_req *r, serve_error *e) {
    return serve_parse_chat(body, strlen(body), r, e);
}

/* The request fails with status 400 and the given param. */
static void check_bad_chat(const char *body, const char *param) {
    serve_req r;
    serve_error e;
    memset(&e, 0, sizeof e);
    const int rc = parse_chat(body, &r, &e);
    CHECK_MSG(rc < 0 && e.status == 400 && !strcmp(e.param, param),
              "%s: rc %d status %d param '%s' (%s), expected '%s'", body, rc, e.status, e.param,
              e.message, param);
    if (rc == 0) serve_req_free(&r);
}

static void test_requests(void) {
    serve_req r;
    serve_error e;
    CHECK_OK(parse_chat("{\"model\":\"x\",\"messages\":[{\"role\":\"system\",\"content\":\"be "
                        "brief\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                        "\"hi \"},{\"type\":\"text\",\"text\":\"there\"}]},{\"role\":"
                        "\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"q\"}],"
                        "\"max_tokens\":7,\"temperature\":0,\"top_p\":0.5,\"seed\":42,\"stop\":"
                        "[\"a\",\"bb\"],\"stream\":true,\"stream_options\":{\"include_usage\":"
                        "true},\"reasoning_format\":\"none\",\"n\":1,\"tools\":[]}",
                        &r, &e));
    CHECK(r.kind == SERVE_CHAT && r.n_msgs == 4);
    CHECK(r.n_msgs == 4 && r.msgs[0].role == VKM_CHAT_SYSTEM &&
          !strcmp(r.msgs[1].content, "hi there") && r.msgs[2].role == VKM_CHAT_ASSISTANT &&
          !strcmp(r.msgs[2].content, ""));
    CHECK(r.has_max_tokens && r.max_tokens == 7 && r.has_temperature && r.temperature == 0);
    CHECK(r.has_top_p && r.top_p == 0.5 && r.has_seed && r.seed == 42 && !r.has_top_k);
    CHECK(r.n_stop == 2 && !strcmp(r.stop[1], "bb") && r.stream && r.include_usage);
    CHECK(r.raw_reasoning);
    serve_req_free(&r);
    CHECK_OK(parse_chat("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                        "\"max_completion_tokens\":3,\"stop\":\"S\"}",
                        &r, &e));
    CHECK(r.max_tokens == 3 && r.n_stop == 1 && !strcmp(r.stop[0], "S") && !r.stream);
    serve_req_free(&r);

    check_bad_chat("{\"messages\":", "");
    check_bad_chat("[1,2]", "");
    check_bad_chat("{}", "messages");
    check_bad_chat("{\"messages\":{}}", "messages");
    check_bad_chat("{\"messages\":[]}", "messages");
    check_bad_chat("{\"messages\":[3]}", "messages[0]");
    check_bad_chat("{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role");
    check_bad_chat("{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}", "messages[0].role");
    check_bad_chat("{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content");
    check_bad_chat("{\"messages\":[{\"role\":\"user\",\"content\":5}]}", "messages[0].content");
    static const char M[] = "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]";
    static const struct {
        const char *extra, *param;
    } bad[] = {
        {"\"max_tokens\":\"9\"", "max_tokens"},
        {"\"max_tokens\":1.5", "max_tokens"},
        {"\"max_tokens\":-3", "max_tokens"},
        {"\"temperature\":\"hot\"", "temperature"},
        {"\"temperature\":-1", "temperature"},
        {"\"top_p\":2", "top_p"},
        {"\"seed\":0.5", "seed"},
        {"\"stop\":3", "stop"},
        {"\"stop\":[\"a\",1]", "stop"},
        {"\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]", "stop"},
        {"\"stream\":\"yes\"", "stream"},
        {"\"stream_options\":{\"include_usage\":1}", "stream_options.include_usage"},
        {"\"n\":2", "n"},
        {"\"tools\":[{\"type\":\"function\"}]", "tools"},
        {"\"logprobs\":true", "logprobs"},
        {"\"response_format\":{\"type\":\"json_object\"}", "response_format"},
        {"\"reasoning_format\":\"weird\"", "reasoning_format"},
        {"\"model\":7", "model"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[512];
        snprintf(body, sizeof body, "{%s,%s}", M, bad[i].extra);
        check_bad_chat(body, bad[i].param);
    }

    CHECK_OK(serve_parse_completion("{\"prompt\":[\"abc\"],\"max_tokens\":2}", 33, &r, &e));
    CHECK(r.kind == SERVE_COMPLETION && r.prompt_len == 3 && !strcmp(r.prompt, "abc"));
    serve_req_free(&r);
    CHECK(serve_parse_completion("{\"prompt\":[1,2]}", 16, &r, &e) < 0 &&
          !strcmp(e.param, "prompt"));
    CHECK(serve_parse_completion("{\"prompt\":\"\"}", 13, &r, &e) < 0 &&
          !strcmp(e.param, "prompt"));
    CHECK(serve_parse_completion("{\"max_tokens\":1}", 16, &r, &e) < 0 &&
          !strcmp(e.param, "prompt"));
    /* the body need not be NUL-terminated: only len bytes are read */
    CHECK_OK(serve_parse_completion("{\"prompt\":\"p\"}garbage", 14, &r, &e));
    serve_req_free(&r);

    char *content;
    size_t len;
    bool add;
    CHECK_OK(serve_parse_tokenize("{\"content\":\"hi\",\"add_special\":true}", 35, &content, &len,
                                  &add, &e));
    CHECK(len == 2 && add);
    free(content);
    CHECK(serve_parse_tokenize("{\"content\":1}", 13, &content, &len, &add, &e) < 0 &&
          !strcmp(e.param, "content"));
    int32_t *ids;
    size_t n;
    CHECK_OK(serve_parse_detokenize("{\"tokens\":[0,5,9]}", 18, 10, &ids, &n, &e));
    CHECK(n == 3 && ids[2] == 9);
    free(ids);
    CHECK(serve_parse_detokenize("{\"tokens\":[10]}", 15, 10, &ids, &n, &e) < 0 &&
          !strcmp(e.param, "tokens"));
    CHECK(serve_parse_detokenize("{\"tokens\":[-1]}", 15, 10, &ids, &n, &e) < 0);
    CHECK(serve_parse_detokenize("{\"tokens\":\"1\"}", 14, 10, &ids, &n, &e) < 0);
}

/* ---- responses ---- */

static const char *str_at(const cJSON *o, const char *path) {
    /* "a.b.0.c": object fields and array indexes */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    const cJSON *v = o;
    for (char *t = strtok(buf, "."); t && v; t = strtok(NULL, "."))
        v = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, atoi(t)) : cJSON_GetObjectItem(v, t);
    return v && cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num_at(const cJSON *o, const char *a, const char *b) {
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(o, a), b);
    return v && cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void test_responses(void) {
    serve_meta m = {.id = "chatcmpl-1", .created = 5, .model = "tiny"};
    serve_usage u = {.prompt_tokens = 3, .completion_tokens = 4};
    char *s = serve_chat_json(&m, "ans", 3, "why", 3, "stop", &u);
    cJSON *j = cJSON_Parse(s);
    CHECK(j && !strcmp(str_at(j, "object"), "chat.completion"));
    CHECK(j && str_at(j, "choices.0.message.content") &&
          !strcmp(str_at(j, "choices.0.message.content"), "ans"));
    CHECK(j && str_at(j, "choices.0.message.reasoning_content") &&
          !strcmp(str_at(j, "choices.0.message.reasoning_content"), "why"));
    CHECK(j && !strcmp(str_at(j, "choices.0.finish_reason"), "stop"));
    CHECK(j && num_at(j, "usage", "total_tokens") == 7);
    cJSON_Delete(j);
    free(s);
    s = serve_chat_json(&m, "a", 1, "", 0, "length", &u);
    CHECK(s && !strstr(s, "reasoning_content"));
    free(s);

    s = serve_chat_chunk_json(&m, true, false, "x", 1, NULL);
    j = cJSON_Parse(s);
    CHECK(j && !strcmp(str_at(j, "object"), "chat.completion.chunk") &&
          !strcmp(str_at(j, "choices.0.delta.role"), "assistant") &&
          !strcmp(str_at(j, "choices.0.delta.content"), "x"));
    CHECK(j && cJSON_IsNull(cJSON_GetObjectItem(
                   cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0), "finish_reason")));
    cJSON_Delete(j);
    free(s);
    s = serve_chat_chunk_json(&m, false, true, "r", 1, NULL);
    CHECK(s && strstr(s, "\"reasoning_content\":\"r\"") && !strstr(s, "role"));
    free(s);
    s = serve_usage_chunk_json(&m, SERVE_CHAT, &u);
    CHECK(s && strstr(s, "\"choices\":[]") && strstr(s, "\"completion_tokens\":4"));
    free(s);
    s = serve_completion_json(&m, "t", 1, "length", &u);
    CHECK(s && strstr(s, "\"object\":\"text_completion\"") && strstr(s, "\"text\":\"t\""));
    free(s);

    size_t n;
    char *ev = serve_sse_event("{}", &n);
    CHECK(ev && n == 10 && !strcmp(ev, "data: {}\n\n"));
    free(ev);
    CHECK(!strcmp(SERVE_SSE_DONE, "data: [DONE]\n\n"));

    serve_error e;
    serve_fail(&e, 400, "invalid_request_error", NULL, "n", "'n' must be %d", 1);
    s = serve_error_json(&e);
    j = cJSON_Parse(s);
    CHECK(j && !strcmp(str_at(j, "error.message"), "'n' must be 1") &&
          !strcmp(str_at(j, "error.param"), "n") &&
          cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")));
    cJSON_Delete(j);
    free(s);

    /* UTF-8 cleaning: valid text unchanged; each maximal invalid subpart one U+FFFD */
    static const struct {
        const char *in, *out;
        size_t len;
    } u8[] = {
        {"ab\xc3\xa9", "ab\xc3\xa9", 4},
        {"a\xff"
         "b",
         "a\xef\xbf\xbd"
         "b",
         3},
        {"\xe2\x82", "\xef\xbf\xbd", 2}, /* cut short: one */
        {"\xe2\x82z", "\xef\xbf\xbdz", 3},
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd", 2},                 /* overlong: each byte */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", 3}, /* surrogate */
        {"a\0b",
         "a\xef\xbf\xbd"
         "b",
         3},
    };
    for (size_t i = 0; i < sizeof u8 / sizeof u8[0]; i++) {
        size_t ol;
        char *c = serve_utf8_clean(u8[i].in, u8[i].len, &ol);
        CHECK_MSG(c && ol == strlen(u8[i].out) && !memcmp(c, u8[i].out, ol), "utf8 case %zu", i);
        free(c);
    }
    s = serve_content_json("\xff", 1);
    CHECK(s && !strcmp(s, "{\"content\":\"\xef\xbf\xbd\"}"));
    free(s);
    const int32_t ids[] = {1, 22};
    s = serve_tokens_json(ids, 2);
    CHECK(s && !strcmp(s, "{\"tokens\":[1,22]}"));
    free(s);
}

int main(void) {
    test_filter();
    test_requests();
    test_responses();
    return check_done();
}
