/* Shared helpers of the io layer. */
#ifndef FERN_IO_INTERNAL_H
#define FERN_IO_INTERNAL_H

#include <stdio.h>

#include "../core/internal.h"
#include "fern/io.h"

/* Write buf to path atomically (temp file in the same directory, fsync,
 * rename, fsync of the directory). */
fern_status fern__write_file_atomic(const char *who, const char *path, const void *buf, size_t len);
/* Contiguous bytes of t (malloc'ed, logical order). */
void *fern__tensor_bytes(const fern_tensor *t, size_t *len);

static inline void put_le(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t get_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

#endif
