/* Checks and shape inference of the pooling ops: attribute parsing (a
 * value or a pair), torch's output size formula, the rank/dtype rules and
 * the errors that name the op, the shapes and the dtypes. The kernels call
 * the same setup functions, so a kernel never sees a geometry inference
 * would have refused. */
#include <stdio.h>
#include <string.h>

#include "pool_common.h"

/* Floor division (b > 0). */
static int64_t div_floor(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

/* torch's pooling_output_shape */
static int64_t pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t s, int ceil_mode)
{
    int64_t o = div_floor(in + 2 * pad - (k - 1) - 1 + (ceil_mode ? s - 1 : 0), s) + 1;
    if (ceil_mode && (o - 1) * s >= in + pad)
        o--;
    return o;
}

static int get_pair(const char *op, const fern_attr *a, const char *name, int64_t *out)
{
    if (a->n == 1) {
        out[0] = out[1] = a->ints[0];
    } else if (a->n == 2) {
        out[0] = a->ints[0];
        out[1] = a->ints[1];
    } else {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute '%s' needs 1 or 2 values, got %d", op,
                       name, a->n);
        return -1;
    }
    return 0;
}

int fern__pool_input(fern_op_call *c, pool_geom *g, int float_only)
{
    const char *op = c->op->name;
    const fern_tensor *x = c->in[0];
    char d[128];
    if (x->ndim != 3 && x->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got %s", op,
                       fern__desc(x, d, sizeof d));
        return -1;
    }
    if (float_only ? !fern_dtype_is_float(x->dtype)
                   : !(fern_dtype_is_float(x->dtype) || fern_dtype_is_int(x->dtype)))
        return fern__err_dtype(c, x,
                               float_only ? "expected a float input (f32, f64, f16, bf16)"
                                          : "expected a float or integer input");
    memset(g, 0, sizeof *g);
    int b = x->ndim - 3;
    g->NC = (b ? x->shape[0] : 1) * x->shape[b];
    g->H = x->shape[b + 1];
    g->W = x->shape[b + 2];
    return 0;
}

/* the input's shape with the spatial dims replaced by the output size */
static void pool_out_shape(fern_op_call *c, const pool_geom *g)
{
    const fern_tensor *x = c->in[0];
    fern__set_out(c, 0, x->dtype, x->ndim, x->shape);
    c->out_shape[0][x->ndim - 2] = g->OH;
    c->out_shape[0][x->ndim - 1] = g->OW;
}

int fern__pool_params(const fern_op_call *c, pool_geom *g, int is_avg, const fern_tensor *desc)
{
    const char *op = c->op->name;
    const fern_attr *A = c->attrs;
    char d[128];
    int64_t k[2], s[2] = {0, 0}, p[2] = {0, 0};
    if (A[0].n == 0) {
        fern_set_error(FERN_ERR_INVALID, "%s: attribute 'kernel' is required", op);
        return -1;
    }
    if (get_pair(op, &A[0], "kernel", k) || (A[1].n && get_pair(op, &A[1], "stride", s)) ||
        (A[2].n && get_pair(op, &A[2], "padding", p)))
        return -1;
    for (int i = 0; i < 2; i++) {
        if (s[i] == 0)
            s[i] = k[i];
        if (k[i] < 1 || s[i] < 1 || p[i] < 0) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: kernel (%lld, %lld) and stride (%lld, %lld) must be positive and "
                           "padding (%lld, %lld) non-negative",
                           op, (long long)k[0], (long long)k[1], (long long)s[0], (long long)s[1],
                           (long long)p[0], (long long)p[1]);
            return -1;
        }
        if (p[i] > k[i] / 2) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: padding (%lld, %lld) should be at most half of the kernel size "
                           "(%lld, %lld)",
                           op, (long long)p[0], (long long)p[1], (long long)k[0], (long long)k[1]);
            return -1;
        }
    }
    g->kh = k[0], g->kw = k[1], g->sh = s[0], g->sw = s[1], g->ph = p[0], g->pw = p[1];
    g->ceil_mode = A[3].i != 0;
    g->count_include_pad = is_avg ? A[4].i != 0 : 0;
    g->OH = pool_out_size(g->H, g->kh, g->ph, g->sh, g->ceil_mode);
    g->OW = pool_out_size(g->W, g->kw, g->pw, g->sw, g->ceil_mode);
    if (g->OH < 1 || g->OW < 1) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: output size (%lld x %lld) is too small: input %s, kernel (%lld, %lld), "
                       "padding (%lld, %lld)",
                       op, (long long)g->OH, (long long)g->OW, fern__desc(desc, d, sizeof d),
                       (long long)k[0], (long long)k[1], (long long)p[0], (long long)p[1]);
        return -1;
    }
    return 0;
}

int fern__pool_setup(fern_op_call *c, pool_geom *g, int is_avg)
{
    if (fern__pool_input(c, g, is_avg))
        return -1;
    return fern__pool_params(c, g, is_avg, c->in[0]);
}

int fern__max_pool_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 0))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

int fern__avg_pool_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 1))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

int fern__adaptive_setup(fern_op_call *c, pool_geom *g)
{
    const char *op = c->op->name;
    char d[128];
    if (fern__pool_input(c, g, 1))
        return -1;
    int64_t o[2];
    if (get_pair(op, &c->attrs[0], "output_size", o))
        return -1;
    if (o[0] < 1 || o[1] < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: output size (%lld, %lld) must be positive", op,
                       (long long)o[0], (long long)o[1]);
        return -1;
    }
    if (g->H < 1 || g->W < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: input %s has an empty spatial dimension", op,
                       fern__desc(c->in[0], d, sizeof d));
        return -1;
    }
    g->OH = o[0];
    g->OW = o[1];
    return 0;
}

int fern__adaptive_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__adaptive_setup(c, &g))
        return -1;
    pool_out_shape(c, &g);
    return 0;
}

/* gy must have the forward's output shape and x's dtype */
static int check_gy(const fern_op_call *c, const fern_tensor *gy, const fern_tensor *like,
                    int ndim, const int64_t *shape)
{
    char a[128], b[128];
    int ok = gy->ndim == ndim && gy->dtype == like->dtype;
    for (int d = 0; ok && d < ndim; d++)
        ok = gy->shape[d] == shape[d];
    if (!ok) {
        int64_t s[FERN_MAX_DIMS];
        memcpy(s, shape, (size_t)ndim * sizeof *s);
        fern_tensor tmp;
        memset(&tmp, 0, sizeof tmp);
        tmp.dtype = like->dtype;
        tmp.ndim = ndim;
        memcpy(tmp.shape, s, (size_t)ndim * sizeof *s);
        fern_set_error(FERN_ERR_INVALID, "%s: the output gradient must be %s, got %s", c->op->name,
                       fern__desc(&tmp, a, sizeof a), fern__desc(gy, b, sizeof b));
        return -1;
    }
    return 0;
}

int fern__max_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_input(c, &g, 1) || fern__pool_params(c, &g, 0, c->in[0])) /* float x only */
        return -1;
    pool_out_shape(c, &g);
    if (check_gy(c, c->in[1], c->in[0], c->out_ndim[0], c->out_shape[0]))
        return -1;
    fern__set_out(c, 0, c->in[0]->dtype, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

int fern__indices_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__pool_setup(c, &g, 0))
        return -1;
    pool_out_shape(c, &g);
    c->out_dtype[0] = FERN_I64;
    return 0;
}

int fern__avg_bwd_setup(fern_op_call *c, pool_geom *g)
{
    const char *op = c->op->name;
    const fern_tensor *gy = c->in[0];
    char d[128];
    if (gy->ndim != 3 && gy->ndim != 4) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: expected a 3-D or 4-D output gradient, got %s", op,
                       fern__desc(gy, d, sizeof d));
        return -1;
    }
    if (!fern_dtype_is_float(gy->dtype))
        return fern__err_dtype(c, gy, "expected a float output gradient (f32, f64, f16, bf16)");
    int64_t in[2];
    if (get_pair(op, &c->attrs[c->op->n_attrs - 1], "input_size", in))
        return -1;
    if (in[0] < 1 || in[1] < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: input_size (%lld, %lld) must be positive", op,
                       (long long)in[0], (long long)in[1]);
        return -1;
    }
    memset(g, 0, sizeof *g);
    int b = gy->ndim - 3;
    g->NC = (b ? gy->shape[0] : 1) * gy->shape[b];
    g->H = in[0];
    g->W = in[1];
    return 0;
}

int fern__avg_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    const fern_tensor *gy = c->in[0];
    if (fern__avg_bwd_setup(c, &g) || fern__pool_params(c, &g, 1, gy))
        return -1;
    int64_t s[4];
    memcpy(s, gy->shape, (size_t)gy->ndim * sizeof *s);
    s[gy->ndim - 2] = g.OH;
    s[gy->ndim - 1] = g.OW;
    if (check_gy(c, gy, gy, gy->ndim, s))
        return -1;
    fern__set_out(c, 0, gy->dtype, gy->ndim, gy->shape);
    c->out_shape[0][gy->ndim - 2] = g.H;
    c->out_shape[0][gy->ndim - 1] = g.W;
    return 0;
}

int fern__adaptive_bwd_setup(fern_op_call *c, pool_geom *g)
{
    if (fern__avg_bwd_setup(c, g))
        return -1;
    const fern_tensor *gy = c->in[0];
    g->OH = gy->shape[gy->ndim - 2];
    g->OW = gy->shape[gy->ndim - 1];
    if (g->OH < 1 || g->OW < 1) {
        char d[128];
        fern_set_error(FERN_ERR_INVALID,
                       "%s: the output gradient %s has an empty spatial dimension", c->op->name,
                       fern__desc(gy, d, sizeof d));
        return -1;
    }
    return 0;
}

int fern__adaptive_bwd_infer(fern_op_call *c)
{
    pool_geom g;
    if (fern__adaptive_bwd_setup(c, &g))
        return -1;
    const fern_tensor *gy = c->in[0];
    fern__set_out(c, 0, gy->dtype, gy->ndim, gy->shape);
    c->out_shape[0][gy->ndim - 2] = g.H;
    c->out_shape[0][gy->ndim - 1] = g.W;
    return 0;
}
