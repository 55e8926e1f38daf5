/* The layer library, part 2c: torch.nn.TransformerEncoderLayer (post-norm
 * and pre-norm, relu or gelu feed-forward, masks, causal option) and
 * torch.nn.TransformerEncoder (a stack of layers and an optional final
 * LayerNorm). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fern/seq_layers.h"
#include "layers_internal.h"

fern_transformer_opts fern_transformer_opts_default(void)
{
    fern_transformer_opts o = {.dim_feedforward = 2048, .dropout = 0.1, .activation = FERN_TRANSFORMER_RELU,
                               .layer_norm_eps = 1e-5, .batch_first = 1, .norm_first = 0, .src_mask = 0,
                               .src_key_padding_mask = 0, .causal = 0};
    return o;
}

typedef struct {
    fern__layer_head h;
    int64_t d_model;
    fern_transformer_opts o;
    /* borrowed children */
    fern_cell *self_attn, *linear1, *dropout, *linear2, *norm1, *norm2, *dropout1, *dropout2;
} enc_layer_state;

typedef struct {
    fern__layer_head h;
    int64_t d_model;
    fern_transformer_opts o;
    int num_layers;
    fern_cell *layers; /* borrowed container "layers" */
    fern_cell *norm;   /* borrowed, or NULL */
} encoder_state;

static int is_layer(const fern_cell *c) { return c && !strcmp(fern_cell_type(c), "TransformerEncoderLayer"); }
static int is_encoder(const fern_cell *c) { return c && !strcmp(fern_cell_type(c), "TransformerEncoder"); }

/* One layer's forward; the result is owned by the current scope. */
static fern_tensor *layer_compute(fern_cell *self, fern_tensor *x, fern_tensor *mask, fern_tensor *kpm)
{
    enc_layer_state *s = fern_cell_state(self);
    const char *expect = s->o.batch_first ? "an input of shape (N, S, d_model) or (S, d_model)"
                                          : "an input of shape (S, N, d_model) or (S, d_model)";
    if (fern__layer_check(self, x, 2, 3, -1, expect))
        return NULL;
    if (fern_tensor_dim(x, -1) != s->d_model) {
        char d[128];
        fern__layer_err(self, "expected an input whose last dim is d_model=%lld, got %s", (long long)s->d_model,
                        fern_tensor_desc(x, d, sizeof d));
        return NULL;
    }
    fern_tensor *sa = NULL, *y;
    if (s->o.norm_first) {
        fern_tensor *xn = fern_cell_call1(s->norm1, x);
        if (!xn || fern_mha_apply(s->self_attn, xn, xn, xn, kpm, mask, 0, 1, &sa, NULL) != FERN_OK)
            return NULL;
        x = fern_add(x, fern_cell_call1(s->dropout1, sa));
    } else {
        if (fern_mha_apply(s->self_attn, x, x, x, kpm, mask, 0, 1, &sa, NULL) != FERN_OK)
            return NULL;
        x = fern_cell_call1(s->norm1, fern_add(x, fern_cell_call1(s->dropout1, sa)));
    }
    if (!x)
        return NULL;
    fern_tensor *xin = s->o.norm_first ? fern_cell_call1(s->norm2, x) : x;
    fern_tensor *hid = fern_cell_call1(s->linear1, xin);
    hid = s->o.activation == FERN_TRANSFORMER_GELU ? fern_gelu(hid, 0) : fern_relu(hid);
    fern_tensor *ff = fern_cell_call1(s->dropout2, fern_cell_call1(s->linear2, fern_cell_call1(s->dropout, hid)));
    if (s->o.norm_first)
        y = fern_add(x, ff);
    else
        y = fern_cell_call1(s->norm2, fern_add(x, ff));
    return y;
}

static fern_tensor *encoder_compute(fern_cell *self, fern_tensor *x, fern_tensor *mask, fern_tensor *kpm)
{
    encoder_state *s = fern_cell_state(self);
    for (int i = 0; i < s->num_layers && x; i++)
        x = layer_compute(fern_cell_child_at(s->layers, i), x, mask, kpm);
    if (x && s->norm)
        x = fern_cell_call1(s->norm, x);
    return x;
}

static int mask_inputs(const fern_transformer_opts *o, int n_in, fern_tensor *const *in, fern_tensor **mask,
                       fern_tensor **kpm)
{
    int i = 1;
    *mask = o->src_mask && i < n_in ? in[i++] : NULL;
    *kpm = o->src_key_padding_mask && i < n_in ? in[i++] : NULL;
    return 0;
}

static int layer_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    enc_layer_state *s = fern_cell_state(self);
    fern_tensor *mask, *kpm;
    mask_inputs(&s->o, n_in, in, &mask, &kpm);
    out[0] = layer_compute(self, in[0], mask, kpm);
    return out[0] ? 0 : -1;
}

static int encoder_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    encoder_state *s = fern_cell_state(self);
    fern_tensor *mask, *kpm;
    mask_inputs(&s->o, n_in, in, &mask, &kpm);
    out[0] = encoder_compute(self, in[0], mask, kpm);
    return out[0] ? 0 : -1;
}

fern_tensor *fern_transformer_encoder_apply(fern_cell *layer, fern_tensor *src, fern_tensor *src_mask,
                                            fern_tensor *src_key_padding_mask)
{
    if (!is_layer(layer) && !is_encoder(layer)) {
        fern_set_error(FERN_ERR_INVALID,
                       "transformer_encoder_apply: need a TransformerEncoderLayer or TransformerEncoder cell, got %s",
                       layer ? fern_cell_type(layer) : "NULL");
        return NULL;
    }
    fern_scope_begin();
    fern_tensor *y = is_layer(layer) ? layer_compute(layer, src, src_mask, src_key_padding_mask)
                                     : encoder_compute(layer, src, src_mask, src_key_padding_mask);
    if (y)
        fern_keep(y);
    fern_scope_end();
    if (!y && fern_last_status() == FERN_OK)
        fern__layer_err(layer, "forward failed");
    return y;
}

static int check_opts(const char *type, int64_t d_model, int64_t nhead, const fern_transformer_opts *o)
{
    if (d_model < 1 || nhead < 1 || d_model % nhead != 0 || o->dim_feedforward < 1 ||
        !(o->dropout >= 0 && o->dropout <= 1) || !(o->layer_norm_eps >= 0) ||
        (o->activation != FERN_TRANSFORMER_RELU && o->activation != FERN_TRANSFORMER_GELU)) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: d_model must be a positive multiple of nhead, dim_feedforward positive, dropout in [0, 1], "
                       "layer_norm_eps >= 0 and activation relu or gelu; got d_model %lld, nhead %lld, "
                       "dim_feedforward %lld, dropout %g, layer_norm_eps %g, activation %d",
                       type, (long long)d_model, (long long)nhead, (long long)o->dim_feedforward, o->dropout,
                       o->layer_norm_eps, (int)o->activation);
        return -1;
    }
    return 0;
}

static fern_cell *adopt(fern_cell *parent, const char *name, fern_cell *child)
{
    if (!child)
        return NULL;
    fern_status st = fern_cell_add_child(parent, name, child);
    fern_cell_release(child);
    return st == FERN_OK ? child : NULL;
}

static fern_cell *new_state_cell(const char *type, fern_cell_forward_fn fwd, int n_in, size_t size,
                                 const char *desc)
{
    fern__layer_head *st = calloc(1, size);
    if (!st) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    snprintf(st->desc, sizeof st->desc, "%s", desc);
    return fern_cell_new(type, fwd, n_in, 1, st, free);
}

fern_cell *fern_layer_transformer_encoder_layer(int64_t d_model, int64_t nhead, const fern_transformer_opts *opts)
{
    fern_transformer_opts o = opts ? *opts : fern_transformer_opts_default();
    if (check_opts("TransformerEncoderLayer", d_model, nhead, &o))
        return NULL;
    o.batch_first = o.batch_first != 0;
    o.norm_first = o.norm_first != 0;
    o.src_mask = o.src_mask != 0;
    o.src_key_padding_mask = o.src_key_padding_mask != 0;
    o.causal = o.causal != 0;
    char desc[256];
    snprintf(desc, sizeof desc,
             "TransformerEncoderLayer(d_model=%lld, nhead=%lld, dim_feedforward=%lld, dropout=%g, activation=%s, "
             "batch_first=%d, norm_first=%d%s)",
             (long long)d_model, (long long)nhead, (long long)o.dim_feedforward, o.dropout,
             o.activation == FERN_TRANSFORMER_GELU ? "gelu" : "relu", o.batch_first, o.norm_first,
             o.causal ? ", causal=1" : "");
    fern_cell *c = new_state_cell("TransformerEncoderLayer", layer_forward, 1 + o.src_mask + o.src_key_padding_mask,
                                  sizeof(enc_layer_state), desc);
    if (!c)
        return NULL;
    enc_layer_state *s = fern_cell_state(c);
    s->d_model = d_model;
    s->o = o;
    fern_mha_opts mo = fern_mha_opts_default();
    mo.dropout = o.dropout;
    mo.batch_first = o.batch_first;
    mo.causal = o.causal;
    int64_t ns = d_model;
    int ok = (s->self_attn = adopt(c, "self_attn", fern_layer_multihead_attention(d_model, nhead, &mo))) != NULL;
    ok = ok && (s->linear1 = adopt(c, "linear1", fern_layer_linear(d_model, o.dim_feedforward, 1))) != NULL;
    ok = ok && (s->dropout = adopt(c, "dropout", fern_layer_dropout(o.dropout))) != NULL;
    ok = ok && (s->linear2 = adopt(c, "linear2", fern_layer_linear(o.dim_feedforward, d_model, 1))) != NULL;
    ok = ok && (s->norm1 = adopt(c, "norm1", fern_layer_layer_norm(1, &ns, o.layer_norm_eps, 1))) != NULL;
    ok = ok && (s->norm2 = adopt(c, "norm2", fern_layer_layer_norm(1, &ns, o.layer_norm_eps, 1))) != NULL;
    ok = ok && (s->dropout1 = adopt(c, "dropout1", fern_layer_dropout(o.dropout))) != NULL;
    ok = ok && (s->dropout2 = adopt(c, "dropout2", fern_layer_dropout(o.dropout))) != NULL;
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_transformer_encoder(int64_t d_model, int64_t nhead, int num_layers,
                                          const fern_transformer_opts *opts, int final_norm)
{
    fern_transformer_opts o = opts ? *opts : fern_transformer_opts_default();
    if (check_opts("TransformerEncoder", d_model, nhead, &o))
        return NULL;
    if (num_layers < 1) {
        fern_set_error(FERN_ERR_INVALID, "TransformerEncoder: num_layers must be positive, got %d", num_layers);
        return NULL;
    }
    o.src_mask = o.src_mask != 0;
    o.src_key_padding_mask = o.src_key_padding_mask != 0;
    char desc[256];
    snprintf(desc, sizeof desc, "TransformerEncoder(d_model=%lld, nhead=%lld, num_layers=%d, norm=%d)",
             (long long)d_model, (long long)nhead, num_layers, final_norm != 0);
    fern_cell *c = new_state_cell("TransformerEncoder", encoder_forward, 1 + o.src_mask + o.src_key_padding_mask,
                                  sizeof(encoder_state), desc);
    if (!c)
        return NULL;
    encoder_state *s = fern_cell_state(c);
    s->d_model = d_model;
    s->o = o;
    s->num_layers = num_layers;
    /* torch's ModuleList: a container that only names its children */
    s->layers = adopt(c, "layers", fern_cell_new("ModuleList", NULL, 1, 1, NULL, NULL));
    int ok = s->layers != NULL;
    for (int i = 0; i < num_layers && ok; i++) {
        char name[16];
        snprintf(name, sizeof name, "%d", i);
        ok = adopt(s->layers, name, fern_layer_transformer_encoder_layer(d_model, nhead, &o)) != NULL;
    }
    if (ok && final_norm) {
        int64_t ns = d_model;
        ok = (s->norm = adopt(c, "norm", fern_layer_layer_norm(1, &ns, o.layer_norm_eps, 1))) != NULL;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}
