/* test_chat.c - chat templates and the <think> parser (core/chat.h): exact renderings of a
 * multi-turn conversation for both templates, detection from real template texts, R1's
 * stripping of earlier reasoning, errors, and the streaming parser fed the same text split at
 * every possible position (and byte by byte) giving the same reasoning/answer split. */
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "check.h"

/* Excerpt of DeepSeek-V3's tokenizer_config.json chat_template (R1's has the same markers). */
static const char V3_TEMPLATE[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    "{% endif %}{% set ns = namespace(is_first=false, is_tool=false, is_output_first=true, "
    "system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}"
    "{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}"
    "{%- if message['role'] == 'assistant' and message['content'] is not none %}"
    "{% set content = message['content'] %}{% if '</think>' in content %}"
    "{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endif %}{%- endfor -%}"
    "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}";

/* DeepSeek-V2-Chat's chat_template. */
static const char V2_TEMPLATE[] =
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}"
    "{% endif %}{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ 'User: ' + message['content'] + '\\n\\n' }}{% elif message['role'] == 'assistant' %}"
    "{{ 'Assistant: ' + message['content'] + eos_token }}{% elif message['role'] == 'system' %}"
    "{{ message['content'] + '\\n\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}"
    "{{ 'Assistant:' }}{% endif %}";

static const char CHATML_TEMPLATE[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}";

static const vkm_chat_msg CONVO[] = {
    {VKM_CHAT_SYSTEM, "You are helpful."},
    {VKM_CHAT_USER, "Hi"},
    {VKM_CHAT_ASSISTANT, "Hello! How can I help?"},
    {VKM_CHAT_USER, "What is 2+2?"},
};
enum { N_CONVO = sizeof CONVO / sizeof CONVO[0] };

static void check_render(enum vkm_chat_template t, const vkm_chat_msg *m, size_t n,
                         const vkm_chat_render_opts *o, const char *want) {
    char *got = NULL;
    size_t len = 0;
    CHECK_OK(vkm_chat_render(t, m, n, o, &got, &len));
    if (!got) return;
    CHECK_MSG(!strcmp(got, want), "%s:\n  got  [%s]\n  want [%s]", vkm_chat_template_name(t), got,
              want);
    CHECK(len == strlen(got));
    free(got);
}

static void test_templates(void) {
    const vkm_chat_render_opts gen = {.add_generation_prompt = true};
    check_render(VKM_CHAT_DEEPSEEK3, CONVO, N_CONVO, &gen,
                 "You are helpful.\n\n<｜User｜>Hi<｜Assistant｜>Hello! How can I help?"
                 "<｜end▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜>");
    check_render(VKM_CHAT_DEEPSEEK2, CONVO, N_CONVO, &gen,
                 "You are helpful.\n\nUser: Hi\n\nAssistant: Hello! How can I help?"
                 "<｜end▁of▁sentence｜>User: What is 2+2?\n\nAssistant:");
    /* without the generation prompt; NULL options = zero options */
    check_render(VKM_CHAT_DEEPSEEK3, CONVO, 3, NULL,
                 "You are helpful.\n\n<｜User｜>Hi<｜Assistant｜>Hello! How can I help?"
                 "<｜end▁of▁sentence｜>");
    check_render(VKM_CHAT_DEEPSEEK2, CONVO + 1, 1, NULL, "User: Hi\n\n");
    check_render(VKM_CHAT_DEEPSEEK3, NULL, 0, &gen, "<｜Assistant｜>");
    check_render(VKM_CHAT_DEEPSEEK3, NULL, 0, NULL, "");
    /* contents are not trimmed */
    const vkm_chat_msg sp[] = {{VKM_CHAT_USER, "  a \n"}};
    check_render(VKM_CHAT_DEEPSEEK3, sp, 1, &gen, "<｜User｜>  a \n<｜Assistant｜>");
}

static void test_strip_thinking(void) {
    const vkm_chat_msg m[] = {
        {VKM_CHAT_USER, "Hi"},
        {VKM_CHAT_ASSISTANT, "<think>\nThe user greets me.\n</think>\n\nHello!"},
        {VKM_CHAT_USER, "Bye"},
    };
    const vkm_chat_render_opts gen = {.add_generation_prompt = true};
    check_render(
        VKM_CHAT_DEEPSEEK3, m, 3, &gen,
        "<｜User｜>Hi<｜Assistant｜>Hello!<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>");
    const vkm_chat_render_opts keep = {.add_generation_prompt = true, .keep_thinking = true};
    check_render(VKM_CHAT_DEEPSEEK3, m, 3, &keep,
                 "<｜User｜>Hi<｜Assistant｜><think>\nThe user greets me.\n</think>\n\nHello!"
                 "<｜end▁of▁sentence｜><｜User｜>Bye<｜Assistant｜>");
    CHECK(!strcmp(vkm_chat_strip_thinking("no tags"), "no tags"));
    CHECK(!strcmp(vkm_chat_strip_thinking("a</think>b</think> \t\n c "), "c "));
    CHECK(!strcmp(vkm_chat_strip_thinking("x</think>"), ""));
    CHECK(!strcmp(vkm_chat_strip_thinking("<think>unfinished"), "<think>unfinished"));
}

/* has_token over a NULL-terminated list of token texts */
static bool in_vocab(void *user, const char *text) {
    for (const char *const *t = user; *t; t++)
        if (!strcmp(*t, text)) return true;
    return false;
}

static void test_detect(void) {
    enum vkm_chat_template t = VKM_CHAT_NONE;
    CHECK_OK(vkm_chat_template_detect(V3_TEMPLATE, &t));
    CHECK(t == VKM_CHAT_DEEPSEEK3);
    CHECK_OK(vkm_chat_template_detect(V2_TEMPLATE, &t));
    CHECK(t == VKM_CHAT_DEEPSEEK2);
    CHECK_ERR(vkm_chat_template_detect(CHATML_TEMPLATE, &t));
    CHECK(strstr(vkm_errmsg(), "--chat-template") != NULL);
    CHECK_ERR(vkm_chat_template_detect(NULL, &t));
    CHECK(strstr(vkm_errmsg(), "--chat-template") != NULL);
    /* two of the three V3 markers are not enough */
    CHECK_ERR(vkm_chat_template_detect("<｜User｜> <｜Assistant｜>", &t));

    CHECK_OK(vkm_chat_template_from_name("deepseek3", &t));
    CHECK(t == VKM_CHAT_DEEPSEEK3);
    CHECK_OK(vkm_chat_template_from_name("deepseek2", &t));
    CHECK(t == VKM_CHAT_DEEPSEEK2);
    CHECK_ERR(vkm_chat_template_from_name("chatml", &t));
    CHECK(strstr(vkm_errmsg(), "chatml") && strstr(vkm_errmsg(), "deepseek3"));
    CHECK_ERR(vkm_chat_template_from_name("", &t));

    /* a name wins over the text; no name falls back to detection */
    CHECK_OK(vkm_chat_template_select("deepseek2", V3_TEMPLATE, &t));
    CHECK(t == VKM_CHAT_DEEPSEEK2);
    CHECK_OK(vkm_chat_template_select(NULL, V3_TEMPLATE, &t));
    CHECK(t == VKM_CHAT_DEEPSEEK3);
    CHECK_ERR(vkm_chat_template_select(NULL, NULL, &t));
    CHECK_ERR(vkm_chat_template_select("bogus", V3_TEMPLATE, &t));

    /* a file without a template: inferred from the vocabulary */
    const char *why = NULL;
    const char *v3_vocab[] = {"<｜User｜>", "<｜Assistant｜>", "<｜end▁of▁sentence｜>",
                              "User",       "Assistant",       NULL};
    const char *v2_vocab[] = {"<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "User",
                              "Assistant", NULL};
    const char *other_vocab[] = {"<|im_start|>", "<|im_end|>", "User", "Assistant", NULL};
    const char *half_v3[] = {"<｜User｜>", "<｜end▁of▁sentence｜>", NULL};
    CHECK_OK(vkm_chat_template_infer(in_vocab, v3_vocab, &t, &why));
    CHECK(t == VKM_CHAT_DEEPSEEK3 && why && strstr(why, "<｜User｜>"));
    CHECK_OK(vkm_chat_template_infer(in_vocab, v2_vocab, &t, &why));
    CHECK(t == VKM_CHAT_DEEPSEEK2 && !strcmp(why, "User/Assistant"));
    CHECK_ERR(vkm_chat_template_infer(in_vocab, other_vocab, &t, NULL));
    CHECK(strstr(vkm_errmsg(), "--chat-template") != NULL);
    CHECK_ERR(vkm_chat_template_infer(in_vocab, half_v3, &t, NULL));

    /* the templates gen-model writes are detected as what they are */
    CHECK(vkm_chat_template_jinja(VKM_CHAT_NONE) == NULL);
    CHECK_OK(vkm_chat_template_detect(vkm_chat_template_jinja(VKM_CHAT_DEEPSEEK3), &t));
    CHECK(t == VKM_CHAT_DEEPSEEK3);
    CHECK_OK(vkm_chat_template_detect(vkm_chat_template_jinja(VKM_CHAT_DEEPSEEK2), &t));
    CHECK(t == VKM_CHAT_DEEPSEEK2);

    CHECK(!strcmp(vkm_chat_template_name(VKM_CHAT_DEEPSEEK3), "deepseek3"));
    CHECK(!strcmp(vkm_chat_template_name(VKM_CHAT_DEEPSEEK2), "deepseek2"));
    CHECK(!strcmp(vkm_chat_template_name(VKM_CHAT_NONE), "none"));
}

static void test_render_errors(void) {
    char *out = (char *)"untouched";
    CHECK_ERR(vkm_chat_render(VKM_CHAT_NONE, CONVO, N_CONVO, NULL, &out, NULL));
    const vkm_chat_msg bad_role[] = {{(enum vkm_chat_role)7, "x"}};
    CHECK_ERR(vkm_chat_render(VKM_CHAT_DEEPSEEK3, bad_role, 1, NULL, &out, NULL));
    const vkm_chat_msg no_content[] = {{VKM_CHAT_USER, NULL}};
    CHECK_ERR(vkm_chat_render(VKM_CHAT_DEEPSEEK2, no_content, 1, NULL, &out, NULL));
    CHECK(!strcmp(out, "untouched"));
}

/* ---- think parser ---- */

typedef struct collected {
    char reason[256], answer[256];
    size_t nr, na;
    char order[64]; /* 'R'/'A' per change of kind */
    size_t no;
    bool empty_run; /* a callback with len 0 */
} collected;

static void collect(void *user, bool reasoning, const char *text, size_t len) {
    collected *c = user;
    if (!len) c->empty_run = true;
    char *dst = reasoning ? c->reason : c->answer;
    size_t *n = reasoning ? &c->nr : &c->na;
    if (*n + len < sizeof c->reason) {
        memcpy(dst + *n, text, len);
        *n += len;
        dst[*n] = 0;
    }
    char k = reasoning ? 'R' : 'A';
    if ((c->no == 0 || c->order[c->no - 1] != k) && c->no + 1 < sizeof c->order) {
        c->order[c->no++] = k;
        c->order[c->no] = 0;
    }
}

/* Feeds s split at cut points a <= b, checks the result. */
static bool run_split(const char *s, bool in_reasoning, size_t a, size_t b, const char *want_r,
                      const char *want_a, const char *want_order) {
    collected c;
    memset(&c, 0, sizeof c);
    vkm_chat_think p;
    vkm_chat_think_init(&p, in_reasoning);
    size_t n = strlen(s);
    vkm_chat_think_feed(&p, s, a, collect, &c);
    vkm_chat_think_feed(&p, s + a, b - a, collect, &c);
    vkm_chat_think_feed(&p, s + b, n - b, collect, &c);
    vkm_chat_think_flush(&p, collect, &c);
    bool ok = !strcmp(c.reason, want_r) && !strcmp(c.answer, want_a) && !c.empty_run &&
              (!want_order || !strcmp(c.order, want_order));
    if (!ok)
        fprintf(stderr,
                "think [%s] cut %zu,%zu: reasoning [%s] want [%s], answer [%s] want [%s], "
                "order %s\n",
                s, a, b, c.reason, want_r, c.answer, want_a, c.order);
    return ok;
}

static void check_think(const char *s, bool in_reasoning, const char *want_r, const char *want_a,
                        const char *want_order) {
    size_t n = strlen(s);
    int bad = 0;
    for (size_t a = 0; a <= n && bad < 3; a++)
        for (size_t b = a; b <= n && bad < 3; b++)
            if (!run_split(s, in_reasoning, a, b, want_r, want_a, want_order)) bad++;
    CHECK_MSG(bad == 0, "think parser on [%s]", s);

    /* byte by byte */
    collected c;
    memset(&c, 0, sizeof c);
    vkm_chat_think p;
    vkm_chat_think_init(&p, in_reasoning);
    for (size_t i = 0; i < n; i++) vkm_chat_think_feed(&p, s + i, 1, collect, &c);
    vkm_chat_think_flush(&p, collect, &c);
    CHECK_MSG(!strcmp(c.reason, want_r) && !strcmp(c.answer, want_a), "bytewise [%s]", s);
}

static void test_think(void) {
    check_think("<think>\nLet me think.\n</think>\n\nThe answer is 4.", false, "Let me think.\n",
                "The answer is 4.", "RA");
    check_think("  Hello <think> world</think>", false, "", "Hello <think> world</think>", "A");
    check_think("<think>a </thin b</think>c", false, "a </thin b", "c", "RA");
    check_think("<think><<</think>x", false, "<<", "x", "RA");
    check_think("<think>a<</think>", false, "a<", "", "R");
    check_think("<thinkX", false, "", "<thinkX", "A");
    check_think("<thi", false, "", "<thi", "A");
    check_think("\n<think>abc</th", false, "abc</th", "", "R");
    check_think("<think>\n\n</think>\n\nHi", false, "", "Hi", "A");
    check_think("reason</think>ans", true, "reason", "ans", "RA");
    check_think("\nreason\n</think>\n\nans <think> x", true, "reason\n", "ans <think> x", "RA");
    check_think("", false, "", "", "");
    check_think("plain answer", false, "", "plain answer", "A");
    check_think("<think>只有思考 😁</think>答案", false, "只有思考 😁", "答案", "RA");

    vkm_chat_think p;
    vkm_chat_think_init(&p, false);
    CHECK(!vkm_chat_think_in_reasoning(&p));
    collected c;
    memset(&c, 0, sizeof c);
    vkm_chat_think_feed(&p, "<think>x", 8, collect, &c);
    CHECK(vkm_chat_think_in_reasoning(&p));
    vkm_chat_think_feed(&p, "</think>y", 9, collect, &c);
    CHECK(!vkm_chat_think_in_reasoning(&p));
}

int main(void) {
    test_templates();
    test_strip_thinking();
    test_detect();
    test_render_errors();
    test_think();
    return check_done();
}
