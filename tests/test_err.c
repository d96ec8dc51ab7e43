/* test_err.c - the error convention and the type table. */
#include <string.h>

#include "check.h"
#include "qtype.h"

int main(void) {
    CHECK(vkm_error(VKM_EFORMAT, "bad %s at %d", "magic", 4) == VKM_EFORMAT);
    CHECK(!strcmp(vkm_errmsg(), "bad magic at 4"));
    vkm_error_clear();
    CHECK(!strcmp(vkm_strerror(VKM_EDEVMEM), "out of device memory"));
    CHECK(vkm_qtype_row_bytes(VKM_Q4_K, 512) == 288);
    CHECK(vkm_qtype_row_bytes(VKM_Q4_K, 100) == 0);
    CHECK(vkm_qtype_row_bytes(VKM_F16, 7) == 14);
    CHECK(!strcmp(vkm_qtype_name(VKM_Q6_K), "Q6_K"));
    CHECK(!strcmp(vkm_qtype_name(99), "unknown"));
    CHECK(vkm_qtype_get(34) && !vkm_qtype_get(34)->supported); /* TQ1_0 */
    CHECK(vkm_qtype_get(VKM_IQ2_XXS) && vkm_qtype_get(VKM_IQ2_XXS)->supported);
    return check_done();
}
