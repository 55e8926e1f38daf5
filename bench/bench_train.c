/* Training-step benchmark: LeNet-5 and an MLP (784-512-512-10) at batch 64,
 * and ResNet-18 (CIFAR variant, 32x32) at batch 32, in graph and pynative
 * mode: median milliseconds per step (forward, loss, backward, SGD momentum
 * update) after warm-up; plus MLP/LeNet forward-only graph vs pynative and
 * one full LeNet Fashion-MNIST epoch (data pipeline included) in graph mode.
 * Prints "train MODEL MODE MS" lines for bench/compare.py.
 *
 * usage: bench_train [--quick] [--data DIR] [--model M [--mode graph|pynative]] [--iters N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fern/fern.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct {
    fern_cell *net, *loss;
    fern_fn *vg;
    fern_optimizer *opt;
    fern_tensor **params;
    int n;
} stepper;

static int fwd_loss(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    stepper *s = ud;
    fern_tensor *logits = fern_cell_call1(s->net, in[0]);
    fern_tensor *args[2] = {logits, in[1]};
    return fern_cell_call(s->loss, 2, args, 1, out) == FERN_OK ? 0 : -1;
}

static int step_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    stepper *s = ud;
    fern_tensor *r[512];
    if (fern_call(s->vg, 2, in, 1 + s->n, r) != FERN_OK)
        return -1;
    if (fern_optim_step(s->opt, r + 1, s->n) != FERN_OK)
        return -1;
    out[0] = r[0];
    return 0;
}

static double bench_model(const char *name, fern_cell *net, fern_tensor *x, fern_tensor *y, int mode,
                          int warm, int iters)
{
    stepper s = {net, fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0, -100), NULL, NULL, NULL, 0};
    s.n = fern_cell_parameters(net, NULL, NULL, 0);
    s.params = calloc((size_t)s.n, sizeof *s.params);
    fern_cell_parameters(net, s.params, NULL, s.n);
    s.opt = fern_momentum(s.params, s.n, 0.01, 0.9, 0, 0);
    fern_fn *fl = fern_fn_new(fwd_loss, &s, 2, 1);
    s.vg = fern_value_and_grad_params(fl, s.params, s.n);
    fern_fn *step = fern_fn_new(step_body, &s, 2, 1);
    fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
    double *t = malloc(sizeof(double) * (size_t)iters);
    fern_tensor *in[2] = {x, y};
    for (int i = 0; i < warm + iters; i++) {
        fern_scope_begin();
        fern_optim_prepare(s.opt);
        double t0 = now();
        fern_tensor *loss;
        if (fern_call(step, 2, in, 1, &loss) != FERN_OK) {
            fprintf(stderr, "%s: %s\n", name, fern_last_error());
            exit(1);
        }
        if (i >= warm)
            t[i - warm] = now() - t0;
        fern_scope_end();
    }
    qsort(t, (size_t)iters, sizeof *t, cmp_d);
    double med = t[iters / 2] * 1e3;
    printf("train %s %s %.3f\n", name, mode ? "graph" : "pynative", med);
    fflush(stdout);
    fern_set_mode(FERN_PYNATIVE_MODE);
    free(t);
    fern_fn_release(step);
    fern_fn_release(s.vg);
    fern_fn_release(fl);
    fern_optim_free(s.opt);
    fern_cell_release(s.loss);
    free(s.params);
    return med;
}

static int g_iters; /* --iters: override for profiling one model */

static void one_model(const char *name, int mode, int quick)
{
    fern_seed(0);
    fern_scope_begin();
    fern_cell *net;
    fern_tensor *x, *y;
    int warm = 10, iters = quick ? 5 : 100;
    if (!strcmp(name, "lenet")) {
        net = fern_model_lenet5(1, 10);
        x = fern_rand_normal(FERN_F32, 4, (int64_t[]){64, 1, 28, 28}, 0, 1);
        y = fern_randint(0, 10, FERN_I64, 1, (int64_t[]){64});
    } else if (!strcmp(name, "mlp")) {
        int64_t hidden[2] = {512, 512};
        net = fern_model_mlp(784, hidden, 2, 10);
        x = fern_rand_normal(FERN_F32, 2, (int64_t[]){64, 784}, 0, 1);
        y = fern_randint(0, 10, FERN_I64, 1, (int64_t[]){64});
    } else {
        net = fern_model_resnet18(10, 3);
        x = fern_rand_normal(FERN_F32, 4, (int64_t[]){32, 3, 32, 32}, 0, 1);
        y = fern_randint(0, 10, FERN_I64, 1, (int64_t[]){32});
        warm = 2;
        iters = quick ? 3 : 8;
    }
    if (g_iters > 0)
        iters = g_iters;
    bench_model(name, net, x, y, mode, warm, iters);
    fern_cell_release(net);
    fern_scope_end();
}

/* ---- forward-only workloads: graph vs pynative dispatch and fusion ---- */
typedef struct {
    fern_cell *net;
} fwd_ud;

static int fwd_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    out[0] = fern_softmax(fern_cell_call1(((fwd_ud *)ud)->net, in[0]), -1);
    return out[0] ? 0 : -1;
}

/* 50 elementwise ops: the small-op workload of the graph-mode issue */
static int chain_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    fern_tensor *x = in[0];
    for (int i = 0; i < 10; i++) {
        x = fern_mul_scalar(x, 0.9);
        x = fern_add_scalar(x, 0.1);
        x = fern_tanh(x);
        x = fern_mul(x, in[0]);
        x = fern_sigmoid(x);
    }
    out[0] = x;
    return x ? 0 : -1;
}

static void time_fn(const char *name, fern_fn *f, fern_tensor *x, int iters)
{
    for (int mode = 1; mode >= 0; mode--) {
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        double *t = malloc(sizeof(double) * (size_t)iters);
        for (int i = 0; i < iters + 5; i++) {
            fern_scope_begin();
            double t0 = now();
            fern_tensor *y = fern_call1(f, 1, &x);
            if (!y) {
                fprintf(stderr, "%s: %s\n", name, fern_last_error());
                exit(1);
            }
            if (i >= 5)
                t[i - 5] = now() - t0;
            fern_scope_end();
        }
        qsort(t, (size_t)iters, sizeof *t, cmp_d);
        printf("fwd %s %s %.4f\n", name, mode ? "graph" : "pynative", t[iters / 2] * 1e3);
        free(t);
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

static void forward_benches(int quick)
{
    int iters = quick ? 50 : 300;
    fern_seed(0);
    fern_scope_begin();
    int64_t hidden[2] = {512, 512};
    fwd_ud u = {fern_model_mlp(784, hidden, 2, 10)};
    fern_fn *f = fern_fn_new(fwd_body, &u, 1, 1);
    time_fn("mlp_b1", f, fern_rand_normal(FERN_F32, 2, (int64_t[]){1, 784}, 0, 1), iters);
    time_fn("mlp_b64", f, fern_rand_normal(FERN_F32, 2, (int64_t[]){64, 784}, 0, 1), iters);
    fern_fn *c = fern_fn_new(chain_body, NULL, 1, 1);
    time_fn("chain50_1k", c, fern_rand_normal(FERN_F32, 1, (int64_t[]){1000}, 0, 1), iters);
    time_fn("chain50_1m", c, fern_rand_normal(FERN_F32, 1, (int64_t[]){1000000}, 0, 1), quick ? 5 : 20);
    fern_fn_release(c);
    fern_fn_release(f);
    fern_cell_release(u.net);
    fern_scope_end();
}

static void full_epoch(const char *dir)
{
    fern_seed(0);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_dataset *ds = fern_dataset_mnist(dir, "train");
    double mean = 0.2860, std = 0.3530;
    fern_transform *tf[2] = {fern_tf_to_tensor(), fern_tf_normalize(1, &mean, &std)};
    ds = fern_dataset_shuffle(ds, 60000);
    ds = fern_dataset_map(ds, "image", NULL, tf, 2, 2);
    ds = fern_dataset_batch(ds, 64, 0);
    fern_batch_source src = fern_data_batches(ds, "image", "label", 0);
    if (!src.ud) {
        fprintf(stderr, "epoch: %s\n", fern_last_error());
        return;
    }
    fern_cell *net = fern_model_lenet5(1, 10);
    int n = fern_cell_parameters(net, NULL, NULL, 0);
    fern_tensor **p = calloc((size_t)n, sizeof *p);
    fern_cell_parameters(net, p, NULL, n);
    fern_model *m = fern_model_new(net, fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0, -100),
                                   fern_momentum(p, n, 0.01, 0.9, 0, 0), NULL, 0);
    double t0 = now();
    if (fern_model_train(m, 1, &src, NULL, 0) != FERN_OK)
        fprintf(stderr, "epoch: %s\n", fern_last_error());
    printf("epoch lenet graph %.3f\n", (now() - t0) * 1e3);
    fern_model_free(m);
    fern_cell_release(net);
    fern_batch_source_free(&src);
    free(p);
    fern_set_mode(FERN_PYNATIVE_MODE);
}

int main(int argc, char **argv)
{
    int quick = 0;
    const char *only = NULL, *only_mode = NULL;
    const char *dir = "/usr/share/datasets/fashion-mnist";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--data") && i + 1 < argc)
            dir = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            only = argv[++i];
        else if (!strcmp(argv[i], "--mode") && i + 1 < argc)
            only_mode = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
            g_iters = atoi(argv[++i]);
        else {
            printf("usage: bench_train [--quick] [--data DIR] [--model lenet|mlp|resnet18 [--mode graph|pynative]]\n"
                   "                   [--iters N]\n"
                   "With --model, only that model's training step is timed (for profiling).\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    printf("threads %d\n", fern_num_threads());
    if (only) {
        for (int mode = 1; mode >= 0; mode--)
            if (!only_mode || !strcmp(only_mode, mode ? "graph" : "pynative"))
                one_model(only, mode, quick);
        return 0;
    }
    const char *models[3] = {"lenet", "mlp", "resnet18"};
    for (int k = 0; k < 3; k++)
        for (int mode = 1; mode >= 0; mode--)
            one_model(models[k], mode, quick);
    forward_benches(quick);
    full_epoch(dir);
    return 0;
}
