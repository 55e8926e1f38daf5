/*
 * fern/seq_models.h — the model zoo, sequence models: an LSTM text
 * classifier and a small GPT-style Transformer language model, each one
 * call returning a cell built from fern/seq_layers.h and fern/layers.h.
 * Parameters use the layer dtype (fern_layers_default_dtype) and are
 * initialized from fern's generator; their names match the PyTorch modules
 * written out below, so those modules' state dicts load by name
 * (fern_cell_load_state_dict).
 */
#ifndef FERN_SEQ_MODELS_H
#define FERN_SEQ_MODELS_H

#include "fern/seq_layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Embedding -> LSTM -> the top layer's last hidden state -> Linear:
 *
 *   class LSTMClassifier(nn.Module):
 *       def __init__(self, vocab, embed_dim, hidden, num_layers, num_classes):
 *           self.embedding = nn.Embedding(vocab, embed_dim)
 *           self.lstm = nn.LSTM(embed_dim, hidden, num_layers, batch_first=True)
 *           self.fc = nn.Linear(hidden, num_classes)
 *       def forward(self, tokens):                     # (N, T) integers
 *           _, (h_n, _) = self.lstm(self.embedding(tokens))
 *           return self.fc(h_n[-1])                    # (N, num_classes)
 *
 * Input: integer tokens (N, T) with T >= 1 -> (N, num_classes) logits. */
fern_cell *fern_model_lstm_classifier(int64_t vocab, int64_t embed_dim, int64_t hidden, int num_layers,
                                      int64_t num_classes);

/* A decoder-only (causal) Transformer language model with learned
 * positions, pre-norm encoder layers (gelu, dropout 0.1) and a final
 * LayerNorm:
 *
 *   class TransformerLM(nn.Module):
 *       def __init__(self, vocab, d_model, nhead, num_layers, dim_ff, max_len):
 *           self.tok_emb = nn.Embedding(vocab, d_model)
 *           self.pos_emb = nn.Embedding(max_len, d_model)
 *           self.drop = nn.Dropout(0.1)
 *           layer = nn.TransformerEncoderLayer(d_model, nhead, dim_ff, 0.1,
 *                       activation="gelu", batch_first=True, norm_first=True)
 *           self.encoder = nn.TransformerEncoder(layer, num_layers,
 *                                                norm=nn.LayerNorm(d_model))
 *           self.head = nn.Linear(d_model, vocab)
 *       def forward(self, tokens):                     # (N, T) integers
 *           T = tokens.shape[1]
 *           x = self.drop(self.tok_emb(tokens) + self.pos_emb.weight[:T])
 *           mask = nn.Transformer.generate_square_subsequent_mask(T)
 *           return self.head(self.encoder(x, mask=mask))  # (N, T, vocab)
 *
 * Input: integer tokens (N, T) with 1 <= T <= max_len -> (N, T, vocab)
 * logits; position t attends to positions 0..t only. */
fern_cell *fern_model_transformer_lm(int64_t vocab, int64_t d_model, int64_t nhead, int num_layers,
                                     int64_t dim_ff, int64_t max_len);

#ifdef __cplusplus
}
#endif
#endif /* FERN_SEQ_MODELS_H */
