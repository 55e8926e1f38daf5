/* Fuzz target: JPEG decoding (fern_image_decode) with each channel option.
 * The pixel limit keeps allocations small; inputs without the JPEG
 * signature get it prepended so the fuzzer reaches the decoder. */
#include <stdlib.h>
#include <string.h>

#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char sig[] = {0xFF, 0xD8, 0xFF};
    unsigned char *buf = malloc(size + sizeof sig);
    if (!buf)
        return 0;
    size_t n = size;
    if (size >= sizeof sig && memcmp(data, sig, sizeof sig) == 0) {
        memcpy(buf, data, size);
    } else {
        memcpy(buf, sig, sizeof sig);
        memcpy(buf + sizeof sig, data, size);
        n = size + sizeof sig;
    }
    static const int channels[4] = {0, 1, 3, 4};
    int ch = channels[size % 4];
    fern_decode_opts o = {ch, (int64_t)1 << 20};
    fern_clear_error();
    fern_tensor *t = fern__decode(buf, n, "fuzz.jpeg", &o);
    if (t) {
        if (fern_tensor_dtype(t) != FERN_U8 || fern_tensor_ndim(t) != 3 || (ch && fern_tensor_dim(t, 2) != ch))
            abort();
        fern_release(t);
    }
    free(buf);
    return 0;
}
