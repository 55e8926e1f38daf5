/* Fuzz target: PNG decoding (fern_image_decode) with each channel option.
 * The pixel limit keeps allocations small; inputs without the PNG
 * signature get it prepended so the fuzzer reaches the decoder. */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "data/data_internal.h"

/* Rewrite every chunk CRC so mutations get past libpng's CRC checks and
 * reach the chunk parsers and the inflater. */
static void fix_crcs(unsigned char *b, size_t n)
{
    size_t p = 8;
    while (p + 12 <= n) {
        uint32_t len = ((uint32_t)b[p] << 24) | ((uint32_t)b[p + 1] << 16) | ((uint32_t)b[p + 2] << 8) | b[p + 3];
        if (len > n - p - 12)
            break;
        uint32_t crc = (uint32_t)crc32(0, b + p + 4, (uInt)(len + 4));
        unsigned char *c = b + p + 8 + len;
        c[0] = (unsigned char)(crc >> 24);
        c[1] = (unsigned char)(crc >> 16);
        c[2] = (unsigned char)(crc >> 8);
        c[3] = (unsigned char)crc;
        p += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char sig[] = {0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A};
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
    if (size % 8 != 7) /* mostly valid CRCs; sometimes the raw bytes */
        fix_crcs(buf, n);
    static const int channels[4] = {0, 1, 3, 4};
    int ch = channels[size % 4];
    fern_decode_opts o = {ch, (int64_t)1 << 20};
    fern_clear_error();
    fern_tensor *t = fern__decode(buf, n, "fuzz.png", &o);
    if (t) {
        if (fern_tensor_dtype(t) != FERN_U8 || fern_tensor_ndim(t) != 3 || (ch && fern_tensor_dim(t, 2) != ch))
            abort();
        fern_release(t);
    }
    free(buf);
    return 0;
}
