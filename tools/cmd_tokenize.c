/* cmd_tokenize.c - `vkmoe tokenize` / `vkmoe detokenize`. (stub, replaced by the tokenizer work) */
#include "cli.h"

int cmd_tokenize(int argc, char **argv) { return cli_fail("tokenize: not implemented yet"); }
int cmd_detokenize(int argc, char **argv) { return cli_fail("detokenize: not implemented yet"); }
