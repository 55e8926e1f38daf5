/* Model zoo: a GPT-style causal Transformer language model (token and
 * learned position embeddings, pre-norm encoder layers with a causal mask,
 * a final LayerNorm and a linear head to the vocabulary). */
#include <stdio.h>

#include "fern/seq_models.h"
#include "zoo_internal.h"

typedef struct {
    fern__layer_head h;
    int64_t max_len;
    fern_cell *tok_emb, *pos_emb, *drop, *encoder, *head; /* borrowed children */
} lm_state;

static int lm_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    lm_state *s = fern_cell_state(self);
    fern_tensor *tok = in[0];
    if (fern__layer_check(self, tok, 2, 2, -1, "integer tokens of shape (N, T)"))
        return -1;
    char d[128];
    int64_t T = fern_tensor_dim(tok, 1);
    if (!fern_dtype_is_int(fern_tensor_dtype(tok)) || T < 1 || T > s->max_len)
        return fern__layer_err(self, "expected integer tokens of shape (N, T) with 1 <= T <= max_len=%lld, got %s",
                               (long long)s->max_len, fern_tensor_desc(tok, d, sizeof d));
    fern_tensor *pos = fern_slice(fern_cell_param(s->pos_emb, "weight"), 0, 0, T, 1); /* (T, d_model) */
    fern_tensor *x = fern_cell_call1(s->drop, fern_add(fern_cell_call1(s->tok_emb, tok), pos));
    x = fern_cell_call1(s->encoder, x); /* causal: see the encoder's options */
    out[0] = fern_cell_call1(s->head, x);
    return out[0] ? 0 : -1;
}

fern_cell *fern_model_transformer_lm(int64_t vocab, int64_t d_model, int64_t nhead, int num_layers, int64_t dim_ff,
                                     int64_t max_len)
{
    if (vocab < 1 || d_model < 1 || nhead < 1 || num_layers < 1 || dim_ff < 1 || max_len < 1 ||
        d_model % nhead != 0) {
        fern_set_error(FERN_ERR_INVALID,
                       "model_transformer_lm: vocab, d_model, nhead, num_layers, dim_ff and max_len must be positive "
                       "and d_model a multiple of nhead, got %lld, %lld, %lld, %d, %lld, %lld",
                       (long long)vocab, (long long)d_model, (long long)nhead, num_layers, (long long)dim_ff,
                       (long long)max_len);
        return NULL;
    }
    fern_cell *c = fern__layer_new("TransformerLM", lm_forward, 1, sizeof(lm_state),
                                   "TransformerLM(vocab=%lld, d_model=%lld, nhead=%lld, num_layers=%d, dim_ff=%lld, "
                                   "max_len=%lld)",
                                   (long long)vocab, (long long)d_model, (long long)nhead, num_layers,
                                   (long long)dim_ff, (long long)max_len);
    if (!c)
        return NULL;
    lm_state *s = fern_cell_state(c);
    s->max_len = max_len;
    fern_transformer_opts o = fern_transformer_opts_default();
    o.dim_feedforward = dim_ff;
    o.dropout = 0.1;
    o.activation = FERN_TRANSFORMER_GELU;
    o.batch_first = 1;
    o.norm_first = 1;
    o.causal = 1;
    s->tok_emb = fern__zoo_adopt(c, "tok_emb", fern_layer_embedding(vocab, d_model, FERN_NO_PADDING_IDX));
    s->pos_emb = s->tok_emb ? fern__zoo_adopt(c, "pos_emb", fern_layer_embedding(max_len, d_model, FERN_NO_PADDING_IDX))
                            : NULL;
    s->drop = s->pos_emb ? fern__zoo_adopt(c, "drop", fern_layer_dropout(0.1)) : NULL;
    s->encoder = s->drop ? fern__zoo_adopt(c, "encoder", fern_layer_transformer_encoder(d_model, nhead, num_layers, &o, 1))
                         : NULL;
    s->head = s->encoder ? fern__zoo_adopt(c, "head", fern_layer_linear(d_model, vocab, 1)) : NULL;
    if (!s->head) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}
