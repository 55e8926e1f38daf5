/* Normalization layers: BatchNorm1d/2d, LayerNorm, GroupNorm, with torch's
 * parameter and buffer names, defaults and semantics.
 *
 * Batch norm in training mode runs the batch_norm op without running
 * statistics (so the op itself updates nothing) and takes the batch mean and
 * inverse standard deviation from the op's outputs 1 and 2; the running
 * statistics are then updated with fern ops and fern_assign. fern_assign is
 * an ordered side effect that runs eagerly in pynative mode and stays in the
 * compiled graph in graph mode, so a jitted training step updates the
 * buffers on every run, exactly like an eager one. The statistics reach the
 * buffers only through assign (not differentiable), so gradients are those
 * of the normalization alone, as in torch. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "layers_internal.h"

fern_norm_opts fern_norm_opts_default(void)
{
    fern_norm_opts o;
    o.eps = 1e-5;
    o.momentum = 0.1;
    o.affine = 1;
    o.track_running_stats = 1;
    return o;
}

/* ---- BatchNorm1d / BatchNorm2d ------------------------------------------------ */

typedef struct {
    fern__layer_head h;
    int two_d;
    int64_t C;
    fern_norm_opts o;
    fern_dtype dt;
    fern_tensor *w, *b, *rm, *rv, *nbt;
} bn_state;

/* running = (1 - f) * running + f * stat, f a double or (cumulative) a 0-d tensor */
static fern_tensor *ema(fern_tensor *running, fern_tensor *stat, double f, fern_tensor *ft)
{
    if (!ft)
        return fern_add(fern_mul_scalar(running, 1.0 - f), fern_mul_scalar(stat, f));
    fern_tensor *keep = fern_add_scalar(fern_neg(ft), 1.0);
    return fern_add(fern_mul(running, keep), fern_mul(stat, ft));
}

static int bn_update_running(bn_state *s, fern_tensor *mean, fern_tensor *invstd, int64_t count)
{
    /* num_batches_tracked += 1 */
    fern_tensor *nbt = fern_assign(s->nbt, fern_add_scalar(s->nbt, 1.0));
    fern_tensor *ft = NULL;
    double f = s->o.momentum;
    if (!(f >= 0)) /* momentum=None: cumulative moving average */
        ft = fern_reciprocal(fern_cast(nbt, s->dt));
    /* the op's inverse std is 1/sqrt(var + eps) with the biased batch variance */
    fern_tensor *var = fern_clip(fern_sub_scalar(fern_reciprocal(fern_square(invstd)), s->o.eps), 0.0, INFINITY);
    fern_tensor *var_u = fern_mul_scalar(var, (double)count / (double)(count - 1));
    fern_tensor *a = fern_assign(s->rm, ema(s->rm, mean, f, ft));
    fern_tensor *b = fern_assign(s->rv, ema(s->rv, var_u, f, ft));
    return a && b ? 0 : -1;
}

static int bn_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    bn_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, s->two_d ? 4 : 2, s->two_d ? 4 : 3, (int)s->dt,
                          s->two_d ? "a 4-d input (N, C, H, W)" : "a 2-d or 3-d input (N, C) or (N, C, L)"))
        return -1;
    char d[128];
    if (fern_tensor_dim(x, 1) != s->C)
        return fern__layer_err(self, "expected %lld channels (dim 1), got %s", (long long)s->C,
                               fern_tensor_desc(x, d, sizeof d));
    int training = fern_cell_training(self);
    fern_tensor *y = NULL;
    if (!training && s->o.track_running_stats) {
        y = fern_batch_norm(x, s->rm, s->rv, s->w, s->b, 0, 0.0, s->o.eps);
    } else {
        int64_t count = s->C ? fern_tensor_numel(x) / s->C : 0;
        if (training && count <= 1)
            return fern__layer_err(self, "expected more than 1 value per channel when training, got %s",
                                   fern_tensor_desc(x, d, sizeof d));
        fern_tensor *ins[5] = {x, NULL, NULL, s->w, s->b};
        const char *names[2] = {"training", "eps"};
        fern_attr attrs[2];
        memset(attrs, 0, sizeof attrs);
        attrs[0].kind = FERN_ATTR_INT;
        attrs[0].n = 1;
        attrs[0].i = 1;
        attrs[1].kind = FERN_ATTR_FLOAT;
        attrs[1].n = 1;
        attrs[1].f = s->o.eps;
        fern_tensor *o[3] = {NULL, NULL, NULL};
        if (fern_op_invoke("batch_norm", 5, ins, 2, names, attrs, 3, o) != FERN_OK)
            return -1;
        y = o[0];
        if (training && s->o.track_running_stats && bn_update_running(s, o[1], o[2], count))
            return -1;
    }
    out[0] = y;
    return y ? 0 : -1;
}

static fern_cell *make_bn(const char *type, int two_d, int64_t C, const fern_norm_opts *opts)
{
    fern_norm_opts o = opts ? *opts : fern_norm_opts_default();
    if (C < 1 || !(o.eps >= 0) || o.momentum > 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: num_features must be positive, eps non-negative and momentum "
                       "at most 1, got %lld, %g, %g", type, (long long)C, o.eps, o.momentum);
        return NULL;
    }
    char mom[32];
    if (o.momentum >= 0)
        snprintf(mom, sizeof mom, "%g", o.momentum);
    else
        snprintf(mom, sizeof mom, "None");
    fern_cell *c = fern__layer_new(type, bn_forward, 1, sizeof(bn_state),
                                   "%s(%lld, eps=%g, momentum=%s, affine=%d, track_running_stats=%d)", type,
                                   (long long)C, o.eps, mom, o.affine != 0, o.track_running_stats != 0);
    if (!c)
        return NULL;
    bn_state *s = fern_cell_state(c);
    s->two_d = two_d;
    s->C = C;
    s->o = o;
    s->dt = fern_layers_default_dtype();
    int ok = 1;
    if (o.affine) {
        s->w = fern__layer_add_param(c, "weight", s->dt, 1, &C);
        s->b = fern__layer_add_param(c, "bias", s->dt, 1, &C);
        ok = s->w && s->b && fern_init_ones(s->w) == FERN_OK && fern_init_zeros(s->b) == FERN_OK;
    }
    if (ok && o.track_running_stats) {
        s->rm = fern__layer_add_buffer(c, "running_mean", s->dt, 1, &C);
        s->rv = fern__layer_add_buffer(c, "running_var", s->dt, 1, &C);
        s->nbt = fern__layer_add_buffer(c, "num_batches_tracked", FERN_I64, 0, NULL);
        ok = s->rm && s->rv && s->nbt && fern_init_zeros(s->rm) == FERN_OK && fern_init_ones(s->rv) == FERN_OK &&
             fern_init_zeros(s->nbt) == FERN_OK;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_batch_norm1d(int64_t num_features, const fern_norm_opts *opts)
{
    return make_bn("BatchNorm1d", 0, num_features, opts);
}

fern_cell *fern_layer_batch_norm2d(int64_t num_features, const fern_norm_opts *opts)
{
    return make_bn("BatchNorm2d", 1, num_features, opts);
}

/* ---- LayerNorm -------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int n;
    int64_t shape[FERN_MAX_DIMS];
    double eps;
    fern_dtype dt;
    fern_tensor *w, *b;
} ln_state;

static int ln_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    ln_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    char d[128];
    if (fern__layer_check(self, x, s->n, FERN_MAX_DIMS, (int)s->dt, "an input ending in the normalized shape"))
        return -1;
    int nd = fern_tensor_ndim(x);
    for (int k = 0; k < s->n; k++)
        if (fern_tensor_shape(x)[nd - s->n + k] != s->shape[k])
            return fern__layer_err(self, "expected an input ending in the normalized shape, got %s",
                                   fern_tensor_desc(x, d, sizeof d));
    out[0] = fern_layer_norm(x, s->n, s->w, s->b, s->eps);
    return out[0] ? 0 : -1;
}

fern_cell *fern_layer_layer_norm(int n_dims, const int64_t *normalized_shape, double eps, int elementwise_affine)
{
    if (n_dims < 1 || n_dims > FERN_MAX_DIMS || !normalized_shape || !(eps >= 0)) {
        fern_set_error(FERN_ERR_INVALID, "LayerNorm: need 1..%d normalized dims and a non-negative eps, got %d "
                       "dims and eps %g", FERN_MAX_DIMS, n_dims, eps);
        return NULL;
    }
    char shp[128];
    size_t used = 0;
    shp[0] = '\0';
    for (int k = 0; k < n_dims; k++) {
        if (normalized_shape[k] < 1) {
            fern_set_error(FERN_ERR_INVALID, "LayerNorm: normalized_shape[%d] must be positive, got %lld", k,
                           (long long)normalized_shape[k]);
            return NULL;
        }
        if (used < sizeof shp)
            used += (size_t)snprintf(shp + used, sizeof shp - used, "%s%lld", k ? ", " : "",
                                     (long long)normalized_shape[k]);
    }
    fern_cell *c = fern__layer_new("LayerNorm", ln_forward, 1, sizeof(ln_state),
                                   "LayerNorm((%s), eps=%g, elementwise_affine=%d)", shp, eps,
                                   elementwise_affine != 0);
    if (!c)
        return NULL;
    ln_state *s = fern_cell_state(c);
    s->n = n_dims;
    memcpy(s->shape, normalized_shape, (size_t)n_dims * sizeof(int64_t));
    s->eps = eps;
    s->dt = fern_layers_default_dtype();
    if (elementwise_affine) {
        s->w = fern__layer_add_param(c, "weight", s->dt, n_dims, s->shape);
        s->b = fern__layer_add_param(c, "bias", s->dt, n_dims, s->shape);
        if (!s->w || !s->b || fern_init_ones(s->w) != FERN_OK || fern_init_zeros(s->b) != FERN_OK) {
            fern_cell_release(c);
            return NULL;
        }
    }
    return c;
}

/* ---- GroupNorm -------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int64_t G, C;
    double eps;
    fern_dtype dt;
    fern_tensor *w, *b;
} gn_state;

static int gn_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    gn_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    char d[128];
    if (fern__layer_check(self, x, 2, FERN_MAX_DIMS, (int)s->dt, "an input of shape (N, C, ...)"))
        return -1;
    if (fern_tensor_dim(x, 1) != s->C)
        return fern__layer_err(self, "expected %lld channels (dim 1), got %s", (long long)s->C,
                               fern_tensor_desc(x, d, sizeof d));
    out[0] = fern_group_norm(x, s->G, s->w, s->b, s->eps);
    return out[0] ? 0 : -1;
}

fern_cell *fern_layer_group_norm(int64_t num_groups, int64_t num_channels, double eps, int affine)
{
    if (num_groups < 1 || num_channels < 1 || num_channels % num_groups || !(eps >= 0)) {
        fern_set_error(FERN_ERR_INVALID, "GroupNorm: num_channels (%lld) must be divisible by num_groups (%lld), "
                       "both positive, and eps (%g) non-negative", (long long)num_channels,
                       (long long)num_groups, eps);
        return NULL;
    }
    fern_cell *c = fern__layer_new("GroupNorm", gn_forward, 1, sizeof(gn_state), "GroupNorm(%lld, %lld, eps=%g, "
                                   "affine=%d)", (long long)num_groups, (long long)num_channels, eps, affine != 0);
    if (!c)
        return NULL;
    gn_state *s = fern_cell_state(c);
    s->G = num_groups;
    s->C = num_channels;
    s->eps = eps;
    s->dt = fern_layers_default_dtype();
    if (affine) {
        s->w = fern__layer_add_param(c, "weight", s->dt, 1, &num_channels);
        s->b = fern__layer_add_param(c, "bias", s->dt, 1, &num_channels);
        if (!s->w || !s->b || fern_init_ones(s->w) != FERN_OK || fern_init_zeros(s->b) != FERN_OK) {
            fern_cell_release(c);
            return NULL;
        }
    }
    return c;
}
