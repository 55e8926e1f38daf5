/* Loss ops with torch.nn.functional semantics: cross_entropy, nll_loss,
 * mse_loss and bce_with_logits. Each is one fused kernel (a registry op
 * callable by name). The reduction is an INT attribute: 0 none, 1 mean,
 * 2 sum (fern_reduction).
 *
 * Reductions are deterministic: samples / elements are cut into fixed
 * blocks whatever the thread count, each block's partial sum (in double)
 * is computed by one task, and the partials are added in block order.
 *
 * cross_entropy / nll_loss with class indices: loss_i = -w[t_i] log p_i[t_i]
 * (with label smoothing eps: (1-eps) * that + eps/C * -sum_c w[c] log p_i[c]),
 * 0 where t_i == ignore_index; "mean" divides by the sum of w[t_i] over the
 * samples not ignored (NaN when there are none), exactly like torch.
 * cross_entropy with class probabilities (target shaped like the logits):
 * loss_i = -sum_c w[c] q_i[c] log p_i[c] with q = (1-eps) t + eps/C; "mean"
 * divides by the number of samples. */
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "op_def.h"
#include "../backend/cpu/vexpf.h"

/* Gradient rules (at the end of the file). */
static int class_loss_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int mse_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int bce_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- shared helpers ---------------------------------------------------- */

#define op_err fern__op_error
#define is_half fern__is_half

static int param_dtype_ok(fern_dtype x, fern_dtype p)
{
    return p == x || (is_half(x) && p == FERN_F32);
}

static int check_reduction(const fern_op_call *c, int64_t r)
{
    if (r < FERN_REDUCTION_NONE || r > FERN_REDUCTION_SUM)
        return op_err(c, "reduction must be 0 (none), 1 (mean) or 2 (sum), got %lld",
                      (long long)r);
    return 0;
}

static int check_param_dtype(const fern_op_call *c, int idx, const char *what)
{
    const fern_tensor *p = c->in[idx], *x = c->in[0];
    if (p && !param_dtype_ok(x->dtype, p->dtype))
        return op_err(c, "%s has dtype %s, expected %s like the input", what,
                      fern_dtype_name(p->dtype), fern_dtype_name(x->dtype));
    return 0;
}

/* Set output 0 to the reduced (0-d) or unreduced shape. */
static void set_loss_out(fern_op_call *c, int64_t reduction, int ndim, const int64_t *shape)
{
    if (reduction == FERN_REDUCTION_NONE)
        fern__set_out(c, 0, c->in[0]->dtype, ndim, shape);
    else
        fern__set_out(c, 0, c->in[0]->dtype, 0, NULL);
}

/* Sum the block partials in block order (deterministic). */
static double sum_partials(const double *p, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += p[i];
    return s;
}

static void store_scalar(fern_tensor *out, double v)
{
    if (out->dtype == FERN_F64)
        *(double *)fern_tensor_data(out) = v;
    else
        *(float *)fern_tensor_data(out) = (float)v;
}

static void atomic_min(atomic_llong *a, int64_t v)
{
    long long cur = atomic_load(a);
    while (v < cur && !atomic_compare_exchange_weak(a, &cur, (long long)v))
        ;
}


/* ---- cross_entropy / nll_loss ------------------------------------------ */

static const fern_attr_spec ce_attrs[] = {{"reduction", FERN_ATTR_INT, FERN_REDUCTION_MEAN, NULL},
                                          {"label_smoothing", FERN_ATTR_FLOAT, 0, NULL},
                                          {"ignore_index", FERN_ATTR_INT, -100, NULL}};
static const fern_attr_spec nll_attrs[] = {{"reduction", FERN_ATTR_INT, FERN_REDUCTION_MEAN, NULL},
                                           {"ignore_index", FERN_ATTR_INT, -100, NULL}};

/* The call's attributes, whichever of the two ops it is. */
typedef struct {
    int ce; /* 1: cross_entropy (logits), 0: nll_loss (log-probabilities) */
    int64_t reduction, ignore_index;
    double smoothing;
} class_attrs;

static class_attrs get_class_attrs(const fern_op_call *c)
{
    class_attrs a;
    a.ce = c->op->n_attrs == 3;
    a.reduction = c->attrs[0].i;
    a.smoothing = a.ce ? c->attrs[1].f : 0.0;
    a.ignore_index = a.ce ? c->attrs[2].i : c->attrs[1].i;
    return a;
}

/* (N, C, S) view of the input: (C) is one unbatched sample. */
static void class_dims(const fern_tensor *x, int64_t *N, int64_t *C, int64_t *S)
{
    if (x->ndim == 1) {
        *N = 1;
        *C = x->shape[0];
        *S = 1;
        return;
    }
    *N = x->shape[0];
    *C = x->shape[1];
    *S = fern__numel(x->ndim - 2, x->shape + 2);
}

static int class_loss_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *t = c->in[1], *w = c->in[2];
    class_attrs a = get_class_attrs(c);
    char b1[128], b2[128];
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected float input");
    if (x->ndim < 1)
        return op_err(c, "expected an input of shape (C), (N, C) or (N, C, d1, ...), got a 0-d "
                         "tensor");
    if (check_reduction(c, a.reduction))
        return -1;
    if (!(a.smoothing >= 0.0 && a.smoothing <= 1.0))
        return op_err(c, "label_smoothing must be between 0.0 and 1.0, got %g", a.smoothing);
    /* the shape of one loss per sample: the input without its class dim */
    int64_t sshape[FERN_MAX_DIMS];
    int snd = 0;
    for (int d = 0; d < x->ndim; d++)
        if (d != (x->ndim == 1 ? 0 : 1))
            sshape[snd++] = x->shape[d];
    if (fern_dtype_is_int(t->dtype)) {
        if (t->ndim != snd || memcmp(t->shape, sshape, sizeof(int64_t) * (size_t)snd))
            return op_err(c, "target shape %s does not match the expected %s for class indices",
                          fern__shape_str(t->ndim, t->shape, b1, sizeof b1),
                          fern__shape_str(snd, sshape, b2, sizeof b2));
    } else if (a.ce && fern_dtype_is_float(t->dtype)) {
        if (check_param_dtype(c, 1, "target (class probabilities)"))
            return -1;
        if (t->ndim != x->ndim || memcmp(t->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))
            return op_err(c, "class-probability target shape %s does not match the input "
                             "shape %s",
                          fern__shape_str(t->ndim, t->shape, b1, sizeof b1),
                          fern__shape_str(x->ndim, x->shape, b2, sizeof b2));
    } else {
        return fern__err_dtype(c, t,
                               a.ce ? "target must hold integer class indices or float "
                                      "class probabilities"
                                    : "target must be an integer tensor of class indices");
    }
    if (w) {
        int64_t N, C, S;
        class_dims(x, &N, &C, &S);
        if (check_param_dtype(c, 2, "weight"))
            return -1;
        if (w->ndim != 1 || w->shape[0] != C)
            return op_err(c, "weight must have shape [%lld] (one per class), got %s",
                          (long long)C, fern__shape_str(w->ndim, w->shape, b1, sizeof b1));
    }
    set_loss_out(c, a.reduction, snd, sshape);
    return 0;
}

#define CE_QB 1024 /* samples per block */

typedef struct {
    const void *x, *t, *w;
    void *y; /* per-sample losses (reduction none) or NULL */
    fern_dtype tdt;
    int probs, ce;
    int64_t N, C, S, ignore;
    double eps;
    double *lsum, *wsum; /* per-block partials (reductions) */
    atomic_llong bad;    /* lowest sample with an out-of-range class */
} ce_job;

static inline int64_t load_class(const void *t, fern_dtype dt, int64_t q)
{
    switch (dt) {
    case FERN_I8: return ((const int8_t *)t)[q];
    case FERN_U8: return ((const uint8_t *)t)[q];
    case FERN_I32: return ((const int32_t *)t)[q];
    default: return ((const int64_t *)t)[q];
    }
}

#define LSE_CHUNK 256

#define DEF_CE(T, S_, EXP, LOG)                                                                \
    /* log(sum_c exp(x[c * S])) over C classes, stable. */                                     \
    static double lse_##S_(const T *x, int64_t C, int64_t S)                                   \
    {                                                                                          \
        T m = x[0];                                                                            \
        for (int64_t c = 1; c < C; c++)                                                        \
            m = x[c * S] > m ? x[c * S] : m;                                                   \
        double se = 0;                                                                         \
        if (S != 1) {                                                                          \
            for (int64_t c = 0; c < C; c++)                                                    \
                se += (double)EXP(x[c * S] - m);                                               \
            return (double)m + log(se);                                                        \
        }                                                                                      \
        T e[LSE_CHUNK];                                                                        \
        for (int64_t c0 = 0; c0 < C; c0 += LSE_CHUNK) {                                        \
            int64_t len = C - c0 < LSE_CHUNK ? C - c0 : LSE_CHUNK;                             \
            const T *restrict xc = x + c0;                                                     \
            for (int64_t k = 0; k < len; k++) /* vectorizes */                                 \
                e[k] = EXP(xc[k] - m);                                                         \
            double a[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                            \
            int64_t k = 0;                                                                     \
            for (; k + 8 <= len; k += 8)                                                       \
                for (int q = 0; q < 8; q++)                                                    \
                    a[q] += (double)e[k + q];                                                  \
            for (; k < len; k++)                                                               \
                se += (double)e[k];                                                            \
            se += ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));           \
        }                                                                                      \
        return (double)m + log(se);                                                            \
    }                                                                                          \
    static void ce_blocks_##S_(void *ctx, int64_t b0, int64_t b1)                              \
    {                                                                                          \
        ce_job *j = ctx;                                                                       \
        const T *w = j->w;                                                                     \
        int64_t C = j->C, S = j->S, M = j->N * j->S;                                           \
        double eps = j->eps;                                                                   \
        for (int64_t b = b0; b < b1; b++) {                                                    \
            int64_t q1 = (b + 1) * CE_QB < M ? (b + 1) * CE_QB : M;                            \
            double ls = 0, ws = 0;                                                             \
            for (int64_t q = b * CE_QB; q < q1; q++) {                                         \
                int64_t n = q / S, s = q % S;                                                  \
                const T *x = (const T *)j->x + n * C * S + s; /* class c at x[c * S] */        \
                double lse = 0, loss = 0, wt = 1;                                              \
                int64_t tc = 0;                                                                \
                if (!j->probs) {                                                               \
                    tc = load_class(j->t, j->tdt, q);                                          \
                    if (tc == j->ignore) {                                                     \
                        if (j->y)                                                              \
                            ((T *)j->y)[q] = 0;                                                \
                        continue;                                                              \
                    }                                                                          \
                    if (tc < 0 || tc >= C) {                                                   \
                        atomic_min(&j->bad, q);                                                \
                        continue;                                                              \
                    }                                                                          \
                }                                                                              \
                if (j->ce && C > 0)                                                            \
                    lse = lse_##S_(x, C, S);                                                   \
                if (j->probs) {                                                                \
                    const T *t = (const T *)j->t + n * C * S + s;                              \
                    double acc = 0;                                                            \
                    for (int64_t c = 0; c < C; c++) {                                          \
                        double q_ = (double)t[c * S] * (1.0 - eps) + eps / (double)C;          \
                        double lp = (double)x[c * S] - lse;                                    \
                        acc += (w ? (double)w[c] : 1.0) * q_ * lp;                             \
                    }                                                                          \
                    loss = -acc;                                                               \
                } else {                                                                       \
                    wt = w ? (double)w[tc] : 1.0;                                              \
                    loss = -wt * ((double)x[tc * S] - lse);                                    \
                    if (eps > 0) {                                                             \
                        double sm = 0;                                                         \
                        for (int64_t c = 0; c < C; c++)                                        \
                            sm += (w ? (double)w[c] : 1.0) * ((double)x[c * S] - lse);         \
                        loss = (1.0 - eps) * loss - eps / (double)C * sm;                      \
                    }                                                                          \
                }                                                                              \
                if (j->y)                                                                      \
                    ((T *)j->y)[q] = (T)loss;                                                  \
                ls += loss;                                                                    \
                ws += wt;                                                                      \
            }                                                                                  \
            if (j->lsum) {                                                                     \
                j->lsum[b] = ls;                                                               \
                j->wsum[b] = ws;                                                               \
            }                                                                                  \
        }                                                                                      \
    }

DEF_CE(float, f32, vexpf, logf)
DEF_CE(double, f64, exp, log)

static int class_loss_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *t = c->in[1];
    class_attrs a = get_class_attrs(c);
    ce_job j;
    memset(&j, 0, sizeof j);
    j.x = fern_tensor_data(x);
    j.t = fern_tensor_data(t);
    j.w = c->in[2] ? fern_tensor_data(c->in[2]) : NULL;
    j.tdt = t->dtype;
    j.probs = fern_dtype_is_float(t->dtype);
    j.ce = a.ce;
    class_dims(x, &j.N, &j.C, &j.S);
    j.ignore = a.ignore_index;
    j.eps = a.smoothing;
    atomic_init(&j.bad, INT64_MAX);
    int64_t M = j.N * j.S, nb = (M + CE_QB - 1) / CE_QB;
    if (a.reduction == FERN_REDUCTION_NONE) {
        j.y = fern_tensor_data(c->out[0]);
    } else {
        j.lsum = calloc((size_t)(nb ? 2 * nb : 2), sizeof(double));
        if (!j.lsum) {
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
            return -1;
        }
        j.wsum = j.lsum + nb;
    }
    int64_t grain = 32768 / (CE_QB * (j.C + 1));
    if (grain < 1)
        grain = 1;
    fern_parallel_for(nb, grain, x->dtype == FERN_F64 ? ce_blocks_f64 : ce_blocks_f32, &j);
    int64_t bad = atomic_load(&j.bad);
    if (bad != INT64_MAX) {
        free(j.lsum);
        return op_err(c, "target %lld (at sample %lld) is out of bounds for %lld classes",
                      (long long)load_class(j.t, j.tdt, bad), (long long)bad, (long long)j.C);
    }
    if (a.reduction != FERN_REDUCTION_NONE) {
        double total = sum_partials(j.lsum, nb);
        if (a.reduction == FERN_REDUCTION_MEAN)
            total /= j.probs ? (double)M : sum_partials(j.wsum, nb);
        store_scalar(c->out[0], total);
        free(j.lsum);
    }
    return 0;
}

static const fern_op_def op_cross_entropy = {
    .name = "cross_entropy", .n_inputs = 3, .n_optional = 1, .n_outputs = 1,
    .attrs = ce_attrs, .n_attrs = 3, .infer = class_loss_infer,
    .kernel = {[FERN_CPU] = class_loss_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "inputs logits (C|N,C,...), target (class indices or probabilities), weight?; "
           "reduction 0 none 1 mean 2 sum",
    .grad = class_loss_grad};

static const fern_op_def op_nll_loss = {
    .name = "nll_loss", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .attrs = nll_attrs,
    .n_attrs = 2, .infer = class_loss_infer, .kernel = {[FERN_CPU] = class_loss_kernel},
    .dtypes = FERN_DT_FLOAT, .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "inputs log_probs (C|N,C,...), integer target, weight?; reduction 0 none 1 mean 2 sum",
    .grad = class_loss_grad};

fern_tensor *fern_cross_entropy(fern_tensor *logits, fern_tensor *target, fern_tensor *weight,
                                fern_reduction reduction, double label_smoothing,
                                int64_t ignore_index)
{
    fern_tensor *in[3] = {logits, target, weight};
    fern_attr a[3] = {fern__attr_int(reduction), fern__attr_float(label_smoothing),
                      fern__attr_int(ignore_index)};
    return fern__op1(&op_cross_entropy, 3, in, a);
}

fern_tensor *fern_nll_loss(fern_tensor *log_probs, fern_tensor *target, fern_tensor *weight,
                           fern_reduction reduction, int64_t ignore_index)
{
    fern_tensor *in[3] = {log_probs, target, weight};
    fern_attr a[2] = {fern__attr_int(reduction), fern__attr_int(ignore_index)};
    return fern__op1(&op_nll_loss, 3, in, a);
}

/* ---- elementwise losses: mse_loss, bce_with_logits --------------------- */

static const fern_attr_spec red_attrs[] = {{"reduction", FERN_ATTR_INT, FERN_REDUCTION_MEAN, NULL}};

static int mse_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0];
    int nd;
    int64_t shape[FERN_MAX_DIMS];
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected float input");
    if (check_param_dtype(c, 1, "target") || check_reduction(c, c->attrs[0].i))
        return -1;
    if (fern__broadcast_shapes(c->op->name, 2, c->in, &nd, shape))
        return -1;
    set_loss_out(c, c->attrs[0].i, nd, shape);
    return 0;
}

static int bce_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *t = c->in[1];
    char b1[128], b2[128];
    if (!fern_dtype_is_float(x->dtype))
        return fern__err_dtype(c, x, "expected float input");
    if (check_param_dtype(c, 1, "target") || check_param_dtype(c, 2, "weight") ||
        check_param_dtype(c, 3, "pos_weight") || check_reduction(c, c->attrs[0].i))
        return -1;
    if (t->ndim != x->ndim || memcmp(t->shape, x->shape, sizeof(int64_t) * (size_t)x->ndim))
        return op_err(c, "target size %s must be the same as input size %s",
                      fern__shape_str(t->ndim, t->shape, b1, sizeof b1),
                      fern__shape_str(x->ndim, x->shape, b2, sizeof b2));
    for (int k = 2; k <= 3; k++) {
        fern_tensor *pair[2] = {c->in[0], c->in[k]};
        int nd;
        int64_t shape[FERN_MAX_DIMS];
        if (!c->in[k])
            continue;
        if (fern__broadcast_shapes(c->op->name, 2, pair, &nd, shape))
            return -1;
        if (nd != x->ndim || memcmp(shape, x->shape, sizeof(int64_t) * (size_t)nd))
            return op_err(c, "%s of shape %s does not broadcast to the input shape %s",
                          k == 2 ? "weight" : "pos_weight",
                          fern__shape_str(c->in[k]->ndim, c->in[k]->shape, b1, sizeof b1),
                          fern__shape_str(x->ndim, x->shape, b2, sizeof b2));
    }
    set_loss_out(c, c->attrs[0].i, x->ndim, x->shape);
    return 0;
}

#define EW_BLOCK 4096 /* elements per block */

typedef struct {
    int nd, nt, bce;
    int64_t shape[FERN_MAX_DIMS];
    int64_t st[4][FERN_MAX_DIMS]; /* element strides aligned to the output, 0 = broadcast */
    const char *base[4];          /* x/a, target/b, weight, pos_weight (NULL: absent) */
    void *y;                      /* unreduced output or NULL */
    double *part;                 /* per-block partial sums */
    int64_t numel;
} ew_job;

/* One run of n elements along the last dim. Strides in elements. */
#define DEF_EW(T, S_, EXP, LOG1P)                                                              \
    static double mse_run_##S_(const T *restrict a, int64_t sa, const T *restrict b,           \
                               int64_t sb, T *restrict y, int64_t n)                           \
    {                                                                                          \
        double acc = 0;                                                                        \
        if (sa == 1 && sb == 1) {                                                              \
            if (y) {                                                                           \
                for (int64_t i = 0; i < n; i++) {                                              \
                    T d = a[i] - b[i];                                                         \
                    y[i] = d * d;                                                              \
                }                                                                              \
                return 0;                                                                      \
            }                                                                                  \
            double l[8] = {0, 0, 0, 0, 0, 0, 0, 0};                                            \
            int64_t i = 0;                                                                     \
            for (; i + 8 <= n; i += 8)                                                         \
                for (int k = 0; k < 8; k++) {                                                  \
                    T d = a[i + k] - b[i + k];                                                 \
                    l[k] += (double)(d * d);                                                   \
                }                                                                              \
            acc = ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));           \
            for (; i < n; i++) {                                                               \
                T d = a[i] - b[i];                                                             \
                acc += (double)(d * d);                                                        \
            }                                                                                  \
            return acc;                                                                        \
        }                                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T d = a[i * sa] - b[i * sb];                                                       \
            if (y)                                                                             \
                y[i] = d * d;                                                                  \
            else                                                                               \
                acc += (double)(d * d);                                                        \
        }                                                                                      \
        return acc;                                                                            \
    }                                                                                          \
    /* (1 - t) x + lw (log1p(exp(-|x|)) + max(-x, 0)), lw = 1 + (pw - 1) t, times w. */        \
    static double bce_run_##S_(const T *restrict x, int64_t sx, const T *restrict t,           \
                               int64_t st, const T *restrict w, int64_t sw,                    \
                               const T *restrict pw, int64_t sp, T *restrict y, int64_t n)     \
    {                                                                                          \
        double acc = 0;                                                                        \
        for (int64_t i = 0; i < n; i++) {                                                      \
            T xv = x[i * sx], tv = t[i * st];                                                  \
            T sp_ = LOG1P(EXP(-(xv < 0 ? -xv : xv))) + (xv < 0 ? -xv : (T)0);                  \
            T lw = pw ? (T)1 + (pw[i * sp] - (T)1) * tv : (T)1;                                \
            T l = ((T)1 - tv) * xv + lw * sp_;                                                 \
            if (w)                                                                             \
                l *= w[i * sw];                                                                \
            if (y)                                                                             \
                y[i] = l;                                                                      \
            else                                                                               \
                acc += (double)l;                                                              \
        }                                                                                      \
        return acc;                                                                            \
    }                                                                                          \
    static void ew_blocks_##S_(void *ctx, int64_t b0, int64_t b1)                              \
    {                                                                                          \
        const ew_job *j = ctx;                                                                 \
        int nd = j->nd, last = nd - 1;                                                         \
        for (int64_t b = b0; b < b1; b++) {                                                    \
            int64_t e = b * EW_BLOCK, e1 = e + EW_BLOCK < j->numel ? e + EW_BLOCK : j->numel;  \
            double acc = 0;                                                                    \
            while (e < e1) {                                                                   \
                int64_t rem = e, off[4] = {0, 0, 0, 0}, il = 0;                                \
                for (int d = last; d >= 0; d--) {                                              \
                    int64_t i = rem % j->shape[d];                                             \
                    rem /= j->shape[d];                                                        \
                    if (d == last)                                                             \
                        il = i;                                                                \
                    for (int k = 0; k < j->nt; k++)                                            \
                        off[k] += i * j->st[k][d];                                             \
                }                                                                              \
                int64_t run = j->shape[last] - il;                                             \
                if (run > e1 - e)                                                              \
                    run = e1 - e;                                                              \
                const T *p[4];                                                                 \
                for (int k = 0; k < 4; k++)                                                    \
                    p[k] = j->base[k] ? (const T *)j->base[k] + off[k] : NULL;                 \
                T *y = j->y ? (T *)j->y + e : NULL;                                            \
                if (j->bce)                                                                    \
                    acc += bce_run_##S_(p[0], j->st[0][last], p[1], j->st[1][last], p[2],      \
                                        j->st[2][last], p[3], j->st[3][last], y, run);         \
                else                                                                           \
                    acc += mse_run_##S_(p[0], j->st[0][last], p[1], j->st[1][last], y, run);   \
                e += run;                                                                      \
            }                                                                                  \
            if (j->part)                                                                       \
                j->part[b] = acc;                                                              \
        }                                                                                      \
    }

DEF_EW(float, f32, expf, log1pf)
DEF_EW(double, f64, exp, log1p)

static int ew_kernel(fern_op_call *c, int bce)
{
    int64_t reduction = c->attrs[0].i;
    ew_job j;
    memset(&j, 0, sizeof j);
    j.bce = bce;
    j.nt = c->n_in;
    /* the elementwise shape: the inputs broadcast together */
    if (fern__broadcast_shapes(c->op->name, c->n_in, c->in, &j.nd, j.shape))
        return -1;
    if (j.nd == 0) {
        j.nd = 1;
        j.shape[0] = 1;
    }
    j.numel = fern__numel(j.nd, j.shape);
    for (int k = 0; k < c->n_in; k++) {
        const fern_tensor *t = c->in[k];
        if (!t)
            continue;
        j.base[k] = fern_tensor_data(t);
        for (int d = 0; d < j.nd; d++) {
            int td = d - (j.nd - t->ndim);
            j.st[k][d] = td < 0 || t->shape[td] != j.shape[d] ? 0 : t->strides[td];
        }
    }
    int64_t nb = (j.numel + EW_BLOCK - 1) / EW_BLOCK;
    if (reduction == FERN_REDUCTION_NONE) {
        j.y = fern_tensor_data(c->out[0]);
    } else {
        j.part = calloc((size_t)(nb ? nb : 1), sizeof(double));
        if (!j.part) {
            fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", c->op->name);
            return -1;
        }
    }
    int f64 = c->in[0]->dtype == FERN_F64;
    fern_parallel_for(nb, bce ? 2 : 4, f64 ? ew_blocks_f64 : ew_blocks_f32, &j);
    if (j.part) {
        double total = sum_partials(j.part, nb);
        if (reduction == FERN_REDUCTION_MEAN)
            total /= (double)j.numel;
        store_scalar(c->out[0], total);
        free(j.part);
    }
    return 0;
}

static int mse_kernel(fern_op_call *c) { return ew_kernel(c, 0); }
static int bce_kernel(fern_op_call *c) { return ew_kernel(c, 1); }

static const fern_op_def op_mse_loss = {
    .name = "mse_loss", .n_inputs = 2, .n_outputs = 1, .attrs = red_attrs, .n_attrs = 1,
    .infer = mse_infer, .kernel = {[FERN_CPU] = mse_kernel}, .dtypes = FERN_DT_FLOAT,
    .flags = FERN_OPF_HALF_VIA_F32,
    .doc = "(input - target)^2 (broadcast); reduction 0 none 1 mean 2 sum", .grad = mse_grad};

static const fern_op_def op_bce_with_logits = {
    .name = "bce_with_logits", .n_inputs = 4, .n_optional = 2, .n_outputs = 1,
    .attrs = red_attrs, .n_attrs = 1, .infer = bce_infer, .kernel = {[FERN_CPU] = bce_kernel},
    .dtypes = FERN_DT_FLOAT, .flags = FERN_OPF_HALF_VIA_F32,
    .doc = "inputs logits, target, weight?, pos_weight? (broadcast to logits); stable "
           "binary cross entropy; reduction 0 none 1 mean 2 sum",
    .grad = bce_grad};

fern_tensor *fern_mse_loss(fern_tensor *input, fern_tensor *target, fern_reduction reduction)
{
    fern_tensor *in[2] = {input, target};
    fern_attr a = fern__attr_int(reduction);
    return fern__op1(&op_mse_loss, 2, in, &a);
}

fern_tensor *fern_bce_with_logits(fern_tensor *logits, fern_tensor *target,
                                  fern_tensor *weight, fern_tensor *pos_weight,
                                  fern_reduction reduction)
{
    fern_tensor *in[4] = {logits, target, weight, pos_weight};
    fern_attr a = fern__attr_int(reduction);
    return fern__op1(&op_bce_with_logits, 4, in, &a);
}

/* ---- gradient rules -----------------------------------------------------
 * Written with public ops only, so they trace and are differentiable
 * themselves. Half inputs (seen by rules only inside traced graphs) are
 * computed in f32 like the forward; every cotangent is cast back to its
 * input's dtype. Every float input gets its true derivative, weights
 * included (torch leaves weight / pos_weight without gradient). */

static fern_tensor *f32_if_half(fern_tensor *t)
{
    return t && is_half(t->dtype) ? fern_cast(t, FERN_F32) : t;
}

/* cross_entropy / nll_loss. With lp the log-probabilities (log_softmax of
 * the logits, or nll's input) each sample's loss is -sum_c A[c] lp[c] with
 * A = w * q and q the target distribution: for class indices
 * valid * ((1-eps) onehot(t) + eps/C) (valid = t != ignore_index), for
 * probabilities (1-eps) t + eps/C. So with gs the per-sample cotangent:
 *   d logits = gs * (softmax * sum_c A - A)      (nll: d lp = -gs * A)
 *   d target = -(1-eps) * gs * w * lp            (probabilities only)
 *   d weight = -sum gs * q * lp                  (over samples)
 * "mean" divides by W = sum of w[t] over valid samples (indices; W is a
 * function of the weights too, which adds -g * L / W * count_c to d weight)
 * or by the sample count (probabilities). When every target is ignored the
 * forward's mean is 0/0 = nan; the gradient is zero there, like torch. */
static int class_loss_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x0 = c->in[0], *t0 = c->in[1], *w0 = c->in[2];
    class_attrs a = get_class_attrs(c);
    if (!g[0])
        return 0;
    int nd = x0->ndim, cax = nd == 1 ? 0 : 1, probs = fern_dtype_is_float(t0->dtype);
    int64_t N, C, S;
    class_dims(x0, &N, &C, &S);
    double eps = a.smoothing;
    fern_tensor *x = f32_if_half(x0), *w = f32_if_half(w0), *gs = f32_if_half(g[0]);
    fern_dtype dt = x->dtype;
    /* the axes other than the class axis (none for an unbatched sample) */
    int axes[FERN_MAX_DIMS], na = 0;
    for (int d = 0; d < nd; d++)
        if (d != cax)
            axes[na++] = d;
    fern_tensor *w_b = NULL;
    if (w0) {
        int64_t shape[FERN_MAX_DIMS];
        for (int d = 0; d < nd; d++)
            shape[d] = d == cax ? C : 1;
        w_b = fern_reshape(w, nd, shape);
    }
    if (a.reduction == FERN_REDUCTION_NONE && nd > 1)
        gs = fern_unsqueeze(gs, cax);
    fern_tensor *lp = a.ce ? fern_log_softmax(x, cax) : x;
    fern_tensor *q, *onehot = NULL;
    if (probs) {
        fern_tensor *tp = f32_if_half(t0);
        q = eps > 0 ? fern_add_scalar(fern_mul_scalar(tp, 1.0 - eps), eps / (double)C) : tp;
    } else {
        fern_tensor *t = t0->dtype == FERN_I64 ? t0 : fern_cast(t0, FERN_I64);
        fern_tensor *valid = fern_ne(t, fern_scalar(FERN_I64, (double)a.ignore_index));
        fern_tensor *oh = fern_one_hot(fern_where(valid, t, fern_scalar(FERN_I64, 0.0)), C, dt);
        if (oh && nd > 1) { /* classes last -> classes at axis 1 */
            int perm[FERN_MAX_DIMS];
            perm[0] = 0;
            perm[1] = nd - 1;
            for (int d = 2; d < nd; d++)
                perm[d] = d - 1;
            oh = fern_permute(oh, perm);
        }
        fern_tensor *vf = fern_cast(valid, dt);
        if (vf && nd > 1)
            vf = fern_unsqueeze(vf, cax);
        onehot = fern_mul(oh, vf);
        q = eps > 0 ? fern_add(fern_mul_scalar(onehot, 1.0 - eps),
                               fern_mul_scalar(vf, eps / (double)C))
                    : onehot;
    }
    fern_tensor *A = w_b ? fern_mul(q, w_b) : q;
    fern_tensor *Wsafe = NULL;
    if (a.reduction == FERN_REDUCTION_MEAN) {
        if (probs) {
            gs = fern_mul_scalar(gs, N * S != 0 ? 1.0 / (double)(N * S) : 0.0);
        } else {
            fern_tensor *W = fern_sum(w_b ? fern_mul(onehot, w_b) : onehot, NULL, 0, 0);
            /* W + (W == 0): 1 when every sample is ignored (A is 0 then) */
            Wsafe = fern_add(W, fern_cast(fern_eq(W, fern_scalar(dt, 0.0)), dt));
            gs = fern_div(gs, Wsafe);
        }
    }
    fern_tensor *dx;
    if (a.ce)
        dx = fern_mul(gs, fern_sub(fern_mul(fern_exp(lp), fern_sum(A, &cax, 1, 1)), A));
    else
        dx = fern_neg(fern_mul(gs, A));
    if (!(gi[0] = fern__sum_to(dx, x0)))
        return -1;
    if (probs) {
        fern_tensor *d = fern_mul(gs, w_b ? fern_mul(lp, w_b) : lp);
        if (!(gi[1] = fern__sum_to(fern_mul_scalar(d, -(1.0 - eps)), t0)))
            return -1;
    }
    if (w0) {
        fern_tensor *qlp = fern_mul(q, lp);
        fern_tensor *dw = fern_mul(gs, qlp);
        if (na)
            dw = fern_sum(dw, axes, na, 0);
        dw = fern_neg(dw);
        if (Wsafe) { /* - g/W * L * count_c, L = S / W recomputed (no nan) */
            fern_tensor *L = fern_div(fern_neg(fern_sum(fern_mul(w_b, qlp), NULL, 0, 0)), Wsafe);
            fern_tensor *cnt = na ? fern_sum(onehot, axes, na, 0) : onehot;
            dw = fern_sub(dw, fern_mul(fern_mul(gs, L), cnt));
        }
        if (!(gi[2] = fern__sum_to(dw, w0)))
            return -1;
    }
    return 0;
}

/* mse_loss: d input = 2 (a - b) g', d target = -2 (a - b) g', with g' the
 * cotangent (divided by the element count for "mean"), summed back over
 * broadcast dims. */
static int mse_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *a0 = c->in[0], *b0 = c->in[1];
    if (!g[0])
        return 0;
    fern_tensor *d = fern_sub(f32_if_half(a0), f32_if_half(b0));
    fern_tensor *gl = f32_if_half(g[0]);
    if (!d)
        return -1;
    int64_t n = fern_tensor_numel(d);
    if (c->attrs[0].i == FERN_REDUCTION_MEAN)
        gl = fern_mul_scalar(gl, n ? 1.0 / (double)n : 0.0);
    fern_tensor *t = fern_mul_scalar(fern_mul(d, gl), 2.0);
    gi[0] = fern__sum_to(t, a0);
    gi[1] = fern__sum_to(fern_neg(t), b0);
    return gi[0] && gi[1] ? 0 : -1;
}

/* bce_with_logits: l = w ((1-t) x + lw sp), sp = softplus(-x) =
 * log1p(exp(-|x|)) + max(-x, 0) (as the forward), lw = 1 + (pw-1) t.
 *   d x  = g w ((1-t) - lw sigmoid(-x))
 *   d t  = g w (-x + (pw-1) sp)
 *   d w  = g ((1-t) x + lw sp)
 *   d pw = g w t sp */
static int bce_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x0 = c->in[0], *t0 = c->in[1], *w0 = c->in[2], *pw0 = c->in[3];
    if (!g[0])
        return 0;
    fern_tensor *x = f32_if_half(x0), *t = f32_if_half(t0), *w = f32_if_half(w0),
                *pw = f32_if_half(pw0), *gl = f32_if_half(g[0]);
    int64_t n = fern_tensor_numel(x0);
    if (c->attrs[0].i == FERN_REDUCTION_MEAN)
        gl = fern_mul_scalar(gl, n ? 1.0 / (double)n : 0.0);
    fern_tensor *nx = fern_neg(x);
    fern_tensor *sp = fern_add(fern_log1p(fern_exp(fern_neg(fern_abs(x)))), fern_relu(nx));
    fern_tensor *pm1 = pw ? fern_sub_scalar(pw, 1.0) : NULL;
    fern_tensor *lw = pw ? fern_add_scalar(fern_mul(pm1, t), 1.0) : NULL;
    fern_tensor *omt = fern_add_scalar(fern_neg(t), 1.0);
    fern_tensor *gw = w ? fern_mul(gl, w) : gl;
    fern_tensor *sn = fern_sigmoid(nx);
    fern_tensor *dx = fern_mul(gw, fern_sub(omt, lw ? fern_mul(lw, sn) : sn));
    fern_tensor *dt = fern_mul(gw, pw ? fern_add(nx, fern_mul(pm1, sp)) : nx);
    if (!(gi[0] = fern__sum_to(dx, x0)) || !(gi[1] = fern__sum_to(dt, t0)))
        return -1;
    if (w0) {
        fern_tensor *l = fern_add(fern_mul(omt, x), lw ? fern_mul(lw, sp) : sp);
        if (!(gi[2] = fern__sum_to(fern_mul(gl, l), w0)))
            return -1;
    }
    if (pw0 && !(gi[3] = fern__sum_to(fern_mul(gw, fern_mul(t, sp)), pw0)))
        return -1;
    return 0;
}

const fern_op_def *const fern_ops_loss[] = {&op_cross_entropy, &op_nll_loss, &op_mse_loss,
                                            &op_bce_with_logits, NULL};
