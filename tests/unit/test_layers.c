/* The layer library and loss cells against PyTorch 1.13 (reference data
 * from tests/data/make_nn_refs.py, FERN_NN_REFS=<dir>/nn_layers.npz).
 *
 * For every case, in pynative AND graph mode: build the fern cell, load the
 * torch state dict with strict name matching (so parameter and buffer names
 * match torch's), run the forward and compare the output; reload, run
 * fern_value_and_grad_params of sum(out * cot) over the input and every
 * parameter and compare the output, the input gradient and each parameter
 * gradient; for batch norm in training mode compare the running statistics
 * after each of the two calls (each updates them exactly once, also inside
 * compiled graphs). Tolerance: 1e-9 of the reference's scale for float64
 * cases, 1e-4 for float32 cases. Also: constructor defaults, dropout,
 * error messages, summaries. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"
#include "fern/layers.h"

static fern_checkpoint *refs;

static fern_tensor *ref_opt(const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return fern_checkpoint_get(refs, name);
}

#define REF(...) ref_req(__VA_ARGS__)
static fern_tensor *ref_req(const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    fern_tensor *t = fern_checkpoint_get(refs, name);
    if (!t)
        fail_msg("reference '%s' missing", name);
    return t;
}

/* The entries "<case>/<part>..." with that prefix removed (borrowed tensors
 * re-added by reference). */
static fern_checkpoint *sub_checkpoint(const char *case_name, const char *part)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/%s", case_name, part);
    size_t n = strlen(prefix);
    fern_checkpoint *ck = fern_checkpoint_new();
    for (int i = 0; i < fern_checkpoint_count(refs); i++) {
        const char *name = fern_checkpoint_name_at(refs, i);
        if (!strncmp(name, prefix, n))
            fern_checkpoint_add(ck, name + n, fern_checkpoint_tensor_at(refs, i));
    }
    return ck;
}

static void compare(const char *what, const char *case_name, const fern_tensor *got, const fern_tensor *want,
                    double rtol)
{
    if (!got)
        fail_msg("%s %s: no result: %s", case_name, what, fern_last_error());
    char a[128], b[128];
    int nd = fern_tensor_ndim(want);
    if (fern_tensor_ndim(got) != nd ||
        memcmp(fern_tensor_shape(got), fern_tensor_shape(want), (size_t)nd * sizeof(int64_t)) ||
        fern_tensor_dtype(got) != fern_tensor_dtype(want))
        fail_msg("%s %s: got %s, expected %s", case_name, what, fern_tensor_desc(got, a, sizeof a),
                 fern_tensor_desc(want, b, sizeof b));
    int64_t n = fern_tensor_numel(want);
    double scale = 0;
    for (int64_t i = 0; i < n; i++)
        scale = fmax(scale, fabs(fern_tensor_get_flat(want, i)));
    for (int64_t i = 0; i < n; i++) {
        double g = fern_tensor_get_flat(got, i), w = fern_tensor_get_flat(want, i);
        if (!(fabs(g - w) <= rtol * (scale + fabs(w)) + 1e-300))
            fail_msg("%s %s[%lld]: fern %.12g, torch %.12g (scale %g, rtol %g)", case_name, what, (long long)i, g,
                     w, scale, rtol);
    }
}

/* ---- the cells of the reference cases ------------------------------------------ */

static fern_tensor *sd_clone(const char *name, const char *entry)
{
    return fern_clone(REF("%s/sd/%s", name, entry));
}

static fern_conv_opts conv_opts(int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t g)
{
    fern_conv_opts o = fern_conv_opts_default();
    o.stride[0] = sh;
    o.stride[1] = sw;
    o.padding[0] = ph;
    o.padding[1] = pw;
    o.dilation[0] = dh;
    o.dilation[1] = dw;
    o.groups = g;
    return o;
}

static fern_cell *seq3(fern_cell *a, fern_cell *b, fern_cell *c)
{
    fern_cell *cells[3] = {a, b, c};
    fern_cell *s = fern_sequential(3, cells);
    for (int i = 0; i < 3; i++)
        fern_cell_release(cells[i]);
    return s;
}

/* The fern cell for a case of make_nn_refs.py (keep the two lists in sync). */
static fern_cell *make_cell(const char *n)
{
#define IS(s) (!strcmp(n, s))
    fern_conv_opts o;
    fern_norm_opts no = fern_norm_opts_default();
    fern_pool_opts po;
    if (IS("linear"))
        return fern_layer_linear(5, 4, 1);
    if (IS("linear_nobias_3d"))
        return fern_layer_linear(5, 4, 0);
    if (IS("linear_1d"))
        return fern_layer_linear(6, 2, 1);
    if (IS("dense_f32"))
        return fern_layer_dense(7, 3, 1);
    if (IS("conv1d"))
        return o = conv_opts(2, 1, 1, 0, 1, 1, 1), fern_layer_conv1d(3, 4, 3, &o, 1);
    if (IS("conv1d_groups_dil"))
        return o = conv_opts(1, 1, 0, 0, 2, 1, 2), fern_layer_conv1d(4, 6, 3, &o, 0);
    if (IS("conv2d"))
        return o = conv_opts(2, 1, 1, 0, 1, 1, 1), fern_layer_conv2d(3, 4, 3, 2, &o, 1);
    if (IS("conv2d_same_groups")) {
        o = conv_opts(1, 1, 0, 0, 2, 2, 2);
        o.padding_same = 1;
        return fern_layer_conv2d(4, 6, 3, 3, &o, 1);
    }
    if (IS("conv2d_unbatched"))
        return o = conv_opts(1, 1, 1, 1, 1, 1, 1), fern_layer_conv2d(2, 3, 3, 3, &o, 1);
    if (IS("conv2d_f32"))
        return o = conv_opts(1, 1, 1, 1, 1, 1, 1), fern_layer_conv2d(3, 8, 3, 3, &o, 1);
    if (IS("convt2d")) {
        o = conv_opts(2, 2, 1, 1, 1, 1, 1);
        o.output_padding[0] = o.output_padding[1] = 1;
        return fern_layer_conv_transpose2d(4, 3, 3, 3, &o, 1);
    }
    if (IS("convt2d_groups"))
        return o = conv_opts(1, 2, 0, 0, 1, 1, 2), fern_layer_conv_transpose2d(4, 6, 2, 3, &o, 0);
    if (IS("bn1d_train"))
        return fern_layer_batch_norm1d(4, NULL);
    if (IS("bn1d_3d_train"))
        return no.momentum = 0.3, fern_layer_batch_norm1d(3, &no);
    if (IS("bn2d_train") || IS("bn2d_eval"))
        return fern_layer_batch_norm2d(3, NULL);
    if (IS("bn2d_cma"))
        return no.momentum = -1, fern_layer_batch_norm2d(3, &no);
    if (IS("bn2d_notrack"))
        return no.affine = 0, no.track_running_stats = 0, fern_layer_batch_norm2d(3, &no);
    if (IS("bn2d_f32_train"))
        return fern_layer_batch_norm2d(4, &no);
    if (IS("layernorm"))
        return fern_layer_layer_norm(2, (int64_t[]){4, 5}, 1e-5, 1);
    if (IS("layernorm_noaffine"))
        return fern_layer_layer_norm(1, (int64_t[]){6}, 1e-3, 0);
    if (IS("groupnorm"))
        return fern_layer_group_norm(2, 6, 1e-5, 1);
    if (IS("embedding"))
        return fern_layer_embedding(10, 4, 0);
    if (IS("embedding_neg_pad"))
        return fern_layer_embedding(7, 3, -1);
    if (IS("maxpool")) {
        po = fern_pool_opts_default(3, 3);
        po.stride[0] = po.stride[1] = 2;
        po.padding[0] = po.padding[1] = 1;
        po.ceil_mode = 1;
        return fern_layer_max_pool2d(&po);
    }
    if (IS("maxpool_unbatched"))
        return po = fern_pool_opts_default(2, 2), fern_layer_max_pool2d(&po);
    if (IS("avgpool")) {
        po = fern_pool_opts_default(3, 3);
        po.stride[0] = po.stride[1] = 2;
        po.padding[0] = po.padding[1] = 1;
        po.count_include_pad = 0;
        return fern_layer_avg_pool2d(&po);
    }
    if (IS("avgpool_ceil")) {
        po = fern_pool_opts_default(2, 3);
        po.stride[0] = po.stride[1] = 2;
        po.ceil_mode = 1;
        po.count_include_pad = 1;
        return fern_layer_avg_pool2d(&po);
    }
    if (IS("adaptive"))
        return fern_layer_adaptive_avg_pool2d(3, 2);
    if (IS("flatten"))
        return fern_layer_flatten(1, -1);
    if (IS("flatten_mid"))
        return fern_layer_flatten(1, 2);
    if (IS("relu"))
        return fern_layer_relu();
    if (IS("leaky_relu"))
        return fern_layer_leaky_relu(0.2);
    if (IS("elu"))
        return fern_layer_elu(0.7);
    if (IS("gelu"))
        return fern_layer_gelu(0);
    if (IS("gelu_tanh"))
        return fern_layer_gelu(1);
    if (IS("silu"))
        return fern_layer_silu();
    if (IS("sigmoid"))
        return fern_layer_sigmoid();
    if (IS("tanh"))
        return fern_layer_tanh();
    if (IS("softmax"))
        return fern_layer_softmax(1);
    if (IS("log_softmax"))
        return fern_layer_log_softmax(-1);
    if (IS("identity"))
        return fern_layer_identity();
    if (IS("dropout_eval"))
        return fern_layer_dropout(0.3);
    if (IS("sequential"))
        return seq3(fern_layer_linear(6, 8, 1), fern_layer_tanh(), fern_layer_linear(8, 3, 1));
    /* losses */
    if (IS("ce_mean"))
        return fern_loss_cross_entropy(sd_clone(n, "weight"), FERN_REDUCTION_MEAN, 0.1, 2);
    if (IS("ce_sum_nd"))
        return fern_loss_cross_entropy(NULL, FERN_REDUCTION_SUM, 0.0, -100);
    if (IS("ce_none_probs"))
        return fern_loss_cross_entropy(NULL, FERN_REDUCTION_NONE, 0.2, -100);
    if (IS("nll_mean"))
        return fern_loss_nll(sd_clone(n, "weight"), FERN_REDUCTION_MEAN, 1);
    if (IS("nll_none"))
        return fern_loss_nll(NULL, FERN_REDUCTION_NONE, -100);
    if (IS("mse_mean"))
        return fern_loss_mse(FERN_REDUCTION_MEAN);
    if (IS("mse_none"))
        return fern_loss_mse(FERN_REDUCTION_NONE);
    if (IS("l1_mean"))
        return fern_loss_l1(FERN_REDUCTION_MEAN);
    if (IS("l1_sum"))
        return fern_loss_l1(FERN_REDUCTION_SUM);
    if (IS("smoothl1_mean"))
        return fern_loss_smooth_l1(FERN_REDUCTION_MEAN, 0.5);
    if (IS("smoothl1_none"))
        return fern_loss_smooth_l1(FERN_REDUCTION_NONE, 1.0);
    if (IS("smoothl1_beta0"))
        return fern_loss_smooth_l1(FERN_REDUCTION_SUM, 0.0);
    if (IS("huber_mean"))
        return fern_loss_huber(FERN_REDUCTION_MEAN, 0.7);
    if (IS("huber_none"))
        return fern_loss_huber(FERN_REDUCTION_NONE, 1.0);
    if (IS("bce_mean"))
        return fern_loss_bce(sd_clone(n, "weight"), FERN_REDUCTION_MEAN);
    if (IS("bce_none"))
        return fern_loss_bce(NULL, FERN_REDUCTION_NONE);
    if (IS("bcel_mean"))
        return fern_loss_bce_with_logits(sd_clone(n, "weight"), sd_clone(n, "pos_weight"), FERN_REDUCTION_MEAN);
    if (IS("bcel_sum"))
        return fern_loss_bce_with_logits(NULL, NULL, FERN_REDUCTION_SUM);
#undef IS
    return NULL;
}

typedef struct {
    const char *name;
    int train;
    const char *type; /* expected cell type */
} layer_case;

static const layer_case cases[] = {
    {"linear", 1, "Linear"}, {"linear_nobias_3d", 1, "Linear"}, {"linear_1d", 1, "Linear"},
    {"dense_f32", 1, "Dense"}, {"conv1d", 1, "Conv1d"}, {"conv1d_groups_dil", 1, "Conv1d"},
    {"conv2d", 1, "Conv2d"}, {"conv2d_same_groups", 1, "Conv2d"}, {"conv2d_unbatched", 1, "Conv2d"},
    {"conv2d_f32", 1, "Conv2d"}, {"convt2d", 1, "ConvTranspose2d"}, {"convt2d_groups", 1, "ConvTranspose2d"},
    {"bn1d_train", 1, "BatchNorm1d"}, {"bn1d_3d_train", 1, "BatchNorm1d"}, {"bn2d_train", 1, "BatchNorm2d"},
    {"bn2d_cma", 1, "BatchNorm2d"}, {"bn2d_eval", 0, "BatchNorm2d"}, {"bn2d_notrack", 0, "BatchNorm2d"},
    {"bn2d_f32_train", 1, "BatchNorm2d"}, {"layernorm", 1, "LayerNorm"}, {"layernorm_noaffine", 1, "LayerNorm"},
    {"groupnorm", 1, "GroupNorm"}, {"embedding", 1, "Embedding"}, {"embedding_neg_pad", 1, "Embedding"},
    {"maxpool", 1, "MaxPool2d"}, {"maxpool_unbatched", 1, "MaxPool2d"}, {"avgpool", 1, "AvgPool2d"},
    {"avgpool_ceil", 1, "AvgPool2d"}, {"adaptive", 1, "AdaptiveAvgPool2d"}, {"flatten", 1, "Flatten"},
    {"flatten_mid", 1, "Flatten"}, {"relu", 1, "ReLU"}, {"leaky_relu", 1, "LeakyReLU"}, {"elu", 1, "ELU"},
    {"gelu", 1, "GELU"}, {"gelu_tanh", 1, "GELU"}, {"silu", 1, "SiLU"}, {"sigmoid", 1, "Sigmoid"},
    {"tanh", 1, "Tanh"}, {"softmax", 1, "Softmax"}, {"log_softmax", 1, "LogSoftmax"},
    {"identity", 1, "Identity"}, {"dropout_eval", 0, "Dropout"}, {"sequential", 1, "Sequential"},
};

static const layer_case loss_cases[] = {
    {"ce_mean", 1, "SoftmaxCrossEntropy"}, {"ce_sum_nd", 1, "SoftmaxCrossEntropy"},
    {"ce_none_probs", 1, "SoftmaxCrossEntropy"}, {"nll_mean", 1, "NLLLoss"}, {"nll_none", 1, "NLLLoss"},
    {"mse_mean", 1, "MSELoss"}, {"mse_none", 1, "MSELoss"}, {"l1_mean", 1, "L1Loss"}, {"l1_sum", 1, "L1Loss"},
    {"smoothl1_mean", 1, "SmoothL1Loss"}, {"smoothl1_none", 1, "SmoothL1Loss"},
    {"smoothl1_beta0", 1, "SmoothL1Loss"}, {"huber_mean", 1, "HuberLoss"}, {"huber_none", 1, "HuberLoss"},
    {"bce_mean", 1, "BCELoss"}, {"bce_none", 1, "BCELoss"}, {"bcel_mean", 1, "BCEWithLogitsLoss"},
    {"bcel_sum", 1, "BCEWithLogitsLoss"},
};

/* ---- the generic check ---------------------------------------------------------------- */

typedef struct {
    fern_cell *cell;
    fern_tensor *x, *target, *cot;
} probe;

static fern_tensor *call_cell(fern_cell *cell, fern_tensor *x, fern_tensor *target)
{
    if (!target)
        return fern_cell_call1(cell, x);
    fern_tensor *in[2] = {x, target}, *y = NULL;
    fern_cell_call(cell, 2, in, 1, &y);
    return y;
}

/* () -> (sum(cell(x) * cot), cell(x)); x, target and cot are captured */
static int probe_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)in;
    probe *p = ud;
    fern_tensor *y = call_cell(p->cell, p->x, p->target);
    out[0] = fern_sum(fern_mul(y, p->cot), NULL, 0, 0);
    out[1] = y;
    return out[0] ? 0 : -1;
}

static void load_sd(const char *name, fern_cell *cell)
{
    fern_checkpoint *sd = sub_checkpoint(name, "sd/");
    fern_load_report rep;
    if (fern_cell_load_state_dict(cell, sd, 1, &rep) != FERN_OK)
        fail_msg("%s: strict load failed: %s | %s", name, fern_last_error(), rep.message);
    fern_checkpoint_free(sd);
}

static void check_after(const char *name, fern_cell *cell, double rtol, const char *when)
{
    fern_checkpoint *after = sub_checkpoint(name, "after/");
    for (int i = 0; i < fern_checkpoint_count(after); i++) {
        const char *b = fern_checkpoint_name_at(after, i);
        fern_tensor *t = fern_cell_find(cell, b);
        if (!t)
            fail_msg("%s: buffer '%s' missing", name, b);
        char what[160];
        snprintf(what, sizeof what, "buffer %s after %s", b, when);
        compare(what, name, t, fern_checkpoint_tensor_at(after, i), rtol);
    }
    fern_checkpoint_free(after);
}

static fern_cell *setup_case(const layer_case *lc, fern_mode mode, double *rtol)
{
    const char *name = lc->name;
    fern_clear_error();
    fern_set_mode(mode);
    int f64 = fern_tensor_dtype(REF("%s/out", name)) == FERN_F64;
    *rtol = f64 ? 1e-9 : 1e-4;
    fern_layers_set_default_dtype(f64 ? FERN_F64 : FERN_F32);
    fern_cell *cell = make_cell(name);
    fern_layers_set_default_dtype(FERN_F32);
    if (!cell)
        fail_msg("%s: cannot build the cell: %s", name, fern_last_error());
    assert_string_equal(fern_cell_type(cell), lc->type);
    fern_cell_set_training(cell, lc->train);
    assert_int_equal(fern_cell_param_count(cell), (int64_t)fern_tensor_get_flat(REF("%s/nparams", name), 0));
    load_sd(name, cell);
    return cell;
}

/* the forward alone, as a top-level call of the cell */
static void run_forward(const layer_case *lc, fern_mode mode)
{
    const char *name = lc->name;
    double rtol;
    fern_scope_begin();
    fern_cell *cell = setup_case(lc, mode, &rtol);
    fern_tensor *y = call_cell(cell, REF("%s/in", name), ref_opt("%s/target", name));
    compare("output", name, y, REF("%s/out", name), rtol);
    check_after(name, cell, rtol, "the forward");
    fern_cell_release(cell);
    fern_scope_end();
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* value and gradients w.r.t. the input and every parameter */
static void run_grad(const layer_case *lc, fern_mode mode)
{
    const char *name = lc->name;
    double rtol;
    fern_scope_begin();
    fern_cell *cell = setup_case(lc, mode, &rtol);
    fern_tensor *x = REF("%s/in", name), *want = REF("%s/out", name);
    probe p = {cell, x, ref_opt("%s/target", name), REF("%s/cot", name)};
    int n_par = fern_cell_parameters(cell, NULL, NULL, 0);
    fern_tensor **params = calloc((size_t)n_par + 1, sizeof *params);
    const char **names = calloc((size_t)n_par + 1, sizeof *names);
    int has_gin = ref_opt("%s/gin", name) != NULL;
    if (has_gin)
        params[0] = x;
    fern_cell_parameters(cell, params + has_gin, names + has_gin, n_par);
    fern_fn *f = fern_fn_new(probe_body, &p, 0, 2);
    fern_fn *vg = fern_value_and_grad_params(f, params, n_par + has_gin);
    fern_tensor *outs[2 + 64];
    assert_true(n_par + has_gin <= 64);
    if (fern_call(vg, 0, NULL, 2 + n_par + has_gin, outs) != FERN_OK)
        fail_msg("%s (%s mode): value_and_grad failed: %s", name, mode ? "graph" : "pynative", fern_last_error());
    compare("output (with gradients)", name, outs[1], want, rtol);
    if (has_gin)
        compare("input gradient", name, outs[2], REF("%s/gin", name), rtol);
    for (int k = 0; k < n_par; k++) {
        char what[160];
        snprintf(what, sizeof what, "gradient of %s", names[has_gin + k]);
        compare(what, name, outs[2 + has_gin + k], REF("%s/grad/%s", name, names[has_gin + k]), rtol);
    }
    check_after(name, cell, rtol, "the gradient step");
    fern_fn_release(vg);
    fern_fn_release(f);
    free(params);
    free(names);
    fern_cell_release(cell);
    fern_scope_end();
    fern_set_mode(FERN_PYNATIVE_MODE);
}

#define N_CASES (sizeof cases / sizeof *cases)
#define N_LOSS_CASES (sizeof loss_cases / sizeof *loss_cases)

static void test_layers_forward(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < N_CASES; i++)
            run_forward(&cases[i], m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
}

static void test_layers_grad(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < N_CASES; i++)
            run_grad(&cases[i], m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
}

static void test_losses_forward(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < N_LOSS_CASES; i++)
            run_forward(&loss_cases[i], m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
}

static void test_losses_grad(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < N_LOSS_CASES; i++)
            run_grad(&loss_cases[i], m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
}

/* ---- batch norm: the running statistics across repeated compiled calls ------------ */

static int bn_step_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    out[0] = fern_cell_call1(ud, in[0]);
    return out[0] ? 0 : -1;
}

/* Three calls of one compiled graph update the statistics three times, like
 * three eager calls; then eval mode uses them. */
static void test_batch_norm_repeated(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_layers_set_default_dtype(FERN_F64);
    fern_cell *bn[2] = {fern_layer_batch_norm2d(3, NULL), fern_layer_batch_norm2d(3, NULL)};
    fern_layers_set_default_dtype(FERN_F32);
    fern_seed(5);
    fern_tensor *xs[3];
    for (int k = 0; k < 3; k++)
        xs[k] = fern_rand_normal(FERN_F64, 4, (int64_t[]){2, 3, 4, 4}, 0.5 * k, 1.0 + k);
    fern_fn *step[2];
    for (int m = 0; m < 2; m++) {
        step[m] = fern_fn_new(bn_step_body, bn[m], 1, 1);
        fern_set_mode(m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        for (int k = 0; k < 3; k++)
            assert_non_null(fern_call1(step[m], 1, &xs[k]));
        fern_set_mode(FERN_PYNATIVE_MODE);
    }
    fern_jit_stats st;
    fern_jit_get_stats(step[1], &st);
    assert_int_equal(st.n_compiles, 1);
    const char *bufs[3] = {"running_mean", "running_var", "num_batches_tracked"};
    for (int b = 0; b < 3; b++)
        compare(bufs[b], "bn repeated", fern_cell_find(bn[1], bufs[b]), fern_cell_find(bn[0], bufs[b]), 1e-12);
    assert_int_equal((int)fern_tensor_get_flat(fern_cell_find(bn[1], "num_batches_tracked"), 0), 3);
    /* first principles for channel 0: three EMA steps with momentum 0.1 */
    double rm = 0, rv = 1;
    for (int k = 0; k < 3; k++) {
        double s = 0, q = 0;
        int cnt = 0;
        for (int64_t n = 0; n < 2; n++)
            for (int64_t i = 0; i < 16; i++) {
                double v = fern_tensor_get_flat(xs[k], n * 48 + i);
                s += v;
                q += v * v;
                cnt++;
            }
        double mean = s / cnt, var = (q - cnt * mean * mean) / (cnt - 1);
        rm = 0.9 * rm + 0.1 * mean;
        rv = 0.9 * rv + 0.1 * var;
    }
    assert_true(fabs(fern_tensor_get_flat(fern_cell_find(bn[1], "running_mean"), 0) - rm) < 1e-12);
    assert_true(fabs(fern_tensor_get_flat(fern_cell_find(bn[1], "running_var"), 0) - rv) < 1e-12);
    /* eval mode (a fresh function: compiled graphs keep the mode they were traced in) */
    for (int m = 0; m < 2; m++)
        fern_cell_set_training(bn[m], 0);
    fern_fn *ev = fern_fn_new(bn_step_body, bn[1], 1, 1);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *y = fern_call1(ev, 1, &xs[0]);
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_tensor *want = fern_batch_norm(xs[0], fern_cell_find(bn[0], "running_mean"),
                                        fern_cell_find(bn[0], "running_var"), NULL, NULL, 0, 0.1, 1e-5);
    compare("eval output", "bn repeated", y, want, 1e-12);
    assert_int_equal((int)fern_tensor_get_flat(fern_cell_find(bn[1], "num_batches_tracked"), 0), 3);
    fern_fn_release(ev);
    for (int m = 0; m < 2; m++) {
        fern_fn_release(step[m]);
        fern_cell_release(bn[m]);
    }
    fern_scope_end();
}

/* ---- defaults and initialization ------------------------------------------------------- */

static double max_abs(const fern_tensor *t)
{
    double m = 0;
    for (int64_t i = 0; i < fern_tensor_numel(t); i++)
        m = fmax(m, fabs(fern_tensor_get_flat(t, i)));
    return m;
}

static void test_defaults(void **state)
{
    (void)state;
    fern_clear_error();
    fern_seed(11);
    fern_cell *lin = fern_layer_linear(100, 30, 1);
    fern_tensor *w = fern_cell_param(lin, "weight"), *b = fern_cell_param(lin, "bias");
    assert_int_equal(fern_tensor_dtype(w), FERN_F32);
    assert_int_equal(fern_tensor_dim(w, 0), 30);
    assert_int_equal(fern_tensor_dim(w, 1), 100);
    assert_true(max_abs(w) <= 0.1 + 1e-7 && max_abs(w) > 0.09); /* uniform(+-1/sqrt(100)) */
    assert_true(max_abs(b) <= 0.1 + 1e-7);
    assert_int_equal(fern_cell_param_count(lin), 3030);
    fern_cell_release(lin);

    fern_cell *conv = fern_layer_conv2d(4, 8, 3, 3, NULL, 1);
    double bound = 1.0 / sqrt(36.0);
    assert_true(max_abs(fern_cell_param(conv, "weight")) <= bound + 1e-7);
    assert_true(max_abs(fern_cell_param(conv, "bias")) <= bound + 1e-7);
    fern_cell_release(conv);

    fern_cell *bn = fern_layer_batch_norm2d(5, NULL);
    assert_int_equal(fern_cell_parameters(bn, NULL, NULL, 0), 2);
    assert_int_equal(fern_cell_buffers(bn, NULL, NULL, 0), 3);
    fern_tensor *nbt = fern_cell_buffer(bn, "num_batches_tracked");
    assert_int_equal(fern_tensor_dtype(nbt), FERN_I64);
    assert_int_equal(fern_tensor_ndim(nbt), 0);
    for (int64_t i = 0; i < 5; i++) {
        assert_true(fern_tensor_get_flat(fern_cell_param(bn, "weight"), i) == 1.0);
        assert_true(fern_tensor_get_flat(fern_cell_param(bn, "bias"), i) == 0.0);
        assert_true(fern_tensor_get_flat(fern_cell_buffer(bn, "running_mean"), i) == 0.0);
        assert_true(fern_tensor_get_flat(fern_cell_buffer(bn, "running_var"), i) == 1.0);
    }
    fern_cell_release(bn);

    fern_cell *emb = fern_layer_embedding(6, 4, 2);
    fern_tensor *ew = fern_cell_param(emb, "weight");
    for (int64_t j = 0; j < 4; j++)
        assert_true(fern_tensor_get_flat(ew, 2 * 4 + j) == 0.0);
    assert_true(max_abs(ew) > 0);
    fern_cell_release(emb);

    /* the layer dtype */
    assert_int_equal(fern_layers_set_default_dtype(FERN_F64), FERN_OK);
    fern_cell *ln = fern_layer_layer_norm(1, (int64_t[]){8}, 1e-5, 1);
    assert_int_equal(fern_tensor_dtype(fern_cell_param(ln, "weight")), FERN_F64);
    fern_cell_release(ln);
    assert_int_equal(fern_layers_set_default_dtype(FERN_I32), FERN_ERR_INVALID);
    assert_non_null(strstr(fern_last_error(), "float dtype"));
    fern_clear_error();
    assert_int_equal(fern_layers_default_dtype(), FERN_F64);
    fern_layers_set_default_dtype(FERN_F32);
}

/* ---- dropout ------------------------------------------------------------------------------ */

static void test_dropout_cell(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_cell *d = fern_layer_dropout(0.25);
    fern_tensor *x = fern_full(FERN_F64, 2, (int64_t[]){40, 50}, 3.0);
    for (int m = 0; m < 2; m++) {
        fern_set_mode(m ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        fern_cell *dm = m ? fern_layer_dropout(0.25) : d; /* a fresh cell per mode */
        fern_tensor *y = fern_cell_call1(dm, x);
        assert_non_null(y);
        int64_t zeros = 0;
        for (int64_t i = 0; i < 2000; i++) {
            double v = fern_tensor_get_flat(y, i);
            if (v == 0)
                zeros++;
            else
                assert_true(fabs(v - 4.0) < 1e-12); /* 3 / (1 - 0.25) */
        }
        assert_true(zeros > 400 && zeros < 600);
        fern_cell_set_training(dm, 0);
        fern_fn *f = fern_fn_new(bn_step_body, dm, 1, 1);
        fern_tensor *e = fern_call1(f, 1, &x);
        compare("eval output", "dropout", e, x, 0);
        fern_fn_release(f);
        if (m)
            fern_cell_release(dm);
        fern_set_mode(FERN_PYNATIVE_MODE);
    }
    fern_cell_release(d);
    assert_null(fern_layer_dropout(1.5));
    assert_non_null(strstr(fern_last_error(), "Dropout"));
    fern_clear_error();
    fern_scope_end();
}

/* ---- errors ----------------------------------------------------------------------------- */

static void expect_error(fern_tensor *r, const char *a, const char *b)
{
    assert_null(r);
    const char *msg = fern_last_error();
    if (!strstr(msg, a) || (b && !strstr(msg, b)))
        fail_msg("error '%s' lacks '%s' / '%s'", msg, a, b ? b : "");
    fern_clear_error();
}

static void expect_no_cell(fern_cell *c, const char *a, const char *b)
{
    assert_null(c);
    expect_error(NULL, a, b);
}

static void test_errors(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_tensor *x = fern_zeros(FERN_F32, 2, (int64_t[]){3, 6});
    fern_cell *lin = fern_layer_linear(5, 4, 1);
    expect_error(fern_cell_call1(lin, x), "Linear(in_features=5, out_features=4", "f32[3,6]");
    fern_tensor *xd = fern_zeros(FERN_F64, 2, (int64_t[]){3, 5});
    expect_error(fern_cell_call1(lin, xd), "Linear(", "f64[3,5]");
    fern_cell *conv = fern_layer_conv2d(3, 4, 3, 3, NULL, 1);
    fern_tensor *img = fern_zeros(FERN_F32, 4, (int64_t[]){1, 2, 8, 8});
    expect_error(fern_cell_call1(conv, img), "Conv2d(3, 4", "input channels");
    expect_error(fern_cell_call1(conv, x), "Conv2d(3, 4", "(N, C, H, W)");
    fern_cell *bn = fern_layer_batch_norm2d(2, NULL);
    fern_tensor *one = fern_zeros(FERN_F32, 4, (int64_t[]){1, 2, 1, 1});
    expect_error(fern_cell_call1(bn, one), "BatchNorm2d(2", "more than 1 value per channel");
    expect_error(fern_cell_call1(bn, x), "BatchNorm2d(2", "4-d input");
    fern_cell *ln = fern_layer_layer_norm(1, (int64_t[]){5}, 1e-5, 1);
    expect_error(fern_cell_call1(ln, x), "LayerNorm((5)", "normalized shape");
    fern_cell *emb = fern_layer_embedding(4, 2, FERN_NO_PADDING_IDX);
    expect_error(fern_cell_call1(emb, x), "Embedding(4, 2)", "integer indices");
    fern_cell *bce = fern_loss_bce(NULL, FERN_REDUCTION_MEAN);
    fern_tensor *in2[2] = {x, fern_zeros(FERN_F32, 1, (int64_t[]){6})}, *out = NULL;
    assert_int_not_equal(fern_cell_call(bce, 2, in2, 1, &out), FERN_OK);
    expect_error(out, "BCELoss", "prediction's shape");
    /* constructors */
    expect_no_cell(fern_layer_linear(0, 3, 1), "Linear", "positive");
    fern_conv_opts o = fern_conv_opts_default();
    o.groups = 2;
    expect_no_cell(fern_layer_conv2d(3, 4, 3, 3, &o, 1), "Conv2d", "groups");
    o = fern_conv_opts_default();
    o.stride[0] = 2;
    o.padding_same = 1;
    expect_no_cell(fern_layer_conv2d(3, 4, 3, 3, &o, 1), "Conv2d", "stride 1");
    o = fern_conv_opts_default();
    o.output_padding[0] = 1;
    expect_no_cell(fern_layer_conv_transpose2d(3, 4, 3, 3, &o, 1), "ConvTranspose2d",
                 "output_padding");
    expect_no_cell(fern_layer_group_norm(4, 6, 1e-5, 1), "GroupNorm", "divisible");
    expect_no_cell(fern_layer_embedding(4, 2, 4), "Embedding", "padding_idx");
    expect_no_cell(fern_loss_huber(FERN_REDUCTION_MEAN, 0.0), "HuberLoss", "delta");
    expect_no_cell(fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 1.5, -100),
                 "SoftmaxCrossEntropy", "label_smoothing");
    expect_no_cell(fern_layer_max_pool2d(NULL), "MaxPool2d", "opts");
    expect_no_cell(fern_with_loss(lin, lin), "WithLossCell", "2 inputs");
    fern_cell *cells[6] = {lin, conv, bn, ln, emb, bce};
    for (int i = 0; i < 6; i++)
        fern_cell_release(cells[i]);
    fern_scope_end();
}

/* ---- WithLossCell, summary ---------------------------------------------------------------- */

static void test_with_loss_and_summary(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_seed(2);
    fern_cell *net = seq3(fern_layer_linear(4, 8, 1), fern_layer_gelu(0), fern_layer_linear(8, 3, 1));
    fern_cell *ce = fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    fern_cell *wl = fern_with_loss(net, ce);
    fern_cell_release(ce); /* wl holds its own reference */
    assert_non_null(wl);
    const char *names[4];
    assert_int_equal(fern_cell_parameters(wl, NULL, names, 4), 4);
    assert_string_equal(names[0], "backbone.0.weight");
    assert_string_equal(names[3], "backbone.2.bias");
    fern_tensor *x = fern_rand_normal(FERN_F32, 2, (int64_t[]){5, 4}, 0, 1);
    fern_tensor *t = fern_from_data(FERN_I64, 1, (int64_t[]){5}, (int64_t[]){0, 2, 1, 1, 0});
    fern_tensor *in[2] = {x, t}, *loss = NULL;
    assert_int_equal(fern_cell_call(wl, 2, in, 1, &loss), FERN_OK);
    fern_tensor *want = fern_cross_entropy(fern_cell_call1(net, x), t, NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    compare("loss", "with_loss", loss, want, 1e-6);
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    fern_cell_summary(wl, mem);
    fclose(mem);
    assert_non_null(strstr(buf, "WithLossCell"));
    assert_non_null(strstr(buf, "backbone.0.weight"));
    assert_non_null(strstr(buf, "Linear"));
    assert_non_null(strstr(buf, "GELU"));
    assert_non_null(strstr(buf, "SoftmaxCrossEntropy"));
    assert_non_null(strstr(buf, "total parameters: 67"));
    free(buf);
    fern_cell_release(net);
    fern_cell_release(wl);
    fern_scope_end();
}

int main(void)
{
    const char *path = getenv("FERN_NN_REFS");
    if (!path) {
        fprintf(stderr, "set FERN_NN_REFS to nn_layers.npz written by tests/data/make_nn_refs.py\n");
        return 2;
    }
    refs = fern_npz_load(path);
    if (!refs) {
        fprintf(stderr, "%s\n", fern_last_error());
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layers_forward), cmocka_unit_test(test_losses_forward),
        cmocka_unit_test(test_layers_grad),    cmocka_unit_test(test_losses_grad),
        cmocka_unit_test(test_batch_norm_repeated), cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_dropout_cell), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_with_loss_and_summary),
    };
    int rc = cmocka_run_group_tests_name("layers", tests, NULL, NULL);
    fern_checkpoint_free(refs);
    return rc;
}
