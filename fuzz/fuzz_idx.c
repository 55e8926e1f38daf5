/* Fuzz target: IDX parsing, also through gzip inflation (the path
 * fern_idx_read takes for .gz files). Must never crash or leak. */
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fern_clear_error();
    fern_tensor *t = fern__idx_parse(data, size, "fuzz.idx");
    fern_release(t);
    if (fern__is_gzip(data, size)) {
        unsigned char *buf = malloc(size + 1);
        if (!buf)
            return 0;
        memcpy(buf, data, size);
        size_t n = size;
        fern_clear_error();
        if (fern__maybe_gunzip("fuzz.gz", "idx", &buf, &n) == FERN_OK) {
            if (n < ((size_t)64 << 20)) {
                t = fern__idx_parse(buf, n, "fuzz.gz");
                fern_release(t);
            }
            free(buf);
        }
    }
    return 0;
}
