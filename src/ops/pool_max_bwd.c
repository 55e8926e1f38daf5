/* Kernels of max_pool2d_backward and max_pool2d_indices (see pool.c for
 * what the ops compute). Both recompute each window's argmax from x:
 * torch's first maximum in (kh, kw) order, a NaN replacing it (the last
 * NaN wins). */
#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "pool_common.h"

#define NAN_F(v) ((v) != (v))
#define NAN_I(v) 0

#define DEFINE_ARGMAX_ROW(T, SFX, ISNAN, LOWEST)                                                  \
    /* argmax of every window of output row oh into idx[0, OW), m: scratch; the taps in          \
     * (kh, kw) order with the output row as the inner loop (which vectorizes: the               \
     * selects become blends); the first max, or the last NaN */                                 \
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
 * the index a row starts with is a real element; a window of -inf keeps
 * it, as torch does. */

/* ---- max_pool2d_backward ----------------------------------------------- */

/* Windows other than 2x2 stride 2 (pool_max2x2.c): gx cleared, then each
 * window's gy added at its argmax (overlapping windows accumulate), a row
 * of windows at a time. With relu (relu_backward folded in by the
 * compiler: the input is relu's output), a window whose maximum is <= 0
 * adds nothing. */
#define DEFINE_MAX_BACKWARD_PLANE(T, SFX)                                                          \
    static void max_bwd_plane_##SFX(const pool_geom *g, const T *restrict x,                      \
                                    const T *restrict gy, T *restrict gx, T *restrict m,           \
                                    int64_t *restrict idx, int relu)                               \
    {                                                                                              \
        const int64_t OW = g->OW;                                                                  \
        memset(gx, 0, (size_t)(g->H * g->W) * sizeof(T));                                          \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                                   \
            argmax_row_##SFX(g, x, oh, m, idx);                                                    \
            for (int64_t ow = 0; ow < OW; ow++)                                                    \
                if (!relu || !(m[ow] <= 0))                                                        \
                    gx[idx[ow]] += gy[oh * OW + ow];                                               \
        }                                                                                          \
    }

DEFINE_MAX_BACKWARD_PLANE(float, f32)
DEFINE_MAX_BACKWARD_PLANE(double, f64)

typedef struct {
    const pool_geom *g;
    fern_dtype dt;
    const char *x, *gy;
    char *out;
    atomic_int *failed;
    int relu;
} pool_bwd_job;

/* planes [begin, end) */
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
                              (float *)j->out + t * HW, (float *)(idx + g->OW), idx, j->relu);
        else
            max_bwd_plane_f64(g, (const double *)j->x + t * HW, (const double *)j->gy + t * P,
                              (double *)j->out + t * HW, (double *)(idx + g->OW), idx, j->relu);
    }
    fern_free(FERN_CPU, idx, bytes);
}

int fern__max_bwd_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 0))
        return -1;
    atomic_int failed = 0;
    pool_bwd_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), fern_tensor_data(c->in[1]),
                      fern_tensor_data(c->out[0]), &failed, c->attrs[4].i != 0};
    if (fern__max2x2_applies(&g, j.dt))
        fern__max2x2(&g, j.dt, j.x, j.gy, j.out, j.relu);
    else
        fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw + g.H * g.W), max_bwd_task,
                          &j);
    if (atomic_load(&failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
        return -1;
    }
    return 0;
}

/* ---- max_pool2d_indices ------------------------------------------------ */

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

int fern__indices_kernel(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 0))
        return -1;
    atomic_int failed = 0;
    pool_bwd_job j = {&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), NULL,
                      fern_tensor_data(c->out[0]), &failed, 0};
    fern_parallel_for(g.NC, pool_grain(g.OH * g.OW * g.kh * g.kw), indices_task, &j);
    if (atomic_load(&failed)) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
        return -1;
    }
    return 0;
}

