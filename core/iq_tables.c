/* iq_tables.c - the IQ codebooks (iq_tables.h): the grids from shaders/iq_grids.h (data carried
 * over from ggml, source named there) as C arrays, and the IQ4_NL levels. */
#include "iq_tables.h"

#define VKM_IQ_TABLE(name, n) const uint32_t name[n] = {
#define VKM_IQ_TABLE_END                                                                           \
    }                                                                                              \
    ;
#define VKM_IQ_GRID_IQ2XXS
#define VKM_IQ_GRID_IQ2XS
#define VKM_IQ_GRID_IQ2S
#define VKM_IQ_GRID_IQ3XXS
#define VKM_IQ_GRID_IQ3S
#define VKM_IQ_GRID_IQ1S
#include "../shaders/iq_grids.h"

/* kvalues_iq4nl of ggml-common.h (data) */
const int8_t vkm_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                     1,    13,   25,  38,  53,  69,  89,  113};
