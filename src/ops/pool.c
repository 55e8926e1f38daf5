/* Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, with torch's
 * semantics (output size formula, ceil_mode, count_include_pad, the
 * start/end indices of adaptive pooling, NaN propagation of max pooling).
 * Inputs are (N, C, H, W) or unbatched (C, H, W).
 *
 * Each (n, c) plane is independent; planes are spread over the thread pool.
 * Within a plane, max/avg pooling loop over the window taps (kh, kw) with
 * the output row as the inner loop, so it vectorizes (strided loads for
 * stride > 1) without per-element bounds checks. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"

typedef struct {
    int64_t NC, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw;
    int ceil_mode, count_include_pad;
} pool_geom;

/* Range of i in [0, n) with 0 <= i*s + off < lim. */
static inline void pool_range(int64_t n, int64_t s, int64_t off, int64_t lim, int64_t *lo,
                              int64_t *hi)
{
    int64_t a = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t b = lim - 1 - off < 0 ? 0 : (lim - 1 - off) / s + 1;
    *lo = a < n ? a : n;
    *hi = b < n ? b : n;
    if (*hi < *lo)
        *hi = *lo;
}

/* Floor division (b > 0). */
static int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* torch's pooling_output_shape */
static int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t s, int ceil_mode)
{
    int64_t o = div_floor(in + 2 * pad - (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad)
        o--;
    return o;
}

static int get_pair(const char *op, const fern_attr *a, const char *name, int64_t *out)
{
    if (a->n == 1) {
        out[0] = out[1] = a->ints[0];
    } else if (a->n == 2) {
        out[0] = a->ints[0];
        out[1] = a->ints[1];
    } else {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' needs 1 or 2 values, got %d", op,
                       name, a->n);
        return -1;
    }
    return 0;
}

/* Shared checks: input rank, dtype; fills N*C, H, W and the output shape's
 * leading dims. */
static int pool_input(fern_op_call *c, pool_geom *g, int float_only)
{
    const char *op = c->op->name;
    const fern_tensor *x = c->in[0];
    char d[128];
    if (x->ndim != 3 && x->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got %s", op,
                       fern__desc(x, d, sizeof d));
        return -1;
    }
    if (float_only ? !fern_dtype_is_float(x->dtype)
                   : !(fern_dtype_is_float(x->dtype) || fern_dtype_is_int(x->dtype)))
        return fern__err_dtype(c, x,
                               float_only ? "expected a float input (f32, f64, f16, bf16)"
                                          : "expected a float or integer input");
    memset(g, 0, sizeof *g);
    int b = x->ndim - 3;
    g->NC = (b ? x->shape[0] : 1) * x->shape[b];
    g->H = x->shape[b + 1];
    g->W = x->shape[b + 2];
    return 0;
}

static void pool_out_shape(fern_op_call *c, const pool_geom *g)
{
    const fern_tensor *x = c->in[0];
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    c->out_shape[0][x->ndim - 2] = g->OH;
    c->out_shape[0][x->ndim - 1] = g->OW;
}

/* kernel, stride, padding, ceil_mode [, count_include_pad] */
static int pool_setup(fern_op_call *c, pool_geom *g, int is_avg)
{
    const char *op = c->op->name;
    const fern_attr *A = c->attrs;
    char d[128];
    if (pool_input(c, g, is_avg))
        return -1;
    int64_t k[2], s[2] = {0, 0}, p[2] = {0, 0};
    if (A[0].n == 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute 'kernel' is required", op);
        return -1;
    }
    if (get_pair(op, &A[0], "kernel", k) || (A[1].n && get_pair(op, &A[1], "stride", s)) ||
        (A[2].n && get_pair(op, &A[2], "padding", p)))
        return -1;
    for (int i = 0; i < 2; i++) {
        if (s[i] == 0)
            s[i] = k[i];
        if (k[i] < 1 || s[i] < 1 || p[i] < 0) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: kernel (%lld, %lld) and stride (%lld, %lld) must be positive and "
                           "padding (%lld, %lld) non-negative",
                           op, (long long)k[0], (long long)k[1], (long long)s[0], (long long)s[1],
                           (long long)p[0], (long long)p[1]);
            return -1;
        }
        if (p[i] > k[i] / 2) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: padding (%lld, %lld) should be at most half of the kernel size "
                           "(%lld, %lld)",
                           op, (long long)p[0], (long long)p[1], (long long)k[0], (long long)k[1]);
            return -1;
        }
    }
    g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1], g->ph = p[0], g->pw = p[1];
    g->ceil_mode = A[3].i != 0;
    g->count_include_pad = is_avg ? A[4].i != 0 : 0;
    g->OH = pool_out_size(g->H, g->kh, g->ph, g->sh, g->ceil_mode);
    g->OW = pool_out_size(g->W, g->kw, g->pw, g->sw, g->ceil_mode);
    if (g->OH < 1 || g->OW < 1) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: output size (%lld x %lld) is too small: input %s, kernel (%lld, %lld), "
                       "padding (%lld, %lld)",
                       op, (long long)g->OH, (long long)g->OW, fern__desc(c->in[0], d, sizeof d),
                       (long long)k[0], (long long)k[1], (long long)p[0], (long long)p[1]);
        return -1;
    }
    return 0;
}

static int max_pool_infer(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 0))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

static int avg_pool_infer(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 1))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

/* ---- max pooling ------------------------------------------------------- */

/* NaN wins (torch's max_pool2d propagates it); integers compare plainly. */
#define MAX_FLOAT(a, v) ((v) > (a) || (v) != (v) ? (v) : (a))
#define MAX_INT(a, v) ((v) > (a) ? (v) : (a))

#define DEFINE_MAX_PLANE(T, SFX, LOWEST, MAXOP)                                                   \
    static void max_plane_##SFX(const pool_geom *g, const T *restrict x, T *restrict y)           \
    {                                                                                             \
        const int64_t W = g->W, OW = g->OW, sw = g->sw;                                           \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            T *restrict yr = y + oh * OW;                                                         \
            for (int64_t ow = 0; ow < OW; ow++)                                                   \
                yr[ow] = LOWEST;                                                                  \
            int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;          \
            if (hs < 0)                                                                           \
                hs = 0;                                                                           \
            for (int64_t ih = hs; ih < he; ih++)                                                  \
                for (int64_t kw = 0; kw < g->kw; kw++) {                                          \
                    const int64_t off = kw - g->pw;                                               \
                    int64_t lo, hi;                                                               \
                    pool_range(OW, sw, off, W, &lo, &hi);                                         \
                    const T *restrict xr = x + ih * W;                                            \
                    if (sw == 1)                                                                  \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] = MAXOP(yr[ow], xr[ow + off]);                                 \
                    else                                                                          \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] = MAXOP(yr[ow], xr[ow * sw + off]);                            \
                }                                                                                 \
        }                                                                                         \
    }

DEFINE_MAX_PLANE(float, f32, -INFINITY, MAX_FLOAT)
DEFINE_MAX_PLANE(double, f64, -INFINITY, MAX_FLOAT)
DEFINE_MAX_PLANE(int8_t, i8, INT8_MIN, MAX_INT)
DEFINE_MAX_PLANE(uint8_t, u8, 0, MAX_INT)
DEFINE_MAX_PLANE(int32_t, i32, INT32_MIN, MAX_INT)
DEFINE_MAX_PLANE(int64_t, i64, INT64_MIN, MAX_INT)

typedef struct {
    const pool_geom *g;
    fern_dtype dt;
    const char *x;
    char *y;
    const int64_t *wdiv; /* avg pool: divisor factor of each output column */
} pool_job;

static void max_task(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    const size_t es = fern_dtype_size(j->dt);
    for (int64_t t = begin; t < end; t++) {
        const char *x = j->x + (size_t)(t * HW) * es;
        char *y = j->y + (size_t)(t * P) * es;
        switch (j->dt) {
        case FERN_F32: max_plane_f32(g, (const float *)x, (float *)y); break;
        case FERN_F64: max_plane_f64(g, (const double *)x, (double *)y); break;
        case FERN_I8: max_plane_i8(g, (const int8_t *)x, (int8_t *)y); break;
        case FERN_U8: max_plane_u8(g, (const uint8_t *)x, (uint8_t *)y); break;
        case FERN_I32: max_plane_i32(g, (const int32_t *)x, (int32_t *)y); break;
        default: max_plane_i64(g, (const int64_t *)x, (int64_t *)y); break;
        }
    }
}

static int64_t pool_grain(int64_t per_plane)
{
    return per_plane >= 32768 ? 1 : 32768 / (per_plane > 0 ? per_plane : 1) + 1;
}

static int max_pool_kernel(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 0))
        return -1;
    pool_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->out[0]),
                  NULL};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw), max_task, &j);
    return 0;
}

/* ---- average pooling --------------------------------------------------- */

/* Divisor of a window along one axis: with count_include_pad the window
 * clipped to the padded input, otherwise to the input itself. */
static int64_t avg_extent(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int include_pad)
{
    int64_t st = o * s - p, en = st + k < n + p ? st + k : n + p;
    if (include_pad)
        return en - st;
    if (st < 0)
        st = 0;
    if (en > n)
        en = n;
    return en > st ? en - st : 0;
}

#define DEFINE_AVG_PLANE(T, SFX)                                                                  \
    static void avg_plane_##SFX(const pool_geom *g, const int64_t *wdiv, const T *restrict x,     \
                                T *restrict y)                                                    \
    {                                                                                             \
        const int64_t W = g->W, OW = g->OW, sw = g->sw;                                           \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            T *restrict yr = y + oh * OW;                                                         \
            for (int64_t ow = 0; ow < OW; ow++)                                                   \
                yr[ow] = 0;                                                                       \
            int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;          \
            if (hs < 0)                                                                           \
                hs = 0;                                                                           \
            for (int64_t ih = hs; ih < he; ih++)                                                  \
                for (int64_t kw = 0; kw < g->kw; kw++) {                                          \
                    const int64_t off = kw - g->pw;                                               \
                    int64_t lo, hi;                                                               \
                    pool_range(OW, sw, off, W, &lo, &hi);                                         \
                    const T *restrict xr = x + ih * W;                                            \
                    if (sw == 1)                                                                  \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] += xr[ow + off];                                               \
                    else                                                                          \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            yr[ow] += xr[ow * sw + off];                                          \
                }                                                                                 \
            const int64_t hd = avg_extent(oh, g->sh, g->ph, g->kh, g->H, g->count_include_pad);   \
            for (int64_t ow = 0; ow < OW; ow++) {                                                 \
                const int64_t d = hd * wdiv[ow];                                                  \
                yr[ow] = d > 0 ? yr[ow] / (T)d : (T)0;                                            \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_AVG_PLANE(float, f32)
DEFINE_AVG_PLANE(double, f64)

static void avg_task(void *ctx, int64_t begin, int64_t end)
{
    const pool_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    for (int64_t t = begin; t < end; t++) {
        if (j->dt == FERN_F32)
            avg_plane_f32(g, j->wdiv, (const float *)j->x + t * HW, (float *)j->y + t * P);
        else
            avg_plane_f64(g, j->wdiv, (const double *)j->x + t * HW, (double *)j->y + t * P);
    }
}

static int avg_pool_kernel(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 1))
        return -1;
    size_t bytes = (size_t)g.OW * sizeof(int64_t);
    int64_t *wdiv = fern_alloc(FERN_CPU, bytes);
    if (!wdiv)
        return -1;
    /* the divisor is separable: (h extent) * (w extent) of the window */
    for (int64_t ow = 0; ow < g.OW; ow++)
        wdiv[ow] = avg_extent(ow, g.sw, g.pw, g.kw, g.W, g.count_include_pad);
    pool_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->out[0]),
                  wdiv};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw), avg_task, &j);
    fern_free(FERN_CPU, wdiv, bytes);
    return 0;
}

/* ---- adaptive average pooling ------------------------------------------ */

static int64_t ad_start(int64_t a, int64_t b, int64_t c) { return (a / b) * c + ((a % b) * c) / b; }
static int64_t ad_end(int64_t a, int64_t b, int64_t c) { return 1 + ((a + 1) * c - 1) / b; }

static int adaptive_setup(fern_op_call *c, pool_geom *g)
{
    const char *op = c->op->name;
    char d[128];
    if (pool_input(c, g, 1))
        return -1;
    int64_t o[2];
    if (get_pair(op, &c->attrs[0], "output_size", o))
        return -1;
    if (o[0] < 1 || o[1] < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: output size (%lld, %lld) must be positive", op,
                       (long long)o[0], (long long)o[1]);
        return -1;
    }
    if (g->H < 1 || g->W < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: input %s has an empty spatial dimension", op,
                       fern__desc(c->in[0], d, sizeof d));
        return -1;
    }
    g->OH = o[0];
    g->OW = o[1];
    return 0;
}

static int adaptive_infer(fern_op_call *c)
{
    pool_geom g;
    if (adaptive_setup(c, &g))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

/* Sum of n contiguous values with several vector accumulators (a plain
 * loop is one long dependency chain that the compiler may not reorder). */
#define DEFINE_SUM_RUN(T, SFX)                                                                    \
    static T sum_run_##SFX(const T *restrict p, int64_t n)                                        \
    {                                                                                             \
        typedef T vec __attribute__((vector_size(32)));                                           \
        enum { V = 32 / sizeof(T) };                                                              \
        vec a0 = {0}, a1 = {0};                                                                   \
        int64_t i = 0;                                                                            \
        for (; i + 2 * V <= n; i += 2 * V) {                                                      \
            vec x0, x1;                                                                           \
            memcpy(&x0, p + i, sizeof x0);                                                        \
            memcpy(&x1, p + i + V, sizeof x1);                                                    \
            a0 += x0;                                                                             \
            a1 += x1;                                                                             \
        }                                                                                         \
        a0 += a1;                                                                                 \
        T s = 0;                                                                                  \
        for (int k = 0; k < V; k++)                                                               \
            s += a0[k];                                                                           \
        for (; i < n; i++)                                                                        \
            s += p[i];                                                                            \
        return s;                                                                                 \
    }

DEFINE_SUM_RUN(float, f32)
DEFINE_SUM_RUN(double, f64)

/* Window bounds of every output row and column (torch's start/end index). */
typedef struct {
    int64_t *hs, *he, *ws, *we;
} ad_index;

#define DEFINE_ADAPTIVE_PLANE(T, SFX)                                                             \
    static void adaptive_plane_##SFX(const pool_geom *g, const ad_index *ix, const T *restrict x, \
                                     T *restrict y)                                               \
    {                                                                                             \
        const int64_t W = g->W;                                                                   \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            const int64_t hs = ix->hs[oh], he = ix->he[oh];                                       \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                              \
                const int64_t ws = ix->ws[ow], we = ix->we[ow];                                   \
                T sum = 0;                                                                        \
                if (ws == 0 && we == W) /* whole rows: one contiguous run */                      \
                    sum = sum_run_##SFX(x + hs * W, (he - hs) * W);                               \
                else                                                                              \
                    for (int64_t ih = hs; ih < he; ih++)                                          \
                        sum += sum_run_##SFX(x + ih * W + ws, we - ws);                           \
                y[oh * g->OW + ow] = sum / (T)((he - hs) * (we - ws));                            \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_ADAPTIVE_PLANE(float, f32)
DEFINE_ADAPTIVE_PLANE(double, f64)

typedef struct {
    const pool_geom *g;
    const ad_index *ix;
    fern_dtype dt;
    const char *x;
    char *y;
} adaptive_job;

static void adaptive_task(void *ctx, int64_t begin, int64_t end)
{
    const adaptive_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    for (int64_t t = begin; t < end; t++) {
        if (j->dt == FERN_F32)
            adaptive_plane_f32(g, j->ix, (const float *)j->x + t * HW, (float *)j->y + t * P);
        else
            adaptive_plane_f64(g, j->ix, (const double *)j->x + t * HW, (double *)j->y + t * P);
    }
}

static int adaptive_kernel(fern_op_call *c)
{
    pool_geom g;
    if (adaptive_setup(c, &g))
        return -1;
    size_t bytes = (size_t)(2 * (g.OH + g.OW)) * sizeof(int64_t);
    int64_t *buf = fern_alloc(FERN_CPU, bytes);
    if (!buf)
        return -1;
    ad_index ix = {buf, buf + g.OH, buf + 2 * g.OH, buf + 2 * g.OH + g.OW};
    for (int64_t o = 0; o < g.OH; o++) {
        ix.hs[o] = ad_start(o, g.OH, g.H);
        ix.he[o] = ad_end(o, g.OH, g.H);
    }
    for (int64_t o = 0; o < g.OW; o++) {
        ix.ws[o] = ad_start(o, g.OW, g.W);
        ix.we[o] = ad_end(o, g.OW, g.W);
    }
    adaptive_job j = {&g, &ix, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                      fern_tensor_data(c->out[0])};
    /* every input element is read about once per output plane */
    fern_parallel_for(g.NC, pool_grain(g.H * g.W + g.OH * g.OW), adaptive_task, &j);
    fern_free(FERN_CPU, buf, bytes);
    return 0;
}

/* ---- op definitions and public functions ------------------------------- */

static const fern_attr_spec max_pool_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                                {"stride", FERN_ATTR_INTS, 0, NULL},
                                                {"padding", FERN_ATTR_INTS, 0, NULL},
                                                {"ceil_mode", FERN_ATTR_INT, 0, NULL}};

static const fern_attr_spec avg_pool_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                                {"stride", FERN_ATTR_INTS, 0, NULL},
                                                {"padding", FERN_ATTR_INTS, 0, NULL},
                                                {"ceil_mode", FERN_ATTR_INT, 0, NULL},
                                                {"count_include_pad", FERN_ATTR_INT, 1, NULL}};

static const fern_attr_spec adaptive_attrs[] = {{"output_size", FERN_ATTR_INTS, 0, NULL}};

static const fern_op_def op_max_pool2d = {
    .name = "max_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = max_pool_attrs, .n_attrs = 4,
    .infer = max_pool_infer, .kernel = {[FERN_CPU] = max_pool_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D max pooling over (N,C,H,W) or (C,H,W): kernel, stride (0/empty = kernel), "
           "padding (symmetric), ceil_mode; NaN propagates"};

static const fern_op_def op_avg_pool2d = {
    .name = "avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = avg_pool_attrs, .n_attrs = 5,
    .infer = avg_pool_infer, .kernel = {[FERN_CPU] = avg_pool_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D average pooling over (N,C,H,W) or (C,H,W): kernel, stride (0/empty = kernel), "
           "padding, ceil_mode, count_include_pad"};

static const fern_op_def op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = adaptive_attrs,
    .n_attrs = 1, .infer = adaptive_infer, .kernel = {[FERN_CPU] = adaptive_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D adaptive average pooling to output_size (h, w), torch's window indices"};

fern_pool_opts fern_pool_opts_default(int64_t kh, int64_t kw)
{
    fern_pool_opts o;
    memset(&o, 0, sizeof o);
    o.kernel[0] = kh;
    o.kernel[1] = kw;
    o.count_include_pad = 1;
    return o;
}

static int pool_opts_check(const char *op, const fern_pool_opts *opts)
{
    if (!opts) {
        fern_set_error(FERN_ERR_INVALID, "%s: opts is NULL (use fern_pool_opts_default)", op);
        return -1;
    }
    return 0;
}

fern_tensor *fern_max_pool2d(fern_tensor *x, const fern_pool_opts *opts)
{
    if (!x)
        return NULL;
    if (pool_opts_check("max_pool2d", opts))
        return NULL;
    fern_attr a[4] = {fern__attr_ints(opts->kernel, 2), fern__attr_ints(opts->stride, 2),
                      fern__attr_ints(opts->padding, 2), fern__attr_int(opts->ceil_mode)};
    return fern__op1(&op_max_pool2d, 1, &x, a);
}

fern_tensor *fern_avg_pool2d(fern_tensor *x, const fern_pool_opts *opts)
{
    if (!x)
        return NULL;
    if (pool_opts_check("avg_pool2d", opts))
        return NULL;
    fern_attr a[5] = {fern__attr_ints(opts->kernel, 2), fern__attr_ints(opts->stride, 2),
                      fern__attr_ints(opts->padding, 2), fern__attr_int(opts->ceil_mode),
                      fern__attr_int(opts->count_include_pad)};
    return fern__op1(&op_avg_pool2d, 1, &x, a);
}

fern_tensor *fern_adaptive_avg_pool2d(fern_tensor *x, int64_t out_h, int64_t out_w)
{
    int64_t o[2] = {out_h, out_w};
    fern_attr a = fern__attr_ints(o, 2);
    return fern__op1(&op_adaptive_avg_pool2d, 1, &x, &a);
}

const fern_op_def *const fern_ops_pool[] = {&op_max_pool2d, &op_avg_pool2d,
                                            &op_adaptive_avg_pool2d, NULL};
