/*
 * fern/ops.h — the op library. Every function here is one op of the
 * registry (or a thin convenience over one) and works the same whether its
 * inputs are concrete (run now) or symbolic (traced into a graph).
 *
 * Ownership: see fern/core.h. Inputs are borrowed; results are new
 * references owned by the innermost scope, or by the caller when no scope
 * is open. Any NULL input makes the op return NULL and keep the first
 * error. Errors name the op, the shapes and the dtypes.
 *
 * Axes may be negative (counted from the end). Broadcasting follows NumPy.
 * Float ops accept f32 and f64 natively; f16 and bf16 are stored as such
 * and computed in f32.
 */
#ifndef FERN_OPS_H
#define FERN_OPS_H

#include "fern/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- creation ---------------------------------------------------------- */
fern_tensor *fern_zeros(fern_dtype dt, int ndim, const int64_t *shape);
fern_tensor *fern_ones(fern_dtype dt, int ndim, const int64_t *shape);
fern_tensor *fern_full(fern_dtype dt, int ndim, const int64_t *shape, double value);
fern_tensor *fern_zeros_like(const fern_tensor *x);
fern_tensor *fern_ones_like(const fern_tensor *x);
fern_tensor *fern_full_like(const fern_tensor *x, double value);
/* [start, stop) by step, like numpy.arange. */
fern_tensor *fern_arange(double start, double stop, double step, fern_dtype dt);
/* num evenly spaced values from start to stop inclusive. */
fern_tensor *fern_linspace(double start, double stop, int64_t num, fern_dtype dt);
/* n x m matrix with ones on the diagonal. */
fern_tensor *fern_eye(int64_t n, int64_t m, fern_dtype dt);

/* ---- random (seeded, counter based; see fern_seed) --------------------- */
fern_tensor *fern_rand_uniform(fern_dtype dt, int ndim, const int64_t *shape, double low,
                               double high);
fern_tensor *fern_rand_normal(fern_dtype dt, int ndim, const int64_t *shape, double mean,
                              double std);
/* Normal(mean, std) resampled until inside [a, b] (like torch trunc_normal_). */
fern_tensor *fern_rand_truncated_normal(fern_dtype dt, int ndim, const int64_t *shape,
                                        double mean, double std, double a, double b);
/* Each element is 1 with probability p, else 0. */
fern_tensor *fern_bernoulli(fern_dtype dt, int ndim, const int64_t *shape, double p);
/* Integers uniform in [low, high). */
fern_tensor *fern_randint(int64_t low, int64_t high, fern_dtype dt, int ndim,
                          const int64_t *shape);
/* A random permutation of 0..n-1. */
fern_tensor *fern_randperm(int64_t n, fern_dtype dt);

/* ---- unary elementwise ------------------------------------------------- */
fern_tensor *fern_neg(fern_tensor *x);
fern_tensor *fern_abs(fern_tensor *x);
fern_tensor *fern_sign(fern_tensor *x);
fern_tensor *fern_exp(fern_tensor *x);
fern_tensor *fern_expm1(fern_tensor *x);
fern_tensor *fern_log(fern_tensor *x);
fern_tensor *fern_log1p(fern_tensor *x);
fern_tensor *fern_sqrt(fern_tensor *x);
fern_tensor *fern_rsqrt(fern_tensor *x);
fern_tensor *fern_square(fern_tensor *x);
fern_tensor *fern_reciprocal(fern_tensor *x);
fern_tensor *fern_sin(fern_tensor *x);
fern_tensor *fern_cos(fern_tensor *x);
fern_tensor *fern_tan(fern_tensor *x);
fern_tensor *fern_tanh(fern_tensor *x);
fern_tensor *fern_sigmoid(fern_tensor *x);
fern_tensor *fern_relu(fern_tensor *x);
/* relu's gradient from its output y: g where y > 0, else 0 (f32/f64). */
fern_tensor *fern_relu_backward(fern_tensor *g, fern_tensor *y);
fern_tensor *fern_leaky_relu(fern_tensor *x, double negative_slope);
fern_tensor *fern_elu(fern_tensor *x, double alpha);
/* approximate = 0: x*Phi(x) with erf; 1: the tanh approximation. */
fern_tensor *fern_gelu(fern_tensor *x, int approximate);
fern_tensor *fern_silu(fern_tensor *x);
/* log(1 + exp(beta*x))/beta, linear above threshold (torch defaults 1, 20). */
fern_tensor *fern_softplus(fern_tensor *x, double beta, double threshold);
fern_tensor *fern_erf(fern_tensor *x);
fern_tensor *fern_floor(fern_tensor *x);
fern_tensor *fern_ceil(fern_tensor *x);
/* Round half to even, like torch.round / numpy.round. */
fern_tensor *fern_round(fern_tensor *x);
/* Clamp to [lo, hi]; pass -INFINITY / INFINITY for no bound. */
fern_tensor *fern_clip(fern_tensor *x, double lo, double hi);
fern_tensor *fern_isnan(fern_tensor *x);       /* -> bool */
fern_tensor *fern_isinf(fern_tensor *x);       /* -> bool */
fern_tensor *fern_logical_not(fern_tensor *x); /* -> bool */

/* ---- binary / ternary elementwise (NumPy broadcasting, type promotion) - */
fern_tensor *fern_add(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_sub(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_mul(fern_tensor *a, fern_tensor *b);
/* True division: integer inputs give f32. */
fern_tensor *fern_div(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_pow(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_maximum(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_minimum(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_atan2(fern_tensor *a, fern_tensor *b);
/* C fmod: result has the sign of a (like torch.fmod). */
fern_tensor *fern_fmod(fern_tensor *a, fern_tensor *b);
/* comparisons -> bool */
fern_tensor *fern_eq(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_ne(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_lt(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_le(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_gt(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_ge(fern_tensor *a, fern_tensor *b);
/* logical (nonzero is true) -> bool */
fern_tensor *fern_logical_and(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_logical_or(fern_tensor *a, fern_tensor *b);
fern_tensor *fern_logical_xor(fern_tensor *a, fern_tensor *b);
/* cond ? a : b, all three broadcast together. */
fern_tensor *fern_where(fern_tensor *cond, fern_tensor *a, fern_tensor *b);
/* Scalar conveniences: the scalar takes x's dtype (torch's rule). */
fern_tensor *fern_add_scalar(fern_tensor *x, double s);
fern_tensor *fern_sub_scalar(fern_tensor *x, double s);
fern_tensor *fern_mul_scalar(fern_tensor *x, double s);
fern_tensor *fern_div_scalar(fern_tensor *x, double s);
fern_tensor *fern_pow_scalar(fern_tensor *x, double s);

/* ---- reductions -------------------------------------------------------- */
/* axes == NULL or n_axes == 0 reduces over all axes. Integer and bool sums
 * and prods give i64. */
fern_tensor *fern_sum(fern_tensor *x, const int *axes, int n_axes, int keepdims);
fern_tensor *fern_mean(fern_tensor *x, const int *axes, int n_axes, int keepdims);
fern_tensor *fern_prod(fern_tensor *x, const int *axes, int n_axes, int keepdims);
fern_tensor *fern_max(fern_tensor *x, const int *axes, int n_axes, int keepdims);
fern_tensor *fern_min(fern_tensor *x, const int *axes, int n_axes, int keepdims);
/* correction: 1 for the unbiased estimate (torch default), 0 for biased. */
fern_tensor *fern_var(fern_tensor *x, const int *axes, int n_axes, int correction,
                      int keepdims);
fern_tensor *fern_std(fern_tensor *x, const int *axes, int n_axes, int correction,
                      int keepdims);
fern_tensor *fern_logsumexp(fern_tensor *x, const int *axes, int n_axes, int keepdims);
fern_tensor *fern_all(fern_tensor *x, const int *axes, int n_axes, int keepdims); /* bool */
fern_tensor *fern_any(fern_tensor *x, const int *axes, int n_axes, int keepdims); /* bool */
/* Index (i64) of the first max/min along axis. */
fern_tensor *fern_argmax(fern_tensor *x, int axis, int keepdims);
fern_tensor *fern_argmin(fern_tensor *x, int axis, int keepdims);
fern_tensor *fern_cumsum(fern_tensor *x, int axis);
fern_tensor *fern_cumprod(fern_tensor *x, int axis);

/* ---- linear algebra ---------------------------------------------------- */
/* numpy.matmul semantics: 1-D operands are promoted and squeezed, batch
 * dimensions broadcast. f32/f64 go through BLAS. */
fern_tensor *fern_matmul(fern_tensor *a, fern_tensor *b);
/* x @ weight^T + bias (torch.nn.functional.linear): x (..., in), weight (out, in),
 * bias (out) or NULL. */
fern_tensor *fern_linear(fern_tensor *x, fern_tensor *weight, fern_tensor *bias);

/* ---- neural-network ops ------------------------------------------------ */
typedef enum { FERN_REDUCTION_NONE = 0, FERN_REDUCTION_MEAN = 1, FERN_REDUCTION_SUM = 2 } fern_reduction;

typedef struct {
    int64_t stride[2];
    int64_t padding[2];        /* symmetric, per spatial dim            */
    int64_t dilation[2];
    int64_t groups;
    int padding_same;          /* 1: "same" padding (stride 1 only)     */
    int64_t output_padding[2]; /* conv_transpose2d only                 */
} fern_conv_opts;
/* stride 1, padding 0, dilation 1, groups 1. */
fern_conv_opts fern_conv_opts_default(void);

/* x: (N, Cin, L), w: (Cout, Cin/groups, K), bias: (Cout) or NULL.
 * Only index [0] of the opts arrays is used. */
fern_tensor *fern_conv1d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts);
/* x: (N, Cin, H, W), w: (Cout, Cin/groups, KH, KW), bias: (Cout) or NULL. */
fern_tensor *fern_conv2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts);
/* x: (N, Cin, H, W), w: (Cin, Cout/groups, KH, KW), like torch. */
fern_tensor *fern_conv_transpose2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                                   const fern_conv_opts *opts);

typedef struct {
    int64_t kernel[2];
    int64_t stride[2];  /* 0 means "same as kernel" */
    int64_t padding[2];
    int ceil_mode;
    int count_include_pad; /* avg pool only, torch default 1 */
} fern_pool_opts;
fern_pool_opts fern_pool_opts_default(int64_t kh, int64_t kw);
fern_tensor *fern_max_pool2d(fern_tensor *x, const fern_pool_opts *opts);
fern_tensor *fern_avg_pool2d(fern_tensor *x, const fern_pool_opts *opts);
fern_tensor *fern_adaptive_avg_pool2d(fern_tensor *x, int64_t out_h, int64_t out_w);

fern_tensor *fern_softmax(fern_tensor *x, int axis);
fern_tensor *fern_log_softmax(fern_tensor *x, int axis);
/* Normalizes over the last n_norm_dims dims; weight/bias of that shape or NULL. */
fern_tensor *fern_layer_norm(fern_tensor *x, int n_norm_dims, fern_tensor *weight,
                             fern_tensor *bias, double eps);
/* x: (N, C, ...). training=1 uses batch statistics and, when running_mean
 * and running_var are given, updates them in place with momentum (torch
 * convention, unbiased variance). training=0 uses the running statistics. */
fern_tensor *fern_batch_norm(fern_tensor *x, fern_tensor *running_mean,
                             fern_tensor *running_var, fern_tensor *weight, fern_tensor *bias,
                             int training, double momentum, double eps);
fern_tensor *fern_group_norm(fern_tensor *x, int64_t num_groups, fern_tensor *weight,
                             fern_tensor *bias, double eps);
/* Zeroes elements with probability p and scales the rest by 1/(1-p) when
 * training; returns a new reference to x's values otherwise. */
fern_tensor *fern_dropout(fern_tensor *x, double p, int training);
/* weight: (num, dim); indices: integer tensor of any shape -> (..., dim). */
fern_tensor *fern_embedding(fern_tensor *weight, fern_tensor *indices);
/* indices: integer tensor -> (..., num_classes) of dtype dt. */
fern_tensor *fern_one_hot(fern_tensor *indices, int64_t num_classes, fern_dtype dt);

typedef enum { FERN_PAD_CONSTANT = 0, FERN_PAD_REFLECT = 1, FERN_PAD_REPLICATE = 2 } fern_pad_mode;
/* pads in torch order: (last_begin, last_end, prev_begin, prev_end, ...),
 * n_pads even and <= 2*ndim. */
fern_tensor *fern_pad(fern_tensor *x, const int64_t *pads, int n_pads, fern_pad_mode mode,
                      double value);

typedef enum { FERN_INTERP_NEAREST = 0, FERN_INTERP_BILINEAR = 1 } fern_interp_mode;
/* x: (N, C, H, W) -> (N, C, out_h, out_w), torch.nn.functional.interpolate. */
fern_tensor *fern_interpolate(fern_tensor *x, int64_t out_h, int64_t out_w,
                              fern_interp_mode mode, int align_corners);

/* logits: (N, C) or (N, C, d1...); target: integer class indices (N, d1...)
 * or float class probabilities shaped like logits. weight: (C) or NULL.
 * Entries equal to ignore_index are skipped (torch default -100). */
fern_tensor *fern_cross_entropy(fern_tensor *logits, fern_tensor *target, fern_tensor *weight,
                                fern_reduction reduction, double label_smoothing,
                                int64_t ignore_index);
/* log_probs: (N, C) or (N, C, d1...); target: integer indices. */
fern_tensor *fern_nll_loss(fern_tensor *log_probs, fern_tensor *target, fern_tensor *weight,
                           fern_reduction reduction, int64_t ignore_index);
fern_tensor *fern_mse_loss(fern_tensor *input, fern_tensor *target, fern_reduction reduction);
/* weight (broadcast to input) and pos_weight (broadcast over the last dim)
 * may be NULL. */
fern_tensor *fern_bce_with_logits(fern_tensor *logits, fern_tensor *target,
                                  fern_tensor *weight, fern_tensor *pos_weight,
                                  fern_reduction reduction);

/* ---- views (no copy on concrete tensors) ------------------------------- */
/* One entry may be -1 (inferred). A view when strides allow, else a copy. */
fern_tensor *fern_reshape(fern_tensor *x, int ndim, const int64_t *shape);
fern_tensor *fern_permute(fern_tensor *x, const int *perm);
fern_tensor *fern_transpose(fern_tensor *x, int axis0, int axis1);
/* Python slicing on one axis: start/stop may be negative and are clamped;
 * step > 0. */
fern_tensor *fern_slice(fern_tensor *x, int axis, int64_t start, int64_t stop, int64_t step);
/* Broadcast to `shape` (ndim >= x's); -1 keeps x's size. */
fern_tensor *fern_expand(fern_tensor *x, int ndim, const int64_t *shape);
/* axes == NULL / n_axes == 0 drops every size-1 dim. */
fern_tensor *fern_squeeze(fern_tensor *x, const int *axes, int n_axes);
fern_tensor *fern_unsqueeze(fern_tensor *x, int axis);
fern_tensor *fern_flatten(fern_tensor *x, int start_axis, int end_axis);
/* A contiguous tensor with x's values (x itself, retained, if already so). */
fern_tensor *fern_contiguous(fern_tensor *x);
/* A contiguous copy that never shares storage with x. */
fern_tensor *fern_clone(fern_tensor *x);

/* ---- shape and indexing ------------------------------------------------ */
fern_tensor *fern_concat(fern_tensor *const *xs, int n, int axis);
fern_tensor *fern_stack(fern_tensor *const *xs, int n, int axis);
/* Split along axis into n_parts pieces of the given sizes (summing to the
 * axis length); writes n_parts new references to out. */
fern_status fern_split(fern_tensor *x, const int64_t *sizes, int n_parts, int axis,
                       fern_tensor **out);
/* torch.gather: out[i][j] = x[index[i][j]][j] (axis 0), index same ndim. */
fern_tensor *fern_gather(fern_tensor *x, int axis, fern_tensor *index);
/* numpy.take_along_axis: like gather, index broadcasts against x. */
fern_tensor *fern_take_along_axis(fern_tensor *x, fern_tensor *index, int axis);
/* Out-of-place torch.scatter / scatter_add: a copy of x with src written
 * (or added) at index along axis. */
fern_tensor *fern_scatter(fern_tensor *x, int axis, fern_tensor *index, fern_tensor *src);
fern_tensor *fern_scatter_add(fern_tensor *x, int axis, fern_tensor *index, fern_tensor *src);
fern_tensor *fern_index_select(fern_tensor *x, int axis, fern_tensor *index);
/* numpy.tile / torch.Tensor.repeat. */
fern_tensor *fern_tile(fern_tensor *x, const int64_t *reps, int n_reps);
/* numpy.repeat / torch.repeat_interleave with one repeat count. */
fern_tensor *fern_repeat(fern_tensor *x, int64_t repeats, int axis);
fern_tensor *fern_flip(fern_tensor *x, const int *axes, int n_axes);
fern_tensor *fern_roll(fern_tensor *x, const int64_t *shifts, const int *axes, int n);
/* Keep the lower/upper triangle of the last two dims (diagonal offset k). */
fern_tensor *fern_tril(fern_tensor *x, int64_t k);
fern_tensor *fern_triu(fern_tensor *x, int64_t k);
fern_tensor *fern_cast(fern_tensor *x, fern_dtype dt);
/* k largest (or smallest) along axis; values and i64 indices. */
fern_status fern_topk(fern_tensor *x, int64_t k, int axis, int largest, int sorted,
                      fern_tensor **values, fern_tensor **indices);
/* Stable sort along axis; either output pointer may be NULL. */
fern_status fern_sort(fern_tensor *x, int axis, int descending, fern_tensor **values,
                      fern_tensor **indices);
fern_tensor *fern_argsort(fern_tensor *x, int axis, int descending);

/* ---- state ------------------------------------------------------------- */
/* Write value's elements into target (same shape; value is cast to
 * target's dtype) and return a new reference to target. In graph mode this
 * is an ordered side effect of the compiled graph (how optimizers update
 * parameters and batch norm its running statistics inside one graph). Not
 * differentiable. */
fern_tensor *fern_assign(fern_tensor *target, fern_tensor *value);
/* Fused in-place optimizer steps (ordered side effects like assign; both
 * return param). lr and step are 0-d tensors read at run time, step the
 * 1-based number of the step being taken. param and the state tensors must
 * be contiguous. apply_momentum is torch's SGD with dampening 0; apply_adam
 * is Adam (decoupled 0) or AdamW (decoupled 1). */
fern_tensor *fern_apply_momentum(fern_tensor *param, fern_tensor *buf, fern_tensor *grad, fern_tensor *lr,
                                 double momentum, double weight_decay, int nesterov);
fern_tensor *fern_apply_adam(fern_tensor *param, fern_tensor *m, fern_tensor *v, fern_tensor *grad,
                             fern_tensor *lr, fern_tensor *step, double beta1, double beta2, double eps,
                             double weight_decay, int decoupled);

/* ---- the registry, generically ----------------------------------------
 * Every op above is an entry of the registry. This interface calls ops by
 * name with named attributes: the graph executor, model importers and the
 * test harness use it. */

typedef enum {
    FERN_ATTR_INT = 0, /* i                       */
    FERN_ATTR_FLOAT,   /* f                       */
    FERN_ATTR_INTS,    /* ints[0..n)              */
    FERN_ATTR_FLOATS,  /* floats[0..n)            */
    FERN_ATTR_STR,     /* s (static or interned)  */
    FERN_ATTR_DTYPE    /* i holds a fern_dtype    */
} fern_attr_kind;

#define FERN_ATTR_MAX_VALUES 16

typedef struct {
    fern_attr_kind kind;
    int n;
    int64_t i;
    double f;
    int64_t ints[FERN_ATTR_MAX_VALUES];
    double floats[FERN_ATTR_MAX_VALUES];
    const char *s;
} fern_attr;

typedef struct fern_op_def fern_op_def;

int fern_op_count(void);
const fern_op_def *fern_op_at(int i);
const fern_op_def *fern_op_find(const char *name);
const char *fern_op_name(const fern_op_def *op);
/* Write a one-line description of the op (inputs, attrs, dtypes, backends,
 * gradient) into buf. */
char *fern_op_describe(const fern_op_def *op, char *buf, size_t n);

/* Call an op by name. Attributes not named take their schema defaults.
 * Writes n_out results (new references) to out. */
fern_status fern_op_invoke(const char *name, int n_in, fern_tensor *const *in, int n_attrs,
                           const char *const *attr_names, const fern_attr *attrs, int n_out,
                           fern_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* FERN_OPS_H */
