/* Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, with torch's
 * semantics (output size formula, ceil_mode, count_include_pad, the
 * start/end indices of adaptive pooling, NaN propagation of max pooling).
 * Inputs are (N, C, H, W) or unbatched (C, H, W).
 *
 * Each (n, c) plane is independent; planes are spread over the thread pool.
 * Within a plane, max/avg pooling loop over the window taps (kh, kw) with
 * the output row as the inner loop, so it vectorizes (strided loads for
 * stride > 1) without per-element bounds checks.
 *
 * Gradients: four more ops (max_pool2d_backward, max_pool2d_indices,
 * avg_pool2d_backward, adaptive_avg_pool2d_backward; see "backward ops"
 * below) carry the kernels of the gradient rules at the end of the file. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"

static int max_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int avg_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int adaptive_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int max_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int avg_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int adaptive_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

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

/* kernel, stride, padding, ceil_mode [, count_include_pad]: the window
 * geometry and output size for g->H, g->W (errors describe input `desc`) */
static int pool_params(const fern_op_call *c, pool_geom *g, int is_avg, const fern_tensor *desc)
{
    const char *op = c->op->name;
    const fern_attr *A = c->attrs;
    char d[128];
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
                       op, (long long)g->OH, (long long)g->OW, fern__desc(desc, d, sizeof d),
                       (long long)k[0], (long long)k[1], (long long)p[0], (long long)p[1]);
        return -1;
    }
    return 0;
}

static int pool_setup(fern_op_call *c, pool_geom *g, int is_avg)
{
    if (pool_input(c, g, is_avg))
        return -1;
    return pool_params(c, g, is_avg, c->in[0]);
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

/* ---- backward ops -------------------------------------------------------
 * The gradient rules below use four more ops of this family:
 *  - max_pool2d_backward(x, gy) -> dx: each window's gy added at its argmax
 *    (torch's choice: the first maximum in (kh, kw) order; a NaN wins, the
 *    last one), recomputed from x, so nothing is saved by the forward.
 *  - max_pool2d_indices(x) -> i64 (N, C, OH, OW): that argmax as a flat index
 *    ih * W + iw into its (H, W) plane, like torch's return_indices. Not
 *    differentiable.
 *  - avg_pool2d_backward(gy; ..., input_size) -> dx: gy / divisor spread
 *    over each window.
 *  - adaptive_avg_pool2d_backward(gy; input_size) -> dx, the same for
 *    torch's adaptive windows.
 * Each is linear in gy, and its gradient is the forward again: avg_pool2d,
 * adaptive_avg_pool2d, and for max pooling a gather of the cotangent at the
 * argmax indices (zero w.r.t. x, which only selects). So gradients of any
 * order go through pooling. */

#define DEFINE_ARGMAX(T, SFX, ISNAN, UT)                                                          \
    /* flat index of the window max at (oh, ow): first max, a NaN replaces it;                   \
     * selects through bit masks (GCC turns float selects on unpredictable                       \
     * compares into branches that random data mispredicts) */                                   \
    static inline int64_t argmax_##SFX(const pool_geom *g, const T *restrict x, int64_t oh,       \
                                       int64_t ow)                                                \
    {                                                                                             \
        int64_t hs = oh * g->sh - g->ph, ws = ow * g->sw - g->pw;                                 \
        int64_t he = hs + g->kh < g->H ? hs + g->kh : g->H;                                       \
        int64_t we = ws + g->kw < g->W ? ws + g->kw : g->W;                                       \
        if (hs < 0)                                                                               \
            hs = 0;                                                                               \
        if (ws < 0)                                                                               \
            ws = 0;                                                                               \
        int64_t best = hs * g->W + ws;                                                            \
        T m = x[best];                                                                            \
        for (int64_t ih = hs; ih < he; ih++)                                                      \
            for (int64_t iw = ws; iw < we; iw++) {                                                \
                const int64_t i = ih * g->W + iw;                                                 \
                const T v = x[i];                                                                 \
                const int c1 = v > m, c2 = ISNAN(v);                                              \
                const int64_t t = -(int64_t)(c1 | c2);                                            \
                UT vb, mb;                                                                        \
                memcpy(&vb, &v, sizeof v);                                                        \
                memcpy(&mb, &m, sizeof m);                                                        \
                mb = (vb & (UT)t) | (mb & ~(UT)t);                                                \
                memcpy(&m, &mb, sizeof m);                                                        \
                best = (i & t) | (best & ~t);                                                     \
            }                                                                                     \
        return best;                                                                              \
    }

#define NAN_F(v) ((v) != (v))
#define NAN_I(v) 0
DEFINE_ARGMAX(float, f32, NAN_F, uint32_t)
DEFINE_ARGMAX(double, f64, NAN_F, uint64_t)
DEFINE_ARGMAX(int8_t, i8, NAN_I, uint8_t)
DEFINE_ARGMAX(uint8_t, u8, NAN_I, uint8_t)
DEFINE_ARGMAX(int32_t, i32, NAN_I, uint32_t)
DEFINE_ARGMAX(int64_t, i64, NAN_I, uint64_t)

#define DEFINE_ARGMAX_ROW(T, SFX, ISNAN, LOWEST)                                                  \
    /* argmax of every window of output row oh into idx[0, OW), m: scratch; the taps in          \
     * (kh, kw) order with the output row as the inner loop (which vectorizes: the               \
     * selects become blends), the same first-max / last-NaN choice as argmax_ */               \
    static void argmax_row_##SFX(const pool_geom *g, const T *restrict x, int64_t oh,            \
                                 T *restrict m, int64_t *restrict idx)                            \
    {                                                                                             \
        const int64_t W = g->W, OW = g->OW, sw = g->sw;                                           \
        int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;              \
        if (hs < 0)                                                                               \
            hs = 0;                                                                               \
        for (int64_t ow = 0; ow < OW; ow++) {                                                     \
            const int64_t ws = ow * sw - g->pw;                                                   \
            m[ow] = LOWEST;                                                                       \
            idx[ow] = hs * W + (ws > 0 ? ws : 0);                                                 \
        }                                                                                         \
        for (int64_t ih = hs; ih < he; ih++)                                                      \
            for (int64_t kw = 0; kw < g->kw; kw++) {                                              \
                const int64_t off = kw - g->pw, base = ih * W + off;                              \
                int64_t lo, hi;                                                                   \
                pool_range(OW, sw, off, W, &lo, &hi);                                             \
                const T *restrict xr = x + base;                                                  \
                for (int64_t ow = lo; ow < hi; ow++) {                                            \
                    const T v = xr[ow * sw];                                                      \
                    const int t = (v > m[ow]) | ISNAN(v);                                         \
                    m[ow] = t ? v : m[ow];                                                        \
                    idx[ow] = t ? base + ow * sw : idx[ow];                                       \
                }                                                                                 \
            }                                                                                     \
    }

DEFINE_ARGMAX_ROW(float, f32, NAN_F, -INFINITY)
DEFINE_ARGMAX_ROW(double, f64, NAN_F, -INFINITY)
DEFINE_ARGMAX_ROW(int8_t, i8, NAN_I, INT8_MIN)
DEFINE_ARGMAX_ROW(uint8_t, u8, NAN_I, 0)
DEFINE_ARGMAX_ROW(int32_t, i32, NAN_I, INT32_MIN)
DEFINE_ARGMAX_ROW(int64_t, i64, NAN_I, INT64_MIN)

/* The first element of a window is always inside the input (padding is at
 * most half the kernel and ceil_mode drops windows starting past it), so
 * x[best] above is a real element; a window of -inf keeps it, as torch does. */

/* 2x2 stride-2 windows, L at a time (32- or 16-byte vectors): the even and odd
 * columns of both rows deinterleaved, the argmax kept as lane masks (GCC
 * turns scalar compares of random data into mispredicted branches), and
 * each input element assigned gy or 0, interleaved back. Returns the number
 * of windows done: all of them, or none when fewer than L. */
#define DEFINE_MAX2X2_VEC(T, SFX, IT, L, EVEN, ODD, LO, HI)                                       \
    static int64_t max2x2_##SFX##_##L(const T *restrict r0, const T *restrict r1,                  \
                                    const T *restrict gr, T *restrict g0, T *restrict g1,          \
                                    int64_t fw)                                                   \
    {                                                                                             \
        typedef T vec __attribute__((vector_size(L * sizeof(T))));                                \
        typedef IT ivec __attribute__((vector_size(L * sizeof(T))));                              \
        const ivec even = EVEN, odd = ODD, lo = LO, hi = HI;                                      \
        if (fw < L)                                                                               \
            return 0;                                                                             \
        /* a last partial group is redone overlapping the previous one (assignments) */           \
        for (int64_t o0 = 0; o0 < fw; o0 += L) {                                                  \
            const int64_t ow = o0 + L <= fw ? o0 : fw - L;                                        \
            vec p0, p1, q0, q1, v;                                                                \
            memcpy(&p0, r0 + 2 * ow, sizeof p0);                                                  \
            memcpy(&p1, r0 + 2 * ow + L, sizeof p1);                                              \
            memcpy(&q0, r1 + 2 * ow, sizeof q0);                                                  \
            memcpy(&q1, r1 + 2 * ow + L, sizeof q1);                                              \
            memcpy(&v, gr + ow, sizeof v);                                                        \
            const vec a = __builtin_shuffle(p0, p1, even), b = __builtin_shuffle(p0, p1, odd);    \
            const vec c = __builtin_shuffle(q0, q1, even), d = __builtin_shuffle(q0, q1, odd);    \
            vec m = a;                                                                            \
            ivec k = (ivec){0};                                                                   \
            ivec t = (b > m) | (b != b);                                                          \
            m = (vec)(((ivec)b & t) | ((ivec)m & ~t));                                            \
            k = (k & ~t) | (t & 1);                                                               \
            t = (c > m) | (c != c);                                                               \
            m = (vec)(((ivec)c & t) | ((ivec)m & ~t));                                            \
            k = (k & ~t) | (t & 2);                                                               \
            t = (d > m) | (d != d);                                                               \
            k = (k & ~t) | (t & 3);                                                               \
            const ivec iv = (ivec)v;                                                              \
            const vec e0 = (vec)(iv & (k == 0)), e1 = (vec)(iv & (k == 1));                       \
            const vec e2 = (vec)(iv & (k == 2)), e3 = (vec)(iv & (k == 3));                       \
            const vec w0 = __builtin_shuffle(e0, e1, lo), w1 = __builtin_shuffle(e0, e1, hi);     \
            const vec w2 = __builtin_shuffle(e2, e3, lo), w3 = __builtin_shuffle(e2, e3, hi);     \
            memcpy(g0 + 2 * ow, &w0, sizeof w0);                                                  \
            memcpy(g0 + 2 * ow + L, &w1, sizeof w1);                                              \
            memcpy(g1 + 2 * ow, &w2, sizeof w2);                                                  \
            memcpy(g1 + 2 * ow + L, &w3, sizeof w3);                                              \
        }                                                                                         \
        return fw;                                                                                \
    }

#define MASK8(a, b, c, d, e, f, g, h) {a, b, c, d, e, f, g, h}
#define MASK4(a, b, c, d) {a, b, c, d}
#define MASK2(a, b) {a, b}
#if defined(__clang__)
/* __builtin_shuffle with a mask vector is GCC's: under clang (the fuzz
 * builds) the scalar path does these windows. */
#undef DEFINE_MAX2X2_VEC
#define DEFINE_MAX2X2_VEC(T, SFX, IT, L, EVEN, ODD, LO, HI)                                       \
    static int64_t max2x2_##SFX##_##L(const T *restrict r0, const T *restrict r1,                  \
                                    const T *restrict gr, T *restrict g0, T *restrict g1,          \
                                    int64_t fw)                                                   \
    {                                                                                             \
        (void)r0, (void)r1, (void)gr, (void)g0, (void)g1, (void)fw;                                \
        return 0;                                                                                 \
    }
#endif
DEFINE_MAX2X2_VEC(float, f32, int32_t, 8, MASK8(0, 2, 4, 6, 8, 10, 12, 14),
                  MASK8(1, 3, 5, 7, 9, 11, 13, 15), MASK8(0, 8, 1, 9, 2, 10, 3, 11),
                  MASK8(4, 12, 5, 13, 6, 14, 7, 15))
DEFINE_MAX2X2_VEC(float, f32, int32_t, 4, MASK4(0, 2, 4, 6), MASK4(1, 3, 5, 7), MASK4(0, 4, 1, 5),
                  MASK4(2, 6, 3, 7))
DEFINE_MAX2X2_VEC(double, f64, int64_t, 4, MASK4(0, 2, 4, 6), MASK4(1, 3, 5, 7), MASK4(0, 4, 1, 5),
                  MASK4(2, 6, 3, 7))
DEFINE_MAX2X2_VEC(double, f64, int64_t, 2, MASK2(0, 2), MASK2(1, 3), MASK2(0, 2), MASK2(1, 3))

#define DEFINE_MAX_BACKWARD_PLANE(T, SFX, LW, LN)                                                 \
    static void max_bwd_plane_##SFX(const pool_geom *g, const T *restrict x,                     \
                                    const T *restrict gy, T *restrict gx, T *restrict m,          \
                                    int64_t *restrict idx)                                        \
    {                                                                                             \
        const int64_t W = g->W, OW = g->OW;                                                       \
        memset(gx, 0, (size_t)(g->H * W) * sizeof(T));                                            \
        int64_t fh = 0, fw = 0; /* output rows / columns done by the 2x2 path */                  \
        if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 && g->pw == 0) {   \
            /* disjoint full windows: each input element is assigned its share */                 \
            fh = g->H / 2 < g->OH ? g->H / 2 : g->OH;                                             \
            fw = W / 2 < OW ? W / 2 : OW;                                                         \
            for (int64_t oh = 0; oh < fh; oh++) {                                                 \
                const T *r0 = x + 2 * oh * W, *r1 = r0 + W;                                       \
                T *g0 = gx + 2 * oh * W, *g1 = g0 + W;                                            \
                const T *gr = gy + oh * OW;                                                       \
                int64_t ow = fw >= LW   ? max2x2_##SFX##_##LW(r0, r1, gr, g0, g1, fw)             \
                             : fw >= LN ? max2x2_##SFX##_##LN(r0, r1, gr, g0, g1, fw)             \
                                        : 0;                                                      \
                for (; ow < fw; ow++)                                                             \
                    gx[argmax_##SFX(g, x, oh, ow)] = gr[ow];                                      \
            }                                                                                     \
        }                                                                                         \
        for (int64_t oh = 0; oh < fh; oh++) /* windows past the 2x2 ones (ceil_mode) */          \
            for (int64_t ow = fw; ow < OW; ow++)                                                  \
                gx[argmax_##SFX(g, x, oh, ow)] += gy[oh * OW + ow];                               \
        for (int64_t oh = fh; oh < g->OH; oh++) { /* the rest; overlaps accumulate */            \
            argmax_row_##SFX(g, x, oh, m, idx);                                                   \
            for (int64_t ow = 0; ow < OW; ow++)                                                   \
                gx[idx[ow]] += gy[oh * OW + ow];                                                  \
        }                                                                                         \
    }

DEFINE_MAX_BACKWARD_PLANE(float, f32, 8, 4)
DEFINE_MAX_BACKWARD_PLANE(double, f64, 4, 2)

typedef struct {
    const pool_geom *g;
    fern_dtype dt;
    const char *x, *gy;
    char *out;
    atomic_int *failed;
} pool_bwd_job;

static void max_bwd_task(void *ctx, int64_t begin, int64_t end)
{
    const pool_bwd_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    const size_t bytes = (size_t)g->OW * (sizeof(int64_t) + fern_dtype_size(j->dt));
    int64_t *idx = fern_alloc(FERN_CPU, bytes); /* and the row maxima after it */
    if (!idx) {
        atomic_store(j->failed, 1);
        return;
    }
    for (int64_t t = begin; t < end; t++) {
        if (j->dt == FERN_F32)
            max_bwd_plane_f32(g, (const float *)j->x + t * HW, (const float *)j->gy + t * P,
                              (float *)j->out + t * HW, (float *)(idx + g->OW), idx);
        else
            max_bwd_plane_f64(g, (const double *)j->x + t * HW, (const double *)j->gy + t * P,
                              (double *)j->out + t * HW, (double *)(idx + g->OW), idx);
    }
    fern_free(FERN_CPU, idx, bytes);
}

/* gy must have the forward's output shape and x's dtype */
static int check_gy(const fern_op_call *c, const fern_tensor *gy, const fern_tensor *like,
                    int ndim, const int64_t *shape)
{
    char a[128], b[128];
    int ok = gy->ndim == ndim && gy->dtype == like->dtype;
    for (int d = 0; ok && d < ndim; d++)
        ok = gy->shape[d] == shape[d];
    if (!ok) {
        int64_t s[FERN_MAX_DIMS];
        memcpy(s, shape, (size_t)ndim * sizeof *s);
        fern_tensor tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.dtype = like->dtype;
        tmp.ndim = ndim;
        memcpy(tmp.shape, s, (size_t)ndim * sizeof *s);
        fern_set_error(FERN_ERR_INVALID, "%s: the output gradient must be %s, got %s", c->op->name,
                       fern__desc(&tmp, a, sizeof a), fern__desc(gy, b, sizeof b));
        return -1;
    }
    return 0;
}

static int max_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    if (pool_input(c, &g, 1) || pool_params(c, &g, 0, c->in[0])) /* float x only */
        return -1;
    pool_out_shape(c, &g);
    if (check_gy(c, c->in[1], c->in[0], c->out_ndim[0], c->out_shape[0]))
        return -1;
    fern__set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

static int max_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 0))
        return -1;
    atomic_int failed = 0;
    pool_bwd_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->in[1]),
                      fern_tensor_data(c->out[0]), &failed};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw + g.H * g.W), max_bwd_task, &j);
    if (atomic_load(&failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
        return -1;
    }
    return 0;
}

#define DEFINE_INDICES_PLANE(T, SFX)                                                              \
    static void indices_plane_##SFX(const pool_geom *g, const T *restrict x, int64_t *restrict y, \
                                    void *m)                                                      \
    {                                                                                             \
        for (int64_t oh = 0; oh < g->OH; oh++)                                                    \
            argmax_row_##SFX(g, x, oh, (T *)m, y + oh * g->OW);                                   \
    }

DEFINE_INDICES_PLANE(float, f32)
DEFINE_INDICES_PLANE(double, f64)
DEFINE_INDICES_PLANE(int8_t, i8)
DEFINE_INDICES_PLANE(uint8_t, u8)
DEFINE_INDICES_PLANE(int32_t, i32)
DEFINE_INDICES_PLANE(int64_t, i64)

static void indices_task(void *ctx, int64_t begin, int64_t end)
{
    const pool_bwd_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    const size_t es = fern_dtype_size(j->dt), bytes = (size_t)g->OW * es;
    void *m = fern_alloc(FERN_CPU, bytes); /* the row maxima */
    if (!m) {
        atomic_store(j->failed, 1);
        return;
    }
    for (int64_t t = begin; t < end; t++) {
        const void *x = j->x + (size_t)(t * HW) * es;
        int64_t *y = (int64_t *)j->out + t * P;
        switch (j->dt) {
        case FERN_F32: indices_plane_f32(g, x, y, m); break;
        case FERN_F64: indices_plane_f64(g, x, y, m); break;
        case FERN_I8: indices_plane_i8(g, x, y, m); break;
        case FERN_U8: indices_plane_u8(g, x, y, m); break;
        case FERN_I32: indices_plane_i32(g, x, y, m); break;
        default: indices_plane_i64(g, x, y, m); break;
        }
    }
    fern_free(FERN_CPU, m, bytes);
}

static int indices_infer(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 0))
        return -1;
    pool_out_shape(c, &g);
    c->out_dtype[0] = FERN_I64;
    return 0;
}

static int indices_kernel(fern_op_call *c)
{
    pool_geom g;
    if (pool_setup(c, &g, 0))
        return -1;
    atomic_int failed = 0;
    pool_bwd_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), NULL,
                      fern_tensor_data(c->out[0]), &failed};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw), indices_task, &j);
    if (atomic_load(&failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
        return -1;
    }
    return 0;
}

/* avg_pool2d_backward: gy (…, OH, OW) with attribute input_size (H, W) */
static int avg_bwd_setup(fern_op_call *c, pool_geom *g)
{
    const char *op = c->op->name;
    const fern_tensor *gy = c->in[0];
    char d[128];
    if (gy->ndim != 3 && gy->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 3-D or 4-D output gradient, got %s", op,
                       fern__desc(gy, d, sizeof d));
        return -1;
    }
    if (!fern_dtype_is_float(gy->dtype))
        return fern__err_dtype(c, gy, "expected a float output gradient (f32, f64, f16, bf16)");
    int64_t in[2];
    if (get_pair(op, &c->attrs[c->op->n_attrs - 1], "input_size", in))
        return -1;
    if (in[0] < 1 || in[1] < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: input_size (%lld, %lld) must be positive", op,
                       (long long)in[0], (long long)in[1]);
        return -1;
    }
    memset(g, 0, sizeof *g);
    int b = gy->ndim - 3;
    g->NC = (b ? gy->shape[0] : 1) * gy->shape[b];
    g->H = in[0];
    g->W = in[1];
    return 0;
}

static int avg_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    const fern_tensor *gy = c->in[0];
    if (avg_bwd_setup(c, &g) || pool_params(c, &g, 1, gy))
        return -1;
    int64_t s[4];
    memcpy(s, gy->shape, (size_t)gy->ndim * sizeof *s);
    s[gy->ndim - 2] = g.OH;
    s[gy->ndim - 1] = g.OW;
    if (check_gy(c, gy, gy, gy->ndim, s))
        return -1;
    fern__set_out(c, 0, gy->dtype, gy->ndim, gy->shape);
    c->out_shape[0][gy->ndim - 2] = g.H;
    c->out_shape[0][gy->ndim - 1] = g.W;
    return 0;
}

#define DEFINE_AVG_BACKWARD_PLANE(T, SFX)                                                         \
    static void avg_bwd_plane_##SFX(const pool_geom *g, const int64_t *wdiv, const T *restrict gy, \
                                    T *restrict gx, T *restrict row)                              \
    {                                                                                             \
        const int64_t W = g->W, OW = g->OW, sw = g->sw;                                           \
        memset(gx, 0, (size_t)(g->H * W) * sizeof(T));                                            \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            const int64_t hd = avg_extent(oh, g->sh, g->ph, g->kh, g->H, g->count_include_pad);   \
            for (int64_t ow = 0; ow < OW; ow++) {                                                 \
                const int64_t d = hd * wdiv[ow];                                                  \
                row[ow] = d > 0 ? gy[oh * OW + ow] / (T)d : (T)0;                                 \
            }                                                                                     \
            int64_t hs = oh * g->sh - g->ph, he = hs + g->kh < g->H ? hs + g->kh : g->H;          \
            if (hs < 0)                                                                           \
                hs = 0;                                                                           \
            for (int64_t ih = hs; ih < he; ih++)                                                  \
                for (int64_t kw = 0; kw < g->kw; kw++) {                                          \
                    const int64_t off = kw - g->pw;                                               \
                    int64_t lo, hi;                                                               \
                    pool_range(OW, sw, off, W, &lo, &hi);                                         \
                    T *restrict xr = gx + ih * W;                                                 \
                    if (sw == 1)                                                                  \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            xr[ow + off] += row[ow];                                              \
                    else                                                                          \
                        for (int64_t ow = lo; ow < hi; ow++)                                      \
                            xr[ow * sw + off] += row[ow];                                         \
                }                                                                                 \
        }                                                                                         \
    }

DEFINE_AVG_BACKWARD_PLANE(float, f32)
DEFINE_AVG_BACKWARD_PLANE(double, f64)

typedef struct {
    const pool_geom *g;
    fern_dtype dt;
    const char *gy;
    char *gx;
    const int64_t *wdiv;
    atomic_int *failed;
} avg_bwd_job;

static void avg_bwd_task(void *ctx, int64_t begin, int64_t end)
{
    const avg_bwd_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    const size_t es = fern_dtype_size(j->dt), bytes = (size_t)g->OW * es;
    void *row = fern_alloc(FERN_CPU, bytes);
    if (!row) {
        atomic_store(j->failed, 1);
        return;
    }
    for (int64_t t = begin; t < end; t++) {
        if (j->dt == FERN_F32)
            avg_bwd_plane_f32(g, j->wdiv, (const float *)j->gy + t * P, (float *)j->gx + t * HW,
                              row);
        else
            avg_bwd_plane_f64(g, j->wdiv, (const double *)j->gy + t * P,
                              (double *)j->gx + t * HW, row);
    }
    fern_free(FERN_CPU, row, bytes);
}

static int avg_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (avg_bwd_setup(c, &g) || pool_params(c, &g, 1, c->in[0]))
        return -1;
    size_t bytes = (size_t)g.OW * sizeof(int64_t);
    int64_t *wdiv = fern_alloc(FERN_CPU, bytes);
    if (!wdiv)
        return -1;
    for (int64_t ow = 0; ow < g.OW; ow++)
        wdiv[ow] = avg_extent(ow, g.sw, g.pw, g.kw, g.W, g.count_include_pad);
    atomic_int failed = 0;
    avg_bwd_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->out[0]),
                     wdiv, &failed};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw + g.H * g.W), avg_bwd_task, &j);
    fern_free(FERN_CPU, wdiv, bytes);
    if (atomic_load(&failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
        return -1;
    }
    return 0;
}

/* adaptive_avg_pool2d_backward: gy (…, OH, OW), attribute input_size (H, W) */
static int adaptive_bwd_setup(fern_op_call *c, pool_geom *g)
{
    if (avg_bwd_setup(c, g))
        return -1;
    const fern_tensor *gy = c->in[0];
    g->OH = gy->shape[gy->ndim - 2];
    g->OW = gy->shape[gy->ndim - 1];
    if (g->OH < 1 || g->OW < 1) {
        char d[128];
        fern_set_error(FERN_ERR_INVALID,
                       "%s: the output gradient %s has an empty spatial dimension", c->op->name,
                       fern__desc(gy, d, sizeof d));
        return -1;
    }
    return 0;
}

static int adaptive_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    if (adaptive_bwd_setup(c, &g))
        return -1;
    const fern_tensor *gy = c->in[0];
    fern__set_out(c, 0, gy->dtype, gy->ndim, gy->shape);
    c->out_shape[0][gy->ndim - 2] = g.H;
    c->out_shape[0][gy->ndim - 1] = g.W;
    return 0;
}

#define DEFINE_ADAPTIVE_BACKWARD_PLANE(T, SFX)                                                    \
    static void adaptive_bwd_plane_##SFX(const pool_geom *g, const ad_index *ix,                 \
                                         const T *restrict gy, T *restrict gx)                    \
    {                                                                                             \
        const int64_t W = g->W;                                                                   \
        memset(gx, 0, (size_t)(g->H * W) * sizeof(T));                                            \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                  \
            const int64_t hs = ix->hs[oh], he = ix->he[oh];                                       \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                              \
                const int64_t ws = ix->ws[ow], we = ix->we[ow];                                   \
                const T v = gy[oh * g->OW + ow] / (T)((he - hs) * (we - ws));                     \
                for (int64_t ih = hs; ih < he; ih++)                                              \
                    for (int64_t iw = ws; iw < we; iw++)                                          \
                        gx[ih * W + iw] += v;                                                     \
            }                                                                                     \
        }                                                                                         \
    }

DEFINE_ADAPTIVE_BACKWARD_PLANE(float, f32)
DEFINE_ADAPTIVE_BACKWARD_PLANE(double, f64)

static void adaptive_bwd_task(void *ctx, int64_t begin, int64_t end)
{
    const adaptive_job *j = ctx;
    const pool_geom *g = j->g;
    const int64_t HW = g->H * g->W, P = g->OH * g->OW;
    for (int64_t t = begin; t < end; t++) {
        if (j->dt == FERN_F32)
            adaptive_bwd_plane_f32(g, j->ix, (const float *)j->x + t * P, (float *)j->y + t * HW);
        else
            adaptive_bwd_plane_f64(g, j->ix, (const double *)j->x + t * P,
                                   (double *)j->y + t * HW);
    }
}

static int adaptive_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (adaptive_bwd_setup(c, &g))
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
    /* j.x: the output gradient, j.y: the input gradient */
    adaptive_job j = {&g, &ix, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                      fern_tensor_data(c->out[0])};
    fern_parallel_for(g.NC, pool_grain(g.H * g.W + g.OH * g.OW), adaptive_bwd_task, &j);
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
           "padding (symmetric), ceil_mode; NaN propagates",
    .grad = max_pool_grad};

static const fern_op_def op_avg_pool2d = {
    .name = "avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = avg_pool_attrs, .n_attrs = 5,
    .infer = avg_pool_infer, .kernel = {[FERN_CPU] = avg_pool_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D average pooling over (N,C,H,W) or (C,H,W): kernel, stride (0/empty = kernel), "
           "padding, ceil_mode, count_include_pad",
    .grad = avg_pool_grad};

static const fern_op_def op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = adaptive_attrs,
    .n_attrs = 1, .infer = adaptive_infer, .kernel = {[FERN_CPU] = adaptive_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D adaptive average pooling to output_size (h, w), torch's window indices",
    .grad = adaptive_grad};

static const fern_attr_spec avg_bwd_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                               {"stride", FERN_ATTR_INTS, 0, NULL},
                                               {"padding", FERN_ATTR_INTS, 0, NULL},
                                               {"ceil_mode", FERN_ATTR_INT, 0, NULL},
                                               {"count_include_pad", FERN_ATTR_INT, 1, NULL},
                                               {"input_size", FERN_ATTR_INTS, 0, NULL}};

static const fern_attr_spec adaptive_bwd_attrs[] = {{"input_size", FERN_ATTR_INTS, 0, NULL}};

static const fern_op_def op_max_pool2d_backward = {
    .name = "max_pool2d_backward", .n_inputs = 2, .n_outputs = 1, .attrs = max_pool_attrs,
    .n_attrs = 4, .infer = max_bwd_infer, .kernel = {[FERN_CPU] = max_bwd_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of max_pool2d: x, output gradient gy -> dx (gy added at each window's first "
           "max); the attributes of max_pool2d",
    .grad = max_bwd_grad};

static const fern_op_def op_max_pool2d_indices = {
    .name = "max_pool2d_indices", .n_inputs = 1, .n_outputs = 1, .attrs = max_pool_attrs,
    .n_attrs = 4, .infer = indices_infer, .kernel = {[FERN_CPU] = indices_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_NONDIFF,
    .doc = "i64 flat index (ih*W + iw) of each max_pool2d window's first max (torch's "
           "return_indices); the attributes of max_pool2d"};

static const fern_op_def op_avg_pool2d_backward = {
    .name = "avg_pool2d_backward", .n_inputs = 1, .n_outputs = 1, .attrs = avg_bwd_attrs,
    .n_attrs = 6, .infer = avg_bwd_infer, .kernel = {[FERN_CPU] = avg_bwd_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of avg_pool2d: output gradient gy -> dx of spatial size input_size (h, w); "
           "the attributes of avg_pool2d",
    .grad = avg_bwd_grad};

static const fern_op_def op_adaptive_avg_pool2d_backward = {
    .name = "adaptive_avg_pool2d_backward", .n_inputs = 1, .n_outputs = 1,
    .attrs = adaptive_bwd_attrs, .n_attrs = 1, .infer = adaptive_bwd_infer,
    .kernel = {[FERN_CPU] = adaptive_bwd_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of adaptive_avg_pool2d: output gradient gy -> dx of spatial size "
           "input_size (h, w)",
    .grad = adaptive_bwd_grad};

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

/* ---- gradient rules ---------------------------------------------------- */

/* Whether any tape tracks t: a cotangent no tape tracks is dropped anyway. */
static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static int max_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *in[2] = {c->in[0], g[0]};
    if (!g[0] || !fern_dtype_is_float(c->in[0]->dtype) || !wants_grad(c->in[0]))
        return 0;
    return (gi[0] = fern__op1(&op_max_pool2d_backward, 2, in, c->attrs)) ? 0 : -1;
}

/* linear in gy: its cotangent gathered at the argmax of each window; x only
 * selects (zero gradient almost everywhere) */
static int max_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *gy = c->in[1];
    if (!g[0] || !wants_grad(gy))
        return 0;
    fern_tensor *idx = fern__op1(&op_max_pool2d_indices, 1, &x, c->attrs);
    if (!idx)
        return -1;
    int nd = x->ndim;
    int64_t sx[4], si[4];
    memcpy(sx, x->shape, (size_t)nd * sizeof *sx);
    memcpy(si, gy->shape, (size_t)nd * sizeof *si);
    sx[nd - 2] *= sx[nd - 1];
    si[nd - 2] *= si[nd - 1];
    fern_tensor *r =
        fern_gather(fern_reshape(g[0], nd - 1, sx), nd - 2, fern_reshape(idx, nd - 1, si));
    gi[1] = r ? fern_reshape(r, nd, gy->shape) : NULL;
    return gi[1] ? 0 : -1;
}

static int avg_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *x = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    fern_attr a[6];
    memcpy(a, c->attrs, 5 * sizeof *a);
    a[5] = fern__attr_ints(x->shape + x->ndim - 2, 2);
    fern_tensor *gy = g[0];
    return (gi[0] = fern__op1(&op_avg_pool2d_backward, 1, &gy, a)) ? 0 : -1;
}

static int avg_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *gx = g[0];
    if (!gx || !wants_grad(c->in[0]))
        return 0;
    return (gi[0] = fern__op1(&op_avg_pool2d, 1, &gx, c->attrs)) ? 0 : -1;
}

static int adaptive_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *x = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    fern_attr a = fern__attr_ints(x->shape + x->ndim - 2, 2);
    fern_tensor *gy = g[0];
    return (gi[0] = fern__op1(&op_adaptive_avg_pool2d_backward, 1, &gy, &a)) ? 0 : -1;
}

static int adaptive_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *gy = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    gi[0] = fern_adaptive_avg_pool2d(g[0], gy->shape[gy->ndim - 2], gy->shape[gy->ndim - 1]);
    return gi[0] ? 0 : -1;
}

const fern_op_def *const fern_ops_pool[] = {&op_max_pool2d,
                                            &op_avg_pool2d,
                                            &op_adaptive_avg_pool2d,
                                            &op_max_pool2d_backward,
                                            &op_max_pool2d_indices,
                                            &op_avg_pool2d_backward,
                                            &op_adaptive_avg_pool2d_backward,
                                            NULL};
