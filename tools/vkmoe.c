/* vkmoe.c - entry point of the `vkmoe` command line: dispatches to the subcommands. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const cli_cmd g_cmds[] = {
    {"devices", "list Vulkan devices and their features", cmd_devices},
    {"info", "print a GGUF file's metadata and tensor summary", cmd_info},
    {"tokenize", "print the token ids of a text", cmd_tokenize},
    {"detokenize", "print the text of token ids", cmd_detokenize},
    {"run", "generate text from a prompt", cmd_run},
    {"chat", "interactive chat with the model", cmd_chat},
    {"serve", "serve the model over HTTP (OpenAI-compatible API)", cmd_serve},
    {"gen-model", "write a deepseek2 GGUF with random weights", cmd_gen_model},
    {"logits", "write the logits of token ids (float32, one row per position)", cmd_logits},
    {"bench",
     "benchmark the device or CPU (--micro [--cpu]), a model (-m), paging (--paging), "
     "pipelines (--shaders); merge results (--report)",
     cmd_bench},
};
enum { N_CMDS = sizeof g_cmds / sizeof g_cmds[0] };

static void print_help(FILE *f) {
    fprintf(f,
            "vkmoe %s - DeepSeek-family MoE inference on Vulkan\n\n"
            "usage: vkmoe <command> [options]   (vkmoe <command> --help for details)\n\n"
            "commands:\n",
            VKMOE_VERSION);
    for (int i = 0; i < N_CMDS; i++) fprintf(f, "  %-12s %s\n", g_cmds[i].name, g_cmds[i].summary);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        print_help(stderr);
        return CLI_USAGE;
    }
    if (cli_is_help(argv[1])) {
        print_help(stdout);
        return CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vkmoe %s (commit %s)\n", VKMOE_VERSION, VKMOE_GIT_COMMIT);
        return CLI_OK;
    }
    for (int i = 0; i < N_CMDS; i++)
        if (!strcmp(argv[1], g_cmds[i].name)) return g_cmds[i].main(argc - 1, argv + 1);
    fprintf(stderr, "vkmoe: unknown command '%s'\n", argv[1]);
    print_help(stderr);
    return CLI_USAGE;
}
