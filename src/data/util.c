/* Data-layer helpers: interned column names, counter-based random streams,
 * whole-file reads with gzip detection. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "data_internal.h"

/* ---- interned names ---------------------------------------------------------- */

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static char **intern_tab; /* open addressing, size intern_cap (power of 2) */
static size_t intern_cap, intern_n;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

int fern__check_col_name(const char *who, const char *name)
{
    if (!name || !name[0]) {
        fern_set_error(FERN_ERR_INVALID, "%s: column name is NULL or empty", who);
        return -1;
    }
    if (strlen(name) >= FERN_COL_NAME_MAX) {
        fern_set_error(FERN_ERR_INVALID, "%s: column name '%.20s...' is longer than %d bytes", who,
                       name, FERN_COL_NAME_MAX - 1);
        return -1;
    }
    return 0;
}

const char *fern__intern(const char *s)
{
    if (fern__check_col_name("row", s))
        return NULL;
    pthread_mutex_lock(&intern_lock);
    if (intern_n * 2 >= intern_cap) {
        size_t cap = intern_cap ? intern_cap * 2 : 64;
        char **tab = calloc(cap, sizeof *tab);
        if (!tab) {
            pthread_mutex_unlock(&intern_lock);
            fern_set_error(FERN_ERR_NOMEM, "row: out of memory");
            return NULL;
        }
        for (size_t i = 0; i < intern_cap; i++)
            if (intern_tab[i]) {
                size_t j = hash_str(intern_tab[i]) & (cap - 1);
                while (tab[j])
                    j = (j + 1) & (cap - 1);
                tab[j] = intern_tab[i];
            }
        free(intern_tab);
        intern_tab = tab;
        intern_cap = cap;
    }
    size_t j = hash_str(s) & (intern_cap - 1);
    while (intern_tab[j] && strcmp(intern_tab[j], s) != 0)
        j = (j + 1) & (intern_cap - 1);
    if (!intern_tab[j]) {
        char *c = strdup(s);
        if (!c) {
            pthread_mutex_unlock(&intern_lock);
            fern_set_error(FERN_ERR_NOMEM, "row: out of memory");
            return NULL;
        }
        intern_tab[j] = c;
        intern_n++;
    }
    const char *r = intern_tab[j];
    pthread_mutex_unlock(&intern_lock);
    return r;
}

/* ---- random streams ------------------------------------------------------------ */

uint64_t fern__mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

uint64_t fern__mix2(uint64_t a, uint64_t b) { return fern__mix64(a ^ fern__mix64(b + 0x632BE59BD9B4E019ull)); }

void fern__drng_init(fern__drng *r, uint64_t seed)
{
    r->key = seed;
    r->ctr = 0;
    r->pos = 4;
}

uint32_t fern__drng_u32(fern__drng *r)
{
    if (r->pos >= 4) {
        fern__philox(r->key, 0x64617461u /* "data" */, r->ctr++, r->buf);
        r->pos = 0;
    }
    return r->buf[r->pos++];
}

double fern__drng_uniform(fern__drng *r)
{
    uint64_t hi = fern__drng_u32(r) >> 5, lo = fern__drng_u32(r) >> 6; /* 27 + 26 bits */
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

double fern__drng_range(fern__drng *r, double lo, double hi)
{
    return lo + (hi - lo) * fern__drng_uniform(r);
}

int64_t fern__drng_below(fern__drng *r, int64_t n)
{
    if (n <= 1)
        return 0;
    if (n <= 0xFFFFFFFFll)
        return (int64_t)(((uint64_t)fern__drng_u32(r) * (uint64_t)n) >> 32);
    uint64_t x = ((uint64_t)fern__drng_u32(r) << 32) | fern__drng_u32(r);
    return (int64_t)(x % (uint64_t)n);
}

/* ---- cancellation wakers ----------------------------------------------------------- */

int fern__dctx_add_waker(fern__dctx *ctx, pthread_mutex_t *m, pthread_cond_t *c)
{
    pthread_mutex_lock(&ctx->lock);
    if (ctx->n_wakers == ctx->cap_wakers) {
        int cap = ctx->cap_wakers ? ctx->cap_wakers * 2 : 8;
        struct fern__waker *w = realloc(ctx->wakers, (size_t)cap * sizeof *w);
        if (!w) {
            pthread_mutex_unlock(&ctx->lock);
            fern_set_error(FERN_ERR_NOMEM, "data iterator: out of memory");
            return FERN_ERR_NOMEM;
        }
        ctx->wakers = w;
        ctx->cap_wakers = cap;
    }
    ctx->wakers[ctx->n_wakers].m = m;
    ctx->wakers[ctx->n_wakers].c = c;
    ctx->n_wakers++;
    pthread_mutex_unlock(&ctx->lock);
    return FERN_OK;
}

void fern__dctx_remove_waker(fern__dctx *ctx, pthread_cond_t *c)
{
    pthread_mutex_lock(&ctx->lock);
    for (int i = 0; i < ctx->n_wakers; i++)
        if (ctx->wakers[i].c == c) {
            ctx->wakers[i] = ctx->wakers[--ctx->n_wakers];
            break;
        }
    pthread_mutex_unlock(&ctx->lock);
}

int fern__status_or(int st)
{
    if (st > 0 && st != FERN__CANCELLED && fern_last_status() == FERN_OK)
        fern_set_error((fern_status)st, "data pipeline: error %d without a message", st);
    return st;
}

/* ---- files ---------------------------------------------------------------------------- */


int fern__is_gzip(const unsigned char *b, size_t n) { return n >= 2 && b[0] == 0x1f && b[1] == 0x8b; }

int fern__maybe_gunzip(const char *path, const char *who, unsigned char **buf, size_t *n)
{
    if (!fern__is_gzip(*buf, *n))
        return FERN_OK;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 32) != Z_OK) {
        fern_set_error(FERN_ERR_INTERNAL, "%s: zlib init failed for '%s'", who, path);
        free(*buf);
        *buf = NULL;
        return FERN_ERR_INTERNAL;
    }
    size_t cap = *n * 4 + 1024, len = 0;
    unsigned char *out = malloc(cap + 1);
    int zr = Z_OK;
    zs.next_in = *buf;
    size_t in_left = *n;
    while (out) {
        unsigned chunk_in = in_left > (1u << 30) ? (1u << 30) : (unsigned)in_left;
        zs.avail_in = chunk_in;
        size_t room = cap - len;
        zs.avail_out = room > (1u << 30) ? (1u << 30) : (unsigned)room;
        zs.next_out = out + len;
        unsigned before_out = zs.avail_out;
        zr = inflate(&zs, Z_NO_FLUSH);
        len += before_out - zs.avail_out;
        in_left -= chunk_in - zs.avail_in;
        if (zr == Z_STREAM_END) {
            /* concatenated gzip members */
            if (in_left > 0 && fern__is_gzip(zs.next_in, in_left)) {
                inflateReset(&zs);
                continue;
            }
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            size_t off = (size_t)(zs.next_in - *buf);
            fern_set_error(FERN_ERR_IO, "%s: '%s': corrupt gzip data near byte offset %zu: %s", who,
                           path, off, zs.msg ? zs.msg : "inflate error");
            free(out);
            inflateEnd(&zs);
            free(*buf);
            *buf = NULL;
            return FERN_ERR_IO;
        }
        if (zr == Z_BUF_ERROR && in_left == 0 && zs.avail_out > 0) {
            fern_set_error(FERN_ERR_IO,
                           "%s: '%s': truncated gzip stream (ends at byte offset %zu, %zu bytes "
                           "inflated)",
                           who, path, *n, len);
            free(out);
            inflateEnd(&zs);
            free(*buf);
            *buf = NULL;
            return FERN_ERR_IO;
        }
        if (zr == Z_BUF_ERROR && zs.avail_out > 0 && chunk_in == zs.avail_in) {
            fern_set_error(FERN_ERR_IO, "%s: '%s': gzip stream stalls at byte offset %zu", who,
                           path, (size_t)(zs.next_in - *buf));
            free(out);
            inflateEnd(&zs);
            free(*buf);
            *buf = NULL;
            return FERN_ERR_IO;
        }
        if (len == cap) {
            if (cap > ((size_t)1 << 40)) {
                free(out);
                out = NULL;
                break;
            }
            cap *= 2;
            unsigned char *nb = realloc(out, cap + 1);
            if (!nb) {
                free(out);
                out = NULL;
            } else {
                out = nb;
            }
        }
    }
    inflateEnd(&zs);
    if (!out) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory inflating '%s'", who, path);
        free(*buf);
        *buf = NULL;
        return FERN_ERR_NOMEM;
    }
    out[len] = 0;
    free(*buf);
    *buf = out;
    *n = len;
    return FERN_OK;
}
