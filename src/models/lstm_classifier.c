/* Model zoo: an LSTM text classifier (embedding -> LSTM -> the top
 * layer's last hidden state -> linear). */
#include <stdio.h>

#include "fern/seq_models.h"
#include "zoo_internal.h"

typedef struct {
    fern__layer_head h;
    int num_layers;
    fern_cell *embedding, *lstm, *fc; /* borrowed children */
} lstm_clf_state;

static int lstm_clf_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    lstm_clf_state *s = fern_cell_state(self);
    fern_tensor *tok = in[0];
    if (fern__layer_check(self, tok, 2, 2, -1, "integer tokens of shape (N, T)"))
        return -1;
    char d[128];
    if (!fern_dtype_is_int(fern_tensor_dtype(tok)) || fern_tensor_dim(tok, 1) < 1)
        return fern__layer_err(self, "expected integer tokens of shape (N, T) with T >= 1, got %s",
                               fern_tensor_desc(tok, d, sizeof d));
    fern_tensor *x = fern_cell_call1(s->embedding, tok);
    fern_tensor *res[3] = {0};
    if (!x || fern_cell_call(s->lstm, 1, &x, 3, res) != FERN_OK)
        return -1;
    /* h_n: (num_layers, N, hidden) -> the top layer's (N, hidden) */
    int ax = 0;
    fern_tensor *last = fern_squeeze(fern_slice(res[1], 0, s->num_layers - 1, s->num_layers, 1), &ax, 1);
    out[0] = fern_cell_call1(s->fc, last);
    return out[0] ? 0 : -1;
}

fern_cell *fern_model_lstm_classifier(int64_t vocab, int64_t embed_dim, int64_t hidden, int num_layers,
                                      int64_t num_classes)
{
    if (vocab < 1 || embed_dim < 1 || hidden < 1 || num_layers < 1 || num_classes < 1) {
        fern_set_error(FERN_ERR_INVALID,
                       "model_lstm_classifier: vocab, embed_dim, hidden, num_layers and num_classes must be positive, "
                       "got %lld, %lld, %lld, %d, %lld",
                       (long long)vocab, (long long)embed_dim, (long long)hidden, num_layers, (long long)num_classes);
        return NULL;
    }
    fern_cell *c = fern__layer_new("LSTMClassifier", lstm_clf_forward, 1, sizeof(lstm_clf_state),
                                   "LSTMClassifier(vocab=%lld, embed_dim=%lld, hidden=%lld, num_layers=%d, "
                                   "num_classes=%lld)",
                                   (long long)vocab, (long long)embed_dim, (long long)hidden, num_layers,
                                   (long long)num_classes);
    if (!c)
        return NULL;
    lstm_clf_state *s = fern_cell_state(c);
    s->num_layers = num_layers;
    fern_rnn_opts ro = fern_rnn_opts_default();
    ro.num_layers = num_layers;
    ro.batch_first = 1;
    s->embedding = fern__zoo_adopt(c, "embedding", fern_layer_embedding(vocab, embed_dim, FERN_NO_PADDING_IDX));
    s->lstm = s->embedding ? fern__zoo_adopt(c, "lstm", fern_layer_lstm(embed_dim, hidden, &ro)) : NULL;
    s->fc = s->lstm ? fern__zoo_adopt(c, "fc", fern_layer_linear(hidden, num_classes, 1)) : NULL;
    if (!s->fc) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}
