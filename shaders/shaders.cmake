# shaders.cmake - every compute shader and its variants (included from the top CMakeLists.txt).
# NAME is what vk/ looks the SPIR-V up by; variants of one source differ by DEFINES.
vkm_add_shader(smoke smoke.comp)

# Matrix multiplication over GGUF-encoded weights on GPUs (core/ops_matmul.c): for every weight
# type, the k-split GEMV (matmul_vec_<type>), the subgroup-per-row GEMV (matmul_sg_<type>), GEMM
# (matmul_mm_<type>) and their indexed forms (matmul_vec_id_<type>, ...). <type> is the lower-case
# ggml name; quant.glsl picks it from -DTYPE_<TYPE>.
foreach(vkm_mm_type F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
        IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_NL IQ4_XS)
  string(TOLOWER ${vkm_mm_type} vkm_mm_lc)
  vkm_add_shader(matmul_vec_${vkm_mm_lc} matmul_vec.comp DEFINES TYPE_${vkm_mm_type}=1)
  vkm_add_shader(matmul_mm_${vkm_mm_lc} matmul_mm.comp DEFINES TYPE_${vkm_mm_type}=1)
  vkm_add_shader(matmul_vec_id_${vkm_mm_lc} matmul_vec.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1)
  vkm_add_shader(matmul_mm_id_${vkm_mm_lc} matmul_mm.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1)
  vkm_add_shader(matmul_sg_${vkm_mm_lc} matmul_sg.comp DEFINES TYPE_${vkm_mm_type}=1)
  vkm_add_shader(matmul_sg_id_${vkm_mm_lc} matmul_sg.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1)
endforeach()

# The GPU decode GEMV with a straight-line main loop (gemv.comp, gemv_decode.glsl; core/kernels.c
# picks it for every type it has a variant for): gemv_<type>, gemv_id_<type>.
foreach(vkm_gv_type F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
        IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_NL IQ4_XS)
  string(TOLOWER ${vkm_gv_type} vkm_gv_lc)
  vkm_add_shader(gemv_${vkm_gv_lc} gemv.comp DEFINES TYPE_${vkm_gv_type}=1)
  vkm_add_shader(gemv_id_${vkm_gv_lc} gemv.comp DEFINES TYPE_${vkm_gv_type}=1 MUL_ID=1)
endforeach()
# Its integer-dot variants (gemv_q8.glsl; core/kernels.c VKM_GEMV_Q8_TYPES): 8-bit activations in
# the Q8X format of matmul_common.h, written by quant_q8 once per matmul input.
foreach(vkm_gv_type Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
        IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_NL IQ4_XS)
  string(TOLOWER ${vkm_gv_type} vkm_gv_lc)
  vkm_add_shader(gemv_q8_${vkm_gv_lc} gemv.comp DEFINES TYPE_${vkm_gv_type}=1 Q8X=1)
  vkm_add_shader(gemv_q8_id_${vkm_gv_lc} gemv.comp DEFINES TYPE_${vkm_gv_type}=1 Q8X=1 MUL_ID=1)
endforeach()
vkm_add_shader(quant_q8 quant_q8.comp)

# Non-matmul kernels of the forward pass (core/ops.c; push constants in shaders/ops_common.h).
vkm_add_shader(rmsnorm rmsnorm.comp)
vkm_add_shader(rmsnorm_add rmsnorm.comp DEFINES ADD_RESIDUAL=1)
vkm_add_shader(rmsnorm_q8 rmsnorm.comp DEFINES Q8X_OUT=1)
vkm_add_shader(rmsnorm_add_q8 rmsnorm.comp DEFINES ADD_RESIDUAL=1 Q8X_OUT=1)
vkm_add_shader(rope rope.comp)
vkm_add_shader(kv_store_f32 kv_store.comp)
vkm_add_shader(kv_store_f16 kv_store.comp DEFINES DST_F16=1)
vkm_add_shader(mla_kv_rope_f32 mla_kv_rope.comp)
vkm_add_shader(mla_kv_rope_f16 mla_kv_rope.comp DEFINES DST_F16=1)
vkm_add_shader(mla_kv_rope_pool_f32 mla_kv_rope.comp DEFINES POOL=1)
vkm_add_shader(mla_kv_rope_pool_f16 mla_kv_rope.comp DEFINES DST_F16=1 POOL=1)
vkm_add_shader(mla_attn_f32 mla_attn.comp)
vkm_add_shader(mla_attn_f16 mla_attn.comp DEFINES CACHE_F16=1)
vkm_add_shader(mla_attn_pool_f32 mla_attn.comp DEFINES POOL=1)
vkm_add_shader(mla_attn_pool_f16 mla_attn.comp DEFINES CACHE_F16=1 POOL=1)
vkm_add_shader(mla_attn_dec_score_f32 mla_attn_dec.comp DEFINES PASS=0)
vkm_add_shader(mla_attn_dec_score_f16 mla_attn_dec.comp DEFINES PASS=0 CACHE_F16=1)
vkm_add_shader(mla_attn_dec_softmax mla_attn_dec.comp DEFINES PASS=1)
vkm_add_shader(mla_attn_dec_value_f32 mla_attn_dec.comp DEFINES PASS=2)
vkm_add_shader(mla_attn_dec_value_f16 mla_attn_dec.comp DEFINES PASS=2 CACHE_F16=1)
vkm_add_shader(router router.comp)
vkm_add_shader(router_group router.comp DEFINES GROUP=1)
vkm_add_shader(moe_combine moe_combine.comp)
vkm_add_shader(moe_combine_norm moe_combine.comp DEFINES NORM=1)
vkm_add_shader(moe_combine_norm_q8 moe_combine.comp DEFINES NORM=1 Q8X_OUT=1)
vkm_add_shader(swiglu swiglu.comp)
vkm_add_shader(add add.comp)
vkm_add_shader(scale scale.comp)
foreach(vkm_gr_type F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
        IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_NL IQ4_XS)
  string(TOLOWER ${vkm_gr_type} vkm_gr_lc)
  vkm_add_shader(get_rows_${vkm_gr_lc} get_rows.comp DEFINES TYPE_${vkm_gr_type}=1)
endforeach()

# The CPU-device family (shaders/cpu/, recorded by core/ops_cpu.c and core/ops.c; core/kernels.c
# picks it on lavapipe): every invocation owns whole rows (matmuls), heads (attention) or tokens
# (router). Matmuls (cpu/matmul_lane.comp, push block cpu/matmul_cpu.h), GEMV and GEMM alike:
# matmul_tex_<type> reads W and X as uniform texel buffers (what CPU devices use);
# matmul_lane_<type> the same layout with 64-bit storage-buffer loads (needs shaderInt64; the
# fallback where a window is too large for a texel buffer, and VKMOE_KERNELS=cpu64);
# matmul_lane32_<type> with 32-bit loads (CPU devices without shaderInt64, VKMOE_KERNELS=cpu32);
# each with its indexed form (matmul_tex_id_<type>, ...).
foreach(vkm_mm_type F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q2_K Q3_K Q4_K Q5_K Q6_K
        IQ1_S IQ1_M IQ2_XXS IQ2_XS IQ2_S IQ3_XXS IQ3_S IQ4_NL IQ4_XS)
  string(TOLOWER ${vkm_mm_type} vkm_mm_lc)
  vkm_add_shader(matmul_tex_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1 LANE_TEX=1)
  vkm_add_shader(matmul_tex_id_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1 LANE_TEX=1)
  vkm_add_shader(matmul_lane_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1 LANE_I64=1)
  vkm_add_shader(matmul_lane_id_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1 LANE_I64=1)
  vkm_add_shader(matmul_lane32_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1)
  vkm_add_shader(matmul_lane32_id_${vkm_mm_lc} cpu/matmul_lane.comp DEFINES TYPE_${vkm_mm_type}=1 MUL_ID=1)
endforeach()
# Attention (a lane per head; core/ops.c, push constants in ops_common.h) and the router (a lane
# per token, its GROUP variant also grouping by expert; fwd_common.h).
vkm_add_shader(mla_attn_lane_f32 cpu/mla_attn_lane.comp)
vkm_add_shader(mla_attn_lane_f16 cpu/mla_attn_lane.comp DEFINES CACHE_F16=1)
vkm_add_shader(router_lane cpu/router_lane.comp)
vkm_add_shader(router_lane_group cpu/router_lane.comp DEFINES GROUP=1)

# Benchmark kernels (tools/cmd_bench_micro.c, `vkmoe bench --micro`): a plain uvec4 device copy
# whose GB/s is the memory-bandwidth roofline the GEMV numbers are compared with.
vkm_add_shader(bench_copy bench_copy.comp)

# Kernels of the forward pass itself (core/forward.c; push constants in shaders/fwd_common.h):
# grouping the router's choices by expert for the grouped expert matmuls.
vkm_add_shader(moe_group moe_group.comp)

vkm_embed_shaders()
