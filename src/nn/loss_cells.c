/* Losses as cells: (prediction, target) -> loss, torch.nn semantics.
 * SoftmaxCrossEntropy, NLL, MSE and BCEWithLogits use the fused loss ops;
 * L1, SmoothL1, Huber and BCE are composed from elementwise ops and
 * reductions (their gradients come from those ops' rules: d/dp of smooth L1
 * is d/beta inside the quadratic zone and sign(d) outside, like torch). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers_internal.h"

typedef enum { L_CE, L_NLL, L_MSE, L_L1, L_SMOOTH_L1, L_HUBER, L_BCE, L_BCE_LOGITS } loss_kind;

typedef struct {
    fern__layer_head h;
    loss_kind kind;
    fern_reduction red;
    double a; /* label smoothing, beta or delta */
    int64_t ignore_index;
    fern_tensor *weight, *pos_weight; /* borrowed from the cell's buffers */
} loss_state;

static fern_tensor *reduce(fern_tensor *l, fern_reduction r)
{
    switch (r) {
    case FERN_REDUCTION_MEAN: return fern_mean(l, NULL, 0, 0);
    case FERN_REDUCTION_SUM: return fern_sum(l, NULL, 0, 0);
    default: return l;
    }
}

static int check_float_pred(const fern_cell *self, const fern_tensor *p, const fern_tensor *t)
{
    char a[128], b[128];
    if (!fern_dtype_is_float(fern_tensor_dtype(p)))
        return fern__layer_err(self, "expected a float prediction, got %s (target %s)", fern_tensor_desc(p, a, sizeof a),
                               fern_tensor_desc(t, b, sizeof b));
    return 0;
}

static int loss_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    loss_state *s = fern_cell_state(self);
    fern_tensor *p = in[0], *t = in[1];
    if (!p || !t) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(self, "prediction or target is NULL");
        return -1;
    }
    fern_tensor *l = NULL;
    switch (s->kind) {
    case L_CE: l = fern_cross_entropy(p, t, s->weight, s->red, s->a, s->ignore_index); break;
    case L_NLL: l = fern_nll_loss(p, t, s->weight, s->red, s->ignore_index); break;
    case L_MSE: l = fern_mse_loss(p, t, s->red); break;
    case L_BCE_LOGITS: l = fern_bce_with_logits(p, t, s->weight, s->pos_weight, s->red); break;
    case L_L1:
        if (check_float_pred(self, p, t))
            return -1;
        l = reduce(fern_abs(fern_sub(p, t)), s->red);
        break;
    case L_SMOOTH_L1:
    case L_HUBER: {
        if (check_float_pred(self, p, t))
            return -1;
        fern_tensor *d = fern_sub(p, t), *ad = fern_abs(d);
        double k = s->a;
        if (s->kind == L_SMOOTH_L1 && k == 0.0) {
            l = ad; /* beta 0: plain L1 */
        } else {
            fern_tensor *thr = fern_scalar(d ? fern_tensor_dtype(d) : FERN_F32, k);
            fern_tensor *quad = fern_mul_scalar(fern_square(d), s->kind == L_SMOOTH_L1 ? 0.5 / k : 0.5);
            fern_tensor *lin = s->kind == L_SMOOTH_L1 ? fern_sub_scalar(ad, 0.5 * k)
                                                      : fern_mul_scalar(fern_sub_scalar(ad, 0.5 * k), k);
            l = fern_where(fern_lt(ad, thr), quad, lin);
        }
        l = reduce(l, s->red);
        break;
    }
    case L_BCE: {
        if (check_float_pred(self, p, t))
            return -1;
        int nd = fern_tensor_ndim(p);
        if (nd != fern_tensor_ndim(t) ||
            memcmp(fern_tensor_shape(p), fern_tensor_shape(t), (size_t)nd * sizeof(int64_t))) {
            char a[128], b[128];
            return fern__layer_err(self, "target %s must have the prediction's shape %s",
                                   fern_tensor_desc(t, a, sizeof a), fern_tensor_desc(p, b, sizeof b));
        }
        /* -(t log p + (1 - t) log(1 - p)), each log clamped at -100 like torch */
        fern_tensor *lp = fern_clip(fern_log(p), -100.0, INFINITY);
        fern_tensor *l1p = fern_clip(fern_log1p(fern_neg(p)), -100.0, INFINITY);
        l = fern_sub(fern_mul(fern_sub_scalar(t, 1.0), l1p), fern_mul(t, lp));
        if (s->weight)
            l = fern_mul(l, s->weight);
        l = reduce(l, s->red);
        break;
    }
    }
    out[0] = l;
    return l ? 0 : -1;
}

static const char *red_name(fern_reduction r)
{
    return r == FERN_REDUCTION_NONE ? "none" : r == FERN_REDUCTION_SUM ? "sum" : "mean";
}

static fern_cell *make_loss(const char *type, loss_kind kind, fern_reduction red, double a, int64_t ignore,
                            fern_tensor *weight, fern_tensor *pos_weight, const char *extra)
{
    if ((int)red < FERN_REDUCTION_NONE || (int)red > FERN_REDUCTION_SUM) {
        fern_set_error(FERN_ERR_INVALID, "%s: reduction must be FERN_REDUCTION_NONE, MEAN or SUM, got %d", type,
                       (int)red);
        return NULL;
    }
    fern_cell *c = fern__layer_new(type, loss_forward, 2, sizeof(loss_state), "%s(reduction='%s'%s%s)", type,
                                   red_name(red), extra ? ", " : "", extra ? extra : "");
    if (!c)
        return NULL;
    loss_state *s = fern_cell_state(c);
    s->kind = kind;
    s->red = red;
    s->a = a;
    s->ignore_index = ignore;
    if ((weight && fern_cell_add_buffer(c, "weight", weight) != FERN_OK) ||
        (pos_weight && fern_cell_add_buffer(c, "pos_weight", pos_weight) != FERN_OK)) {
        fern_cell_release(c);
        return NULL;
    }
    s->weight = weight;
    s->pos_weight = pos_weight;
    return c;
}

fern_cell *fern_loss_cross_entropy(fern_tensor *weight, fern_reduction reduction, double label_smoothing,
                                   int64_t ignore_index)
{
    if (!(label_smoothing >= 0.0 && label_smoothing <= 1.0)) {
        fern_set_error(FERN_ERR_INVALID, "SoftmaxCrossEntropy: label_smoothing must be in [0, 1], got %g",
                       label_smoothing);
        return NULL;
    }
    char extra[96];
    snprintf(extra, sizeof extra, "label_smoothing=%g, ignore_index=%lld%s", label_smoothing,
             (long long)ignore_index, weight ? ", weight" : "");
    return make_loss("SoftmaxCrossEntropy", L_CE, reduction, label_smoothing, ignore_index, weight, NULL, extra);
}

fern_cell *fern_loss_nll(fern_tensor *weight, fern_reduction reduction, int64_t ignore_index)
{
    char extra[64];
    snprintf(extra, sizeof extra, "ignore_index=%lld%s", (long long)ignore_index, weight ? ", weight" : "");
    return make_loss("NLLLoss", L_NLL, reduction, 0.0, ignore_index, weight, NULL, extra);
}

fern_cell *fern_loss_mse(fern_reduction reduction)
{
    return make_loss("MSELoss", L_MSE, reduction, 0.0, 0, NULL, NULL, NULL);
}

fern_cell *fern_loss_l1(fern_reduction reduction)
{
    return make_loss("L1Loss", L_L1, reduction, 0.0, 0, NULL, NULL, NULL);
}

fern_cell *fern_loss_smooth_l1(fern_reduction reduction, double beta)
{
    if (!(beta >= 0)) {
        fern_set_error(FERN_ERR_INVALID, "SmoothL1Loss: beta must be non-negative, got %g", beta);
        return NULL;
    }
    char extra[48];
    snprintf(extra, sizeof extra, "beta=%g", beta);
    return make_loss("SmoothL1Loss", L_SMOOTH_L1, reduction, beta, 0, NULL, NULL, extra);
}

fern_cell *fern_loss_huber(fern_reduction reduction, double delta)
{
    if (!(delta > 0)) {
        fern_set_error(FERN_ERR_INVALID, "HuberLoss: delta must be positive, got %g", delta);
        return NULL;
    }
    char extra[48];
    snprintf(extra, sizeof extra, "delta=%g", delta);
    return make_loss("HuberLoss", L_HUBER, reduction, delta, 0, NULL, NULL, extra);
}

fern_cell *fern_loss_bce(fern_tensor *weight, fern_reduction reduction)
{
    return make_loss("BCELoss", L_BCE, reduction, 0.0, 0, weight, NULL, weight ? "weight" : NULL);
}

fern_cell *fern_loss_bce_with_logits(fern_tensor *weight, fern_tensor *pos_weight, fern_reduction reduction)
{
    char extra[48];
    snprintf(extra, sizeof extra, "%s%s%s", weight ? "weight" : "", weight && pos_weight ? ", " : "",
             pos_weight ? "pos_weight" : "");
    return make_loss("BCEWithLogitsLoss", L_BCE_LOGITS, reduction, 0.0, 0, weight, pos_weight,
                     *extra ? extra : NULL);
}
