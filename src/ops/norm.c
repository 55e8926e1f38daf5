/* Normalization ops: softmax, log_softmax, layer_norm and group_norm, with
 * torch.nn.functional semantics; batch_norm (same family, same list at the
 * end of this file) lives in batch_norm.c with its fused backward.
 *
 * Every kernel works on contiguous inputs (FERN_OPF_CONTIG_INPUTS), keeps
 * statistics in double (f32 rows too, so long rows stay accurate), splits
 * the work over rows / channels / groups with fern_parallel_for, and never
 * lets the result depend on the thread count: each statistic is computed
 * entirely by one task in a fixed order. f16 and bf16 run through f32. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "norm_util.h"
#include "../backend/cpu/vexpf.h"

/* Gradient rules (at the end of the file). */
static int softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int log_softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int layer_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int group_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- softmax / log_softmax --------------------------------------------- */

static const fern_attr_spec softmax_attrs[] = {{"axis", FERN_ATTR_INT, -1, NULL}};

/* Resolve an axis attribute; error names the op and the input. */
static int resolve_axis(const fern_op_call *c, int64_t axis, int ndim)
{
    int64_t lim = ndim ? ndim : 1;
    if (axis < -lim || axis >= lim)
        return op_err(c, "axis %lld is out of range for a %d-d tensor", (long long)axis, ndim);
    return (int)(axis < 0 ? axis + lim : axis);
}

static int softmax_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    if (check_float_input(c, x) || resolve_axis(c, c->attrs[0].i, x->ndim) < 0)
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

#define SM_IB 64 /* columns per task when the axis is not the last one */

typedef struct {
    const void *x;
    void *y;
    int64_t n, inner, nb;
    int log;
} sm_job;

#define DEF_SOFTMAX(T, S, EXP, LOG)                                                            \
    static T rowmax_##S(const T *restrict x, int64_t n)                                        \
    {                                                                                          \
        T m = x[0];                                                                            \
        int64_t i = 1;                                                                         \
        if (n >= 16) {                                                                         \
            T a[8];                                                                            \
            for (int k = 0; k < 8; k++)                                                        \
                a[k] = x[k];                                                                   \
            for (i = 8; i + 8 <= n; i += 8)                                                    \
                for (int k = 0; k < 8; k++)                                                    \
                    a[k] = x[i + k] > a[k] ? x[i + k] : a[k];                                  \
            m = a[0];                                                                          \
            for (int k = 1; k < 8; k++)                                                        \
                m = a[k] > m ? a[k] : m;                                                       \
        }                                                                                      \
        for (; i < n; i++)                                                                     \
            m = x[i] > m ? x[i] : m;                                                           \
        return m;                                                                              \
    }                                                                                          \
    static void sm_rows_##S(void *ctx, int64_t r0, int64_t r1)                                 \
    {                                                                                          \
        const sm_job *j = ctx;                                                                 \
        int64_t n = j->n;                                                                      \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *restrict x = (const T *)j->x + r * n;                                     \
            T *restrict y = (T *)j->y + r * n;                                                 \
            T m = rowmax_##S(x, n);                                                            \
            for (int64_t i = 0; i < n; i++) /* y is scratch for the exps */                    \
                y[i] = EXP(x[i] - m);                                                          \
            T s = (T)sum_##S(y, n);                                                            \
            if (j->log) {                                                                      \
                T lse = LOG(s);                                                                \
                for (int64_t i = 0; i < n; i++)                                                \
                    y[i] = (x[i] - m) - lse;                                                   \
            } else {                                                                           \
                T inv = (T)1 / s;                                                              \
                for (int64_t i = 0; i < n; i++)                                                \
                    y[i] *= inv;                                                               \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void sm_cols_##S(void *ctx, int64_t t0, int64_t t1)                                 \
    {                                                                                          \
        const sm_job *j = ctx;                                                                 \
        int64_t n = j->n, inner = j->inner;                                                    \
        T m[SM_IB], s[SM_IB];                                                                  \
        for (int64_t t = t0; t < t1; t++) {                                                    \
            int64_t o = t / j->nb, c0 = (t % j->nb) * SM_IB;                                   \
            int64_t w = inner - c0 < SM_IB ? inner - c0 : SM_IB;                               \
            const T *x = (const T *)j->x + o * n * inner + c0;                                 \
            T *y = (T *)j->y + o * n * inner + c0;                                             \
            for (int64_t c = 0; c < w; c++) {                                                  \
                m[c] = x[c];                                                                   \
                s[c] = 0;                                                                      \
            }                                                                                  \
            for (int64_t k = 1; k < n; k++) {                                                  \
                const T *restrict xr = x + k * inner;                                          \
                for (int64_t c = 0; c < w; c++)                                                \
                    m[c] = xr[c] > m[c] ? xr[c] : m[c];                                        \
            }                                                                                  \
            for (int64_t k = 0; k < n; k++) {                                                  \
                const T *restrict xr = x + k * inner;                                          \
                T *restrict yr = y + k * inner;                                                \
                if (j->log)                                                                    \
                    for (int64_t c = 0; c < w; c++)                                            \
                        s[c] += EXP(xr[c] - m[c]);                                             \
                else                                                                           \
                    for (int64_t c = 0; c < w; c++) {                                          \
                        T e = EXP(xr[c] - m[c]);                                               \
                        yr[c] = e;                                                             \
                        s[c] += e;                                                             \
                    }                                                                          \
            }                                                                                  \
            if (j->log) {                                                                      \
                for (int64_t c = 0; c < w; c++)                                                \
                    s[c] = LOG(s[c]);                                                          \
                for (int64_t k = 0; k < n; k++) {                                              \
                    const T *restrict xr = x + k * inner;                                      \
                    T *restrict yr = y + k * inner;                                            \
                    for (int64_t c = 0; c < w; c++)                                            \
                        yr[c] = (xr[c] - m[c]) - s[c];                                         \
                }                                                                              \
            } else {                                                                           \
                for (int64_t c = 0; c < w; c++)                                                \
                    s[c] = (T)1 / s[c];                                                        \
                for (int64_t k = 0; k < n; k++) {                                              \
                    T *restrict yr = y + k * inner;                                            \
                    for (int64_t c = 0; c < w; c++)                                            \
                        yr[c] *= s[c];                                                         \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEF_SOFTMAX(float, f32, vexpf, logf)
DEF_SOFTMAX(double, f64, exp, log)

static int softmax_run(fern_op_call *c, int log)
{
    const fern_tensor *x = c->in[0];
    int axis = resolve_axis(c, c->attrs[0].i, x->ndim);
    int64_t outer = 1, n = 1, inner = 1;
    for (int d = 0; d < x->ndim; d++) {
        if (d < axis)
            outer *= x->shape[d];
        else if (d == axis)
            n = x->shape[d];
        else
            inner *= x->shape[d];
    }
    sm_job j = {fern_tensor_data(x), fern_tensor_data(c->out[0]), n, inner, 0, log};
    int f64 = x->dtype == FERN_F64;
    if (inner == 1) {
        fern_parallel_for(outer, grain_for(4 * n), f64 ? sm_rows_f64 : sm_rows_f32, &j);
    } else {
        j.nb = (inner + SM_IB - 1) / SM_IB;
        int64_t per = n * (inner < SM_IB ? inner : SM_IB);
        fern_parallel_for(outer * j.nb, grain_for(4 * per), f64 ? sm_cols_f64 : sm_cols_f32, &j);
    }
    return 0;
}

static int softmax_kernel(fern_op_call *c) { return softmax_run(c, 0); }
static int log_softmax_kernel(fern_op_call *c) { return softmax_run(c, 1); }

static const fern_op_def op_softmax = {
    .name = "softmax", .n_inputs = 1, .n_outputs = 1, .attrs = softmax_attrs, .n_attrs = 1,
    .infer = softmax_infer, .kernel = {[FERN_CPU] = softmax_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "exp(x - max) / sum(exp(x - max)) along axis", .grad = softmax_grad};

static const fern_op_def op_log_softmax = {
    .name = "log_softmax", .n_inputs = 1, .n_outputs = 1, .attrs = softmax_attrs, .n_attrs = 1,
    .infer = softmax_infer, .kernel = {[FERN_CPU] = log_softmax_kernel},
    .dtypes = FERN_DT_FLOAT, .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "x - max - log(sum(exp(x - max))) along axis", .grad = log_softmax_grad};

fern_tensor *fern_softmax(fern_tensor *x, int axis)
{
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_softmax, 1, &x, &a);
}

fern_tensor *fern_log_softmax(fern_tensor *x, int axis)
{
    fern_attr a = fern__attr_int(axis);
    return fern__op1(&op_log_softmax, 1, &x, &a);
}

/* ---- layer_norm -------------------------------------------------------- */

static const fern_attr_spec layer_norm_attrs[] = {{"n_norm_dims", FERN_ATTR_INT, 1, NULL},
                                                  {"eps", FERN_ATTR_FLOAT, 1e-5, NULL}};

static int layer_norm_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t nd = c->attrs[0].i;
    if (check_float_input(c, x))
        return -1;
    if (nd < 1 || nd > x->ndim)
        return op_err(c, "n_norm_dims %lld must be between 1 and the input's %d dims",
                      (long long)nd, x->ndim);
    if (!(c->attrs[1].f >= 0))
        return op_err(c, "eps must be non-negative, got %g", c->attrs[1].f);
    int lead = x->ndim - (int)nd;
    for (int k = 1; k <= 2; k++) {
        const fern_tensor *p = c->in[k];
        const char *what = k == 1 ? "weight" : "bias";
        if (!p)
            continue;
        if (!param_dtype_ok(x->dtype, p->dtype))
            return op_err(c, "%s has dtype %s, expected %s like the input", what,
                          fern_dtype_name(p->dtype), fern_dtype_name(x->dtype));
        if (p->ndim != nd || memcmp(p->shape, x->shape + lead, sizeof(int64_t) * (size_t)nd)) {
            char a[128], b[128];
            return op_err(c, "%s shape %s does not match the normalized shape %s", what,
                          fern__shape_str(p->ndim, p->shape, a, sizeof a),
                          fern__shape_str((int)nd, x->shape + lead, b, sizeof b));
        }
    }
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

typedef struct {
    const void *x, *w, *b;
    void *y;
    int64_t d;
    double eps;
} ln_job;

#define DEF_LN(T, S)                                                                           \
    static void ln_rows_##S(void *ctx, int64_t r0, int64_t r1)                                 \
    {                                                                                          \
        const ln_job *j = ctx;                                                                 \
        int64_t d = j->d;                                                                      \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *x = (const T *)j->x + r * d;                                              \
            double m = sum_##S(x, d) / (double)d;                                              \
            double v = sqdev_##S(x, d, m) / (double)d;                                         \
            affine_##S((T *)j->y + r * d, x, d, (T)m, (T)(1.0 / sqrt(v + j->eps)),             \
                       (const T *)j->w, (const T *)j->b);                                      \
        }                                                                                      \
    }

DEF_LN(float, f32)
DEF_LN(double, f64)

static int layer_norm_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int lead = x->ndim - (int)c->attrs[0].i;
    int64_t rows = fern__numel(lead, x->shape);
    int64_t d = fern_tensor_numel(x) / (rows ? rows : 1);
    ln_job j = {fern_tensor_data(x), c->in[1] ? fern_tensor_data(c->in[1]) : NULL,
                c->in[2] ? fern_tensor_data(c->in[2]) : NULL, fern_tensor_data(c->out[0]), d,
                c->attrs[1].f};
    fern_parallel_for(rows, grain_for(3 * d), x->dtype == FERN_F64 ? ln_rows_f64 : ln_rows_f32,
                      &j);
    return 0;
}

static const fern_op_def op_layer_norm = {
    .name = "layer_norm", .n_inputs = 3, .n_optional = 2, .n_outputs = 1,
    .attrs = layer_norm_attrs, .n_attrs = 2, .infer = layer_norm_infer,
    .kernel = {[FERN_CPU] = layer_norm_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "normalize over the last n_norm_dims dims; inputs x, weight?, bias?",
    .grad = layer_norm_grad};

fern_tensor *fern_layer_norm(fern_tensor *x, int n_norm_dims, fern_tensor *weight,
                             fern_tensor *bias, double eps)
{
    fern_tensor *in[3] = {x, weight, bias};
    fern_attr a[2] = {fern__attr_int(n_norm_dims), fern__attr_float(eps)};
    return fern__op1(&op_layer_norm, 3, in, a);
}

/* ---- group_norm -------------------------------------------------------- */

static const fern_attr_spec group_norm_attrs[] = {{"num_groups", FERN_ATTR_INT, 1, NULL},
                                                  {"eps", FERN_ATTR_FLOAT, 1e-5, NULL}};

static int group_norm_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int64_t G = c->attrs[0].i;
    if (check_float_input(c, x))
        return -1;
    if (x->ndim < 2)
        return op_err(c, "expected an input of shape (N, C, ...) with at least 2 dims");
    int64_t C = x->shape[1];
    if (G < 1 || C % G)
        return op_err(c, "the number of channels %lld must be divisible by num_groups %lld",
                      (long long)C, (long long)G);
    if (!(c->attrs[1].f >= 0))
        return op_err(c, "eps must be non-negative, got %g", c->attrs[1].f);
    if (check_param(c, 1, "weight", C) || check_param(c, 2, "bias", C))
        return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    return 0;
}

typedef struct {
    const void *x, *w, *b;
    void *y;
    int64_t C, G, S;
    double eps;
} gn_job;

#define DEF_GN(T, S_)                                                                          \
    static void gn_groups_##S_(void *ctx, int64_t g0, int64_t g1)                              \
    {                                                                                          \
        const gn_job *j = ctx;                                                                 \
        int64_t cg = j->C / j->G, d = cg * j->S;                                               \
        const T *w = j->w, *b = j->b;                                                          \
        for (int64_t g = g0; g < g1; g++) {                                                    \
            const T *x = (const T *)j->x + g * d;                                              \
            T *y = (T *)j->y + g * d;                                                          \
            double m = sum_##S_(x, d) / (double)d;                                             \
            double v = sqdev_##S_(x, d, m) / (double)d;                                        \
            T r = (T)(1.0 / sqrt(v + j->eps)), mt = (T)m;                                      \
            int64_t c0 = (g % j->G) * cg;                                                      \
            for (int64_t k = 0; k < cg; k++) {                                                 \
                int64_t c = c0 + k;                                                            \
                affine_s_##S_(y + k * j->S, x + k * j->S, j->S, mt, w ? r * w[c] : r,          \
                              b ? b[c] : (T)0);                                                \
            }                                                                                  \
        }                                                                                      \
    }

DEF_GN(float, f32)
DEF_GN(double, f64)

static int group_norm_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    gn_job j = {fern_tensor_data(x), c->in[1] ? fern_tensor_data(c->in[1]) : NULL,
                c->in[2] ? fern_tensor_data(c->in[2]) : NULL, fern_tensor_data(c->out[0]),
                x->shape[1], c->attrs[0].i, fern__numel(x->ndim - 2, x->shape + 2),
                c->attrs[1].f};
    int64_t d = x->shape[1] / j.G * j.S;
    fern_parallel_for(x->shape[0] * j.G, grain_for(3 * d),
                      x->dtype == FERN_F64 ? gn_groups_f64 : gn_groups_f32, &j);
    return 0;
}

static const fern_op_def op_group_norm = {
    .name = "group_norm", .n_inputs = 3, .n_optional = 2, .n_outputs = 1,
    .attrs = group_norm_attrs, .n_attrs = 2, .infer = group_norm_infer,
    .kernel = {[FERN_CPU] = group_norm_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "normalize (N, C, ...) over groups of C/num_groups channels; inputs x, weight?, bias?",
    .grad = group_norm_grad};

fern_tensor *fern_group_norm(fern_tensor *x, int64_t num_groups, fern_tensor *weight,
                             fern_tensor *bias, double eps)
{
    fern_tensor *in[3] = {x, weight, bias};
    fern_attr a[2] = {fern__attr_int(num_groups), fern__attr_float(eps)};
    return fern__op1(&op_group_norm, 3, in, a);
}

/* ---- gradient rules -----------------------------------------------------
 * Written with public ops only, so they trace and are differentiable
 * themselves. Half inputs (seen by rules only inside traced graphs; eagerly
 * the dispatcher records the f32 computation) are computed in f32 like the
 * forward, and every cotangent is cast back to its input's dtype. */

/* y = softmax(x): dx = y * (g - sum(g * y)) = g*y - y * sum(g*y). */
static int softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *y = c->out[0];
    if (x->ndim == 0) { /* softmax of one value is the constant 1 */
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    int axis = (int)c->attrs[0].i;
    fern_tensor *gy = fern_mul(g[0], y);
    fern_tensor *r = fern_sub(gy, fern_mul(y, fern_sum(gy, &axis, 1, 1)));
    gi[0] = fern__sum_to(r, x);
    return gi[0] ? 0 : -1;
}

/* y = log_softmax(x): dx = g - exp(y) * sum(g). */
static int log_softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *y = c->out[0];
    if (x->ndim == 0) { /* the constant 0 */
        gi[0] = fern_zeros_like(x);
        return gi[0] ? 0 : -1;
    }
    int axis = (int)c->attrs[0].i;
    fern_tensor *r = fern_sub(g[0], fern_mul(fern_exp(y), fern_sum(g[0], &axis, 1, 1)));
    gi[0] = fern__sum_to(r, x);
    return gi[0] ? 0 : -1;
}

/* Recompute mean, rstd and xhat of x over `axes` (the forward's
 * statistics, biased variance). */
static fern_tensor *normalize(fern_tensor *x, const int *axes, int n_axes, double eps,
                              fern_tensor **rstd)
{
    fern_tensor *xc = fern_sub(x, fern_mean(x, axes, n_axes, 1));
    fern_tensor *var = fern_mean(fern_mul(xc, xc), axes, n_axes, 1);
    *rstd = fern_rsqrt(fern_add_scalar(var, eps));
    return fern_mul(xc, *rstd);
}

static int layer_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x0 = c->in[0], *w0 = c->in[1], *b0 = c->in[2];
    int k = (int)c->attrs[0].i, nd = x0->ndim, axes[FERN_MAX_DIMS];
    for (int i = 0; i < k; i++)
        axes[i] = nd - k + i;
    fern_tensor *x = to_f32_if_half(x0), *w = to_f32_if_half(w0), *g0 = to_f32_if_half(g[0]);
    fern_tensor *rstd = NULL;
    fern_tensor *xhat = normalize(x, axes, k, c->attrs[1].f, &rstd);
    fern_tensor *gy = w0 ? fern_mul(g0, w) : g0;
    gi[0] = fern__sum_to(norm_dx(gy, xhat, rstd, axes, k), x0);
    if (!gi[0])
        return -1;
    if (w0 && !(gi[1] = fern__sum_to(fern_mul(g0, xhat), w0)))
        return -1;
    if (b0 && !(gi[2] = fern__sum_to(g0, b0)))
        return -1;
    return 0;
}

/* group_norm: layer_norm over (N, G, C/G * S) and a per-channel affine. */
static int group_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x0 = c->in[0], *w0 = c->in[1], *b0 = c->in[2];
    int nd = x0->ndim, axes[FERN_MAX_DIMS], na = 0, two = 2;
    for (int d = 0; d < nd; d++)
        if (d != 1)
            axes[na++] = d;
    int64_t G = c->attrs[0].i, N = x0->shape[0];
    int64_t D = x0->shape[1] / G * fern__numel(nd - 2, x0->shape + 2);
    int64_t gshape[3] = {N, G, D};
    fern_tensor *x = to_f32_if_half(x0), *w = to_f32_if_half(w0), *g0 = to_f32_if_half(g[0]);
    fern_tensor *rstd = NULL;
    fern_tensor *xhat_r = normalize(fern_reshape(x, 3, gshape), &two, 1, c->attrs[1].f, &rstd);
    fern_tensor *gy = w0 ? fern_mul(g0, chan_view(w, x0)) : g0;
    fern_tensor *dx = norm_dx(fern_reshape(gy, 3, gshape), xhat_r, rstd, &two, 1);
    gi[0] = fern__sum_to(fern_reshape(dx, nd, x0->shape), x0);
    if (!gi[0])
        return -1;
    if (w0) {
        fern_tensor *xhat = fern_reshape(xhat_r, nd, x0->shape);
        if (!(gi[1] = fern__sum_to(fern_sum(fern_mul(g0, xhat), axes, na, 0), w0)))
            return -1;
    }
    if (b0 && !(gi[2] = fern__sum_to(fern_sum(g0, axes, na, 0), b0)))
        return -1;
    return 0;
}

const fern_op_def *const fern_ops_norm[] = {&op_softmax,
                                            &op_log_softmax,
                                            &op_layer_norm,
                                            &fern__op_batch_norm,
                                            &fern__op_batch_norm_backward,
                                            &op_group_norm,
                                            NULL};
