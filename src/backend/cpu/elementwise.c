/* Shared CPU helpers for elementwise kernels (see elementwise.h). */
#include <string.h>

#include "elementwise.h"

/* ---- result type ------------------------------------------------------- */

static int category(fern_dtype d)
{
    return d == FERN_BOOL ? 0 : fern_dtype_is_float(d) ? 2 : 1;
}

fern_dtype fern_ew_result_type(int n, fern_tensor *const *ts)
{
    int have_dim = 0, have_zero = 0;
    fern_dtype dim = FERN_BOOL, zero = FERN_BOOL;
    for (int i = 0; i < n; i++) {
        const fern_tensor *t = ts[i];
        if (!t)
            continue;
        if (t->ndim > 0) {
            dim = have_dim ? fern_dtype_promote(dim, t->dtype) : t->dtype;
            have_dim = 1;
        } else {
            zero = have_zero ? fern_dtype_promote(zero, t->dtype) : t->dtype;
            have_zero = 1;
        }
    }
    if (!have_dim)
        return zero;
    if (have_zero && category(zero) > category(dim))
        return fern_dtype_promote(dim, zero);
    return dim;
}

/* ---- iteration --------------------------------------------------------- */

static int is_contig(const fern_tensor *t)
{
    int64_t expect = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != expect)
            return 0;
        expect *= t->shape[i];
    }
    return 1;
}

void fern_ew_iter_init(fern_ew_iter *it, int n_ops, const fern_tensor *const *ops)
{
    const fern_tensor *out = ops[0];
    int nd = out->ndim;
    int64_t numel = 1;
    for (int d = 0; d < nd; d++)
        numel *= out->shape[d];
    it->n_ops = n_ops;
    it->numel = numel;
    int simple = 1;
    for (int k = 0; k < n_ops; k++) {
        const fern_tensor *t = ops[k];
        it->data[k] = (char *)t->storage->data + t->offset * (int64_t)fern_dtype_size(t->dtype);
        it->esize[k] = fern_dtype_size(t->dtype);
        if (simple && (fern__numel(t->ndim, t->shape) != numel || !is_contig(t)))
            simple = 0;
    }
    if (simple) {
        /* every operand walks the same contiguous elements: one flat row */
        it->ndim = 1;
        it->shape[0] = numel;
        for (int k = 0; k < n_ops; k++)
            it->strides[k][0] = 1;
        return;
    }
    int o = 0;
    for (int d = 0; d < nd; d++) {
        if (out->shape[d] == 1)
            continue;
        it->shape[o] = out->shape[d];
        for (int k = 0; k < n_ops; k++) {
            const fern_tensor *t = ops[k];
            int td = d - (nd - t->ndim);
            it->strides[k][o] = td < 0 || t->shape[td] == 1 ? 0 : t->strides[td];
        }
        if (o > 0) {
            int merge = 1;
            for (int k = 0; k < n_ops && merge; k++)
                merge = it->strides[k][o - 1] == it->strides[k][o] * it->shape[o];
            if (merge) {
                it->shape[o - 1] *= it->shape[o];
                for (int k = 0; k < n_ops; k++)
                    it->strides[k][o - 1] = it->strides[k][o];
                continue;
            }
        }
        o++;
    }
    if (o == 0) { /* a single element */
        it->shape[0] = 1;
        for (int k = 0; k < n_ops; k++)
            it->strides[k][0] = 0;
        o = 1;
    }
    it->ndim = o;
}

static void walk(const fern_ew_iter *it, fern_ew_row_fn fn, void *ctx, int64_t begin, int64_t end)
{
    const int nd = it->ndim, nk = it->n_ops;
    char *p[FERN_EW_MAX_OPS];
    int64_t is[FERN_EW_MAX_OPS];
    for (int k = 0; k < nk; k++)
        is[k] = it->strides[k][nd - 1];
    if (nd == 1) {
        for (int k = 0; k < nk; k++)
            p[k] = it->data[k] + begin * is[k] * (int64_t)it->esize[k];
        fn(ctx, end - begin, p, is);
        return;
    }
    const int64_t inner = it->shape[nd - 1];
    int64_t row = begin / inner, pos = begin % inner;
    int64_t idx[FERN_MAX_DIMS];
    int64_t bs[FERN_EW_MAX_OPS][FERN_MAX_DIMS]; /* byte strides of the outer dims */
    char *base[FERN_EW_MAX_OPS];
    for (int d = nd - 2; d >= 0; d--) {
        idx[d] = row % it->shape[d];
        row /= it->shape[d];
    }
    for (int k = 0; k < nk; k++) {
        int64_t es = (int64_t)it->esize[k], off = 0;
        for (int d = 0; d < nd - 1; d++) {
            bs[k][d] = it->strides[k][d] * es;
            off += idx[d] * bs[k][d];
        }
        base[k] = it->data[k] + off;
    }
    int64_t cur = begin;
    for (;;) {
        int64_t len = inner - pos;
        if (len > end - cur)
            len = end - cur;
        for (int k = 0; k < nk; k++)
            p[k] = base[k] + pos * is[k] * (int64_t)it->esize[k];
        fn(ctx, len, p, is);
        cur += len;
        if (cur >= end)
            break;
        pos = 0;
        for (int d = nd - 2; d >= 0; d--) {
            for (int k = 0; k < nk; k++)
                base[k] += bs[k][d];
            if (++idx[d] < it->shape[d])
                break;
            for (int k = 0; k < nk; k++)
                base[k] -= it->shape[d] * bs[k][d];
            idx[d] = 0;
        }
    }
}

typedef struct {
    const fern_ew_iter *it;
    fern_ew_row_fn fn;
    void *ctx;
} walk_job;

static void walk_range(void *job_, int64_t begin, int64_t end)
{
    const walk_job *job = job_;
    walk(job->it, job->fn, job->ctx, begin, end);
}

/* Tiled walk for an operand that runs across the output's rows (a
 * transposed or permuted input: its stride along the inner dimension is
 * larger than along the next one). Row by row, such an operand touches a
 * new cache line (and often a new page) per element; in blocks of TILE rows
 * by TILE_C columns each line it brings in serves several rows (tuned on a
 * transposed 1024 x 1024 add: 3.1 ms row by row, 0.85 ms tiled). Work
 * units are blocks of TILE rows of the last two dims (per outer index). */
#define TILE 32
#define TILE_C 16

static int wants_tiles(const fern_ew_iter *it)
{
    int nd = it->ndim;
    if (nd < 2 || it->shape[nd - 1] < TILE_C || it->shape[nd - 2] < 4)
        return 0;
    for (int k = 0; k < it->n_ops; k++) {
        int64_t si = it->strides[k][nd - 1], so = it->strides[k][nd - 2];
        si = si < 0 ? -si : si;
        so = so < 0 ? -so : so;
        if (si > 1 && so < si && (int64_t)it->esize[k] * si >= 64)
            return 1;
    }
    return 0;
}

static void walk_tiles(const fern_ew_iter *it, fern_ew_row_fn fn, void *ctx, int64_t ubegin,
                       int64_t uend)
{
    const int nd = it->ndim, nk = it->n_ops;
    const int64_t rows = it->shape[nd - 2], inner = it->shape[nd - 1];
    const int64_t nblk = (rows + TILE - 1) / TILE;
    int64_t is[FERN_EW_MAX_OPS], rs[FERN_EW_MAX_OPS], cs[FERN_EW_MAX_OPS];
    for (int k = 0; k < nk; k++) {
        is[k] = it->strides[k][nd - 1];
        rs[k] = it->strides[k][nd - 2] * (int64_t)it->esize[k]; /* bytes per row  */
        cs[k] = is[k] * (int64_t)it->esize[k];                  /* bytes per step */
    }
    for (int64_t u = ubegin; u < uend; u++) {
        int64_t outer = u / nblk, r0 = (u % nblk) * TILE;
        int64_t r1 = r0 + TILE < rows ? r0 + TILE : rows;
        char *base[FERN_EW_MAX_OPS];
        for (int k = 0; k < nk; k++)
            base[k] = it->data[k];
        for (int d = nd - 3; d >= 0; d--) {
            int64_t i = outer % it->shape[d];
            outer /= it->shape[d];
            for (int k = 0; k < nk; k++)
                base[k] += i * it->strides[k][d] * (int64_t)it->esize[k];
        }
        for (int64_t j0 = 0; j0 < inner; j0 += TILE_C) {
            int64_t len = inner - j0 < TILE_C ? inner - j0 : TILE_C;
            for (int64_t r = r0; r < r1; r++) {
                char *p[FERN_EW_MAX_OPS];
                for (int k = 0; k < nk; k++)
                    p[k] = base[k] + r * rs[k] + j0 * cs[k];
                fn(ctx, len, p, is);
            }
        }
    }
}

static void tiles_range(void *job_, int64_t begin, int64_t end)
{
    const walk_job *job = job_;
    walk_tiles(job->it, job->fn, job->ctx, begin, end);
}

void fern_ew_run(const fern_ew_iter *it, fern_ew_row_fn fn, void *ctx, int64_t grain)
{
    if (it->numel <= 0)
        return;
    walk_job job = {it, fn, ctx};
    if (wants_tiles(it)) {
        int nd = it->ndim;
        int64_t per_unit = TILE * it->shape[nd - 1];
        int64_t units = it->numel / (it->shape[nd - 2] * it->shape[nd - 1]) *
                        ((it->shape[nd - 2] + TILE - 1) / TILE);
        int64_t ugrain = grain / per_unit > 0 ? grain / per_unit : 1;
        if (it->numel < 2 * grain)
            walk_tiles(it, fn, ctx, 0, units);
        else
            fern_parallel_for(units, ugrain, tiles_range, &job);
        return;
    }
    if (it->numel < 2 * grain) {
        walk(it, fn, ctx, 0, it->numel);
        return;
    }
    fern_parallel_for(it->numel, grain, walk_range, &job);
}

static const int64_t ones[FERN_EW_MAX_OPS] = {1, 1, 1, 1};

void fern_ew_apply(int n_ops, const fern_tensor *const *ops, fern_ew_row_fn fn, void *ctx,
                   int64_t grain)
{
    const fern_tensor *out = ops[0];
    int64_t numel = fern__numel(out->ndim, out->shape);
    if (numel <= 0)
        return;
    if (numel < 2 * grain) {
        /* the common small same-shape call: one flat row, no iterator */
        char *p[FERN_EW_MAX_OPS];
        int k = 0;
        for (; k < n_ops; k++) {
            const fern_tensor *t = ops[k];
            if (fern__numel(t->ndim, t->shape) != numel || !is_contig(t))
                break;
            p[k] = (char *)t->storage->data + t->offset * (int64_t)fern_dtype_size(t->dtype);
        }
        if (k == n_ops) {
            fn(ctx, numel, p, ones);
            return;
        }
    }
    fern_ew_iter it;
    fern_ew_iter_init(&it, n_ops, ops);
    fern_ew_run(&it, fn, ctx, grain);
}

/* ---- conversion -------------------------------------------------------- */

typedef struct {
    fern_dtype sdt, ddt;
} convert_ctx;

/* Contiguous conversion with torch's casts: integers narrow by wrapping
 * (C conversion, as static_cast), integers go straight to float (no double
 * rounding through double), anything to bool is "!= 0". Float to integer
 * and half dtypes go through fern__convert (saturating, nan -> 0). */
#define CV_LOOP(ST, DT, EXPR)                                                                 \
    do {                                                                                      \
        const ST *restrict s_ = (const ST *)src;                                              \
        DT *restrict d_ = (DT *)dst;                                                          \
        for (int64_t i = 0; i < n; i++)                                                       \
            d_[i] = EXPR;                                                                     \
    } while (0)

#define CV_TO(ST)                                                                             \
    switch (ddt) {                                                                            \
    case FERN_F32: CV_LOOP(ST, float, (float)s_[i]); return;                                  \
    case FERN_F64: CV_LOOP(ST, double, (double)s_[i]); return;                                \
    case FERN_I8: CV_LOOP(ST, int8_t, (int8_t)s_[i]); return;                                 \
    case FERN_U8: CV_LOOP(ST, uint8_t, (uint8_t)s_[i]); return;                               \
    case FERN_I32: CV_LOOP(ST, int32_t, (int32_t)s_[i]); return;                              \
    case FERN_I64: CV_LOOP(ST, int64_t, (int64_t)s_[i]); return;                              \
    case FERN_BOOL: CV_LOOP(ST, uint8_t, (uint8_t)(s_[i] != 0)); return;                      \
    default: break;                                                                           \
    }

static void convert_n(const void *src, fern_dtype sdt, void *dst, fern_dtype ddt, int64_t n)
{
    if (sdt == ddt) {
        memcpy(dst, src, (size_t)n * fern_dtype_size(sdt));
        return;
    }
    int to_int = fern_dtype_is_int(ddt);
    switch (sdt) {
    case FERN_I8: CV_TO(int8_t) break;
    case FERN_U8: CV_TO(uint8_t) break;
    case FERN_BOOL: CV_TO(uint8_t) break;
    case FERN_I32: CV_TO(int32_t) break;
    case FERN_I64: CV_TO(int64_t) break;
    case FERN_F32:
        if (!to_int)
            CV_TO(float)
        break;
    case FERN_F64:
        if (!to_int)
            CV_TO(double)
        break;
    default: break;
    }
    fern__convert(src, sdt, dst, ddt, n);
}

#define GATHER_CHUNK 512

static void convert_row(void *ctx_, int64_t n, char *const *p, const int64_t *s)
{
    const convert_ctx *ctx = ctx_;
    size_t ss = fern_dtype_size(ctx->sdt), ds = fern_dtype_size(ctx->ddt);
    char *dst = p[0];
    if (s[1] == 1 && s[0] == 1) {
        convert_n(p[1], ctx->sdt, dst, ctx->ddt, n);
        return;
    }
    /* gather a chunk of strided source elements, convert it, scatter it */
    _Alignas(16) unsigned char sbuf[GATHER_CHUNK * 8], dbuf[GATHER_CHUNK * 8];
    for (int64_t b = 0; b < n; b += GATHER_CHUNK) {
        int64_t m = n - b < GATHER_CHUNK ? n - b : GATHER_CHUNK;
        const char *src = p[1] + b * s[1] * (int64_t)ss;
        switch (ss) {
        case 1:
            for (int64_t i = 0; i < m; i++)
                sbuf[i] = (unsigned char)src[i * s[1]];
            break;
        case 2:
            for (int64_t i = 0; i < m; i++)
                memcpy(sbuf + i * 2, src + i * s[1] * 2, 2);
            break;
        case 4:
            for (int64_t i = 0; i < m; i++)
                memcpy(sbuf + i * 4, src + i * s[1] * 4, 4);
            break;
        default:
            for (int64_t i = 0; i < m; i++)
                memcpy(sbuf + i * 8, src + i * s[1] * 8, 8);
            break;
        }
        if (s[0] == 1) {
            convert_n(sbuf, ctx->sdt, dst + b * (int64_t)ds, ctx->ddt, m);
        } else {
            convert_n(sbuf, ctx->sdt, dbuf, ctx->ddt, m);
            for (int64_t i = 0; i < m; i++)
                memcpy(dst + (b + i) * s[0] * (int64_t)ds, dbuf + i * (int64_t)ds, ds);
        }
    }
}

void fern_ew_convert(const fern_tensor *x, fern_dtype dt, void *dst)
{
    int64_t n = fern__numel(x->ndim, x->shape);
    if (n == 0)
        return;
    fern_tensor d;
    memset(&d, 0, sizeof d);
    fern_storage st;
    memset(&st, 0, sizeof st);
    st.data = dst;
    d.dtype = dt;
    d.ndim = x->ndim;
    memcpy(d.shape, x->shape, sizeof d.shape);
    fern__contiguous_strides(d.ndim, d.shape, d.strides);
    d.storage = &st;
    const fern_tensor *ops[2] = {&d, x};
    fern_ew_iter it;
    fern_ew_iter_init(&it, 2, ops);
    convert_ctx ctx = {x->dtype, dt};
    fern_ew_run(&it, convert_row, &ctx, FERN_EW_GRAIN);
}

const fern_tensor *fern_ew_as_dtype(const fern_tensor *x, fern_dtype dt, fern_ew_temp *tmp)
{
    tmp->buf = NULL;
    tmp->nbytes = 0;
    if (x->dtype == dt)
        return x;
    /* the distinct elements of x: broadcast (zero-stride) dims shrink to 1 */
    fern_tensor *v = &tmp->t;
    memset(v, 0, sizeof *v);
    v->dtype = x->dtype;
    v->ndim = x->ndim;
    v->offset = x->offset;
    v->storage = x->storage;
    for (int d = 0; d < x->ndim; d++) {
        v->shape[d] = x->strides[d] == 0 ? 1 : x->shape[d];
        v->strides[d] = x->strides[d];
    }
    int64_t n = fern__numel(v->ndim, v->shape);
    size_t nbytes = (size_t)n * fern_dtype_size(dt);
    void *data = tmp->small;
    if (nbytes > sizeof tmp->small) {
        data = fern_alloc(FERN_CPU, nbytes);
        if (!data) {
            fern_set_error(FERN_ERR_NOMEM, "elementwise: out of memory for %zu bytes", nbytes);
            return NULL;
        }
        tmp->buf = data;
        tmp->nbytes = nbytes;
    }
    fern_ew_convert(v, dt, data);
    /* turn the header into the converted, contiguous operand */
    memset(&tmp->s, 0, sizeof tmp->s);
    tmp->s.data = data;
    tmp->s.nbytes = nbytes;
    tmp->s.device = FERN_CPU;
    v->dtype = dt;
    v->offset = 0;
    v->storage = &tmp->s;
    fern__contiguous_strides(v->ndim, v->shape, v->strides);
    return v;
}

void fern_ew_temp_free(fern_ew_temp *tmp)
{
    if (tmp->buf)
        fern_free(FERN_CPU, tmp->buf, tmp->nbytes);
    tmp->buf = NULL;
}
