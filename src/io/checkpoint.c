/* Checkpoints: the in-memory set of named tensors and metadata, fern's own
 * file format, atomic writes, and loading state into cells. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "io_internal.h"

typedef struct {
    char *name;
    fern_tensor *t;
} entry;

typedef struct {
    char *key;
    int is_str;
    int64_t i;
    char *s;
} meta;

struct fern_checkpoint {
    entry *e;
    int n, cap;
    meta *m;
    int n_meta, cap_meta;
};

static char *dupstr(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

fern_checkpoint *fern_checkpoint_new(void)
{
    fern_checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck)
        fern_set_error(FERN_ERR_NOMEM, "checkpoint: out of memory");
    return ck;
}

void fern_checkpoint_free(fern_checkpoint *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n; i++) {
        free(ck->e[i].name);
        fern_release(ck->e[i].t);
    }
    for (int i = 0; i < ck->n_meta; i++) {
        free(ck->m[i].key);
        free(ck->m[i].s);
    }
    free(ck->e);
    free(ck->m);
    free(ck);
}

fern_status fern_checkpoint_add(fern_checkpoint *ck, const char *name, fern_tensor *t)
{
    if (!ck || !name || !t) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "checkpoint_add: NULL argument");
        return FERN_ERR_INVALID;
    }
    if (fern_tensor_is_symbolic(t) || fern_tensor_device(t) != FERN_CPU) {
        fern_set_error(FERN_ERR_INVALID, "checkpoint_add: '%s' must be a concrete CPU tensor", name);
        return FERN_ERR_INVALID;
    }
    if (strlen(name) > 65535) {
        fern_set_error(FERN_ERR_INVALID, "checkpoint_add: name is too long");
        return FERN_ERR_INVALID;
    }
    for (int i = 0; i < ck->n; i++)
        if (!strcmp(ck->e[i].name, name)) {
            fern_retain(t);
            fern_release(ck->e[i].t);
            ck->e[i].t = t;
            return FERN_OK;
        }
    if (ck->n == ck->cap) {
        int nc = ck->cap ? ck->cap * 2 : 16;
        entry *ne = realloc(ck->e, (size_t)nc * sizeof *ne);
        if (!ne)
            return FERN_ERR_NOMEM;
        ck->e = ne;
        ck->cap = nc;
    }
    ck->e[ck->n].name = dupstr(name);
    ck->e[ck->n].t = fern_retain(t);
    ck->n++;
    return FERN_OK;
}

fern_tensor *fern_checkpoint_get(const fern_checkpoint *ck, const char *name)
{
    for (int i = 0; ck && i < ck->n; i++)
        if (!strcmp(ck->e[i].name, name))
            return ck->e[i].t;
    return NULL;
}

int fern_checkpoint_count(const fern_checkpoint *ck) { return ck ? ck->n : 0; }
const char *fern_checkpoint_name_at(const fern_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n ? ck->e[i].name : NULL;
}
fern_tensor *fern_checkpoint_tensor_at(const fern_checkpoint *ck, int i)
{
    return ck && i >= 0 && i < ck->n ? ck->e[i].t : NULL;
}

static meta *meta_slot(fern_checkpoint *ck, const char *key)
{
    for (int i = 0; i < ck->n_meta; i++)
        if (!strcmp(ck->m[i].key, key)) {
            free(ck->m[i].s);
            ck->m[i].s = NULL;
            return &ck->m[i];
        }
    if (ck->n_meta == ck->cap_meta) {
        int nc = ck->cap_meta ? ck->cap_meta * 2 : 8;
        meta *nm = realloc(ck->m, (size_t)nc * sizeof *nm);
        if (!nm)
            return NULL;
        ck->m = nm;
        ck->cap_meta = nc;
    }
    meta *m = &ck->m[ck->n_meta++];
    memset(m, 0, sizeof *m);
    m->key = dupstr(key);
    return m;
}

fern_status fern_checkpoint_set_int(fern_checkpoint *ck, const char *key, int64_t v)
{
    if (!ck || !key || strlen(key) > 65535)
        return FERN_ERR_INVALID;
    meta *m = meta_slot(ck, key);
    if (!m)
        return FERN_ERR_NOMEM;
    m->is_str = 0;
    m->i = v;
    return FERN_OK;
}

fern_status fern_checkpoint_set_str(fern_checkpoint *ck, const char *key, const char *v)
{
    if (!ck || !key || !v || strlen(key) > 65535)
        return FERN_ERR_INVALID;
    meta *m = meta_slot(ck, key);
    if (!m)
        return FERN_ERR_NOMEM;
    m->is_str = 1;
    m->s = dupstr(v);
    return FERN_OK;
}

int fern_checkpoint_get_int(const fern_checkpoint *ck, const char *key, int64_t *v)
{
    for (int i = 0; ck && i < ck->n_meta; i++)
        if (!strcmp(ck->m[i].key, key) && !ck->m[i].is_str) {
            *v = ck->m[i].i;
            return 0;
        }
    return -1;
}

const char *fern_checkpoint_get_str(const fern_checkpoint *ck, const char *key)
{
    for (int i = 0; ck && i < ck->n_meta; i++)
        if (!strcmp(ck->m[i].key, key) && ck->m[i].is_str)
            return ck->m[i].s;
    return NULL;
}

/* ---- files ----------------------------------------------------------------- */


fern_status fern__write_file_atomic(const char *who, const char *path, const void *buf, size_t len)
{
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 16);
    char *dircopy = dupstr(path);
    if (!tmp || !dircopy) {
        free(tmp);
        free(dircopy);
        return FERN_ERR_NOMEM;
    }
    snprintf(tmp, pl + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        fern_set_error(FERN_ERR_IO, "%s: cannot create a temporary file next to '%s': %s", who, path,
                       strerror(errno));
        free(tmp);
        free(dircopy);
        return FERN_ERR_IO;
    }
    const unsigned char *p = buf;
    size_t left = len;
    int ok = 1;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            ok = 0;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    int saved_errno = errno;
    if (ok && fsync(fd) != 0)
        ok = 0, saved_errno = errno;
    if (close(fd) != 0 && ok)
        ok = 0, saved_errno = errno;
    if (ok && rename(tmp, path) != 0)
        ok = 0, saved_errno = errno;
    if (!ok) {
        unlink(tmp);
        fern_set_error(FERN_ERR_IO, "%s: writing '%s' failed: %s", who, path, strerror(saved_errno));
    } else {
        int dfd = open(dirname(dircopy), O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) { /* make the rename itself durable */
            fsync(dfd);
            close(dfd);
        }
    }
    free(tmp);
    free(dircopy);
    return ok ? FERN_OK : FERN_ERR_IO;
}

void *fern__tensor_bytes(const fern_tensor *t, size_t *len)
{
    *len = fern_tensor_nbytes(t);
    void *b = malloc(*len ? *len : 1);
    if (!b) {
        fern_set_error(FERN_ERR_NOMEM, "out of memory copying a tensor");
        return NULL;
    }
    if (*len && fern_tensor_copy_to(t, b, *len) != FERN_OK) {
        free(b);
        return NULL;
    }
    return b;
}

/* ---- fern's format ----------------------------------------------------------
 *   0  "FERNCKPT"
 *   8  u32 version (1)      12 u32 header length     16 u32 header CRC-32
 *  20  u32 metadata count   24 u32 tensor count      28 u32 reserved (0)
 *  32  header: metadata entries, then tensor entries
 *      meta:   u16 key length, key, u8 kind (0 int, 1 str), i64 | (u32 length, bytes)
 *      tensor: u16 name length, name, u8 dtype, u8 ndim, i64 shape[ndim],
 *              u64 data offset, u64 byte count, u32 data CRC-32
 *  then each tensor's bytes at a 64-byte aligned offset.                      */

#define MAGIC "FERNCKPT"
#define VERSION 1
#define PREAMBLE 32

typedef struct {
    unsigned char *b;
    size_t n, cap;
    int failed;
} wbuf;

static void wb_put(wbuf *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (w->n + n > w->cap) {
        size_t nc = (w->cap + n) * 2;
        unsigned char *nb = realloc(w->b, nc);
        if (!nb) {
            w->failed = 1;
            return;
        }
        w->b = nb;
        w->cap = nc;
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}

static void wb_le(wbuf *w, uint64_t v, int n)
{
    unsigned char t[8];
    put_le(t, v, n);
    wb_put(w, t, (size_t)n);
}

fern_status fern_checkpoint_save(const fern_checkpoint *ck, const char *path)
{
    if (!ck || !path) {
        fern_set_error(FERN_ERR_INVALID, "checkpoint_save: NULL argument");
        return FERN_ERR_INVALID;
    }
    /* header first, with data offsets computed from its size */
    wbuf h = {0};
    for (int i = 0; i < ck->n_meta; i++) {
        const meta *m = &ck->m[i];
        wb_le(&h, strlen(m->key), 2);
        wb_put(&h, m->key, strlen(m->key));
        wb_le(&h, (uint64_t)m->is_str, 1);
        if (m->is_str) {
            wb_le(&h, strlen(m->s), 4);
            wb_put(&h, m->s, strlen(m->s));
        } else {
            wb_le(&h, (uint64_t)m->i, 8);
        }
    }
    size_t tensors_at = h.n, entry_bytes = 0;
    for (int i = 0; i < ck->n; i++)
        entry_bytes += 2 + strlen(ck->e[i].name) + 2 + 8 * (size_t)fern_tensor_ndim(ck->e[i].t) + 20;
    size_t data_at = (PREAMBLE + tensors_at + entry_bytes + 63) & ~(size_t)63;
    wbuf d = {0};
    size_t off = data_at;
    for (int i = 0; i < ck->n && !h.failed && !d.failed; i++) {
        const fern_tensor *t = ck->e[i].t;
        size_t nb;
        void *bytes = fern__tensor_bytes(t, &nb);
        if (!bytes) {
            free(h.b);
            free(d.b);
            return fern_last_status();
        }
        const char *name = ck->e[i].name;
        wb_le(&h, strlen(name), 2);
        wb_put(&h, name, strlen(name));
        wb_le(&h, (uint64_t)fern_tensor_dtype(t), 1);
        wb_le(&h, (uint64_t)fern_tensor_ndim(t), 1);
        for (int k = 0; k < fern_tensor_ndim(t); k++)
            wb_le(&h, (uint64_t)fern_tensor_shape(t)[k], 8);
        wb_le(&h, off, 8);
        wb_le(&h, nb, 8);
        wb_le(&h, crc32(0L, bytes, (uInt)nb), 4);
        wb_put(&d, bytes, nb);
        free(bytes);
        size_t pad = ((nb + 63) & ~(size_t)63) - nb;
        static const unsigned char zeros[64];
        wb_put(&d, zeros, pad);
        off += nb + pad;
    }
    wbuf f = {0};
    unsigned char pre[PREAMBLE] = {0};
    memcpy(pre, MAGIC, 8);
    put_le(pre + 8, VERSION, 4);
    put_le(pre + 12, h.n, 4);
    put_le(pre + 16, crc32(0L, h.b, (uInt)h.n), 4);
    put_le(pre + 20, (uint64_t)ck->n_meta, 4);
    put_le(pre + 24, (uint64_t)ck->n, 4);
    wb_put(&f, pre, PREAMBLE);
    wb_put(&f, h.b, h.n);
    static const unsigned char zeros[64];
    wb_put(&f, zeros, data_at - PREAMBLE - h.n);
    wb_put(&f, d.b, d.n);
    fern_status st = FERN_ERR_NOMEM;
    if (!h.failed && !d.failed && !f.failed)
        st = fern__write_file_atomic("checkpoint_save", path, f.b, f.n);
    else
        fern_set_error(FERN_ERR_NOMEM, "checkpoint_save: out of memory");
    free(h.b);
    free(d.b);
    free(f.b);
    return st;
}

typedef struct {
    const unsigned char *b;
    size_t n, at;
    const char *path;
    int bad;
} rbuf;

static int rb_need(rbuf *r, size_t k, const char *what)
{
    if (r->bad)
        return 0;
    if (r->at + k > r->n || r->at + k < r->at) {
        fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is truncated: %s at offset %zu needs %zu bytes",
                       r->path, what, r->at, k);
        r->bad = 1;
        return 0;
    }
    return 1;
}

static uint64_t rb_le(rbuf *r, int k, const char *what)
{
    if (!rb_need(r, (size_t)k, what))
        return 0;
    uint64_t v = get_le(r->b + r->at, k);
    r->at += (size_t)k;
    return v;
}

static char *rb_str(rbuf *r, size_t len, const char *what)
{
    if (!rb_need(r, len, what))
        return NULL;
    char *s = malloc(len + 1);
    if (!s) {
        r->bad = 1;
        return NULL;
    }
    memcpy(s, r->b + r->at, len);
    s[len] = '\0';
    r->at += len;
    return s;
}

fern_checkpoint *fern_checkpoint_load(const char *path)
{
    size_t n;
    unsigned char *b;
    if (fern__read_file(path, "checkpoint_load", &b, &n))
        return NULL;
    fern_checkpoint *ck = NULL;
    if (n < PREAMBLE || memcmp(b, MAGIC, 8) != 0) {
        fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is not a fern checkpoint (bad magic at offset 0)", path);
        goto fail;
    }
    uint64_t version = get_le(b + 8, 4), hlen = get_le(b + 12, 4), hcrc = get_le(b + 16, 4);
    uint64_t n_meta = get_le(b + 20, 4), n_t = get_le(b + 24, 4);
    if (version != VERSION) {
        fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' has format version %llu; this fern reads version %d",
                       path, (unsigned long long)version, VERSION);
        goto fail;
    }
    if (PREAMBLE + hlen > n) {
        fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is truncated: header of %llu bytes at offset 32 "
                       "runs past the end of the file (%zu bytes)", path, (unsigned long long)hlen, n);
        goto fail;
    }
    if (crc32(0L, b + PREAMBLE, (uInt)hlen) != hcrc) {
        fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is corrupt: header checksum mismatch (offset 32..%llu)",
                       path, (unsigned long long)(PREAMBLE + hlen));
        goto fail;
    }
    ck = fern_checkpoint_new();
    if (!ck)
        goto fail;
    rbuf r = {b, PREAMBLE + hlen, PREAMBLE, path, 0};
    for (uint64_t i = 0; i < n_meta && !r.bad; i++) {
        char *key = rb_str(&r, (size_t)rb_le(&r, 2, "metadata key length"), "metadata key");
        int kind = (int)rb_le(&r, 1, "metadata kind");
        if (r.bad) {
            free(key);
            break;
        }
        if (kind == 1) {
            char *s = rb_str(&r, (size_t)rb_le(&r, 4, "metadata string length"), "metadata string");
            if (s)
                fern_checkpoint_set_str(ck, key, s);
            free(s);
        } else if (kind == 0) {
            int64_t v = (int64_t)rb_le(&r, 8, "metadata integer");
            if (!r.bad)
                fern_checkpoint_set_int(ck, key, v);
        } else {
            fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is corrupt: unknown metadata kind %d at offset %zu",
                           path, kind, r.at - 1);
            r.bad = 1;
        }
        free(key);
    }
    for (uint64_t i = 0; i < n_t && !r.bad; i++) {
        size_t entry_at = r.at;
        char *name = rb_str(&r, (size_t)rb_le(&r, 2, "tensor name length"), "tensor name");
        uint64_t dt = rb_le(&r, 1, "dtype"), nd = rb_le(&r, 1, "ndim");
        int64_t shape[FERN_MAX_DIMS] = {0};
        int shape_ok = dt < FERN_DTYPE_COUNT && nd <= FERN_MAX_DIMS;
        uint64_t numel = 1;
        for (uint64_t k = 0; shape_ok && k < nd; k++) {
            shape[k] = (int64_t)rb_le(&r, 8, "shape");
            if (shape[k] < 0 || (shape[k] && numel > UINT64_MAX / (uint64_t)shape[k]))
                shape_ok = 0;
            else
                numel *= (uint64_t)shape[k];
        }
        uint64_t off = rb_le(&r, 8, "data offset"), nb = rb_le(&r, 8, "byte count");
        uint64_t crc = rb_le(&r, 4, "data checksum");
        if (r.bad) {
            free(name);
            break;
        }
        if (!shape_ok || numel > UINT64_MAX / 8 || nb != numel * fern_dtype_size((fern_dtype)dt)) {
            fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is corrupt: bad dtype/shape/size for tensor '%s' "
                           "(entry at offset %zu)", path, name, entry_at);
            free(name);
            r.bad = 1;
            break;
        }
        if (off > n || nb > n - off) {
            fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is truncated: data of tensor '%s' at offset %llu "
                           "(%llu bytes) runs past the end of the file (%zu bytes)", path, name,
                           (unsigned long long)off, (unsigned long long)nb, n);
            free(name);
            r.bad = 1;
            break;
        }
        if (crc32(0L, b + off, (uInt)nb) != crc) {
            fern_set_error(FERN_ERR_IO, "checkpoint_load: '%s' is corrupt: checksum mismatch in tensor '%s' "
                           "(data at offset %llu)", path, name, (unsigned long long)off);
            free(name);
            r.bad = 1;
            break;
        }
        fern_tensor *t = fern__tensor_alloc((fern_dtype)dt, (int)nd, shape, FERN_CPU);
        if (!t) {
            free(name);
            r.bad = 1;
            break;
        }
        memcpy(t->storage->data, b + off, nb);
        fern_checkpoint_add(ck, name, t);
        fern_release(t);
        free(name);
    }
    if (r.bad)
        goto fail;
    free(b);
    return ck;
fail:
    fern_checkpoint_free(ck);
    free(b);
    return NULL;
}

/* ---- cells ------------------------------------------------------------------- */

fern_checkpoint *fern_cell_state_dict(const fern_cell *c)
{
    if (!c) {
        fern_set_error(FERN_ERR_INVALID, "cell_state_dict: cell is NULL");
        return NULL;
    }
    fern_checkpoint *ck = fern_checkpoint_new();
    for (int pass = 0; ck && pass < 2; pass++) {
        int n = pass ? fern_cell_buffers(c, NULL, NULL, 0) : fern_cell_parameters(c, NULL, NULL, 0);
        fern_tensor **ts = calloc((size_t)(n ? n : 1), sizeof *ts);
        const char **names = calloc((size_t)(n ? n : 1), sizeof *names);
        if (ts && names) {
            if (pass)
                fern_cell_buffers(c, ts, names, n);
            else
                fern_cell_parameters(c, ts, names, n);
            for (int i = 0; i < n; i++)
                fern_checkpoint_add(ck, names[i], ts[i]);
        }
        free(ts);
        free(names);
    }
    return ck;
}

static void report_add(fern_load_report *r, const char *kind, const char *name)
{
    size_t used = strlen(r->message);
    if (used + strlen(kind) + strlen(name) + 4 < sizeof r->message)
        snprintf(r->message + used, sizeof r->message - used, "%s%s %s", used ? "; " : "", kind, name);
}

fern_status fern_cell_load_state_dict(fern_cell *c, const fern_checkpoint *ck, int strict,
                                      fern_load_report *report)
{
    fern_load_report local;
    fern_load_report *r = report ? report : &local;
    memset(r, 0, sizeof *r);
    if (!c || !ck) {
        fern_set_error(FERN_ERR_INVALID, "cell_load_state_dict: NULL argument");
        return FERN_ERR_INVALID;
    }
    fern_checkpoint *mine = fern_cell_state_dict(c);
    if (!mine)
        return fern_last_status();
    for (int i = 0; i < mine->n; i++) {
        fern_tensor *src = fern_checkpoint_get(ck, mine->e[i].name), *dst = mine->e[i].t;
        if (!src) {
            r->n_missing++;
            report_add(r, "missing", mine->e[i].name);
        } else if (fern_tensor_ndim(src) != fern_tensor_ndim(dst) ||
                   memcmp(fern_tensor_shape(src), fern_tensor_shape(dst),
                          sizeof(int64_t) * (size_t)fern_tensor_ndim(dst)) ||
                   fern_tensor_dtype(src) != fern_tensor_dtype(dst)) {
            char a[96], b[96], msg[320];
            snprintf(msg, sizeof msg, "%s (checkpoint %s, cell %s)", mine->e[i].name,
                     fern_tensor_desc(src, a, sizeof a), fern_tensor_desc(dst, b, sizeof b));
            r->n_mismatched++;
            report_add(r, "mismatched", msg);
        }
    }
    for (int i = 0; i < ck->n; i++)
        if (!fern_checkpoint_get(mine, ck->e[i].name)) {
            r->n_unexpected++;
            report_add(r, "unexpected", ck->e[i].name);
        }
    fern_status st = FERN_OK;
    if (strict && (r->n_missing || r->n_unexpected || r->n_mismatched)) {
        fern_set_error(FERN_ERR_INVALID, "cell_load_state_dict: checkpoint does not match %s: %s",
                       fern_cell_type(c), r->message);
        st = FERN_ERR_INVALID;
    } else {
        for (int i = 0; i < mine->n; i++) {
            fern_tensor *src = fern_checkpoint_get(ck, mine->e[i].name), *dst = mine->e[i].t;
            if (!src || fern_tensor_dtype(src) != fern_tensor_dtype(dst) ||
                fern_tensor_ndim(src) != fern_tensor_ndim(dst) ||
                memcmp(fern_tensor_shape(src), fern_tensor_shape(dst),
                       sizeof(int64_t) * (size_t)fern_tensor_ndim(dst)))
                continue;
            if ((st = fern_tensor_assign(dst, src)) != FERN_OK)
                break;
            r->n_loaded++;
        }
    }
    fern_checkpoint_free(mine);
    return st;
}
