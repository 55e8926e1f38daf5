/* The op reference harness: runs every case of a .cases file (written by
 * tests/gen/gen_*.py from NumPy/PyTorch) through the registry by name and
 * compares outputs, dtypes and shapes; error cases must fail cleanly with
 * the expected words in the message. Each case also checks that it leaks
 * no tensor memory. One cmocka test per case. */
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

#include "../support/cases.h"

static void default_tol(fern_dtype dt, double *rtol, double *atol)
{
    switch (dt) {
    case FERN_F32: *rtol = 1e-5; *atol = 1e-6; break;
    case FERN_F64: *rtol = 1e-10; *atol = 1e-12; break;
    case FERN_F16: *rtol = 2e-3; *atol = 1e-3; break;
    case FERN_BF16: *rtol = 1.6e-2; *atol = 1e-2; break;
    default: *rtol = 0; *atol = 0; break;
    }
}

static void run_case(void **state)
{
    const test_case *c = *state;
    while (fern_scope_depth() > 0) /* a failed case jumps out of its scope */
        fern_scope_end();
    fern_clear_error();
    size_t before = fern_alloc_get_stats(FERN_CPU).current_bytes;
    fern_scope_begin();
    fern_tensor *ins[16];
    for (int i = 0; i < c->n_in; i++) {
        ins[i] = make_input(&c->in[i]);
        if (c->in[i].present && !ins[i])
            fail_msg("%s: could not build input %d: %s", c->name, i, fern_last_error());
    }
    int n_out = c->error ? 1 : c->n_out;
    fern_tensor *outs[8] = {0};
    const fern_op_def *def = fern_op_find(c->op);
    if (c->error && def) {
        /* ask for as many outputs as the op has, so only the inputs are wrong */
        char d[512];
        fern_op_describe(def, d, sizeof d);
        const char *o = strstr(d, "out=");
        if (o)
            n_out = atoi(o + 4);
    }
    fern_status st = fern_op_invoke(c->op, c->n_in, ins, c->n_attrs,
                                    (const char *const *)c->attr_names, c->attrs, n_out, outs);
    if (c->error) {
        if (st == FERN_OK)
            fail_msg("%s: expected an error containing '%s', but %s succeeded", c->name, c->error,
                     c->op);
        if (!strstr(fern_last_error(), c->error))
            fail_msg("%s: error message '%s' does not contain '%s'", c->name, fern_last_error(),
                     c->error);
        if (!strstr(fern_last_error(), c->op))
            fail_msg("%s: error message '%s' does not name the op '%s'", c->name,
                     fern_last_error(), c->op);
    } else {
        if (st != FERN_OK)
            fail_msg("%s: %s failed: %s", c->name, c->op, fern_last_error());
        for (int k = 0; k < c->n_out; k++) {
            const tensor_spec *e = &c->out[k];
            fern_tensor *o = outs[k];
            char got[160];
            fern_tensor_desc(o, got, sizeof got);
            if (fern_tensor_dtype(o) != e->dtype || fern_tensor_ndim(o) != e->ndim ||
                memcmp(fern_tensor_shape(o), e->shape, sizeof(int64_t) * (size_t)e->ndim)) {
                char want[160];
                int64_t sh[FERN_MAX_DIMS];
                memcpy(sh, e->shape, sizeof sh);
                fern_tensor *w = fern_empty(e->dtype, e->ndim, sh);
                fern_tensor_desc(w, want, sizeof want);
                fail_msg("%s: output %d is %s, expected %s", c->name, k, got, want);
            }
            double rtol, atol;
            default_tol(e->dtype, &rtol, &atol);
            if (c->has_tol && fern_dtype_is_float(e->dtype)) {
                rtol = c->rtol;
                atol = c->atol;
            }
            for (int64_t i = 0; i < e->n; i++) {
                double g = fern_tensor_get_flat(o, i), w = e->data[i];
                int ok = (isnan(w) && isnan(g)) || g == w || fabs(g - w) <= atol + rtol * fabs(w);
                if (!ok)
                    fail_msg("%s: output %d %s differs at flat index %lld: got %.9g, expected %.9g "
                             "(rtol %g, atol %g)",
                             c->name, k, got, (long long)i, g, w, rtol, atol);
            }
        }
    }
    fern_scope_end();
    size_t after = fern_alloc_get_stats(FERN_CPU).current_bytes;
    if (after != before)
        fail_msg("%s: leaked %zd bytes of tensor memory", c->name, (ssize_t)(after - before));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE.cases [FILTER]\n", argv[0]);
        return 2;
    }
    int n = 0;
    test_case *cases = load_cases(argv[1], &n);
    if (!cases)
        return 1;
    struct CMUnitTest *tests = calloc((size_t)(n ? n : 1), sizeof *tests);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 2 && !strstr(cases[i].name, argv[2]))
            continue;
        tests[m].name = cases[i].name;
        tests[m].test_func = run_case;
        tests[m].initial_state = &cases[i];
        m++;
    }
    const char *base = strrchr(argv[1], '/');
    int rc = _cmocka_run_group_tests(base ? base + 1 : argv[1], tests, (size_t)m, NULL, NULL);
    free(tests);
    free_cases(cases, n);
    return rc;
}
