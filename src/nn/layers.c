/* The layer library, part 1: shared helpers, the layer dtype, Linear /
 * Dense, Dropout, Embedding, pooling, Flatten, activations and
 * WithLossCell. Convolutions are in conv_layers.c, normalization layers in
 * norm_layers.c and losses in loss_cells.c. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "layers_internal.h"

/* ---- shared helpers ------------------------------------------------------- */

static _Thread_local fern_dtype layer_dtype = FERN_F32;

fern_status fern_layers_set_default_dtype(fern_dtype dt)
{
    if ((unsigned)dt >= FERN_DTYPE_COUNT || !fern_dtype_is_float(dt)) {
        fern_set_error(FERN_ERR_INVALID,
                       "layers_set_default_dtype: parameters need a float dtype (f32, f64, f16, "
                       "bf16), got %s",
                       (unsigned)dt < FERN_DTYPE_COUNT ? fern_dtype_name(dt) : "an invalid dtype");
        return FERN_ERR_INVALID;
    }
    layer_dtype = dt;
    return FERN_OK;
}

fern_dtype fern_layers_default_dtype(void) { return layer_dtype; }

fern_cell *fern__layer_new(const char *type, fern_cell_forward_fn forward, int n_in,
                           size_t state_size, const char *fmt, ...)
{
    fern__layer_head *st = calloc(1, state_size < sizeof *st ? sizeof *st : state_size);
    if (!st) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->desc, sizeof st->desc, fmt, ap);
    va_end(ap);
    return fern_cell_new(type, forward, n_in, 1, st, free);
}

int fern__layer_err(const fern_cell *self, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const fern__layer_head *h = fern_cell_state(self);
    fern_set_error(FERN_ERR_INVALID, "%s: %s", h ? h->desc : fern_cell_type(self), msg);
    return -1;
}

static fern_tensor *add_member(fern_cell *c, int buffer, const char *name, fern_dtype dt, int ndim,
                               const int64_t *shape)
{
    if (!c)
        return NULL;
    /* the scope owns the new tensor until the cell has taken its reference */
    fern_scope_begin();
    fern_tensor *t = fern_empty(dt, ndim, shape);
    fern_status st = FERN_ERR_NOMEM;
    if (t)
        st = buffer ? fern_cell_add_buffer(c, name, t) : fern_cell_add_param(c, name, t);
    fern_scope_end();
    if (st != FERN_OK) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(st, "%s: cannot create %s '%s'", fern_cell_type(c),
                           buffer ? "buffer" : "parameter", name);
        return NULL;
    }
    return buffer ? fern_cell_buffer(c, name) : fern_cell_param(c, name);
}

fern_tensor *fern__layer_add_param(fern_cell *c, const char *name, fern_dtype dt, int ndim,
                                   const int64_t *shape)
{
    return add_member(c, 0, name, dt, ndim, shape);
}

fern_tensor *fern__layer_add_buffer(fern_cell *c, const char *name, fern_dtype dt, int ndim,
                                    const int64_t *shape)
{
    return add_member(c, 1, name, dt, ndim, shape);
}

int fern__layer_check(const fern_cell *self, const fern_tensor *x, int min_nd, int max_nd, int dt,
                      const char *expected)
{
    if (!x) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(self, "input is NULL");
        return -1;
    }
    char d[128];
    int nd = fern_tensor_ndim(x);
    if (nd < min_nd || nd > max_nd)
        return fern__layer_err(self, "expected %s, got %s", expected, fern_tensor_desc(x, d, sizeof d));
    if (dt >= 0 && fern_tensor_dtype(x) != (fern_dtype)dt)
        return fern__layer_err(self, "expected a %s input (the parameters' dtype), got %s",
                               fern_dtype_name((fern_dtype)dt), fern_tensor_desc(x, d, sizeof d));
    return 0;
}

/* ---- Linear / Dense ----------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int64_t in, out;
    fern_tensor *w, *b; /* borrowed from the cell */
} linear_state;

static int linear_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    linear_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 1, FERN_MAX_DIMS, (int)fern_tensor_dtype(s->w),
                          "an input of shape (..., in_features)"))
        return -1;
    if (fern_tensor_dim(x, -1) != s->in) {
        char d[128];
        return fern__layer_err(self, "expected an input whose last dim is %lld, got %s", (long long)s->in,
                               fern_tensor_desc(x, d, sizeof d));
    }
    fern_tensor *y;
    fern_dtype dt = fern_tensor_dtype(s->w);
    if (dt == FERN_F32 || dt == FERN_F64) {
        y = fern_linear(x, s->w, s->b); /* bias in the gemm, weight grad in W's layout */
    } else {
        y = fern_matmul(x, fern_transpose(s->w, 0, 1));
        if (s->b)
            y = fern_add(y, s->b);
    }
    out[0] = y;
    return y ? 0 : -1;
}

static fern_cell *make_linear(const char *type, int64_t in_f, int64_t out_f, int bias)
{
    if (in_f < 1 || out_f < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: in_features and out_features must be positive, got %lld and %lld",
                       type, (long long)in_f, (long long)out_f);
        return NULL;
    }
    fern_cell *c = fern__layer_new(type, linear_forward, 1, sizeof(linear_state),
                                   "%s(in_features=%lld, out_features=%lld, bias=%d)", type, (long long)in_f,
                                   (long long)out_f, bias != 0);
    if (!c)
        return NULL;
    linear_state *s = fern_cell_state(c);
    s->in = in_f;
    s->out = out_f;
    fern_dtype dt = fern_layers_default_dtype();
    int64_t ws[2] = {out_f, in_f};
    s->w = fern__layer_add_param(c, "weight", dt, 2, ws);
    double bound = 1.0 / sqrt((double)in_f);
    int ok = s->w && fern_init_he_uniform(s->w, sqrt(5.0)) == FERN_OK;
    if (ok && bias) {
        s->b = fern__layer_add_param(c, "bias", dt, 1, &out_f);
        ok = s->b && fern_init_uniform(s->b, -bound, bound) == FERN_OK;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_linear(int64_t in_features, int64_t out_features, int bias)
{
    return make_linear("Linear", in_features, out_features, bias);
}

fern_cell *fern_layer_dense(int64_t in_features, int64_t out_features, int bias)
{
    return make_linear("Dense", in_features, out_features, bias);
}

/* ---- Dropout ------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    double p;
} dropout_state;

static int dropout_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    dropout_state *s = fern_cell_state(self);
    if (fern__layer_check(self, in[0], 0, FERN_MAX_DIMS, -1, "a tensor"))
        return -1;
    out[0] = fern_dropout(in[0], s->p, fern_cell_training(self));
    return out[0] ? 0 : -1;
}

fern_cell *fern_layer_dropout(double p)
{
    if (!(p >= 0.0 && p <= 1.0)) {
        fern_set_error(FERN_ERR_INVALID, "Dropout: p must be in [0, 1], got %g", p);
        return NULL;
    }
    fern_cell *c = fern__layer_new("Dropout", dropout_forward, 1, sizeof(dropout_state), "Dropout(p=%g)", p);
    if (c)
        ((dropout_state *)fern_cell_state(c))->p = p;
    return c;
}

/* ---- Embedding ------------------------------------------------------------------ */

typedef struct {
    fern__layer_head h;
    int64_t num, dim, padding_idx; /* padding_idx normalized, -1 for none */
    fern_tensor *w;
} embedding_state;

static int embedding_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out,
                             fern_tensor **out)
{
    embedding_state *s = fern_cell_state(self);
    fern_tensor *idx = in[0];
    if (fern__layer_check(self, idx, 0, FERN_MAX_DIMS - 1, -1, "integer indices"))
        return -1;
    if (!fern_dtype_is_int(fern_tensor_dtype(idx))) {
        char d[128];
        return fern__layer_err(self, "expected integer indices, got %s", fern_tensor_desc(idx, d, sizeof d));
    }
    fern_tensor *y = fern_embedding(s->w, idx);
    if (y && s->padding_idx >= 0) {
        /* the padding row gets no gradient (like torch): its lookups are
         * taken through stop_gradient */
        fern_tensor *pad = fern_scalar(fern_tensor_dtype(idx), (double)s->padding_idx);
        fern_tensor *mask = fern_unsqueeze(fern_eq(idx, pad), -1);
        y = fern_where(mask, fern_stop_gradient(y), y);
    }
    out[0] = y;
    return y ? 0 : -1;
}

fern_cell *fern_layer_embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx)
{
    if (num_embeddings < 1 || embedding_dim < 1) {
        fern_set_error(FERN_ERR_INVALID, "Embedding: num_embeddings and embedding_dim must be positive, got %lld and %lld",
                       (long long)num_embeddings, (long long)embedding_dim);
        return NULL;
    }
    int64_t pad = -1;
    if (padding_idx != FERN_NO_PADDING_IDX) {
        if (padding_idx < -num_embeddings || padding_idx >= num_embeddings) {
            fern_set_error(FERN_ERR_INVALID, "Embedding: padding_idx %lld is out of range for %lld embeddings",
                           (long long)padding_idx, (long long)num_embeddings);
            return NULL;
        }
        pad = padding_idx < 0 ? padding_idx + num_embeddings : padding_idx;
    }
    char pdesc[48] = "";
    if (pad >= 0)
        snprintf(pdesc, sizeof pdesc, ", padding_idx=%lld", (long long)pad);
    fern_cell *c = fern__layer_new("Embedding", embedding_forward, 1, sizeof(embedding_state),
                                   "Embedding(%lld, %lld%s)", (long long)num_embeddings,
                                   (long long)embedding_dim, pdesc);
    if (!c)
        return NULL;
    embedding_state *s = fern_cell_state(c);
    s->num = num_embeddings;
    s->dim = embedding_dim;
    s->padding_idx = pad;
    int64_t ws[2] = {num_embeddings, embedding_dim};
    s->w = fern__layer_add_param(c, "weight", fern_layers_default_dtype(), 2, ws);
    int ok = s->w && fern_init_normal(s->w, 0.0, 1.0) == FERN_OK;
    if (ok && pad >= 0) {
        fern_scope_begin();
        fern_tensor *row = fern_slice(s->w, 0, pad, pad + 1, 1);
        ok = row && fern_init_zeros(row) == FERN_OK;
        fern_scope_end();
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

/* ---- pooling ----------------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    fern_pool_opts opts;
    int64_t out_h, out_w; /* adaptive */
    int kind;             /* 0 max, 1 avg, 2 adaptive avg */
} pool_state;

static int pool_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    pool_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 3, 4, -1, "an input of shape (N, C, H, W) or (C, H, W)"))
        return -1;
    /* like torch, an unbatched (C, H, W) input is pooled as a batch of one */
    int unbatched = fern_tensor_ndim(x) == 3;
    if (unbatched)
        x = fern_unsqueeze(x, 0);
    fern_tensor *y = s->kind == 0   ? fern_max_pool2d(x, &s->opts)
                     : s->kind == 1 ? fern_avg_pool2d(x, &s->opts)
                                    : fern_adaptive_avg_pool2d(x, s->out_h, s->out_w);
    if (unbatched) {
        int ax = 0;
        y = fern_squeeze(y, &ax, 1);
    }
    out[0] = y;
    return y ? 0 : -1;
}

static fern_cell *make_pool(const char *type, int kind, const fern_pool_opts *opts)
{
    if (!opts) {
        fern_set_error(FERN_ERR_INVALID, "%s: opts is NULL (use fern_pool_opts_default)", type);
        return NULL;
    }
    for (int d = 0; d < 2; d++)
        if (opts->kernel[d] < 1 || opts->stride[d] < 0 || opts->padding[d] < 0 ||
            2 * opts->padding[d] > opts->kernel[d]) {
            fern_set_error(FERN_ERR_INVALID,
                           "%s: kernel (%lld, %lld) must be positive, stride (%lld, %lld) non-negative "
                           "and padding (%lld, %lld) at most half the kernel",
                           type, (long long)opts->kernel[0], (long long)opts->kernel[1],
                           (long long)opts->stride[0], (long long)opts->stride[1],
                           (long long)opts->padding[0], (long long)opts->padding[1]);
            return NULL;
        }
    int64_t sh = opts->stride[0] ? opts->stride[0] : opts->kernel[0];
    int64_t sw = opts->stride[1] ? opts->stride[1] : opts->kernel[1];
    char extra[48] = "";
    if (kind == 1)
        snprintf(extra, sizeof extra, ", count_include_pad=%d", opts->count_include_pad != 0);
    fern_cell *c = fern__layer_new(type, pool_forward, 1, sizeof(pool_state),
                                   "%s(kernel_size=(%lld, %lld), stride=(%lld, %lld), padding=(%lld, %lld), "
                                   "ceil_mode=%d%s)",
                                   type, (long long)opts->kernel[0], (long long)opts->kernel[1], (long long)sh,
                                   (long long)sw, (long long)opts->padding[0], (long long)opts->padding[1],
                                   opts->ceil_mode != 0, extra);
    if (!c)
        return NULL;
    pool_state *s = fern_cell_state(c);
    s->opts = *opts;
    s->kind = kind;
    return c;
}

fern_cell *fern_layer_max_pool2d(const fern_pool_opts *opts) { return make_pool("MaxPool2d", 0, opts); }
fern_cell *fern_layer_avg_pool2d(const fern_pool_opts *opts) { return make_pool("AvgPool2d", 1, opts); }

fern_cell *fern_layer_adaptive_avg_pool2d(int64_t out_h, int64_t out_w)
{
    if (out_h < 1 || out_w < 1) {
        fern_set_error(FERN_ERR_INVALID, "AdaptiveAvgPool2d: output size must be positive, got (%lld, %lld)",
                       (long long)out_h, (long long)out_w);
        return NULL;
    }
    fern_cell *c = fern__layer_new("AdaptiveAvgPool2d", pool_forward, 1, sizeof(pool_state),
                                   "AdaptiveAvgPool2d(output_size=(%lld, %lld))", (long long)out_h,
                                   (long long)out_w);
    if (!c)
        return NULL;
    pool_state *s = fern_cell_state(c);
    s->kind = 2;
    s->out_h = out_h;
    s->out_w = out_w;
    return c;
}

/* ---- Flatten ------------------------------------------------------------------------ */

typedef struct {
    fern__layer_head h;
    int start, end;
} flatten_state;

static int flatten_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    flatten_state *s = fern_cell_state(self);
    if (fern__layer_check(self, in[0], 0, FERN_MAX_DIMS, -1, "a tensor"))
        return -1;
    out[0] = fern_flatten(in[0], s->start, s->end);
    return out[0] ? 0 : -1;
}

fern_cell *fern_layer_flatten(int start_axis, int end_axis)
{
    fern_cell *c = fern__layer_new("Flatten", flatten_forward, 1, sizeof(flatten_state),
                                   "Flatten(start_dim=%d, end_dim=%d)", start_axis, end_axis);
    if (c) {
        flatten_state *s = fern_cell_state(c);
        s->start = start_axis;
        s->end = end_axis;
    }
    return c;
}

/* ---- activations ------------------------------------------------------------------ */

typedef enum { ACT_RELU, ACT_LEAKY, ACT_ELU, ACT_GELU, ACT_SILU, ACT_SIGMOID, ACT_TANH, ACT_SOFTMAX,
               ACT_LOG_SOFTMAX, ACT_IDENTITY } act_kind;

typedef struct {
    fern__layer_head h;
    act_kind kind;
    double a;
    int i;
} act_state;

static int act_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    act_state *s = fern_cell_state(self);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 0, FERN_MAX_DIMS, -1, "a tensor"))
        return -1;
    fern_tensor *y = NULL;
    switch (s->kind) {
    case ACT_RELU: y = fern_relu(x); break;
    case ACT_LEAKY: y = fern_leaky_relu(x, s->a); break;
    case ACT_ELU: y = fern_elu(x, s->a); break;
    case ACT_GELU: y = fern_gelu(x, s->i); break;
    case ACT_SILU: y = fern_silu(x); break;
    case ACT_SIGMOID: y = fern_sigmoid(x); break;
    case ACT_TANH: y = fern_tanh(x); break;
    case ACT_SOFTMAX: y = fern_softmax(x, s->i); break;
    case ACT_LOG_SOFTMAX: y = fern_log_softmax(x, s->i); break;
    case ACT_IDENTITY: y = x; break; /* borrowed: the caller takes its own reference */
    }
    out[0] = y;
    return y ? 0 : -1;
}

static fern_cell *make_act(const char *type, act_kind kind, double a, int i, const char *desc)
{
    fern_cell *c = fern__layer_new(type, act_forward, 1, sizeof(act_state), "%s", desc);
    if (c) {
        act_state *s = fern_cell_state(c);
        s->kind = kind;
        s->a = a;
        s->i = i;
    }
    return c;
}

fern_cell *fern_layer_relu(void) { return make_act("ReLU", ACT_RELU, 0, 0, "ReLU()"); }
fern_cell *fern_layer_silu(void) { return make_act("SiLU", ACT_SILU, 0, 0, "SiLU()"); }
fern_cell *fern_layer_sigmoid(void) { return make_act("Sigmoid", ACT_SIGMOID, 0, 0, "Sigmoid()"); }
fern_cell *fern_layer_tanh(void) { return make_act("Tanh", ACT_TANH, 0, 0, "Tanh()"); }
fern_cell *fern_layer_identity(void) { return make_act("Identity", ACT_IDENTITY, 0, 0, "Identity()"); }

fern_cell *fern_layer_leaky_relu(double negative_slope)
{
    char d[64];
    snprintf(d, sizeof d, "LeakyReLU(negative_slope=%g)", negative_slope);
    return make_act("LeakyReLU", ACT_LEAKY, negative_slope, 0, d);
}

fern_cell *fern_layer_elu(double alpha)
{
    char d[64];
    snprintf(d, sizeof d, "ELU(alpha=%g)", alpha);
    return make_act("ELU", ACT_ELU, alpha, 0, d);
}

fern_cell *fern_layer_gelu(int approximate)
{
    return make_act("GELU", ACT_GELU, 0, approximate != 0,
                    approximate ? "GELU(approximate='tanh')" : "GELU(approximate='none')");
}

fern_cell *fern_layer_softmax(int axis)
{
    char d[64];
    snprintf(d, sizeof d, "Softmax(dim=%d)", axis);
    return make_act("Softmax", ACT_SOFTMAX, 0, axis, d);
}

fern_cell *fern_layer_log_softmax(int axis)
{
    char d[64];
    snprintf(d, sizeof d, "LogSoftmax(dim=%d)", axis);
    return make_act("LogSoftmax", ACT_LOG_SOFTMAX, 0, axis, d);
}

/* ---- WithLossCell ------------------------------------------------------------------ */

typedef struct {
    fern__layer_head h;
    fern_cell *backbone, *loss; /* borrowed from the cell's children */
} with_loss_state;

static int with_loss_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out,
                             fern_tensor **out)
{
    with_loss_state *s = fern_cell_state(self);
    fern_tensor *y = fern_cell_call1(s->backbone, in[0]);
    if (!y)
        return -1;
    fern_tensor *args[2] = {y, in[1]};
    return fern_cell_call(s->loss, 2, args, 1, out) == FERN_OK ? 0 : -1;
}

fern_cell *fern_with_loss(fern_cell *backbone, fern_cell *loss)
{
    if (!backbone || !loss) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "WithLossCell: backbone and loss must not be NULL");
        return NULL;
    }
    if (fern_cell_n_in(backbone) != 1 || fern_cell_n_out(backbone) != 1 || fern_cell_n_in(loss) != 2 ||
        fern_cell_n_out(loss) != 1) {
        fern_set_error(FERN_ERR_INVALID,
                       "WithLossCell: need a backbone of 1 input and 1 output and a loss of 2 inputs and 1 "
                       "output, got %s (%d -> %d) and %s (%d -> %d)",
                       fern_cell_type(backbone), fern_cell_n_in(backbone), fern_cell_n_out(backbone),
                       fern_cell_type(loss), fern_cell_n_in(loss), fern_cell_n_out(loss));
        return NULL;
    }
    fern_cell *c = fern__layer_new("WithLossCell", with_loss_forward, 2, sizeof(with_loss_state),
                                   "WithLossCell(%s, %s)", fern_cell_type(backbone), fern_cell_type(loss));
    if (!c)
        return NULL;
    with_loss_state *s = fern_cell_state(c);
    if (fern_cell_add_child(c, "backbone", backbone) != FERN_OK ||
        fern_cell_add_child(c, "loss", loss) != FERN_OK) {
        fern_cell_release(c);
        return NULL;
    }
    s->backbone = backbone;
    s->loss = loss;
    return c;
}
