/* Unit tests of the random ops: reproducibility from (seed, offset),
 * independence from the thread count, distribution checks against the
 * analytic moments (and a Kolmogorov-Smirnov bound for the truncated
 * normal), the generator offset, by-name calls, and error cases.
 * Every statistical check uses a fixed seed and a tolerance of several
 * standard errors, so the tests are deterministic and not fragile. */
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

#define N_STAT 200000

/* Values of t as doubles (caller frees). */
static double *values(const fern_tensor *t)
{
    int64_t n = fern_tensor_numel(t);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    assert_non_null(v);
    if (fern_tensor_dtype(t) == FERN_F64) {
        assert_int_equal(fern_tensor_copy_to(t, v, (size_t)n * sizeof *v), FERN_OK);
    } else if (fern_tensor_dtype(t) == FERN_F32) {
        float *f = malloc((size_t)(n ? n : 1) * sizeof *f);
        assert_int_equal(fern_tensor_copy_to(t, f, (size_t)n * sizeof *f), FERN_OK);
        for (int64_t i = 0; i < n; i++)
            v[i] = f[i];
        free(f);
    } else {
        for (int64_t i = 0; i < n; i++)
            v[i] = fern_tensor_get_flat(t, i);
    }
    return v;
}

static void moments(const double *v, int64_t n, double *mean, double *var)
{
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++)
        s += v[i];
    double m = s / (double)n;
    for (int64_t i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *mean = m;
    *var = ss / (double)(n - 1);
}

static int same_bytes(const fern_tensor *a, const fern_tensor *b)
{
    return fern_tensor_dtype(a) == fern_tensor_dtype(b) &&
           fern_tensor_nbytes(a) == fern_tensor_nbytes(b) &&
           memcmp(fern_tensor_data(a), fern_tensor_data(b), fern_tensor_nbytes(a)) == 0;
}

/* Fraction of positions where a and b hold different values. */
static double frac_differ(const fern_tensor *a, const fern_tensor *b)
{
    int64_t n = fern_tensor_numel(a), d = 0;
    for (int64_t i = 0; i < n; i++)
        d += fern_tensor_get_flat(a, i) != fern_tensor_get_flat(b, i);
    return n ? (double)d / (double)n : 0;
}

static int setup(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fern_scope_end();
    fern_set_num_threads(0);
    return 0;
}

/* One draw of every random op (index k) with the current generator. */
static fern_tensor *draw(int k, int64_t n)
{
    int64_t shape[1] = {n};
    switch (k) {
    case 0: return fern_rand_uniform(FERN_F32, 1, shape, -1, 3);
    case 1: return fern_rand_uniform(FERN_F64, 1, shape, 0, 1);
    case 2: return fern_rand_normal(FERN_F32, 1, shape, 1, 2);
    case 3: return fern_rand_normal(FERN_F64, 1, shape, 0, 1);
    case 4: return fern_rand_truncated_normal(FERN_F32, 1, shape, 0, 1, -1, 2);
    case 5: return fern_rand_truncated_normal(FERN_F64, 1, shape, 0, 1, 2.5, INFINITY);
    case 6: return fern_bernoulli(FERN_U8, 1, shape, 0.4);
    case 7: return fern_randint(-1000, 1000, FERN_I32, 1, shape);
    case 8: return fern_randint(INT64_MIN, INT64_MAX, FERN_I64, 1, shape);
    case 9: return fern_rand_normal(FERN_BF16, 1, shape, 0, 1);
    case 10: return fern_rand_uniform(FERN_F16, 1, shape, 0, 1);
    default: return fern_randperm(n, FERN_I64);
    }
}
#define N_DRAW_KINDS 12

static void test_same_seed_same_values(void **state)
{
    (void)state;
    for (int k = 0; k < N_DRAW_KINDS; k++) {
        fern_seed(42);
        fern_tensor *a = draw(k, 1001);
        fern_seed(42);
        fern_tensor *b = draw(k, 1001);
        fern_seed(43);
        fern_tensor *c = draw(k, 1001);
        fern_seed(42);
        draw(k, 1);
        fern_tensor *d = draw(k, 1001); /* next draw of the same seed */
        assert_non_null(a);
        assert_non_null(b);
        assert_non_null(c);
        assert_non_null(d);
        assert_true(same_bytes(a, b));
        double need = k == 6 ? 0.3 : 0.9; /* bernoulli: two draws agree ~half the time */
        if (frac_differ(a, c) < need || frac_differ(a, d) < need)
            fail_msg("draw kind %d: different seed/offset gave too similar values (%g, %g)", k,
                     frac_differ(a, c), frac_differ(a, d));
    }
}

static void test_thread_count_invariance(void **state)
{
    (void)state;
    int64_t n = 300001; /* odd length: partial philox blocks at the end */
    for (int k = 0; k < N_DRAW_KINDS; k++) {
        fern_tensor *ref = NULL;
        for (int threads = 1; threads <= 4; threads++) {
            fern_set_num_threads(threads);
            fern_seed(9);
            fern_tensor *t = draw(k, n);
            assert_non_null(t);
            if (!ref)
                ref = t;
            else if (!same_bytes(ref, t))
                fail_msg("draw kind %d differs between 1 and %d threads", k, threads);
        }
    }
    /* the by-block boundaries of a 2-d shape give the same flat values */
    fern_set_num_threads(2);
    fern_seed(5);
    int64_t s2[2] = {1000, 1001};
    fern_tensor *a = fern_rand_normal(FERN_F32, 2, s2, 0, 1);
    fern_seed(5);
    int64_t s1[1] = {1000 * 1001};
    fern_tensor *b = fern_rand_normal(FERN_F32, 1, s1, 0, 1);
    assert_true(same_bytes(a, b));
}

static void test_uniform(void **state)
{
    (void)state;
    int64_t shape[1] = {N_STAT};
    fern_dtype dts[4] = {FERN_F32, FERN_F64, FERN_F16, FERN_BF16};
    for (int k = 0; k < 4; k++) {
        double lo = -2, hi = 3;
        fern_seed(100 + (uint64_t)k);
        fern_tensor *t = fern_rand_uniform(dts[k], 1, shape, lo, hi);
        assert_non_null(t);
        assert_int_equal(fern_tensor_dtype(t), dts[k]);
        double *v = values(t), m, var;
        for (int64_t i = 0; i < N_STAT; i++)
            if (!(v[i] >= lo && v[i] < hi))
                fail_msg("%s: value %g outside [%g, %g)", fern_dtype_name(dts[k]), v[i], lo, hi);
        moments(v, N_STAT, &m, &var);
        double w = hi - lo, sd = w / sqrt(12.0), q = dts[k] == FERN_BF16 ? 0.02 : 0.005;
        assert_true(fabs(m - (lo + hi) / 2) < 6 * sd / sqrt(N_STAT) + q);
        assert_true(fabs(var - w * w / 12) < 6 * w * w / 12 * sqrt(0.8 / N_STAT) + q);
        free(v);
    }
    /* a range whose top rounds to high in the output dtype stays open */
    fern_seed(3);
    fern_tensor *h = fern_rand_uniform(FERN_F16, 1, shape, 0.999, 1.0);
    assert_non_null(h);
    double *v = values(h);
    for (int64_t i = 0; i < N_STAT; i++)
        assert_true(v[i] >= 0.999 && v[i] < 1.0);
    free(v);
    /* 0-d and empty shapes */
    fern_tensor *s = fern_rand_uniform(FERN_F32, 0, NULL, 0, 1);
    assert_non_null(s);
    assert_int_equal(fern_tensor_ndim(s), 0);
    assert_true(fern_tensor_get_flat(s, 0) >= 0 && fern_tensor_get_flat(s, 0) < 1);
    int64_t e[2] = {0, 5};
    fern_tensor *em = fern_rand_uniform(FERN_F64, 2, e, 0, 1);
    assert_non_null(em);
    assert_int_equal(fern_tensor_numel(em), 0);
}

static void test_normal(void **state)
{
    (void)state;
    int64_t shape[1] = {N_STAT};
    fern_dtype dts[4] = {FERN_F32, FERN_F64, FERN_F16, FERN_BF16};
    for (int k = 0; k < 4; k++) {
        double mu = 2, sigma = 3;
        fern_seed(200 + (uint64_t)k);
        fern_tensor *t = fern_rand_normal(dts[k], 1, shape, mu, sigma);
        assert_non_null(t);
        double *v = values(t), m, var;
        moments(v, N_STAT, &m, &var);
        double q = dts[k] == FERN_BF16 ? 0.03 : 0.005;
        assert_true(fabs(m - mu) < 6 * sigma / sqrt(N_STAT) + q);
        assert_true(fabs(sqrt(var) - sigma) < 6 * sigma * sqrt(0.5 / N_STAT) + q);
        int64_t in1 = 0, beyond3 = 0;
        for (int64_t i = 0; i < N_STAT; i++) {
            double z = (v[i] - mu) / sigma;
            in1 += fabs(z) < 1;
            beyond3 += fabs(z) > 3;
        }
        double p1 = 0.682689492137, p3 = 0.002699796063;
        assert_true(fabs((double)in1 / N_STAT - p1) < 6 * sqrt(p1 * (1 - p1) / N_STAT) + q);
        assert_true(fabs((double)beyond3 / N_STAT - p3) < 6 * sqrt(p3 * (1 - p3) / N_STAT));
        free(v);
    }
    int64_t one[1] = {10};
    fern_tensor *z = fern_rand_normal(FERN_F64, 1, one, 1.5, 0);
    assert_non_null(z);
    for (int i = 0; i < 10; i++)
        assert_true(fern_tensor_get_flat(z, i) == 1.5);
}

/* ---- truncated normal ---------------------------------------------------- */

static double phi(double x) { return exp(-0.5 * x * x) / sqrt(2 * M_PI); }

/* log of P(Z > x) */
static double log_upper(double x) { return log(0.5 * erfc(x / sqrt(2.0))); }

/* CDF of the standard normal truncated to [al, be] at x (al <= x <= be). */
static double trunc_cdf(double x, double al, double be)
{
    if (al >= 0) { /* upper tail: ratios of small upper-tail probabilities */
        double la = log_upper(al), lx = log_upper(x), lb = isinf(be) ? -INFINITY : log_upper(be);
        return -expm1(lx - la) / -expm1(lb - la);
    }
    double pa = 0.5 * erfc(-al / sqrt(2.0)), pb = 0.5 * erfc(-be / sqrt(2.0));
    return (0.5 * erfc(-x / sqrt(2.0)) - pa) / (pb - pa);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void check_trunc(fern_dtype dt, double mu, double sigma, double a, double b, uint64_t seed)
{
    int64_t shape[1] = {N_STAT};
    fern_seed(seed);
    fern_tensor *t = fern_rand_truncated_normal(dt, 1, shape, mu, sigma, a, b);
    if (!t)
        fail_msg("truncated normal failed: %s", fern_last_error());
    double *v = values(t), m, var;
    for (int64_t i = 0; i < N_STAT; i++)
        if (!(v[i] >= a && v[i] <= b))
            fail_msg("trunc(%g,%g,[%g,%g]) %s: value %.17g out of bounds", mu, sigma, a, b,
                     fern_dtype_name(dt), v[i]);
    /* analytic moments of the truncated normal */
    double al = (a - mu) / sigma, be = (b - mu) / sigma;
    double pa = isinf(al) ? 0 : phi(al), pb = isinf(be) ? 0 : phi(be);
    double apa = isinf(al) ? 0 : al * pa, bpb = isinf(be) ? 0 : be * pb;
    double Z = al >= 0 ? exp(log_upper(al)) - (isinf(be) ? 0 : exp(log_upper(be)))
                       : 0.5 * erfc(-be / sqrt(2.0)) - 0.5 * erfc(-al / sqrt(2.0));
    double em = mu + sigma * (pa - pb) / Z;
    double ev = sigma * sigma * (1 + (apa - bpb) / Z - ((pa - pb) / Z) * ((pa - pb) / Z));
    moments(v, N_STAT, &m, &var);
    double sd = sqrt(ev), q = dt == FERN_F16 ? 2e-3 * (fabs(em) + sd) : 1e-6 * fabs(em);
    if (fabs(m - em) > 6 * sd / sqrt(N_STAT) + q)
        fail_msg("trunc(%g,%g,[%g,%g]) %s: mean %.8g, expected %.8g", mu, sigma, a, b,
                 fern_dtype_name(dt), m, em);
    if (fabs(sqrt(var) - sd) > 6 * sd * sqrt(1.0 / N_STAT) + q)
        fail_msg("trunc(%g,%g,[%g,%g]) %s: std %.8g, expected %.8g", mu, sigma, a, b,
                 fern_dtype_name(dt), sqrt(var), sd);
    /* Kolmogorov-Smirnov distance to the analytic CDF (f32/f64 only) */
    if (dt == FERN_F32 || dt == FERN_F64) {
        qsort(v, N_STAT, sizeof *v, cmp_double);
        double dmax = 0;
        for (int64_t i = 0; i < N_STAT; i++) {
            double z = (v[i] - mu) / sigma;
            z = z < al ? al : z > be ? be : z;
            double f = trunc_cdf(z, al, be);
            double d1 = fabs(f - (double)i / N_STAT), d2 = fabs(f - (double)(i + 1) / N_STAT);
            dmax = fmax(dmax, fmax(d1, d2));
        }
        /* 1.95/sqrt(n) is the 0.1% critical value; f32 rounding adds a bit */
        double lim = 1.95 / sqrt(N_STAT) + (dt == FERN_F32 ? 1e-4 : 0);
        if (dmax > lim)
            fail_msg("trunc(%g,%g,[%g,%g]) %s: KS distance %g > %g", mu, sigma, a, b,
                     fern_dtype_name(dt), dmax, lim);
    }
    free(v);
}

static void test_truncated_normal(void **state)
{
    (void)state;
    check_trunc(FERN_F64, 0, 1, -2, 2, 1);           /* torch trunc_normal_ defaults */
    check_trunc(FERN_F32, 0, 1, -2, 2, 2);
    check_trunc(FERN_F64, 1, 2, 0, 10, 3);           /* asymmetric */
    check_trunc(FERN_F64, 0, 1, 3, 5, 4);            /* upper tail only */
    check_trunc(FERN_F64, 0, 1, -5, -3, 5);          /* lower tail only */
    check_trunc(FERN_F64, 0, 1, 8, INFINITY, 6);     /* far tail, one-sided */
    check_trunc(FERN_F32, -3, 0.5, -INFINITY, -3.5, 7); /* one-sided below */
    check_trunc(FERN_F64, 0, 1, -0.01, 0.02, 8);     /* narrow interval */
    check_trunc(FERN_F64, 0.2, 0.1, 0, 1, 9);        /* wide relative to std */
    check_trunc(FERN_F16, 0, 1, -2, 2, 10);
    check_trunc(FERN_BF16, 0, 1, -1, 1, 11);
    /* bounds hold exactly after rounding to f32 */
    int64_t shape[1] = {N_STAT};
    fern_seed(12);
    fern_tensor *t = fern_rand_truncated_normal(FERN_F32, 1, shape, 0, 1, 0.1, 0.3);
    assert_non_null(t);
    double *v = values(t);
    for (int64_t i = 0; i < N_STAT; i++)
        assert_true(v[i] >= 0.1 && v[i] <= 0.3);
    free(v);
    /* std = 0: the limit is the mean moved into [a, b] */
    int64_t s3[1] = {3};
    fern_tensor *z = fern_rand_truncated_normal(FERN_F64, 1, s3, 5, 0, -1, 1);
    assert_non_null(z);
    for (int i = 0; i < 3; i++)
        assert_true(fern_tensor_get_flat(z, i) == 1.0);
}

static void test_bernoulli(void **state)
{
    (void)state;
    int64_t shape[2] = {400, 500};
    fern_dtype dts[4] = {FERN_F32, FERN_BOOL, FERN_I32, FERN_BF16};
    for (int k = 0; k < 4; k++) {
        double p = 0.3;
        fern_seed(300 + (uint64_t)k);
        fern_tensor *t = fern_bernoulli(dts[k], 2, shape, p);
        assert_non_null(t);
        assert_int_equal(fern_tensor_dtype(t), dts[k]);
        double *v = values(t);
        int64_t ones = 0, n = 400 * 500;
        for (int64_t i = 0; i < n; i++) {
            assert_true(v[i] == 0 || v[i] == 1);
            ones += v[i] == 1;
        }
        assert_true(fabs((double)ones / n - p) < 6 * sqrt(p * (1 - p) / n));
        free(v);
    }
    fern_tensor *z = fern_bernoulli(FERN_F64, 2, shape, 0);
    fern_tensor *o = fern_bernoulli(FERN_I64, 2, shape, 1);
    assert_non_null(z);
    assert_non_null(o);
    for (int64_t i = 0; i < 400 * 500; i += 97) {
        assert_true(fern_tensor_get_flat(z, i) == 0);
        assert_true(fern_tensor_get_flat(o, i) == 1);
    }
}

static void test_randint(void **state)
{
    (void)state;
    int64_t shape[1] = {N_STAT};
    /* small range: every value about equally often */
    fern_dtype dts[3] = {FERN_I32, FERN_I64, FERN_I8};
    for (int k = 0; k < 3; k++) {
        fern_seed(400 + (uint64_t)k);
        fern_tensor *t = fern_randint(-5, 7, dts[k], 1, shape);
        assert_non_null(t);
        assert_int_equal(fern_tensor_dtype(t), dts[k]);
        int64_t counts[12] = {0};
        for (int64_t i = 0; i < N_STAT; i++) {
            double v = fern_tensor_get_flat(t, i);
            assert_true(v >= -5 && v < 7 && v == floor(v));
            counts[(int)v + 5]++;
        }
        double e = N_STAT / 12.0;
        for (int c = 0; c < 12; c++)
            assert_true(fabs((double)counts[c] - e) < 6 * sqrt(e));
    }
    /* a range just under 2^32 where a modulo mapping would be badly biased:
     * the lowest third would get 1/2 of the mass instead of 1/3 */
    int64_t r = (int64_t)3 << 30;
    fern_seed(410);
    fern_tensor *big = fern_randint(0, r, FERN_I64, 1, shape);
    assert_non_null(big);
    const int64_t *bv = fern_tensor_data(big);
    int64_t low_third = 0;
    for (int64_t i = 0; i < N_STAT; i++) {
        assert_true(bv[i] >= 0 && bv[i] < r);
        low_third += bv[i] < r / 3;
    }
    assert_true(fabs((double)low_third / N_STAT - 1.0 / 3) < 6 * sqrt(2.0 / 9 / N_STAT));
    /* ranges above 2^32 (64-bit path), including the full i64 range */
    int64_t r2 = (int64_t)3 << 40;
    fern_seed(411);
    fern_tensor *wide = fern_randint(-r2, r2, FERN_I64, 1, shape);
    assert_non_null(wide);
    const int64_t *wv = fern_tensor_data(wide);
    double mean = 0;
    for (int64_t i = 0; i < N_STAT; i++) {
        assert_true(wv[i] >= -r2 && wv[i] < r2);
        mean += (double)wv[i] / N_STAT;
    }
    assert_true(fabs(mean) < 6 * (2.0 * (double)r2 / sqrt(12.0)) / sqrt(N_STAT));
    fern_tensor *full = fern_randint(INT64_MIN, INT64_MAX, FERN_I64, 1, shape);
    assert_non_null(full);
    const int64_t *fv = fern_tensor_data(full);
    int64_t neg = 0;
    for (int64_t i = 0; i < N_STAT; i++) {
        assert_true(fv[i] != INT64_MAX);
        neg += fv[i] < 0;
    }
    assert_true(fabs((double)neg / N_STAT - 0.5) < 6 * sqrt(0.25 / N_STAT));
    /* the whole u8 range */
    fern_tensor *u = fern_randint(0, 256, FERN_U8, 1, shape);
    assert_non_null(u);
    const uint8_t *uv = fern_tensor_data(u);
    int64_t hi = 0;
    for (int64_t i = 0; i < N_STAT; i++)
        hi += uv[i] >= 128;
    assert_true(fabs((double)hi / N_STAT - 0.5) < 6 * sqrt(0.25 / N_STAT));
}

static void test_randperm(void **state)
{
    (void)state;
    fern_dtype dts[4] = {FERN_I64, FERN_I32, FERN_F32, FERN_F64};
    for (int k = 0; k < 4; k++) {
        int64_t n = 1000;
        fern_seed(500 + (uint64_t)k);
        fern_tensor *t = fern_randperm(n, dts[k]);
        assert_non_null(t);
        assert_int_equal(fern_tensor_dtype(t), dts[k]);
        assert_int_equal(fern_tensor_ndim(t), 1);
        assert_int_equal(fern_tensor_dim(t, 0), n);
        char *seen = calloc((size_t)n, 1);
        int64_t fixed = 0;
        for (int64_t i = 0; i < n; i++) {
            double v = fern_tensor_get_flat(t, i);
            assert_true(v >= 0 && v < n && v == floor(v));
            assert_false(seen[(int64_t)v]);
            seen[(int64_t)v] = 1;
            fixed += (int64_t)v == i;
        }
        assert_true(fixed < 10); /* a random permutation has ~1 fixed point */
        free(seen);
    }
    fern_tensor *e = fern_randperm(0, FERN_I64);
    assert_non_null(e);
    assert_int_equal(fern_tensor_numel(e), 0);
    fern_tensor *one = fern_randperm(1, FERN_I32);
    assert_non_null(one);
    assert_true(fern_tensor_get_flat(one, 0) == 0);
    /* all 24 permutations of 4 about equally often */
    fern_seed(510);
    int counts[256] = {0};
    int draws = 24000;
    for (int d = 0; d < draws; d++) {
        fern_scope_begin();
        fern_tensor *p = fern_randperm(4, FERN_I64);
        const int64_t *pv = fern_tensor_data(p);
        counts[pv[0] * 64 + pv[1] * 16 + pv[2] * 4 + pv[3]]++;
        fern_scope_end();
    }
    int distinct = 0;
    for (int c = 0; c < 256; c++)
        if (counts[c]) {
            distinct++;
            assert_true(abs(counts[c] - 1000) < 6 * 32);
        }
    assert_int_equal(distinct, 24);
}

static void test_offset(void **state)
{
    (void)state;
    int64_t shape[1] = {257};
    fern_seed(77);
    assert_int_equal(fern_get_seed(), 77);
    uint64_t off0 = fern_rng_offset();
    fern_tensor *x = fern_rand_normal(FERN_F32, 1, shape, 0, 1);
    assert_int_equal(fern_rng_offset(), off0 + 1);
    fern_tensor *y = fern_rand_normal(FERN_F32, 1, shape, 0, 1);
    assert_int_equal(fern_rng_offset(), off0 + 2);
    assert_false(same_bytes(x, y));
    fern_rng_set_offset(off0 + 1);
    fern_tensor *z = fern_rand_normal(FERN_F32, 1, shape, 0, 1);
    assert_true(same_bytes(y, z));
    fern_rng_set_offset(off0);
    fern_tensor *w = fern_rand_normal(FERN_F32, 1, shape, 0, 1);
    assert_true(same_bytes(x, w));

    /* by-name call with pinned seed/offset replays the public function */
    fern_attr at[6];
    const char *names[6] = {"shape", "dtype", "mean", "std", "seed", "offset"};
    memset(at, 0, sizeof at);
    at[0].kind = FERN_ATTR_INTS;
    at[0].n = 1;
    at[0].ints[0] = 257;
    at[1].kind = FERN_ATTR_DTYPE;
    at[1].n = 1;
    at[1].i = FERN_F32;
    at[2].kind = FERN_ATTR_FLOAT;
    at[2].n = 1;
    at[2].f = 0;
    at[3].kind = FERN_ATTR_FLOAT;
    at[3].n = 1;
    at[3].f = 1;
    at[4].kind = FERN_ATTR_INT;
    at[4].n = 1;
    at[4].i = 77;
    at[5].kind = FERN_ATTR_INT;
    at[5].n = 1;
    at[5].i = (int64_t)off0 + 1;
    fern_tensor *out = NULL;
    assert_int_equal(fern_op_invoke("rand_normal", 0, NULL, 6, names, at, 1, &out), FERN_OK);
    assert_true(same_bytes(out, y));
    /* without seed the by-name call draws from the generator and advances it */
    uint64_t before = fern_rng_offset();
    fern_tensor *out2 = NULL;
    assert_int_equal(fern_op_invoke("rand_normal", 0, NULL, 4, names, at, 1, &out2), FERN_OK);
    assert_int_equal(fern_rng_offset(), before + 1);
    fern_rng_set_offset(before);
    fern_tensor *again = fern_rand_normal(FERN_F32, 1, shape, 0, 1);
    assert_true(same_bytes(out2, again));
}

static void expect_error(fern_tensor *t, const char *op, const char *words)
{
    if (t)
        fail_msg("%s: expected an error containing '%s'", op, words);
    const char *m = fern_last_error();
    if (!strstr(m, op) || !strstr(m, words))
        fail_msg("%s: error '%s' should name the op and contain '%s'", op, m, words);
    fern_clear_error();
}

static void test_errors(void **state)
{
    (void)state;
    int64_t shape[2] = {2, 3}, neg[2] = {2, -1};
    expect_error(fern_rand_uniform(FERN_F32, 2, shape, 1, 1), "rand_uniform", "low must be less");
    expect_error(fern_rand_uniform(FERN_F32, 2, shape, 2, 1), "rand_uniform", "low must be less");
    expect_error(fern_rand_uniform(FERN_I32, 2, shape, 0, 1), "rand_uniform", "float type");
    expect_error(fern_rand_uniform(FERN_F32, 2, neg, 0, 1), "rand_uniform", "negative dimension");
    expect_error(fern_rand_uniform(FERN_F32, 2, shape, 0, INFINITY), "rand_uniform", "finite");
    expect_error(fern_rand_normal(FERN_F32, 2, shape, 0, -1), "rand_normal", "std must be >= 0");
    expect_error(fern_rand_normal(FERN_F64, 2, shape, NAN, 1), "rand_normal", "finite");
    expect_error(fern_rand_normal(FERN_BOOL, 2, shape, 0, 1), "rand_normal", "float type");
    expect_error(fern_rand_truncated_normal(FERN_F32, 2, shape, 0, -1, -2, 2),
                 "rand_truncated_normal", "std must be >= 0");
    expect_error(fern_rand_truncated_normal(FERN_F32, 2, shape, 0, 1, 2, 2),
                 "rand_truncated_normal", "a < b");
    expect_error(fern_rand_truncated_normal(FERN_F32, 2, shape, 0, 1, 3, -3),
                 "rand_truncated_normal", "a < b");
    expect_error(fern_bernoulli(FERN_F32, 2, shape, -0.1), "bernoulli", "p must be in [0, 1]");
    expect_error(fern_bernoulli(FERN_F32, 2, shape, 1.5), "bernoulli", "p must be in [0, 1]");
    expect_error(fern_bernoulli(FERN_F32, 2, shape, NAN), "bernoulli", "p must be in [0, 1]");
    expect_error(fern_randint(5, 5, FERN_I64, 2, shape), "randint", "low must be less");
    expect_error(fern_randint(-1, 10, FERN_U8, 2, shape), "randint", "does not fit");
    expect_error(fern_randint(0, 1 << 20, FERN_I8, 2, shape), "randint", "does not fit");
    expect_error(fern_randint(0, 10, FERN_F32, 2, shape), "randint", "integer type");
    expect_error(fern_randperm(-1, FERN_I64), "randperm", "non-negative");
    expect_error(fern_randperm(10, FERN_BOOL), "randperm", "dtype");
    expect_error(fern_randperm((int64_t)1 << 40, FERN_I32), "randperm", "too large");
    /* by name: a missing high means high = 0 = low */
    fern_tensor *out = NULL;
    assert_int_not_equal(fern_op_invoke("randint", 0, NULL, 0, NULL, NULL, 1, &out), FERN_OK);
    assert_null(out);
    assert_non_null(strstr(fern_last_error(), "randint"));
    fern_clear_error();
}

static void test_no_leaks(void **state)
{
    (void)state;
    fern_scope_end(); /* leave the fixture's scope to measure cleanly */
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_scope_begin();
    for (int k = 0; k < N_DRAW_KINDS; k++)
        assert_non_null(draw(k, 5000));
    int64_t shape[1] = {4};
    fern_rand_normal(FERN_F32, 1, shape, 0, -1); /* an error */
    fern_clear_error();
    fern_scope_end();
    assert_int_equal(fern_alloc_get_stats(FERN_CPU).current_bytes, before);
    fern_scope_begin();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_seed_same_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_count_invariance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_uniform, setup, teardown),
        cmocka_unit_test_setup_teardown(test_normal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_normal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bernoulli, setup, teardown),
        cmocka_unit_test_setup_teardown(test_randint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_randperm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_offset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_leaks, setup, teardown),
    };
    return cmocka_run_group_tests_name("random", tests, NULL, NULL);
}
