/* The gradient harness: for every reference case (tests/gen/gen_*.py) of an op
 * that has a gradient rule, check the op's VJP against central finite
 * differences in float64 (inputs converted to f64, random cotangents), in
 * pynative mode and in graph mode. Points where the function is not smooth
 * (two step sizes disagree) are skipped, as are inputs with nan/inf. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../support/cases.h"

typedef struct {
    const test_case *c;
    int n_out;
    fern_tensor *fixed[16]; /* non-float inputs, captured */
} op_ud;

/* the fn takes only the present inputs; absent optional ones are NULL slots */
static int invoke_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    op_ud *u = ud;
    const test_case *c = u->c;
    fern_tensor *full[16];
    for (int i = 0, k = 0; i < c->n_in; i++)
        full[i] = !c->in[i].present ? NULL : u->fixed[i] ? u->fixed[i] : in[k++];
    return fern_op_invoke(c->op, c->n_in, full, c->n_attrs, (const char *const *)c->attr_names,
                          c->attrs, u->n_out, out) == FERN_OK ? 0 : -1;
}

static double lcg_uniform(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return ((*s >> 11) * (1.0 / 9007199254740992.0)) * 2.0 - 1.0;
}

/* sum_k <cot_k, f(in)_k> */
static double objective(fern_fn *f, fern_tensor **in, int n_in, fern_tensor **cot, int n_out, int *ok)
{
    fern_tensor *o[8] = {0};
    fern_scope_begin();
    double s = 0;
    if (fern_call(f, n_in, in, n_out, o) != FERN_OK) {
        *ok = 0;
    } else {
        for (int k = 0; k < n_out; k++) {
            if (!cot[k])
                continue;
            for (int64_t i = 0; i < fern_tensor_numel(o[k]); i++)
                s += fern_tensor_get_flat(cot[k], i) * fern_tensor_get_flat(o[k], i);
        }
    }
    fern_scope_end();
    return s;
}

static int checked, skipped_points;

static void run_case(void **state)
{
    const test_case *c = *state;
    while (fern_scope_depth() > 0)
        fern_scope_end();
    fern_clear_error();
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_scope_begin();
    fern_tensor *in[16], *fd_in[16];
    int n_in = 0;
    op_ud u = {c, c->n_out, {0}};
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i].present)
            continue;
        if (!fern_dtype_is_float(c->in[i].dtype)) {
            u.fixed[i] = make_input_as(&c->in[i], FERN_F64);
            continue;
        }
        in[n_in] = make_input_as(&c->in[i], FERN_F64);
        fd_in[n_in] = fern_clone(in[n_in]);
        n_in++;
    }
    fern_fn *f = fern_fn_new(invoke_body, &u, n_in, c->n_out);
    fern_tensor *outs[8] = {0};
    if (fern_call(f, n_in, in, c->n_out, outs) != FERN_OK)
        fail_msg("%s: forward failed in f64: %s", c->name, fern_last_error());
    fern_tensor *cot[8] = {0};
    uint64_t seed = 12345;
    for (int k = 0; k < c->n_out; k++) {
        if (fern_tensor_dtype(outs[k]) != FERN_F64)
            continue;
        cot[k] = fern_empty(FERN_F64, fern_tensor_ndim(outs[k]), fern_tensor_shape(outs[k]));
        double *p = fern_tensor_data(cot[k]);
        for (int64_t i = 0; i < fern_tensor_numel(outs[k]); i++)
            p[i] = lcg_uniform(&seed);
    }
    fern_tensor *o2[8], *g[16] = {0};
    if (fern_vjp(f, n_in, in, cot, o2, g) != FERN_OK)
        fail_msg("%s: vjp failed: %s", c->name, fern_last_error());

    /* graph mode: the same vjp compiled */
    fern_fn *gs = fern_grad_with_sens(f);
    fern_tensor *args[24], *gg[16] = {0};
    for (int i = 0; i < n_in; i++)
        args[i] = in[i];
    for (int k = 0; k < c->n_out; k++)
        args[n_in + k] = cot[k] ? cot[k] : fern_zeros_like(outs[k]);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_status gst = fern_call(gs, n_in + c->n_out, args, n_in, gg);
    fern_set_mode(FERN_PYNATIVE_MODE);
    if (gst != FERN_OK)
        fail_msg("%s: graph-mode vjp failed: %s", c->name, fern_last_error());

    for (int i = 0; i < n_in; i++) {
        if (!in[i] || fern_tensor_dtype(in[i]) != FERN_F64)
            continue;
        int64_t n = fern_tensor_numel(in[i]);
        double *x = fern_tensor_data(fd_in[i]);
        for (int64_t j = 0; j < n; j++) {
            double ana = fern_tensor_get_flat(g[i], j);
            double gra = fern_tensor_get_flat(gg[i], j);
            if (!(isnan(ana) && isnan(gra)) && ana != gra && !(fabs(ana - gra) <= 1e-9 + 1e-7 * fabs(ana)))
                fail_msg("%s: input %d element %lld: pynative %.12g vs graph %.12g", c->name, i,
                         (long long)j, ana, gra);
            double x0 = x[j], num[2], one_sided[2] = {0, 0};
            int ok = 1;
            double f0 = objective(f, fd_in, n_in, cot, c->n_out, &ok);
            for (int s = 0; s < 2; s++) {
                double eps = (s ? 4e-6 : 1e-6) * fmax(1.0, fabs(x0));
                x[j] = x0 + eps;
                double up = objective(f, fd_in, n_in, cot, c->n_out, &ok);
                x[j] = x0 - eps;
                double dn = objective(f, fd_in, n_in, cot, c->n_out, &ok);
                num[s] = (up - dn) / (2 * eps);
                if (s == 0) {
                    one_sided[0] = (up - f0) / eps;
                    one_sided[1] = (f0 - dn) / eps;
                }
            }
            x[j] = x0;
            if (!ok)
                fail_msg("%s: forward failed during finite differences: %s", c->name, fern_last_error());
            if (!isfinite(f0) || !isfinite(num[0]) || !isfinite(num[1])) { /* nan/inf here (e.g. 0/0) */
                skipped_points++;
                continue;
            }
            double tol = 1e-6 + 1e-5 * fabs(num[0]);
            /* a kink (ties, relu at 0, ...) or a discontinuity: the left and
             * right derivatives differ, or two step sizes disagree */
            if (fabs(num[0] - num[1]) > tol ||
                fabs(one_sided[0] - one_sided[1]) > 1e-4 + 1e-3 * fabs(num[0])) {
                skipped_points++;
                continue;
            }
            if (!(fabs(num[0] - ana) <= tol))
                fail_msg("%s: d/d input %d element %lld: autodiff %.12g, finite differences %.12g",
                         c->name, i, (long long)j, ana, num[0]);
            checked++;
        }
    }
    fern_fn_release(gs);
    fern_fn_release(f);
    fern_scope_end();
}

static int usable(const test_case *c)
{
    if (c->error)
        return 0;
    const fern_op_def *op = fern_op_find(c->op);
    if (!op)
        return 0;
    char d[512];
    fern_op_describe(op, d, sizeof d);
    if (!strstr(d, "grad=yes"))
        return 0; /* no rule (yet) or not differentiable: see test_grad_coverage */
    int any_float = 0;
    int64_t total = 0;
    for (int i = 0; i < c->n_in; i++) {
        const tensor_spec *t = &c->in[i];
        if (!t->present)
            continue;
        total += t->n;
        if (fern_dtype_is_float(t->dtype))
            any_float = 1;
        for (int64_t j = 0; j < t->n; j++) /* finite differences need moderate values */
            if (!isfinite(t->data[j]) || fabs(t->data[j]) > 1e6)
                return 0;
    }
    for (int k = 0; k < c->n_out; k++)
        if (c->out[k].dtype != FERN_F32 && c->out[k].dtype != FERN_F64 && c->out[k].dtype != FERN_F16 &&
            c->out[k].dtype != FERN_BF16 && k == 0)
            return 0;
    return any_float && total > 0 && total <= 3000;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.cases...\n", argv[0]);
        return 2;
    }
    int total = 0, rc = 0;
    for (int a = 1; a < argc; a++) {
        int n = 0;
        test_case *cases = load_cases(argv[a], &n);
        if (!cases)
            return 1;
        struct CMUnitTest *tests = calloc((size_t)(n ? n : 1), sizeof *tests);
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (!usable(&cases[i]))
                continue;
            tests[m].name = cases[i].name;
            tests[m].test_func = run_case;
            tests[m].initial_state = &cases[i];
            m++;
        }
        total += m;
        const char *base = strrchr(argv[a], '/');
        if (m)
            rc |= _cmocka_run_group_tests(base ? base + 1 : argv[a], tests, (size_t)m, NULL, NULL);
        free(tests);
        free_cases(cases, n);
    }
    printf("gradient check: %d cases, %d derivatives checked, %d non-smooth points skipped\n", total,
           checked, skipped_points);
    return rc;
}
