/* fern's record format: schemas and the writer (shard files in pages with
 * a CRC-32 each, and the SQLite index database). The layout is documented
 * in include/fern/record.h; the reader is in record_reader.c.
 *
 * Why SQLite for the index (as MindRecord does) rather than an index file
 * of our own: the index maps every row number, and the values of any chosen
 * fields, to (shard, page, offset). SQLite gives B-tree indexes over
 * integers, floats, text and blobs, several indexed fields at once, range
 * and compound queries (fern_record_query) and inspection with the stock
 * sqlite3 shell, transactional bulk inserts, and a file format that checks
 * itself against corruption — all in a small, ubiquitous, well-fuzzed
 * library. A custom sorted-array index would be a little faster to open
 * but would need its own B-tree or a full load into memory per lookup
 * field, its own integrity checks and its own query code; the data itself
 * (the hot path of training) never goes through the database. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "record_internal.h"

int fern__rec_check_crc = 1;

/* ---- helpers ------------------------------------------------------------------------ */

void fern__rec_to_le(void *data, size_t esz, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    unsigned char *p = data;
    for (size_t i = 0; esz > 1 && i < n; i++, p += esz)
        for (size_t a = 0, z = esz - 1; a < z; a++, z--) {
            unsigned char c = p[a];
            p[a] = p[z];
            p[z] = c;
        }
#else
    (void)data;
    (void)esz;
    (void)n;
#endif
}

float fern__rec_to_f32(double d)
{
    if (d > FLT_MAX) /* a plain cast would be undefined behaviour */
        return INFINITY;
    if (d < -FLT_MAX)
        return -INFINITY;
    return (float)d;
}

static const char *const type_names[FERN_REC_TYPE_COUNT] = {"int32",  "int64", "float32", "float64",
                                                             "string", "bytes", "array"};

const char *fern_rec_type_name(fern_rec_type t)
{
    return (unsigned)t < FERN_REC_TYPE_COUNT ? type_names[t] : "?";
}

char *fern__rec_field_str(const fern_record_field *f, char *buf, size_t n)
{
    if (f->type == FERN_REC_ARRAY) {
        char sh[256];
        fern__shape_str(f->ndim, f->shape, sh, sizeof sh);
        snprintf(buf, n, "%s: %s%s", f->name, fern_dtype_name(f->dtype), sh);
    } else {
        snprintf(buf, n, "%s: %s", f->name, fern_rec_type_name(f->type));
    }
    return buf;
}

const char *fern__rec_sql_type(const fern_record_field *f)
{
    switch (f->type) {
    case FERN_REC_INT32:
    case FERN_REC_INT64: return "INTEGER";
    case FERN_REC_FLOAT32:
    case FERN_REC_FLOAT64: return "REAL";
    case FERN_REC_STRING: return "TEXT";
    case FERN_REC_BYTES: return "BLOB";
    default: return NULL;
    }
}

void fern__rec_sql_ident(char *buf, size_t n, const char *name)
{
    size_t k = strlen(buf);
    if (k + 1 < n)
        buf[k++] = '"';
    for (; *name && k + 3 < n; name++) {
        if (*name == '"')
            buf[k++] = '"';
        buf[k++] = *name;
    }
    if (k + 1 < n)
        buf[k++] = '"';
    buf[k] = 0;
}

/* ---- schemas ---------------------------------------------------------------------------- */

fern_record_schema *fern_record_schema_new(void)
{
    fern_record_schema *s = calloc(1, sizeof *s);
    if (!s)
        fern_set_error(FERN_ERR_NOMEM, "record schema: out of memory");
    return s;
}

void fern_record_schema_free(fern_record_schema *s) { free(s); }

fern_record_schema *fern_record_schema_copy(const fern_record_schema *s)
{
    if (!s) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "record schema: NULL schema");
        return NULL;
    }
    fern_record_schema *c = fern_record_schema_new();
    if (c)
        *c = *s;
    return c;
}

int fern_record_schema_nfields(const fern_record_schema *s) { return s ? s->n : 0; }

const fern_record_field *fern_record_schema_field(const fern_record_schema *s, int i)
{
    return s && i >= 0 && i < s->n ? &s->f[i] : NULL;
}

int fern_record_schema_find(const fern_record_schema *s, const char *name)
{
    if (!s || !name)
        return -1;
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->f[i].name, name) == 0)
            return i;
    return -1;
}

char *fern_record_schema_str(const fern_record_schema *s, char *buf, size_t n)
{
    if (!buf || !n)
        return buf;
    buf[0] = 0;
    if (!s)
        return buf;
    size_t k = 0;
    for (int i = 0; i < s->n && k + 1 < n; i++) {
        char f[320];
        fern__rec_field_str(&s->f[i], f, sizeof f);
        int w = snprintf(buf + k, n - k, "%s%s", i ? ", " : "", f);
        if (w < 0)
            break;
        k += (size_t)w < n - k ? (size_t)w : n - k - 1;
    }
    return buf;
}

static int check_name(const fern_record_schema *s, const char *name, const char *who)
{
    if (!s) {
        fern_set_error(FERN_ERR_INVALID, "%s: schema is NULL", who);
        return -1;
    }
    if (!name || !name[0] || strlen(name) >= FERN_COL_NAME_MAX) {
        fern_set_error(FERN_ERR_INVALID, "%s: field name %s%s%s must have 1..%d bytes", who,
                       name ? "'" : "", name ? name : "NULL", name ? "'" : "", FERN_COL_NAME_MAX - 1);
        return -1;
    }
    if (name[0] == '_' && name[1] == '_') {
        fern_set_error(FERN_ERR_INVALID, "%s: field name '%s' may not start with \"__\" (reserved for "
                       "the index database's columns)", who, name);
        return -1;
    }
    if (fern_record_schema_find(s, name) >= 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: duplicate field name '%s'", who, name);
        return -1;
    }
    if (s->n >= FERN_RECORD_MAX_FIELDS) {
        fern_set_error(FERN_ERR_INVALID, "%s: a schema holds at most %d fields (adding '%s')", who,
                       FERN_RECORD_MAX_FIELDS, name);
        return -1;
    }
    return 0;
}

int fern__rec_schema_finish(fern_record_schema *s, const char *who)
{
    for (int i = 0; i < s->n; i++) {
        fern_record_field *f = &s->f[i];
        switch (f->type) {
        case FERN_REC_INT32: f->dtype = FERN_I32; s->fixed[i] = 4; break;
        case FERN_REC_INT64: f->dtype = FERN_I64; s->fixed[i] = 8; break;
        case FERN_REC_FLOAT32: f->dtype = FERN_F32; s->fixed[i] = 4; break;
        case FERN_REC_FLOAT64: f->dtype = FERN_F64; s->fixed[i] = 8; break;
        case FERN_REC_STRING:
        case FERN_REC_BYTES: f->dtype = FERN_U8; s->fixed[i] = 0; break;
        case FERN_REC_ARRAY: {
            if ((unsigned)f->dtype >= FERN_DTYPE_COUNT || f->ndim < 0 || f->ndim > FERN_MAX_DIMS) {
                fern_set_error(FERN_ERR_INVALID, "%s: field '%s': bad array dtype %d or ndim %d", who,
                               f->name, (int)f->dtype, f->ndim);
                return -1;
            }
            uint64_t bytes = fern_dtype_size(f->dtype);
            for (int d = 0; d < f->ndim; d++) {
                if (f->shape[d] < 0 || (f->shape[d] > 0 && bytes > REC_MAX_ROW_BYTES / (uint64_t)f->shape[d])) {
                    fern_set_error(FERN_ERR_INVALID, "%s: field '%s': dimension %d is %lld (an array "
                                   "holds 0..%llu bytes)", who, f->name, d, (long long)f->shape[d],
                                   (unsigned long long)REC_MAX_ROW_BYTES);
                    return -1;
                }
                bytes *= (uint64_t)f->shape[d];
            }
            /* 0 marks "variable"; a zero-size array has a fixed size of 0 bytes,
             * told apart by the type */
            s->fixed[i] = bytes;
            break;
        }
        default:
            fern_set_error(FERN_ERR_INVALID, "%s: field '%s': unknown type %d", who, f->name, (int)f->type);
            return -1;
        }
        if (f->type != FERN_REC_ARRAY) {
            f->ndim = 0;
            memset(f->shape, 0, sizeof f->shape);
        }
    }
    return 0;
}

fern_status fern_record_schema_add(fern_record_schema *s, const char *name, fern_rec_type type)
{
    const char *who = "record_schema_add";
    if (check_name(s, name, who))
        return fern_last_status();
    if ((unsigned)type >= FERN_REC_TYPE_COUNT || type == FERN_REC_ARRAY) {
        fern_set_error(FERN_ERR_INVALID, "%s: field '%s': type %d is not a scalar, string or bytes type%s",
                       who, name, (int)type, type == FERN_REC_ARRAY ? " (use record_schema_add_array)" : "");
        return FERN_ERR_INVALID;
    }
    fern_record_field *f = &s->f[s->n];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->type = type;
    s->n++;
    if (fern__rec_schema_finish(s, who)) {
        s->n--;
        return fern_last_status();
    }
    return FERN_OK;
}

fern_status fern_record_schema_add_array(fern_record_schema *s, const char *name, fern_dtype dt,
                                         int ndim, const int64_t *shape)
{
    const char *who = "record_schema_add_array";
    if (check_name(s, name, who))
        return fern_last_status();
    if ((unsigned)dt >= FERN_DTYPE_COUNT || ndim < 0 || ndim > FERN_MAX_DIMS || (ndim > 0 && !shape)) {
        fern_set_error(FERN_ERR_INVALID, "%s: field '%s': bad dtype %d or ndim %d (0..%d, shape needed)",
                       who, name, (int)dt, ndim, FERN_MAX_DIMS);
        return FERN_ERR_INVALID;
    }
    fern_record_field *f = &s->f[s->n];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->type = FERN_REC_ARRAY;
    f->dtype = dt;
    f->ndim = ndim;
    for (int d = 0; d < ndim; d++)
        f->shape[d] = shape[d];
    s->n++;
    if (fern__rec_schema_finish(s, who)) {
        s->n--;
        return fern_last_status();
    }
    return FERN_OK;
}

fern_record_schema *fern_record_schema_from_row(const fern_row *row)
{
    const char *who = "record_schema_from_row";
    if (!row) {
        fern_set_error(FERN_ERR_INVALID, "%s: row is NULL", who);
        return NULL;
    }
    fern_record_schema *s = fern_record_schema_new();
    if (!s)
        return NULL;
    for (int i = 0; i < fern_row_ncols(row); i++) {
        const fern_tensor *t = fern_row_at(row, i);
        const char *name = fern_row_name(row, i);
        fern_status st;
        if (fern_tensor_is_symbolic(t)) {
            fern_set_error(FERN_ERR_INVALID, "%s: column '%s' is symbolic", who, name);
            st = FERN_ERR_INVALID;
        } else if (fern_tensor_ndim(t) == 0 && fern_tensor_dtype(t) == FERN_I32)
            st = fern_record_schema_add(s, name, FERN_REC_INT32);
        else if (fern_tensor_ndim(t) == 0 && fern_tensor_dtype(t) == FERN_I64)
            st = fern_record_schema_add(s, name, FERN_REC_INT64);
        else if (fern_tensor_ndim(t) == 0 && fern_tensor_dtype(t) == FERN_F32)
            st = fern_record_schema_add(s, name, FERN_REC_FLOAT32);
        else if (fern_tensor_ndim(t) == 0 && fern_tensor_dtype(t) == FERN_F64)
            st = fern_record_schema_add(s, name, FERN_REC_FLOAT64);
        else
            st = fern_record_schema_add_array(s, name, fern_tensor_dtype(t), fern_tensor_ndim(t),
                                              fern_tensor_shape(t));
        if (st != FERN_OK) {
            fern_record_schema_free(s);
            return NULL;
        }
    }
    return s;
}

size_t fern__rec_schema_encode(const fern_record_schema *s, unsigned char *buf)
{
    size_t k = 2;
    if (buf)
        rec_put16(buf, (uint16_t)s->n);
    for (int i = 0; i < s->n; i++) {
        const fern_record_field *f = &s->f[i];
        size_t nl = strlen(f->name);
        if (buf) {
            buf[k] = (unsigned char)nl;
            memcpy(buf + k + 1, f->name, nl);
            buf[k + 1 + nl] = (unsigned char)f->type;
            buf[k + 2 + nl] = (unsigned char)f->dtype;
            buf[k + 3 + nl] = (unsigned char)f->ndim;
        }
        k += 4 + nl;
        for (int d = 0; d < f->ndim; d++, k += 8)
            if (buf)
                rec_put64(buf + k, (uint64_t)f->shape[d]);
    }
    return k;
}

int fern__rec_schema_decode(const unsigned char *b, size_t n, const char *what, uint64_t base,
                            fern_record_schema *out)
{
    memset(out, 0, sizeof *out);
    if (n < 2) {
        fern_set_error(FERN_ERR_IO, "record: %s: schema truncated at byte offset %llu", what,
                       (unsigned long long)(base + n));
        return -1;
    }
    int nf = rec_get16(b);
    if (nf > FERN_RECORD_MAX_FIELDS) {
        fern_set_error(FERN_ERR_IO, "record: %s: schema has %d fields at byte offset %llu (at most %d)",
                       what, nf, (unsigned long long)base, FERN_RECORD_MAX_FIELDS);
        return -1;
    }
    size_t k = 2;
    for (int i = 0; i < nf; i++) {
        if (k + 1 > n || k + 4 + b[k] > n) {
            fern_set_error(FERN_ERR_IO, "record: %s: schema truncated in field %d at byte offset %llu", what,
                           i, (unsigned long long)(base + k));
            return -1;
        }
        size_t nl = b[k];
        fern_record_field *f = &out->f[i];
        uint64_t at = base + k;
        if (nl == 0 || nl >= FERN_COL_NAME_MAX || memchr(b + k + 1, 0, nl)) {
            fern_set_error(FERN_ERR_IO, "record: %s: schema field %d has a bad name at byte offset %llu",
                           what, i, (unsigned long long)at);
            return -1;
        }
        memcpy(f->name, b + k + 1, nl);
        f->name[nl] = 0;
        unsigned type = b[k + 1 + nl], dt = b[k + 2 + nl], nd = b[k + 3 + nl];
        k += 4 + nl;
        if (type >= FERN_REC_TYPE_COUNT || dt >= FERN_DTYPE_COUNT || nd > FERN_MAX_DIMS ||
            (type != FERN_REC_ARRAY && nd != 0)) {
            fern_set_error(FERN_ERR_IO, "record: %s: schema field '%s' at byte offset %llu has bad type "
                           "%u / dtype %u / ndim %u", what, f->name, (unsigned long long)at, type, dt, nd);
            return -1;
        }
        if (k + 8 * (size_t)nd > n) {
            fern_set_error(FERN_ERR_IO, "record: %s: schema truncated in field '%s' at byte offset %llu",
                           what, f->name, (unsigned long long)(base + k));
            return -1;
        }
        f->type = (fern_rec_type)type;
        f->dtype = (fern_dtype)dt;
        f->ndim = (int)nd;
        for (unsigned d = 0; d < nd; d++, k += 8) {
            uint64_t v = rec_get64(b + k);
            if (v > REC_MAX_ROW_BYTES) {
                fern_set_error(FERN_ERR_IO, "record: %s: schema field '%s': dimension %u too large at byte "
                               "offset %llu", what, f->name, d, (unsigned long long)(base + k));
                return -1;
            }
            f->shape[d] = (int64_t)v;
        }
        for (int j = 0; j < i; j++)
            if (strcmp(out->f[j].name, f->name) == 0) {
                fern_set_error(FERN_ERR_IO, "record: %s: schema repeats field '%s' (byte offset %llu)", what,
                               f->name, (unsigned long long)at);
                return -1;
            }
        out->n = i + 1;
    }
    if (k != n) {
        fern_set_error(FERN_ERR_IO, "record: %s: %zu unexpected bytes after the schema at byte offset %llu",
                       what, n - k, (unsigned long long)(base + k));
        return -1;
    }
    char who[256];
    snprintf(who, sizeof who, "record: %s: schema", what);
    return fern__rec_schema_finish(out, who) ? -1 : 0;
}

/* ---- the writer ----------------------------------------------------------------------------- */

typedef struct {
    uint64_t off;
    uint32_t len, nrows, crc;
    uint64_t first;
} wpage;

typedef struct {
    int fd;
    char *tmp, *final;
    uint64_t off; /* bytes written */
    unsigned char *page;
    size_t page_len, page_cap;
    uint32_t *offs;
    size_t noffs, offs_cap;
    wpage *pages;
    size_t npages, pages_cap;
    uint64_t rows;
    int done; /* footer written, file synced and closed */
} wshard;

struct fern_record_writer {
    char *path, *base, *dir;
    fern_record_schema schema;
    int by_count, num_shards;
    int64_t rows_per_shard;
    size_t page_size;
    uint64_t set_id;
    int64_t rows;
    wshard *sh;
    int nsh, cap_sh;
    sqlite3 *db;
    sqlite3_stmt *ins;
    char *db_tmp, *db_final;
    int n_index, index_field[FERN_RECORD_MAX_FIELDS];
    unsigned char *scratch;
    size_t scratch_cap;
    size_t field_off[FERN_RECORD_MAX_FIELDS], field_len[FERN_RECORD_MAX_FIELDS];
    int nmeta;
    char **meta_k, **meta_v;
    int failed;
};

static const char *W = "record_writer";

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

static int write_all(int fd, const void *buf, size_t n, const char *name)
{
    const unsigned char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            fern_set_error(FERN_ERR_IO, "%s: writing '%s' failed: %s", W, name, strerror(errno));
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int grow(void **p, size_t *cap, size_t need, size_t esz)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need)
        c *= 2;
    void *q = realloc(*p, c * esz);
    if (!q) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return -1;
    }
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t new_set_id(const char *path)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    static atomic_uint_fast64_t counter;
    uint64_t h = 1469598103934665603ull;
    for (const char *p = path; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    uint64_t id = fern__mix2(fern__mix2((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec,
                                        (uint64_t)getpid()),
                             h ^ atomic_fetch_add(&counter, 1));
    return id ? id : 1;
}

static int db_exec(fern_record_writer *w, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(w->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        fern_set_error(FERN_ERR_IO, "%s: index database '%s': %s (in \"%.80s\")", W, w->db_final,
                       err ? err : sqlite3_errmsg(w->db), sql);
        sqlite3_free(err);
        return -1;
    }
    return 0;
}

static int db_fail(fern_record_writer *w, const char *what)
{
    fern_set_error(FERN_ERR_IO, "%s: index database '%s': %s: %s", W, w->db_final, what,
                   sqlite3_errmsg(w->db));
    return -1;
}

static void writer_free(fern_record_writer *w, int remove_tmp)
{
    if (!w)
        return;
    for (int i = 0; i < w->nsh; i++) {
        wshard *s = &w->sh[i];
        if (s->fd >= 0)
            close(s->fd);
        if (remove_tmp && s->tmp)
            unlink(s->tmp);
        free(s->tmp);
        free(s->final);
        free(s->page);
        free(s->offs);
        free(s->pages);
    }
    free(w->sh);
    if (w->ins)
        sqlite3_finalize(w->ins);
    if (w->db)
        sqlite3_close(w->db);
    if (remove_tmp && w->db_tmp)
        unlink(w->db_tmp);
    free(w->db_tmp);
    free(w->db_final);
    for (int i = 0; i < w->nmeta; i++) {
        free(w->meta_k[i]);
        free(w->meta_v[i]);
    }
    free(w->meta_k);
    free(w->meta_v);
    free(w->scratch);
    free(w->path);
    free(w->base);
    free(w->dir);
    free(w);
}

/* A new temporary file next to `final` (like mkstemp, but created with
 * mode 0666 & ~umask as the final file would be); its name in *tmp. */
static int make_tmp(const char *final, char **tmp)
{
    size_t n = strlen(final) + 16;
    *tmp = malloc(n);
    if (!*tmp) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return -1;
    }
    static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    int fd = -1;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        uint64_t x = new_set_id(final) + (uint64_t)attempt;
        char suf[7];
        for (int i = 0; i < 6; i++, x /= 62)
            suf[i] = al[x % 62];
        suf[6] = 0;
        snprintf(*tmp, n, "%s.tmp.%s", final, suf);
        fd = open(*tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        fern_set_error(FERN_ERR_IO, "%s: cannot create a temporary file next to '%s': %s", W, final,
                       strerror(errno));
        free(*tmp);
        *tmp = NULL;
        return -1;
    }
    return fd;
}

static int shard_open(fern_record_writer *w, int idx)
{
    if (idx >= w->cap_sh) {
        int cap = w->cap_sh ? w->cap_sh * 2 : 4;
        while (cap <= idx)
            cap *= 2;
        wshard *n = realloc(w->sh, (size_t)cap * sizeof *n);
        if (!n) {
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
            return -1;
        }
        w->sh = n;
        w->cap_sh = cap;
    }
    wshard *s = &w->sh[idx];
    memset(s, 0, sizeof *s);
    s->fd = -1;
    w->nsh = idx + 1;
    size_t pl = strlen(w->path) + 16;
    s->final = malloc(pl);
    if (!s->final) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return -1;
    }
    if (!w->by_count && w->num_shards == 1)
        snprintf(s->final, pl, "%s", w->path);
    else
        snprintf(s->final, pl, "%s.%05d", w->path, idx);
    s->fd = make_tmp(s->final, &s->tmp);
    if (s->fd < 0)
        return -1;
    /* header */
    size_t bl = strlen(w->base), sl = fern__rec_schema_encode(&w->schema, NULL);
    size_t hl = REC_HDR_FIXED + bl + sl + 4;
    unsigned char *h = malloc(hl);
    if (!h) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return -1;
    }
    memcpy(h, REC_MAGIC, 8);
    rec_put32(h + 8, FERN_RECORD_VERSION);
    rec_put32(h + 12, (uint32_t)hl);
    rec_put64(h + 16, w->set_id);
    rec_put32(h + 24, (uint32_t)idx);
    rec_put32(h + 28, 0);
    rec_put16(h + 32, (uint16_t)bl);
    memcpy(h + REC_HDR_FIXED, w->base, bl);
    fern__rec_schema_encode(&w->schema, h + REC_HDR_FIXED + bl);
    rec_put32(h + hl - 4, (uint32_t)crc32(0L, h, (uInt)(hl - 4)));
    int r = write_all(s->fd, h, hl, s->tmp);
    free(h);
    s->off = hl;
    return r;
}

static int page_flush(fern_record_writer *w, wshard *s)
{
    if (s->noffs == 0)
        return 0;
    size_t tbl = 4 * s->noffs + 4;
    void *pg = s->page;
    if (grow(&pg, &s->page_cap, s->page_len + tbl, 1))
        return -1;
    s->page = pg;
    for (size_t i = 0; i < s->noffs; i++)
        rec_put32(s->page + s->page_len + 4 * i, s->offs[i]);
    rec_put32(s->page + s->page_len + 4 * s->noffs, (uint32_t)s->noffs);
    size_t len = s->page_len + tbl;
    void *pgs = s->pages;
    if (grow(&pgs, &s->pages_cap, s->npages + 1, sizeof(wpage)))
        return -1;
    s->pages = pgs;
    wpage *p = &s->pages[s->npages];
    p->off = s->off;
    p->len = (uint32_t)len;
    p->nrows = (uint32_t)s->noffs;
    p->first = s->rows - s->noffs;
    p->crc = (uint32_t)crc32(0L, s->page, (uInt)len);
    if (write_all(s->fd, s->page, len, s->tmp))
        return -1;
    s->npages++;
    s->off += len;
    s->page_len = 0;
    s->noffs = 0;
    return 0;
}

fern_record_writer *fern_record_writer_open(const char *path, const fern_record_schema *schema,
                                            const fern_record_writer_opts *opts)
{
    if (!path || !path[0] || !schema) {
        fern_set_error(FERN_ERR_INVALID, "%s: %s", W, !schema ? "schema is NULL" : "path is NULL or empty");
        return NULL;
    }
    if (schema->n < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s': the schema has no fields", W, path);
        return NULL;
    }
    fern_record_writer_opts o = {0};
    if (opts)
        o = *opts;
    if (o.num_shards < 0 || o.rows_per_shard < 0 || (o.rows_per_shard > 0 && o.num_shards > 1) ||
        o.num_shards > REC_MAX_SHARDS) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s': num_shards %d / rows_per_shard %lld: give num_shards "
                       "(1..%d) or rows_per_shard > 0, not both", W, path, o.num_shards,
                       (long long)o.rows_per_shard, REC_MAX_SHARDS);
        return NULL;
    }
    if (o.page_size > REC_MAX_ROW_BYTES) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s': page_size %zu is larger than %llu", W, path, o.page_size,
                       (unsigned long long)REC_MAX_ROW_BYTES);
        return NULL;
    }
    if (o.n_index < 0 || o.n_index > schema->n || (o.n_index > 0 && !o.index_fields)) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s': %d index fields (0..%d)", W, path, o.n_index, schema->n);
        return NULL;
    }
    fern_record_writer *w = calloc(1, sizeof *w);
    if (!w) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return NULL;
    }
    w->schema = *schema;
    if (fern__rec_schema_finish(&w->schema, W)) {
        free(w);
        return NULL;
    }
    w->by_count = o.rows_per_shard > 0;
    w->rows_per_shard = o.rows_per_shard;
    w->num_shards = w->by_count ? 0 : (o.num_shards ? o.num_shards : 1);
    w->page_size = o.page_size ? o.page_size : REC_DEFAULT_PAGE;
    w->n_index = o.n_index;
    for (int i = 0; i < o.n_index; i++) {
        const char *nm = o.index_fields[i];
        int f = fern_record_schema_find(&w->schema, nm);
        if (f < 0 || !fern__rec_sql_type(&w->schema.f[f])) {
            char sb[1024];
            fern_set_error(FERN_ERR_INVALID, "%s: '%s': cannot index %s%s%s: %s (schema: %s)", W, path,
                           nm ? "'" : "", nm ? nm : "NULL", nm ? "'" : "",
                           f < 0 ? "no such field" : "arrays cannot be indexed",
                           fern_record_schema_str(&w->schema, sb, sizeof sb));
            free(w);
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (w->index_field[j] == f) {
                fern_set_error(FERN_ERR_INVALID, "%s: '%s': field '%s' is indexed twice", W, path, nm);
                free(w);
                return NULL;
            }
        w->index_field[i] = f;
    }
    w->path = dupstr(path);
    const char *slash = strrchr(path, '/');
    w->base = dupstr(slash ? slash + 1 : path);
    w->dir = slash ? strndup(path, (size_t)(slash - path) + 1) : dupstr("./");
    if (!w->path || !w->base || !w->dir) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        writer_free(w, 1);
        return NULL;
    }
    if (!w->base[0] || strlen(w->base) > 4000) {
        fern_set_error(FERN_ERR_INVALID, "%s: '%s' does not name a file", W, path);
        writer_free(w, 1);
        return NULL;
    }
    w->set_id = new_set_id(path);
    /* the index database */
    size_t dl = strlen(path) + 8;
    w->db_final = malloc(dl);
    if (!w->db_final) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        writer_free(w, 1);
        return NULL;
    }
    snprintf(w->db_final, dl, "%s.db", path);
    int fd = make_tmp(w->db_final, &w->db_tmp);
    if (fd < 0) {
        writer_free(w, 1);
        return NULL;
    }
    close(fd);
    if (sqlite3_open_v2(w->db_tmp, &w->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
        db_fail(w, "cannot create");
        writer_free(w, 1);
        return NULL;
    }
    char sql[8192] = "CREATE TABLE rows(__row INTEGER PRIMARY KEY, __shard INTEGER NOT NULL, "
                     "__page INTEGER NOT NULL, __offset INTEGER NOT NULL";
    char ins[2048] = "INSERT INTO rows VALUES(?,?,?,?";
    for (int i = 0; i < w->n_index; i++) {
        const fern_record_field *f = &w->schema.f[w->index_field[i]];
        strcat(sql, ", ");
        fern__rec_sql_ident(sql, sizeof sql, f->name);
        strcat(sql, " ");
        strcat(sql, fern__rec_sql_type(f));
        strcat(ins, ",?");
    }
    strcat(sql, ")");
    strcat(ins, ")");
    if (db_exec(w, "PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA page_size=4096;") ||
        db_exec(w, "CREATE TABLE meta(key TEXT PRIMARY KEY, value)") ||
        db_exec(w, "CREATE TABLE shards(id INTEGER PRIMARY KEY, file TEXT NOT NULL, rows INTEGER NOT NULL, "
                   "pages INTEGER NOT NULL, bytes INTEGER NOT NULL)") ||
        db_exec(w, sql) || db_exec(w, "BEGIN")) {
        writer_free(w, 1);
        return NULL;
    }
    if (sqlite3_prepare_v2(w->db, ins, -1, &w->ins, NULL) != SQLITE_OK) {
        db_fail(w, "prepare insert");
        writer_free(w, 1);
        return NULL;
    }
    for (int i = 0; i < w->num_shards; i++)
        if (shard_open(w, i)) {
            writer_free(w, 1);
            return NULL;
        }
    return w;
}

int64_t fern_record_writer_rows(const fern_record_writer *w) { return w ? w->rows : 0; }

fern_status fern_record_writer_set_meta(fern_record_writer *w, const char *key, const char *value)
{
    if (!w || !key || !key[0] || !value) {
        fern_set_error(FERN_ERR_INVALID, "%s: set_meta: %s", W, !w ? "writer is NULL" : "key/value NULL or empty");
        return FERN_ERR_INVALID;
    }
    for (int i = 0; i < w->nmeta; i++)
        if (strcmp(w->meta_k[i], key) == 0) {
            char *v = dupstr(value);
            if (!v) {
                fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
                return FERN_ERR_NOMEM;
            }
            free(w->meta_v[i]);
            w->meta_v[i] = v;
            return FERN_OK;
        }
    char **k = realloc(w->meta_k, (size_t)(w->nmeta + 1) * sizeof *k);
    if (k)
        w->meta_k = k;
    char **v = realloc(w->meta_v, (size_t)(w->nmeta + 1) * sizeof *v);
    if (v)
        w->meta_v = v;
    char *kc = dupstr(key), *vc = dupstr(value);
    if (!k || !v || !kc || !vc) {
        free(kc);
        free(vc);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return FERN_ERR_NOMEM;
    }
    w->meta_k[w->nmeta] = kc;
    w->meta_v[w->nmeta] = vc;
    w->nmeta++;
    return FERN_OK;
}

/* Room for `extra` more bytes at w->scratch + at. */
static unsigned char *scratch_at(fern_record_writer *w, size_t at, size_t extra)
{
    void *p = w->scratch;
    if (grow(&p, &w->scratch_cap, at + extra, 1))
        return NULL;
    w->scratch = p;
    return w->scratch + at;
}

static int shard_finish(fern_record_writer *w, wshard *s);

/* Append the encoded row in w->scratch[0..len) (field offsets in
 * w->field_off/len) to its shard, and its index entry to the database. */
static fern_status append_row(fern_record_writer *w, size_t len)
{
    if (len > REC_MAX_ROW_BYTES) {
        fern_set_error(FERN_ERR_INVALID, "%s: row %lld is %zu bytes (at most %llu)", W, (long long)w->rows,
                       len, (unsigned long long)REC_MAX_ROW_BYTES);
        return FERN_ERR_INVALID;
    }
    int si;
    if (w->by_count) {
        si = (int)(w->rows / w->rows_per_shard);
        if (w->rows / w->rows_per_shard >= REC_MAX_SHARDS) {
            fern_set_error(FERN_ERR_INVALID, "%s: more than %d shards of %lld rows", W, REC_MAX_SHARDS,
                           (long long)w->rows_per_shard);
            return FERN_ERR_INVALID;
        }
        if (si >= w->nsh) {
            if (si > 0 && shard_finish(w, &w->sh[si - 1]))
                goto io_fail;
            if (shard_open(w, si))
                goto io_fail;
        }
    } else {
        si = (int)(w->rows % w->num_shards);
    }
    wshard *s = &w->sh[si];
    if (s->noffs > 0 && s->page_len + len + 4 * (s->noffs + 2) > w->page_size && page_flush(w, s))
        goto io_fail;
    void *pg = s->page, *of = s->offs;
    if (grow(&pg, &s->page_cap, s->page_len + len, 1))
        goto io_fail;
    s->page = pg;
    if (grow(&of, &s->offs_cap, s->noffs + 1, sizeof(uint32_t)))
        goto io_fail;
    s->offs = of;
    uint64_t offset = s->page_len;
    memcpy(s->page + s->page_len, w->scratch, len);
    s->offs[s->noffs++] = (uint32_t)s->page_len;
    s->page_len += len;
    s->rows++;
    /* index entry */
    sqlite3_stmt *q = w->ins;
    sqlite3_reset(q);
    sqlite3_bind_int64(q, 1, w->rows);
    sqlite3_bind_int64(q, 2, si);
    sqlite3_bind_int64(q, 3, (sqlite3_int64)s->npages);
    sqlite3_bind_int64(q, 4, (sqlite3_int64)offset);
    for (int i = 0; i < w->n_index; i++) {
        int f = w->index_field[i];
        const unsigned char *v = w->scratch + w->field_off[f];
        switch (w->schema.f[f].type) {
        case FERN_REC_INT32: sqlite3_bind_int64(q, 5 + i, (int32_t)rec_get32(v)); break;
        case FERN_REC_INT64: sqlite3_bind_int64(q, 5 + i, (sqlite3_int64)rec_get64(v)); break;
        case FERN_REC_FLOAT32: {
            uint32_t b = rec_get32(v);
            float x;
            memcpy(&x, &b, 4);
            sqlite3_bind_double(q, 5 + i, x);
            break;
        }
        case FERN_REC_FLOAT64: {
            uint64_t b = rec_get64(v);
            double x;
            memcpy(&x, &b, 8);
            sqlite3_bind_double(q, 5 + i, x);
            break;
        }
        case FERN_REC_STRING:
            sqlite3_bind_text(q, 5 + i, w->field_len[f] ? (const char *)v + 4 : "", (int)w->field_len[f],
                              SQLITE_TRANSIENT);
            break;
        default:
            sqlite3_bind_blob(q, 5 + i, w->field_len[f] ? v + 4 : (const void *)"", (int)w->field_len[f],
                              SQLITE_TRANSIENT);
            break;
        }
    }
    if (sqlite3_step(q) != SQLITE_DONE) {
        db_fail(w, "insert");
        goto io_fail;
    }
    w->rows++;
    return FERN_OK;
io_fail:
    w->failed = 1;
    return fern_last_status() != FERN_OK ? fern_last_status() : FERN_ERR_IO;
}

static int check_writer(fern_record_writer *w, const void *arg, const char *what)
{
    if (!w || !arg) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: %s is NULL", W, !w ? "writer" : what);
        return -1;
    }
    if (w->failed) {
        fern_set_error(FERN_ERR_IO, "%s: '%s': an earlier write failed; close or abort the writer", W, w->path);
        return -1;
    }
    return 0;
}

fern_status fern_record_write_values(fern_record_writer *w, const fern_record_value *vals)
{
    if (check_writer(w, vals, "values"))
        return fern_last_status();
    size_t k = 0;
    for (int i = 0; i < w->schema.n; i++) {
        const fern_record_field *f = &w->schema.f[i];
        const fern_record_value *v = &vals[i];
        unsigned char *p;
        w->field_off[i] = k;
        switch (f->type) {
        case FERN_REC_INT32:
            if (v->i < INT32_MIN || v->i > INT32_MAX) {
                fern_set_error(FERN_ERR_INVALID, "%s: row %lld field '%s' (int32): value %lld out of range", W,
                               (long long)w->rows, f->name, (long long)v->i);
                return FERN_ERR_INVALID;
            }
            if (!(p = scratch_at(w, k, 4)))
                return FERN_ERR_NOMEM;
            rec_put32(p, (uint32_t)(int32_t)v->i);
            k += 4;
            break;
        case FERN_REC_INT64:
            if (!(p = scratch_at(w, k, 8)))
                return FERN_ERR_NOMEM;
            rec_put64(p, (uint64_t)v->i);
            k += 8;
            break;
        case FERN_REC_FLOAT32: {
            float x = fern__rec_to_f32(v->f);
            uint32_t b;
            memcpy(&b, &x, 4);
            if (!(p = scratch_at(w, k, 4)))
                return FERN_ERR_NOMEM;
            rec_put32(p, b);
            k += 4;
            break;
        }
        case FERN_REC_FLOAT64: {
            uint64_t b;
            memcpy(&b, &v->f, 8);
            if (!(p = scratch_at(w, k, 8)))
                return FERN_ERR_NOMEM;
            rec_put64(p, b);
            k += 8;
            break;
        }
        case FERN_REC_STRING:
        case FERN_REC_BYTES: {
            size_t n = v->size;
            if (f->type == FERN_REC_STRING && n == (size_t)-1)
                n = v->data ? strlen(v->data) : 0;
            if (n > 0 && !v->data) {
                fern_set_error(FERN_ERR_INVALID, "%s: row %lld field '%s' (%s): data is NULL with size %zu", W,
                               (long long)w->rows, f->name, fern_rec_type_name(f->type), n);
                return FERN_ERR_INVALID;
            }
            if (n > REC_MAX_ROW_BYTES) {
                fern_set_error(FERN_ERR_INVALID, "%s: row %lld field '%s': %zu bytes (at most %llu)", W,
                               (long long)w->rows, f->name, n, (unsigned long long)REC_MAX_ROW_BYTES);
                return FERN_ERR_INVALID;
            }
            if (!(p = scratch_at(w, k, 4 + n)))
                return FERN_ERR_NOMEM;
            rec_put32(p, (uint32_t)n);
            if (n)
                memcpy(p + 4, v->data, n);
            w->field_len[i] = n;
            k += 4 + n;
            break;
        }
        default: {
            size_t n = (size_t)w->schema.fixed[i];
            if (n > 0 && !v->data) {
                fern_set_error(FERN_ERR_INVALID, "%s: row %lld field '%s' (array): data is NULL", W,
                               (long long)w->rows, f->name);
                return FERN_ERR_INVALID;
            }
            if (!(p = scratch_at(w, k, n)))
                return FERN_ERR_NOMEM;
            if (n)
                memcpy(p, v->data, n);
            fern__rec_to_le(p, fern_dtype_size(f->dtype), n / fern_dtype_size(f->dtype));
            k += n;
            break;
        }
        }
    }
    return append_row(w, k);
}

/* An exact integer from a one-element integer/bool tensor. */
static int tensor_int(const fern_tensor *t, int64_t *out)
{
    const void *p = fern_tensor_data(t);
    switch (fern_tensor_dtype(t)) {
    case FERN_I8: *out = *(const int8_t *)p; return 0;
    case FERN_U8:
    case FERN_BOOL: *out = *(const uint8_t *)p; return 0;
    case FERN_I32: *out = *(const int32_t *)p; return 0;
    case FERN_I64: *out = *(const int64_t *)p; return 0;
    default: return -1;
    }
}

fern_status fern_record_write_row(fern_record_writer *w, const fern_row *row)
{
    if (check_writer(w, row, "row"))
        return fern_last_status();
    fern_record_value vals[FERN_RECORD_MAX_FIELDS];
    void *owned[FERN_RECORD_MAX_FIELDS] = {0};
    fern_status st = FERN_OK;
    memset(vals, 0, sizeof vals);
    for (int i = 0; i < w->schema.n && st == FERN_OK; i++) {
        const fern_record_field *f = &w->schema.f[i];
        int c = fern_row_find(row, f->name);
        const fern_tensor *t = c >= 0 ? fern_row_at(row, c) : NULL;
        char d[128], fs[320];
        if (!t || fern_tensor_is_symbolic(t)) {
            fern_set_error(FERN_ERR_INVALID, "%s: row %lld: %s for field '%s'", W, (long long)w->rows,
                           t ? "symbolic tensor" : "no column", f->name);
            st = FERN_ERR_INVALID;
            break;
        }
        fern_dtype dt = fern_tensor_dtype(t);
        const char *bad = NULL;
        switch (f->type) {
        case FERN_REC_INT32:
        case FERN_REC_INT64:
            if (fern_tensor_numel(t) != 1 || tensor_int(t, &vals[i].i))
                bad = "a one-element integer or bool tensor";
            break;
        case FERN_REC_FLOAT32:
        case FERN_REC_FLOAT64:
            if (fern_tensor_numel(t) != 1)
                bad = "a one-element tensor";
            else if (dt == FERN_I64) /* exact for |x| > 2^53 where it matters */
                vals[i].f = (double)*(const int64_t *)fern_tensor_data(t);
            else
                vals[i].f = fern__load(fern_tensor_data(t), dt);
            break;
        case FERN_REC_STRING:
        case FERN_REC_BYTES: {
            if (dt != FERN_U8 && dt != FERN_I8) {
                bad = "a u8 or i8 tensor";
                break;
            }
            size_t n = (size_t)fern_tensor_numel(t);
            if (fern_tensor_is_contiguous(t)) {
                vals[i].data = fern_tensor_data(t);
            } else {
                owned[i] = malloc(n ? n : 1);
                if (!owned[i] || fern_tensor_copy_to(t, owned[i], n) != FERN_OK) {
                    if (!owned[i])
                        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
                    st = fern_last_status();
                    break;
                }
                vals[i].data = owned[i];
            }
            vals[i].size = n;
            break;
        }
        default: {
            int same = dt == f->dtype && fern_tensor_ndim(t) == f->ndim;
            for (int k = 0; same && k < f->ndim; k++)
                same = fern_tensor_shape(t)[k] == f->shape[k];
            if (!same) {
                bad = "a tensor of the field's dtype and shape";
                break;
            }
            size_t n = (size_t)w->schema.fixed[i];
            if (fern_tensor_is_contiguous(t)) {
                vals[i].data = fern_tensor_data(t);
            } else {
                owned[i] = malloc(n ? n : 1);
                if (!owned[i] || fern_tensor_copy_to(t, owned[i], n) != FERN_OK) {
                    if (!owned[i])
                        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
                    st = fern_last_status();
                    break;
                }
                vals[i].data = owned[i];
            }
            break;
        }
        }
        if (bad) {
            fern_set_error(FERN_ERR_INVALID, "%s: row %lld: column '%s' is %s but field %s needs %s", W,
                           (long long)w->rows, f->name, fern_tensor_desc(t, d, sizeof d),
                           fern__rec_field_str(f, fs, sizeof fs), bad);
            st = FERN_ERR_INVALID;
        }
    }
    if (st == FERN_OK)
        st = fern_record_write_values(w, vals);
    for (int i = 0; i < FERN_RECORD_MAX_FIELDS; i++)
        free(owned[i]);
    return st;
}

void fern_record_writer_abort(fern_record_writer *w) { writer_free(w, 1); }

static int fsync_path(const char *path, int dir)
{
    int fd = open(path, dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0)
        return dir ? 0 : -1;
    int r = fsync(fd);
    close(fd);
    return dir ? 0 : r;
}

static int shard_finish(fern_record_writer *w, wshard *s)
{
    if (s->done)
        return 0;
    if (page_flush(w, s))
        return -1;
    size_t fl = REC_FOOT_FIXED + REC_PAGE_ENTRY * s->npages;
    unsigned char *b = malloc(fl + REC_TAIL_LEN);
    if (!b) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
        return -1;
    }
    memcpy(b, REC_FOOT_MAGIC, 8);
    rec_put64(b + 8, s->rows);
    rec_put64(b + 16, s->npages);
    for (size_t i = 0; i < s->npages; i++) {
        unsigned char *e = b + 24 + REC_PAGE_ENTRY * i;
        rec_put64(e, s->pages[i].off);
        rec_put32(e + 8, s->pages[i].len);
        rec_put32(e + 12, s->pages[i].nrows);
        rec_put64(e + 16, s->pages[i].first);
        rec_put32(e + 24, s->pages[i].crc);
        rec_put32(e + 28, 0);
    }
    rec_put32(b + fl - 4, (uint32_t)crc32(0L, b, (uInt)(fl - 4)));
    unsigned char *t = b + fl;
    rec_put64(t, s->off);
    rec_put64(t + 8, fl);
    rec_put64(t + 16, w->set_id);
    memcpy(t + 24, REC_TAIL_MAGIC, 8);
    int r = write_all(s->fd, b, fl + REC_TAIL_LEN, s->tmp);
    free(b);
    if (r)
        return -1;
    s->off += fl + REC_TAIL_LEN;
    if (fsync(s->fd) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: fsync of '%s' failed: %s", W, s->tmp, strerror(errno));
        return -1;
    }
    int fd = s->fd;
    s->fd = -1;
    if (close(fd) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: closing '%s' failed: %s", W, s->tmp, strerror(errno));
        return -1;
    }
    s->done = 1;
    return 0;
}

static int meta_put(fern_record_writer *w, sqlite3_stmt *q, const char *k, const void *v, int n, int blob)
{
    sqlite3_reset(q);
    sqlite3_bind_text(q, 1, k, -1, SQLITE_TRANSIENT);
    if (blob)
        sqlite3_bind_blob(q, 2, v, n, SQLITE_TRANSIENT);
    else
        sqlite3_bind_text(q, 2, v, n, SQLITE_TRANSIENT);
    if (sqlite3_step(q) != SQLITE_DONE)
        return db_fail(w, "insert metadata");
    return 0;
}

static int db_finish(fern_record_writer *w)
{
    char sql[512];
    for (int i = 0; i < w->n_index; i++) {
        const char *nm = w->schema.f[w->index_field[i]].name;
        snprintf(sql, sizeof sql, "CREATE INDEX \"idx_%d\" ON rows(", i);
        fern__rec_sql_ident(sql, sizeof sql, nm);
        strcat(sql, ")");
        if (db_exec(w, sql))
            return -1;
    }
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(w->db, "INSERT OR REPLACE INTO meta VALUES(?,?)", -1, &q, NULL) != SQLITE_OK)
        return db_fail(w, "prepare metadata");
    char v[64], idx[FERN_RECORD_MAX_FIELDS * FERN_COL_NAME_MAX + 16] = "";
    unsigned char sch[FERN_RECORD_MAX_FIELDS * (FERN_COL_NAME_MAX + 4 + 8 * FERN_MAX_DIMS) + 2];
    size_t sl = fern__rec_schema_encode(&w->schema, sch);
    for (int i = 0; i < w->n_index; i++) {
        if (i)
            strcat(idx, ",");
        strcat(idx, w->schema.f[w->index_field[i]].name);
    }
    int r = meta_put(w, q, "format", REC_DB_FORMAT, -1, 0);
    snprintf(v, sizeof v, "%d", FERN_RECORD_VERSION);
    r = r || meta_put(w, q, "version", v, -1, 0);
    snprintf(v, sizeof v, "%016llx", (unsigned long long)w->set_id);
    r = r || meta_put(w, q, "set_id", v, -1, 0);
    r = r || meta_put(w, q, "schema", sch, (int)sl, 1);
    snprintf(v, sizeof v, "%lld", (long long)w->rows);
    r = r || meta_put(w, q, "rows", v, -1, 0);
    snprintf(v, sizeof v, "%d", w->nsh);
    r = r || meta_put(w, q, "shards", v, -1, 0);
    r = r || meta_put(w, q, "shard_mode", w->by_count ? "count" : "round_robin", -1, 0);
    snprintf(v, sizeof v, "%lld", (long long)w->rows_per_shard);
    r = r || meta_put(w, q, "rows_per_shard", v, -1, 0);
    snprintf(v, sizeof v, "%zu", w->page_size);
    r = r || meta_put(w, q, "page_size", v, -1, 0);
    r = r || meta_put(w, q, "index_fields", idx, -1, 0);
    for (int i = 0; i < w->nmeta && !r; i++) {
        size_t kl = strlen(w->meta_k[i]) + 6;
        char *k = malloc(kl);
        if (!k) {
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", W);
            r = 1;
            break;
        }
        snprintf(k, kl, "user.%s", w->meta_k[i]);
        r = meta_put(w, q, k, w->meta_v[i], -1, 0);
        free(k);
    }
    sqlite3_finalize(q);
    if (r)
        return -1;
    if (sqlite3_prepare_v2(w->db, "INSERT INTO shards VALUES(?,?,?,?,?)", -1, &q, NULL) != SQLITE_OK)
        return db_fail(w, "prepare shards");
    for (int i = 0; i < w->nsh && !r; i++) {
        const wshard *s = &w->sh[i];
        const char *sl2 = strrchr(s->final, '/');
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, i);
        sqlite3_bind_text(q, 2, sl2 ? sl2 + 1 : s->final, -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(q, 3, (sqlite3_int64)s->rows);
        sqlite3_bind_int64(q, 4, (sqlite3_int64)s->npages);
        sqlite3_bind_int64(q, 5, (sqlite3_int64)s->off);
        if (sqlite3_step(q) != SQLITE_DONE)
            r = db_fail(w, "insert shard");
    }
    sqlite3_finalize(q);
    if (r)
        return -1;
    sqlite3_finalize(w->ins);
    w->ins = NULL;
    if (db_exec(w, "COMMIT"))
        return -1;
    if (sqlite3_close(w->db) != SQLITE_OK) {
        db_fail(w, "close");
        return -1;
    }
    w->db = NULL;
    if (fsync_path(w->db_tmp, 0)) {
        fern_set_error(FERN_ERR_IO, "%s: fsync of '%s' failed: %s", W, w->db_tmp, strerror(errno));
        return -1;
    }
    return 0;
}

/* Shard files of an earlier, larger set at the same path are no longer
 * referenced: remove them (PATH.NNNNN past the last shard, and PATH itself
 * when it holds a record shard but the new set is split). */
static void remove_stale(const fern_record_writer *w)
{
    size_t n = strlen(w->path) + 16;
    char *p = malloc(n);
    if (!p)
        return;
    int single = !w->by_count && w->num_shards == 1; /* then the data file is PATH itself */
    for (int i = single ? 0 : w->nsh; i < REC_MAX_SHARDS; i++) {
        snprintf(p, n, "%s.%05d", w->path, i);
        if (unlink(p) != 0)
            break;
    }
    free(p);
    if (w->by_count || w->num_shards > 1) {
        int fd = open(w->path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            char m[8];
            int is_shard = pread(fd, m, 8, 0) == 8 && memcmp(m, REC_MAGIC, 8) == 0;
            close(fd);
            if (is_shard)
                unlink(w->path);
        }
    }
}

fern_status fern_record_writer_close(fern_record_writer *w)
{
    if (!w) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: writer is NULL", W);
        return fern_last_status();
    }
    if (w->failed) {
        fern_set_error(FERN_ERR_IO, "%s: '%s': an earlier write failed; nothing was written", W, w->path);
        writer_free(w, 1);
        return FERN_ERR_IO;
    }
    if (w->by_count && w->nsh == 0 && shard_open(w, 0)) { /* an empty set still has one shard */
        writer_free(w, 1);
        return fern_last_status();
    }
    for (int i = 0; i < w->nsh; i++)
        if (shard_finish(w, &w->sh[i])) {
            writer_free(w, 1);
            return fern_last_status();
        }
    if (db_finish(w)) {
        writer_free(w, 1);
        return fern_last_status();
    }
    /* shards first, the database (the entry point) last */
    for (int i = 0; i < w->nsh; i++) {
        wshard *s = &w->sh[i];
        if (rename(s->tmp, s->final) != 0) {
            fern_set_error(FERN_ERR_IO, "%s: renaming '%s' to '%s' failed: %s", W, s->tmp, s->final,
                           strerror(errno));
            writer_free(w, 1);
            return FERN_ERR_IO;
        }
        free(s->tmp);
        s->tmp = NULL;
    }
    if (rename(w->db_tmp, w->db_final) != 0) {
        fern_set_error(FERN_ERR_IO, "%s: renaming '%s' to '%s' failed: %s", W, w->db_tmp, w->db_final,
                       strerror(errno));
        writer_free(w, 1);
        return FERN_ERR_IO;
    }
    free(w->db_tmp);
    w->db_tmp = NULL;
    remove_stale(w);
    fsync_path(w->dir, 1);
    writer_free(w, 0);
    return FERN_OK;
}

/* ---- whole datasets ---------------------------------------------------------------------------- */

fern_status fern_record_write_dataset(const char *path, fern_dataset *ds, const fern_record_schema *schema,
                                      const fern_record_writer_opts *opts,
                                      void (*progress)(void *ctx, int64_t rows), void *ctx)
{
    if (!ds) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "record_write_dataset: dataset is NULL");
        return fern_last_status();
    }
    fern_data_iter *it = fern_data_iter_new(ds, NULL);
    fern_dataset_release(ds); /* the iterator keeps its own reference */
    if (!it)
        return fern_last_status() != FERN_OK ? fern_last_status() : FERN_ERR_INTERNAL;
    fern_row *row = fern_row_new();
    fern_record_writer *w = NULL;
    fern_record_schema *own = NULL;
    fern_status st = row ? FERN_OK : FERN_ERR_NOMEM;
    int r = FERN_DATA_END;
    while (st == FERN_OK && (r = fern_data_iter_next(it, row)) == FERN_OK) {
        if (!w) {
            if (!schema && !(schema = own = fern_record_schema_from_row(row))) {
                st = fern_last_status();
                break;
            }
            if (!(w = fern_record_writer_open(path, schema, opts))) {
                st = fern_last_status();
                break;
            }
        }
        st = fern_record_write_row(w, row);
        if (st == FERN_OK && progress && fern_record_writer_rows(w) % 4096 == 0)
            progress(ctx, fern_record_writer_rows(w));
    }
    if (st == FERN_OK && r != FERN_DATA_END)
        st = fern__status_or(r);
    if (st == FERN_OK && !w) { /* no rows */
        if (!schema) {
            fern_set_error(FERN_ERR_INVALID, "record_write_dataset: '%s': the dataset has no rows and no "
                           "schema was given", path);
            st = FERN_ERR_INVALID;
        } else if (!(w = fern_record_writer_open(path, schema, opts)))
            st = fern_last_status();
    }
    int64_t n = w ? fern_record_writer_rows(w) : 0;
    if (st == FERN_OK)
        st = fern_record_writer_close(w);
    else
        fern_record_writer_abort(w);
    if (st == FERN_OK && progress)
        progress(ctx, n);
    fern_record_schema_free(own);
    fern_row_free(row);
    fern_data_iter_free(it);
    return st;
}
