/* The model zoo against PyTorch 1.13 (reference data from
 * tests/data/make_nn_refs.py, FERN_NN_REFS=<dir>/nn_models.npz): the MNIST
 * MLP, LeNet-5 and the CIFAR ResNet-18 with torchvision's names.
 *
 * For each model, in pynative AND graph mode: the parameter count equals
 * torch's, the torch state dict loads with strict name matching, the
 * outputs (training mode: batch statistics) and the running statistics
 * after the forward match, ResNet-18's eval-mode output matches, and the
 * gradients of sum(out * cot) w.r.t. the input and the parameters match
 * (ResNet-18: a subset of the parameters, computed in float64 on both sides
 * from the float32 weights: through 20 training-mode batch norms on a batch
 * of 2 even torch's own float32 gradients are about 1% off the exact ones);
 * and training steps (forward, backward, SGD with momentum) run in both
 * modes from the same weights and give the same losses and weights.
 * Tolerance: 1e-4 relative to the reference's scale in float32, 1e-8 in
 * float64. */
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
#include "fern/models.h"

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

/* The entries "<case>/<part>..." with that prefix removed; float tensors
 * cast to dt when dt is not -1 (the casts belong to the current scope). */
static fern_checkpoint *sub_checkpoint_as(const char *case_name, const char *part, int dt)
{
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s/%s", case_name, part);
    size_t n = strlen(prefix);
    fern_checkpoint *ck = fern_checkpoint_new();
    for (int i = 0; i < fern_checkpoint_count(refs); i++) {
        const char *name = fern_checkpoint_name_at(refs, i);
        if (!strncmp(name, prefix, n)) {
            fern_tensor *t = fern_checkpoint_tensor_at(refs, i);
            if (dt >= 0 && fern_dtype_is_float(fern_tensor_dtype(t)))
                t = fern_cast(t, (fern_dtype)dt);
            fern_checkpoint_add(ck, name + n, t);
        }
    }
    return ck;
}

static fern_checkpoint *sub_checkpoint(const char *case_name, const char *part)
{
    return sub_checkpoint_as(case_name, part, -1);
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
            fail_msg("%s %s[%lld]: fern %.9g, torch %.9g (scale %g, rtol %g)", case_name, what, (long long)i, g, w,
                     scale, rtol);
    }
}

static const char *const model_names[] = {"mlp", "lenet5", "resnet18"};
#define RTOL 1e-4

static fern_cell *make_model(const char *name)
{
    if (!strcmp(name, "mlp"))
        return fern_model_mlp(784, (int64_t[]){512, 512}, 2, 10);
    if (!strcmp(name, "lenet5"))
        return fern_model_lenet5(1, 10);
    return fern_model_resnet18(10, 3);
}

static void load_sd_as(const char *name, fern_cell *cell, int dt)
{
    fern_checkpoint *sd = sub_checkpoint_as(name, "sd/", dt);
    fern_load_report rep;
    if (fern_cell_load_state_dict(cell, sd, 1, &rep) != FERN_OK)
        fail_msg("%s: strict load failed: %s | %s", name, fern_last_error(), rep.message);
    fern_checkpoint_free(sd);
}

static void load_sd(const char *name, fern_cell *cell) { load_sd_as(name, cell, -1); }

static void check_after_tol(const char *name, fern_cell *cell, const char *when, double rtol)
{
    fern_checkpoint *after = sub_checkpoint(name, "after/");
    for (int i = 0; i < fern_checkpoint_count(after); i++) {
        const char *b = fern_checkpoint_name_at(after, i);
        fern_tensor *t = fern_cell_find(cell, b);
        if (!t)
            fail_msg("%s: buffer '%s' missing", name, b);
        char what[200];
        snprintf(what, sizeof what, "buffer %s after %s", b, when);
        compare(what, name, t, fern_checkpoint_tensor_at(after, i), rtol);
    }
    fern_checkpoint_free(after);
}

static void check_after(const char *name, fern_cell *cell, const char *when)
{
    check_after_tol(name, cell, when, RTOL);
}

static fern_cell *setup(const char *name, fern_mode mode)
{
    fern_clear_error();
    fern_set_mode(mode);
    fern_seed(1);
    fern_cell *m = make_model(name);
    if (!m)
        fail_msg("%s: %s", name, fern_last_error());
    assert_int_equal(fern_cell_param_count(m), (int64_t)fern_tensor_get_flat(REF("%s/nparams", name), 0));
    load_sd(name, m);
    return m;
}

/* ---- outputs and running statistics in both modes -------------------------------------- */

static int call_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    out[0] = fern_cell_call1(ud, in[0]);
    return out[0] ? 0 : -1;
}

static void test_forward_vs_torch(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++)
        for (int k = 0; k < 3; k++) {
            const char *name = model_names[k];
            fern_scope_begin();
            fern_cell *m = setup(name, mode);
            fern_tensor *x = REF("%s/in", name);
            compare("output", name, fern_cell_call1(m, x), REF("%s/out", name), RTOL);
            check_after(name, m, "the forward");
            fern_tensor *want_eval = ref_opt("%s/out_eval", name);
            if (want_eval) {
                /* eval mode with the statistics just computed (a new function:
                 * a compiled graph keeps the mode it was traced in) */
                fern_cell_set_training(m, 0);
                fern_fn *f = fern_fn_new(call_body, m, 1, 1);
                compare("eval output", name, fern_call1(f, 1, &x), want_eval, RTOL);
                check_after(name, m, "the eval forward");
                fern_fn_release(f);
            }
            fern_cell_release(m);
            fern_scope_end();
            fern_set_mode(FERN_PYNATIVE_MODE);
        }
}

/* ---- gradients --------------------------------------------------------------------------- */

typedef struct {
    fern_cell *cell;
    fern_tensor *x, *cot;
} probe;

static int probe_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)in;
    probe *p = ud;
    fern_tensor *y = fern_cell_call1(p->cell, p->x);
    out[0] = fern_sum(fern_mul(y, p->cot), NULL, 0, 0);
    out[1] = y;
    return out[0] ? 0 : -1;
}

/* gradient cases: reference name, the model, the state dict's case, dtype */
static const struct {
    const char *name, *model, *sd;
    fern_dtype dt;
} grad_cases[] = {
    {"mlp", "mlp", "mlp", FERN_F32},
    {"lenet5", "lenet5", "lenet5", FERN_F32},
    {"resnet18_f64", "resnet18", "resnet18", FERN_F64},
};

static void test_grads_vs_torch(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++)
        for (size_t k = 0; k < sizeof grad_cases / sizeof *grad_cases; k++) {
            const char *name = grad_cases[k].name;
            int f64 = grad_cases[k].dt == FERN_F64;
            double rtol = f64 ? 1e-8 : RTOL;
            fern_scope_begin();
            fern_clear_error();
            fern_set_mode(mode);
            fern_layers_set_default_dtype(grad_cases[k].dt);
            fern_cell *m = make_model(grad_cases[k].model);
            fern_layers_set_default_dtype(FERN_F32);
            if (!m)
                fail_msg("%s: %s", name, fern_last_error());
            assert_int_equal(fern_cell_param_count(m), (int64_t)fern_tensor_get_flat(REF("%s/nparams", name), 0));
            load_sd_as(grad_cases[k].sd, m, f64 ? FERN_F64 : -1);
            probe p = {m, REF("%s/in", name), REF("%s/cot", name)};
            /* the input, then the parameters torch kept gradients for */
            int n_all = fern_cell_parameters(m, NULL, NULL, 0);
            fern_tensor **all = calloc((size_t)n_all, sizeof *all), **params = calloc((size_t)n_all + 1, sizeof *params);
            const char **all_names = calloc((size_t)n_all, sizeof *all_names),
                       **names = calloc((size_t)n_all + 1, sizeof *names);
            fern_cell_parameters(m, all, all_names, n_all);
            int n = 0;
            params[n] = p.x;
            names[n++] = "input";
            for (int i = 0; i < n_all; i++)
                if (ref_opt("%s/grad/%s", name, all_names[i])) {
                    params[n] = all[i];
                    names[n++] = all_names[i];
                }
            assert_true(n >= 4);
            fern_fn *f = fern_fn_new(probe_body, &p, 0, 2);
            fern_fn *vg = fern_value_and_grad_params(f, params, n);
            fern_tensor **outs = calloc((size_t)n + 2, sizeof *outs);
            if (fern_call(vg, 0, NULL, n + 2, outs) != FERN_OK)
                fail_msg("%s (%s mode): %s", name, mode ? "graph" : "pynative", fern_last_error());
            compare("output (with gradients)", name, outs[1], REF("%s/out", name), rtol);
            compare("input gradient", name, outs[2], REF("%s/gin", name), rtol);
            for (int i = 1; i < n; i++) {
                char what[160];
                snprintf(what, sizeof what, "gradient of %s", names[i]);
                compare(what, name, outs[2 + i], REF("%s/grad/%s", name, names[i]), rtol);
            }
            check_after_tol(name, m, "the gradient step", rtol);
            fern_fn_release(vg);
            fern_fn_release(f);
            free(outs);
            free(all);
            free(params);
            free(all_names);
            free(names);
            fern_cell_release(m);
            fern_scope_end();
            fern_set_mode(FERN_PYNATIVE_MODE);
        }
}

/* ---- training steps in both modes ---------------------------------------------------------- */

typedef struct {
    fern_fn *vg; /* (x, labels) -> loss, gradients */
    fern_optimizer *opt;
    int n;
} trainer;

static int train_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    trainer *tr = ud;
    fern_tensor *o[128];
    if (fern_call(tr->vg, 2, in, tr->n + 1, o) != FERN_OK)
        return -1;
    if (fern_optim_step(tr->opt, o + 1, tr->n) != FERN_OK)
        return -1;
    out[0] = o[0];
    return 0;
}

#define N_STEPS 3

static void test_training_steps(void **state)
{
    (void)state;
    for (int k = 0; k < 3; k++) {
        const char *name = model_names[k];
        double losses[2][N_STEPS];
        fern_cell *nets[2];
        fern_scope_begin();
        fern_tensor *x = REF("%s/in", name);
        int64_t batch = fern_tensor_dim(x, 0);
        fern_tensor *labels = fern_empty(FERN_I64, 1, &batch);
        for (int64_t i = 0; i < batch; i++)
            fern_tensor_set(labels, &i, (double)((3 * i + 1) % 10));
        for (int mode = 0; mode < 2; mode++) {
            nets[mode] = setup(name, mode);
            fern_cell *ce = fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0.0, -100);
            fern_cell *wl = fern_with_loss(nets[mode], ce);
            fern_cell_release(ce);
            assert_non_null(wl);
            int n = fern_cell_parameters(wl, NULL, NULL, 0);
            assert_true(n <= 127);
            fern_tensor **ps = calloc((size_t)n, sizeof *ps);
            fern_cell_parameters(wl, ps, NULL, n);
            trainer tr = {fern_value_and_grad_params(fern_cell_as_fn(wl), ps, n),
                          fern_sgd(ps, n, 0.01, 0.9, 0.0, 1e-4, 0), n};
            assert_non_null(tr.vg);
            assert_non_null(tr.opt);
            fern_fn *step = fern_fn_new(train_body, &tr, 2, 1);
            fern_tensor *in[2] = {x, labels};
            for (int s = 0; s < N_STEPS; s++) {
                fern_optim_prepare(tr.opt);
                fern_tensor *loss = NULL;
                if (fern_call(step, 2, in, 1, &loss) != FERN_OK)
                    fail_msg("%s step %d (%s mode): %s", name, s, mode ? "graph" : "pynative", fern_last_error());
                losses[mode][s] = fern_tensor_get_flat(loss, 0);
                assert_true(isfinite(losses[mode][s]));
            }
            fern_set_mode(FERN_PYNATIVE_MODE);
            if (mode) {
                fern_jit_stats st;
                fern_jit_get_stats(step, &st);
                assert_int_equal(st.n_compiles, 1);
            }
            assert_int_equal(fern_optim_step_count(tr.opt), N_STEPS);
            /* one batch, small steps: the loss goes down */
            assert_true(losses[mode][N_STEPS - 1] < losses[mode][0]);
            fern_fn_release(step);
            fern_fn_release(tr.vg);
            fern_optim_free(tr.opt);
            free(ps);
            fern_cell_release(wl);
        }
        /* both modes took the same steps */
        for (int s = 0; s < N_STEPS; s++)
            if (!(fabs(losses[0][s] - losses[1][s]) <= 1e-4 * (1 + fabs(losses[0][s]))))
                fail_msg("%s step %d: pynative loss %.9g, graph loss %.9g", name, s, losses[0][s], losses[1][s]);
        int n = fern_cell_parameters(nets[0], NULL, NULL, 0);
        fern_tensor **p0 = calloc((size_t)n, sizeof *p0), **p1 = calloc((size_t)n, sizeof *p1);
        const char **names = calloc((size_t)n, sizeof *names);
        fern_cell_parameters(nets[0], p0, names, n);
        fern_cell_parameters(nets[1], p1, NULL, n);
        for (int i = 0; i < n; i++) {
            char what[160];
            snprintf(what, sizeof what, "%s after %d steps (graph vs pynative)", names[i], N_STEPS);
            compare(what, name, p1[i], p0[i], RTOL);
        }
        fern_tensor *nbt = fern_cell_find(nets[1], "bn1.num_batches_tracked");
        if (nbt)
            assert_int_equal((int)fern_tensor_get_flat(nbt, 0), N_STEPS);
        free(p0);
        free(p1);
        free(names);
        fern_cell_release(nets[0]);
        fern_cell_release(nets[1]);
        fern_scope_end();
    }
}

/* ---- structure ------------------------------------------------------------------------------ */

static void test_structure(void **state)
{
    (void)state;
    fern_clear_error();
    fern_seed(3);
    fern_cell *r = fern_model_resnet18(10, 3);
    assert_non_null(r);
    assert_int_equal(fern_cell_param_count(r), 11173962);
    assert_string_equal(fern_cell_type(r), "ResNet");
    fern_cell *block = fern_cell_child(fern_cell_child(r, "layer2"), "0");
    assert_string_equal(fern_cell_type(block), "BasicBlock");
    assert_string_equal(fern_cell_type(fern_cell_child(block, "downsample")), "Sequential");
    assert_non_null(fern_cell_find(r, "layer2.0.downsample.0.weight"));
    assert_null(fern_cell_find(r, "layer1.0.downsample.0.weight"));
    assert_non_null(fern_cell_find(r, "layer4.1.bn2.running_var"));
    /* torchvision's init: conv weights N(0, sqrt(2 / fan_out)), bn weight 1 */
    fern_tensor *w = fern_cell_find(r, "layer3.0.conv1.weight"); /* (256, 128, 3, 3): fan_out 2304 */
    double s = 0, q = 0;
    int64_t n = fern_tensor_numel(w);
    for (int64_t i = 0; i < n; i++) {
        double v = fern_tensor_get_flat(w, i);
        s += v;
        q += v * v;
    }
    double sd = sqrt(q / (double)n - (s / (double)n) * (s / (double)n));
    assert_true(fabs(sd - sqrt(2.0 / 2304.0)) < 0.02 * sqrt(2.0 / 2304.0));
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    fern_cell_summary(r, mem);
    fclose(mem);
    assert_non_null(strstr(buf, "layer2.0.downsample.1"));
    assert_non_null(strstr(buf, "BasicBlock"));
    assert_non_null(strstr(buf, "BatchNorm2d"));
    assert_non_null(strstr(buf, "AdaptiveAvgPool2d"));
    assert_non_null(strstr(buf, "total parameters: 11173962"));
    free(buf);
    fern_cell_release(r);

    fern_cell *r34 = fern_model_resnet34(100, 3);
    assert_int_equal(fern_cell_param_count(r34), 21328292); /* torch: CIFAR ResNet-34, 100 classes */
    fern_cell_release(r34);

    fern_cell *l = fern_model_lenet5(3, 7);
    assert_int_equal(fern_cell_param_count(l), 3 * 6 * 25 + 6 + 6 * 16 * 25 + 16 + 400 * 120 + 120 + 120 * 84 + 84 +
                                                   84 * 7 + 7);
    fern_scope_begin();
    fern_tensor *bad = fern_zeros(FERN_F32, 4, (int64_t[]){1, 3, 32, 32});
    assert_null(fern_cell_call1(l, bad));
    assert_non_null(strstr(fern_last_error(), "LeNet5"));
    assert_non_null(strstr(fern_last_error(), "(N, 3, 28, 28)"));
    fern_clear_error();
    fern_scope_end();
    fern_cell_release(l);

    fern_cell *m = fern_model_mlp(3, NULL, 0, 2);
    assert_int_equal(fern_cell_param_count(m), 8);
    assert_int_equal(fern_cell_n_children(m), 1);
    fern_cell_release(m);
    assert_null(fern_model_mlp(3, NULL, 2, 2));
    assert_non_null(strstr(fern_last_error(), "model_mlp"));
    fern_clear_error();
    assert_null(fern_model_resnet18(0, 3));
    fern_clear_error();
}

int main(void)
{
    const char *path = getenv("FERN_NN_REFS");
    if (!path) {
        fprintf(stderr, "set FERN_NN_REFS to nn_models.npz written by tests/data/make_nn_refs.py\n");
        return 2;
    }
    refs = fern_npz_load(path);
    if (!refs) {
        fprintf(stderr, "%s\n", fern_last_error());
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_structure),
        cmocka_unit_test(test_forward_vs_torch),
        cmocka_unit_test(test_grads_vs_torch),
        cmocka_unit_test(test_training_steps),
    };
    int rc = cmocka_run_group_tests_name("models", tests, NULL, NULL);
    fern_checkpoint_free(refs);
    return rc;
}
