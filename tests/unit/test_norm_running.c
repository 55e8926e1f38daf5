/* fern_batch_norm's in-place update of the running statistics (the op
 * reference harness only sees op outputs, so the public function's side
 * effect is tested here): running = (1 - momentum) * running + momentum *
 * batch_stat, with the UNBIASED batch variance, like torch. Expected values
 * are computed here from first principles in double, or hard-coded from a
 * PyTorch 1.13 run (quoted below).
 *
 * Also the gradient side the harness cannot see: training-mode gradients go
 * through the fused batch_norm_backward op, which (like the forward) gives
 * identical bits at any thread count, and second-order gradients through
 * batch norm match finite differences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

static fern_tensor *vec_f32(int64_t n, const float *v)
{
    return fern_from_data(FERN_F32, 1, &n, v);
}

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol + tol * fabs(want)))
        fail_msg("got %.9g, expected %.9g (tol %g)", got, want, tol);
}

/* Batch mean and unbiased variance of channel c of a contiguous (N, C, S). */
static void channel_stats(const double *x, int64_t N, int64_t C, int64_t S, int64_t c,
                          double *mean, double *var_unbiased, double *var_biased)
{
    double s = 0, q = 0;
    int64_t cnt = N * S;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < S; k++)
            s += x[(n * C + c) * S + k];
    double m = s / (double)cnt;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < S; k++) {
            double d = x[(n * C + c) * S + k] - m;
            q += d * d;
        }
    *mean = m;
    *var_biased = q / (double)cnt;
    *var_unbiased = q / (double)(cnt - 1);
}

/* First principles, (N, C) input, f32. */
static void test_update_2d(void **state)
{
    (void)state;
    const double xv[4 * 3] = {0.5, -1.0, 2.0, 1.5, 3.0, -2.0, -0.25, 0.0, 1.0, 2.25, 1.0, 4.0};
    float xf[12];
    for (int i = 0; i < 12; i++)
        xf[i] = (float)xv[i];
    int64_t shape[2] = {4, 3};
    fern_tensor *x = fern_from_data(FERN_F32, 2, shape, xf);
    const float rm0[3] = {0.0f, 1.0f, -1.0f}, rv0[3] = {1.0f, 0.5f, 2.0f};
    fern_tensor *rm = vec_f32(3, rm0), *rv = vec_f32(3, rv0);
    const double mom = 0.1, eps = 1e-5;
    fern_tensor *y = fern_batch_norm(x, rm, rv, NULL, NULL, 1, mom, eps);
    assert_non_null(y);
    for (int64_t c = 0; c < 3; c++) {
        double m, vu, vb;
        channel_stats(xv, 4, 3, 1, c, &m, &vu, &vb);
        assert_close(fern_tensor_get(rm, &c), (1 - mom) * rm0[c] + mom * m, 1e-6);
        assert_close(fern_tensor_get(rv, &c), (1 - mom) * rv0[c] + mom * vu, 1e-6);
        for (int64_t n = 0; n < 4; n++) {
            int64_t idx[2] = {n, c};
            assert_close(fern_tensor_get(y, idx), (xv[n * 3 + c] - m) / sqrt(vb + eps), 1e-5);
        }
    }
    fern_release(y);
    fern_release(x);
    fern_release(rm);
    fern_release(rv);
}

/* Hard-coded from PyTorch 1.13:
 *   x = (torch.arange(24.).reshape(2,3,2,2) * 0.37 - 2.0) ** 2 * 0.1
 *   rm = torch.tensor([0.5, -1.0, 2.0]); rv = torch.tensor([1.0, 2.0, 0.5])
 *   w = torch.tensor([1.5, 0.5, -1.0]); b = torch.tensor([0.1, 0.2, 0.3])
 *   y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2, eps=1e-3)
 * (x's values printed by torch are pasted below.) */
static void test_update_torch_4d(void **state)
{
    (void)state;
    const float xf[24] = {
        0.4000000059604645f,  0.26568999886512756f, 0.15875999629497528f, 0.07920999825000763f,
        0.02703999914228916f, 0.002249999437481165f, 0.004840000998228788f, 0.03481001779437065f,
        0.09216000884771347f, 0.17688998579978943f, 0.289000004529953f,   0.4284900724887848f,
        0.5953600406646729f,  0.789609968662262f,   1.0112402439117432f,  1.2602500915527344f,
        1.5366400480270386f,  1.8404101133346558f,  2.171560049057007f,   2.530090093612671f,
        2.9160001277923584f,  3.3292901515960693f,  3.769960403442383f,   4.238010406494141f};
    const float want_rm[3] = {0.5140030384063721f, -0.5963090062141418f, 1.9809950590133667f};
    const float want_rv[3] = {0.8357573747634888f, 1.844839096069336f, 1.058172345161438f};
    const float want_y[24] = {
        -0.5427221655845642f, -1.05046546459198f,    -1.4547019004821777f,  -1.7554314136505127f,
        -0.27873313426971436f, -0.290703684091568f,  -0.28945302963256836f, -0.27498114109039307f,
        1.3681182861328125f,  1.3181949853897095f,   1.2521393299102783f,   1.1699512004852295f,
        0.19581371545791626f, 0.930152952671051f,    1.7680003643035889f,   2.70935320854187f,
        0.4502204656600952f,  0.5969045758247375f,   0.7568097710609436f,   0.9299362897872925f,
        -0.2957000136375427f, -0.5392122268676758f,  -0.7988569140434265f,  -1.0746339559555054f};
    const float rm0[3] = {0.5f, -1.0f, 2.0f}, rv0[3] = {1.0f, 2.0f, 0.5f};
    const float wv[3] = {1.5f, 0.5f, -1.0f}, bv[3] = {0.1f, 0.2f, 0.3f};
    int64_t shape[4] = {2, 3, 2, 2};
    fern_scope_begin();
    fern_tensor *x = fern_from_data(FERN_F32, 4, shape, xf);
    fern_tensor *rm = vec_f32(3, rm0), *rv = vec_f32(3, rv0);
    fern_tensor *y = fern_batch_norm(x, rm, rv, vec_f32(3, wv), vec_f32(3, bv), 1, 0.2, 1e-3);
    assert_non_null(y);
    for (int64_t c = 0; c < 3; c++) {
        assert_close(fern_tensor_get(rm, &c), want_rm[c], 1e-6);
        assert_close(fern_tensor_get(rv, &c), want_rv[c], 1e-6);
    }
    for (int64_t i = 0; i < 24; i++)
        assert_close(fern_tensor_get_flat(y, i), want_y[i], 1e-5);
    fern_scope_end();
}

/* Inference reads the running stats and leaves them alone; training
 * without running stats works; an empty batch updates nothing (torch). */
static void test_no_update_cases(void **state)
{
    (void)state;
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_scope_begin();
    const float rm0[2] = {0.25f, -0.5f}, rv0[2] = {2.0f, 0.5f};
    fern_tensor *rm = vec_f32(2, rm0), *rv = vec_f32(2, rv0);
    int64_t shape[3] = {3, 2, 2};
    const float xf[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    fern_tensor *x = fern_from_data(FERN_F32, 3, shape, xf);
    fern_tensor *y = fern_batch_norm(x, rm, rv, NULL, NULL, 0, 0.1, 1e-5);
    assert_non_null(y);
    for (int64_t c = 0; c < 2; c++) {
        assert_true(fern_tensor_get(rm, &c) == rm0[c]);
        assert_true(fern_tensor_get(rv, &c) == rv0[c]);
    }
    int64_t i0[3] = {1, 1, 0}; /* x = 7, channel 1 */
    assert_close(fern_tensor_get(y, i0), (7.0 - rm0[1]) / sqrt(rv0[1] + 1e-5), 1e-6);

    assert_non_null(fern_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1, 1e-5));

    int64_t eshape[3] = {0, 2, 2};
    fern_tensor *e = fern_empty(FERN_F32, 3, eshape);
    fern_tensor *ye = fern_batch_norm(e, rm, rv, NULL, NULL, 1, 0.1, 1e-5);
    assert_non_null(ye);
    assert_int_equal(fern_tensor_numel(ye), 0);
    for (int64_t c = 0; c < 2; c++) {
        assert_true(fern_tensor_get(rm, &c) == rm0[c]);
        assert_true(fern_tensor_get(rv, &c) == rv0[c]);
    }
    fern_scope_end();
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).current_bytes, before);
}

/* f64 stats, and running stats that are strided views: only the viewed
 * elements change. */
static void test_f64_strided_running(void **state)
{
    (void)state;
    fern_scope_begin();
    const double xv[6 * 2] = {0.1, 5.0, -0.7, 4.0, 2.2, 3.5, 1.0, -1.0, 0.0, 0.25, -3.0, 8.0};
    int64_t shape[2] = {6, 2};
    fern_tensor *x = fern_from_data(FERN_F64, 2, shape, xv);
    double rmb[4] = {1.0, 99.0, 2.0, 99.0}, rvb[4] = {3.0, 99.0, 4.0, 99.0};
    int64_t four = 4;
    fern_tensor *rm_base = fern_from_data(FERN_F64, 1, &four, rmb);
    fern_tensor *rv_base = fern_from_data(FERN_F64, 1, &four, rvb);
    fern_tensor *rm = fern_slice(rm_base, 0, 0, 4, 2), *rv = fern_slice(rv_base, 0, 0, 4, 2);
    assert_non_null(fern_batch_norm(x, rm, rv, NULL, NULL, 1, 0.75, 1e-5));
    for (int64_t c = 0; c < 2; c++) {
        double m, vu, vb;
        channel_stats(xv, 6, 2, 1, c, &m, &vu, &vb);
        int64_t at = 2 * c, skip = 2 * c + 1;
        assert_close(fern_tensor_get(rm_base, &at), 0.25 * rmb[2 * c] + 0.75 * m, 1e-12);
        assert_close(fern_tensor_get(rv_base, &at), 0.25 * rvb[2 * c] + 0.75 * vu, 1e-12);
        assert_true(fern_tensor_get(rm_base, &skip) == 99.0);
        assert_true(fern_tensor_get(rv_base, &skip) == 99.0);
    }
    fern_scope_end();
}

/* f16 input with f32 running stats: the statistics behind the update keep
 * f32 precision (the batch itself is f16-rounded first). */
static void test_half_input_f32_running(void **state)
{
    (void)state;
    fern_scope_begin();
    enum { N = 8, C = 2 };
    double xv[N * C];
    uint16_t xh[N * C];
    for (int i = 0; i < N * C; i++) {
        xh[i] = fern_f32_to_f16((float)(0.3 * i - 1.7 + 0.01 * i * i));
        xv[i] = fern_f16_to_f32(xh[i]);
    }
    int64_t shape[2] = {N, C};
    fern_tensor *x = fern_from_data(FERN_F16, 2, shape, xh);
    const float rm0[C] = {0.5f, 0.5f}, rv0[C] = {1.0f, 1.0f};
    fern_tensor *rm = vec_f32(C, rm0), *rv = vec_f32(C, rv0);
    fern_tensor *y = fern_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1, 1e-5);
    assert_non_null(y);
    assert_int_equal(fern_tensor_dtype(y), FERN_F16);
    for (int64_t c = 0; c < C; c++) {
        double m, vu, vb;
        channel_stats(xv, N, C, 1, c, &m, &vu, &vb);
        assert_close(fern_tensor_get(rm, &c), 0.9 * rm0[c] + 0.1 * m, 1e-6);
        assert_close(fern_tensor_get(rv, &c), 0.9 * rv0[c] + 0.1 * vu, 1e-6);
    }
    fern_scope_end();
}

/* Errors leave the running stats untouched and name the op. */
static void test_error_no_update(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    const float rm0[3] = {1, 2, 3}, rv0[3] = {1, 1, 1};
    fern_tensor *rm = vec_f32(3, rm0), *rv = vec_f32(3, rv0);
    int64_t shape[2] = {4, 2}; /* 2 channels, stats have 3 */
    const float zeros[8] = {0};
    const uint16_t hzeros[8] = {0};
    fern_tensor *x = fern_from_data(FERN_F32, 2, shape, zeros);
    assert_null(fern_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1, 1e-5));
    assert_non_null(strstr(fern_last_error(), "batch_norm"));
    for (int64_t c = 0; c < 3; c++)
        assert_true(fern_tensor_get(rm, &c) == rm0[c]);
    fern_clear_error();
    /* the same with a half input (the f32 path) */
    fern_tensor *xh = fern_from_data(FERN_F16, 2, shape, hzeros);
    assert_null(fern_batch_norm(xh, rm, rv, NULL, NULL, 1, 0.1, 1e-5));
    assert_non_null(strstr(fern_last_error(), "batch_norm"));
    assert_non_null(strstr(fern_last_error(), "f16"));
    fern_clear_error();
    assert_null(fern_batch_norm(NULL, rm, rv, NULL, NULL, 1, 0.1, 1e-5));
    fern_clear_error();
    fern_scope_end();
}

/* A big batch goes through the thread pool; the update must not depend on
 * the thread count. */
static void test_parallel_deterministic(void **state)
{
    (void)state;
    fern_scope_begin();
    int64_t shape[4] = {8, 3, 40, 40};
    fern_tensor *x = fern_empty(FERN_F32, 4, shape);
    float *d = fern_tensor_data(x);
    for (int64_t i = 0; i < fern_tensor_numel(x); i++)
        d[i] = (float)(sin((double)i * 0.37) * 2.0 + 0.5 + 1e-4 * (double)(i % 97));
    float r1[2][3], r2[2][3];
    int threads[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        fern_set_num_threads(threads[k]);
        const float z[3] = {0, 0, 0}, o[3] = {1, 1, 1};
        fern_tensor *rm = vec_f32(3, z), *rv = vec_f32(3, o);
        assert_non_null(fern_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1, 1e-5));
        for (int64_t c = 0; c < 3; c++) {
            r1[k][c] = (float)fern_tensor_get(rm, &c);
            r2[k][c] = (float)fern_tensor_get(rv, &c);
        }
    }
    fern_set_num_threads(0);
    for (int c = 0; c < 3; c++) {
        assert_true(r1[0][c] == r1[1][c]);
        assert_true(r2[0][c] == r2[1][c]);
    }
    fern_scope_end();
}


/* Forward and backward give the same bits at 1 and 8 threads (per-plane
 * partial sums are combined per channel in a fixed order), NCHW and (N, C). */
static void run_fwd_bwd(fern_tensor *x, fern_tensor *g, fern_tensor *w, double *res, int64_t *n_res)
{
    fern_tensor *ins[5] = {x, NULL, NULL, w, NULL}, *o[3];
    const char *names[1] = {"training"};
    fern_attr tr;
    memset(&tr, 0, sizeof tr);
    tr.kind = FERN_ATTR_INT;
    tr.n = 1;
    tr.i = 1;
    assert_int_equal(fern_op_invoke("batch_norm", 5, ins, 1, names, &tr, 3, o), FERN_OK);
    fern_tensor *bins[5] = {g, x, o[1], o[2], w}, *b[3];
    assert_int_equal(fern_op_invoke("batch_norm_backward", 5, bins, 0, NULL, NULL, 3, b), FERN_OK);
    int64_t k = 0;
    fern_tensor *all[6] = {o[0], o[1], o[2], b[0], b[1], b[2]};
    for (int t = 0; t < 6; t++)
        for (int64_t i = 0; i < fern_tensor_numel(all[t]); i++)
            res[k++] = fern_tensor_get_flat(all[t], i);
    *n_res = k;
}

static void test_bn_threads_same_bits(void **state)
{
    (void)state;
    /* planes of 81 (per-plane partials), of 6 (channel by channel), none */
    int64_t shapes[3][4] = {{4, 16, 9, 9}, {6, 5, 3, 2}, {50, 600, 0, 0}};
    int ndims[3] = {4, 4, 2};
    for (int s = 0; s < 3; s++) {
        fern_scope_begin();
        int64_t C = shapes[s][1];
        fern_tensor *x = fern_empty(FERN_F32, ndims[s], shapes[s]);
        fern_tensor *g = fern_empty(FERN_F32, ndims[s], shapes[s]);
        fern_tensor *w = fern_empty(FERN_F32, 1, &C);
        int64_t n = fern_tensor_numel(x);
        float *xd = fern_tensor_data(x), *gd = fern_tensor_data(g), *wd = fern_tensor_data(w);
        for (int64_t i = 0; i < n; i++) {
            xd[i] = (float)(sin((double)i * 0.91) * 3.0 + 1.5);
            gd[i] = (float)cos((double)i * 0.37 + 0.2);
        }
        for (int64_t c = 0; c < C; c++)
            wd[c] = (float)(0.5 + 0.01 * (double)c);
        int64_t m = 2 * n + 4 * C, m1 = 0, m2 = 0;
        double *r1 = malloc(sizeof(double) * (size_t)m), *r2 = malloc(sizeof(double) * (size_t)m);
        fern_set_num_threads(1);
        run_fwd_bwd(x, g, w, r1, &m1);
        fern_set_num_threads(8);
        run_fwd_bwd(x, g, w, r2, &m2);
        fern_set_num_threads(0);
        assert_int_equal(m1, m);
        assert_int_equal(m2, m);
        for (int64_t i = 0; i < m; i++)
            if (r1[i] != r2[i])
                fail_msg("shape %d value %lld: %.9g (1 thread) vs %.9g (8 threads)", s,
                         (long long)i, r1[i], r2[i]);
        free(r1);
        free(r2);
        fern_scope_end();
    }
}

/* Gradients of gradients: h(x, w, b) = <v, dL/dx> + <vw, dL/dw> with
 * L = <u, batch_norm(x, w, b)> in training, differentiated again (through
 * batch_norm_backward's rule and batch_norm's statistics outputs) and
 * compared with central differences of h, in f64, pynative and graph mode. */
typedef struct {
    fern_tensor *u, *v, *vw;
    fern_fn *g1;
} dd_ud;

static int bn_loss(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    dd_ud *d = ud;
    fern_tensor *y = fern_batch_norm(in[0], NULL, NULL, in[1], in[2], 1, 0.1, 1e-5);
    out[0] = fern_sum(fern_mul(y, d->u), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

static int bn_h(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    dd_ud *d = ud;
    fern_tensor *g[2];
    if (fern_call(d->g1, 3, in, 2, g) != FERN_OK)
        return -1;
    out[0] = fern_add(fern_sum(fern_mul(g[0], d->v), NULL, 0, 0),
                      fern_sum(fern_mul(g[1], d->vw), NULL, 0, 0));
    return out[0] ? 0 : -1;
}

static fern_tensor *rand_f64(int ndim, const int64_t *shape, uint64_t *seed, double lo, double hi)
{
    fern_tensor *t = fern_empty(FERN_F64, ndim, shape);
    double *p = fern_tensor_data(t);
    for (int64_t i = 0; i < fern_tensor_numel(t); i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * (double)(*seed >> 11) * (1.0 / 9007199254740992.0);
    }
    return t;
}

static void test_double_backward(void **state)
{
    (void)state;
    fern_scope_begin();
    uint64_t seed = 99;
    int64_t shape[3] = {4, 3, 5}, C = 3;
    fern_tensor *x = rand_f64(3, shape, &seed, -1, 2), *w = rand_f64(1, &C, &seed, 0.5, 1.5);
    fern_tensor *b = rand_f64(1, &C, &seed, -1, 1);
    dd_ud d = {rand_f64(3, shape, &seed, -1, 1), rand_f64(3, shape, &seed, -1, 1),
               rand_f64(1, &C, &seed, -1, 1), NULL};
    fern_fn *f = fern_fn_new(bn_loss, &d, 3, 1);
    int a01[2] = {0, 1}, a012[3] = {0, 1, 2};
    d.g1 = fern_grad_n(f, a01, 2);
    fern_fn *h = fern_fn_new(bn_h, &d, 3, 1);
    fern_fn *hg = fern_grad_n(h, a012, 3);
    fern_tensor *in[3] = {x, w, b};

    /* the first-order gradient in a graph uses the fused op */
    fern_fn *jg = fern_jit(d.g1);
    fern_tensor *tmp[2];
    fern_set_mode(FERN_GRAPH_MODE);
    assert_int_equal(fern_call(jg, 3, in, 2, tmp), FERN_OK);
    fern_set_mode(FERN_PYNATIVE_MODE);
    char *ir = fern_jit_dump(jg);
    assert_non_null(ir);
    assert_non_null(strstr(ir, "batch_norm_backward"));
    free(ir);

    for (int mode = 0; mode < 2; mode++) {
        fern_tensor *gr[3];
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        fern_status st = fern_call(hg, 3, in, 3, gr);
        fern_set_mode(FERN_PYNATIVE_MODE);
        if (st != FERN_OK)
            fail_msg("mode %d: %s", mode, fern_last_error());
        for (int k = 0; k < 3; k++) {
            fern_tensor *p = in[k];
            double *pd = fern_tensor_data(p);
            for (int64_t j = 0; j < fern_tensor_numel(p); j++) {
                double p0 = pd[j], eps = 1e-6 * fmax(1.0, fabs(p0)), hv[2];
                for (int s = 0; s < 2; s++) {
                    pd[j] = p0 + (s ? -eps : eps);
                    fern_scope_begin();
                    fern_tensor *o = fern_call1(h, 3, in);
                    assert_non_null(o);
                    hv[s] = fern_tensor_get_flat(o, 0);
                    fern_scope_end();
                }
                pd[j] = p0;
                double num = (hv[0] - hv[1]) / (2 * eps), ana = fern_tensor_get_flat(gr[k], j);
                if (!(fabs(num - ana) <= 1e-6 + 1e-5 * fabs(num)))
                    fail_msg("mode %d: d h / d input %d element %lld: autodiff %.12g, finite "
                             "differences %.12g", mode, k, (long long)j, ana, num);
            }
        }
    }
    fern_fn_release(jg);
    fern_fn_release(hg);
    fern_fn_release(h);
    fern_fn_release(d.g1);
    fern_fn_release(f);
    fern_scope_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update_2d),
        cmocka_unit_test(test_update_torch_4d),
        cmocka_unit_test(test_no_update_cases),
        cmocka_unit_test(test_f64_strided_running),
        cmocka_unit_test(test_half_input_f32_running),
        cmocka_unit_test(test_error_no_update),
        cmocka_unit_test(test_parallel_deterministic),
        cmocka_unit_test(test_bn_threads_same_bits),
        cmocka_unit_test(test_double_backward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
