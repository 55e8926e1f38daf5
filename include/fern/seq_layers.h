/*
 * fern/seq_layers.h — the layer library, part 2: recurrent layers (RNN,
 * LSTM, GRU and their single-step cells), multi-head attention and the
 * Transformer encoder.
 *
 * Like fern/layers.h, every constructor returns a fern_cell (one reference;
 * fern_cell_release frees it) whose parameters carry torch.nn's names,
 * layouts, default initialization and semantics, so a PyTorch state dict
 * loads by name with fern_cell_load_state_dict and gives the same outputs.
 * Parameters have the layer dtype (fern_layers_default_dtype) and inputs
 * must have that dtype.
 *
 * Recurrent layers run their time loop with fern_scan: in graph mode a
 * layer direction becomes ONE scan node whose body is the traced time
 * step (not T unrolled copies), and autodiff differentiates through it.
 * The input projection of all time steps is computed before the loop as a
 * single matmul.
 *
 * Layout: unlike torch (whose default is batch_first=False) the option
 * batch_first defaults to 1 here: (N, T, F) inputs and outputs. Set it to
 * 0 for torch's time-major (T, N, F). Recurrent states are always
 * (num_layers * num_directions, N, H), as in torch. An unbatched input
 * (T, F) (no N; states (num_layers * num_directions, H)) is accepted as
 * torch does.
 *
 * Cell type names: "RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell",
 * "MultiheadAttention", "TransformerEncoderLayer", "TransformerEncoder".
 */
#ifndef FERN_SEQ_LAYERS_H
#define FERN_SEQ_LAYERS_H

#include <stdint.h>

#include "fern/layers.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- recurrent layers -------------------------------------------------- */

typedef enum { FERN_RNN_TANH = 0, FERN_RNN_RELU = 1 } fern_rnn_nonlinearity;

typedef struct {
    int num_layers;    /* stacked layers (1)                                   */
    int bias;          /* 1: bias_ih_l* and bias_hh_l* parameters (1)          */
    int batch_first;   /* 1: (N, T, F); 0: (T, N, F) (1, see above)            */
    double dropout;    /* dropout on every layer's output except the last,     */
                       /* in training mode only, in [0, 1] (0)                 */
    int bidirectional; /* 1: a reverse direction per layer, outputs            */
                       /* concatenated on the feature axis (0)                 */
    int initial_state; /* 0: the cell takes x only (zero initial states);      */
                       /* 1: it takes (x, h0) or, for LSTM, (x, h0, c0) (0)   */
} fern_rnn_opts;
fern_rnn_opts fern_rnn_opts_default(void);

/* torch.nn.RNN / LSTM / GRU. opts NULL means the defaults.
 *
 * Cell inputs:  x, then h0 (and c0 for LSTM) when opts->initial_state.
 * Cell outputs: output (N, T, D*H) (or (T, N, D*H) when not batch_first),
 *               h_n (L*D, N, H) and, for LSTM, c_n (L*D, N, H),
 * with L = num_layers, D = 2 if bidirectional else 1, H = hidden_size.
 *
 * Parameters, for every layer k and direction (suffix "" or "_reverse"):
 *   weight_ih_l{k}{suffix} (G*H, in_k)   in_0 = input_size, in_k = D*H
 *   weight_hh_l{k}{suffix} (G*H, H)
 *   bias_ih_l{k}{suffix}   (G*H)         when opts->bias
 *   bias_hh_l{k}{suffix}   (G*H)
 * with G = 1 (RNN), 4 (LSTM: gates i, f, g, o), 3 (GRU: r, z, n), all
 * initialized uniform(-1/sqrt(H), 1/sqrt(H)) like torch.
 *   RNN:  h' = act(W_ih x + b_ih + W_hh h + b_hh), act tanh or relu
 *   LSTM: c' = f*c + i*g, h' = o*tanh(c')
 *   GRU:  n = tanh(W_in x + b_in + r*(W_hn h + b_hn)), h' = (1-z)*n + z*h
 * Sequences need at least one time step. */
fern_cell *fern_layer_rnn(int64_t input_size, int64_t hidden_size, fern_rnn_nonlinearity act,
                          const fern_rnn_opts *opts);
fern_cell *fern_layer_lstm(int64_t input_size, int64_t hidden_size, const fern_rnn_opts *opts);
fern_cell *fern_layer_gru(int64_t input_size, int64_t hidden_size, const fern_rnn_opts *opts);

/* Run a recurrent layer with optional initial states, whatever its
 * initial_state option: h0 / c0 NULL mean zeros (c0 and c_n only for an
 * LSTM; pass NULL otherwise). c_n may be NULL when not wanted. Results are
 * new references like op results (owned by the innermost scope if one is
 * open). Runs the forward directly: op by op in pynative mode, or into the
 * graph being traced when called inside a function in graph mode. */
fern_status fern_rnn_apply(fern_cell *rnn, fern_tensor *x, fern_tensor *h0, fern_tensor *c0,
                           fern_tensor **output, fern_tensor **h_n, fern_tensor **c_n);

/* Single time steps: torch.nn.RNNCell, LSTMCell, GRUCell. Parameters
 * weight_ih (G*H, input_size), weight_hh (G*H, H), bias_ih, bias_hh (G*H,
 * when bias), initialized like the sequence layers. Inputs (N, F) or an
 * unbatched (F) with states (N, H) or (H):
 *   RNNCell:  (x, h) -> h'
 *   LSTMCell: (x, h, c) -> (h', c')
 *   GRUCell:  (x, h) -> h'                                                  */
fern_cell *fern_layer_rnn_cell(int64_t input_size, int64_t hidden_size, int bias,
                               fern_rnn_nonlinearity act);
fern_cell *fern_layer_lstm_cell(int64_t input_size, int64_t hidden_size, int bias);
fern_cell *fern_layer_gru_cell(int64_t input_size, int64_t hidden_size, int bias);

/* ---- attention --------------------------------------------------------- */

/* Masks (torch's conventions):
 *   key_padding_mask: (N, S) (or (S) unbatched). bool: true marks a key
 *     that is ignored; float (the input dtype): added to the scores.
 *   attn_mask: (L, S) or (N * num_heads, L, S). bool: true marks a
 *     position that may not be attended; float: added to the scores.
 * A query whose keys are all masked gets NaN weights, like torch. */
typedef struct {
    double dropout;           /* on the attention weights, training only (0) */
    int bias;                 /* in_proj_bias and out_proj.bias (1)          */
    int batch_first;          /* 1: (N, L, E); 0: (L, N, E) (1)              */
    int key_padding_mask;     /* 1: the cell takes a key_padding_mask input (0) */
    int attn_mask;            /* 1: the cell takes an attn_mask input (0)    */
    int causal;               /* 1: also mask keys after the query (L == S) (0) */
    int need_weights;         /* 1: second output, the attention weights (0) */
    int average_attn_weights; /* 1: weights averaged over heads (N, L, S);   */
                              /* 0: per head (N, num_heads, L, S) (1)        */
} fern_mha_opts;
fern_mha_opts fern_mha_opts_default(void);

/* torch.nn.MultiheadAttention(embed_dim, num_heads) (kdim = vdim =
 * embed_dim, no add_bias_kv / add_zero_attn). Parameters in_proj_weight
 * (3E, E) xavier_uniform, in_proj_bias (3E) zeros, and a child Linear
 * "out_proj" (out_proj.weight (E, E), out_proj.bias (E) zeros).
 * Cell inputs: query (N, L, E), key (N, S, E), value (N, S, E) (or
 * time-major, or unbatched (L, E) ...), then key_padding_mask and
 * attn_mask when enabled in opts. Outputs: attn_output like query, then
 * the weights when opts->need_weights (after dropout, like torch). */
fern_cell *fern_layer_multihead_attention(int64_t embed_dim, int64_t num_heads,
                                          const fern_mha_opts *opts);

/* Run a MultiheadAttention cell on any combination of masks (NULL: none),
 * whatever its mask options (its causal option still applies).
 * weights may be NULL; when need_weights is 0 *weights is set to NULL.
 * Results are new references like op results; runs the forward directly
 * (see fern_rnn_apply). */
fern_status fern_mha_apply(fern_cell *mha, fern_tensor *query, fern_tensor *key, fern_tensor *value,
                           fern_tensor *key_padding_mask, fern_tensor *attn_mask, int need_weights,
                           int average_attn_weights, fern_tensor **out, fern_tensor **weights);

/* torch.nn.Transformer.generate_square_subsequent_mask: (size, size) of
 * dtype dt, -inf above the diagonal, 0 on and below it. */
fern_tensor *fern_causal_mask(int64_t size, fern_dtype dt);

/* ---- transformer encoder ----------------------------------------------- */

typedef enum { FERN_TRANSFORMER_RELU = 0, FERN_TRANSFORMER_GELU = 1 } fern_transformer_activation;

typedef struct {
    int64_t dim_feedforward;                /* 2048                              */
    double dropout;                         /* 0.1                               */
    fern_transformer_activation activation; /* relu (gelu: the erf form)         */
    double layer_norm_eps;                  /* 1e-5                              */
    int batch_first;                        /* 1 (torch: 0)                      */
    int norm_first;                         /* 0: post-norm; 1: pre-norm         */
    int src_mask;                           /* 1: the cell takes a src_mask (0)  */
    int src_key_padding_mask;               /* 1: ... a src_key_padding_mask (0) */
    int causal;                             /* 1: causal self-attention (0)      */
} fern_transformer_opts;
fern_transformer_opts fern_transformer_opts_default(void);

/* torch.nn.TransformerEncoderLayer(d_model, nhead, ...). Children (torch's
 * names): self_attn (MultiheadAttention), linear1 (d_model ->
 * dim_feedforward), dropout, linear2, norm1, norm2 (LayerNorm), dropout1,
 * dropout2.
 *   norm_first = 0: x = norm1(x + sa(x)); x = norm2(x + ff(x))
 *   norm_first = 1: x = x + sa(norm1(x)); x = x + ff(norm2(x))
 * with sa(x) = dropout1(self_attn(x, x, x, masks)) and
 * ff(x) = dropout2(linear2(dropout(act(linear1(x))))).
 * Cell inputs: src, then src_mask and src_key_padding_mask when enabled
 * (masks as for attention). Output like src. */
fern_cell *fern_layer_transformer_encoder_layer(int64_t d_model, int64_t nhead,
                                                const fern_transformer_opts *opts);
/* Run an encoder layer (or a TransformerEncoder) on any masks (NULL: none);
 * a new reference like an op result (see fern_rnn_apply). */
fern_tensor *fern_transformer_encoder_apply(fern_cell *layer, fern_tensor *src,
                                            fern_tensor *src_mask, fern_tensor *src_key_padding_mask);

/* torch.nn.TransformerEncoder: num_layers encoder layers built with the
 * same opts (children "layers.0", "layers.1", ...) and, when final_norm,
 * a LayerNorm "norm" (eps opts->layer_norm_eps) applied at the end. Same
 * inputs and output as one layer. */
fern_cell *fern_layer_transformer_encoder(int64_t d_model, int64_t nhead, int num_layers,
                                          const fern_transformer_opts *opts, int final_norm);

#ifdef __cplusplus
}
#endif
#endif /* FERN_SEQ_LAYERS_H */
