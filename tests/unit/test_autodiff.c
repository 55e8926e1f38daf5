/* Autodiff end to end: higher-order derivatives, composition with jit,
 * value_and_grad, parameter gradients, stop_gradient, custom_vjp, jvp and
 * Hessian-vector products, and gradients through cond/while/scan — each in
 * pynative and graph mode, checked against closed forms or float64 finite
 * differences. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

static const fern_mode modes[2] = {FERN_PYNATIVE_MODE, FERN_GRAPH_MODE};

static double scalar_of(fern_tensor *t)
{
    if (!t)
        fail_msg("NULL result: %s", fern_last_error());
    return fern_tensor_get_flat(t, 0);
}

static double call_scalar(fern_fn *f, fern_tensor *x)
{
    fern_tensor *y = fern_call1(f, 1, &x);
    return scalar_of(y);
}

/* ---- x*x*x ---------------------------------------------------------------- */
static int cube(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul(fern_mul(in[0], in[0]), in[0]);
    return out[0] ? 0 : -1;
}

static void test_cube_higher_order(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_scope_begin();
        fern_fn *f = fern_fn_new(cube, NULL, 1, 1);
        fern_fn *d1 = fern_grad(f, 0), *d2 = fern_grad(d1, 0), *d3 = fern_grad(d2, 0);
        fern_fn *d4 = fern_grad(d3, 0);
        fern_tensor *x = fern_scalar(FERN_F32, 2.0);
        assert_true(fabs(call_scalar(d1, x) - 12.0) < 1e-5);
        assert_true(fabs(call_scalar(d2, x) - 12.0) < 1e-5);
        assert_true(fabs(call_scalar(d3, x) - 6.0) < 1e-5);
        assert_true(fabs(call_scalar(d4, x) - 0.0) < 1e-5);
        /* jit composes on either side */
        fern_fn *jf = fern_jit(f);
        fern_fn *j = fern_jit(d2), *g = fern_grad(jf, 0);
        assert_true(fabs(call_scalar(j, x) - 12.0) < 1e-5);
        assert_true(fabs(call_scalar(g, x) - 12.0) < 1e-5);
        fern_fn_release(j);
        fern_fn_release(g);
        fern_fn_release(jf);
        fern_fn_release(d4);
        fern_fn_release(d3);
        fern_fn_release(d2);
        fern_fn_release(d1);
        fern_fn_release(f);
        fern_scope_end();
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* ---- value_and_grad with an auxiliary output, several argnums ---------- */
static int two_in(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* loss = sum(a * b^2), aux = a + b */
    out[0] = fern_sum(fern_mul(in[0], fern_square(in[1])), NULL, 0, 0);
    out[1] = fern_add(in[0], in[1]);
    return out[0] && out[1] ? 0 : -1;
}

static void test_value_and_grad(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_scope_begin();
        fern_fn *f = fern_fn_new(two_in, NULL, 2, 2);
        int pos[2] = {0, 1};
        fern_fn *vg = fern_value_and_grad(f, pos, 2);
        fern_tensor *a = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){1, -2, 3});
        fern_tensor *b = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){0.5, 4, -1});
        fern_tensor *out[4];
        assert_int_equal(fern_call(vg, 2, (fern_tensor *[]){a, b}, 4, out), FERN_OK);
        assert_true(fabs(scalar_of(out[0]) - (0.25 - 32 + 3)) < 1e-12);
        assert_true(fern_tensor_get_flat(out[1], 1) == 2.0); /* aux passes through */
        for (int i = 0; i < 3; i++) {
            double av = fern_tensor_get_flat(a, i), bv = fern_tensor_get_flat(b, i);
            assert_true(fabs(fern_tensor_get_flat(out[2], i) - bv * bv) < 1e-12);
            assert_true(fabs(fern_tensor_get_flat(out[3], i) - 2 * av * bv) < 1e-12);
        }
        /* an integer input has no gradient: a clear error */
        fern_fn *gi = fern_grad(f, 1);
        fern_tensor *ib = fern_from_data(FERN_I64, 1, (int64_t[]){3}, (int64_t[]){1, 2, 3});
        fern_tensor *r = NULL;
        assert_int_not_equal(fern_call(gi, 2, (fern_tensor *[]){a, ib}, 1, &r), FERN_OK);
        assert_non_null(strstr(fern_last_error(), "only float inputs"));
        fern_clear_error();
        fern_fn_release(gi);
        fern_fn_release(vg);
        fern_fn_release(f);
        fern_scope_end();
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* ---- gradients w.r.t. parameters (weights the function captures) -------- */
typedef struct {
    fern_tensor *w, *b;
} lin;

static int lin_loss(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    lin *l = ud; /* mean(tanh(x @ w + b)^2) */
    fern_tensor *y = fern_tanh(fern_add(fern_matmul(in[0], l->w), l->b));
    out[0] = fern_mean(fern_square(y), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

static void test_param_grads(void **state)
{
    (void)state;
    fern_seed(3);
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_scope_begin();
        lin l = {fern_rand_normal(FERN_F64, 2, (int64_t[]){4, 3}, 0, 0.5),
                 fern_rand_normal(FERN_F64, 1, (int64_t[]){3}, 0, 0.5)};
        fern_tensor *x = fern_rand_normal(FERN_F64, 2, (int64_t[]){5, 4}, 0, 1);
        fern_fn *f = fern_fn_new(lin_loss, &l, 1, 1);
        fern_fn *vg = fern_value_and_grad_params(f, (fern_tensor *[]){l.w, l.b}, 2);
        fern_tensor *out[3];
        assert_int_equal(fern_call(vg, 1, &x, 3, out), FERN_OK);
        fern_tensor *ps[2] = {l.w, l.b};
        for (int p = 0; p < 2; p++) {
            double *d = fern_tensor_data(ps[p]);
            for (int64_t i = 0; i < fern_tensor_numel(ps[p]); i++) {
                double x0 = d[i], eps = 1e-6;
                fern_set_mode(FERN_PYNATIVE_MODE);
                d[i] = x0 + eps;
                double up = call_scalar(f, x);
                d[i] = x0 - eps;
                double dn = call_scalar(f, x);
                d[i] = x0;
                fern_set_mode(modes[m]);
                double num = (up - dn) / (2 * eps);
                assert_true(fabs(num - fern_tensor_get_flat(out[1 + p], i)) < 1e-7);
            }
        }
        fern_fn_release(vg);
        fern_fn_release(f);
        fern_scope_end();
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* ---- stop_gradient and custom_vjp --------------------------------------- */
static int stopped(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* x * sg(x): gradient is sg(x) = x, not 2x */
    out[0] = fern_mul(in[0], fern_stop_gradient(in[0]));
    return out[0] ? 0 : -1;
}

static int expf_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_exp(in[0]);
    return out[0] ? 0 : -1;
}

static int expf_bwd(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* (x, y, g) -> 3 * g * y: deliberately not the true gradient */
    out[0] = fern_mul_scalar(fern_mul(in[2], in[1]), 3.0);
    return out[0] ? 0 : -1;
}

static void test_stop_gradient_and_custom(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_scope_begin();
        fern_fn *f = fern_fn_new(stopped, NULL, 1, 1), *g = fern_grad(f, 0);
        fern_tensor *x = fern_scalar(FERN_F64, 1.5);
        assert_true(fabs(call_scalar(g, x) - 1.5) < 1e-12);
        fern_fn *e = fern_fn_new(expf_body, NULL, 1, 1), *b = fern_fn_new(expf_bwd, NULL, 3, 1);
        fern_fn *c = fern_custom_vjp(e, b), *gc = fern_grad(c, 0), *ggc = fern_grad(gc, 0);
        assert_true(fabs(call_scalar(c, x) - exp(1.5)) < 1e-12);
        assert_true(fabs(call_scalar(gc, x) - 3 * exp(1.5)) < 1e-9);
        /* the backward is differentiable: d/dx 3*exp(x) (through y) */
        assert_true(fabs(call_scalar(ggc, x) - 9 * exp(1.5)) < 1e-8);
        fern_fn_release(ggc);
        fern_fn_release(gc);
        fern_fn_release(c);
        fern_fn_release(b);
        fern_fn_release(e);
        fern_fn_release(g);
        fern_fn_release(f);
        fern_scope_end();
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* ---- jvp and Hessian-vector products ------------------------------------ */
static int sinx(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* f(x) = sum(sin(x) * x) */
    out[0] = fern_sum(fern_mul(fern_sin(in[0]), in[0]), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

static int elem(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* elementwise: sin(x) * x */
    out[0] = fern_mul(fern_sin(in[0]), in[0]);
    return out[0] ? 0 : -1;
}

static void test_jvp_and_hvp(void **state)
{
    (void)state;
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_scope_begin();
        double xs[3] = {0.3, -1.2, 2.0}, ts[3] = {1.0, 0.5, -2.0};
        fern_tensor *x = fern_from_data(FERN_F64, 1, (int64_t[]){3}, xs);
        fern_tensor *t = fern_from_data(FERN_F64, 1, (int64_t[]){3}, ts);
        fern_fn *e = fern_fn_new(elem, NULL, 1, 1);
        fern_tensor *y, *ty;
        assert_int_equal(fern_jvp(e, 1, &x, &t, &y, &ty), FERN_OK);
        for (int i = 0; i < 3; i++) {
            double d = cos(xs[i]) * xs[i] + sin(xs[i]);
            assert_true(fabs(fern_tensor_get_flat(ty, i) - d * ts[i]) < 1e-10);
        }
        /* Hessian-vector product: jvp of grad. H is diagonal here:
         * d2/dx2 (x sin x) = 2 cos x - x sin x */
        fern_fn *f = fern_fn_new(sinx, NULL, 1, 1), *g = fern_grad(f, 0);
        fern_tensor *gx, *hv;
        assert_int_equal(fern_jvp(g, 1, &x, &t, &gx, &hv), FERN_OK);
        for (int i = 0; i < 3; i++) {
            double h = 2 * cos(xs[i]) - xs[i] * sin(xs[i]);
            assert_true(fabs(fern_tensor_get_flat(hv, i) - h * ts[i]) < 1e-10);
        }
        fern_fn_release(g);
        fern_fn_release(f);
        fern_fn_release(e);
        fern_scope_end();
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
}

/* ---- control flow --------------------------------------------------------- */
static fern_fn *then_fn, *else_fn, *wcond, *wbody, *sbody;

static int br_then(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul(fern_sin(in[0]), in[1]);
    return out[0] ? 0 : -1;
}

static int br_else(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul(fern_square(in[0]), fern_exp(in[1]));
    return out[0] ? 0 : -1;
}

static int with_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* branch on sign of sum(x); y is used inside the branches */
    fern_tensor *p = fern_gt(fern_sum(in[0], NULL, 0, 0), fern_scalar(FERN_F64, 0));
    fern_tensor *r;
    if (fern_cond(p, then_fn, else_fn, 2, in, 1, &r) != FERN_OK)
        return -1;
    out[0] = fern_sum(r, NULL, 0, 0);
    return out[0] ? 0 : -1;
}

static int w_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_lt(fern_sum(fern_abs(in[0]), NULL, 0, 0), fern_scalar(FERN_F64, 20));
    return out[0] ? 0 : -1;
}

static int w_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* x <- x * 1.5 + sin(x) * w */
    out[0] = fern_add(fern_mul_scalar(in[0], 1.5), fern_mul(fern_sin(in[0]), in[1]));
    out[1] = in[1];
    return out[0] ? 0 : -1;
}

static int with_while(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    fern_tensor *r[2];
    if (fern_while_loop(wcond, wbody, 2, in, r, 100) != FERN_OK)
        return -1;
    out[0] = fern_sum(fern_square(r[0]), NULL, 0, 0);
    return out[0] ? 0 : -1;
}

static int s_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* carry c <- tanh(c * x_t + w) ; y_t = c * x_t */
    out[0] = fern_tanh(fern_add(fern_mul(in[0], in[2]), in[1]));
    out[1] = in[1];
    out[2] = fern_mul(out[0], in[2]);
    return out[0] && out[2] ? 0 : -1;
}

static int with_scan(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* in: c0 (3), w (3), xs (4,3) */
    fern_tensor *r[3];
    if (fern_scan(sbody, 2, in, 1, in + 2, 3, r) != FERN_OK)
        return -1;
    out[0] = fern_add(fern_sum(r[0], NULL, 0, 0), fern_sum(fern_square(r[2]), NULL, 0, 0));
    return out[0] ? 0 : -1;
}

/* Check all input gradients of f against finite differences in both modes. */
static void check_fd(fern_fn *f, int n_in, fern_tensor **in)
{
    int pos[8];
    for (int i = 0; i < n_in; i++)
        pos[i] = i;
    fern_fn *g = fern_grad_n(f, pos, n_in);
    for (int m = 0; m < 2; m++) {
        fern_clear_error();
        fern_set_mode(modes[m]);
        fern_tensor *gr[8];
        if (fern_call(g, n_in, in, n_in, gr) != FERN_OK)
            fail_msg("mode %d: %s", m, fern_last_error());
        fern_set_mode(FERN_PYNATIVE_MODE);
        for (int i = 0; i < n_in; i++) {
            double *d = fern_tensor_data(in[i]);
            for (int64_t j = 0; j < fern_tensor_numel(in[i]); j++) {
                double x0 = d[j], eps = 1e-6;
                fern_tensor *o;
                d[j] = x0 + eps;
                fern_call(f, n_in, in, 1, &o);
                double up = scalar_of(o);
                d[j] = x0 - eps;
                fern_call(f, n_in, in, 1, &o);
                double dn = scalar_of(o);
                d[j] = x0;
                double num = (up - dn) / (2 * eps), ana = fern_tensor_get_flat(gr[i], j);
                if (!(fabs(num - ana) <= 1e-6 + 1e-6 * fabs(num)))
                    fail_msg("mode %d input %d element %lld: autodiff %.10g vs fd %.10g", m, i,
                             (long long)j, ana, num);
            }
        }
    }
    fern_fn_release(g);
}

static void test_control_flow_grads(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    then_fn = fern_fn_new(br_then, NULL, 2, 1);
    else_fn = fern_fn_new(br_else, NULL, 2, 1);
    wcond = fern_fn_new(w_cond, NULL, 2, 1);
    wbody = fern_fn_new(w_body, NULL, 2, 2);
    sbody = fern_fn_new(s_body, NULL, 3, 3);
    fern_fn *fc = fern_fn_new(with_cond, NULL, 2, 1);
    fern_tensor *x = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){0.5, 1.0, -0.2});
    fern_tensor *y = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){0.3, -0.7, 1.1});
    check_fd(fc, 2, (fern_tensor *[]){x, y}); /* then branch */
    fern_tensor *xn = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){-0.5, 1.0, -0.9});
    check_fd(fc, 2, (fern_tensor *[]){xn, y}); /* else branch */

    fern_fn *fw = fern_fn_new(with_while, NULL, 2, 1);
    fern_tensor *wx = fern_from_data(FERN_F64, 1, (int64_t[]){2}, (double[]){0.4, -0.3});
    fern_tensor *ww = fern_from_data(FERN_F64, 1, (int64_t[]){2}, (double[]){0.2, 0.1});
    check_fd(fw, 2, (fern_tensor *[]){wx, ww});

    fern_fn *fs = fern_fn_new(with_scan, NULL, 3, 1);
    fern_tensor *c0 = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){0.1, -0.2, 0.3});
    fern_tensor *sw = fern_from_data(FERN_F64, 1, (int64_t[]){3}, (double[]){0.05, 0.4, -0.3});
    fern_tensor *sx = fern_rand_uniform(FERN_F64, 2, (int64_t[]){4, 3}, -1, 1);
    check_fd(fs, 3, (fern_tensor *[]){c0, sw, sx});

    /* second order through cond in graph mode: d2/dx2 of sum(sin(x)*y) */
    fern_fn *g1 = fern_grad(fc, 0);
    fern_fn *sum_g1 = fern_jit(g1);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *gx = fern_call1(sum_g1, 2, (fern_tensor *[]){x, y});
    fern_set_mode(FERN_PYNATIVE_MODE);
    for (int i = 0; i < 3; i++)
        assert_true(fabs(fern_tensor_get_flat(gx, i) - cos(fern_tensor_get_flat(x, i)) *
                                                          fern_tensor_get_flat(y, i)) < 1e-10);
    fern_fn_release(sum_g1);
    fern_fn_release(g1);
    fern_fn_release(fc);
    fern_fn_release(fw);
    fern_fn_release(fs);
    fern_fn_release(then_fn);
    fern_fn_release(else_fn);
    fern_fn_release(wcond);
    fern_fn_release(wbody);
    fern_fn_release(sbody);
    fern_scope_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cube_higher_order),     cmocka_unit_test(test_value_and_grad),
        cmocka_unit_test(test_param_grads),           cmocka_unit_test(test_stop_gradient_and_custom),
        cmocka_unit_test(test_jvp_and_hvp),           cmocka_unit_test(test_control_flow_grads),
    };
    return cmocka_run_group_tests_name("autodiff", tests, NULL, NULL);
}
