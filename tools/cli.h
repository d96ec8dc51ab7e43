/* cli.h - shared helpers of the vkmoe subcommands: exit codes, usage errors, checked number
 * parsing. Exit status everywhere: 0 ok, 1 runtime error (message on stderr), 2 usage error
 * (message plus the usage line). */
#ifndef VKM_CLI_H
#define VKM_CLI_H

#include <stdbool.h>
#include <stdint.h>

enum { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

typedef struct cli_cmd {
    const char *name;
    const char *summary;                /* one line for `vkmoe --help` */
    int (*main)(int argc, char **argv); /* argv[0] is the subcommand name */
} cli_cmd;

/* Prints "vkmoe: <message>" and "usage: <usage>" to stderr; returns CLI_USAGE. */
int cli_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "vkmoe: <message>" to stderr; returns CLI_ERROR. */
int cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "vkmoe: <vkm_errmsg()>" to stderr; returns CLI_ERROR. */
int cli_fail_last(void);

/* Strict parsers: the whole string must be a number within [min, max]. Return false otherwise. */
bool cli_parse_long(const char *s, long min, long max, long *out);
bool cli_parse_float(const char *s, double min, double max, double *out);
/* Sizes with an optional K/M/G/T suffix (powers of 1024): "512M", "12G", "4096". */
bool cli_parse_size(const char *s, uint64_t *out);
/* Parses a --device value: a non-negative index of an existing Vulkan device. On failure
 * prints the usage error (exit status 2) and returns false. With no Vulkan device at all the
 * index is accepted, so the command later fails with the runtime "no device" error. */
bool cli_parse_device(const char *usage, const char *s, long *out);
/* Whether an output file can be written, before the work that fills it: "-" (stdout) and NULL
 * pass; an existing file must be a writable non-directory, a new one needs an existing writable
 * directory. Nothing is created. Otherwise prints "<who>: <flag> <path>: why" and returns
 * CLI_ERROR. */
int cli_check_output(const char *who, const char *flag, const char *path);
/* True if a is "-h" or "--help". */
bool cli_is_help(const char *a);

/* Subcommands (tools/cmd_*.c). */
int cmd_devices(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_gen_model(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_serve(int argc, char **argv);

#endif
