/* stb_image_write_glue.c - compiles the system stb_image_write (Debian libstb-dev:
 * /usr/include/stb/stb_image_write.h) into the build, for the PNG charts of `vkmoe bench`.
 * No stb sources live in this repository. */
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
