/* Optimizers. Every update is written with fern ops and fern_assign, so it
 * runs eagerly or is traced into a training-step graph. Formulas follow
 * torch.optim (LAMB follows You et al. 2019). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/runtime_internal.h"
#include "fern/optim.h"

typedef enum { SGD, ADAM, ADAMW, RMSPROP, ADAGRAD, LAMB } kind;

#define MAX_SLOTS 3

struct fern_optimizer {
    kind k;
    char name[16];
    int n;
    fern_tensor **params;
    fern_tensor **slots[MAX_SLOTS]; /* per-parameter state, by slot */
    int n_slots;
    const char *slot_names[MAX_SLOTS];
    fern_tensor *lr, *step; /* f64 0-d, read by reference in graphs */
    fern_lr_schedule *schedule;
    double base_lr, momentum, dampening, wd, beta1, beta2, eps, alpha, lr_decay;
    int nesterov, centered;
};

static fern_optimizer *make(kind k, const char *name, fern_tensor *const *params, int n, double lr,
                            int n_slots, const char *const *slot_names, double init)
{
    if (!params || n <= 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: needs at least one parameter", name);
        return NULL;
    }
    if (!(lr >= 0)) {
        fern_set_error(FERN_ERR_INVALID, "%s: invalid learning rate %g", name, lr);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (!params[i] || fern_tensor_is_symbolic(params[i]) || !fern_dtype_is_float(fern_tensor_dtype(params[i]))) {
            fern_set_error(FERN_ERR_INVALID, "%s: parameter %d must be a concrete float tensor", name, i);
            return NULL;
        }
    fern_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    o->k = k;
    snprintf(o->name, sizeof o->name, "%s", name);
    o->n = n;
    o->base_lr = lr;
    o->n_slots = n_slots;
    o->params = calloc((size_t)n, sizeof *o->params);
    int ok = o->params != NULL;
    for (int s = 0; s < n_slots && ok; s++) {
        o->slot_names[s] = slot_names[s];
        o->slots[s] = calloc((size_t)n, sizeof(fern_tensor *));
        ok = o->slots[s] != NULL;
    }
    for (int i = 0; i < n && ok; i++) {
        o->params[i] = fern_retain(params[i]);
        for (int s = 0; s < n_slots && ok; s++) {
            fern_scope_begin();
            fern_tensor *z = fern_full_like(params[i], s == 0 ? init : 0.0);
            o->slots[s][i] = fern_retain(z);
            fern_scope_end();
            ok = o->slots[s][i] != NULL;
        }
    }
    fern_scope_begin();
    o->lr = fern_retain(fern_scalar(FERN_F64, lr));
    o->step = fern_retain(fern_scalar(FERN_F64, 0));
    fern_scope_end();
    if (!ok || !o->lr || !o->step) {
        fern_optim_free(o);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    return o;
}

void fern_optim_free(fern_optimizer *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n; i++) {
        if (o->params)
            fern_release(o->params[i]);
        for (int s = 0; s < o->n_slots; s++)
            if (o->slots[s])
                fern_release(o->slots[s][i]);
    }
    for (int s = 0; s < o->n_slots; s++)
        free(o->slots[s]);
    free(o->params);
    fern_release(o->lr);
    fern_release(o->step);
    fern_lr_schedule_free(o->schedule);
    free(o);
}

const char *fern_optim_name(const fern_optimizer *o) { return o ? o->name : "NULL"; }

fern_optimizer *fern_sgd(fern_tensor *const *params, int n, double lr, double momentum,
                         double dampening, double weight_decay, int nesterov)
{
    if (nesterov && (momentum <= 0 || dampening != 0)) {
        fern_set_error(FERN_ERR_INVALID, "sgd: nesterov needs momentum > 0 and dampening 0");
        return NULL;
    }
    const char *slots[1] = {"momentum_buffer"};
    fern_optimizer *o = make(SGD, "sgd", params, n, lr, momentum != 0 ? 1 : 0, slots, 0.0);
    if (o) {
        o->momentum = momentum;
        o->dampening = dampening;
        o->wd = weight_decay;
        o->nesterov = nesterov;
    }
    return o;
}

fern_optimizer *fern_momentum(fern_tensor *const *params, int n, double lr, double momentum,
                              double weight_decay, int nesterov)
{
    fern_optimizer *o = fern_sgd(params, n, lr, momentum, 0.0, weight_decay, nesterov);
    if (o)
        snprintf(o->name, sizeof o->name, "momentum");
    return o;
}

static fern_optimizer *adam_like(kind k, const char *name, fern_tensor *const *params, int n, double lr,
                                 double b1, double b2, double eps, double wd)
{
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1 && eps >= 0)) {
        fern_set_error(FERN_ERR_INVALID, "%s: betas must be in [0, 1) and eps >= 0", name);
        return NULL;
    }
    const char *slots[2] = {"exp_avg", "exp_avg_sq"};
    fern_optimizer *o = make(k, name, params, n, lr, 2, slots, 0.0);
    if (o) {
        o->beta1 = b1;
        o->beta2 = b2;
        o->eps = eps;
        o->wd = wd;
    }
    return o;
}

fern_optimizer *fern_adam(fern_tensor *const *params, int n, double lr, double b1, double b2,
                          double eps, double wd)
{
    return adam_like(ADAM, "adam", params, n, lr, b1, b2, eps, wd);
}

fern_optimizer *fern_adamw(fern_tensor *const *params, int n, double lr, double b1, double b2,
                           double eps, double wd)
{
    return adam_like(ADAMW, "adamw", params, n, lr, b1, b2, eps, wd);
}

fern_optimizer *fern_lamb(fern_tensor *const *params, int n, double lr, double b1, double b2,
                          double eps, double wd)
{
    return adam_like(LAMB, "lamb", params, n, lr, b1, b2, eps, wd);
}

fern_optimizer *fern_rmsprop(fern_tensor *const *params, int n, double lr, double alpha, double eps,
                             double weight_decay, double momentum, int centered)
{
    const char *slots[3] = {"square_avg", "momentum_buffer", "grad_avg"};
    fern_optimizer *o = make(RMSPROP, "rmsprop", params, n, lr, 3, slots, 0.0);
    if (o) {
        o->alpha = alpha;
        o->eps = eps;
        o->wd = weight_decay;
        o->momentum = momentum;
        o->centered = centered;
    }
    return o;
}

fern_optimizer *fern_adagrad(fern_tensor *const *params, int n, double lr, double lr_decay,
                             double weight_decay, double initial_accumulator, double eps)
{
    const char *slots[1] = {"sum"};
    fern_optimizer *o = make(ADAGRAD, "adagrad", params, n, lr, 1, slots, initial_accumulator);
    if (o) {
        o->lr_decay = lr_decay;
        o->wd = weight_decay;
        o->eps = eps;
    }
    return o;
}

void fern_optim_set_schedule(fern_optimizer *o, fern_lr_schedule *s)
{
    if (!o)
        return;
    fern_lr_schedule_free(o->schedule);
    o->schedule = s;
}

int64_t fern_optim_step_count(const fern_optimizer *o)
{
    return o ? (int64_t)fern_tensor_get_flat(o->step, 0) : 0;
}

double fern_optim_lr(const fern_optimizer *o) { return o ? fern_tensor_get_flat(o->lr, 0) : 0; }

fern_status fern_optim_prepare(fern_optimizer *o)
{
    if (!o)
        return FERN_ERR_INVALID;
    double lr = o->schedule ? fern_lr_at(o->schedule, fern_optim_step_count(o)) : o->base_lr;
    *(double *)fern_tensor_data(o->lr) = lr;
    return FERN_OK;
}

/* b^t for a 0-d tensor t, as exp(t log b) (b in [0, 1)). */
static fern_tensor *pow_of(double b, fern_tensor *t)
{
    if (b == 0)
        return fern_zeros_like(t);
    return fern_exp(fern_mul_scalar(t, log(b)));
}

static int update(fern_optimizer *o, int i, fern_tensor *g)
{
    fern_tensor *p = o->params[i];
    fern_dtype dt = fern_tensor_dtype(p);
    if (fern_tensor_dtype(g) != dt)
        g = fern_cast(g, dt);
    fern_tensor *lr = fern_cast(o->lr, dt);
    fern_tensor *t = fern_add_scalar(o->step, 1.0); /* f64: the step being taken */
    /* the common cases as one in-place pass each (same arithmetic) */
    int fused_dt = (dt == FERN_F32 || dt == FERN_F64) && fern_tensor_is_contiguous(p);
    if (fused_dt && o->k == SGD && o->momentum != 0 && o->dampening == 0 &&
        fern_tensor_is_contiguous(o->slots[0][i]))
        return fern_apply_momentum(p, o->slots[0][i], g, lr, o->momentum, o->wd, o->nesterov) ? 0 : -1;
    if (fused_dt && (o->k == ADAM || o->k == ADAMW) && fern_tensor_is_contiguous(o->slots[0][i]) &&
        fern_tensor_is_contiguous(o->slots[1][i]))
        return fern_apply_adam(p, o->slots[0][i], o->slots[1][i], g, lr, t, o->beta1, o->beta2, o->eps, o->wd,
                               o->k == ADAMW)
                   ? 0
                   : -1;
    fern_tensor *np = NULL;
    switch (o->k) {
    case SGD: {
        if (o->wd != 0)
            g = fern_add(g, fern_mul_scalar(p, o->wd));
        if (o->momentum != 0) {
            fern_tensor *buf = o->slots[0][i];
            fern_tensor *nb;
            if (o->dampening == 0) {
                /* the buffer starts at zero, so momentum * 0 + g is torch's
                 * first-step buf = g: no select over every element */
                nb = fern_add(fern_mul_scalar(buf, o->momentum), g);
            } else {
                fern_tensor *first = fern_eq(o->step, fern_scalar(FERN_F64, 0));
                nb = fern_where(first, g,
                                fern_add(fern_mul_scalar(buf, o->momentum), fern_mul_scalar(g, 1 - o->dampening)));
            }
            fern_assign(buf, nb);
            g = o->nesterov ? fern_add(g, fern_mul_scalar(nb, o->momentum)) : nb;
        }
        np = fern_sub(p, fern_mul(g, lr));
        break;
    }
    case ADAM:
    case ADAMW:
    case LAMB: {
        if (o->k == ADAM && o->wd != 0)
            g = fern_add(g, fern_mul_scalar(p, o->wd));
        fern_tensor *m = fern_add(fern_mul_scalar(o->slots[0][i], o->beta1), fern_mul_scalar(g, 1 - o->beta1));
        fern_tensor *v = fern_add(fern_mul_scalar(o->slots[1][i], o->beta2),
                                  fern_mul_scalar(fern_square(g), 1 - o->beta2));
        fern_assign(o->slots[0][i], m);
        fern_assign(o->slots[1][i], v);
        fern_tensor *bc1 = fern_cast(fern_sub(fern_scalar(FERN_F64, 1), pow_of(o->beta1, t)), dt);
        fern_tensor *bc2 = fern_cast(fern_sub(fern_scalar(FERN_F64, 1), pow_of(o->beta2, t)), dt);
        if (o->k == LAMB) {
            fern_tensor *u = fern_div(fern_div(m, bc1), fern_add_scalar(fern_sqrt(fern_div(v, bc2)), o->eps));
            if (o->wd != 0)
                u = fern_add(u, fern_mul_scalar(p, o->wd));
            fern_tensor *r1 = fern_sqrt(fern_sum(fern_square(p), NULL, 0, 0));
            fern_tensor *r2 = fern_sqrt(fern_sum(fern_square(u), NULL, 0, 0));
            fern_tensor *zero = fern_scalar(dt, 0);
            fern_tensor *ok = fern_logical_and(fern_gt(r1, zero), fern_gt(r2, zero));
            fern_tensor *trust = fern_where(ok, fern_div(r1, r2), fern_scalar(dt, 1));
            np = fern_sub(p, fern_mul(u, fern_mul(lr, trust)));
        } else {
            fern_tensor *base = p;
            if (o->k == ADAMW && o->wd != 0)
                base = fern_mul(p, fern_sub(fern_scalar(dt, 1), fern_mul_scalar(lr, o->wd)));
            fern_tensor *denom = fern_add_scalar(fern_div(fern_sqrt(v), fern_sqrt(bc2)), o->eps);
            np = fern_sub(base, fern_mul(fern_div(m, denom), fern_div(lr, bc1)));
        }
        break;
    }
    case RMSPROP: {
        if (o->wd != 0)
            g = fern_add(g, fern_mul_scalar(p, o->wd));
        fern_tensor *sq = fern_add(fern_mul_scalar(o->slots[0][i], o->alpha),
                                   fern_mul_scalar(fern_square(g), 1 - o->alpha));
        fern_assign(o->slots[0][i], sq);
        fern_tensor *avg;
        if (o->centered) {
            fern_tensor *ga = fern_add(fern_mul_scalar(o->slots[2][i], o->alpha), fern_mul_scalar(g, 1 - o->alpha));
            fern_assign(o->slots[2][i], ga);
            avg = fern_add_scalar(fern_sqrt(fern_sub(sq, fern_square(ga))), o->eps);
        } else {
            avg = fern_add_scalar(fern_sqrt(sq), o->eps);
        }
        if (o->momentum > 0) {
            fern_tensor *buf = fern_add(fern_mul_scalar(o->slots[1][i], o->momentum), fern_div(g, avg));
            fern_assign(o->slots[1][i], buf);
            np = fern_sub(p, fern_mul(buf, lr));
        } else {
            np = fern_sub(p, fern_mul(fern_div(g, avg), lr));
        }
        break;
    }
    case ADAGRAD: {
        if (o->wd != 0)
            g = fern_add(g, fern_mul_scalar(p, o->wd));
        /* clr = lr / (1 + (t - 1) * lr_decay) */
        fern_tensor *clr = fern_div(lr, fern_cast(fern_add_scalar(fern_mul_scalar(o->step, o->lr_decay), 1.0), dt));
        fern_tensor *sum = fern_add(o->slots[0][i], fern_square(g));
        fern_assign(o->slots[0][i], sum);
        np = fern_sub(p, fern_mul(fern_div(g, fern_add_scalar(fern_sqrt(sum), o->eps)), clr));
        break;
    }
    }
    return fern_assign(p, np) ? 0 : -1;
}

fern_status fern_optim_step(fern_optimizer *o, fern_tensor *const *grads, int n)
{
    if (!o || !grads) {
        fern_set_error(FERN_ERR_INVALID, "optim_step: NULL optimizer or gradients");
        return FERN_ERR_INVALID;
    }
    if (n != o->n) {
        fern_set_error(FERN_ERR_INVALID, "%s: step got %d gradients for %d parameters", o->name, n, o->n);
        return FERN_ERR_INVALID;
    }
    for (int i = 0; i < n; i++)
        if (grads[i] && (fern_tensor_ndim(grads[i]) != fern_tensor_ndim(o->params[i]) ||
                         memcmp(fern_tensor_shape(grads[i]), fern_tensor_shape(o->params[i]),
                                sizeof(int64_t) * (size_t)fern_tensor_ndim(grads[i])))) {
            char a[96], b[96];
            fern_set_error(FERN_ERR_INVALID, "%s: gradient %d is %s but its parameter is %s", o->name, i,
                           fern_tensor_desc(grads[i], a, sizeof a), fern_tensor_desc(o->params[i], b, sizeof b));
            return FERN_ERR_INVALID;
        }
    if (!fern__tracing())
        fern_optim_prepare(o);
    int rc = 0;
    fern_scope_begin();
    for (int i = 0; i < n && rc == 0; i++)
        if (grads[i])
            rc = update(o, i, grads[i]);
    if (rc == 0 && !fern_assign(o->step, fern_add_scalar(o->step, 1.0)))
        rc = -1;
    fern_scope_end();
    return rc ? (fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL) : FERN_OK;
}

fern_status fern_optim_save_state(const fern_optimizer *o, fern_checkpoint *ck, const char *prefix)
{
    if (!o || !ck || !prefix)
        return FERN_ERR_INVALID;
    char name[512];
    snprintf(name, sizeof name, "%s.kind", prefix);
    fern_checkpoint_set_str(ck, name, o->name);
    snprintf(name, sizeof name, "%s.step", prefix);
    fern_checkpoint_add(ck, name, o->step);
    snprintf(name, sizeof name, "%s.lr", prefix);
    fern_checkpoint_add(ck, name, o->lr);
    for (int i = 0; i < o->n; i++)
        for (int s = 0; s < o->n_slots; s++) {
            snprintf(name, sizeof name, "%s.%d.%s", prefix, i, o->slot_names[s]);
            fern_status st = fern_checkpoint_add(ck, name, o->slots[s][i]);
            if (st != FERN_OK)
                return st;
        }
    return FERN_OK;
}

fern_status fern_optim_load_state(fern_optimizer *o, const fern_checkpoint *ck, const char *prefix)
{
    if (!o || !ck || !prefix)
        return FERN_ERR_INVALID;
    char name[512];
    snprintf(name, sizeof name, "%s.kind", prefix);
    const char *kind_name = fern_checkpoint_get_str(ck, name);
    if (!kind_name || strcmp(kind_name, o->name) != 0) {
        fern_set_error(FERN_ERR_INVALID, "optim_load_state: the checkpoint holds %s state under '%s', not %s",
                       kind_name ? kind_name : "no optimizer", prefix, o->name);
        return FERN_ERR_INVALID;
    }
    /* check everything first, then copy: a failed load changes nothing */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = -2; i < o->n * o->n_slots; i++) {
            fern_tensor *dst;
            if (i == -2) {
                snprintf(name, sizeof name, "%s.step", prefix);
                dst = o->step;
            } else if (i == -1) {
                snprintf(name, sizeof name, "%s.lr", prefix);
                dst = o->lr;
            } else {
                int p = i / o->n_slots, s = i % o->n_slots;
                snprintf(name, sizeof name, "%s.%d.%s", prefix, p, o->slot_names[s]);
                dst = o->slots[s][p];
            }
            fern_tensor *src = fern_checkpoint_get(ck, name);
            if (!src || fern_tensor_numel(src) != fern_tensor_numel(dst) ||
                fern_tensor_ndim(src) != fern_tensor_ndim(dst)) {
                fern_set_error(FERN_ERR_INVALID, "optim_load_state: '%s' is missing or has the wrong shape", name);
                return FERN_ERR_INVALID;
            }
            if (pass == 1 && fern_tensor_assign(dst, src) != FERN_OK)
                return fern_last_status();
        }
    }
    return FERN_OK;
}

fern_status fern_clip_by_global_norm(fern_tensor *const *grads, int n, double max_norm,
                                     fern_tensor **clipped, fern_tensor **total_norm)
{
    if (!grads || !clipped || n <= 0 || !(max_norm > 0)) {
        fern_set_error(FERN_ERR_INVALID, "clip_by_global_norm: need gradients and max_norm > 0");
        return FERN_ERR_INVALID;
    }
    fern_tensor *res[FERN_MAX_INPUTS * 16] = {0};
    if (n > (int)(sizeof res / sizeof *res)) {
        fern_set_error(FERN_ERR_INVALID, "clip_by_global_norm: too many gradients (%d)", n);
        return FERN_ERR_INVALID;
    }
    fern_tensor *norm = NULL;
    fern_scope_begin();
    fern_tensor *sq = fern_scalar(FERN_F64, 0);
    for (int i = 0; i < n; i++)
        if (grads[i])
            sq = fern_add(sq, fern_cast(fern_sum(fern_square(grads[i]), NULL, 0, 0), FERN_F64));
    fern_tensor *total = fern_sqrt(sq);
    fern_tensor *coef = fern_minimum(fern_div(fern_scalar(FERN_F64, max_norm), fern_add_scalar(total, 1e-6)),
                                     fern_scalar(FERN_F64, 1));
    int ok = total && coef;
    for (int i = 0; i < n && ok; i++) {
        res[i] = grads[i] ? fern_retain(fern_mul(grads[i], fern_cast(coef, fern_tensor_dtype(grads[i])))) : NULL;
        ok = !grads[i] || res[i];
    }
    if (ok)
        norm = fern_retain(total);
    fern_scope_end();
    if (!ok) {
        for (int i = 0; i < n; i++)
            fern_release(res[i]);
        return fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
    }
    for (int i = 0; i < n; i++)
        clipped[i] = fern__scope_register(res[i]);
    if (total_norm)
        *total_norm = fern__scope_register(norm);
    else
        fern_release(norm);
    return FERN_OK;
}
