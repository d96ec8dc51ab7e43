# shaders.cmake - every compute shader and its variants (included from the top CMakeLists.txt).
# NAME is what vk/ looks the SPIR-V up by; variants of one source differ by DEFINES.
vkm_add_shader(smoke smoke.comp)

vkm_embed_shaders()
