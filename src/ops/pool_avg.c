/* Average pooling kernels: avg_pool2d and adaptive_avg_pool2d, forward
 * and backward (the gradient rules' avg_pool2d_backward and
 * adaptive_avg_pool2d_backward). Each (n, c) plane is independent; planes
 * are spread over the thread pool. Within a plane, avg pooling loops over
 * the window taps (kh, kw) with the output row as the inner loop, so it
 * vectorizes (strided loads for stride > 1) without per-element bounds
 * checks; the divisor is separable, (h extent) * (w extent). */
#include <stdatomic.h>
#include <string.h>

#include "pool_common.h"

/* ---- average pooling --------------------------------------------------- */

typedef struct {
    const pool_geom *g;
    fern_dtype dt;
    const char *x;
    char *y;
    const int64_t *wdiv; /* divisor factor of each output column */
} pool_job;

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

int fern__avg_pool_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 1))
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

/* torch's window bounds of every output row and column, in one buffer */
static int ad_index_new(const pool_geom *g, ad_index *ix)
{
    int64_t *buf = fern_alloc(FERN_CPU, (size_t)(2 * (g->OH + g->OW)) * sizeof(int64_t));
    if (!buf)
        return -1;
    *ix = (ad_index){buf, buf + g->OH, buf + 2 * g->OH, buf + 2 * g->OH + g->OW};
    for (int64_t o = 0; o < g->OH; o++) {
        ix->hs[o] = ad_start(o, g->OH, g->H);
        ix->he[o] = ad_end(o, g->OH, g->H);
    }
    for (int64_t o = 0; o < g->OW; o++) {
        ix->ws[o] = ad_start(o, g->OW, g->W);
        ix->we[o] = ad_end(o, g->OW, g->W);
    }
    return 0;
}

static void ad_index_free(const pool_geom *g, ad_index *ix)
{
    fern_free(FERN_CPU, ix->hs, (size_t)(2 * (g->OH + g->OW)) * sizeof(int64_t));
}

int fern__adaptive_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__adaptive_setup(c, &g))
        return -1;
    ad_index ix;
    if (ad_index_new(&g, &ix))
        return -1;
    adaptive_job j = {&g, &ix, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                      fern_tensor_data(c->out[0])};
    /* every input element is read about once per output plane */
    fern_parallel_for(g.NC, pool_grain(g.H * g.W + g.OH * g.OW), adaptive_task, &j);
    ad_index_free(&g, &ix);
    return 0;
}

/* ---- backward ------------------------------------------------------------ */

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

int fern__avg_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__avg_bwd_setup(c, &g) || fern__pool_params(c, &g, 1, c->in[0]))
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

int fern__adaptive_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__adaptive_bwd_setup(c, &g))
        return -1;
    ad_index ix;
    if (ad_index_new(&g, &ix))
        return -1;
    /* j.x: the output gradient, j.y: the input gradient */
    adaptive_job j = {&g, &ix, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                      fern_tensor_data(c->out[0])};
    fern_parallel_for(g.NC, pool_grain(g.H * g.W + g.OH * g.OW), adaptive_bwd_task, &j);
    ad_index_free(&g, &ix);
    return 0;
}
