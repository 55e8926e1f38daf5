/* batch_norm, and batch_norm_backward: its training gradient as one op.
 *
 * batch_norm has three outputs: y, the mean it used and the inverse
 * standard deviation it used (batch statistics when training, the running
 * statistics otherwise), so a gradient rule can reuse them. The public
 * fern_batch_norm returns y and, in training with running statistics,
 * updates them in place like torch (momentum, unbiased batch variance).
 *
 * Why a fused backward: written with generic ops, the training gradient is
 * about ten full passes over x-sized tensors (sub, mul, mean, sum, ...) and
 * as many temporaries. batch_norm_backward (torch's
 * native_batch_norm_backward with train=True) makes two: per-channel sums of
 * g and g * (x - mean), then the elementwise formula. Its own gradient rule
 * is composed of public ops, so gradients of gradients through batch norm
 * still work.
 *
 * Memory order: a channel's values are N runs of H*W, one page apart for
 * 32x64x32x32 f32, and reading a channel at a time defeats the hardware
 * prefetcher (3x slower than a sweep). So each pass sweeps the tensor in
 * memory order over (n, c) planes: the first writes per-plane partial sums
 * to a small scratch array, which are then combined per channel in a fixed
 * order (so results never depend on the thread count), the second is
 * elementwise. Sums are kept in double, f32 inputs too, like the rest of the
 * family. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "norm_util.h"

#define BN_CB 64 /* channels per task when S == 1 */
/* Training statistics of planes shorter than this are computed channel by
 * channel: per-plane partials would add a scratch write and combine for
 * little data per plane (32x512x4x4: 165 us instead of 190). */
#define BN_SHORT 64

static int batch_norm_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int batch_norm_backward_grad(const fern_op_call *c, fern_tensor *const *g,
                                    fern_tensor **gi);

/* Combining per-plane partials is ~2N adds per channel: done inline by the
 * caller unless there are very many planes (a parallel region costs more,
 * and much more when the machine is oversubscribed). */
static int64_t combine_grain(int64_t N) { return (1 << 17) / (N > 0 ? N : 1) + 1; }

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
    double *part; /* scratch: per-plane partials, per-channel accumulators */
    int64_t N, C, S;
    double eps;
    int training;
} bn_job;

/* Channels [c0, c1): mean and invstd from the plane partials (scratch: P
 * plane sums, P plane squared deviations, then two C-long accumulators).
 * The squared deviations from the channel mean are those within each plane
 * plus S times the plane mean's squared deviation (exact, every term >= 0).
 * Loops run n outer so the partials are read contiguously; each channel
 * still adds its planes in order n = 0, 1, ... */
static void bn_combine(const bn_job *j, int64_t c0, int64_t c1, int f64)
{
    int64_t C = j->C, P = j->N * C, cnt = j->N * j->S;
    double S = (double)j->S;
    const double *ps = j->part, *pq = ps + P;
    double *m = j->part + 2 * P, *q = m + C;
    for (int64_t c = c0; c < c1; c++)
        m[c] = q[c] = 0;
    for (int64_t n = 0; n < j->N; n++)
        for (int64_t c = c0; c < c1; c++)
            m[c] += ps[n * C + c];
    for (int64_t c = c0; c < c1; c++)
        m[c] = cnt ? m[c] / (double)cnt : 0.0;
    for (int64_t n = 0; n < j->N; n++)
        for (int64_t c = c0; c < c1; c++) {
            double dm = j->S ? ps[n * C + c] / S - m[c] : 0.0;
            q[c] += pq[n * C + c] + S * dm * dm;
        }
    for (int64_t c = c0; c < c1; c++) {
        double v = cnt ? q[c] / (double)cnt : 0.0, r = 1.0 / sqrt(v + j->eps);
        if (f64) {
            ((double *)j->mean)[c] = m[c];
            ((double *)j->invstd)[c] = r;
        } else {
            ((float *)j->mean)[c] = (float)m[c];
            ((float *)j->invstd)[c] = (float)r;
        }
    }
}

static void bn_combine_f32(void *ctx, int64_t c0, int64_t c1) { bn_combine(ctx, c0, c1, 0); }
static void bn_combine_f64(void *ctx, int64_t c0, int64_t c1) { bn_combine(ctx, c0, c1, 1); }

#define DEF_BN(T, S_)                                                                          \
    /* Partials of (n, c) planes [p0, p1); the second pass reads from L1/L2. */                \
    static void bn_plane_stats_##S_(void *ctx, int64_t p0, int64_t p1)                         \
    {                                                                                          \
        const bn_job *j = ctx;                                                                 \
        for (int64_t p = p0; p < p1; p++) {                                                    \
            const T *x = (const T *)j->x + p * j->S;                                           \
            double s = sum_##S_(x, j->S), mp = j->S ? s / (double)j->S : 0.0;                  \
            j->part[p] = s;                                                                    \
            j->part[j->N * j->C + p] = sqdev_##S_(x, j->S, mp);                                \
        }                                                                                      \
    }                                                                                          \
    /* Channels [c0, c1), each read as N runs (for short runs: per-plane */                    \
    /* partials would cost a reduction per plane). */                                          \
    static void bn_chan_stats_##S_(void *ctx, int64_t c0, int64_t c1)                          \
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
    /* S == 1 (x is N rows of C): blocks of channels, vectorized over c. */                    \
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
        for (int64_t p = p0, c = p0 % j->C; p < p1; p++, c = c + 1 == j->C ? 0 : c + 1) {     \
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
        if (j->training && j->S == 1) {                                                        \
            fern_parallel_for((j->C + BN_CB - 1) / BN_CB, grain_for(2 * j->N * BN_CB),         \
                              bn_stats_rows_##S_, j);                                          \
        } else if (j->training && j->S < BN_SHORT) {                                           \
            fern_parallel_for(j->C, grain_for(2 * j->N * j->S), bn_chan_stats_##S_, j);        \
        } else if (j->training) {                                                              \
            fern_parallel_for(j->N * j->C, grain_for(2 * j->S), bn_plane_stats_##S_, j);       \
            fern_parallel_for(j->C, combine_grain(j->N), bn_combine_##S_, j);                  \
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

/* Per-plane scratch of 2 doubles per (n, c) plane, or NULL with the error
 * set (naming the op and its inputs). */
static double *plane_scratch(const fern_op_call *c, int64_t planes, int64_t extra)
{
    size_t n = (size_t)(2 * planes + extra);
    double *p = malloc((n ? n : 1) * sizeof(double));
    if (!p)
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory for %zu bytes of scratch", c->op->name,
                       n * sizeof(double));
    return p;
}

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
    j.part = NULL;
    if (j.training && j.S >= BN_SHORT && !(j.part = plane_scratch(c, j.N * j.C, 2 * j.C)))
        return -1;
    if (x->dtype == FERN_F64)
        bn_run_f64(&j);
    else
        bn_run_f32(&j);
    free(j.part);
    return 0;
}

const fern_op_def fern__op_batch_norm = {
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
        fern_op_call probe = {
            .op = &fern__op_batch_norm, .n_in = 5, .in = in, .attrs = a, .n_out = 3};
        int bad = fern__op_batch_norm.infer(&probe) != 0;
        for (int i = 0; i < 5 && !bad; i++)
            if (in[i] && !up[i])
                bad = 1;
        if (!bad && fern__op_run(&fern__op_batch_norm, 5, up, a, 3, out) == 0)
            y = fern_cast(out[0], x->dtype);
    } else if (fern__op_run(&fern__op_batch_norm, 5, in, a, 3, out) == 0) {
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

/* ---- batch_norm_backward ----------------------------------------------
 * Inputs grad_out g, x (N, C, ...), the saved mean and invstd r of the
 * training forward, weight w (optional: 1). With n = N * prod(...) values
 * per channel, sg = sum(g) and sd = sum(g * (x - mean)) per channel:
 *   grad_input  = (g - sg/n - (x - mean) * sd * r^2 / n) * r * w
 *   grad_weight = sd * r,  grad_bias = sg
 * exactly torch's native_batch_norm_backward(train=True). mean and invstd
 * are taken as given (they need not be x's statistics), which is what the
 * gradient rule differentiates. */

static int batch_norm_backward_infer(fern_op_call *c)
{
    const fern_tensor *g = c->in[0], *x = c->in[1];
    if (check_float_input(c, x))
        return -1;
    if (x->ndim < 2)
        return op_err(c, "expected an input of shape (N, C, ...) with at least 2 dims");
    if (g->dtype != x->dtype || g->ndim != x->ndim ||
        memcmp(g->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))
        return op_err(c, "grad_out must have the input's shape and dtype");
    int64_t C = x->shape[1];
    static const char *names[] = {"", "", "mean", "invstd", "weight"};
    for (int k = 2; k <= 4; k++)
        if (check_param_of(c, x, k, names[k], C))
            return -1;
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    fern__set_out(c, 1, x->dtype, 1, &C);
    fern__set_out(c, 2, x->dtype, 1, &C);
    return 0;
}

typedef struct {
    const void *g, *x, *mean, *invstd, *w;
    void *gi, *gw, *gb;
    double *part; /* scratch: per-plane partials, then per-channel coefficients */
    int64_t N, C, S;
} bnb_job;

/* Channels [c0, c1): grad_weight, grad_bias and the elementwise pass's
 * coefficients gi = (g - a - (x - mean) * k) * s from the plane partials
 * (scratch: P sums of g, P sums of g (x - mean), then a, k, s, C each;
 * n outer as in bn_combine). */
static void bnb_combine(const bnb_job *j, int64_t c0, int64_t c1, int f64)
{
    int64_t C = j->C, P = j->N * C;
    double n = (double)(j->N * j->S);
    const double *pg = j->part, *pd = pg + P;
    double *a = j->part + 2 * P, *k = a + C, *s = k + C;
    for (int64_t c = c0; c < c1; c++)
        a[c] = k[c] = 0;
    for (int64_t i = 0; i < j->N; i++)
        for (int64_t c = c0; c < c1; c++) {
            a[c] += pg[i * C + c];
            k[c] += pd[i * C + c];
        }
    for (int64_t c = c0; c < c1; c++) {
        double sg = a[c], sd = k[c];
        double r = f64 ? ((const double *)j->invstd)[c] : ((const float *)j->invstd)[c];
        double w = !j->w ? 1.0 : f64 ? ((const double *)j->w)[c] : ((const float *)j->w)[c];
        if (f64) {
            ((double *)j->gb)[c] = sg;
            ((double *)j->gw)[c] = sd * r;
        } else {
            ((float *)j->gb)[c] = (float)sg;
            ((float *)j->gw)[c] = (float)(sd * r);
        }
        a[c] = n > 0 ? sg / n : 0.0;
        k[c] = n > 0 ? sd * r * r / n : 0.0;
        s[c] = r * w;
    }
}

static void bnb_combine_f32(void *ctx, int64_t c0, int64_t c1) { bnb_combine(ctx, c0, c1, 0); }
static void bnb_combine_f64(void *ctx, int64_t c0, int64_t c1) { bnb_combine(ctx, c0, c1, 1); }

#define DEF_BNB(T, S_)                                                                         \
    /* sum(g * (x - m)) of a run, in double, in lanes like sum_. (sum(g) is */                \
    /* a separate loop over the run, read again from L1: with both sums in */                  \
    /* one loop GCC 12 vectorizes neither.) */                                                 \
    static double gdev_##S_(const T *restrict g, const T *restrict x, int64_t n, double m)    \
    {                                                                                          \
        double a[NORM_LANES] = {0};                                                            \
        int64_t i = 0;                                                                         \
        for (; i + NORM_LANES <= n; i += NORM_LANES)                                           \
            for (int k = 0; k < NORM_LANES; k++)                                               \
                a[k] += (double)g[i + k] * ((double)x[i + k] - m);                             \
        double s = norm_lanes_sum(a);                                                          \
        for (; i < n; i++)                                                                     \
            s += (double)g[i] * ((double)x[i] - m);                                            \
        return s;                                                                              \
    }                                                                                          \
    static void bnb_plane_sums_##S_(void *ctx, int64_t p0, int64_t p1)                         \
    {                                                                                          \
        const bnb_job *j = ctx;                                                                \
        for (int64_t p = p0, c = p0 % j->C; p < p1; p++, c = c + 1 == j->C ? 0 : c + 1) {     \
            const T *g = (const T *)j->g + p * j->S, *x = (const T *)j->x + p * j->S;          \
            double m = (double)((const T *)j->mean)[c];                                        \
            j->part[p] = sum_##S_(g, j->S);                                                    \
            j->part[j->N * j->C + p] = gdev_##S_(g, x, j->S, m);                               \
        }                                                                                      \
    }                                                                                          \
    static void bnb_planes_##S_(void *ctx, int64_t p0, int64_t p1)                             \
    {                                                                                          \
        const bnb_job *j = ctx;                                                                \
        const double *a = j->part + 2 * j->N * j->C, *k = a + j->C, *s = k + j->C;             \
        for (int64_t p = p0, c = p0 % j->C; p < p1; p++, c = c + 1 == j->C ? 0 : c + 1) {     \
            int64_t o = p * j->S;                                                              \
            T ac = (T)a[c], kc = (T)k[c], sc = (T)s[c], m = ((const T *)j->mean)[c];           \
            const T *restrict g = (const T *)j->g + o, *restrict x = (const T *)j->x + o;      \
            T *restrict gi = (T *)j->gi + o;                                                   \
            for (int64_t i = 0; i < j->S; i++)                                                 \
                gi[i] = (g[i] - ac - (x[i] - m) * kc) * sc;                                    \
        }                                                                                      \
    }                                                                                          \
    /* S == 1 (N rows of C): sums of blocks of channels, vectorized over c; */                 \
    /* then the coefficients from the stored grad_weight / grad_bias. */                       \
    static void bnb_block_sums_##S_(void *ctx, int64_t b0, int64_t b1)                         \
    {                                                                                          \
        const bnb_job *j = ctx;                                                                \
        double sg[BN_CB], sd[BN_CB], m[BN_CB];                                                 \
        for (int64_t bk = b0; bk < b1; bk++) {                                                 \
            int64_t c0 = bk * BN_CB, w = j->C - c0 < BN_CB ? j->C - c0 : BN_CB;                \
            for (int64_t c = 0; c < w; c++) {                                                  \
                sg[c] = sd[c] = 0;                                                             \
                m[c] = (double)((const T *)j->mean)[c0 + c];                                   \
            }                                                                                  \
            for (int64_t n = 0; n < j->N; n++) {                                               \
                const T *restrict g = (const T *)j->g + n * j->C + c0;                         \
                const T *restrict x = (const T *)j->x + n * j->C + c0;                         \
                for (int64_t c = 0; c < w; c++)                                                \
                    sg[c] += (double)g[c];                                                     \
                for (int64_t c = 0; c < w; c++)                                                \
                    sd[c] += (double)g[c] * ((double)x[c] - m[c]);                             \
            }                                                                                  \
            for (int64_t c = 0; c < w; c++) {                                                  \
                double r = (double)((const T *)j->invstd)[c0 + c];                             \
                ((T *)j->gb)[c0 + c] = (T)sg[c];                                               \
                ((T *)j->gw)[c0 + c] = (T)(sd[c] * r);                                         \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void bnb_rows_##S_(void *ctx, int64_t r0, int64_t r1)                               \
    {                                                                                          \
        const bnb_job *j = ctx;                                                                \
        double n = (double)j->N;                                                               \
        T a[BN_CB], k[BN_CB], s[BN_CB], m[BN_CB];                                              \
        for (int64_t c0 = 0; c0 < j->C; c0 += BN_CB) {                                         \
            int64_t w = j->C - c0 < BN_CB ? j->C - c0 : BN_CB;                                 \
            for (int64_t c = 0; c < w; c++) {                                                  \
                double r = (double)((const T *)j->invstd)[c0 + c];                             \
                double sg = (double)((const T *)j->gb)[c0 + c];                                \
                double gwr = (double)((const T *)j->gw)[c0 + c] * r; /* sd r^2 */              \
                a[c] = (T)(n > 0 ? sg / n : 0.0);                                              \
                k[c] = (T)(n > 0 ? gwr / n : 0.0);                                             \
                s[c] = (T)(j->w ? r * (double)((const T *)j->w)[c0 + c] : r);                  \
                m[c] = ((const T *)j->mean)[c0 + c];                                           \
            }                                                                                  \
            for (int64_t r = r0; r < r1; r++) {                                                \
                const T *restrict g = (const T *)j->g + r * j->C + c0;                         \
                const T *restrict x = (const T *)j->x + r * j->C + c0;                         \
                T *restrict gi = (T *)j->gi + r * j->C + c0;                                   \
                for (int64_t c = 0; c < w; c++)                                                \
                    gi[c] = (g[c] - a[c] - (x[c] - m[c]) * k[c]) * s[c];                       \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
    static void bnb_run_##S_(bnb_job *j)                                                       \
    {                                                                                          \
        int64_t N = j->N, C = j->C, S = j->S;                                                  \
        if (S == 1) {                                                                          \
            fern_parallel_for((C + BN_CB - 1) / BN_CB, grain_for(2 * N * BN_CB),               \
                              bnb_block_sums_##S_, j);                                         \
            fern_parallel_for(N, grain_for(3 * C), bnb_rows_##S_, j);                          \
        } else {                                                                               \
            fern_parallel_for(N * C, grain_for(3 * S), bnb_plane_sums_##S_, j);                \
            fern_parallel_for(C, combine_grain(N), bnb_combine_##S_, j);                       \
            fern_parallel_for(N * C, grain_for(3 * S), bnb_planes_##S_, j);                    \
        }                                                                                      \
    }

DEF_BNB(float, f32)
DEF_BNB(double, f64)

static int batch_norm_backward_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[1];
    bnb_job j = {fern_tensor_data(c->in[0]),
                 fern_tensor_data(x),
                 fern_tensor_data(c->in[2]),
                 fern_tensor_data(c->in[3]),
                 c->in[4] ? fern_tensor_data(c->in[4]) : NULL,
                 fern_tensor_data(c->out[0]),
                 fern_tensor_data(c->out[1]),
                 fern_tensor_data(c->out[2]),
                 NULL,
                 x->shape[0],
                 x->shape[1],
                 fern__numel(x->ndim - 2, x->shape + 2)};
    if (j.S != 1 && !(j.part = plane_scratch(c, j.N * j.C, 3 * j.C)))
        return -1;
    if (x->dtype == FERN_F64)
        bnb_run_f64(&j);
    else
        bnb_run_f32(&j);
    free(j.part);
    return 0;
}

const fern_op_def fern__op_batch_norm_backward = {
    .name = "batch_norm_backward", .n_inputs = 5, .n_optional = 1, .n_outputs = 3,
    .infer = batch_norm_backward_infer, .kernel = {[FERN_CPU] = batch_norm_backward_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 1,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "training gradient of batch_norm: inputs grad_out, x, mean, invstd (batch_norm's "
           "outputs 1 and 2), weight?; outputs grad_input, grad_weight, grad_bias",
    .grad = batch_norm_backward_grad};

/* ---- gradient rules -----------------------------------------------------
 * Written with public ops only (see norm.c). */

/* batch_norm. Training: y = (x - mean) * invstd * w + b with the batch
 * statistics, which are also outputs 1 and 2; their cotangents are
 * included (d mean/dx = 1/n, d invstd/dx = -invstd^3 (x - mean)/n), so the
 * rule is the exact derivative of all three outputs (torch's
 * native_batch_norm treats them as saved statistics and ignores their
 * cotangents; with none given the two agree). y's part is the fused
 * batch_norm_backward, fed the forward's statistics: differentiating it
 * again reaches x through them too. running_mean / running_var do not enter
 * the outputs: no gradient. Inference: y = (x - rm) * invstd * w + b with
 * invstd = (rv + eps)^-1/2; mean = rm and invstd are outputs. Gradients go
 * to x, weight, bias and also to rm and rv (torch treats the running
 * statistics as buffers without gradient; here they are ordinary inputs, so
 * the rule gives their true derivative). */
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
        fern_tensor *mean = to_f32_if_half(c->out[1]);
        if (g0) {
            fern_tensor *bin[5] = {g0, x, mean, inv, w}, *bo[3];
            if (fern__op_run(&fern__op_batch_norm_backward, 5, bin, NULL, 3, bo))
                return -1;
            dx = bo[0];
            if (w0 && !(gi[3] = fern__sum_to(bo[1], w0)))
                return -1;
            if (b0 && !(gi[4] = fern__sum_to(bo[2], b0)))
                return -1;
        }
        if (count > 0 && (g1 || g2)) {
            /* per-channel terms: g1/n + g2 * (-invstd^2/n) * xhat */
            fern_tensor *t = NULL;
            if (g1)
                t = fern_expand(fern_mul_scalar(chan_view(g1, x0), 1.0 / (double)count), nd,
                                x0->shape);
            if (g2) {
                fern_tensor *xhat = fern_mul(fern_sub(x, chan_view(mean, x0)), inv_b);
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

/* a + b where either may be NULL (a zero term). */
static fern_tensor *add_opt(fern_tensor *a, fern_tensor *b)
{
    return !a ? b : !b ? a : fern_add(a, b);
}

/* batch_norm_backward, differentiated as the function of its five inputs
 * defined above (for gradients of gradients). Per channel, with d = x - mean,
 * A = r * w, sg = sum(g), sd = sum(g d) and, from the cotangents Gi, Gw, Gb
 * of the outputs, P = sum(Gi), Q = sum(Gi d), GG = sum(Gi g):
 *   dg    = A (Gi - P/n - d Q r^2/n) + Gw r d + Gb
 *   dx    = -A r^2/n (Gi sd + Q g) + Gw r g
 *   dmean = A r^2/n (P sd + Q sg) - Gw r sg       (= -sum(dx) per channel)
 *   dw    = r (GG - sg P/n - Q sd r^2/n)
 *   dr    = w (GG - sg P/n) - 3 w r^2 Q sd/n + Gw sd */
static int batch_norm_backward_grad(const fern_op_call *c, fern_tensor *const *G,
                                    fern_tensor **gi)
{
    fern_tensor *g00 = c->in[0], *x0 = c->in[1], *m0 = c->in[2], *r0 = c->in[3],
                *w0 = c->in[4];
    fern_tensor *Gi = to_f32_if_half(G[0]), *Gw = to_f32_if_half(G[1]),
                *Gb = to_f32_if_half(G[2]);
    if (!Gi && !Gw && !Gb)
        return 0;
    int nd = x0->ndim, axes[FERN_MAX_DIMS], na = 0;
    for (int d = 0; d < nd; d++)
        if (d != 1)
            axes[na++] = d;
    int64_t C = x0->shape[1], count = fern_tensor_numel(x0) / (C ? C : 1);
    double inv_n = count > 0 ? 1.0 / (double)count : 0.0;
    fern_tensor *g = to_f32_if_half(g00), *x = to_f32_if_half(x0), *r = to_f32_if_half(r0),
                *w = to_f32_if_half(w0);
#define CH(v) chan_view((v), x0)
#define CSUM(t) fern_sum((t), axes, na, 0)
    fern_tensor *d = fern_sub(x, CH(to_f32_if_half(m0)));
    fern_tensor *sg = CSUM(g), *sd = CSUM(fern_mul(g, d));
    fern_tensor *dg = NULL, *dx = NULL, *dm = NULL, *dw = NULL, *dr = NULL;
    if (Gi) {
        fern_tensor *A = w ? fern_mul(r, w) : r;
        fern_tensor *r2n = fern_mul_scalar(fern_mul(r, r), inv_n);
        fern_tensor *Ar2n = fern_mul(A, r2n);
        fern_tensor *P = CSUM(Gi), *Q = CSUM(fern_mul(Gi, d)), *GG = CSUM(fern_mul(Gi, g));
        dg = fern_mul(CH(A), fern_sub(fern_sub(Gi, CH(fern_mul_scalar(P, inv_n))),
                                      fern_mul(d, CH(fern_mul(Q, r2n)))));
        dx = fern_mul(CH(fern_neg(Ar2n)), fern_add(fern_mul(Gi, CH(sd)), fern_mul(g, CH(Q))));
        dm = fern_mul(Ar2n, fern_add(fern_mul(P, sd), fern_mul(Q, sg)));
        fern_tensor *base = fern_sub(GG, fern_mul_scalar(fern_mul(sg, P), inv_n));
        fern_tensor *qsr = fern_mul(fern_mul(Q, sd), r2n);
        if (w0)
            dw = fern_mul(r, fern_sub(base, qsr));
        dr = fern_sub(base, fern_mul_scalar(qsr, 3.0));
        if (w0)
            dr = fern_mul(dr, w);
    }
    if (Gw) {
        fern_tensor *gwr = fern_mul(Gw, r);
        dg = add_opt(dg, fern_mul(CH(gwr), d));
        dx = add_opt(dx, fern_mul(CH(gwr), g));
        dm = add_opt(dm, fern_neg(fern_mul(gwr, sg)));
        dr = add_opt(dr, fern_mul(Gw, sd));
    }
    if (Gb)
        dg = add_opt(dg, fern_expand(CH(Gb), nd, x0->shape));
#undef CH
#undef CSUM
    int need_x = Gi || Gw; /* a NULL here is an error already set */
    if (!dg || (need_x && (!dx || !dm || !dr || (Gi && w0 && !dw))))
        return -1;
    if (dg && !(gi[0] = fern__sum_to(dg, g00)))
        return -1;
    if (dx && !(gi[1] = fern__sum_to(dx, x0)))
        return -1;
    if (dm && !(gi[2] = fern__sum_to(dm, m0)))
        return -1;
    if (dr && !(gi[3] = fern__sum_to(dr, r0)))
        return -1;
    if (dw && !(gi[4] = fern__sum_to(dw, w0)))
        return -1;
    return 0;
}
