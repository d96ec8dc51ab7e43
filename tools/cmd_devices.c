/* cmd_devices.c - `vkmoe devices`: list every Vulkan device. (stub, replaced by the vk/ work) */
#include "cli.h"

int cmd_devices(int argc, char **argv) { return cli_fail("devices: not implemented yet"); }
