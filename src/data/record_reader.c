/* fern's record format: the reader (shard set opened through its SQLite
 * index database, random access by row number, lookups by indexed value),
 * a cache of verified pages, and the data-engine source. The layout is
 * documented in include/fern/record.h; the writer is in record.c.
 *
 * Pages are read with pread (thread-safe on a shared descriptor) and
 * verified (CRC-32 and row table) before any of their rows is returned.
 * Verified pages stay in an LRU cache of cache_bytes shared by all threads;
 * the row table of every verified page is kept (4 bytes a row), so a row of
 * a verified page that left the cache is read by itself (one pread of its
 * bytes, its bounds known) instead of re-reading and re-checking the whole
 * page: a shuffled pass over a set larger than the cache reads each page in
 * full once. A sequential pass keeps its current page per shard without
 * touching the cache lock per row. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "record_internal.h"

/* ---- structures ------------------------------------------------------------------------ */

typedef struct {
    uint64_t off, first;
    uint32_t len, nrows, crc;
} rpage;

/* A page read and verified: its bytes and row table. Reference counted
 * under the reader's lock (the cache holds one reference). */
typedef struct cpage {
    int refs;
    int shard;
    int64_t page;
    unsigned char *data;
    uint32_t len, nrows;
    uint32_t data_end; /* start of the row-offset table */
    struct cpage *prev, *next;
    int cached;
} cpage;

typedef struct {
    char *path;
    int fd;
    uint64_t size, rows, npages, hdr_len;
    rpage *pages;
    cpage **cache;    /* npages slots                                         */
    uint32_t **offs;  /* npages slots: row offsets (nrows + 1, the last is the
                         end of the row data) of pages verified so far         */
} rshard;

struct fern_record_reader {
    atomic_int refcount;
    char *db_path;
    sqlite3 *db;
    pthread_mutex_t db_lock;
    fern_record_schema schema;
    const char *cols[FERN_RECORD_MAX_FIELDS]; /* interned field names */
    uint64_t set_id;
    int version;
    int64_t rows, page_size, rows_per_shard, total_pages;
    int by_count, nsh;
    rshard *sh;
    int n_index;
    char index_names[FERN_RECORD_MAX_FIELDS][FERN_COL_NAME_MAX];
    const char *index_ptrs[FERN_RECORD_MAX_FIELDS];
    int nmeta;
    char **meta_k, **meta_v;
    pthread_mutex_t lock; /* the page cache */
    cpage *lru_head, *lru_tail;
    size_t cached_bytes, cache_cap;
};

static const char *R = "record";

/* ---- small helpers ----------------------------------------------------------------------- */

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    else
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
    return c;
}

static int ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Read exactly n bytes at off; a short read is a truncation. */
static int pread_all(int fd, void *buf, size_t n, uint64_t off, const char *path)
{
    unsigned char *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            fern_set_error(FERN_ERR_IO, "%s: %s: read error at byte offset %llu: %s", R, path,
                           (unsigned long long)off, strerror(errno));
            return -1;
        }
        if (r == 0) {
            fern_set_error(FERN_ERR_IO, "%s: %s: truncated: the file ends at byte offset %llu, %zu bytes "
                           "short of the data it describes", R, path, (unsigned long long)off, n);
            return -1;
        }
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int crc_ok(uint32_t stored, uint32_t computed) { return stored == computed || !fern__rec_check_crc; }

static uint32_t crc_of(const unsigned char *b, size_t n)
{
    uLong c = crc32(0L, Z_NULL, 0);
    while (n > 0) { /* crc32 takes a uInt length */
        uInt k = n > 0x40000000u ? 0x40000000u : (uInt)n;
        c = crc32(c, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)c;
}

/* ---- page cache ------------------------------------------------------------------------------ */

static void cpage_free(cpage *c)
{
    if (c) {
        free(c->data);
        free(c);
    }
}

/* Read and verify page pi of shard si (not cached). */
static cpage *page_load(fern_record_reader *r, int si, int64_t pi)
{
    const rshard *s = &r->sh[si];
    const rpage *p = &s->pages[pi];
    cpage *c = calloc(1, sizeof *c);
    unsigned char *d = c ? malloc(p->len ? p->len : 1) : NULL;
    if (!d) {
        free(c);
        fern_set_error(FERN_ERR_NOMEM, "%s: %s: out of memory for page %lld (%u bytes)", R, s->path,
                       (long long)pi, p->len);
        return NULL;
    }
    c->data = d;
    c->shard = si;
    c->page = pi;
    c->len = p->len;
    if (pread_all(s->fd, d, p->len, p->off, s->path)) {
        cpage_free(c);
        return NULL;
    }
    uint32_t crc = crc_of(d, p->len);
    if (!crc_ok(p->crc, crc)) {
        fern_set_error(FERN_ERR_IO, "%s: %s: corrupt page %lld at byte offset %llu (%u bytes): CRC-32 is "
                       "0x%08x, the page table says 0x%08x", R, s->path, (long long)pi,
                       (unsigned long long)p->off, p->len, crc, p->crc);
        cpage_free(c);
        return NULL;
    }
    /* row table: u32 offsets[nrows], u32 nrows at the end */
    const char *bad = NULL;
    uint64_t bad_at = p->off;
    uint32_t n = p->len >= 4 ? rec_get32(d + p->len - 4) : 0;
    if (p->len < 4 || n != p->nrows || (uint64_t)4 * n + 4 > p->len) {
        bad = "bad row count / table size";
        bad_at = p->off + (p->len >= 4 ? p->len - 4 : 0);
    } else {
        uint32_t end = p->len - 4 * n - 4, prev = 0;
        for (uint32_t i = 0; i < n && !bad; i++) {
            uint32_t o = rec_get32(d + end + 4 * (uint64_t)i);
            if ((i == 0 && o != 0) || o < prev || o > end) {
                bad = "row offsets out of order or out of the page";
                bad_at = p->off + end + 4 * (uint64_t)i;
            }
            prev = o;
        }
        if (!bad && n == 0 && end != 0) {
            bad = "bytes in a page without rows";
        }
        c->data_end = end;
    }
    if (bad) {
        fern_set_error(FERN_ERR_IO, "%s: %s: corrupt page %lld at byte offset %llu: %s (byte offset %llu)",
                       R, s->path, (long long)pi, (unsigned long long)p->off, bad,
                       (unsigned long long)bad_at);
        cpage_free(c);
        return NULL;
    }
    c->nrows = n;
    return c;
}

static void lru_unlink(fern_record_reader *r, cpage *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        r->lru_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        r->lru_tail = c->prev;
    c->prev = c->next = NULL;
}

static void lru_push_front(fern_record_reader *r, cpage *c)
{
    c->prev = NULL;
    c->next = r->lru_head;
    if (r->lru_head)
        r->lru_head->prev = c;
    r->lru_head = c;
    if (!r->lru_tail)
        r->lru_tail = c;
}

/* A verified page (new reference); page_put releases it. */
static cpage *page_get(fern_record_reader *r, int si, int64_t pi)
{
    rshard *s = &r->sh[si];
    pthread_mutex_lock(&r->lock);
    cpage *c = s->cache[pi];
    if (c) {
        c->refs++;
        if (r->lru_head != c) {
            lru_unlink(r, c);
            lru_push_front(r, c);
        }
        pthread_mutex_unlock(&r->lock);
        return c;
    }
    pthread_mutex_unlock(&r->lock);
    cpage *n = page_load(r, si, pi);
    if (!n)
        return NULL;
    pthread_mutex_lock(&r->lock);
    c = s->cache[pi];
    if (c) { /* another thread loaded it meanwhile */
        c->refs++;
        pthread_mutex_unlock(&r->lock);
        cpage_free(n);
        return c;
    }
    if (!s->offs[pi]) { /* remember the verified row table */
        uint32_t *o = malloc(((size_t)n->nrows + 1) * sizeof *o);
        if (o) {
            for (uint32_t k = 0; k < n->nrows; k++)
                o[k] = rec_get32(n->data + n->data_end + 4 * (uint64_t)k);
            o[n->nrows] = n->data_end;
            s->offs[pi] = o;
        }
    }
    n->refs = 2;
    n->cached = 1;
    s->cache[pi] = n;
    lru_push_front(r, n);
    r->cached_bytes += n->len;
    while (r->cached_bytes > r->cache_cap && r->lru_tail && r->lru_tail != n) {
        cpage *v = r->lru_tail;
        lru_unlink(r, v);
        r->sh[v->shard].cache[v->page] = NULL;
        r->cached_bytes -= v->len;
        v->cached = 0;
        if (--v->refs == 0)
            cpage_free(v);
    }
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void page_put(fern_record_reader *r, cpage *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&r->lock);
    int last = --c->refs == 0;
    pthread_mutex_unlock(&r->lock);
    if (last)
        cpage_free(c);
}

/* ---- rows ---------------------------------------------------------------------------------- */

/* Shard, local row and page of global row g (0 <= g < rows). */
static void locate(const fern_record_reader *r, int64_t g, int *si, uint64_t *local, int64_t *pi)
{
    if (r->by_count) {
        *si = (int)(g / r->rows_per_shard);
        *local = (uint64_t)(g % r->rows_per_shard);
    } else {
        *si = (int)(g % r->nsh);
        *local = (uint64_t)(g / r->nsh);
    }
    const rshard *s = &r->sh[*si];
    int64_t lo = 0, hi = (int64_t)s->npages - 1;
    while (lo < hi) { /* last page with first <= local */
        int64_t mid = (lo + hi + 1) / 2;
        if (s->pages[mid].first <= *local)
            lo = mid;
        else
            hi = mid - 1;
    }
    *pi = lo;
}

static int check_row(const fern_record_reader *r, int64_t g, const char *who)
{
    if (g < 0 || g >= r->rows) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s: row %lld out of range (the set has %lld rows)", who,
                       r->db_path, (long long)g, (long long)r->rows);
        return -1;
    }
    return 0;
}

/* Decode row k of page pi of shard si from its bytes b[0..len) (at byte
 * offset `at` of the file); out == NULL only validates. */
static int decode_bytes(fern_record_reader *r, int si, int64_t pi, uint32_t k, const unsigned char *b,
                        uint32_t len, uint64_t at, fern_row *out)
{
    const rshard *s = &r->sh[si];
    uint32_t pos = 0;
    const fern_record_schema *sc = &r->schema;
    for (int i = 0; i < sc->n; i++) {
        const fern_record_field *f = &sc->f[i];
        uint64_t n = sc->fixed[i];
        if (f->type == FERN_REC_STRING || f->type == FERN_REC_BYTES) {
            if ((uint64_t)len - pos < 4)
                goto bad;
            n = rec_get32(b + pos);
            pos += 4;
        }
        if ((uint64_t)len - pos < n)
            goto bad;
        const unsigned char *src = b + pos;
        pos += (uint32_t)n;
        if (!out)
            continue;
        int64_t nn = (int64_t)n;
        fern_tensor *t;
        if (f->type == FERN_REC_ARRAY)
            t = fern__tensor_alloc(f->dtype, f->ndim, f->shape, FERN_CPU);
        else if (f->type == FERN_REC_STRING || f->type == FERN_REC_BYTES)
            t = fern__tensor_alloc(FERN_U8, 1, &nn, FERN_CPU);
        else
            t = fern__tensor_alloc(f->dtype, 0, NULL, FERN_CPU);
        if (!t) {
            fern_row_clear(out);
            return fern_last_status() != FERN_OK ? fern_last_status() : FERN_ERR_NOMEM;
        }
        if (n) {
            memcpy(fern_tensor_data(t), src, n);
            fern__rec_to_le(fern_tensor_data(t), fern_dtype_size(f->dtype), n / fern_dtype_size(f->dtype));
        }
        fern__row_push(out, r->cols[i], t);
    }
    if (pos != len) {
        if (out)
            fern_row_clear(out);
        fern_set_error(FERN_ERR_IO, "%s: %s: corrupt row %u of page %lld at byte offset %llu: %u bytes left "
                       "after the last field (byte offset %llu)", R, s->path, k, (long long)pi,
                       (unsigned long long)at, len - pos, (unsigned long long)(at + pos));
        return FERN_ERR_IO;
    }
    return FERN_OK;
bad:
    if (out)
        fern_row_clear(out);
    fern_set_error(FERN_ERR_IO, "%s: %s: corrupt row %u of page %lld at byte offset %llu: its fields run past "
                   "its end (byte offset %llu)", R, s->path, k, (long long)pi, (unsigned long long)at,
                   (unsigned long long)(at + len));
    return FERN_ERR_IO;
}

/* Row k of a loaded page. */
static int decode_row(fern_record_reader *r, const cpage *c, uint32_t k, fern_row *out)
{
    const unsigned char *tbl = c->data + c->data_end;
    uint32_t start = rec_get32(tbl + 4 * (uint64_t)k);
    uint32_t end = k + 1 < c->nrows ? rec_get32(tbl + 4 * (uint64_t)(k + 1)) : c->data_end;
    return decode_bytes(r, c->shard, c->page, k, c->data + start, end - start,
                        r->sh[c->shard].pages[c->page].off + start, out);
}

/* Row `local` of shard si (page pi), from the cache, from a verified page
 * that left it (the row's bytes alone), or by loading the page. */
static int read_local(fern_record_reader *r, int si, int64_t pi, uint64_t local, fern_row *out,
                      fern_record_loc *loc)
{
    rshard *s = &r->sh[si];
    uint32_t k = (uint32_t)(local - s->pages[pi].first);
    pthread_mutex_lock(&r->lock);
    cpage *c = s->cache[pi];
    const uint32_t *o = s->offs[pi];
    if (c)
        c->refs++;
    pthread_mutex_unlock(&r->lock);
    if (!c && o && !loc) {
        uint32_t start = o[k], len = o[k + 1] - o[k];
        uint64_t at = s->pages[pi].off + start;
        unsigned char stackbuf[4096], *b = len <= sizeof stackbuf ? stackbuf : malloc(len);
        if (!b) {
            fern_set_error(FERN_ERR_NOMEM, "%s: %s: out of memory for a row of %u bytes", R, s->path, len);
            return FERN_ERR_NOMEM;
        }
        int st = pread_all(s->fd, b, len, at, s->path) ? (int)fern_last_status()
                                                        : decode_bytes(r, si, pi, k, b, len, at, out);
        if (b != stackbuf)
            free(b);
        return st;
    }
    if (!c && !(c = page_get(r, si, pi)))
        return fern_last_status();
    int st = FERN_OK;
    if (out)
        st = decode_row(r, c, k, out);
    if (loc) {
        const unsigned char *tbl = c->data + c->data_end;
        uint32_t start = rec_get32(tbl + 4 * (uint64_t)k);
        uint32_t end = k + 1 < c->nrows ? rec_get32(tbl + 4 * (uint64_t)(k + 1)) : c->data_end;
        loc->shard = si;
        loc->page = pi;
        loc->offset = start;
        loc->file_offset = (int64_t)(s->pages[pi].off + start);
        loc->size = end - start;
    }
    page_put(r, c);
    return st;
}

fern_status fern_record_read(fern_record_reader *r, int64_t row, fern_row *out)
{
    if (!r || !out) {
        fern_set_error(FERN_ERR_INVALID, "record_read: %s is NULL", !r ? "reader" : "row");
        return FERN_ERR_INVALID;
    }
    fern_row_clear(out);
    if (check_row(r, row, "record_read"))
        return FERN_ERR_INVALID;
    int si;
    uint64_t local;
    int64_t pi;
    locate(r, row, &si, &local, &pi);
    return (fern_status)read_local(r, si, pi, local, out, NULL);
}

fern_status fern_record_locate(fern_record_reader *r, int64_t row, fern_record_loc *loc)
{
    if (!r || !loc) {
        fern_set_error(FERN_ERR_INVALID, "record_locate: %s is NULL", !r ? "reader" : "loc");
        return FERN_ERR_INVALID;
    }
    if (check_row(r, row, "record_locate"))
        return FERN_ERR_INVALID;
    int si;
    uint64_t local;
    int64_t pi;
    locate(r, row, &si, &local, &pi);
    return (fern_status)read_local(r, si, pi, local, NULL, loc);
}

/* ---- opening ---------------------------------------------------------------------------------- */

static void reader_free(fern_record_reader *r)
{
    if (!r)
        return;
    for (cpage *c = r->lru_head, *n; c; c = n) {
        n = c->next;
        cpage_free(c);
    }
    for (int i = 0; r->sh && i < r->nsh; i++) {
        if (r->sh[i].fd >= 0)
            close(r->sh[i].fd);
        free(r->sh[i].path);
        free(r->sh[i].pages);
        free(r->sh[i].cache);
        for (uint64_t p = 0; r->sh[i].offs && p < r->sh[i].npages; p++)
            free(r->sh[i].offs[p]);
        free(r->sh[i].offs);
    }
    free(r->sh);
    if (r->db)
        sqlite3_close(r->db);
    for (int i = 0; i < r->nmeta; i++) {
        free(r->meta_k[i]);
        free(r->meta_v[i]);
    }
    free(r->meta_k);
    free(r->meta_v);
    free(r->db_path);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->db_lock);
    free(r);
}

static int db_err(fern_record_reader *r, const char *what)
{
    fern_set_error(FERN_ERR_IO, "%s: %s: index database: %s: %s", R, r->db_path, what, sqlite3_errmsg(r->db));
    return -1;
}

static int parse_i64(const char *s, int64_t *v)
{
    if (!s || !*s)
        return -1;
    char *e;
    errno = 0;
    long long x = strtoll(s, &e, 10);
    if (*e || errno)
        return -1;
    *v = x;
    return 0;
}

/* Read the meta table. */
static int read_meta(fern_record_reader *r)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(r->db, "SELECT key, value FROM meta", -1, &q, NULL) != SQLITE_OK)
        return db_err(r, "no meta table (not a fern record index?)");
    int have_schema = 0, rc;
    char fmt[32] = "", mode[32] = "", idx[FERN_RECORD_MAX_FIELDS * FERN_COL_NAME_MAX + 64] = "";
    int64_t version = -1, rows = -1, shards = -1, rps = -1, psz = -1;
    int have_id = 0, bad = 0;
    char badkey[64] = "";
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && !bad) {
        const char *k = (const char *)sqlite3_column_text(q, 0);
        if (!k)
            continue;
        if (strcmp(k, "schema") == 0) {
            const void *b = sqlite3_column_blob(q, 1);
            int n = sqlite3_column_bytes(q, 1);
            char what[4200];
            snprintf(what, sizeof what, "%s (meta 'schema')", r->db_path);
            if (!b || fern__rec_schema_decode(b, (size_t)n, what, 0, &r->schema)) {
                if (!b)
                    fern_set_error(FERN_ERR_IO, "%s: %s: index database: empty schema", R, r->db_path);
                sqlite3_finalize(q);
                return -1;
            }
            have_schema = 1;
            continue;
        }
        const char *v = (const char *)sqlite3_column_text(q, 1);
        if (!v)
            v = "";
        int64_t *num = NULL;
        if (strcmp(k, "format") == 0)
            snprintf(fmt, sizeof fmt, "%s", v);
        else if (strcmp(k, "version") == 0)
            num = &version;
        else if (strcmp(k, "rows") == 0)
            num = &rows;
        else if (strcmp(k, "shards") == 0)
            num = &shards;
        else if (strcmp(k, "rows_per_shard") == 0)
            num = &rps;
        else if (strcmp(k, "page_size") == 0)
            num = &psz;
        else if (strcmp(k, "shard_mode") == 0)
            snprintf(mode, sizeof mode, "%s", v);
        else if (strcmp(k, "index_fields") == 0) {
            if (strlen(v) >= sizeof idx)
                bad = 1, snprintf(badkey, sizeof badkey, "%s", k);
            else
                snprintf(idx, sizeof idx, "%s", v);
        } else if (strcmp(k, "set_id") == 0) {
            char *e;
            errno = 0;
            unsigned long long id = strtoull(v, &e, 16);
            if (!*v || *e || errno)
                bad = 1, snprintf(badkey, sizeof badkey, "%s", k);
            r->set_id = id;
            have_id = 1;
        } else if (strncmp(k, "user.", 5) == 0 && k[5]) {
            char **mk = realloc(r->meta_k, (size_t)(r->nmeta + 1) * sizeof *mk);
            if (mk)
                r->meta_k = mk;
            char **mv = realloc(r->meta_v, (size_t)(r->nmeta + 1) * sizeof *mv);
            if (mv)
                r->meta_v = mv;
            char *kc = mk && mv ? dupstr(k + 5) : NULL, *vc = kc ? dupstr(v) : NULL;
            if (!vc) {
                free(kc);
                sqlite3_finalize(q);
                fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
                return -1;
            }
            r->meta_k[r->nmeta] = kc;
            r->meta_v[r->nmeta] = vc;
            r->nmeta++;
        }
        if (num && parse_i64(v, num))
            bad = 1, snprintf(badkey, sizeof badkey, "%s", k);
    }
    if (!bad && rc != SQLITE_DONE) {
        sqlite3_finalize(q);
        return db_err(r, "reading meta");
    }
    sqlite3_finalize(q);
    const char *why = NULL;
    if (bad)
        why = "a malformed value";
    else if (strcmp(fmt, REC_DB_FORMAT) != 0)
        why = "format is not \"" REC_DB_FORMAT "\" (not a fern record index)";
    else if (version != FERN_RECORD_VERSION)
        why = "unsupported version";
    else if (!have_schema || !have_id || rows < 0 || shards < 1 || shards > REC_MAX_SHARDS || psz < 0 || rps < 0)
        why = "missing or out-of-range schema / set_id / rows / shards / page_size / rows_per_shard";
    else if (strcmp(mode, "count") == 0 ? rps < 1 : strcmp(mode, "round_robin") != 0)
        why = "bad shard_mode";
    else if (r->schema.n < 1)
        why = "the schema has no fields";
    if (why) {
        fern_set_error(FERN_ERR_IO, "%s: %s: index database: meta table has %s%s%s%s", R, r->db_path, why,
                       bad ? " (key '" : "", badkey, bad ? "')" : "");
        return -1;
    }
    r->version = (int)version;
    r->rows = rows;
    r->nsh = (int)shards;
    r->by_count = strcmp(mode, "count") == 0;
    r->rows_per_shard = rps;
    r->page_size = psz;
    /* indexed fields */
    for (char *p = idx, *tok; *p; p = tok) {
        tok = strchr(p, ',');
        if (tok)
            *tok++ = 0;
        else
            tok = p + strlen(p);
        int f = fern_record_schema_find(&r->schema, p);
        int dup = 0;
        for (int j = 0; j < r->n_index; j++)
            dup |= strcmp(r->index_names[j], p) == 0;
        if (f < 0 || !fern__rec_sql_type(&r->schema.f[f]) || dup || r->n_index >= FERN_RECORD_MAX_FIELDS) {
            fern_set_error(FERN_ERR_IO, "%s: %s: index database: indexed field '%s' is not an indexable "
                           "field of the schema", R, r->db_path, p);
            return -1;
        }
        memcpy(r->index_names[r->n_index], r->schema.f[f].name, FERN_COL_NAME_MAX);
        r->index_ptrs[r->n_index] = r->index_names[r->n_index];
        r->n_index++;
    }
    return 0;
}

/* Directory part of path, with the trailing slash ("" if none). */
static size_t dir_len(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? (size_t)(s - path) + 1 : 0;
}

static int read_shard_rows(fern_record_reader *r, int64_t *db_rows, int64_t *db_pages, int64_t *db_bytes)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(r->db, "SELECT id, file, rows, pages, bytes FROM shards ORDER BY id", -1, &q,
                           NULL) != SQLITE_OK)
        return db_err(r, "no shards table");
    int n = 0, rc;
    size_t dl = dir_len(r->db_path);
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        const char *file = (const char *)sqlite3_column_text(q, 1);
        int64_t id = sqlite3_column_int64(q, 0);
        if (n >= r->nsh || id != n || !file || !file[0] || strchr(file, '/') || strcmp(file, ".") == 0 ||
            strcmp(file, "..") == 0 || strlen(file) > 4000 || sqlite3_column_type(q, 2) != SQLITE_INTEGER ||
            sqlite3_column_type(q, 3) != SQLITE_INTEGER || sqlite3_column_type(q, 4) != SQLITE_INTEGER) {
            sqlite3_finalize(q);
            fern_set_error(FERN_ERR_IO, "%s: %s: index database: bad shards table entry %d (ids must run "
                           "0..%d, files must be plain names next to the database)", R, r->db_path, n, r->nsh - 1);
            return -1;
        }
        size_t fl = strlen(file);
        char *p = malloc(dl + fl + 1);
        if (!p) {
            sqlite3_finalize(q);
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
            return -1;
        }
        memcpy(p, r->db_path, dl);
        memcpy(p + dl, file, fl + 1);
        r->sh[n].path = p;
        db_rows[n] = sqlite3_column_int64(q, 2);
        db_pages[n] = sqlite3_column_int64(q, 3);
        db_bytes[n] = sqlite3_column_int64(q, 4);
        n++;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return db_err(r, "reading shards");
    if (n != r->nsh) {
        fern_set_error(FERN_ERR_IO, "%s: %s: index database lists %d shard files but its meta says %d", R,
                       r->db_path, n, r->nsh);
        return -1;
    }
    return 0;
}

/* Open shard i: header, tail, footer and page table, checked against the
 * database's view. */
static int open_shard(fern_record_reader *r, int i, int64_t db_rows, int64_t db_pages, int64_t db_bytes)
{
    rshard *s = &r->sh[i];
    const char *path = s->path;
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: cannot open shard %d listed in '%s': %s", R, path, i, r->db_path,
                       strerror(errno));
        return -1;
    }
    struct stat stt;
    if (fstat(s->fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
        fern_set_error(FERN_ERR_IO, "%s: %s: not a regular file", R, path);
        return -1;
    }
    s->size = (uint64_t)stt.st_size;
    unsigned char fx[REC_HDR_FIXED];
    if (s->size < REC_HDR_FIXED) {
        if (s->size >= 8 && pread_all(s->fd, fx, 8, 0, path) == 0 && memcmp(fx, REC_MAGIC, 8) != 0)
            goto bad_magic;
        fern_set_error(FERN_ERR_IO, "%s: %s: truncated: the file is %llu bytes, the header alone needs %d "
                       "(byte offset %llu)", R, path, (unsigned long long)s->size, REC_HDR_FIXED,
                       (unsigned long long)s->size);
        return -1;
    }
    if (pread_all(s->fd, fx, REC_HDR_FIXED, 0, path))
        return -1;
    if (memcmp(fx, REC_MAGIC, 8) != 0)
        goto bad_magic;
    uint32_t ver = rec_get32(fx + 8), hl = rec_get32(fx + 12);
    if (ver != FERN_RECORD_VERSION) {
        fern_set_error(FERN_ERR_IO, "%s: %s: unsupported format version %u at byte offset 8 (this fern reads "
                       "version %d)", R, path, ver, FERN_RECORD_VERSION);
        return -1;
    }
    uint32_t namelen = rec_get16(fx + 32);
    if (hl < REC_HDR_FIXED + namelen + 2 + 4 || hl > (1u << 20)) {
        fern_set_error(FERN_ERR_IO, "%s: %s: bad header length %u at byte offset 12", R, path, hl);
        return -1;
    }
    if (hl > s->size) {
        fern_set_error(FERN_ERR_IO, "%s: %s: truncated: the file is %llu bytes but its header is %u "
                       "(byte offset %llu)", R, path, (unsigned long long)s->size, hl,
                       (unsigned long long)s->size);
        return -1;
    }
    unsigned char *h = malloc(hl);
    if (!h) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
        return -1;
    }
    if (pread_all(s->fd, h, hl, 0, path)) {
        free(h);
        return -1;
    }
    uint32_t hcrc = crc_of(h, hl - 4);
    if (!crc_ok(rec_get32(h + hl - 4), hcrc)) {
        fern_set_error(FERN_ERR_IO, "%s: %s: corrupt header: CRC-32 of bytes 0..%u is 0x%08x but byte offset %u "
                       "stores 0x%08x", R, path, hl - 5, hcrc, hl - 4, rec_get32(h + hl - 4));
        free(h);
        return -1;
    }
    uint64_t sid = rec_get64(h + 16);
    uint32_t idx = rec_get32(h + 24);
    fern_record_schema sc;
    int bad_schema = fern__rec_schema_decode(h + REC_HDR_FIXED + namelen, hl - 4 - REC_HDR_FIXED - namelen,
                                             path, REC_HDR_FIXED + namelen, &sc);
    free(h);
    if (bad_schema)
        return -1;
    if (sid != r->set_id) {
        fern_set_error(FERN_ERR_IO, "%s: %s: the shard belongs to another record set (set id %016llx at byte "
                       "offset 16) than its index database '%s' (%016llx): was the set rewritten partly?", R,
                       path, (unsigned long long)sid, r->db_path, (unsigned long long)r->set_id);
        return -1;
    }
    if (idx != (uint32_t)i) {
        fern_set_error(FERN_ERR_IO, "%s: %s: the header says shard %u (byte offset 24) but '%s' lists it as "
                       "shard %d", R, path, idx, r->db_path, i);
        return -1;
    }
    unsigned char e1[FERN_RECORD_MAX_FIELDS * (FERN_COL_NAME_MAX + 4 + 8 * FERN_MAX_DIMS) + 2];
    unsigned char e2[sizeof e1];
    size_t l1 = fern__rec_schema_encode(&sc, e1), l2 = fern__rec_schema_encode(&r->schema, e2);
    if (l1 != l2 || memcmp(e1, e2, l1) != 0) {
        char a[1024], b[1024];
        fern_set_error(FERN_ERR_IO, "%s: %s: schema mismatch: the shard holds {%s} but the index database "
                       "'%s' says {%s}", R, path, fern_record_schema_str(&sc, a, sizeof a), r->db_path,
                       fern_record_schema_str(&r->schema, b, sizeof b));
        return -1;
    }
    s->hdr_len = hl;
    /* tail */
    if (s->size < (uint64_t)hl + REC_TAIL_LEN + REC_FOOT_FIXED) {
        fern_set_error(FERN_ERR_IO, "%s: %s: truncated or unfinished: the file is %llu bytes and ends before a "
                       "footer (byte offset %llu)", R, path, (unsigned long long)s->size,
                       (unsigned long long)s->size);
        return -1;
    }
    unsigned char t[REC_TAIL_LEN];
    if (pread_all(s->fd, t, REC_TAIL_LEN, s->size - REC_TAIL_LEN, path))
        return -1;
    if (memcmp(t + 24, REC_TAIL_MAGIC, 8) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: truncated or unfinished: no end marker at byte offset %llu (the "
                       "file is %llu bytes)", R, path, (unsigned long long)(s->size - 8),
                       (unsigned long long)s->size);
        return -1;
    }
    uint64_t fo = rec_get64(t), fl = rec_get64(t + 8);
    if (rec_get64(t + 16) != r->set_id) {
        fern_set_error(FERN_ERR_IO, "%s: %s: the tail's set id (byte offset %llu) differs from the header's", R,
                       path, (unsigned long long)(s->size - 16));
        return -1;
    }
    if (fo < hl || fl < REC_FOOT_FIXED || fo > s->size || fl > s->size - fo ||
        fo + fl != s->size - REC_TAIL_LEN || (fl - REC_FOOT_FIXED) % REC_PAGE_ENTRY) {
        fern_set_error(FERN_ERR_IO, "%s: %s: bad footer position %llu / length %llu at byte offset %llu (the "
                       "file is %llu bytes: truncated?)", R, path, (unsigned long long)fo, (unsigned long long)fl,
                       (unsigned long long)(s->size - REC_TAIL_LEN), (unsigned long long)s->size);
        return -1;
    }
    unsigned char *f = malloc(fl);
    if (!f) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for the footer of '%s'", R, path);
        return -1;
    }
    if (pread_all(s->fd, f, fl, fo, path)) {
        free(f);
        return -1;
    }
    uint32_t fcrc = crc_of(f, fl - 4);
    const char *why = NULL;
    uint64_t at = fo;
    if (memcmp(f, REC_FOOT_MAGIC, 8) != 0)
        why = "no footer magic";
    else if (!crc_ok(rec_get32(f + fl - 4), fcrc))
        why = "CRC-32 mismatch", at = fo + fl - 4;
    uint64_t np = (fl - REC_FOOT_FIXED) / REC_PAGE_ENTRY;
    if (!why && (rec_get64(f + 16) != np))
        why = "page count disagrees with the footer length", at = fo + 16;
    s->rows = rec_get64(f + 8);
    s->npages = np;
    s->pages = np ? malloc(np * sizeof *s->pages) : NULL;
    s->cache = np ? calloc(np, sizeof *s->cache) : NULL;
    s->offs = np ? calloc(np, sizeof *s->offs) : NULL;
    if (!why && np && (!s->pages || !s->cache || !s->offs)) {
        free(f);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for the page table of '%s'", R, path);
        return -1;
    }
    uint64_t expect_off = hl, expect_row = 0;
    for (uint64_t p = 0; p < np && !why; p++) {
        const unsigned char *e = f + 24 + REC_PAGE_ENTRY * p;
        rpage *pg = &s->pages[p];
        pg->off = rec_get64(e);
        pg->len = rec_get32(e + 8);
        pg->nrows = rec_get32(e + 12);
        pg->first = rec_get64(e + 16);
        pg->crc = rec_get32(e + 24);
        at = fo + 24 + REC_PAGE_ENTRY * p;
        if (pg->off != expect_off || pg->len > fo - pg->off || pg->first != expect_row || pg->nrows == 0 ||
            (uint64_t)pg->nrows * 4 + 4 > pg->len)
            why = "page table entry inconsistent with the layout";
        expect_off = pg->off + pg->len;
        expect_row += pg->nrows;
    }
    free(f);
    if (!why && expect_off != fo)
        why = "pages do not end where the footer starts", at = fo;
    if (!why && expect_row != s->rows)
        why = "the pages' row counts do not add up to the footer's", at = fo + 8;
    if (why) {
        fern_set_error(FERN_ERR_IO, "%s: %s: corrupt footer: %s (byte offset %llu)", R, path, why,
                       (unsigned long long)at);
        return -1;
    }
    if ((int64_t)s->rows != db_rows || (int64_t)s->npages != db_pages || (int64_t)s->size != db_bytes) {
        fern_set_error(FERN_ERR_IO, "%s: %s: the shard holds %llu rows in %llu pages (%llu bytes) but the index "
                       "database '%s' says %lld rows in %lld pages (%lld bytes)", R, path,
                       (unsigned long long)s->rows, (unsigned long long)s->npages, (unsigned long long)s->size,
                       r->db_path, (long long)db_rows, (long long)db_pages, (long long)db_bytes);
        return -1;
    }
    return 0;
bad_magic:
    fern_set_error(FERN_ERR_IO, "%s: %s: bad magic at byte offset 0: not a fern record shard", R, path);
    return -1;
}

/* PATH.db, PATH if it ends in .db, or the set of the shard file PATH. */
static char *resolve_db(const char *path)
{
    size_t n = strlen(path);
    char *db = malloc(n + 8);
    if (!db) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
        return NULL;
    }
    if (ends_with(path, ".db")) {
        memcpy(db, path, n + 1);
        return db;
    }
    snprintf(db, n + 8, "%s.db", path);
    if (access(db, F_OK) == 0)
        return db;
    free(db);
    /* a shard file: its header names the set */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: cannot open (nor %s.db): %s", R, path, path, strerror(errno));
        return NULL;
    }
    unsigned char fx[REC_HDR_FIXED + 4096];
    ssize_t got = pread(fd, fx, sizeof fx, 0);
    close(fd);
    if (got < REC_HDR_FIXED || memcmp(fx, REC_MAGIC, 8) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: %s, and there is no %s.db", R, path,
                       got >= 8 && memcmp(fx, REC_MAGIC, 8) != 0 ? "bad magic at byte offset 0: not a fern "
                                                                    "record shard"
                                                                  : "truncated: too short for a record header",
                       path);
        return NULL;
    }
    size_t nl = rec_get16(fx + 32);
    if (nl == 0 || (ssize_t)(REC_HDR_FIXED + nl) > got || memchr(fx + REC_HDR_FIXED, '/', nl) ||
        memchr(fx + REC_HDR_FIXED, 0, nl)) {
        fern_set_error(FERN_ERR_IO, "%s: %s: bad set name at byte offset %d", R, path, REC_HDR_FIXED);
        return NULL;
    }
    size_t dl = dir_len(path);
    db = malloc(dl + nl + 4);
    if (!db) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
        return NULL;
    }
    memcpy(db, path, dl);
    memcpy(db + dl, fx + REC_HDR_FIXED, nl);
    memcpy(db + dl + nl, ".db", 4);
    return db;
}

fern_record_reader *fern_record_open(const char *path, const fern_record_reader_opts *opts)
{
    if (!path || !path[0]) {
        fern_set_error(FERN_ERR_INVALID, "record_open: path is NULL or empty");
        return NULL;
    }
    fern_record_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
        return NULL;
    }
    atomic_init(&r->refcount, 1);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->db_lock, NULL);
    r->cache_cap = opts && opts->cache_bytes ? opts->cache_bytes : REC_DEFAULT_CACHE;
    r->db_path = resolve_db(path);
    if (!r->db_path) {
        reader_free(r);
        return NULL;
    }
    if (access(r->db_path, R_OK) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: cannot open the index database: %s", R, r->db_path, strerror(errno));
        reader_free(r);
        return NULL;
    }
    if (sqlite3_open_v2(r->db_path, &r->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
        db_err(r, "cannot open");
        reader_free(r);
        return NULL;
    }
    if (read_meta(r)) {
        reader_free(r);
        return NULL;
    }
    for (int i = 0; i < r->schema.n; i++)
        if (!(r->cols[i] = fern__intern(r->schema.f[i].name))) {
            reader_free(r);
            return NULL;
        }
    r->sh = calloc((size_t)r->nsh, sizeof *r->sh);
    int64_t *info = malloc(3 * (size_t)r->nsh * sizeof *info);
    if (!r->sh || !info) {
        free(info);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
        reader_free(r);
        return NULL;
    }
    for (int i = 0; i < r->nsh; i++)
        r->sh[i].fd = -1;
    int bad = read_shard_rows(r, info, info + r->nsh, info + 2 * r->nsh);
    for (int i = 0; i < r->nsh && !bad; i++)
        bad = open_shard(r, i, info[i], info[r->nsh + i], info[2 * r->nsh + i]);
    free(info);
    if (bad) {
        reader_free(r);
        return NULL;
    }
    /* rows per shard as the sharding mode places them */
    int64_t total = 0;
    for (int i = 0; i < r->nsh; i++) {
        int64_t want;
        if (r->by_count) {
            int64_t left = r->rows - (int64_t)i * r->rows_per_shard;
            want = left < 0 ? 0 : left < r->rows_per_shard ? left : r->rows_per_shard;
        } else {
            want = r->rows / r->nsh + (i < r->rows % r->nsh);
        }
        if ((int64_t)r->sh[i].rows != want) {
            fern_set_error(FERN_ERR_IO, "%s: %s: shard %d holds %llu rows but %s sharding of %lld rows puts %lld "
                           "there", R, r->sh[i].path, i, (unsigned long long)r->sh[i].rows,
                           r->by_count ? "by-count" : "round-robin", (long long)r->rows, (long long)want);
            reader_free(r);
            return NULL;
        }
        total += (int64_t)r->sh[i].rows;
        r->total_pages += (int64_t)r->sh[i].npages;
    }
    if (r->by_count && r->nsh > 1 && r->sh[r->nsh - 1].rows == 0) {
        fern_set_error(FERN_ERR_IO, "%s: %s: index database lists an empty last shard in by-count mode", R,
                       r->db_path);
        reader_free(r);
        return NULL;
    }
    if (total != r->rows) {
        fern_set_error(FERN_ERR_IO, "%s: %s: the shards hold %lld rows but the index database says %lld", R,
                       r->db_path, (long long)total, (long long)r->rows);
        reader_free(r);
        return NULL;
    }
    /* the row table covers every row */
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(r->db, "SELECT count(*) = max(__row) + 1 OR (count(*) = 0 AND ?1 = 0), count(*) "
                           "FROM rows", -1, &q, NULL) != SQLITE_OK) {
        db_err(r, "no rows table");
        reader_free(r);
        return NULL;
    }
    sqlite3_bind_int64(q, 1, r->rows);
    int ok = sqlite3_step(q) == SQLITE_ROW && sqlite3_column_int(q, 0) == 1 &&
             sqlite3_column_int64(q, 1) == r->rows;
    sqlite3_finalize(q);
    if (!ok) {
        fern_set_error(FERN_ERR_IO, "%s: %s: index database: the rows table does not hold rows 0..%lld", R,
                       r->db_path, (long long)r->rows - 1);
        reader_free(r);
        return NULL;
    }
    return r;
}

static fern_record_reader *reader_retain(fern_record_reader *r)
{
    atomic_fetch_add(&r->refcount, 1);
    return r;
}

void fern_record_close(fern_record_reader *r)
{
    if (r && atomic_fetch_sub(&r->refcount, 1) == 1)
        reader_free(r);
}

int64_t fern_record_rows(const fern_record_reader *r) { return r ? r->rows : 0; }
int fern_record_num_shards(const fern_record_reader *r) { return r ? r->nsh : 0; }
const fern_record_schema *fern_record_get_schema(const fern_record_reader *r) { return r ? &r->schema : NULL; }

fern_status fern_record_get_info(const fern_record_reader *r, fern_record_info *info)
{
    if (!r || !info) {
        fern_set_error(FERN_ERR_INVALID, "record_get_info: %s is NULL", !r ? "reader" : "info");
        return FERN_ERR_INVALID;
    }
    memset(info, 0, sizeof *info);
    info->version = r->version;
    info->set_id = r->set_id;
    info->rows = r->rows;
    info->num_shards = r->nsh;
    info->by_count = r->by_count;
    info->rows_per_shard = r->rows_per_shard;
    info->page_size = r->page_size;
    info->pages = r->total_pages;
    info->n_index = r->n_index;
    for (int i = 0; i < r->n_index; i++)
        info->index_fields[i] = r->index_ptrs[i];
    info->db_path = r->db_path;
    return FERN_OK;
}

fern_status fern_record_shard(const fern_record_reader *r, int i, fern_record_shard_info *info)
{
    if (!r || !info || i < 0 || i >= r->nsh) {
        fern_set_error(FERN_ERR_INVALID, "record_shard: %s", !r || !info ? "NULL argument" : "shard out of range");
        return FERN_ERR_INVALID;
    }
    info->file = r->sh[i].path;
    info->rows = (int64_t)r->sh[i].rows;
    info->pages = (int64_t)r->sh[i].npages;
    info->bytes = (int64_t)r->sh[i].size;
    return FERN_OK;
}

int fern_record_meta_count(const fern_record_reader *r) { return r ? r->nmeta : 0; }

fern_status fern_record_meta_at(const fern_record_reader *r, int i, const char **key, const char **value)
{
    if (!r || i < 0 || i >= r->nmeta) {
        fern_set_error(FERN_ERR_INVALID, "record_meta_at: %s", !r ? "reader is NULL" : "index out of range");
        return FERN_ERR_INVALID;
    }
    if (key)
        *key = r->meta_k[i];
    if (value)
        *value = r->meta_v[i];
    return FERN_OK;
}

const char *fern_record_meta(const fern_record_reader *r, const char *key)
{
    for (int i = 0; r && key && i < r->nmeta; i++)
        if (strcmp(r->meta_k[i], key) == 0)
            return r->meta_v[i];
    return NULL;
}

/* ---- lookups ----------------------------------------------------------------------------------- */

/* Run a prepared "SELECT __row, __shard, __page ..." and collect rows,
 * checking each entry against the shard files' page tables. */
static int64_t collect_rows(fern_record_reader *r, sqlite3_stmt *q, int64_t **rows)
{
    int64_t n = 0, cap = 0, *v = NULL;
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t g = sqlite3_column_int64(q, 0);
        int64_t s = sqlite3_column_int64(q, 1), p = sqlite3_column_int64(q, 2);
        if (g < 0 || g >= r->rows) {
            fern_set_error(FERN_ERR_IO, "%s: %s: index database lists row %lld of a %lld-row set", R, r->db_path,
                           (long long)g, (long long)r->rows);
            free(v);
            return -1;
        }
        int si;
        uint64_t local;
        int64_t pi;
        locate(r, g, &si, &local, &pi);
        if (s != si || p != pi) {
            fern_set_error(FERN_ERR_IO, "%s: %s: index database puts row %lld in shard %lld page %lld but the "
                           "shard files hold it in shard %d page %lld", R, r->db_path, (long long)g, (long long)s,
                           (long long)p, si, (long long)pi);
            free(v);
            return -1;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *nv = realloc(v, (size_t)cap * sizeof *nv);
            if (!nv) {
                free(v);
                fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", R);
                return -1;
            }
            v = nv;
        }
        v[n++] = g;
    }
    if (rc != SQLITE_DONE) {
        free(v);
        db_err(r, "lookup");
        return -1;
    }
    *rows = v;
    return n;
}

int64_t fern_record_lookup(fern_record_reader *r, const char *field, const fern_record_value *value,
                           int64_t **rows)
{
    const char *who = "record_lookup";
    if (rows)
        *rows = NULL;
    if (!r || !field || !value || !rows) {
        fern_set_error(FERN_ERR_INVALID, "%s: NULL argument", who);
        return -1;
    }
    int ix = -1;
    for (int i = 0; i < r->n_index; i++)
        if (strcmp(r->index_names[i], field) == 0)
            ix = i;
    if (ix < 0) {
        char l[FERN_RECORD_MAX_FIELDS * FERN_COL_NAME_MAX + 16] = "";
        for (int i = 0; i < r->n_index; i++) {
            if (i)
                strcat(l, ", ");
            strcat(l, r->index_names[i]);
        }
        fern_set_error(FERN_ERR_INVALID, "%s: %s: field '%s' is not indexed (indexed: %s)", who, r->db_path,
                       field, r->n_index ? l : "none");
        return -1;
    }
    const fern_record_field *f = &r->schema.f[fern_record_schema_find(&r->schema, field)];
    char sql[256] = "SELECT __row, __shard, __page FROM rows WHERE ";
    fern__rec_sql_ident(sql, sizeof sql, field);
    strcat(sql, " = ?1 ORDER BY __row");
    pthread_mutex_lock(&r->db_lock);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(r->db, sql, -1, &q, NULL) != SQLITE_OK) {
        db_err(r, "lookup");
        pthread_mutex_unlock(&r->db_lock);
        return -1;
    }
    size_t n = value->size;
    if (f->type == FERN_REC_STRING && n == (size_t)-1)
        n = value->data ? strlen(value->data) : 0;
    if ((f->type == FERN_REC_STRING || f->type == FERN_REC_BYTES) && ((n > 0 && !value->data) || n > INT32_MAX)) {
        sqlite3_finalize(q);
        pthread_mutex_unlock(&r->db_lock);
        fern_set_error(FERN_ERR_INVALID, "%s: field '%s': value data NULL or too long", who, field);
        return -1;
    }
    switch (f->type) {
    case FERN_REC_INT32:
    case FERN_REC_INT64: sqlite3_bind_int64(q, 1, value->i); break;
    case FERN_REC_FLOAT32: sqlite3_bind_double(q, 1, fern__rec_to_f32(value->f)); break;
    case FERN_REC_FLOAT64: sqlite3_bind_double(q, 1, value->f); break;
    case FERN_REC_STRING: sqlite3_bind_text(q, 1, n ? value->data : "", (int)n, SQLITE_TRANSIENT); break;
    default: sqlite3_bind_blob(q, 1, n ? value->data : "", (int)n, SQLITE_TRANSIENT); break;
    }
    int64_t cnt = collect_rows(r, q, rows);
    sqlite3_finalize(q);
    pthread_mutex_unlock(&r->db_lock);
    return cnt;
}

int64_t fern_record_lookup_int(fern_record_reader *r, const char *field, int64_t value, int64_t **rows)
{
    fern_record_value v = {.i = value};
    return fern_record_lookup(r, field, &v, rows);
}

int64_t fern_record_lookup_str(fern_record_reader *r, const char *field, const char *value, int64_t **rows)
{
    fern_record_value v = {.data = value, .size = (size_t)-1};
    return fern_record_lookup(r, field, &v, rows);
}

/* Only reads of the database: no writes, attaches, pragmas, ... */
static int query_auth(void *ctx, int action, const char *a, const char *b, const char *c, const char *d)
{
    (void)ctx, (void)a, (void)b, (void)c, (void)d;
    return action == SQLITE_SELECT || action == SQLITE_READ || action == SQLITE_FUNCTION ? SQLITE_OK : SQLITE_DENY;
}

int64_t fern_record_query(fern_record_reader *r, const char *where, int64_t **rows)
{
    const char *who = "record_query";
    if (rows)
        *rows = NULL;
    if (!r || !where || !rows) {
        fern_set_error(FERN_ERR_INVALID, "%s: NULL argument", who);
        return -1;
    }
    size_t n = strlen(where) + 96;
    char *sql = malloc(n);
    if (!sql) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", who);
        return -1;
    }
    snprintf(sql, n, "SELECT __row, __shard, __page FROM rows WHERE (%s\n) ORDER BY __row", where);
    pthread_mutex_lock(&r->db_lock);
    sqlite3_set_authorizer(r->db, query_auth, NULL);
    sqlite3_stmt *q = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v2(r->db, sql, -1, &q, &tail);
    sqlite3_set_authorizer(r->db, NULL, NULL);
    int64_t cnt = -1;
    if (rc != SQLITE_OK || !q) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s: bad expression \"%s\": %s", who, r->db_path, where,
                       rc != SQLITE_OK ? sqlite3_errmsg(r->db) : "empty");
    } else if (tail && strspn(tail, " \t\r\n;") != strlen(tail)) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s: expression \"%s\" holds more than one statement", who,
                       r->db_path, where);
    } else {
        cnt = collect_rows(r, q, rows);
    }
    sqlite3_finalize(q);
    pthread_mutex_unlock(&r->db_lock);
    free(sql);
    return cnt;
}

fern_status fern_record_verify(fern_record_reader *r)
{
    if (!r) {
        fern_set_error(FERN_ERR_INVALID, "record_verify: reader is NULL");
        return FERN_ERR_INVALID;
    }
    for (int si = 0; si < r->nsh; si++)
        for (uint64_t p = 0; p < r->sh[si].npages; p++) {
            cpage *c = page_load(r, si, (int64_t)p);
            if (!c)
                return fern_last_status();
            int st = FERN_OK;
            for (uint32_t k = 0; k < c->nrows && st == FERN_OK; k++)
                st = decode_row(r, c, k, NULL);
            cpage_free(c);
            if (st != FERN_OK)
                return (fern_status)st;
        }
    return FERN_OK;
}

/* ---- the data-engine source ------------------------------------------------------------------------ */

typedef struct {
    fern_dataset base;
    fern_record_reader *r;
} rec_node;

typedef struct {
    fern__dstate base;
    cpage **cur; /* current page per shard of the sequential pass */
} rec_state;

static int rec_get(fern__dstate *st, int64_t i, fern_row *out)
{
    fern_record_reader *r = ((rec_node *)st->ds)->r;
    return fern_record_read(r, i, out);
}

static int rec_next(fern__dstate *st, fern_row *out)
{
    rec_state *s = (rec_state *)st;
    fern_record_reader *r = ((rec_node *)st->ds)->r;
    if (fern__cancelled(st->ctx))
        return FERN__CANCELLED;
    if (st->pos >= st->size)
        return FERN_DATA_END;
    int si;
    uint64_t local;
    int64_t pi;
    locate(r, st->pos, &si, &local, &pi);
    cpage *c = s->cur[si];
    if (!c || c->page != pi) {
        page_put(r, c);
        s->cur[si] = NULL;
        if (!(c = page_get(r, si, pi)))
            return fern_last_status();
        s->cur[si] = c;
    }
    int rc = decode_row(r, c, (uint32_t)(local - r->sh[si].pages[pi].first), out);
    if (rc == FERN_OK)
        st->pos++;
    return rc;
}

static void rec_close(fern__dstate *st)
{
    rec_state *s = (rec_state *)st;
    fern_record_reader *r = ((rec_node *)st->ds)->r;
    for (int i = 0; s->cur && i < r->nsh; i++)
        page_put(r, s->cur[i]);
    free(s->cur);
    free(s);
}

static const fern__dstate_vt rec_vt = {rec_next, rec_get, rec_close};

static fern__dstate *rec_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    fern_record_reader *r = ((rec_node *)ds)->r;
    rec_state *s = (rec_state *)fern__state_new(sizeof *s, &rec_vt, ds, ctx, salt, pass);
    if (!s)
        return NULL;
    s->cur = calloc((size_t)r->nsh, sizeof *s->cur);
    if (!s->cur) {
        free(s);
        fern_set_error(FERN_ERR_NOMEM, "record: out of memory");
        return NULL;
    }
    return &s->base;
}

static void rec_destroy(fern_dataset *ds) { fern_record_close(((rec_node *)ds)->r); }

static const fern__dnode_vt rec_node_vt = {"record", rec_open, rec_destroy};

fern_dataset *fern_dataset_record_reader(fern_record_reader *r)
{
    if (!r) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "dataset_record: reader is NULL");
        return NULL;
    }
    rec_node *n = (rec_node *)fern__dataset_new(sizeof *n, &rec_node_vt, 0, NULL);
    if (!n)
        return NULL;
    n->r = reader_retain(r);
    const char *names[FERN_RECORD_MAX_FIELDS];
    for (int i = 0; i < r->schema.n; i++)
        names[i] = r->schema.f[i].name;
    if (fern__dataset_set_cols(&n->base, r->schema.n, names, "dataset_record")) {
        fern_dataset_release(&n->base);
        return NULL;
    }
    n->base.size = r->rows;
    n->base.random_access = 1;
    return &n->base;
}

fern_dataset *fern_dataset_record(const char *path, const fern_record_reader_opts *opts)
{
    fern_record_reader *r = fern_record_open(path, opts);
    if (!r)
        return NULL;
    fern_dataset *ds = fern_dataset_record_reader(r);
    fern_record_close(r);
    return ds;
}
