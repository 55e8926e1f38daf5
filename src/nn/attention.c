/* The layer library, part 2b: torch.nn.MultiheadAttention (packed
 * in_proj_weight / in_proj_bias, child out_proj), key padding and
 * attention masks (bool or additive float), a causal option, attention
 * weights averaged over heads or per head, and the causal mask helper. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fern/seq_layers.h"
#include "layers_internal.h"

fern_mha_opts fern_mha_opts_default(void)
{
    fern_mha_opts o = {.dropout = 0.0, .bias = 1, .batch_first = 1, .key_padding_mask = 0, .attn_mask = 0,
                       .causal = 0, .need_weights = 0, .average_attn_weights = 1};
    return o;
}

typedef struct {
    fern__layer_head h;
    int64_t E, H, Dh;
    fern_mha_opts o;
    fern_tensor *w_in, *b_in; /* borrowed from the cell */
    fern_cell *out_proj;      /* borrowed child */
} mha_state;

fern_tensor *fern_causal_mask(int64_t size, fern_dtype dt)
{
    if (size < 0 || (unsigned)dt >= FERN_DTYPE_COUNT || !fern_dtype_is_float(dt)) {
        fern_set_error(FERN_ERR_INVALID, "causal_mask: need a non-negative size and a float dtype, got %lld and %s",
                       (long long)size, (unsigned)dt < FERN_DTYPE_COUNT ? fern_dtype_name(dt) : "an invalid dtype");
        return NULL;
    }
    int64_t shape[2] = {size, size};
    fern_scope_begin();
    fern_tensor *m = fern_triu(fern_full(dt, 2, shape, -INFINITY), 1);
    if (m)
        fern_keep(m);
    fern_scope_end();
    return m;
}

/* A mask as an additive float tensor of dtype dt (bool: -inf where true). */
static fern_tensor *additive(const fern_cell *self, const char *name, fern_tensor *m, fern_dtype dt)
{
    fern_dtype md = fern_tensor_dtype(m);
    if (md == FERN_BOOL)
        return fern_where(m, fern_scalar(dt, -INFINITY), fern_scalar(dt, 0.0));
    if (md != dt) {
        char d[128];
        fern__layer_err(self, "%s must be bool or %s (the input dtype), got %s", name, fern_dtype_name(dt),
                        fern_tensor_desc(m, d, sizeof d));
        return NULL;
    }
    return m;
}

static int same_shape(const fern_tensor *t, int nd, const int64_t *shape)
{
    if (fern_tensor_ndim(t) != nd)
        return 0;
    for (int k = 0; k < nd; k++)
        if (fern_tensor_shape(t)[k] != shape[k])
            return 0;
    return 1;
}

/* (N, T, E) -> (N, H, T, Dh) */
static fern_tensor *heads(const mha_state *s, fern_tensor *x)
{
    int64_t shp[4] = {fern_tensor_dim(x, 0), fern_tensor_dim(x, 1), s->H, s->Dh};
    static const int perm[4] = {0, 2, 1, 3};
    return fern_permute(fern_reshape(x, 4, shp), perm);
}

/* The forward; results owned by the current scope. */
static int mha_compute(fern_cell *self, fern_tensor *q, fern_tensor *k, fern_tensor *v, fern_tensor *kpm,
                       fern_tensor *am, int need_weights, int average, fern_tensor **out, fern_tensor **weights)
{
    mha_state *s = fern_cell_state(self);
    fern_dtype dt = fern_tensor_dtype(s->w_in);
    const char *expect = s->o.batch_first ? "a query of shape (N, L, embed_dim) or (L, embed_dim)"
                                          : "a query of shape (L, N, embed_dim) or (L, embed_dim)";
    if (fern__layer_check(self, q, 2, 3, (int)dt, expect))
        return -1;
    char d1[128], d2[128], d3[128];
    int nd = fern_tensor_ndim(q);
    int unbatched = nd == 2;
    if (!k || !v) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(self, "key or value is NULL");
        return -1;
    }
    int ok = fern_tensor_ndim(k) == nd && fern_tensor_ndim(v) == nd && fern_tensor_dtype(k) == dt &&
             fern_tensor_dtype(v) == dt && fern_tensor_dim(q, -1) == s->E && fern_tensor_dim(k, -1) == s->E &&
             fern_tensor_dim(v, -1) == s->E && same_shape(k, nd, fern_tensor_shape(v));
    int bax = s->o.batch_first ? 0 : 1; /* batch axis of batched inputs */
    if (ok && !unbatched)
        ok = fern_tensor_dim(k, bax) == fern_tensor_dim(q, bax);
    if (!ok)
        return fern__layer_err(self,
                               "query, key and value must have the same rank and dtype (%s), embed_dim=%lld features, "
                               "key and value the same shape and the same batch as the query; got query %s, key %s, "
                               "value %s",
                               fern_dtype_name(dt), (long long)s->E, fern_tensor_desc(q, d1, sizeof d1),
                               fern_tensor_desc(k, d2, sizeof d2), fern_tensor_desc(v, d3, sizeof d3));
    int self_attn = q == k && k == v;
    /* batch-first (N, T, E) from here on */
    if (unbatched) {
        q = fern_unsqueeze(q, 0);
        k = self_attn ? q : fern_unsqueeze(k, 0);
        v = self_attn ? q : fern_unsqueeze(v, 0);
    } else if (!s->o.batch_first) {
        q = fern_transpose(q, 0, 1);
        k = self_attn ? q : fern_transpose(k, 0, 1);
        v = self_attn ? q : fern_transpose(v, 0, 1);
    }
    if (!q || !k || !v)
        return -1;
    int64_t N = fern_tensor_dim(q, 0), L = fern_tensor_dim(q, 1), S = fern_tensor_dim(k, 1), E = s->E;
    /* masks */
    fern_tensor *mask = NULL; /* additive, broadcastable to (N, H, L, S) */
    if (am) {
        int64_t m2[2] = {L, S}, m3[3] = {N * s->H, L, S};
        int ok2 = same_shape(am, 2, m2), ok3 = same_shape(am, 3, m3);
        if (!ok2 && !ok3)
            return fern__layer_err(self, "expected attn_mask of shape (%lld, %lld) or (%lld, %lld, %lld), got %s",
                                   (long long)L, (long long)S, (long long)(N * s->H), (long long)L, (long long)S,
                                   fern_tensor_desc(am, d1, sizeof d1));
        mask = additive(self, "attn_mask", am, dt);
        if (mask && ok3) {
            int64_t m4[4] = {N, s->H, L, S};
            mask = fern_reshape(mask, 4, m4);
        }
        if (!mask)
            return -1;
    }
    if (kpm) {
        int64_t want[2] = {N, S};
        if (!(unbatched ? same_shape(kpm, 1, &S) : same_shape(kpm, 2, want))) {
            if (unbatched)
                return fern__layer_err(self, "expected key_padding_mask of shape (%lld) for an unbatched input, got %s",
                                       (long long)S, fern_tensor_desc(kpm, d1, sizeof d1));
            return fern__layer_err(self, "expected key_padding_mask of shape (%lld, %lld), got %s", (long long)N,
                                   (long long)S, fern_tensor_desc(kpm, d1, sizeof d1));
        }
        fern_tensor *km = additive(self, "key_padding_mask", kpm, dt);
        int64_t k4[4] = {N, 1, 1, S};
        km = fern_reshape(km, 4, k4);
        if (!km)
            return -1;
        mask = mask ? fern_add(mask, km) : km;
    }
    if (s->o.causal) {
        if (L != S)
            return fern__layer_err(self, "causal attention needs as many keys as queries, got query %s and key %s",
                                   fern_tensor_desc(q, d1, sizeof d1), fern_tensor_desc(k, d2, sizeof d2));
        fern_tensor *cm = fern_causal_mask(L, dt);
        mask = mask ? fern_add(mask, cm) : cm;
    }
    /* projections */
    fern_tensor *qp, *kp, *vp;
    if (self_attn) {
        fern_tensor *qkv = fern_matmul(q, fern_transpose(s->w_in, 0, 1));
        if (s->b_in)
            qkv = fern_add(qkv, s->b_in);
        qp = fern_slice(qkv, -1, 0, E, 1);
        kp = fern_slice(qkv, -1, E, 2 * E, 1);
        vp = fern_slice(qkv, -1, 2 * E, 3 * E, 1);
    } else {
        fern_tensor *xs[3] = {q, k, v}, *ps[3];
        for (int j = 0; j < 3; j++) {
            fern_tensor *w = fern_slice(s->w_in, 0, j * E, (j + 1) * E, 1);
            ps[j] = fern_matmul(xs[j], fern_transpose(w, 0, 1));
            if (s->b_in)
                ps[j] = fern_add(ps[j], fern_slice(s->b_in, 0, j * E, (j + 1) * E, 1));
        }
        qp = ps[0];
        kp = ps[1];
        vp = ps[2];
    }
    fern_tensor *qh = fern_div_scalar(heads(s, qp), sqrt((double)s->Dh));
    fern_tensor *kh = heads(s, kp), *vh = heads(s, vp);
    fern_tensor *scores = fern_matmul(qh, fern_transpose(kh, -2, -1)); /* (N, H, L, S) */
    if (mask)
        scores = fern_add(scores, mask);
    fern_tensor *attn = fern_softmax(scores, -1);
    if (s->o.dropout > 0 && fern_cell_training(self))
        attn = fern_dropout(attn, s->o.dropout, 1);
    static const int perm[4] = {0, 2, 1, 3};
    int64_t o3[3] = {N, L, E};
    fern_tensor *o = fern_reshape(fern_permute(fern_matmul(attn, vh), perm), 3, o3);
    o = fern_cell_call1(s->out_proj, o);
    fern_tensor *w = NULL;
    if (need_weights) {
        int ax = 1;
        w = average ? fern_mean(attn, &ax, 1, 0) : attn;
    }
    if (unbatched) {
        int ax = 0;
        o = fern_squeeze(o, &ax, 1);
        if (w)
            w = fern_squeeze(w, &ax, 1);
    } else if (!s->o.batch_first) {
        o = fern_transpose(o, 0, 1);
    }
    if (!o || (need_weights && !w))
        return -1;
    *out = o;
    if (weights)
        *weights = w;
    return 0;
}

static int mha_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    mha_state *s = fern_cell_state(self);
    int i = 3;
    fern_tensor *kpm = s->o.key_padding_mask ? in[i++] : NULL;
    fern_tensor *am = s->o.attn_mask ? in[i++] : NULL;
    return mha_compute(self, in[0], in[1], in[2], kpm, am, s->o.need_weights, s->o.average_attn_weights, &out[0],
                       s->o.need_weights ? &out[1] : NULL);
}

fern_status fern_mha_apply(fern_cell *mha, fern_tensor *query, fern_tensor *key, fern_tensor *value,
                           fern_tensor *key_padding_mask, fern_tensor *attn_mask, int need_weights,
                           int average_attn_weights, fern_tensor **out, fern_tensor **weights)
{
    if (out)
        *out = NULL;
    if (weights)
        *weights = NULL;
    if (!mha || strcmp(fern_cell_type(mha), "MultiheadAttention") != 0 || !out) {
        fern_set_error(FERN_ERR_INVALID, "mha_apply: need a MultiheadAttention cell and an output pointer, got %s",
                       mha ? fern_cell_type(mha) : "NULL");
        return FERN_ERR_INVALID;
    }
    fern_tensor *o = NULL, *w = NULL;
    fern_scope_begin();
    int rc = mha_compute(mha, query, key, value, key_padding_mask, attn_mask, need_weights, average_attn_weights, &o,
                         &w);
    if (rc == 0) {
        *out = fern_keep(o);
        if (weights && w)
            *weights = fern_keep(w);
    }
    fern_scope_end();
    if (rc) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(mha, "forward failed");
        return fern_last_status();
    }
    return FERN_OK;
}

fern_cell *fern_layer_multihead_attention(int64_t embed_dim, int64_t num_heads, const fern_mha_opts *opts)
{
    fern_mha_opts o = opts ? *opts : fern_mha_opts_default();
    if (embed_dim < 1 || num_heads < 1 || embed_dim % num_heads != 0 || !(o.dropout >= 0 && o.dropout <= 1)) {
        fern_set_error(FERN_ERR_INVALID,
                       "MultiheadAttention: embed_dim must be a positive multiple of num_heads and dropout in [0, 1], "
                       "got embed_dim %lld, num_heads %lld, dropout %g",
                       (long long)embed_dim, (long long)num_heads, o.dropout);
        return NULL;
    }
    o.bias = o.bias != 0;
    o.batch_first = o.batch_first != 0;
    o.key_padding_mask = o.key_padding_mask != 0;
    o.attn_mask = o.attn_mask != 0;
    o.causal = o.causal != 0;
    o.need_weights = o.need_weights != 0;
    o.average_attn_weights = o.average_attn_weights != 0;
    fern__layer_head *st = calloc(1, sizeof(mha_state));
    if (!st) {
        fern_set_error(FERN_ERR_NOMEM, "MultiheadAttention: out of memory");
        return NULL;
    }
    snprintf(st->desc, sizeof st->desc,
             "MultiheadAttention(embed_dim=%lld, num_heads=%lld, dropout=%g, bias=%d, batch_first=%d%s)",
             (long long)embed_dim, (long long)num_heads, o.dropout, o.bias, o.batch_first, o.causal ? ", causal=1" : "");
    fern_cell *c = fern_cell_new("MultiheadAttention", mha_forward, 3 + o.key_padding_mask + o.attn_mask,
                                 1 + o.need_weights, st, free);
    if (!c)
        return NULL;
    mha_state *s = fern_cell_state(c);
    s->E = embed_dim;
    s->H = num_heads;
    s->Dh = embed_dim / num_heads;
    s->o = o;
    fern_dtype dt = fern_layers_default_dtype();
    int64_t ws[2] = {3 * embed_dim, embed_dim}, bs = 3 * embed_dim;
    s->w_in = fern__layer_add_param(c, "in_proj_weight", dt, 2, ws);
    int ok = s->w_in && fern_init_xavier_uniform(s->w_in, 1.0) == FERN_OK;
    if (ok && o.bias) {
        s->b_in = fern__layer_add_param(c, "in_proj_bias", dt, 1, &bs);
        ok = s->b_in && fern_init_zeros(s->b_in) == FERN_OK;
    }
    if (ok) {
        fern_cell *lin = fern_layer_linear(embed_dim, embed_dim, o.bias);
        ok = lin && fern_cell_add_child(c, "out_proj", lin) == FERN_OK;
        fern_cell_release(lin);
        s->out_proj = ok ? lin : NULL;
        if (ok && o.bias)
            ok = fern_init_zeros(fern_cell_param(lin, "bias")) == FERN_OK;
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}
