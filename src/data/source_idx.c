/* IDX files (the MNIST format) and the MNIST / Fashion-MNIST source.
 *
 * IDX: two zero bytes, a type byte (0x08 u8, 0x09 i8, 0x0B i16, 0x0C i32,
 * 0x0D f32, 0x0E f64), a dimension count, the dimensions as big-endian
 * u32, then the values big-endian, row major. */
#include <stdlib.h>
#include <string.h>

#include "data_internal.h"

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

fern_tensor *fern__idx_parse(const unsigned char *b, size_t n, const char *name)
{
    if (!name)
        name = "<memory>";
    if (!b && n) {
        fern_set_error(FERN_ERR_INVALID, "idx: %s: bytes are NULL", name);
        return NULL;
    }
    if (n < 4) {
        fern_set_error(FERN_ERR_IO, "idx: %s: truncated header: %zu bytes, the magic needs 4 (byte offset %zu)",
                       name, n, n);
        return NULL;
    }
    if (b[0] != 0 || b[1] != 0) {
        fern_set_error(FERN_ERR_IO, "idx: %s: bad magic at byte offset 0: %02x %02x (expected 00 00)%s",
                       name, b[0], b[1], fern__is_gzip(b, n) ? "; gzip data must be inflated first" : "");
        return NULL;
    }
    fern_dtype dt;
    size_t esz;
    int in_size;
    switch (b[2]) {
    case 0x08: dt = FERN_U8; in_size = 1; break;
    case 0x09: dt = FERN_I8; in_size = 1; break;
    case 0x0B: dt = FERN_I32; in_size = 2; break;
    case 0x0C: dt = FERN_I32; in_size = 4; break;
    case 0x0D: dt = FERN_F32; in_size = 4; break;
    case 0x0E: dt = FERN_F64; in_size = 8; break;
    default:
        fern_set_error(FERN_ERR_IO, "idx: %s: unknown data type 0x%02x at byte offset 2", name, b[2]);
        return NULL;
    }
    esz = fern_dtype_size(dt);
    int nd = b[3];
    if (nd > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_IO, "idx: %s: %d dimensions at byte offset 3 (at most %d)", name, nd,
                       FERN_MAX_DIMS);
        return NULL;
    }
    size_t hdr = 4 + 4 * (size_t)nd;
    if (n < hdr) {
        fern_set_error(FERN_ERR_IO, "idx: %s: truncated header: the %d dimensions need bytes 4..%zu but the "
                       "data ends at byte offset %zu",
                       name, nd, hdr - 1, n);
        return NULL;
    }
    int64_t shape[FERN_MAX_DIMS];
    uint64_t numel = 1, span = 1; /* span: product of max(dim, 1), bounds the strides */
    for (int i = 0; i < nd; i++) {
        shape[i] = be32(b + 4 + 4 * i);
        uint64_t d = shape[i] > 1 ? (uint64_t)shape[i] : 1;
        if (span > ((uint64_t)1 << 40) / d) {
            fern_set_error(FERN_ERR_IO, "idx: %s: dimensions too large (dimension %d at byte offset %d)",
                           name, i, 4 + 4 * i);
            return NULL;
        }
        span *= d;
        numel *= (uint64_t)shape[i];
    }
    uint64_t need = numel * (uint64_t)in_size;
    if ((uint64_t)(n - hdr) < need) {
        fern_set_error(FERN_ERR_IO,
                       "idx: %s: truncated data: %llu values of %d bytes need %llu bytes from byte offset "
                       "%zu, but the data ends at byte offset %zu",
                       name, (unsigned long long)numel, in_size, (unsigned long long)need, hdr, n);
        return NULL;
    }
    if ((uint64_t)(n - hdr) > need) {
        fern_set_error(FERN_ERR_IO, "idx: %s: %llu unexpected bytes after the data, from byte offset %llu",
                       name, (unsigned long long)(n - hdr - need), (unsigned long long)(hdr + need));
        return NULL;
    }
    fern_tensor *t = fern__tensor_alloc(dt, nd, shape, FERN_CPU);
    if (!t)
        return NULL;
    const unsigned char *p = b + hdr;
    char *d = fern_tensor_data(t);
    if (in_size == 1) {
        memcpy(d, p, numel);
    } else if (b[2] == 0x0B) {
        int32_t *o = (int32_t *)d;
        for (uint64_t i = 0; i < numel; i++)
            o[i] = (int16_t)(uint16_t)((p[2 * i] << 8) | p[2 * i + 1]);
    } else if (in_size == 4) {
        uint32_t *o = (uint32_t *)d;
        for (uint64_t i = 0; i < numel; i++)
            o[i] = be32(p + 4 * i);
    } else {
        uint64_t *o = (uint64_t *)d;
        for (uint64_t i = 0; i < numel; i++)
            o[i] = ((uint64_t)be32(p + 8 * i) << 32) | be32(p + 8 * i + 4);
    }
    (void)esz;
    return t;
}

fern_tensor *fern_idx_parse(const void *bytes, size_t n, const char *name)
{
    return fern__scope_register(fern__idx_parse(bytes, n, name));
}

static fern_tensor *idx_read(const char *path)
{
    unsigned char *buf;
    size_t n;
    if (fern__read_file(path, "idx", &buf, &n) || fern__maybe_gunzip(path, "idx", &buf, &n))
        return NULL;
    fern_tensor *t = fern__idx_parse(buf, n, path);
    free(buf);
    return t;
}

fern_tensor *fern_idx_read(const char *path) { return fern__scope_register(idx_read(path)); }

fern_status fern_idx_write(const char *path, const fern_tensor *t)
{
    if (!t || !path) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "idx_write: %s is NULL", t ? "path" : "tensor");
        return fern_last_status();
    }
    int code, sz;
    switch (t->dtype) {
    case FERN_U8: code = 0x08; sz = 1; break;
    case FERN_I8: code = 0x09; sz = 1; break;
    case FERN_I32: code = 0x0C; sz = 4; break;
    case FERN_F32: code = 0x0D; sz = 4; break;
    case FERN_F64: code = 0x0E; sz = 8; break;
    default: {
        char d[64];
        fern_set_error(FERN_ERR_INVALID, "idx_write: %s: IDX has no type for %s", path,
                       fern_tensor_desc(t, d, sizeof d));
        return FERN_ERR_INVALID;
    }
    }
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 0xFFFFFFFFll) {
            fern_set_error(FERN_ERR_INVALID, "idx_write: %s: dimension %d too large", path, i);
            return FERN_ERR_INVALID;
        }
    int64_t numel = fern_tensor_numel(t);
    size_t nb = (size_t)numel * (size_t)sz;
    unsigned char *data = malloc(nb ? nb : 1);
    if (!data) {
        fern_set_error(FERN_ERR_NOMEM, "idx_write: out of memory");
        return FERN_ERR_NOMEM;
    }
    if (fern_tensor_copy_to(t, data, nb) != FERN_OK) {
        free(data);
        return fern_last_status();
    }
    for (int64_t i = 0; sz > 1 && i < numel; i++) {
        unsigned char *q = data + i * sz;
        for (int a = 0, z = sz - 1; a < z; a++, z--) {
            unsigned char c = q[a];
            q[a] = q[z];
            q[z] = c;
        }
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(data);
        fern_set_error(FERN_ERR_IO, "idx_write: cannot create '%s'", path);
        return FERN_ERR_IO;
    }
    unsigned char hdr[4 + 4 * FERN_MAX_DIMS] = {0, 0, (unsigned char)code, (unsigned char)t->ndim};
    for (int i = 0; i < t->ndim; i++) {
        uint32_t v = (uint32_t)t->shape[i];
        hdr[4 + 4 * i] = (unsigned char)(v >> 24);
        hdr[5 + 4 * i] = (unsigned char)(v >> 16);
        hdr[6 + 4 * i] = (unsigned char)(v >> 8);
        hdr[7 + 4 * i] = (unsigned char)v;
    }
    int ok = fwrite(hdr, 1, 4 + 4 * (size_t)t->ndim, f) == 4 + 4 * (size_t)t->ndim &&
             (nb == 0 || fwrite(data, 1, nb, f) == nb);
    ok = (fclose(f) == 0) && ok;
    free(data);
    if (!ok) {
        fern_set_error(FERN_ERR_IO, "idx_write: error writing '%s'", path);
        return FERN_ERR_IO;
    }
    return FERN_OK;
}

/* ---- the MNIST source ---------------------------------------------------------------- */

typedef struct {
    fern_dataset base;
    fern_tensor *images; /* u8 [N,H,W,C] */
    fern_tensor *labels; /* i64 [N] */
} idx_node;

static int idx_get(fern__dstate *st, int64_t i, fern_row *out)
{
    const idx_node *n = (const idx_node *)st->ds;
    fern_tensor *im = fern__slice0(n->images, i);
    fern_tensor *lb = im ? fern__slice0(n->labels, i) : NULL;
    if (!lb) {
        fern_release(im);
        return fern_last_status();
    }
    fern__row_push(out, n->base.cols[0], im);
    fern__row_push(out, n->base.cols[1], lb);
    return FERN_OK;
}

static void state_free(fern__dstate *st) { free(st); }
static const fern__dstate_vt idx_vt = {fern__next_by_get, idx_get, state_free};

static fern__dstate *idx_open(fern_dataset *ds, fern__dctx *ctx, uint64_t salt, uint64_t pass)
{
    return fern__state_new(sizeof(fern__dstate), &idx_vt, ds, ctx, salt, pass);
}

static void idx_destroy(fern_dataset *ds)
{
    idx_node *n = (idx_node *)ds;
    fern_release(n->images);
    fern_release(n->labels);
}

static const fern__dnode_vt idx_node_vt = {"mnist", idx_open, idx_destroy};

fern_dataset *fern_dataset_idx(const char *images_path, const char *labels_path)
{
    fern_tensor *im = idx_read(images_path);
    fern_tensor *lb = im ? idx_read(labels_path) : NULL;
    if (!lb) {
        fern_release(im);
        return NULL;
    }
    char d[64];
    const char *bad = NULL, *which = NULL;
    if (im->dtype != FERN_U8 || im->ndim < 3 || im->ndim > 4)
        bad = "images must be u8 [N,H,W] or [N,H,W,C]", which = images_path;
    else if (!fern_dtype_is_int(lb->dtype) || lb->ndim != 1)
        bad = "labels must be integers [N]", which = labels_path;
    if (bad) {
        fern_set_error(FERN_ERR_IO, "mnist: %s: %s, the file holds %s", which, bad,
                       fern_tensor_desc(which == images_path ? im : lb, d, sizeof d));
        fern_release(im);
        fern_release(lb);
        return NULL;
    }
    if (lb->shape[0] != im->shape[0]) {
        fern_set_error(FERN_ERR_IO, "mnist: %s holds %lld images but %s holds %lld labels", images_path,
                       (long long)im->shape[0], labels_path, (long long)lb->shape[0]);
        fern_release(im);
        fern_release(lb);
        return NULL;
    }
    if (im->ndim == 3) { /* [N,H,W] -> [N,H,W,1]: contiguous, so a header change */
        im->shape[3] = 1;
        im->ndim = 4;
        fern__contiguous_strides(4, im->shape, im->strides);
    }
    int64_t nl = lb->shape[0];
    fern_tensor *l64 = fern__tensor_alloc(FERN_I64, 1, &nl, FERN_CPU);
    if (!l64) {
        fern_release(im);
        fern_release(lb);
        return NULL;
    }
    fern__convert(fern_tensor_data(lb), lb->dtype, fern_tensor_data(l64), FERN_I64, nl);
    fern_release(lb);
    idx_node *n = (idx_node *)fern__dataset_new(sizeof *n, &idx_node_vt, 0, NULL);
    if (!n) {
        fern_release(im);
        fern_release(l64);
        return NULL;
    }
    n->images = im;
    n->labels = l64;
    static const char *const cols[] = {"image", "label"};
    if (fern__dataset_set_cols(&n->base, 2, cols, "mnist")) {
        fern_dataset_release(&n->base);
        return NULL;
    }
    n->base.size = nl;
    n->base.random_access = 1;
    return &n->base;
}

fern_dataset *fern_dataset_mnist(const char *dir, const char *split)
{
    if (!dir || !split) {
        fern_set_error(FERN_ERR_INVALID, "mnist: %s is NULL", dir ? "split" : "dir");
        return NULL;
    }
    const char *pre;
    if (strcmp(split, "train") == 0)
        pre = "train";
    else if (strcmp(split, "test") == 0 || strcmp(split, "t10k") == 0)
        pre = "t10k";
    else {
        fern_set_error(FERN_ERR_INVALID, "mnist: split '%s' is not \"train\" or \"test\"", split);
        return NULL;
    }
    char ip[4096], lp[4096];
    const char *exts[] = {"", ".gz"};
    for (int e = 0; e < 2; e++) {
        snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte%s", dir, pre, exts[e]);
        snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte%s", dir, pre, exts[e]);
        FILE *f = fopen(ip, "rb");
        if (f) {
            fclose(f);
            return fern_dataset_idx(ip, lp);
        }
    }
    fern_set_error(FERN_ERR_IO, "mnist: no %s-images-idx3-ubyte[.gz] in '%s'", pre, dir);
    return NULL;
}
