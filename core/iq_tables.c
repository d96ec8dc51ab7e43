/* iq_tables.c - the IQ codebooks (iq_tables.h): the grids from shaders/iq_grids.h (data carried
 * over from ggml, source named there) as C arrays, the IQ4_NL levels and the IQ4 byte tables made
 * from them (checked against vkm_iq4nl_values by tests/test_ref_iq.c). */
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

/* Level n of vkm_iq4nl_values as an int8 byte and as f16 bits (constant expressions). */
#define IQ4_I8(n)                                                                                  \
    ((n) == 0    ? 0x81u                                                                           \
     : (n) == 1  ? 0x98u                                                                           \
     : (n) == 2  ? 0xADu                                                                           \
     : (n) == 3  ? 0xBFu                                                                           \
     : (n) == 4  ? 0xCFu                                                                           \
     : (n) == 5  ? 0xDDu                                                                           \
     : (n) == 6  ? 0xEAu                                                                           \
     : (n) == 7  ? 0xF6u                                                                           \
     : (n) == 8  ? 0x01u                                                                           \
     : (n) == 9  ? 0x0Du                                                                           \
     : (n) == 10 ? 0x19u                                                                           \
     : (n) == 11 ? 0x26u                                                                           \
     : (n) == 12 ? 0x35u                                                                           \
     : (n) == 13 ? 0x45u                                                                           \
     : (n) == 14 ? 0x59u                                                                           \
                 : 0x71u)
#define IQ4_F16(n)                                                                                 \
    ((n) == 0    ? 0xD7F0u                                                                         \
     : (n) == 1  ? 0xD680u                                                                         \
     : (n) == 2  ? 0xD530u                                                                         \
     : (n) == 3  ? 0xD410u                                                                         \
     : (n) == 4  ? 0xD220u                                                                         \
     : (n) == 5  ? 0xD060u                                                                         \
     : (n) == 6  ? 0xCD80u                                                                         \
     : (n) == 7  ? 0xC900u                                                                         \
     : (n) == 8  ? 0x3C00u                                                                         \
     : (n) == 9  ? 0x4A80u                                                                         \
     : (n) == 10 ? 0x4E40u                                                                         \
     : (n) == 11 ? 0x50C0u                                                                         \
     : (n) == 12 ? 0x52A0u                                                                         \
     : (n) == 13 ? 0x5450u                                                                         \
     : (n) == 14 ? 0x5590u                                                                         \
                 : 0x5710u)
/* the entries of byte b (nibbles b & 15, b >> 4) */
#define IQ4_F(b) (IQ4_F16((b)&15) | IQ4_F16((b) >> 4) << 16)
#define IQ4_Q(b) (IQ4_I8((b)&15) | IQ4_I8((b) >> 4) << 16)
#define IQ4_R4(m, b) m(b), m((b) + 1), m((b) + 2), m((b) + 3)
#define IQ4_R16(m, b) IQ4_R4(m, b), IQ4_R4(m, (b) + 4), IQ4_R4(m, (b) + 8), IQ4_R4(m, (b) + 12)
#define IQ4_R64(m, b)                                                                              \
    IQ4_R16(m, b), IQ4_R16(m, (b) + 16), IQ4_R16(m, (b) + 32), IQ4_R16(m, (b) + 48)
#define IQ4_R256(m) IQ4_R64(m, 0), IQ4_R64(m, 64), IQ4_R64(m, 128), IQ4_R64(m, 192)
const uint32_t vkm_iq4_grid[512] = {IQ4_R256(IQ4_F), IQ4_R256(IQ4_Q)};
