/* bench_ops — fern's side of bench/run_ops.sh. Times a fixed list of op
 * calls and prints one machine-readable line per benchmark:
 *
 *   meta KEY VALUE
 *   result NAME MEDIAN_NS WORK UNIT REPS   (WORK UNITs per timed call:
 *                                           flop, byte or call)
 *   skip NAME REASON...
 *
 * bench/torch_ops.py prints the same names for PyTorch and
 * bench/report.py joins the two. Times are medians over repetitions
 * after a warmup; nothing here asserts on timings.
 *
 * Options: --quick (fewer repetitions), --filter WORD (only names
 * containing WORD), --threads N (like FERN_NUM_THREADS=N). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "fern/fern.h"

static int quick;
static const char *filter;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int selected(const char *name) { return !filter || strstr(name, filter); }

/* A benchmark body runs `calls` op calls (in a scope it ends itself). */
typedef struct {
    fern_tensor *in[3];
    int calls;
    int (*body)(void *b); /* 0 on success */
} bench;

/* Warm up, then time repetitions until both min_reps and ~min_s seconds
 * are reached (at most max_reps). Prints median ns per op call. */
static void run(const char *name, bench *b, double work, const char *unit, int min_reps,
                int max_reps, double min_s)
{
    if (quick) {
        min_reps = min_reps > 3 ? min_reps / 3 : 1;
        max_reps = max_reps > 3 ? max_reps / 3 : 1;
        min_s /= 4;
    }
    double warm_end = now_ns() + 0.05e9;
    int warm = 0;
    do {
        if (b->body(b)) {
            printf("skip %s failed: %s\n", name, fern_last_error());
            fern_clear_error();
            return;
        }
    } while (++warm < 2 || now_ns() < warm_end);
    double *t = malloc((size_t)max_reps * sizeof *t);
    if (!t)
        return;
    int reps = 0;
    double start = now_ns();
    while (reps < max_reps && (reps < min_reps || now_ns() - start < min_s * 1e9)) {
        double t0 = now_ns();
        b->body(b);
        t[reps++] = (now_ns() - t0) / b->calls;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    double med = reps % 2 ? t[reps / 2] : 0.5 * (t[reps / 2 - 1] + t[reps / 2]);
    printf("result %s %.1f %.0f %s %d\n", name, med, work, unit, reps);
    fflush(stdout);
    free(t);
}

/* ---- bodies --------------------------------------------------------------- */

#define BODY(fname, expr)                                                                      \
    static int fname(void *p)                                                                  \
    {                                                                                          \
        bench *b = p;                                                                          \
        fern_tensor *x = b->in[0], *y = b->in[1], *z = b->in[2];                               \
        (void)x, (void)y, (void)z;                                                             \
        int ok = 1;                                                                            \
        fern_scope_begin();                                                                    \
        for (int i = 0; i < b->calls; i++)                                                     \
            ok &= (expr) != NULL;                                                              \
        fern_scope_end();                                                                      \
        return !ok;                                                                            \
    }

BODY(body_add, fern_add(x, y))
BODY(body_mul, fern_mul(x, y))
BODY(body_exp, fern_exp(x))
BODY(body_relu, fern_relu(x))
BODY(body_sum, fern_sum(x, NULL, 0, 0))
BODY(body_matmul, fern_matmul(x, y))
BODY(body_softmax, fern_softmax(x, -1))

static fern_conv_opts conv_opts;
BODY(body_conv2d, fern_conv2d(x, y, z, &conv_opts))

/* fern_op_invoke by name: what a graph executor or importer pays. */
static int body_add_byname(void *p)
{
    bench *b = p;
    int ok = 1;
    fern_scope_begin();
    for (int i = 0; i < b->calls; i++) {
        fern_tensor *out = NULL;
        ok &= fern_op_invoke("add", 2, b->in, 0, NULL, NULL, 1, &out) == FERN_OK;
    }
    fern_scope_end();
    return !ok;
}

/* ---- inputs ----------------------------------------------------------------- */

static uint64_t lcg = 0x9e3779b97f4a7c15ull;

/* Uniform [-1, 1) f32 values from a fixed generator (independent of the
 * random ops, which may not exist yet). */
static fern_tensor *randt(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int d = 0; d < ndim; d++)
        n *= shape[d];
    float *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
        v[i] = (float)((double)(lcg >> 40) / (double)(1 << 24) * 2 - 1);
    }
    fern_tensor *t = fern_from_data(FERN_F32, ndim, shape, v);
    free(v);
    return t;
}

/* Whether to run a row: selected, and the op is in this build's registry. */
static int have(const char *name, const char *op)
{
    if (!selected(name))
        return 0;
    if (!fern_op_find(op)) {
        printf("skip %s fern has no op '%s' yet\n", name, op);
        return 0;
    }
    return 1;
}

static void release_all(bench *b)
{
    for (int i = 0; i < 3; i++) {
        fern_release(b->in[i]);
        b->in[i] = NULL;
    }
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--filter") && i + 1 < argc)
            filter = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            fern_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr,
                    "usage: bench_ops [--quick] [--filter WORD] [--threads N]\n"
                    "Prints machine-readable timings; run bench/run_ops.sh for the table.\n");
            return 2;
        }
    }
    printf("meta impl fern\nmeta version %s\nmeta threads %d\n", fern_version(),
           fern_num_threads());
    bench b = {{NULL}, 1, NULL};

    /* GEMM: C = A B, square f32 */
    static const int gemm_n[] = {256, 512, 1024, 2048};
    for (int k = 0; k < 4; k++) {
        char name[64];
        int64_t n = gemm_n[k], s[2] = {n, n};
        snprintf(name, sizeof name, "gemm_f32_%d", gemm_n[k]);
        if (!have(name, "matmul"))
            continue;
        b.in[0] = randt(2, s);
        b.in[1] = randt(2, s);
        b.calls = 1;
        b.body = body_matmul;
        run(name, &b, 2.0 * (double)n * n * n, "flop", n >= 2048 ? 5 : 9, 50, 0.5);
        release_all(&b);
    }
    /* this run's BLAS threads, after fern's matmul had a chance to set them */
    printf("meta blas_threads %d\n", openblas_get_num_threads());

    /* per-call overhead on tiny tensors: batches of 1000 calls, one scope
     * per batch (ended inside the timing: freeing is part of the cost) */
    {
        int64_t s8[1] = {8}, s88[2] = {8, 8};
        int calls = 1000, reps = 200;
        if (have("call_add_8", "add")) {
            b.in[0] = randt(1, s8);
            b.in[1] = randt(1, s8);
            b.calls = calls;
            b.body = body_add;
            run("call_add_8", &b, 1, "call", reps, reps, 0);
            if (selected("call_add_8_byname")) {
                b.body = body_add_byname;
                run("call_add_8_byname", &b, 1, "call", reps, reps, 0);
            }
            release_all(&b);
        }
        if (have("call_relu_8", "relu")) {
            b.in[0] = randt(1, s8);
            b.calls = calls;
            b.body = body_relu;
            run("call_relu_8", &b, 1, "call", reps, reps, 0);
            release_all(&b);
        }
        if (have("call_matmul_8x8", "matmul")) {
            b.in[0] = randt(2, s88);
            b.in[1] = randt(2, s88);
            b.calls = calls;
            b.body = body_matmul;
            run("call_matmul_8x8", &b, 1, "call", reps, reps, 0);
            release_all(&b);
        }
    }

    /* mid-size ops; WORK is bytes moved (read + write) or flops */
    {
        const int64_t n = 1 << 20, s1m[1] = {n};
        const double f4 = 4.0;
        struct {
            const char *name, *op;
            int n_in;
            int (*body)(void *);
            double bytes;
        } ew[] = {
            {"add_f32_1M", "add", 2, body_add, 3 * f4 * n},
            {"mul_f32_1M", "mul", 2, body_mul, 3 * f4 * n},
            {"exp_f32_1M", "exp", 1, body_exp, 2 * f4 * n},
            {"sum_f32_1M", "sum", 1, body_sum, f4 * n},
        };
        for (size_t k = 0; k < sizeof ew / sizeof *ew; k++) {
            if (!have(ew[k].name, ew[k].op))
                continue;
            for (int i = 0; i < ew[k].n_in; i++)
                b.in[i] = randt(1, s1m);
            b.calls = 1;
            b.body = ew[k].body;
            run(ew[k].name, &b, ew[k].bytes, "byte", 15, 200, 0.3);
            release_all(&b);
        }
        if (have("softmax_64x1000", "softmax")) {
            int64_t s[2] = {64, 1000};
            b.in[0] = randt(2, s);
            b.calls = 1;
            b.body = body_softmax;
            run("softmax_64x1000", &b, 2 * f4 * 64 * 1000, "byte", 15, 500, 0.3);
            release_all(&b);
        }
        if (have("conv2d_lenet", "conv2d")) {
            /* (64,1,28,28) * (6,1,5,5) + bias -> (64,6,24,24) */
            int64_t sx[4] = {64, 1, 28, 28}, sw[4] = {6, 1, 5, 5}, sb[1] = {6};
            b.in[0] = randt(4, sx);
            b.in[1] = randt(4, sw);
            b.in[2] = randt(1, sb);
            b.calls = 1;
            b.body = body_conv2d;
            conv_opts = fern_conv_opts_default();
            run("conv2d_lenet", &b, 2.0 * 64 * 6 * 24 * 24 * 25, "flop", 15, 500, 0.3);
            release_all(&b);
        }
    }
    fern_alloc_stats st = fern_alloc_get_stats(FERN_CPU);
    printf("meta leaked_bytes %zu\n", st.current_bytes);
    return 0;
}
