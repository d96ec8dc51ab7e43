# shaders.cmake - compile GLSL compute shaders to validated, optimised SPIR-V and embed them.
#
# vkm_add_shader(NAME SOURCE [DEFINES D1=V1 ...]) compiles shaders/SOURCE with glslangValidator
# (Vulkan 1.2, depfile so edits to included .glsl files rebuild it), then spirv-opt -O and spirv-val.
# vkm_embed_shaders() then generates one C file with every shader as a uint32_t array plus a table
# looked up by name (vk/shaders.h). Variants of one source differ by NAME and DEFINES.

add_executable(vkm_embed_spirv ${CMAKE_SOURCE_DIR}/tools/build/embed_spirv.c)
set_property(GLOBAL PROPERTY VKM_SHADER_NAMES "")
set_property(GLOBAL PROPERTY VKM_SHADER_FILES "")

function(vkm_add_shader name source)
  cmake_parse_arguments(ARG "" "" "DEFINES" ${ARGN})
  set(src ${CMAKE_SOURCE_DIR}/shaders/${source})
  set(dir ${CMAKE_BINARY_DIR}/spv)
  set(raw ${dir}/${name}.raw.spv)
  set(out ${dir}/${name}.spv)
  set(defs "")
  foreach(d ${ARG_DEFINES})
    list(APPEND defs "-D${d}")
  endforeach()
  add_custom_command(
    OUTPUT ${raw} ${out}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${dir}
    COMMAND ${GLSLANG_VALIDATOR} -V --target-env vulkan1.2 -I${CMAKE_SOURCE_DIR}/shaders ${defs}
            --depfile ${dir}/${name}.d -o ${raw} ${src}
    COMMAND ${SPIRV_OPT} -O --target-env=vulkan1.2 ${raw} -o ${out}
    COMMAND ${SPIRV_VAL} --target-env vulkan1.2 ${out}
    DEPENDS ${src}
    DEPFILE ${dir}/${name}.d
    COMMENT "Shader ${name} (${source})"
    VERBATIM)
  set_property(GLOBAL APPEND PROPERTY VKM_SHADER_NAMES ${name})
  set_property(GLOBAL APPEND PROPERTY VKM_SHADER_FILES ${out})
endfunction()

function(vkm_embed_shaders)
  get_property(names GLOBAL PROPERTY VKM_SHADER_NAMES)
  get_property(files GLOBAL PROPERTY VKM_SHADER_FILES)
  set(out ${CMAKE_BINARY_DIR}/shaders_embedded.c)
  set(args "")
  foreach(n f IN ZIP_LISTS names files)
    list(APPEND args ${n} ${f})
  endforeach()
  add_custom_command(
    OUTPUT ${out}
    COMMAND vkm_embed_spirv ${out} ${args}
    DEPENDS vkm_embed_spirv ${files}
    COMMENT "Embedding SPIR-V shaders"
    VERBATIM)
  set(VKMOE_SHADER_TABLE_C ${out} PARENT_SCOPE)
endfunction()
