/* The Model API: training converges in both modes; metrics against hand
 * computed values; checkpoint callbacks rotate files; resuming from a
 * checkpoint (mid-run, with dropout) reproduces uninterrupted training bit
 * for bit; early stopping stops. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fern/fern.h"

/* ---- a tiny network: dropout -> linear, as a custom cell ----------------- */
static int lin_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    (void)n_in;
    (void)n_out;
    fern_tensor *x = fern_dropout(in[0], 0.2, fern_cell_training(self));
    fern_tensor *w = fern_cell_param(self, "weight"), *b = fern_cell_param(self, "bias");
    out[0] = fern_add(fern_matmul(x, fern_transpose(w, 0, 1)), b);
    return out[0] ? 0 : -1;
}

static fern_cell *linear(int in, int outc)
{
    fern_cell *c = fern_cell_new("TinyLinear", lin_forward, 1, 1, NULL, NULL);
    fern_tensor *w = fern_rand_normal(FERN_F32, 2, (int64_t[]){outc, in}, 0, 0.1);
    fern_tensor *b = fern_zeros(FERN_F32, 1, (int64_t[]){outc});
    fern_cell_add_param(c, "weight", w);
    fern_cell_add_param(c, "bias", b);
    fern_release(w);
    fern_release(b);
    return c;
}

static int ce_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    (void)self;
    (void)n_in;
    (void)n_out;
    out[0] = fern_cross_entropy(in[0], in[1], NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    return out[0] ? 0 : -1;
}

/* three Gaussian blobs in 4-d */
static void blobs(int n, fern_tensor **x, fern_tensor **y)
{
    fern_seed(123);
    float *xs = malloc(sizeof(float) * (size_t)n * 4);
    int64_t *ys = malloc(sizeof(int64_t) * (size_t)n);
    fern_tensor *noise = fern_rand_normal(FERN_F32, 2, (int64_t[]){n, 4}, 0, 0.5);
    const float centers[3][4] = {{2, 0, 0, 1}, {0, 2, 0, -1}, {0, 0, 2, 0}};
    for (int i = 0; i < n; i++) {
        ys[i] = i % 3;
        for (int d = 0; d < 4; d++)
            xs[i * 4 + d] = centers[i % 3][d] + (float)fern_tensor_get_flat(noise, i * 4 + d);
    }
    *x = fern_from_data(FERN_F32, 2, (int64_t[]){n, 4}, xs);
    *y = fern_from_data(FERN_I64, 1, (int64_t[]){n}, ys);
    fern_release(noise);
    free(xs);
    free(ys);
}

static fern_model *make_model(void)
{
    fern_seed(7);
    fern_cell *net = linear(4, 3);
    fern_cell *loss = fern_cell_new("CrossEntropy", ce_forward, 2, 1, NULL, NULL);
    fern_tensor *params[2];
    fern_cell_parameters(net, params, NULL, 2);
    fern_optimizer *opt = fern_momentum(params, 2, 0.1, 0.9, 0, 0);
    fern_metric *ms[2] = {fern_metric_f1(3), fern_metric_confusion_matrix(3)};
    fern_model *m = fern_model_new(net, loss, opt, ms, 2);
    fern_cell_release(net);
    fern_cell_release(loss);
    return m;
}

typedef struct {
    double losses[512];
    int n;
} recorder;

static void record(void *ud, fern_train_state *s)
{
    recorder *r = ud;
    if (r->n < 512)
        r->losses[r->n++] = s->loss;
}

static void test_converges_both_modes(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        fern_clear_error();
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        fern_tensor *x, *y;
        blobs(300, &x, &y);
        fern_batch_source train = fern_tensor_batches(x, y, 32, 1, 99, 0);
        fern_batch_source test = fern_tensor_batches(x, y, 64, 0, 0, 0);
        fern_model *m = make_model();
        fern_model_set_eval_source(m, &test);
        fern_model_set_quiet(m, 1);
        if (fern_model_train(m, 8, &train, NULL, 0) != FERN_OK)
            fail_msg("mode %d: %s", mode, fern_last_error());
        double loss, acc;
        assert_int_equal(fern_model_eval(m, &test, &loss, &acc), FERN_OK);
        if (!(acc > 0.95))
            fail_msg("mode %d: accuracy %.3f", mode, acc);
        fern_tensor *pred = fern_model_predict(m, x);
        assert_int_equal(fern_tensor_dim(pred, 1), 3);
        fern_release(pred);
        fern_model_free(m);
        fern_batch_source_free(&train);
        fern_batch_source_free(&test);
        fern_release(x);
        fern_release(y);
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

static void test_metrics(void **state)
{
    (void)state;
    fern_clear_error();
    /* predictions 0,1,1,2,2,0 for labels 0,1,2,2,1,0 */
    float lg[6][3] = {{3, 0, 0}, {0, 3, 0}, {0, 3, 0}, {0, 0, 3}, {0, 0, 3}, {3, 0, 0}};
    int64_t lab[6] = {0, 1, 2, 2, 1, 0};
    fern_tensor *l = fern_from_data(FERN_F32, 2, (int64_t[]){6, 3}, lg);
    fern_tensor *y = fern_from_data(FERN_I64, 1, (int64_t[]){6}, lab);
    fern_metric *acc = fern_metric_accuracy(), *p = fern_metric_precision(3), *r = fern_metric_recall(3);
    fern_metric *f = fern_metric_f1(3), *cm = fern_metric_confusion_matrix(3), *t2 = fern_metric_topk(2);
    fern_metric *all[6] = {acc, p, r, f, cm, t2};
    for (int i = 0; i < 6; i++)
        assert_int_equal(fern_metric_update(all[i], l, y, NULL), FERN_OK);
    assert_true(fabs(fern_metric_value(acc) - 4.0 / 6) < 1e-12);
    /* per class precision 1, .5, .5; recall 1, .5, .5 */
    assert_true(fabs(fern_metric_value(p) - 2.0 / 3) < 1e-12);
    assert_true(fabs(fern_metric_value(r) - 2.0 / 3) < 1e-12);
    assert_true(fabs(fern_metric_value(f) - 2.0 / 3) < 1e-12);
    const int64_t *c;
    assert_int_equal(fern_metric_confusion(cm, &c), 3);
    assert_int_equal(c[2 * 3 + 1], 1); /* true 2 predicted 1 */
    /* ties rank the lower class index first (torch.topk): rows 2 and 4 miss */
    assert_true(fabs(fern_metric_value(t2) - 4.0 / 6) < 1e-12);
    for (int i = 0; i < 6; i++)
        fern_metric_free(all[i]);
    fern_release(l);
    fern_release(y);
}

static void test_resume_is_exact(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        fern_clear_error();
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        char dir[] = "/tmp/fern-train-XXXXXX";
        assert_non_null(mkdtemp(dir));
        fern_tensor *x, *y;
        blobs(90, &x, &y);
        /* uninterrupted: 4 epochs */
        recorder full = {{0}, 0};
        fern_batch_source data = fern_tensor_batches(x, y, 16, 1, 5, 0);
        fern_model *m = make_model();
        fern_model_set_quiet(m, 1);
        fern_seed(2024);
        fern_callback cb = fern_cb_lambda(record, &full);
        assert_int_equal(fern_model_train(m, 4, &data, &cb, 1), FERN_OK);
        fern_model_free(m);
        /* interrupted: checkpoint every 4 steps, stop after epoch 2, resume */
        recorder part = {{0}, 0};
        m = make_model();
        fern_seed(2024);
        fern_callback cbs[2] = {fern_cb_lambda(record, &part), fern_cb_checkpoint(m, dir, "run", 4, 0, 2)};
        assert_int_equal(fern_model_train(m, 2, &data, cbs, 2), FERN_OK);
        cbs[1].free(cbs[1].ud);
        fern_model_free(m);
        /* 2 epochs of 6 steps: checkpoints at steps 4, 8, 12; only 2 kept */
        char *latest = fern_latest_checkpoint(dir, "run");
        assert_non_null(latest);
        assert_non_null(strstr(latest, "run-s12.fckpt"));
        char old[600];
        snprintf(old, sizeof old, "%s/run-s4.fckpt", dir);
        assert_int_not_equal(access(old, F_OK), 0);
        /* resume from the step-8 checkpoint (mid-epoch) and finish */
        snprintf(old, sizeof old, "%s/run-s8.fckpt", dir);
        fern_seed(1); /* the checkpoint restores the generator */
        m = make_model();
        assert_int_equal(fern_model_load(m, old), FERN_OK);
        part.n = 8;
        cb = fern_cb_lambda(record, &part);
        assert_int_equal(fern_model_train(m, 4, &data, &cb, 1), FERN_OK);
        assert_int_equal(part.n, full.n);
        for (int i = 0; i < full.n; i++)
            if (part.losses[i] != full.losses[i])
                fail_msg("mode %d step %d: resumed %.9g vs uninterrupted %.9g", mode, i + 1, part.losses[i],
                         full.losses[i]);
        fern_model_free(m);
        free(latest);
        fern_batch_source_free(&data);
        fern_release(x);
        fern_release(y);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        assert_int_equal(system(cmd), 0);
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

static void test_early_stopping(void **state)
{
    (void)state;
    fern_clear_error();
    fern_tensor *x, *y;
    blobs(60, &x, &y);
    fern_batch_source data = fern_tensor_batches(x, y, 60, 0, 0, 0);
    fern_model *m = make_model();
    fern_model_set_quiet(m, 1);
    /* min_delta so large nothing counts as an improvement: stops after patience */
    fern_callback cb = fern_cb_early_stopping("loss", 2, 1e9, 0);
    assert_int_equal(fern_model_train(m, 50, &data, &cb, 1), FERN_OK);
    assert_true(fern_model_epoch(m) <= 3);
    cb.free(cb.ud);
    fern_model_free(m);
    fern_batch_source_free(&data);
    fern_release(x);
    fern_release(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_converges_both_modes), cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_resume_is_exact),      cmocka_unit_test(test_early_stopping),
    };
    return cmocka_run_group_tests_name("train", tests, NULL, NULL);
}
