/* Helpers shared by the normalization family: norm.c (softmax, layer_norm,
 * group_norm) and batch_norm.c (batch_norm and its fused training
 * backward). Kept in one header so both files check parameters, split work
 * and accumulate statistics the same way. Everything is static inline: each
 * file uses a subset. */
#ifndef FERN_NORM_UTIL_H
#define FERN_NORM_UTIL_H

#include "op_def.h"

#define op_err fern__op_error
#define is_half fern__is_half

#define GRAIN_WORK 32768

/* A parameter (weight, bias, running stat) may have x's dtype, or f32 when x
 * is f16/bf16 (it is computed in f32 then). */
static inline int param_dtype_ok(fern_dtype x, fern_dtype p)
{
    return p == x || (is_half(x) && p == FERN_F32);
}

static inline int check_float_input(const fern_op_call *c, const fern_tensor *x)
{
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float tensor");
    return 0;
}

/* Optional per-channel input idx of x: x's dtype (see param_dtype_ok) and
 * shape [want_n]. */
static inline int check_param_of(const fern_op_call *c, const fern_tensor *x, int idx,
                                 const char *what, int64_t want_n)
{
    const fern_tensor *p = c->in[idx];
    if (!p)
        return 0;
    if (!param_dtype_ok(x->dtype, p->dtype))
        return op_err(c, "%s has dtype %s, expected %s like the input", what,
                      fern_dtype_name(p->dtype), fern_dtype_name(x->dtype));
    if (p->ndim != 1 || p->shape[0] != want_n) {
        char b[128];
        return op_err(c, "%s must have shape [%lld], got %s", what, (long long)want_n,
                      fern__shape_str(p->ndim, p->shape, b, sizeof b));
    }
    return 0;
}

/* The same when x is input 0. */
static inline int check_param(const fern_op_call *c, int idx, const char *what, int64_t want_n)
{
    return check_param_of(c, c->in[0], idx, what, want_n);
}

static inline int64_t grain_for(int64_t work_per_item)
{
    if (work_per_item < 1)
        work_per_item = 1;
    int64_t g = GRAIN_WORK / work_per_item;
    return g < 1 ? 1 : g;
}

/* Sum / centred sum of squares of a contiguous run, in double, with sixteen
 * independent lanes so the loops vectorize without -ffast-math and are not
 * bound by the latency of one add chain (1.5x faster than eight lanes on
 * data in cache); norm_lanes_sum adds the lanes in a fixed order. */
#define NORM_LANES 16
static inline double norm_lanes_sum(const double *a)
{
    double h[8];
    for (int k = 0; k < 8; k++)
        h[k] = a[k] + a[k + 8];
    return ((h[0] + h[4]) + (h[2] + h[6])) + ((h[1] + h[5]) + (h[3] + h[7]));
}

#define DEF_STATS(T, S)                                                                        \
    static inline double sum_##S(const T *restrict x, int64_t n)                               \
    {                                                                                          \
        double a[NORM_LANES] = {0};                                                            \
        int64_t i = 0;                                                                         \
        for (; i + NORM_LANES <= n; i += NORM_LANES)                                           \
            for (int k = 0; k < NORM_LANES; k++)                                               \
                a[k] += (double)x[i + k];                                                      \
        double s = norm_lanes_sum(a);                                                          \
        for (; i < n; i++)                                                                     \
            s += (double)x[i];                                                                 \
        return s;                                                                              \
    }                                                                                          \
    static inline double sqdev_##S(const T *restrict x, int64_t n, double m)                   \
    {                                                                                          \
        double a[NORM_LANES] = {0};                                                            \
        int64_t i = 0;                                                                         \
        for (; i + NORM_LANES <= n; i += NORM_LANES)                                           \
            for (int k = 0; k < NORM_LANES; k++) {                                             \
                double d = (double)x[i + k] - m;                                               \
                a[k] += d * d;                                                                 \
            }                                                                                  \
        double s = norm_lanes_sum(a);                                                          \
        for (; i < n; i++) {                                                                   \
            double d = (double)x[i] - m;                                                       \
            s += d * d;                                                                        \
        }                                                                                      \
        return s;                                                                              \
    }                                                                                          \
    /* y = (x - m) * r * w + b over a run; w / b may be NULL. */                               \
    static inline void affine_##S(T *restrict y, const T *restrict x, int64_t n, T m, T r,     \
                                  const T *restrict w, const T *restrict b)                    \
    {                                                                                          \
        if (w && b)                                                                            \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = (x[i] - m) * r * w[i] + b[i];                                           \
        else if (w)                                                                            \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = (x[i] - m) * r * w[i];                                                  \
        else if (b)                                                                            \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = (x[i] - m) * r + b[i];                                                  \
        else                                                                                   \
            for (int64_t i = 0; i < n; i++)                                                    \
                y[i] = (x[i] - m) * r;                                                         \
    }                                                                                          \
    /* y = (x - m) * s + b with scalars (one channel of batch/group norm). */                  \
    static inline void affine_s_##S(T *restrict y, const T *restrict x, int64_t n, T m, T s,   \
                                    T b)                                                       \
    {                                                                                          \
        for (int64_t i = 0; i < n; i++)                                                        \
            y[i] = (x[i] - m) * s + b;                                                         \
    }

DEF_STATS(float, f32)
DEF_STATS(double, f64)

/* ---- for gradient rules (public ops only, so they trace and nest) ---- */

static inline fern_tensor *to_f32_if_half(fern_tensor *t)
{
    return t && is_half(t->dtype) ? fern_cast(t, FERN_F32) : t;
}

/* A per-channel (C) vector shaped (1, C, 1, ...) to broadcast over x. */
static inline fern_tensor *chan_view(fern_tensor *v, const fern_tensor *x)
{
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = d == 1 ? x->shape[1] : 1;
    return fern_reshape(v, x->ndim, shape);
}

/* The input gradient of a normalization xhat = (x - mean) * rstd over
 * `axes` (each group of n elements), given gy = dL/dxhat:
 * dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)). */
static inline fern_tensor *norm_dx(fern_tensor *gy, fern_tensor *xhat, fern_tensor *rstd,
                                   const int *axes, int n_axes)
{
    fern_tensor *m1 = fern_mean(gy, axes, n_axes, 1);
    fern_tensor *m2 = fern_mean(fern_mul(gy, xhat), axes, n_axes, 1);
    return fern_mul(rstd, fern_sub(fern_sub(gy, m1), fern_mul(xhat, m2)));
}

/* batch_norm.c's ops, listed in norm.c's family list. */
extern const fern_op_def fern__op_batch_norm;
extern const fern_op_def fern__op_batch_norm_backward;

#endif
