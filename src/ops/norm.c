/* Normalization ops: softmax, log_softmax, layer_norm, batch_norm and
 * group_norm, with torch.nn.functional semantics.
 *
 * Every kernel works on contiguous inputs (FERN_OPF_CONTIG_INPUTS), keeps
 * statistics in double (f32 rows too, so long rows stay accurate), splits
 * the work over rows / channels / groups with fern_parallel_for, and never
 * lets the result depend on the thread count: each statistic is computed
 * entirely by one task in a fixed order. f16 and bf16 run through f32.
 *
 * batch_norm has three outputs: y, the mean it used and the inverse
 * standard deviation it used (batch statistics when training, the running
 * statistics otherwise), so a gradient rule can reuse them. The public
 * fern_batch_norm returns y and, in training with running statistics,
 * updates them in place like torch (momentum, unbiased batch variance). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "op_def.h"
#include "../backend/cpu/vexpf.h"

#define GRAIN_WORK 32768

/* Gradient rules (at the end of the file). */
static int softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int log_softmax_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int layer_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int batch_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int group_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- shared helpers ---------------------------------------------------- */

#define op_err fern__op_error
#define is_half fern__is_half


/* A parameter (weight, bias, running stat) may have x's dtype, or f32 when x
 * is f16/bf16 (it is computed in f32 then). */
static int param_dtype_ok(fern_dtype x, fern_dtype p)
{
    return p == x || (is_half(x) && p == FERN_F32);
}

static int check_float_input(const fern_op_call *c, const fern_tensor *x)
{
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected a float tensor");
    return 0;
}

static int check_param(const fern_op_call *c, int idx, const char *what, int64_t want_n)
{
    const fern_tensor *p = c->in[idx], *x = c->in[0];
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

static int64_t grain_for(int64_t work_per_item)
{
    if (work_per_item < 1)
        work_per_item = 1;
    int64_t g = GRAIN_WORK / work_per_item;
    return g < 1 ? 1 : g;
}


/* Sum / centred sum of squares of a contiguous run, in double, with eight
 * independent lanes so the loops vectorize without -ffast-math. */
#define DEF_STATS(T, S)                                                                        \
    static double sum_##S(const T *restrict x, int64_t n)                                      \
    {                                                                                          \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8)                                                             \
            for (int k = 0; k < 8; k++)                                                        \
                a[k] += (double)x[i + k];                                                      \
        double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));          \
        for (; i < n; i++)                                                                     \
            s += (double)x[i];                                                                 \
        return s;                                                                              \
    }                                                                                          \
    static double sqdev_##S(const T *restrict x, int64_t n, double m)                          \
    {                                                                                          \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                                \
        int64_t i = 0;                                                                         \
        for (; i + 8 <= n; i += 8)                                                             \
            for (int k = 0; k < 8; k++) {                                                      \
                double d = (double)x[i + k] - m;                                               \
                a[k] += d * d;                                                                 \
            }                                                                                  \
        double s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));          \
        for (; i < n; i++) {                                                                   \
            double d = (double)x[i] - m;                                                       \
            s += d * d;                                                                        \
        }                                                                                      \
        return s;                                                                              \
    }                                                                                          \
    /* y = (x - m) * r * w + b over a run; w / b may be NULL. */                               \
    static void affine_##S(T *restrict y, const T *restrict x, int64_t n, T m, T r,            \
                           const T *restrict w, const T *restrict b)                           \
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
    static void affine_s_##S(T *restrict y, const T *restrict x, int64_t n, T m, T s, T b)     \
    {                                                                                          \
        for (int64_t i = 0; i < n; i++)                                                        \
            y[i] = (x[i] - m) * s + b;                                                         \
    }

DEF_STATS(float, f32)
DEF_STATS(double, f64)

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

/* ---- batch_norm -------------------------------------------------------- */

static const fern_attr_spec batch_norm_attrs[] = {{"training", FERN_ATTR_INT, 0, NULL},
                                                  {"momentum", FERN_ATTR_FLOAT, 0.1, NULL},
                                                  {"eps", FERN_ATTR_FLOAT, 1e-5, NULL}};

static int batch_norm_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int training = c->attrs[0].i != 0;
    if (check_float_input(c, x))
        return -1;
    if (x->ndim < 2)
        return op_err(c, "expected an input of shape (N, C, ...) with at least 2 dims");
    if (!(c->attrs[2].f >= 0))
        return op_err(c, "eps must be non-negative, got %g", c->attrs[2].f);
    int64_t C = x->shape[1];
    static const char *names[] = {"", "running_mean", "running_var", "weight", "bias"};
    for (int k = 1; k <= 4; k++)
        if (check_param(c, k, names[k], C))
            return -1;
    if (!c->in[1] != !c->in[2])
        return op_err(c, "running_mean and running_var must be given together");
    if (!training && !c->in[1])
        return op_err(c, "running_mean and running_var are required when training=0");
    int64_t count = fern_tensor_numel(x) / (C ? C : 1);
    if (training && C > 0 && count == 1)
        return op_err(c, "expected more than 1 value per channel when training");
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    fern__set_out(c, 1, x->dtype, 1, &C);
    fern__set_out(c, 2, x->dtype, 1, &C);
    return 0;
}

typedef struct {
    const void *x, *rm, *rv, *w, *b;
    void *y, *mean, *invstd;
    int64_t N, C, S;
    double eps;
    int training;
} bn_job;

#define BN_CB 64 /* channels per task when S == 1 */

#define DEF_BN(T, S_)                                                                          \
    /* Batch statistics of channels [c0, c1) when each (n, c) run is long. */                  \
    static void bn_stats_##S_(void *ctx, int64_t c0, int64_t c1)                               \
    {                                                                                          \
        const bn_job *j = ctx;                                                                 \
        const T *x = j->x;                                                                     \
        int64_t cnt = j->N * j->S;                                                             \
        for (int64_t c = c0; c < c1; c++) {                                                    \
            double s = 0, q = 0;                                                               \
            for (int64_t n = 0; n < j->N; n++)                                                 \
                s += sum_##S_(x + (n * j->C + c) * j->S, j->S);                                \
            double m = cnt ? s / (double)cnt : 0.0;                                            \
            for (int64_t n = 0; n < j->N; n++)                                                 \
                q += sqdev_##S_(x + (n * j->C + c) * j->S, j->S, m);                           \
            double v = cnt ? q / (double)cnt : 0.0;                                            \
            ((T *)j->mean)[c] = (T)m;                                                          \
            ((T *)j->invstd)[c] = (T)(1.0 / sqrt(v + j->eps));                                 \
        }                                                                                      \
    }                                                                                          \
    /* Same for S == 1 (x is N rows of C): blocks of channels, vectorized over c. */           \
    static void bn_stats_rows_##S_(void *ctx, int64_t b0, int64_t b1)                          \
    {                                                                                          \
        const bn_job *j = ctx;                                                                 \
        const T *x = j->x;                                                                     \
        double s[BN_CB], q[BN_CB];                                                             \
        for (int64_t b = b0; b < b1; b++) {                                                    \
            int64_t c0 = b * BN_CB, w = j->C - c0 < BN_CB ? j->C - c0 : BN_CB;                 \
            for (int64_t c = 0; c < w; c++)                                                    \
                s[c] = q[c] = 0;                                                               \
            for (int64_t n = 0; n < j->N; n++) {                                               \
                const T *restrict xr = x + n * j->C + c0;                                      \
                for (int64_t c = 0; c < w; c++)                                                \
                    s[c] += (double)xr[c];                                                     \
            }                                                                                  \
            for (int64_t c = 0; c < w; c++)                                                    \
                s[c] = j->N ? s[c] / (double)j->N : 0.0;                                       \
            for (int64_t n = 0; n < j->N; n++) {                                               \
                const T *restrict xr = x + n * j->C + c0;                                      \
                for (int64_t c = 0; c < w; c++) {                                              \
                    double d = (double)xr[c] - s[c];                                           \
                    q[c] += d * d;                                                             \
                }                                                                              \
            }                                                                                  \
            for (int64_t c = 0; c < w; c++) {                                                  \
                double v = j->N ? q[c] / (double)j->N : 0.0;                                   \
                ((T *)j->mean)[c0 + c] = (T)s[c];                                              \
                ((T *)j->invstd)[c0 + c] = (T)(1.0 / sqrt(v + j->eps));                        \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    /* y over (n, c) planes [p0, p1). */                                                       \
    static void bn_apply_##S_(void *ctx, int64_t p0, int64_t p1)                               \
    {                                                                                          \
        const bn_job *j = ctx;                                                                 \
        const T *mean = j->mean, *inv = j->invstd, *w = j->w, *b = j->b;                       \
        for (int64_t p = p0; p < p1; p++) {                                                    \
            int64_t c = p % j->C;                                                              \
            T sc = w ? inv[c] * w[c] : inv[c];                                                 \
            affine_s_##S_((T *)j->y + p * j->S, (const T *)j->x + p * j->S, j->S, mean[c], sc, \
                          b ? b[c] : (T)0);                                                    \
        }                                                                                      \
    }                                                                                          \
    /* y when S == 1: rows [r0, r1) of C channels. */                                          \
    static void bn_apply_rows_##S_(void *ctx, int64_t r0, int64_t r1)                          \
    {                                                                                          \
        const bn_job *j = ctx;                                                                 \
        const T *restrict mean = j->mean, *restrict inv = j->invstd;                           \
        const T *restrict w = j->w, *restrict b = j->b;                                        \
        int64_t C = j->C;                                                                      \
        for (int64_t r = r0; r < r1; r++) {                                                    \
            const T *restrict x = (const T *)j->x + r * C;                                     \
            T *restrict y = (T *)j->y + r * C;                                                 \
            if (w && b)                                                                        \
                for (int64_t c = 0; c < C; c++)                                                \
                    y[c] = (x[c] - mean[c]) * (inv[c] * w[c]) + b[c];                          \
            else if (w)                                                                        \
                for (int64_t c = 0; c < C; c++)                                                \
                    y[c] = (x[c] - mean[c]) * (inv[c] * w[c]);                                 \
            else if (b)                                                                        \
                for (int64_t c = 0; c < C; c++)                                                \
                    y[c] = (x[c] - mean[c]) * inv[c] + b[c];                                   \
            else                                                                               \
                for (int64_t c = 0; c < C; c++)                                                \
                    y[c] = (x[c] - mean[c]) * inv[c];                                          \
        }                                                                                      \
    }                                                                                          \
    static void bn_run_##S_(bn_job *j)                                                         \
    {                                                                                          \
        T *mean = j->mean, *inv = j->invstd;                                                   \
        if (j->training) {                                                                     \
            if (j->S == 1)                                                                     \
                fern_parallel_for((j->C + BN_CB - 1) / BN_CB, grain_for(2 * j->N * BN_CB),     \
                                  bn_stats_rows_##S_, j);                                      \
            else                                                                               \
                fern_parallel_for(j->C, grain_for(2 * j->N * j->S), bn_stats_##S_, j);         \
        } else {                                                                               \
            for (int64_t c = 0; c < j->C; c++) {                                               \
                mean[c] = ((const T *)j->rm)[c];                                               \
                inv[c] = (T)(1.0 / sqrt((double)((const T *)j->rv)[c] + j->eps));              \
            }                                                                                  \
        }                                                                                      \
        if (j->S == 1)                                                                         \
            fern_parallel_for(j->N, grain_for(j->C), bn_apply_rows_##S_, j);                   \
        else                                                                                   \
            fern_parallel_for(j->N * j->C, grain_for(j->S), bn_apply_##S_, j);                 \
    }

DEF_BN(float, f32)
DEF_BN(double, f64)

static int batch_norm_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    bn_job j;
    j.x = fern_tensor_data(x);
    j.rm = c->in[1] ? fern_tensor_data(c->in[1]) : NULL;
    j.rv = c->in[2] ? fern_tensor_data(c->in[2]) : NULL;
    j.w = c->in[3] ? fern_tensor_data(c->in[3]) : NULL;
    j.b = c->in[4] ? fern_tensor_data(c->in[4]) : NULL;
    j.y = fern_tensor_data(c->out[0]);
    j.mean = fern_tensor_data(c->out[1]);
    j.invstd = fern_tensor_data(c->out[2]);
    j.N = x->shape[0];
    j.C = x->shape[1];
    j.S = fern__numel(x->ndim - 2, x->shape + 2);
    j.eps = c->attrs[2].f;
    j.training = c->attrs[0].i != 0;
    if (x->dtype == FERN_F64)
        bn_run_f64(&j);
    else
        bn_run_f32(&j);
    return 0;
}

static const fern_op_def op_batch_norm = {
    .name = "batch_norm", .n_inputs = 5, .n_optional = 4, .n_outputs = 3,
    .attrs = batch_norm_attrs, .n_attrs = 3, .infer = batch_norm_infer,
    .kernel = {[FERN_CPU] = batch_norm_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "inputs x, running_mean?, running_var?, weight?, bias?; outputs y, the mean used and "
           "the inverse std used (batch stats when training, else running stats)",
    .grad = batch_norm_grad};

/* In place: running = (1 - momentum) * running + momentum * batch stat,
 * with the unbiased batch variance. mean/invstd are the op's saved stats. */
static void update_running(fern_tensor *rm, fern_tensor *rv, const fern_tensor *mean,
                           const fern_tensor *invstd, int64_t count, double momentum, double eps)
{
    int64_t C = rm->shape[0];
    double unbias = (double)count / (double)(count - 1);
    for (int64_t c = 0; c < C; c++) {
        double m = fern_tensor_get_flat(mean, c);
        double is = fern_tensor_get_flat(invstd, c);
        double var = 1.0 / (is * is) - eps;
        if (var < 0)
            var = 0;
        double om = fern_tensor_get(rm, &c), ov = fern_tensor_get(rv, &c);
        fern_tensor_set(rm, &c, (1.0 - momentum) * om + momentum * m);
        fern_tensor_set(rv, &c, (1.0 - momentum) * ov + momentum * var * unbias);
    }
}

fern_tensor *fern_batch_norm(fern_tensor *x, fern_tensor *running_mean,
                             fern_tensor *running_var, fern_tensor *weight, fern_tensor *bias,
                             int training, double momentum, double eps)
{
    fern_tensor *in[5] = {x, running_mean, running_var, weight, bias};
    fern_attr a[3] = {fern__attr_int(training != 0), fern__attr_float(momentum),
                      fern__attr_float(eps)};
    fern_tensor *out[3] = {NULL, NULL, NULL};
    int update = x && training && running_mean && running_var && x->storage &&
                 running_mean->storage && running_var->storage;
    fern_tensor *y = NULL;
    fern_scope_begin();
    if (update && is_half(x->dtype)) {
        /* Compute in f32 ourselves so the statistics that update the running
         * values keep f32 precision (the dispatcher would round them). */
        fern_tensor *up[5];
        for (int i = 0; i < 5; i++)
            up[i] = in[i] && is_half(in[i]->dtype) ? fern_cast(in[i], FERN_F32) : in[i];
        /* infer on the original inputs first, so errors describe them */
        fern_op_call probe = {.op = &op_batch_norm, .n_in = 5, .in = in, .attrs = a, .n_out = 3};
        int bad = op_batch_norm.infer(&probe) != 0;
        for (int i = 0; i < 5 && !bad; i++)
            if (in[i] && !up[i])
                bad = 1;
        if (!bad && fern__op_run(&op_batch_norm, 5, up, a, 3, out) == 0)
            y = fern_cast(out[0], x->dtype);
    } else if (fern__op_run(&op_batch_norm, 5, in, a, 3, out) == 0) {
        y = out[0];
    }
    /* while tracing, outputs are symbolic: nothing to update now */
    if (y && update && out[1]->storage && out[2]->storage) {
        int64_t C = x->shape[1];
        int64_t count = fern_tensor_numel(x) / (C ? C : 1);
        if (count > 1)
            update_running(running_mean, running_var, out[1], out[2], count, momentum, eps);
    }
    if (y)
        fern_keep(y);
    fern_scope_end();
    return y;
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

static fern_tensor *to_f32_if_half(fern_tensor *t)
{
    return t && is_half(t->dtype) ? fern_cast(t, FERN_F32) : t;
}

/* A per-channel (C) vector shaped (1, C, 1, ...) to broadcast over x. */
static fern_tensor *chan_view(fern_tensor *v, const fern_tensor *x)
{
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++)
        shape[d] = d == 1 ? x->shape[1] : 1;
    return fern_reshape(v, x->ndim, shape);
}

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

/* The input gradient of a normalization xhat = (x - mean) * rstd over
 * `axes` (each group of n elements), given gy = dL/dxhat:
 * dx = rstd * (gy - mean(gy) - xhat * mean(gy * xhat)). */
static fern_tensor *norm_dx(fern_tensor *gy, fern_tensor *xhat, fern_tensor *rstd,
                            const int *axes, int n_axes)
{
    fern_tensor *m1 = fern_mean(gy, axes, n_axes, 1);
    fern_tensor *m2 = fern_mean(fern_mul(gy, xhat), axes, n_axes, 1);
    return fern_mul(rstd, fern_sub(fern_sub(gy, m1), fern_mul(xhat, m2)));
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

/* batch_norm. Training: y = (x - mean) * invstd * w + b with the batch
 * statistics, which are also outputs 1 and 2; their cotangents are
 * included (d mean/dx = 1/n, d invstd/dx = -invstd^3 (x - mean)/n), so the
 * rule is the exact derivative of all three outputs (torch's
 * native_batch_norm treats them as saved statistics and ignores their
 * cotangents; with none given the two agree). running_mean / running_var
 * do not enter the outputs: no gradient. Inference: y = (x - rm) * invstd *
 * w + b with invstd = (rv + eps)^-1/2; mean = rm and invstd are outputs.
 * Gradients go to x, weight, bias and also to rm and rv (torch treats the
 * running statistics as buffers without gradient; here they are ordinary
 * inputs, so the rule gives their true derivative). */
static int batch_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x0 = c->in[0], *rm0 = c->in[1], *rv0 = c->in[2], *w0 = c->in[3],
                *b0 = c->in[4];
    int training = c->attrs[0].i != 0, nd = x0->ndim, axes[FERN_MAX_DIMS], na = 0;
    for (int d = 0; d < nd; d++)
        if (d != 1)
            axes[na++] = d;
    int64_t C = x0->shape[1], count = fern_tensor_numel(x0) / (C ? C : 1);
    fern_tensor *x = to_f32_if_half(x0), *w = to_f32_if_half(w0);
    fern_tensor *g0 = to_f32_if_half(g[0]), *g1 = to_f32_if_half(g[1]),
                *g2 = to_f32_if_half(g[2]);
    fern_tensor *inv = to_f32_if_half(c->out[2]);
    fern_tensor *inv_b = chan_view(inv, x0), *w_b = w0 ? chan_view(w, x0) : NULL;
    fern_tensor *dx = NULL;
    if (training) {
        fern_tensor *mean_b = chan_view(to_f32_if_half(c->out[1]), x0);
        fern_tensor *xhat = fern_mul(fern_sub(x, mean_b), inv_b);
        if (g0) {
            fern_tensor *gy = w_b ? fern_mul(g0, w_b) : g0;
            dx = norm_dx(gy, xhat, inv_b, axes, na);
            if (w0 && !(gi[3] = fern__sum_to(fern_sum(fern_mul(g0, xhat), axes, na, 0), w0)))
                return -1;
            if (b0 && !(gi[4] = fern__sum_to(fern_sum(g0, axes, na, 0), b0)))
                return -1;
        }
        if (count > 0 && (g1 || g2)) {
            /* per-channel terms: g1/n + g2 * (-invstd^2/n) * xhat */
            fern_tensor *t = NULL;
            if (g1)
                t = fern_expand(fern_mul_scalar(chan_view(g1, x0), 1.0 / (double)count), nd,
                                x0->shape);
            if (g2) {
                fern_tensor *s = fern_mul(fern_mul(chan_view(g2, x0), fern_mul(inv_b, inv_b)),
                                          xhat);
                s = fern_mul_scalar(s, -1.0 / (double)count);
                t = t ? fern_add(t, s) : s;
            }
            dx = dx ? fern_add(dx, t) : t;
        }
    } else {
        fern_tensor *rm = to_f32_if_half(rm0);
        fern_tensor *drm = g1, *dinv = g2;
        if (g0) {
            fern_tensor *gw = w_b ? fern_mul(g0, w_b) : g0;
            fern_tensor *xm = fern_sub(x, chan_view(rm, x0));
            dx = fern_mul(gw, inv_b);
            fern_tensor *srm = fern_neg(fern_sum(dx, axes, na, 0));
            fern_tensor *sinv = fern_sum(fern_mul(gw, xm), axes, na, 0);
            drm = drm ? fern_add(drm, srm) : srm;
            dinv = dinv ? fern_add(dinv, sinv) : sinv;
            if (w0 && !(gi[3] = fern__sum_to(
                            fern_sum(fern_mul(g0, fern_mul(xm, inv_b)), axes, na, 0), w0)))
                return -1;
            if (b0 && !(gi[4] = fern__sum_to(fern_sum(g0, axes, na, 0), b0)))
                return -1;
        }
        if (drm && !(gi[1] = fern__sum_to(drm, rm0)))
            return -1;
        /* d invstd / d rv = -invstd^3 / 2 */
        if (dinv) {
            fern_tensor *inv3 = fern_mul(inv, fern_mul(inv, inv));
            fern_tensor *d = fern_mul(dinv, fern_mul_scalar(inv3, -0.5));
            if (!(gi[2] = fern__sum_to(d, rv0)))
                return -1;
        }
    }
    if (dx && !(gi[0] = fern__sum_to(dx, x0)))
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

const fern_op_def *const fern_ops_norm[] = {&op_softmax,    &op_log_softmax, &op_layer_norm,
                                            &op_batch_norm, &op_group_norm,  NULL};
