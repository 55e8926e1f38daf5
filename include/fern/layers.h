/*
 * fern/layers.h — the layer library and losses as cells.
 *
 * Every constructor returns a fern_cell (one reference; fern_cell_release
 * frees it) whose parameters and buffers carry torch.nn's names, layouts,
 * default initialization and semantics, so a PyTorch state dict loads by
 * name with fern_cell_load_state_dict and gives the same outputs. Forwards
 * are written with fern ops: they run eagerly in pynative mode, trace into
 * graphs in graph mode and differentiate with fern_value_and_grad_params.
 *
 * Parameters are created with the layer dtype (f32 unless changed with
 * fern_layers_set_default_dtype, the analogue of torch.set_default_dtype)
 * and initialized from fern's seeded generator (fern_seed). Inputs must
 * have the parameters' dtype.
 *
 * Constructors check their arguments and return NULL with an error set on
 * bad ones; forwards check the input's rank, sizes and dtype and report
 * errors that name the layer and show its configuration and the input.
 *
 * Cell type names (shown by fern_cell_summary): "Linear", "Dense",
 * "Conv1d", "Conv2d", "ConvTranspose2d", "BatchNorm1d", "BatchNorm2d",
 * "LayerNorm", "GroupNorm", "Dropout", "Embedding", "MaxPool2d",
 * "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "ReLU", "LeakyReLU", "ELU",
 * "GELU", "SiLU", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "Identity",
 * "SoftmaxCrossEntropy", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss",
 * "HuberLoss", "BCELoss", "BCEWithLogitsLoss", "WithLossCell".
 */
#ifndef FERN_LAYERS_H
#define FERN_LAYERS_H

#include <stdint.h>

#include "fern/nn.h"
#include "fern/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* dtype of the parameters and buffers that layer constructors create (per
 * thread, f32 by default). Only float dtypes are accepted; another dtype
 * records an error and leaves the setting unchanged. */
fern_status fern_layers_set_default_dtype(fern_dtype dt);
fern_dtype fern_layers_default_dtype(void);

/* ---- linear ------------------------------------------------------------ */
/* torch.nn.Linear: y = x @ weight^T + bias on the last dim of x (any number
 * of leading dims, or a 1-d x). weight (out, in), bias (out) when bias != 0.
 * Init: weight and bias uniform(-1/sqrt(in), 1/sqrt(in)) (torch's
 * kaiming_uniform_(a=sqrt(5)) and its bias rule). */
fern_cell *fern_layer_linear(int64_t in_features, int64_t out_features, int bias);
/* The same layer under MindSpore's name (type "Dense"). */
fern_cell *fern_layer_dense(int64_t in_features, int64_t out_features, int bias);

/* ---- convolutions ------------------------------------------------------ */
/* opts: stride, padding (zeros, symmetric), dilation, groups, padding_same
 * (stride 1 only, torch's padding='same'), output_padding (transposed conv
 * only); NULL means fern_conv_opts_default(). Conv1d uses index [0] only.
 * weight: Conv1d (out, in/groups, k), Conv2d (out, in/groups, kh, kw),
 * ConvTranspose2d (in, out/groups, kh, kw) — torch's layouts; bias (out).
 * Init as torch: kaiming_uniform_(a=sqrt(5)) and uniform(+-1/sqrt(fan_in))
 * for the bias, fan_in computed from the weight like torch. Inputs:
 * (N, C, L) for Conv1d and (N, C, H, W) for the 2-d layers. */
fern_cell *fern_layer_conv1d(int64_t in_channels, int64_t out_channels, int64_t kernel,
                             const fern_conv_opts *opts, int bias);
fern_cell *fern_layer_conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_h,
                             int64_t kernel_w, const fern_conv_opts *opts, int bias);
fern_cell *fern_layer_conv_transpose2d(int64_t in_channels, int64_t out_channels,
                                       int64_t kernel_h, int64_t kernel_w,
                                       const fern_conv_opts *opts, int bias);

/* ---- normalization ----------------------------------------------------- */
typedef struct {
    double eps;              /* 1e-5                                          */
    double momentum;         /* 0.1; a negative value (or NAN) means torch's  */
                             /* momentum=None: cumulative moving average      */
    int affine;              /* 1: learnable weight (ones) and bias (zeros)   */
    int track_running_stats; /* 1: buffers running_mean (zeros), running_var  */
                             /* (ones), num_batches_tracked (i64 0)           */
} fern_norm_opts;
fern_norm_opts fern_norm_opts_default(void);

/* torch.nn.BatchNorm1d ((N, C) or (N, C, L) input) and BatchNorm2d
 * ((N, C, H, W)); opts NULL means the defaults. In training mode (or with
 * track_running_stats 0) the batch statistics normalize, and in training
 * with tracking the running statistics are updated with fern_assign, so the
 * update also happens inside compiled graphs:
 *   running_mean = (1 - m) * running_mean + m * batch_mean
 *   running_var  = (1 - m) * running_var  + m * unbiased batch_var
 *   num_batches_tracked += 1     (m = 1 / num_batches_tracked when the
 *                                 momentum is negative, like momentum=None)
 * Training needs more than one value per channel. In eval mode the running
 * statistics normalize. */
fern_cell *fern_layer_batch_norm1d(int64_t num_features, const fern_norm_opts *opts);
fern_cell *fern_layer_batch_norm2d(int64_t num_features, const fern_norm_opts *opts);
/* torch.nn.LayerNorm over the last n_dims dims of the given shape; weight
 * (ones) and bias (zeros) of that shape when elementwise_affine != 0. */
fern_cell *fern_layer_layer_norm(int n_dims, const int64_t *normalized_shape, double eps,
                                 int elementwise_affine);
/* torch.nn.GroupNorm: (N, C, ...) input, C = num_channels divisible by
 * num_groups; weight (ones) and bias (zeros) of shape (C) when affine. */
fern_cell *fern_layer_group_norm(int64_t num_groups, int64_t num_channels, double eps,
                                 int affine);

/* ---- regularization and lookup ----------------------------------------- */
/* Zeroes elements with probability p and scales the others by 1/(1-p) in
 * training mode (the cell's flag, fern_cell_set_training); identity in
 * eval mode. 0 <= p <= 1. */
fern_cell *fern_layer_dropout(double p);

#define FERN_NO_PADDING_IDX INT64_MIN
/* torch.nn.Embedding: weight (num_embeddings, dim) ~ N(0, 1); integer
 * indices of any shape -> (..., dim). padding_idx (negative counts from the
 * end, FERN_NO_PADDING_IDX for none): that row starts at zero and receives
 * no gradient. */
fern_cell *fern_layer_embedding(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx);

/* ---- pooling and reshaping --------------------------------------------- */
/* opts as for fern_max_pool2d / fern_avg_pool2d (kernel, stride 0 = kernel,
 * padding, ceil_mode, count_include_pad); the cell keeps a copy. */
fern_cell *fern_layer_max_pool2d(const fern_pool_opts *opts);
fern_cell *fern_layer_avg_pool2d(const fern_pool_opts *opts);
fern_cell *fern_layer_adaptive_avg_pool2d(int64_t out_h, int64_t out_w);
/* torch.nn.Flatten(start_dim, end_dim); torch's defaults are 1, -1. */
fern_cell *fern_layer_flatten(int start_axis, int end_axis);

/* ---- activations ------------------------------------------------------- */
fern_cell *fern_layer_relu(void);
fern_cell *fern_layer_leaky_relu(double negative_slope); /* torch default 0.01 */
fern_cell *fern_layer_elu(double alpha);                 /* torch default 1.0  */
fern_cell *fern_layer_gelu(int approximate);             /* 0: erf, 1: tanh    */
fern_cell *fern_layer_silu(void);
fern_cell *fern_layer_sigmoid(void);
fern_cell *fern_layer_tanh(void);
fern_cell *fern_layer_softmax(int axis);
fern_cell *fern_layer_log_softmax(int axis);
fern_cell *fern_layer_identity(void);

/* ---- losses: cells of two inputs (prediction, target) -> loss ---------- *
 * reduction: FERN_REDUCTION_MEAN / SUM give a 0-d loss, NONE the
 * elementwise (per-sample) losses. Weight tensors (may be NULL) are kept by
 * reference as buffers named like torch's ("weight", "pos_weight"). */

/* torch.nn.CrossEntropyLoss on logits (N, C) or (N, C, d1...); target:
 * integer class indices (N, d1...) or class probabilities shaped like the
 * logits. weight (C) or NULL; label_smoothing in [0, 1]; targets equal to
 * ignore_index (torch default -100) are skipped. */
fern_cell *fern_loss_cross_entropy(fern_tensor *weight, fern_reduction reduction,
                                   double label_smoothing, int64_t ignore_index);
/* torch.nn.NLLLoss on log-probabilities. */
fern_cell *fern_loss_nll(fern_tensor *weight, fern_reduction reduction, int64_t ignore_index);
/* Elementwise losses (prediction and target broadcast, like torch). */
fern_cell *fern_loss_mse(fern_reduction reduction);
fern_cell *fern_loss_l1(fern_reduction reduction);
/* 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: L1). */
fern_cell *fern_loss_smooth_l1(fern_reduction reduction, double beta);
/* 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta); delta > 0. */
fern_cell *fern_loss_huber(fern_reduction reduction, double delta);
/* torch.nn.BCELoss on probabilities in [0, 1] (each log clamped at -100
 * like torch); prediction and target of the same shape; weight broadcasts
 * to them. */
fern_cell *fern_loss_bce(fern_tensor *weight, fern_reduction reduction);
/* torch.nn.BCEWithLogitsLoss; weight broadcasts to the input, pos_weight
 * over the last dim. */
fern_cell *fern_loss_bce_with_logits(fern_tensor *weight, fern_tensor *pos_weight,
                                     fern_reduction reduction);

/* MindSpore's WithLossCell: (data, label) -> loss(backbone(data), label).
 * Children "backbone" and "loss" (so parameter names get a "backbone."
 * prefix); takes references to both. backbone: 1 input, 1 output; loss: 2
 * inputs, 1 output. */
fern_cell *fern_with_loss(fern_cell *backbone, fern_cell *loss);

#ifdef __cplusplus
}
#endif
#endif /* FERN_LAYERS_H */
