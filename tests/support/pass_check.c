/* Helpers of the compiler-pass tests (test_passes.c, test_fusion.c): IR
 * parsing, random inputs for a graph's parameters, running graphs and
 * comparing results, the before/after check of one pass, and graph against
 * pynative mode for traced functions. Failures are cmocka failures. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pass_check.h"

fern_module *parse_ok(const char *text)
{
    fern_module *m = fern_module_parse(text);
    if (!m)
        fail_msg("parse failed: %s\n%s", fern_last_error(), text);
    if (fern_module_verify(m) != FERN_OK)
        fail_msg("verify failed: %s", fern_last_error());
    return m;
}

/* A random tensor for a value type; symbolic dims become 3. Floats are
 * uniform in [lo, hi]; integers in [-5, 5]; bools 0/1. */
fern_tensor *random_for(fern_dtype dt, int nd, const int64_t *dims, double lo, double hi)
{
    int64_t shape[FERN_MAX_DIMS];
    for (int d = 0; d < nd; d++)
        shape[d] = dims[d] >= 0 ? dims[d] : 3;
    if (fern_dtype_is_float(dt))
        return fern_rand_uniform(dt, nd, shape, lo, hi);
    if (dt == FERN_BOOL) {
        fern_tensor *r = fern_randint(0, 2, FERN_I64, nd, shape);
        fern_tensor *b = fern_cast(r, FERN_BOOL);
        fern_release(r);
        return b;
    }
    return fern_randint(-5, 6, dt, nd, shape);
}

int make_inputs(const fern_graph *g, fern_tensor **in, double lo, double hi)
{
    int n = 0;
    for (int p = 0; p < g->n_params; p++) {
        if (g->is_capture[p])
            continue;
        const ir_value *v = &g->values[g->params[p]];
        in[n] = random_for(v->dtype, v->ndim, v->shape, lo, hi);
        assert_non_null(in[n]);
        n++;
    }
    return n;
}

void run_graph(const fern_graph *g, int n_in, fern_tensor **in, fern_tensor **out)
{
    if (fern_graph_run(g, n_in, in, g->n_outputs, out) != FERN_OK)
        fail_msg("run @%s failed: %s", g->name, fern_last_error());
}

void assert_close_t(const fern_tensor *a, const fern_tensor *b, double rtol)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(fern_tensor_dtype(a), fern_tensor_dtype(b));
    assert_int_equal(fern_tensor_ndim(a), fern_tensor_ndim(b));
    for (int d = 0; d < fern_tensor_ndim(a); d++)
        assert_int_equal(fern_tensor_dim(a, d), fern_tensor_dim(b, d));
    for (int64_t i = 0; i < fern_tensor_numel(a); i++) {
        double x = fern_tensor_get_flat(a, i), y = fern_tensor_get_flat(b, i);
        if (isnan(x) && isnan(y))
            continue;
        if (x == y)
            continue;
        if (!(fabs(x - y) <= rtol * fabs(y)))
            fail_msg("element %lld: %.17g vs %.17g", (long long)i, x, y);
    }
}

void release_all(fern_tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        fern_release(t[i]);
}

void assert_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("IR differs.\n--- got:\n%s--- expected:\n%s", got, want);
}

/* The round trip of a rewritten module through its text form. */
void assert_reparses(const fern_module *m)
{
    char *once = fern_module_print(m);
    assert_non_null(once);
    fern_module *m2 = parse_ok(once);
    char *twice = fern_module_print(m2);
    assert_text(twice, once);
    free(once);
    free(twice);
    fern_module_free(m2);
}

/* Parse `before`, run it, apply `pass` to @main (expecting `changes`
 * changes), compare the printed @main with `after`, run it again on the
 * same inputs (results within rtol), check the fixpoint and the text round
 * trip. Inputs are uniform in [lo, hi]. `bind` (optional) binds captures. */
void check_pass_ex(const char *before, pass_fn pass, int changes, const char *after,
                   double lo, double hi, double rtol, void (*bind)(fern_module *))
{
    fern_clear_error();
    fern_module *m = parse_ok(before);
    if (bind)
        bind(m);
    fern_graph *g = fern_module_main(m);
    fern_tensor *in[16], *ref[8] = {0}, *got[8] = {0};
    int n_in = make_inputs(g, in, lo, hi);
    fern_seed(99); /* random ops draw the same values in both runs */
    run_graph(g, n_in, in, ref);
    int c = pass(g);
    if (c < 0)
        fail_msg("pass failed: %s", fern_last_error());
    if (fern_module_verify(m) != FERN_OK)
        fail_msg("rewritten module does not verify: %s", fern_last_error());
    char *text = fern_graph_print(g);
    assert_text(text, after);
    free(text);
    assert_int_equal(c, changes);
    assert_int_equal(fern_last_status(), FERN_OK);
    fern_seed(99);
    run_graph(g, n_in, in, got);
    for (int k = 0; k < g->n_outputs; k++)
        assert_close_t(got[k], ref[k], rtol);
    assert_int_equal(pass(g), 0); /* fixpoint */
    assert_reparses(m);
    release_all(in, n_in);
    release_all(ref, g->n_outputs);
    release_all(got, g->n_outputs);
    fern_module_free(m);
}

void check_pass(const char *before, pass_fn pass, int changes, const char *after)
{
    check_pass_ex(before, pass, changes, after, -2.0, 2.0, 0.0, NULL);
}

void both_modes(fern_fn *f, int n_in, fern_tensor **in, int n_out, double rtol)
{
    fern_tensor *a[8] = {0}, *b[8] = {0};
    fern_scope_begin(); /* owns the outputs */
    fern_set_mode(FERN_PYNATIVE_MODE);
    if (fern_call(f, n_in, in, n_out, a) != FERN_OK)
        fail_msg("pynative: %s", fern_last_error());
    fern_set_mode(FERN_GRAPH_MODE);
    if (fern_call(f, n_in, in, n_out, b) != FERN_OK)
        fail_msg("graph: %s", fern_last_error());
    fern_set_mode(FERN_PYNATIVE_MODE);
    for (int k = 0; k < n_out; k++)
        assert_close_t(b[k], a[k], rtol);
    fern_scope_end();
}

/* The compiled graph of a jitted function, parsed back from its dump. */
fern_module *compiled_module(const fern_fn *f)
{
    char *text = fern_jit_dump(f);
    assert_non_null(text);
    fern_module *m = parse_ok(text);
    free(text);
    return m;
}
