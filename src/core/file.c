/* Reading whole files, for every layer that parses one (data sources,
 * checkpoints, interop formats). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int fern__read_file(const char *path, const char *who, unsigned char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!path) {
        fern_set_error(FERN_ERR_INVALID, "%s: path is NULL", who);
        return FERN_ERR_INVALID;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        fern_set_error(FERN_ERR_IO, "%s: cannot open '%s': %s", who, path, strerror(errno));
        return FERN_ERR_IO;
    }
    size_t cap = 1 << 16, len = 0;
    unsigned char *buf = malloc(cap + 1);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (len < cap) {
            if (ferror(f)) {
                fern_set_error(FERN_ERR_IO, "%s: error reading '%s' at byte offset %zu: %s", who,
                               path, len, strerror(errno));
                free(buf);
                fclose(f);
                return FERN_ERR_IO;
            }
            break;
        }
        cap *= 2;
        unsigned char *nb = realloc(buf, cap + 1);
        if (!nb) {
            free(buf);
            buf = NULL;
        } else {
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory reading '%s'", who, path);
        return FERN_ERR_NOMEM;
    }
    buf[len] = 0;
    *out = buf;
    *n = len;
    return FERN_OK;
}
