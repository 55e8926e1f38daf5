/* fern_dropout: mask statistics, the 1/(1-p) scaling, determinism under
 * fern_seed, independence from the thread count, the generator's offset
 * bookkeeping, the identity cases (eval, p = 0), errors, and the gradient
 * (the forward's own mask, in both modes, also where x is zero). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"
#include "core/internal.h" /* fern__philox, to check the mask bit by bit */

/* x[i] = 1 + i % 7 (never zero, so a zero output means dropped). */
static fern_tensor *make_x(fern_dtype dt, int64_t n)
{
    fern_tensor *x = fern_empty(dt, 1, &n);
    for (int64_t i = 0; i < n; i++)
        fern_tensor_set(x, &i, 1.0 + (double)(i % 7));
    return x;
}

/* The mask is exactly Philox: element i is kept iff word i % 4 of
 * fern__philox(seed, offset, i / 4) is >= ceil(p * 2^32). */
static void test_mask_is_philox(void **state)
{
    (void)state;
    fern_scope_begin();
    const int64_t n = 1003; /* a partial last group */
    fern_tensor *x = make_x(FERN_F32, n);
    const double p = 0.37;
    fern_seed(0x123456789abcULL);
    fern_rng_set_offset(41);
    fern_tensor *y = fern_dropout(x, p, 1);
    const float *yd = fern_tensor_data(y), *xd = fern_tensor_data(x);
    uint64_t thr = (uint64_t)ceil(p * 4294967296.0);
    float scale = (float)(1.0 / (1.0 - p));
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        fern__philox(0x123456789abcULL, 41, (uint64_t)(i / 4), w);
        float want = (uint64_t)w[i % 4] >= thr ? xd[i] * scale : 0.0f;
        if (yd[i] != want)
            fail_msg("element %lld: got %g, expected %g", (long long)i, (double)yd[i],
                     (double)want);
    }
    fern_scope_end();
}

static void test_statistics_and_scale(void **state)
{
    (void)state;
    fern_scope_begin();
    const int64_t n = 200000;
    fern_tensor *x = make_x(FERN_F32, n);
    const double ps[3] = {0.1, 0.3, 0.75};
    for (int k = 0; k < 3; k++) {
        double p = ps[k];
        fern_seed(2024 + (uint64_t)k);
        fern_tensor *y = fern_dropout(x, p, 1);
        assert_non_null(y);
        assert_int_equal(fern_tensor_dtype(y), FERN_F32);
        const float *yd = fern_tensor_data(y), *xd = fern_tensor_data(x);
        float scale = (float)(1.0 / (1.0 - p));
        int64_t zeros = 0, run_zeros = 0, max_run = 0;
        for (int64_t i = 0; i < n; i++) {
            if (yd[i] == 0.0f) {
                zeros++;
                run_zeros++;
                if (run_zeros > max_run)
                    max_run = run_zeros;
            } else {
                run_zeros = 0;
                if (yd[i] != xd[i] * scale)
                    fail_msg("p=%g: kept element %lld is %g, expected %g", p, (long long)i,
                             (double)yd[i], (double)(xd[i] * scale));
            }
        }
        /* binomial: 6 standard deviations */
        double frac = (double)zeros / (double)n, sd = sqrt(p * (1 - p) / (double)n);
        if (fabs(frac - p) > 6 * sd)
            fail_msg("p=%g: dropped fraction %g", p, frac);
        /* no long runs of drops (a broken counter would repeat words) */
        assert_true(max_run < 60);
        /* the mean is preserved in expectation */
        double sx = 0, sy = 0;
        for (int64_t i = 0; i < n; i++) {
            sx += xd[i];
            sy += yd[i];
        }
        assert_true(fabs(sy / sx - 1.0) < 0.02);
    }
    fern_scope_end();
}

/* Element-wise independence: the drop rates of even and odd positions, and
 * of the four Philox words, all match p. */
static void test_positions_uniform(void **state)
{
    (void)state;
    fern_scope_begin();
    const int64_t n = 400000;
    const double p = 0.5;
    fern_tensor *x = make_x(FERN_F32, n);
    fern_seed(77);
    fern_tensor *y = fern_dropout(x, p, 1);
    const float *yd = fern_tensor_data(y);
    int64_t cnt[4] = {0}, pairs_same = 0;
    for (int64_t i = 0; i < n; i++) {
        if (yd[i] == 0.0f)
            cnt[i % 4]++;
        if (i + 1 < n && (yd[i] == 0.0f) == (yd[i + 1] == 0.0f))
            pairs_same++;
    }
    double sd = sqrt(p * (1 - p) / (double)(n / 4));
    for (int k = 0; k < 4; k++)
        assert_true(fabs((double)cnt[k] / (double)(n / 4) - p) < 6 * sd);
    /* neighbours agree half the time when independent */
    assert_true(fabs((double)pairs_same / (double)(n - 1) - 0.5) < 6 * sqrt(0.25 / (double)n));
    fern_scope_end();
}

static int same_values(const fern_tensor *a, const fern_tensor *b)
{
    if (fern_tensor_numel(a) != fern_tensor_numel(b))
        return 0;
    for (int64_t i = 0; i < fern_tensor_numel(a); i++)
        if (fern_tensor_get_flat(a, i) != fern_tensor_get_flat(b, i))
            return 0;
    return 1;
}

static void test_determinism_and_offset(void **state)
{
    (void)state;
    fern_scope_begin();
    fern_tensor *x = make_x(FERN_F32, 5000);
    fern_seed(9);
    assert_int_equal(fern_rng_offset(), 0);
    fern_tensor *a = fern_dropout(x, 0.4, 1);
    assert_int_equal(fern_rng_offset(), 1);
    fern_tensor *b = fern_dropout(x, 0.4, 1);
    assert_int_equal(fern_rng_offset(), 2);
    assert_false(same_values(a, b)); /* a new draw */
    fern_seed(9);
    fern_tensor *a2 = fern_dropout(x, 0.4, 1);
    assert_true(same_values(a, a2));
    fern_rng_set_offset(1);
    fern_tensor *b2 = fern_dropout(x, 0.4, 1);
    assert_true(same_values(b, b2));
    fern_seed(10);
    assert_false(same_values(a, fern_dropout(x, 0.4, 1)));

    /* identity cases and p = 1 draw nothing */
    fern_seed(9);
    assert_non_null(fern_dropout(x, 0.4, 0));
    assert_non_null(fern_dropout(x, 0.0, 1));
    assert_non_null(fern_dropout(x, 1.0, 1));
    assert_int_equal(fern_rng_offset(), 0);

    /* by name with pinned seed/offset = the public call at that state */
    fern_seed(31);
    fern_rng_set_offset(5);
    fern_tensor *pub = fern_dropout(x, 0.25, 1);
    const char *names[4] = {"p", "training", "seed", "offset"};
    fern_attr at[4];
    memset(at, 0, sizeof at);
    at[0].kind = FERN_ATTR_FLOAT;
    at[0].n = 1;
    at[0].f = 0.25;
    for (int k = 1; k < 4; k++) {
        at[k].kind = FERN_ATTR_INT;
        at[k].n = 1;
    }
    at[1].i = 1;
    at[2].i = 31;
    at[3].i = 5;
    fern_tensor *byname[2] = {NULL, NULL};
    assert_int_equal(fern_op_invoke("dropout", 1, &x, 4, names, at, 2, byname), FERN_OK);
    assert_true(same_values(pub, byname[0]));
    /* output 1 is the bool keep-mask */
    assert_int_equal(fern_tensor_dtype(byname[1]), FERN_BOOL);
    for (int64_t i = 0; i < 5000; i++)
        assert_true(fern_tensor_get_flat(byname[1], i) == (fern_tensor_get_flat(pub, i) != 0.0));
    /* by name without a seed draws from the generator */
    fern_seed(31);
    fern_rng_set_offset(5);
    fern_tensor *drawn[2] = {NULL, NULL};
    assert_int_equal(fern_op_invoke("dropout", 1, &x, 2, names, at, 2, drawn), FERN_OK);
    assert_true(same_values(pub, drawn[0]));
    assert_int_equal(fern_rng_offset(), 6);
    fern_scope_end();
}

static void test_thread_count_independent(void **state)
{
    (void)state;
    fern_scope_begin();
    const int64_t n = 300001; /* not a multiple of 4 */
    fern_tensor *x = make_x(FERN_F64, n);
    fern_tensor *y[3];
    const int threads[3] = {1, 2, 5};
    for (int k = 0; k < 3; k++) {
        fern_set_num_threads(threads[k]);
        fern_seed(555);
        y[k] = fern_dropout(x, 0.35, 1);
        assert_non_null(y[k]);
    }
    fern_set_num_threads(0);
    assert_true(same_values(y[0], y[1]));
    assert_true(same_values(y[0], y[2]));
    /* a prefix of a longer tensor gets the same mask (element i depends only
     * on (seed, offset, i)) */
    fern_tensor *xs = make_x(FERN_F64, 1001);
    fern_seed(555);
    fern_tensor *ys = fern_dropout(xs, 0.35, 1);
    for (int64_t i = 0; i < 1001; i++)
        assert_true(fern_tensor_get_flat(ys, i) == fern_tensor_get_flat(y[0], i));
    fern_scope_end();
}

static void test_identity_and_extremes(void **state)
{
    (void)state;
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_scope_begin();
    fern_tensor *x = make_x(FERN_F32, 64);
    /* eval / p = 0: x's values, sharing x's storage when contiguous */
    fern_tensor *e = fern_dropout(x, 0.5, 0);
    assert_true(same_values(e, x));
    assert_true(fern_tensor_shares_storage(e, x));
    fern_tensor *z = fern_dropout(x, 0.0, 1);
    assert_true(same_values(z, x));
    /* non-contiguous input: a contiguous copy with the same values */
    int64_t shape[2] = {8, 8};
    fern_tensor *m = fern_reshape(x, 2, shape);
    fern_tensor *mt = fern_transpose(m, 0, 1);
    fern_tensor *et = fern_dropout(mt, 0.5, 0);
    assert_true(fern_tensor_is_contiguous(et));
    assert_true(same_values(et, mt));
    /* p = 1: all zeros */
    fern_tensor *o = fern_dropout(x, 1.0, 1);
    for (int64_t i = 0; i < 64; i++)
        assert_true(fern_tensor_get_flat(o, i) == 0.0);
    /* non-contiguous training input: same mask as its contiguous copy */
    fern_seed(4);
    fern_tensor *d1 = fern_dropout(mt, 0.5, 1);
    fern_seed(4);
    fern_tensor *d2 = fern_dropout(fern_contiguous(mt), 0.5, 1);
    assert_true(same_values(d1, d2));
    /* bf16 and 0-d */
    fern_tensor *xb = make_x(FERN_BF16, 100);
    fern_seed(4);
    fern_tensor *yb = fern_dropout(xb, 0.5, 1);
    assert_int_equal(fern_tensor_dtype(yb), FERN_BF16);
    for (int64_t i = 0; i < 100; i++) {
        double v = fern_tensor_get_flat(yb, i);
        assert_true(v == 0.0 || v == 2.0 * fern_tensor_get_flat(xb, i));
    }
    fern_tensor *s = fern_scalar(FERN_F32, 3.0);
    fern_tensor *ys = fern_dropout(s, 0.5, 1);
    assert_int_equal(fern_tensor_ndim(ys), 0);
    double v = fern_tensor_get_flat(ys, 0);
    assert_true(v == 0.0 || v == 6.0);
    fern_scope_end();
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).current_bytes, before);
}

/* ---- gradient ------------------------------------------------------------ */

static int drop_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    out[0] = fern_dropout(in[0], *(const double *)ud, 1);
    return out[0] ? 0 : -1;
}

/* dx = mask / (1 - p) with the forward's mask: exact in f64, right where x
 * is zero (y = 0 there whether kept or not), and the same in graph mode,
 * where the forward node draws its seed at run time. */
static void test_gradient(void **state)
{
    (void)state;
    fern_scope_begin();
    const int64_t n = 203;
    const double p = 0.3;
    fern_tensor *x = fern_empty(FERN_F64, 1, &n);
    for (int64_t i = 0; i < n; i++)
        fern_tensor_set(x, &i, i % 5 == 0 ? 0.0 : 1.0 + (double)(i % 3));
    fern_fn *f = fern_fn_new(drop_body, (void *)&p, 1, 1);
    fern_tensor *ones = fern_ones_like(x); /* (NULL cotangents would run f twice) */
    fern_seed(77);
    fern_tensor *y = NULL, *g = NULL;
    assert_int_equal(fern_vjp(f, 1, &x, &ones, &y, &g), FERN_OK);
    uint64_t thr = (uint64_t)ceil(p * 4294967296.0);
    int64_t kept_zero = 0;
    for (int64_t i = 0; i < n; i++) {
        uint32_t w[4];
        fern__philox(77, 0, (uint64_t)(i / 4), w);
        int keep = (uint64_t)w[i % 4] >= thr;
        double want = keep ? 1.0 / (1.0 - p) : 0.0;
        if (fern_tensor_get_flat(g, i) != want)
            fail_msg("element %lld: gradient %g, expected %g", (long long)i,
                     fern_tensor_get_flat(g, i), want);
        kept_zero += keep && i % 5 == 0;
    }
    assert_true(kept_zero > 0); /* the case a (y != 0) mask would get wrong */
    /* graph mode: the same draw, and the backward uses the forward's mask */
    fern_fn *gs = fern_grad_with_sens(f);
    fern_tensor *args[2] = {x, ones};
    fern_seed(77);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *gg = NULL;
    fern_status st = fern_call(gs, 2, args, 1, &gg);
    fern_set_mode(FERN_PYNATIVE_MODE);
    assert_int_equal(st, FERN_OK);
    assert_true(same_values(g, gg));
    /* eval / p = 0 are the identity, p = 1 has zero gradient */
    const double ps[2] = {0.0, 1.0};
    for (int k = 0; k < 2; k++) {
        fern_fn *fk = fern_fn_new(drop_body, (void *)&ps[k], 1, 1);
        fern_tensor *yk = NULL, *gk = NULL;
        assert_int_equal(fern_vjp(fk, 1, &x, &ones, &yk, &gk), FERN_OK);
        for (int64_t i = 0; i < n; i++)
            assert_true(fern_tensor_get_flat(gk, i) == (k ? 0.0 : 1.0));
        fern_fn_release(fk);
    }
    fern_fn_release(gs);
    fern_fn_release(f);
    fern_scope_end();
}

static void test_errors(void **state)
{
    (void)state;
    fern_scope_begin();
    fern_tensor *x = make_x(FERN_F32, 10);
    const double bad[3] = {-0.1, 1.5, NAN};
    for (int k = 0; k < 3; k++)
        for (int training = 0; training <= 1; training++) {
            fern_clear_error();
            assert_null(fern_dropout(x, bad[k], training));
            assert_non_null(strstr(fern_last_error(), "dropout"));
            assert_non_null(strstr(fern_last_error(), "between 0 and 1"));
        }
    fern_clear_error();
    fern_tensor *xi = make_x(FERN_I32, 10);
    assert_null(fern_dropout(xi, 0.5, 1));
    assert_non_null(strstr(fern_last_error(), "dropout"));
    fern_clear_error();
    assert_null(fern_dropout(xi, 0.5, 0));
    assert_non_null(strstr(fern_last_error(), "i32"));
    fern_clear_error();
    assert_null(fern_dropout(NULL, 0.5, 1));
    assert_int_not_equal(fern_last_status(), FERN_OK);
    fern_clear_error();
    fern_scope_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_is_philox),
        cmocka_unit_test(test_statistics_and_scale),
        cmocka_unit_test(test_positions_uniform),
        cmocka_unit_test(test_determinism_and_offset),
        cmocka_unit_test(test_thread_count_independent),
        cmocka_unit_test(test_identity_and_extremes),
        cmocka_unit_test(test_gradient),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
