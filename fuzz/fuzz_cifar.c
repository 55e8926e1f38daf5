/* Fuzz target: CIFAR-10 and CIFAR-100 record parsing. */
#include <stdlib.h>

#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int c100 = 0; c100 < 2; c100++) {
        size_t rec = (size_t)(c100 ? 2 : 1) + 3072;
        size_t n = size / rec + 1;
        unsigned char *img = malloc(n * 3072);
        int64_t *fine = malloc(n * sizeof *fine), *coarse = malloc(n * sizeof *coarse);
        if (img && fine && coarse) {
            fern_clear_error();
            fern__cifar_parse(data, size, "fuzz.bin", c100, img, fine, coarse);
        }
        free(img);
        free(fine);
        free(coarse);
    }
    return 0;
}
