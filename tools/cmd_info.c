/* cmd_info.c - `vkmoe info -m FILE.gguf`. (stub, replaced by the GGUF reader work) */
#include "cli.h"

int cmd_info(int argc, char **argv) { return cli_fail("info: not implemented yet"); }
