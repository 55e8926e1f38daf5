/* Tensors: reference-counted strided views over reference-counted storage. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Products of dimensions saturate at INT64_MAX instead of overflowing: a
 * shape that large is refused where memory is involved (fern__tensor_alloc),
 * and inference on huge or probed shapes stays defined. */
static int64_t mul_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return (a < 0) != (b < 0) ? INT64_MIN : INT64_MAX;
    return r;
}

int64_t fern__numel(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n = mul_sat(n, shape[i]);
    return n;
}

void fern__contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s = mul_sat(s, shape[i] > 0 ? shape[i] : 1);
    }
}

char *fern__shape_str(int ndim, const int64_t *shape, char *buf, size_t n)
{
    size_t used = 0;
    used += (size_t)snprintf(buf + used, n - used, "[");
    for (int i = 0; i < ndim && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, i ? ",%" PRId64 : "%" PRId64, shape[i]);
    if (used < n)
        snprintf(buf + used, n - used, "]");
    return buf;
}

int fern__norm_axis(const char *op, int axis, int ndim)
{
    int span = ndim ? ndim : 1; /* a 0-d tensor accepts axis 0 and -1, like torch */
    int a = axis < 0 ? axis + span : axis;
    if (a < 0 || a >= span) {
        fern_set_error(FERN_ERR_INVALID, "%s: axis %d is out of range for a %d-d tensor", op,
                       axis, ndim);
        return -1;
    }
    return a;
}

static int check_shape(const char *who, fern_dtype dt, int ndim, const int64_t *shape)
{
    if ((unsigned)dt >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid dtype %d", who, (int)dt);
        return -1;
    }
    if (ndim < 0 || ndim > FERN_MAX_DIMS) {
        fern_set_error(FERN_ERR_INVALID, "%s: ndim %d is outside 0..%d", who, ndim, FERN_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        fern_set_error(FERN_ERR_INVALID, "%s: shape is NULL for ndim %d", who, ndim);
        return -1;
    }
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0) {
            fern_set_error(FERN_ERR_INVALID, "%s: negative dimension %" PRId64 " at axis %d", who,
                           shape[i], i);
            return -1;
        }
    return 0;
}

static atomic_uint_fast64_t next_serial = 1;

uint64_t fern__tensor_serial_next(void) { return atomic_load(&next_serial); }

fern_tensor *fern__tensor_header(fern_dtype dt, int ndim, const int64_t *shape)
{
    fern_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        fern_set_error(FERN_ERR_NOMEM, "tensor: out of memory");
        return NULL;
    }
    atomic_init(&t->refcount, 1);
    t->serial = atomic_fetch_add(&next_serial, 1);
    t->dtype = dt;
    t->ndim = ndim;
    if (ndim)
        memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
    fern__contiguous_strides(ndim, t->shape, t->strides);
    return t;
}

fern_tensor *fern__tensor_alloc(fern_dtype dt, int ndim, const int64_t *shape, fern_device dev)
{
    if (check_shape("empty", dt, ndim, shape))
        return NULL;
    int64_t numel = fern__numel(ndim, shape);
    if (numel > (int64_t)(SIZE_MAX / 2 / fern_dtype_size(dt))) {
        char b[160];
        fern_set_error(FERN_ERR_NOMEM, "tensor: shape %s of %s is too large",
                       fern__shape_str(ndim, shape, b, sizeof b), fern_dtype_name(dt));
        return NULL;
    }
    fern_tensor *t = fern__tensor_header(dt, ndim, shape);
    if (!t)
        return NULL;
    size_t nbytes = (size_t)numel * fern_dtype_size(dt);
    fern_storage *s = malloc(sizeof *s);
    void *data = s ? fern_alloc(dev, nbytes) : NULL;
    if (!data) {
        free(s);
        free(t);
        fern_set_error(FERN_ERR_NOMEM, "tensor: out of memory for %zu bytes", nbytes);
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->nbytes = nbytes;
    s->device = dev;
    s->pooled = 1;
    s->deleter = NULL;
    s->deleter_ctx = NULL;
    t->storage = s;
    return t;
}

fern_tensor *fern__tensor_view(const fern_tensor *base, int ndim, const int64_t *shape,
                               const int64_t *strides, int64_t offset)
{
    fern_tensor *t = fern__tensor_header(base->dtype, ndim, shape);
    if (!t)
        return NULL;
    if (ndim)
        memcpy(t->strides, strides, (size_t)ndim * sizeof(int64_t));
    t->offset = offset;
    t->storage = base->storage;
    if (t->storage)
        atomic_fetch_add(&t->storage->refcount, 1);
    return t;
}

static void storage_release(fern_storage *s)
{
    if (!s || atomic_fetch_sub(&s->refcount, 1) != 1)
        return;
    if (s->pooled)
        fern_free(s->device, s->data, s->nbytes);
    else if (s->deleter)
        s->deleter(s->data, s->deleter_ctx);
    free(s);
}

fern_tensor *fern_retain(fern_tensor *t)
{
    if (t)
        atomic_fetch_add(&t->refcount, 1);
    return t;
}

void fern_release(fern_tensor *t)
{
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1)
        return;
    if (t->autograd && t->autograd_free)
        t->autograd_free(t->autograd);
    storage_release(t->storage);
    free(t);
}

int fern_tensor_refcount(const fern_tensor *t) { return t ? atomic_load(&t->refcount) : 0; }

fern_dtype fern_tensor_dtype(const fern_tensor *t) { return t->dtype; }
int fern_tensor_ndim(const fern_tensor *t) { return t->ndim; }
const int64_t *fern_tensor_shape(const fern_tensor *t) { return t->shape; }
const int64_t *fern_tensor_strides(const fern_tensor *t) { return t->strides; }
int64_t fern_tensor_numel(const fern_tensor *t) { return fern__numel(t->ndim, t->shape); }
size_t fern_tensor_nbytes(const fern_tensor *t)
{
    return (size_t)fern_tensor_numel(t) * fern_dtype_size(t->dtype);
}
fern_device fern_tensor_device(const fern_tensor *t)
{
    return t->storage ? t->storage->device : FERN_CPU;
}
int fern_tensor_is_symbolic(const fern_tensor *t) { return t->storage == NULL; }

int64_t fern_tensor_dim(const fern_tensor *t, int axis)
{
    int a = axis < 0 ? axis + t->ndim : axis;
    return a >= 0 && a < t->ndim ? t->shape[a] : -1;
}

int fern_tensor_is_contiguous(const fern_tensor *t)
{
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect)
            return 0;
        expect *= t->shape[i];
    }
    return 1;
}

void *fern_tensor_data(const fern_tensor *t)
{
    if (!t || !t->storage)
        return NULL;
    return (char *)t->storage->data + t->offset * (int64_t)fern_dtype_size(t->dtype);
}

int fern_tensor_shares_storage(const fern_tensor *a, const fern_tensor *b)
{
    return a && b && a->storage && a->storage == b->storage;
}

fern_tensor *fern_empty(fern_dtype dt, int ndim, const int64_t *shape)
{
    return fern__scope_register(fern__tensor_alloc(dt, ndim, shape, FERN_CPU));
}

fern_tensor *fern_from_data(fern_dtype dt, int ndim, const int64_t *shape, const void *data)
{
    if (!data && ndim >= 0 && shape && fern__numel(ndim, shape) > 0) {
        fern_set_error(FERN_ERR_INVALID, "from_data: data is NULL");
        return NULL;
    }
    fern_tensor *t = fern__tensor_alloc(dt, ndim, shape, FERN_CPU);
    if (!t)
        return NULL;
    if (data)
        memcpy(t->storage->data, data, fern_tensor_nbytes(t));
    return fern__scope_register(t);
}

fern_tensor *fern_from_buffer(fern_dtype dt, int ndim, const int64_t *shape, void *data,
                              void (*deleter)(void *, void *), void *ctx)
{
    if (check_shape("from_buffer", dt, ndim, shape))
        return NULL;
    if (!data) {
        fern_set_error(FERN_ERR_INVALID, "from_buffer: data is NULL");
        return NULL;
    }
    fern_tensor *t = fern__tensor_header(dt, ndim, shape);
    fern_storage *s = t ? malloc(sizeof *s) : NULL;
    if (!s) {
        free(t);
        fern_set_error(FERN_ERR_NOMEM, "from_buffer: out of memory");
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->data = data;
    s->nbytes = fern_tensor_nbytes(t);
    s->device = FERN_CPU;
    s->pooled = 0;
    s->deleter = deleter;
    s->deleter_ctx = ctx;
    t->storage = s;
    return fern__scope_register(t);
}

fern_tensor *fern_scalar(fern_dtype dt, double value)
{
    fern_tensor *t = fern__tensor_alloc(dt, 0, NULL, FERN_CPU);
    if (!t)
        return NULL;
    fern__store(t->storage->data, dt, value);
    return fern__scope_register(t);
}

static int64_t flat_to_offset(const fern_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t n = t->shape[d];
        off += (i % n) * t->strides[d];
        i /= n;
    }
    return off;
}

double fern_tensor_get_flat(const fern_tensor *t, int64_t i)
{
    if (!t || !t->storage || i < 0 || i >= fern_tensor_numel(t))
        return NAN;
    const char *base = fern_tensor_data(t);
    return fern__load(base + flat_to_offset(t, i) * (int64_t)fern_dtype_size(t->dtype), t->dtype);
}

static int index_offset(const fern_tensor *t, const int64_t *index, int64_t *off)
{
    *off = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d]) {
            char sb[96];
            fern_set_error(FERN_ERR_INVALID, "tensor_get: index %" PRId64 " out of range at axis %d of shape %s",
                           index[d], d, fern__shape_str(t->ndim, t->shape, sb, sizeof sb));
            return -1;
        }
        *off += index[d] * t->strides[d];
    }
    return 0;
}

double fern_tensor_get(const fern_tensor *t, const int64_t *index)
{
    int64_t off;
    if (!t || !t->storage || index_offset(t, index, &off))
        return NAN;
    return fern__load((const char *)fern_tensor_data(t) + off * (int64_t)fern_dtype_size(t->dtype),
                      t->dtype);
}

int fern_tensor_set(fern_tensor *t, const int64_t *index, double value)
{
    int64_t off;
    if (!t || !t->storage || index_offset(t, index, &off))
        return -1;
    fern__store((char *)fern_tensor_data(t) + off * (int64_t)fern_dtype_size(t->dtype), t->dtype,
                 value);
    return 0;
}

/* ---- strided copy ------------------------------------------------------ */

typedef struct {
    const fern_tensor *src;
    fern_tensor *dst;
    size_t es;
    int64_t inner;      /* length of the last dim                    */
    int64_t s_in, d_in; /* last-dim strides                          */
} copy_job;

static void copy_rows(void *ctx, int64_t r0, int64_t r1)
{
    copy_job *j = ctx;
    const fern_tensor *s = j->src;
    fern_tensor *d = j->dst;
    int nd = s->ndim;
    const char *sb = fern_tensor_data(s);
    char *db = fern_tensor_data(d);
    for (int64_t r = r0; r < r1; r++) {
        int64_t so = 0, dof = 0, rem = r;
        for (int k = nd - 2; k >= 0; k--) {
            int64_t idx = rem % s->shape[k];
            rem /= s->shape[k];
            so += idx * s->strides[k];
            dof += idx * d->strides[k];
        }
        const char *sp = sb + so * (int64_t)j->es;
        char *dp = db + dof * (int64_t)j->es;
        if (j->s_in == 1 && j->d_in == 1) {
            memcpy(dp, sp, (size_t)j->inner * j->es);
            continue;
        }
        switch (j->es) {
        case 4:
            for (int64_t i = 0; i < j->inner; i++)
                ((uint32_t *)dp)[i * j->d_in] = ((const uint32_t *)sp)[i * j->s_in];
            break;
        case 8:
            for (int64_t i = 0; i < j->inner; i++)
                ((uint64_t *)dp)[i * j->d_in] = ((const uint64_t *)sp)[i * j->s_in];
            break;
        case 2:
            for (int64_t i = 0; i < j->inner; i++)
                ((uint16_t *)dp)[i * j->d_in] = ((const uint16_t *)sp)[i * j->s_in];
            break;
        default:
            for (int64_t i = 0; i < j->inner; i++)
                dp[i * j->d_in] = sp[i * j->s_in];
        }
    }
}

void fern__strided_copy(const fern_tensor *src, fern_tensor *dst)
{
    int64_t n = fern_tensor_numel(src);
    if (n == 0)
        return;
    size_t es = fern_dtype_size(src->dtype);
    if (fern_tensor_is_contiguous(src) && fern_tensor_is_contiguous(dst)) {
        memcpy(fern_tensor_data(dst), fern_tensor_data(src), (size_t)n * es);
        return;
    }
    if (src->ndim == 0) {
        memcpy(fern_tensor_data(dst), fern_tensor_data(src), es);
        return;
    }
    copy_job j = {src, dst, es, src->shape[src->ndim - 1], src->strides[src->ndim - 1],
                  dst->strides[dst->ndim - 1]};
    int64_t rows = n / j.inner;
    fern_parallel_for(rows, j.inner >= 4096 ? 1 : 4096 / j.inner + 1, copy_rows, &j);
}

fern_status fern_tensor_copy_to(const fern_tensor *t, void *dst, size_t dst_bytes)
{
    if (!t || !dst) {
        fern_set_error(FERN_ERR_INVALID, "tensor_copy_to: NULL argument");
        return FERN_ERR_INVALID;
    }
    if (!t->storage) {
        fern_set_error(FERN_ERR_INVALID, "tensor_copy_to: tensor is symbolic (has no data)");
        return FERN_ERR_INVALID;
    }
    if (dst_bytes < fern_tensor_nbytes(t)) {
        fern_set_error(FERN_ERR_INVALID, "tensor_copy_to: buffer of %zu bytes is smaller than %zu",
                       dst_bytes, fern_tensor_nbytes(t));
        return FERN_ERR_INVALID;
    }
    size_t es = fern_dtype_size(t->dtype);
    if ((uintptr_t)dst % es) { /* a packed file layout: go through an aligned buffer */
        size_t nb = fern_tensor_nbytes(t);
        void *aligned = malloc(nb ? nb : 1);
        if (!aligned) {
            fern_set_error(FERN_ERR_NOMEM, "tensor_copy_to: out of memory");
            return FERN_ERR_NOMEM;
        }
        fern_status st = fern_tensor_copy_to(t, aligned, nb);
        memcpy(dst, aligned, nb);
        free(aligned);
        return st;
    }
    fern_tensor tmp = *t; /* describe dst as a contiguous tensor over a fake storage */
    fern_storage st = {.data = dst};
    tmp.storage = &st;
    tmp.offset = 0;
    fern__contiguous_strides(t->ndim, t->shape, tmp.strides);
    fern__strided_copy(t, &tmp);
    return FERN_OK;
}

fern_status fern_tensor_assign(fern_tensor *dst, const fern_tensor *src)
{
    char a[96], b[96];
    if (!dst || !src) {
        fern_set_error(FERN_ERR_INVALID, "assign: NULL argument");
        return FERN_ERR_INVALID;
    }
    if (dst->ndim != src->ndim || memcmp(dst->shape, src->shape, sizeof(int64_t) * (size_t)src->ndim)) {
        fern_set_error(FERN_ERR_INVALID, "assign: shape %s does not match destination %s",
                       fern__shape_str(src->ndim, src->shape, a, sizeof a),
                       fern__shape_str(dst->ndim, dst->shape, b, sizeof b));
        return FERN_ERR_INVALID;
    }
    if (!dst->storage || !src->storage) {
        fern_set_error(FERN_ERR_INVALID, "assign: symbolic tensors have no data");
        return FERN_ERR_INVALID;
    }
    if (dst->dtype == src->dtype) {
        fern__strided_copy(src, dst);
        return FERN_OK;
    }
    int64_t n = fern_tensor_numel(src);
    size_t ss = fern_dtype_size(src->dtype);
    void *tmp = malloc((size_t)(n ? n : 1) * ss);
    void *tmp2 = malloc((size_t)(n ? n : 1) * fern_dtype_size(dst->dtype));
    if (!tmp || !tmp2) {
        free(tmp);
        free(tmp2);
        fern_set_error(FERN_ERR_NOMEM, "assign: out of memory");
        return FERN_ERR_NOMEM;
    }
    fern_tensor_copy_to(src, tmp, (size_t)n * ss);
    fern__convert(tmp, src->dtype, tmp2, dst->dtype, n);
    fern_tensor view = *dst; /* contiguous source view over tmp2 */
    fern_storage st = {.data = tmp2};
    view.storage = &st;
    view.offset = 0;
    fern__contiguous_strides(dst->ndim, dst->shape, view.strides);
    fern__strided_copy(&view, dst);
    free(tmp);
    free(tmp2);
    return FERN_OK;
}

char *fern_tensor_desc(const fern_tensor *t, char *buf, size_t n)
{
    if (!t) {
        snprintf(buf, n, "NULL");
        return buf;
    }
    char sb[128];
    snprintf(buf, n, "%s%s", fern_dtype_name(t->dtype), fern__shape_str(t->ndim, t->shape, sb, sizeof sb));
    return buf;
}

static void print_rec(const fern_tensor *t, int d, int64_t *idx, int indent)
{
    int64_t n = t->shape[d];
    int abbreviate = n > 8;
    printf("[");
    for (int64_t i = 0; i < n; i++) {
        if (abbreviate && i == 3) {
            printf(d == t->ndim - 1 ? "..., " : "...,\n%*s", d == t->ndim - 1 ? 0 : indent + 1, "");
            i = n - 3;
        }
        idx[d] = i;
        if (d == t->ndim - 1) {
            double v = fern_tensor_get(t, idx);
            if (fern_dtype_is_float(t->dtype))
                printf("%.6g", v);
            else
                printf("%.0f", v);
        } else {
            print_rec(t, d + 1, idx, indent + 1);
        }
        if (i + 1 < n)
            printf(d == t->ndim - 1 ? ", " : ",\n%*s", d == t->ndim - 1 ? 0 : indent + 1, "");
    }
    printf("]");
}

void fern_tensor_print(const fern_tensor *t, const char *name)
{
    char desc[160];
    printf("%s%s%s", name ? name : "", name ? " = " : "", fern_tensor_desc(t, desc, sizeof desc));
    if (!t || !t->storage) {
        printf(t ? " (symbolic)\n" : "\n");
        return;
    }
    printf(" ");
    int64_t idx[FERN_MAX_DIMS] = {0};
    if (t->ndim == 0)
        printf("%.6g", fern_tensor_get(t, idx));
    else if (fern_tensor_numel(t) == 0)
        printf("[]");
    else
        print_rec(t, 0, idx, 0);
    printf("\n");
}

const char *fern_version(void) { return "0.1.0"; }
