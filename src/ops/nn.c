/* Neural-network helper ops with torch.nn.functional semantics: dropout,
 * embedding, one_hot, pad and interpolate.
 *
 * dropout is a random op: the public function takes (seed, offset) from the
 * thread's generator; element i keeps its value with probability 1-p using
 * word i%4 of Philox(seed; counter (offset, i/4)), so the mask depends only
 * on (seed, offset, i), never on the thread count. Like torch's
 * native_dropout the op also outputs the boolean keep-mask, which its
 * gradient rule uses: recomputing the mask from (seed, offset) would break
 * in graph mode, where each run draws new seeds for every random node.
 *
 * embedding, one_hot and pad move elements without arithmetic, so they
 * accept every dtype (pad, embedding) and read strided inputs directly.
 * Out-of-range indices are data errors found by the kernels; the error
 * names the first bad position in row-major order. */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"

#define GRAIN_WORK 32768

/* Gradient rules (at the end of the file). */
static int dropout_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int embedding_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int pad_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int interp_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- shared helpers ---------------------------------------------------- */

#define op_err fern__op_error

static int64_t grain_for(int64_t work_per_item)
{
    if (work_per_item < 1)
        work_per_item = 1;
    int64_t g = GRAIN_WORK / work_per_item;
    return g < 1 ? 1 : g;
}

/* Storage offset (in elements) of row-major element i. */
static int64_t flat_offset(const fern_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t s = t->shape[d];
        off += (i % s) * t->strides[d];
        i /= s;
    }
    return off;
}

/* Integer element i (row-major) of an integer tensor with any strides. */
static int64_t load_index(const fern_tensor *t, int contiguous, int64_t i)
{
    int64_t off = contiguous ? i : flat_offset(t, i);
    const void *base = fern_tensor_data(t);
    switch (t->dtype) {
    case FERN_I8: return ((const int8_t *)base)[off];
    case FERN_U8: return ((const uint8_t *)base)[off];
    case FERN_I32: return ((const int32_t *)base)[off];
    case FERN_I64: return ((const int64_t *)base)[off];
    default: return 0;
    }
}

/* Lowest bad position seen by the tasks of a parallel kernel. */
static void atomic_min(atomic_llong *a, int64_t v)
{
    long long cur = atomic_load(a);
    while (v < cur && !atomic_compare_exchange_weak(a, &cur, (long long)v))
        ;
}

/* ---- dropout ----------------------------------------------------------- */

static const fern_attr_spec dropout_attrs[] = {{"p", FERN_ATTR_FLOAT, 0.5, NULL},
                                               {"training", FERN_ATTR_INT, 1, NULL},
                                               {"seed", FERN_ATTR_INT, 0, NULL},
                                               {"offset", FERN_ATTR_INT, 0, NULL}};

static int dropout_check(const fern_op_call *c, const fern_tensor *x, double p)
{
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float tensor");
    if (!(p >= 0.0 && p <= 1.0))
        return op_err(c, "dropout probability has to be between 0 and 1, but got %g", p);
    return 0;
}

static int dropout_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    if (dropout_check(c, x, c->attrs[0].f))
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    fern__set_out(c, 1, FERN_BOOL, x->ndim, x->shape);
    return 0;
}

typedef struct {
    const void *x;
    void *y;
    uint8_t *mask;
    int64_t n;
    uint64_t seed, offset, thr; /* keep element iff its 32-bit word >= thr */
    double scale;
} dropout_job;

#define PH_LANES 32 /* Philox counters evaluated side by side (vectorizes; fewer would be fully
                       unrolled and stay scalar) */

/* fern__philox for the PH_LANES counters (hi, lo0 + k): the same
 * Philox4x32-10, written lane-wise so the compiler vectorizes the rounds.
 * w[j][k] is word j of counter lo0 + k. */
static void philox_lanes(uint64_t key, uint64_t hi, uint64_t lo0, uint32_t w[4][PH_LANES])
{
    uint32_t c0[PH_LANES], c1[PH_LANES], c2[PH_LANES], c3[PH_LANES];
    for (int k = 0; k < PH_LANES; k++) {
        uint64_t lo = lo0 + (uint64_t)k;
        c0[k] = (uint32_t)lo;
        c1[k] = (uint32_t)(lo >> 32);
        c2[k] = (uint32_t)hi;
        c3[k] = (uint32_t)(hi >> 32);
    }
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        for (int k = 0; k < PH_LANES; k++) {
            uint64_t p0 = (uint64_t)0xD2511F53u * c0[k];
            uint64_t p1 = (uint64_t)0xCD9E8D57u * c2[k];
            uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[k] ^ k0;
            uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3[k] ^ k1;
            c1[k] = (uint32_t)p1;
            c3[k] = (uint32_t)p0;
            c0[k] = n0;
            c2[k] = n2;
        }
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    for (int k = 0; k < PH_LANES; k++) {
        w[0][k] = c0[k];
        w[1][k] = c1[k];
        w[2][k] = c2[k];
        w[3][k] = c3[k];
    }
}

/* Element i uses word i % 4 of counter (offset, i / 4); a task handles
 * groups of PH_LANES counters = 4 * PH_LANES elements. */
#define DEF_DROPOUT(T, S)                                                                      \
    static void dropout_groups_##S(void *ctx, int64_t g0, int64_t g1)                          \
    {                                                                                          \
        const dropout_job *j = ctx;                                                            \
        const T *x = j->x;                                                                     \
        T *y = j->y, sc = (T)j->scale;                                                         \
        uint8_t *mk = j->mask;                                                                 \
        uint32_t w[4][PH_LANES];                                                               \
        for (int64_t g = g0; g < g1; g++) {                                                    \
            philox_lanes(j->seed, j->offset, (uint64_t)(g * PH_LANES), w);                     \
            int64_t i0 = g * 4 * PH_LANES;                                                     \
            if (i0 + 4 * PH_LANES <= j->n) {                                                   \
                for (int k = 0; k < PH_LANES; k++)                                             \
                    for (int q = 0; q < 4; q++) {                                              \
                        int64_t i = i0 + 4 * k + q;                                            \
                        int keep = (uint64_t)w[q][k] >= j->thr;                                \
                        y[i] = keep ? x[i] * sc : (T)0;                                        \
                        mk[i] = (uint8_t)keep;                                                 \
                    }                                                                          \
                continue;                                                                      \
            }                                                                                  \
            for (int64_t i = i0; i < j->n; i++) {                                              \
                uint32_t v = w[(i - i0) % 4][(i - i0) / 4];                                    \
                int keep = (uint64_t)v >= j->thr;                                              \
                y[i] = keep ? x[i] * sc : (T)0;                                                \
                mk[i] = (uint8_t)keep;                                                         \
            }                                                                                  \
        }                                                                                      \
    }

DEF_DROPOUT(float, f32)
DEF_DROPOUT(double, f64)

static int dropout_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    double p = c->attrs[0].f;
    int64_t n = fern_tensor_numel(x);
    size_t es = fern_dtype_size(x->dtype);
    uint8_t *mask = fern_tensor_data(c->out[1]);
    if (!c->attrs[1].i || p == 0.0) {
        memcpy(fern_tensor_data(c->out[0]), fern_tensor_data(x), (size_t)n * es);
        memset(mask, 1, (size_t)n);
        return 0;
    }
    if (p == 1.0) {
        memset(fern_tensor_data(c->out[0]), 0, (size_t)n * es);
        memset(mask, 0, (size_t)n);
        return 0;
    }
    dropout_job j = {fern_tensor_data(x), fern_tensor_data(c->out[0]), mask, n,
                     (uint64_t)c->attrs[2].i, (uint64_t)c->attrs[3].i,
                     (uint64_t)ceil(p * 4294967296.0), 1.0 / (1.0 - p)};
    int64_t per = 4 * PH_LANES;
    fern_parallel_for((n + per - 1) / per, 8192 / per,
                      x->dtype == FERN_F64 ? dropout_groups_f64 : dropout_groups_f32, &j);
    return 0;
}

static const fern_op_def op_dropout = {
    .name = "dropout", .n_inputs = 1, .n_outputs = 2, .attrs = dropout_attrs, .n_attrs = 4,
    .infer = dropout_infer, .kernel = {[FERN_CPU] = dropout_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_RANDOM,
    .doc = "zero with probability p, scale the rest by 1/(1-p) when training (Philox mask); "
           "outputs y and the bool keep-mask",
    .grad = dropout_grad};

fern_tensor *fern_dropout(fern_tensor *x, double p, int training)
{
    if (!x) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "dropout: input 0 is NULL");
        return NULL;
    }
    if (!training || p == 0.0) {
        /* identity: validate like the op, then hand back x's values */
        fern_op_call probe = {.op = &op_dropout, .n_in = 1, .in = &x};
        if (dropout_check(&probe, x, p))
            return NULL;
        return fern_contiguous(x);
    }
    uint64_t seed = 0, offset = 0;
    if (p > 0.0 && p < 1.0)
        fern__rng_next(&seed, &offset);
    fern_attr a[4] = {fern__attr_float(p), fern__attr_int(1), fern__attr_int((int64_t)seed),
                      fern__attr_int((int64_t)offset)};
    fern_tensor *out[2] = {NULL, NULL};
    fern_scope_begin(); /* the mask dies here unless a tape keeps it */
    if (fern__op_run(&op_dropout, 1, &x, a, 2, out) == 0)
        fern_keep(out[0]);
    fern_scope_end();
    return out[0];
}

/* ---- embedding --------------------------------------------------------- */

static int embedding_infer(fern_op_call *c)
{
    const fern_tensor *w = c->in[0], *idx = c->in[1];
    if (w->ndim != 2)
        return op_err(c, "weight must be 2-d (num_embeddings, dim), got %d dims", w->ndim);
    if (!fern_dtype_is_int(idx->dtype))
        return fern__err_dtype(c, idx, "indices must be an integer tensor");
    if (idx->ndim + 1 > FERN_MAX_DIMS)
        return op_err(c, "indices have too many dims for a %d-d result", idx->ndim + 1);
    fern__set_out(c, 0, w->dtype, idx->ndim, idx->shape);
    c->out_ndim[0] = idx->ndim + 1;
    c->out_shape[0][idx->ndim] = w->shape[1];
    return 0;
}

typedef struct {
    const fern_tensor *w, *idx;
    void *y;
    int idx_contig;
    atomic_llong bad;
} emb_job;

static void emb_rows(void *ctx, int64_t m0, int64_t m1)
{
    emb_job *j = ctx;
    const fern_tensor *w = j->w;
    int64_t num = w->shape[0], dim = w->shape[1], s0 = w->strides[0], s1 = w->strides[1];
    size_t es = fern_dtype_size(w->dtype);
    const char *wb = fern_tensor_data(w);
    char *y = j->y;
    for (int64_t m = m0; m < m1; m++) {
        int64_t v = load_index(j->idx, j->idx_contig, m);
        char *dst = y + (size_t)(m * dim) * es;
        if (v < 0 || v >= num) {
            atomic_min(&j->bad, m);
            continue;
        }
        const char *src = wb + (size_t)(v * s0) * es;
        if (s1 == 1) {
            memcpy(dst, src, (size_t)dim * es);
            continue;
        }
        switch (es) {
        case 1:
            for (int64_t k = 0; k < dim; k++)
                ((uint8_t *)dst)[k] = ((const uint8_t *)src)[k * s1];
            break;
        case 2:
            for (int64_t k = 0; k < dim; k++)
                ((uint16_t *)dst)[k] = ((const uint16_t *)src)[k * s1];
            break;
        case 4:
            for (int64_t k = 0; k < dim; k++)
                ((uint32_t *)dst)[k] = ((const uint32_t *)src)[k * s1];
            break;
        default:
            for (int64_t k = 0; k < dim; k++)
                ((uint64_t *)dst)[k] = ((const uint64_t *)src)[k * s1];
            break;
        }
    }
}

static int embedding_kernel(fern_op_call *c)
{
    const fern_tensor *idx = c->in[1];
    emb_job j = {c->in[0], idx, fern_tensor_data(c->out[0]), fern_tensor_is_contiguous(idx),
                 INT64_MAX};
    int64_t m = fern_tensor_numel(idx);
    fern_parallel_for(m, grain_for(c->in[0]->shape[1] + 8), emb_rows, &j);
    int64_t bad = atomic_load(&j.bad);
    if (bad != INT64_MAX)
        return op_err(c, "index %lld (at flat position %lld of indices) is out of range for "
                         "%lld embeddings",
                      (long long)load_index(idx, j.idx_contig, bad), (long long)bad,
                      (long long)c->in[0]->shape[0]);
    return 0;
}

static const fern_op_def op_embedding = {
    .name = "embedding", .n_inputs = 2, .n_outputs = 1, .infer = embedding_infer,
    .kernel = {[FERN_CPU] = embedding_kernel}, .dtypes = FERN_DT_ALL, .dtype_arg = 0,
    .doc = "rows of weight (num, dim) picked by integer indices -> (..., dim)",
    .grad = embedding_grad};

fern_tensor *fern_embedding(fern_tensor *weight, fern_tensor *indices)
{
    fern_tensor *in[2] = {weight, indices};
    return fern__op1(&op_embedding, 2, in, NULL);
}

/* ---- one_hot ----------------------------------------------------------- */

static const fern_attr_spec one_hot_attrs[] = {{"num_classes", FERN_ATTR_INT, -1, NULL},
                                               {"dtype", FERN_ATTR_DTYPE, FERN_I64, NULL}};

static int one_hot_infer(fern_op_call *c)
{
    const fern_tensor *idx = c->in[0];
    int64_t k = c->attrs[0].i, dt = c->attrs[1].i;
    if (!fern_dtype_is_int(idx->dtype))
        return fern__err_dtype(c, idx, "indices must be an integer tensor");
    if (k < 1)
        return op_err(c, "num_classes must be positive, got %lld (inferring it from the data "
                         "is not supported)",
                      (long long)k);
    if (dt < 0 || dt >= FERN_DTYPE_COUNT)
        return op_err(c, "invalid dtype %lld", (long long)dt);
    if (idx->ndim + 1 > FERN_MAX_DIMS)
        return op_err(c, "indices have too many dims for a %d-d result", idx->ndim + 1);
    fern__set_out(c, 0, (fern_dtype)dt, idx->ndim, idx->shape);
    c->out_ndim[0] = idx->ndim + 1;
    c->out_shape[0][idx->ndim] = k;
    return 0;
}

typedef struct {
    const fern_tensor *idx;
    void *y;
    fern_dtype dt;
    int64_t k;
    int contig;
    atomic_llong bad;
} oh_job;

static void oh_rows(void *ctx, int64_t m0, int64_t m1)
{
    oh_job *j = ctx;
    size_t es = fern_dtype_size(j->dt);
    char *y = j->y;
    memset(y + (size_t)(m0 * j->k) * es, 0, (size_t)((m1 - m0) * j->k) * es);
    for (int64_t m = m0; m < m1; m++) {
        int64_t v = load_index(j->idx, j->contig, m);
        if (v < 0 || v >= j->k) {
            atomic_min(&j->bad, m);
            continue;
        }
        void *p = y + (size_t)(m * j->k + v) * es;
        switch (j->dt) {
        case FERN_F32: *(float *)p = 1.0f; break;
        case FERN_F64: *(double *)p = 1.0; break;
        case FERN_I32: *(int32_t *)p = 1; break;
        case FERN_I64: *(int64_t *)p = 1; break;
        default: fern__store(p, j->dt, 1.0); break;
        }
    }
}

static int one_hot_kernel(fern_op_call *c)
{
    const fern_tensor *idx = c->in[0];
    oh_job j = {idx, fern_tensor_data(c->out[0]), c->out[0]->dtype, c->attrs[0].i,
                fern_tensor_is_contiguous(idx), INT64_MAX};
    fern_parallel_for(fern_tensor_numel(idx), grain_for(j.k + 8), oh_rows, &j);
    int64_t bad = atomic_load(&j.bad);
    if (bad != INT64_MAX)
        return op_err(c, "class value %lld (at flat position %lld) is out of range for "
                         "num_classes %lld",
                      (long long)load_index(idx, j.contig, bad), (long long)bad, (long long)j.k);
    return 0;
}

static const fern_op_def op_one_hot = {
    .name = "one_hot", .n_inputs = 1, .n_outputs = 1, .attrs = one_hot_attrs, .n_attrs = 2,
    .infer = one_hot_infer, .kernel = {[FERN_CPU] = one_hot_kernel}, .dtypes = FERN_DT_INT,
    .flags = FERN_OPF_NONDIFF, .doc = "integer indices -> (..., num_classes) of 0/1 in dtype"};

fern_tensor *fern_one_hot(fern_tensor *indices, int64_t num_classes, fern_dtype dt)
{
    fern_attr a[2] = {fern__attr_int(num_classes), fern__attr_dtype(dt)};
    return fern__op1(&op_one_hot, 1, &indices, a);
}

/* ---- pad --------------------------------------------------------------- */

static const fern_attr_spec pad_attrs[] = {{"pads", FERN_ATTR_INTS, 0, NULL},
                                           {"mode", FERN_ATTR_INT, FERN_PAD_CONSTANT, NULL},
                                           {"value", FERN_ATTR_FLOAT, 0, NULL}};

static const char *pad_mode_name(int64_t m)
{
    return m == FERN_PAD_CONSTANT ? "constant" : m == FERN_PAD_REFLECT ? "reflect" : "replicate";
}

/* before/after padding of dim d (zero for dims the pads do not reach). */
static void pad_amounts(const fern_attr *pads, int ndim, int d, int64_t *before, int64_t *after)
{
    int k = ndim - 1 - d; /* pads[2k], pads[2k+1] pad dim ndim-1-k */
    *before = *after = 0;
    if (2 * k + 1 < pads->n) {
        *before = pads->ints[2 * k];
        *after = pads->ints[2 * k + 1];
    }
}

static int pad_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    const fern_attr *pads = &c->attrs[0];
    int64_t mode = c->attrs[1].i;
    if (mode < FERN_PAD_CONSTANT || mode > FERN_PAD_REPLICATE)
        return op_err(c, "mode must be 0 (constant), 1 (reflect) or 2 (replicate), got %lld",
                      (long long)mode);
    if (pads->n % 2 || pads->n > 2 * x->ndim)
        return op_err(c, "pads must have an even length of at most 2*ndim = %d, got %d",
                      2 * x->ndim, pads->n);
    c->out_dtype[0] = x->dtype;
    c->out_ndim[0] = x->ndim;
    for (int d = 0; d < x->ndim; d++) {
        int64_t b, a, n = x->shape[d];
        pad_amounts(pads, x->ndim, d, &b, &a);
        if (mode != FERN_PAD_CONSTANT) {
            if (b < 0 || a < 0)
                return op_err(c, "negative padding (%lld, %lld) on dim %d is only supported in "
                                 "constant mode, not %s",
                              (long long)b, (long long)a, d, pad_mode_name(mode));
            if ((b || a) && n == 0)
                return op_err(c, "cannot %s-pad dim %d of size 0", pad_mode_name(mode), d);
            if (mode == FERN_PAD_REFLECT && (b >= n || a >= n))
                return op_err(c, "reflect padding (%lld, %lld) on dim %d must be less than the "
                                 "dim size %lld",
                              (long long)b, (long long)a, d, (long long)n);
        }
        int64_t o = n + b + a;
        if (o < 0)
            return op_err(c, "padding (%lld, %lld) on dim %d of size %lld gives a negative size",
                          (long long)b, (long long)a, d, (long long)n);
        c->out_shape[0][d] = o;
    }
    return 0;
}

/* Source index of output position o, or -1 for the constant fill. */
static inline int64_t pad_map(int64_t o, int64_t before, int64_t n, int mode)
{
    int64_t i = o - before;
    if (i >= 0 && i < n)
        return i;
    if (mode == FERN_PAD_CONSTANT)
        return -1;
    if (mode == FERN_PAD_REPLICATE)
        return i < 0 ? 0 : n - 1;
    return i < 0 ? -i : 2 * (n - 1) - i; /* reflect: pad < n, one bounce */
}

typedef struct {
    const fern_tensor *x;
    void *y;
    int nd, mode;
    int64_t before[FERN_MAX_DIMS], oshape[FERN_MAX_DIMS];
    uint64_t fill; /* the fill value's bytes in x's dtype */
} pad_job;

#define DEF_PAD_ROW(U)                                                                         \
    static void pad_row_##U(U *restrict y, const U *restrict x, int64_t sx, int64_t n,         \
                            int64_t before, int64_t no, int mode, U fill)                      \
    {                                                                                          \
        int64_t lo = before > 0 ? before : 0, hi = before + n;                                 \
        if (lo > no)                                                                           \
            lo = no;                                                                           \
        if (hi > no)                                                                           \
            hi = no;                                                                           \
        if (hi < lo)                                                                           \
            hi = lo;                                                                           \
        for (int64_t o = 0; o < lo; o++) {                                                     \
            int64_t i = pad_map(o, before, n, mode);                                           \
            y[o] = i < 0 ? fill : x[i * sx];                                                   \
        }                                                                                      \
        if (sx == 1)                                                                           \
            memcpy(y + lo, x + (lo - before), (size_t)(hi - lo) * sizeof(U));                  \
        else                                                                                   \
            for (int64_t o = lo; o < hi; o++)                                                  \
                y[o] = x[(o - before) * sx];                                                   \
        for (int64_t o = hi; o < no; o++) {                                                    \
            int64_t i = pad_map(o, before, n, mode);                                           \
            y[o] = i < 0 ? fill : x[i * sx];                                                   \
        }                                                                                      \
    }                                                                                          \
    static void pad_fill_##U(U *restrict y, int64_t no, U fill)                                \
    {                                                                                          \
        for (int64_t o = 0; o < no; o++)                                                       \
            y[o] = fill;                                                                       \
    }

DEF_PAD_ROW(uint8_t)
DEF_PAD_ROW(uint16_t)
DEF_PAD_ROW(uint32_t)
DEF_PAD_ROW(uint64_t)

static void pad_rows(void *ctx, int64_t r0, int64_t r1)
{
    const pad_job *j = ctx;
    const fern_tensor *x = j->x;
    int nd = j->nd, last = nd - 1;
    size_t es = fern_dtype_size(x->dtype);
    int64_t no = j->oshape[last], n = x->shape[last], sx = x->strides[last];
    const char *xb = fern_tensor_data(x);
    for (int64_t r = r0; r < r1; r++) {
        int64_t rem = r, off = 0;
        int outside = 0;
        for (int d = last - 1; d >= 0; d--) {
            int64_t o = rem % j->oshape[d];
            rem /= j->oshape[d];
            int64_t i = pad_map(o, j->before[d], x->shape[d], j->mode);
            if (i < 0)
                outside = 1;
            else
                off += i * x->strides[d];
        }
        char *y = (char *)j->y + (size_t)(r * no) * es;
        const char *src = xb + (ptrdiff_t)off * (ptrdiff_t)es;
        switch (es) {
        case 1:
            if (outside)
                pad_fill_uint8_t((uint8_t *)y, no, (uint8_t)j->fill);
            else
                pad_row_uint8_t((uint8_t *)y, (const uint8_t *)src, sx, n, j->before[last], no,
                                j->mode, (uint8_t)j->fill);
            break;
        case 2:
            if (outside)
                pad_fill_uint16_t((uint16_t *)y, no, (uint16_t)j->fill);
            else
                pad_row_uint16_t((uint16_t *)y, (const uint16_t *)src, sx, n, j->before[last],
                                 no, j->mode, (uint16_t)j->fill);
            break;
        case 4:
            if (outside)
                pad_fill_uint32_t((uint32_t *)y, no, (uint32_t)j->fill);
            else
                pad_row_uint32_t((uint32_t *)y, (const uint32_t *)src, sx, n, j->before[last],
                                 no, j->mode, (uint32_t)j->fill);
            break;
        default:
            if (outside)
                pad_fill_uint64_t((uint64_t *)y, no, j->fill);
            else
                pad_row_uint64_t((uint64_t *)y, (const uint64_t *)src, sx, n, j->before[last],
                                 no, j->mode, j->fill);
            break;
        }
    }
}

static int pad_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    size_t es = fern_dtype_size(x->dtype);
    if (x->ndim == 0) {
        memcpy(fern_tensor_data(c->out[0]), fern_tensor_data(x), es);
        return 0;
    }
    pad_job j;
    memset(&j, 0, sizeof j);
    j.x = x;
    j.y = fern_tensor_data(c->out[0]);
    j.nd = x->ndim;
    j.mode = (int)c->attrs[1].i;
    for (int d = 0; d < x->ndim; d++) {
        int64_t a;
        pad_amounts(&c->attrs[0], x->ndim, d, &j.before[d], &a);
        j.oshape[d] = c->out_shape[0][d];
    }
    unsigned char fb[8] = {0};
    fern__store(fb, x->dtype, c->attrs[2].f);
    switch (es) { /* the fill's bit pattern, read back at its own width */
    case 1: j.fill = fb[0]; break;
    case 2: { uint16_t v; memcpy(&v, fb, 2); j.fill = v; break; }
    case 4: { uint32_t v; memcpy(&v, fb, 4); j.fill = v; break; }
    default: memcpy(&j.fill, fb, 8); break;
    }
    int64_t no = j.oshape[x->ndim - 1];
    int64_t rows = fern_tensor_numel(c->out[0]) / (no ? no : 1);
    fern_parallel_for(rows, grain_for(no + 16), pad_rows, &j);
    return 0;
}

static const fern_op_def op_pad = {
    .name = "pad", .n_inputs = 1, .n_outputs = 1, .attrs = pad_attrs, .n_attrs = 3,
    .infer = pad_infer, .kernel = {[FERN_CPU] = pad_kernel}, .dtypes = FERN_DT_ALL,
    .doc = "torch-order pads (last_begin, last_end, ...); mode 0 constant, 1 reflect, 2 replicate",
    .grad = pad_grad};

fern_tensor *fern_pad(fern_tensor *x, const int64_t *pads, int n_pads, fern_pad_mode mode,
                      double value)
{
    if (n_pads < 0 || n_pads > FERN_ATTR_MAX_VALUES || (n_pads && !pads)) {
        fern_set_error(FERN_ERR_INVALID, "pad: invalid number of pads %d", n_pads);
        return NULL;
    }
    fern_attr a[3] = {fern__attr_ints(pads, n_pads), fern__attr_int(mode),
                      fern__attr_float(value)};
    return fern__op1(&op_pad, 1, &x, a);
}

/* ---- interpolate ------------------------------------------------------- */

static const fern_attr_spec interp_attrs[] = {{"out_h", FERN_ATTR_INT, 1, NULL},
                                              {"out_w", FERN_ATTR_INT, 1, NULL},
                                              {"mode", FERN_ATTR_INT, FERN_INTERP_NEAREST, NULL},
                                              {"align_corners", FERN_ATTR_INT, 0, NULL}};

static int interp_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t oh = c->attrs[0].i, ow = c->attrs[1].i, mode = c->attrs[2].i;
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float tensor");
    if (x->ndim != 4)
        return op_err(c, "expected a 4-d input (N, C, H, W), got %d dims", x->ndim);
    if (mode != FERN_INTERP_NEAREST && mode != FERN_INTERP_BILINEAR)
        return op_err(c, "mode must be 0 (nearest) or 1 (bilinear), got %lld", (long long)mode);
    if (mode == FERN_INTERP_NEAREST && c->attrs[3].i)
        return op_err(c, "align_corners can only be set with the bilinear mode");
    if (oh < 1 || ow < 1 || x->shape[2] < 1 || x->shape[3] < 1)
        return op_err(c, "input and output sizes should be greater than 0, got input (%lld, "
                         "%lld) and output (%lld, %lld)",
                      (long long)x->shape[2], (long long)x->shape[3], (long long)oh,
                      (long long)ow);
    int64_t shape[4] = {x->shape[0], x->shape[1], oh, ow};
    fern__set_out(c, 0, x->dtype, 4, shape);
    return 0;
}

typedef struct {
    const void *x;
    void *y;
    int64_t H, W, OH, OW;
    const int64_t *h0, *h1, *w0, *w1;
    const void *lh0, *lh1, *lw0, *lw1;
    int bilinear;
} interp_job;

/* torch's nearest_idx: identity / halving shortcuts, else floor(o * in/out)
 * with the scale in float. */
static int64_t nearest_idx(int64_t o, int64_t in, int64_t out)
{
    if (out == in)
        return o;
    if (out == 2 * in)
        return o >> 1;
    float scale = (float)in / (float)out;
    int64_t i = (int64_t)floorf((float)o * scale);
    return i < in - 1 ? i : in - 1;
}

#define DEF_INTERP(T, S)                                                                       \
    /* torch's compute_source_index_and_lambda, in T like torch's opmath. */                   \
    static void linear_idx_##S(int64_t o, int64_t in, int64_t out, int align, int64_t *i0,     \
                               int64_t *i1, T *l0, T *l1)                                      \
    {                                                                                          \
        if (in == out) {                                                                       \
            *i0 = *i1 = o;                                                                     \
            *l0 = 1;                                                                           \
            *l1 = 0;                                                                           \
            return;                                                                            \
        }                                                                                      \
        T scale = align ? (out > 1 ? (T)(in - 1) / (T)(out - 1) : (T)0) : (T)in / (T)out;      \
        T src = align ? scale * (T)o : scale * ((T)o + (T)0.5) - (T)0.5;                       \
        if (!align && src < 0)                                                                 \
            src = 0;                                                                           \
        *i0 = (int64_t)src;                                                                    \
        *i1 = *i0 + (*i0 < in - 1 ? 1 : 0);                                                    \
        T l = src - (T)*i0;                                                                    \
        *l1 = l < 0 ? 0 : l > 1 ? 1 : l;                                                       \
        *l0 = (T)1 - *l1;                                                                      \
    }                                                                                          \
    static void interp_planes_##S(void *ctx, int64_t p0, int64_t p1)                           \
    {                                                                                          \
        const interp_job *j = ctx;                                                             \
        const int64_t *restrict w0 = j->w0, *restrict w1 = j->w1;                              \
        const T *restrict lw0 = j->lw0, *restrict lw1 = j->lw1;                                \
        const T *lh0 = j->lh0, *lh1 = j->lh1;                                                  \
        for (int64_t p = p0; p < p1; p++) {                                                    \
            const T *x = (const T *)j->x + p * j->H * j->W;                                    \
            T *y = (T *)j->y + p * j->OH * j->OW;                                              \
            for (int64_t oh = 0; oh < j->OH; oh++) {                                           \
                T *restrict yr = y + oh * j->OW;                                               \
                const T *restrict r0 = x + j->h0[oh] * j->W;                                   \
                if (!j->bilinear) {                                                            \
                    for (int64_t ow = 0; ow < j->OW; ow++)                                     \
                        yr[ow] = r0[w0[ow]];                                                   \
                    continue;                                                                  \
                }                                                                              \
                const T *restrict r1 = x + j->h1[oh] * j->W;                                   \
                T a = lh0[oh], b = lh1[oh];                                                    \
                for (int64_t ow = 0; ow < j->OW; ow++)                                         \
                    yr[ow] = a * (r0[w0[ow]] * lw0[ow] + r0[w1[ow]] * lw1[ow]) +               \
                             b * (r1[w0[ow]] * lw0[ow] + r1[w1[ow]] * lw1[ow]);                \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static int interp_run_##S(fern_op_call *c, interp_job *j)                                  \
    {                                                                                          \
        int64_t OH = j->OH, OW = j->OW;                                                        \
        int align = c->attrs[3].i != 0;                                                        \
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)(2 * (OH + OW)));                      \
        T *lam = malloc(sizeof(T) * (size_t)(2 * (OH + OW)));                                  \
        if (!idx || !lam) {                                                                    \
            free(idx);                                                                         \
            free(lam);                                                                         \
            fern_set_error(FERN_ERR_NOMEM, "interpolate: out of memory");                      \
            return -1;                                                                         \
        }                                                                                      \
        int64_t *h0 = idx, *h1 = idx + OH, *w0 = idx + 2 * OH, *w1 = w0 + OW;                  \
        T *lh0 = lam, *lh1 = lam + OH, *lw0 = lam + 2 * OH, *lw1 = lw0 + OW;                   \
        for (int64_t o = 0; o < OH; o++) {                                                     \
            if (j->bilinear)                                                                   \
                linear_idx_##S(o, j->H, OH, align, &h0[o], &h1[o], &lh0[o], &lh1[o]);          \
            else                                                                               \
                h0[o] = nearest_idx(o, j->H, OH);                                              \
        }                                                                                      \
        for (int64_t o = 0; o < OW; o++) {                                                     \
            if (j->bilinear)                                                                   \
                linear_idx_##S(o, j->W, OW, align, &w0[o], &w1[o], &lw0[o], &lw1[o]);          \
            else                                                                               \
                w0[o] = nearest_idx(o, j->W, OW);                                              \
        }                                                                                      \
        j->h0 = h0;                                                                            \
        j->h1 = h1;                                                                            \
        j->w0 = w0;                                                                            \
        j->w1 = w1;                                                                            \
        j->lh0 = lh0;                                                                          \
        j->lh1 = lh1;                                                                          \
        j->lw0 = lw0;                                                                          \
        j->lw1 = lw1;                                                                          \
        fern_parallel_for(c->out[0]->shape[0] * c->out[0]->shape[1],                           \
                          grain_for(OH * OW * (j->bilinear ? 4 : 1)), interp_planes_##S, j);   \
        free(idx);                                                                             \
        free(lam);                                                                             \
        return 0;                                                                              \
    }

DEF_INTERP(float, f32)
DEF_INTERP(double, f64)

static int interp_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    interp_job j;
    memset(&j, 0, sizeof j);
    j.x = fern_tensor_data(x);
    j.y = fern_tensor_data(c->out[0]);
    j.H = x->shape[2];
    j.W = x->shape[3];
    j.OH = c->out[0]->shape[2];
    j.OW = c->out[0]->shape[3];
    j.bilinear = c->attrs[2].i == FERN_INTERP_BILINEAR;
    return x->dtype == FERN_F64 ? interp_run_f64(c, &j) : interp_run_f32(c, &j);
}

static const fern_op_def op_interpolate = {
    .name = "interpolate", .n_inputs = 1, .n_outputs = 1, .attrs = interp_attrs, .n_attrs = 4,
    .infer = interp_infer, .kernel = {[FERN_CPU] = interp_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "resize NCHW to (out_h, out_w); mode 0 nearest, 1 bilinear (align_corners)",
    .grad = interp_grad};

fern_tensor *fern_interpolate(fern_tensor *x, int64_t out_h, int64_t out_w,
                              fern_interp_mode mode, int align_corners)
{
    fern_attr a[4] = {fern__attr_int(out_h), fern__attr_int(out_w), fern__attr_int(mode),
                      fern__attr_int(align_corners != 0)};
    return fern__op1(&op_interpolate, 1, &x, a);
}

/* ---- gradient rules -----------------------------------------------------
 * Written with public ops only, so they trace and are differentiable
 * themselves. */

static int is_half_dt(fern_dtype d) { return d == FERN_F16 || d == FERN_BF16; }

/* dropout: dx = g * mask / (1 - p), with the mask the forward produced. */
static int dropout_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    double p = c->attrs[0].f;
    if (!g[0])
        return 0;
    if (!c->attrs[1].i || p == 0.0) { /* identity */
        gi[0] = g[0];
        return 0;
    }
    if (p == 1.0) { /* every element dropped */
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    fern_tensor *gd = is_half_dt(g[0]->dtype) ? fern_cast(g[0], FERN_F32) : g[0];
    fern_tensor *m = gd ? fern_cast(c->out[1], gd->dtype) : NULL;
    fern_tensor *r = fern_mul_scalar(fern_mul(gd, m), 1.0 / (1.0 - p));
    gi[0] = fern__sum_to(r, x);
    return gi[0] ? 0 : -1;
}

/* embedding: the rows of g added into zeros at their indices (index-add).
 * The indices get no gradient; integer weights neither. */
static int embedding_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *w = c->in[0], *idx = c->in[1];
    if (!g[0] || !fern_dtype_is_float(w->dtype))
        return 0;
    int64_t M = fern_tensor_numel(idx), D = w->shape[1];
    int64_t col[2] = {M, 1}, rows[2] = {M, D};
    fern_tensor *i = idx->dtype == FERN_I32 || idx->dtype == FERN_I64 ? idx
                                                                       : fern_cast(idx, FERN_I64);
    fern_tensor *e = fern_expand(fern_reshape(i, 2, col), 2, rows);
    fern_tensor *src = fern_reshape(g[0], 2, rows);
    gi[0] = fern_scatter_add(fern_zeros_like(w), 0, e, src);
    return gi[0] ? 0 : -1;
}

/* Zero-pad (or crop, with negative amounts) one axis of an nd tensor. */
static fern_tensor *pad_axis(fern_tensor *t, int nd, int d, int64_t before, int64_t after)
{
    if (!before && !after)
        return t;
    int64_t pads[2 * FERN_MAX_DIMS] = {0};
    int k = nd - 1 - d;
    pads[2 * k] = before;
    pads[2 * k + 1] = after;
    return fern_pad(t, pads, 2 * (k + 1), FERN_PAD_CONSTANT, 0.0);
}

/* pad. Constant mode: the inverse padding (crops what was added, zero-fills
 * what was cropped). Reflect / replicate: per padded dim, the middle of g
 * plus its borders folded back onto the source elements they copied
 * (reflect: flipped, shifted by one; replicate: summed onto the edge). The
 * modes map each dim independently, so dims are undone one at a time. */
static int pad_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    const fern_attr *pads = &c->attrs[0];
    int64_t mode = c->attrs[1].i;
    int nd = x->ndim;
    if (!g[0] || !fern_dtype_is_float(x->dtype))
        return 0;
    if (mode == FERN_PAD_CONSTANT) {
        int64_t neg[FERN_ATTR_MAX_VALUES];
        for (int k = 0; k < pads->n; k++)
            neg[k] = -pads->ints[k];
        gi[0] = fern_pad(g[0], neg, pads->n, FERN_PAD_CONSTANT, 0.0);
        return gi[0] ? 0 : -1;
    }
    fern_tensor *t = g[0];
    for (int d = 0; d < nd && t; d++) {
        int64_t b, a, n = x->shape[d];
        pad_amounts(pads, nd, d, &b, &a);
        if (!b && !a)
            continue;
        fern_tensor *mid = fern_slice(t, d, b, b + n, 1);
        if (b) {
            fern_tensor *l = fern_slice(t, d, 0, b, 1);
            if (mode == FERN_PAD_REFLECT) /* out b-1-k came from in k+1 */
                l = pad_axis(fern_flip(l, &d, 1), nd, d, 1, n - 1 - b);
            else
                l = pad_axis(fern_sum(l, &d, 1, 1), nd, d, 0, n - 1);
            mid = fern_add(mid, l);
        }
        if (a) {
            fern_tensor *r = fern_slice(t, d, b + n, b + n + a, 1);
            if (mode == FERN_PAD_REFLECT) /* out b+n+a-1-k came from in n-1-a+k */
                r = pad_axis(fern_flip(r, &d, 1), nd, d, n - 1 - a, 1);
            else
                r = pad_axis(fern_sum(r, &d, 1, 1), nd, d, n - 1, 0);
            mid = fern_add(mid, r);
        }
        t = mid;
    }
    gi[0] = t;
    return t ? 0 : -1;
}

/* The (out x in) interpolation matrix A of one axis (y = A x along it),
 * stored transposed (in x out) when `transpose`; weights exactly as the
 * forward computes them, in f64 or f32. A constant of the rule. */
static fern_tensor *interp_matrix(int64_t in, int64_t out, int bilinear, int align, int f64,
                                  int transpose)
{
    size_t n = (size_t)(in * out);
    void *buf = calloc(n ? n : 1, f64 ? sizeof(double) : sizeof(float));
    if (!buf) {
        fern_set_error(FERN_ERR_NOMEM, "interpolate: out of memory");
        return NULL;
    }
    for (int64_t o = 0; o < out; o++) {
        int64_t i0, i1;
        double l0 = 1, l1 = 0;
        if (bilinear && f64) {
            linear_idx_f64(o, in, out, align, &i0, &i1, &l0, &l1);
        } else if (bilinear) {
            float f0, f1;
            linear_idx_f32(o, in, out, align, &i0, &i1, &f0, &f1);
            l0 = f0;
            l1 = f1;
        } else {
            i0 = i1 = nearest_idx(o, in, out);
            l1 = 0;
        }
        size_t k0 = (size_t)(transpose ? i0 * out + o : o * in + i0);
        size_t k1 = (size_t)(transpose ? i1 * out + o : o * in + i1);
        if (f64) {
            ((double *)buf)[k0] += l0;
            ((double *)buf)[k1] += l1;
        } else {
            ((float *)buf)[k0] += (float)l0;
            ((float *)buf)[k1] += (float)l1;
        }
    }
    int64_t shape[2] = {transpose ? in : out, transpose ? out : in};
    fern_tensor *t = fern_from_data(f64 ? FERN_F64 : FERN_F32, 2, shape, buf);
    free(buf);
    return t;
}

/* interpolate is separable: y = Ah x Aw^T per plane, with Ah (OH x H) and
 * Aw (OW x W) the per-axis interpolation matrices (one-hot rows for
 * nearest, the two linear weights for bilinear). So dx = Ah^T g Aw, two
 * matmuls with constant matrices, in the cheaper order. */
static int interp_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0];
    if (!g[0])
        return 0;
    int64_t H = x->shape[2], W = x->shape[3], OH = c->attrs[0].i, OW = c->attrs[1].i;
    int bil = c->attrs[2].i == FERN_INTERP_BILINEAR, align = c->attrs[3].i != 0;
    int f64 = g[0]->dtype == FERN_F64;
    fern_tensor *gd = f64 || g[0]->dtype == FERN_F32 ? g[0] : fern_cast(g[0], FERN_F32);
    fern_tensor *aht = interp_matrix(H, OH, bil, align, f64, 1);
    fern_tensor *aw = aht ? interp_matrix(W, OW, bil, align, f64, 0) : NULL;
    if (!aw)
        return -1;
    fern_tensor *r;
    if (H * OH * OW + H * OW * W <= OH * OW * W + H * OH * W)
        r = fern_matmul(fern_matmul(aht, gd), aw);
    else
        r = fern_matmul(aht, fern_matmul(gd, aw));
    gi[0] = fern__sum_to(r, x);
    return gi[0] ? 0 : -1;
}

const fern_op_def *const fern_ops_nn[] = {&op_dropout, &op_embedding,   &op_one_hot,
                                          &op_pad,     &op_interpolate, NULL};
