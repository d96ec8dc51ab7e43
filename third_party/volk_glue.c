/* volk_glue.c - compiles the system volk (Debian libvulkan-volk-dev: /usr/include/volk.c) into
 * the build. No volk sources live in this repository. */
#include <volk.c>
