/* cmd_exec_flags.c - the flags of routed experts computed on the CPU, shared by run, chat,
 * serve, bench and logits: --expert-exec, --cpu-moe, --n-cpu-moe, --cpu-threads (vkmoe.h
 * vkm_engine_opts.expert_exec, cpu_moe, n_cpu_moe, cpu_threads). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gen.h"

int gen_parse_exec_flag(gen_exec *x, int argc, char **argv, int *i, const char *usage) {
    const char *a = argv[*i];
    const char *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long l;
    if (!strcmp(a, "--cpu-moe")) {
        x->cpu_moe = true;
        x->any = true;
        return CLI_OK;
    }
    if (strcmp(a, "--expert-exec") && strcmp(a, "--n-cpu-moe") && strcmp(a, "--cpu-threads"))
        return GEN_NOT_MINE;
    if (!strcmp(a, "--expert-exec")) {
        if (!v ||
            (strcmp(v, "auto") && strcmp(v, "gpu") && strcmp(v, "cpu") && strcmp(v, "upload")))
            return cli_usage_error(usage, "%s needs auto, gpu, cpu or upload", a);
        x->expert_exec = !strcmp(v, "auto")  ? VKM_EXPERT_EXEC_AUTO
                         : !strcmp(v, "cpu") ? VKM_EXPERT_EXEC_CPU
                                             : VKM_EXPERT_EXEC_GPU;
    } else if (!strcmp(a, "--n-cpu-moe")) {
        if (!v || !cli_parse_long(v, 0, 1 << 20, &l))
            return cli_usage_error(usage, "%s needs a number of MoE layers >= 0", a);
        x->n_cpu_moe = (int)l;
    } else {
        if (!v || !cli_parse_long(v, 0, 257, &l))
            return cli_usage_error(usage, "%s needs a number of threads 0..257 (0 = one per core)",
                                   a);
        x->cpu_threads = (int)l;
    }
    ++*i;
    x->any = true;
    return CLI_OK;
}

void gen_exec_apply(const gen_exec *x, vkm_engine_opts *eo) {
    eo->expert_exec = (vkm_expert_exec)x->expert_exec;
    eo->cpu_moe = x->cpu_moe;
    eo->n_cpu_moe = x->n_cpu_moe;
    eo->cpu_threads = x->cpu_threads;
}

void gen_print_exec_help(FILE *f) {
    fputs("  --expert-exec MODE      where paged experts that miss the device cache run:\n"
          "                          gpu (default; = upload): uploaded into a slot first;\n"
          "                          cpu: computed on the CPU from the mapped file (uploaded\n"
          "                          only into still-free slots); auto: per miss, the CPU\n"
          "                          when the measured cost model says its tokens are cheaper\n"
          "                          there than an upload (decode), else the upload (prefill)\n"
          "  --cpu-moe               every MoE layer's routed experts on the CPU (none in\n"
          "                          device memory, no paging), like llama.cpp's --cpu-moe\n"
          "  --n-cpu-moe N           the first N MoE layers' routed experts on the CPU\n"
          "  --cpu-threads N         host threads computing experts on the CPU (default 0:\n"
          "                          one per core); types without a CPU kernel (IQ) stay on\n"
          "                          the GPU\n",
          f);
}
