# deps.cmake - fail early, naming the Debian package, when a build dependency is missing.
# tools/install-deps.sh installs all of them.
include(CheckIncludeFile)

function(vkm_require_program var prog pkg)
  find_program(${var} ${prog})
  if(NOT ${var})
    message(FATAL_ERROR "vkmoe: '${prog}' not found. Install the Debian package '${pkg}' "
                        "(or run tools/install-deps.sh).")
  endif()
endfunction()

function(vkm_require_header header pkg)
  string(MAKE_C_IDENTIFIER "HAVE_${header}" var)
  check_include_file(${header} ${var})
  if(NOT ${var})
    message(FATAL_ERROR "vkmoe: header <${header}> not found. Install the Debian package '${pkg}' "
                        "(or run tools/install-deps.sh).")
  endif()
endfunction()

vkm_require_program(GLSLANG_VALIDATOR glslangValidator glslang-tools)
vkm_require_program(SPIRV_OPT spirv-opt spirv-tools)
vkm_require_program(SPIRV_VAL spirv-val spirv-tools)
vkm_require_header(vulkan/vulkan.h libvulkan-dev)
vkm_require_header(volk.h libvulkan-volk-dev)
find_file(VOLK_C volk.c PATHS /usr/include NO_DEFAULT_PATH)
if(NOT VOLK_C)
  message(FATAL_ERROR "vkmoe: volk.c not found in /usr/include. Install the Debian package "
                      "'libvulkan-volk-dev' (or run tools/install-deps.sh).")
endif()
vkm_require_header(stb/stb_image_write.h libstb-dev)

# Libraries found through pkg-config.
find_package(PkgConfig QUIET)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "vkmoe: pkg-config not found. Install the Debian package 'pkg-config' "
                      "(or run tools/install-deps.sh).")
endif()
function(vkm_require_pkg prefix module pkg)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "vkmoe: library '${module}' not found. Install the Debian package '${pkg}' "
                        "(or run tools/install-deps.sh).")
  endif()
endfunction()
vkm_require_pkg(PCRE2 libpcre2-8 libpcre2-dev)
vkm_require_pkg(CJSON libcjson libcjson-dev)
vkm_require_pkg(LIBEDIT libedit libedit-dev)
vkm_require_pkg(MHD libmicrohttpd libmicrohttpd-dev)
