/* The compiler passes. For every pass: hand-written IR "before" text, the
 * pass, the expected "after" text (print form), both graphs run on the same
 * random inputs with the same results, the pass reaching a fixpoint (a
 * second run changes nothing) and the rewritten module printing and
 * parsing back. Then the fused_elementwise op against the unfused ops for
 * every statement kind, its errors, and the whole pipeline on traced
 * functions in graph mode against pynative mode. */
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "compiler/passes.h"
#include "fern/fern.h"
#include "ir/ir_internal.h"

typedef int (*pass_fn)(fern_graph *g);

/* ---- helpers ------------------------------------------------------------- */

static fern_module *parse_ok(const char *text)
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
static fern_tensor *random_for(fern_dtype dt, int nd, const int64_t *dims, double lo, double hi)
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

static int make_inputs(const fern_graph *g, fern_tensor **in, double lo, double hi)
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

static void run_graph(const fern_graph *g, int n_in, fern_tensor **in, fern_tensor **out)
{
    if (fern_graph_run(g, n_in, in, g->n_outputs, out) != FERN_OK)
        fail_msg("run @%s failed: %s", g->name, fern_last_error());
}

static void assert_close_t(const fern_tensor *a, const fern_tensor *b, double rtol)
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

static void release_all(fern_tensor **t, int n)
{
    for (int i = 0; i < n; i++)
        fern_release(t[i]);
}

static void assert_text(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("IR differs.\n--- got:\n%s--- expected:\n%s", got, want);
}

/* The round trip of a rewritten module through its text form. */
static void assert_reparses(const fern_module *m)
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
static void check_pass_ex(const char *before, pass_fn pass, int changes, const char *after,
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

static void check_pass(const char *before, pass_fn pass, int changes, const char *after)
{
    check_pass_ex(before, pass, changes, after, -2.0, 2.0, 0.0, NULL);
}

/* ---- infer ------------------------------------------------------------------ */

static void test_infer(void **state)
{
    (void)state;
    fern_clear_error();
    /* intermediate types that lost their dims (as after a rewrite that
     * could not compute them): infer recovers the symbol N and the sizes;
     * the flattened N*3 is no symbol and stays unknown */
    const char *text = "graph @main(%x: f32[N,4], %w: f32[4,3]) -> (f32[N,3], f32[?]) {\n"
                       "  %0 = matmul(%x, %w)\n"
                       "  %1 = relu(%0)\n"
                       "  %2 = reshape(%1) {shape=[-1]}\n"
                       "  return %1, %2\n"
                       "}\n";
    fern_module *m = parse_ok(text);
    fern_graph *g = fern_module_main(m);
    char *orig = fern_graph_print(g);
    int64_t shape[FERN_MAX_DIMS];
    assert_int_equal(fern_graph_value_shape(g, 4, shape), 1);
    assert_int_equal(shape[0], -1);
    for (int v = 2; v <= 3; v++)
        for (int d = 0; d < g->values[v].ndim; d++)
            g->values[v].shape[d] = -1;
    assert_int_equal(fern__pass_infer(g), 2);
    for (int v = 2; v <= 3; v++) {
        assert_int_equal(fern_graph_value_shape(g, v, shape), 2);
        assert_true(FERN_DIM_IS_SYM(shape[0]));
        assert_string_equal(fern_module_symbol_name(m, FERN_DIM_SYM_INDEX(shape[0])), "N");
        assert_int_equal(shape[1], 3);
    }
    assert_int_equal(fern__pass_infer(g), 0);
    char *back = fern_graph_print(g);
    assert_text(back, orig);
    free(orig);
    free(back);

    /* a node that no longer matches its output type is an error */
    g->values[3].dtype = FERN_F64;
    assert_int_equal(fern__pass_infer(g), -1);
    assert_non_null(strstr(fern_last_error(), "no longer consistent"));
    assert_non_null(strstr(fern_last_error(), "relu"));
    fern_clear_error();
    g->values[3].dtype = FERN_F32;
    g->values[3].shape[1] = 5;
    assert_int_equal(fern__pass_infer(g), -1);
    assert_non_null(strstr(fern_last_error(), "f32[N,5]"));
    fern_clear_error();
    fern_module_free(m);

    /* call and scan outputs refresh from their bodies */
    m = parse_ok("graph @main(%x: f32[T,2], %h: f32[2]) -> (f32[2], f32[T,2]) {\n"
                 "  %0 = call(%h) {fn=@inc}\n"
                 "  %1, %2 = scan(%0, %x) {body=@step, carry=1}\n"
                 "  return %1, %2\n"
                 "}\n"
                 "graph @inc(%a: f32[2]) -> (f32[2]) {\n"
                 "  %b = neg(%a)\n"
                 "  return %b\n"
                 "}\n"
                 "graph @step(%c: f32[2], %xt: f32[2]) -> (f32[2], f32[2]) {\n"
                 "  %d = add(%c, %xt)\n"
                 "  return %d, %d\n"
                 "}\n");
    g = fern_module_main(m);
    orig = fern_graph_print(g);
    g->values[2].shape[0] = -1;
    g->values[4].shape[0] = -1;
    g->values[4].shape[1] = -1;
    assert_int_equal(fern__pass_infer(g), 2);
    back = fern_graph_print(g);
    assert_text(back, orig);
    free(orig);
    free(back);
    fern_module_free(m);
}

/* ---- fold ------------------------------------------------------------------- */

static void test_fold(void **state)
{
    (void)state;
    /* constant subexpressions become constants (the inputs stay for DCE) */
    check_pass("graph @main(%x: f32[2]) -> (f32[2]) {\n"
               "  %a = const() {value=f32[2] [1,2]}\n"
               "  %b = const() {value=f32[2] [3,0.5]}\n"
               "  %s = add(%a, %b)\n"
               "  %e = exp(%s)\n"
               "  %y = mul(%x, %e)\n"
               "  return %y\n"
               "}\n",
               fern__pass_fold, 2,
               "graph @main(%0: f32[2]) -> (f32[2]) {\n"
               "  %1 = const() {value=f32[2] [1,2]}\n"
               "  %2 = const() {value=f32[2] [3,0.5]}\n"
               "  %3 = const() {value=f32[2] [4,2.5]}\n"
               "  %4 = const() {value=f32[2] [54.59815216064453,12.182494163513184]}\n"
               "  %5 = mul(%0, %4)\n"
               "  return %5\n"
               "}\n");
    /* creation ops: a small full() folds, a large zeros() stays, random
     * ops never fold; a shape op on a constant folds to its own copy */
    check_pass("graph @main(%x: f32[3,2]) -> (f32[3,2], f32[2048,1024], f32[2], f32[2,3]) {\n"
               "  %f = full() {shape=[3,2], value=2.5}\n"
               "  %y = mul(%x, %f)\n"
               "  %z = zeros() {shape=[2048,1024]}\n"
               "  %r = rand_uniform() {shape=[2]}\n"
               "  %t = permute(%f) {perm=[1,0]}\n"
               "  return %y, %z, %r, %t\n"
               "}\n",
               fern__pass_fold, 2,
               "graph @main(%0: f32[3,2]) -> (f32[3,2], f32[2048,1024], f32[2], f32[2,3]) {\n"
               "  %1 = const() {value=f32[3,2] [2.5,2.5,2.5,2.5,2.5,2.5]}\n"
               "  %2 = mul(%0, %1)\n"
               "  %3 = zeros() {shape=[2048,1024]}\n"
               "  %4 = rand_uniform() {shape=[2]}\n"
               "  %5 = const() {value=f32[2,3] [2.5,2.5,2.5,2.5,2.5,2.5]}\n"
               "  return %2, %3, %4, %5\n"
               "}\n");
    /* a multi-output op folds into one constant per output */
    check_pass("graph @main(%x: f32[3]) -> (f32[3], i64[3]) {\n"
               "  %c = const() {value=f32[3] [3,1,2]}\n"
               "  %v, %i = sort(%c)\n"
               "  %y = add(%x, %v)\n"
               "  return %y, %i\n"
               "}\n",
               fern__pass_fold, 1,
               "graph @main(%0: f32[3]) -> (f32[3], i64[3]) {\n"
               "  %1 = const() {value=f32[3] [3,1,2]}\n"
               "  %2 = const() {value=f32[3] [1,2,3]}\n"
               "  %3 = add(%0, %2)\n"
               "  %4 = const() {value=i64[3] [1,2,0]}\n"
               "  return %3, %4\n"
               "}\n");
    /* a kernel error (integer fmod by zero) is left for run time, and the
     * error is not left pending */
    fern_clear_error();
    const char *fm = "graph @main(%0: i32[2]) -> (i32[2]) {\n"
                     "  %1 = const() {value=i32[2] [7,8]}\n"
                     "  %2 = const() {value=i32[2] [2,0]}\n"
                     "  %3 = fmod(%1, %2)\n"
                     "  %4 = add(%0, %3)\n"
                     "  return %4\n"
                     "}\n";
    fern_module *m = parse_ok(fm);
    assert_int_equal(fern__pass_fold(fern_module_main(m)), 0);
    assert_int_equal(fern_last_status(), FERN_OK);
    char *text = fern_graph_print(fern_module_main(m));
    assert_text(text, fm);
    free(text);
    fern_module_free(m);
}

/* ---- simplify ------------------------------------------------------------- */

static void test_simplify_identities(void **state)
{
    (void)state;
    /* x*1, 1*x, x/1, x+0, 0+x, x-0 with scalar and full-shaped splats */
    check_pass("graph @main(%x: f32[2,3]) -> (f32[2,3]) {\n"
               "  %one = const() {value=f32[] [1]}\n"
               "  %zero = const() {value=f64[] [0]}\n"
               "  %ones = ones() {shape=[2,3]}\n"
               "  %zs = full() {shape=[3], value=0}\n"
               "  %a = mul(%x, %one)\n"
               "  %b = mul(%ones, %a)\n"
               "  %c = div(%b, %one)\n"
               "  %d = add(%c, %zero)\n"
               "  %e = add(%zs, %d)\n"
               "  %f = sub(%e, %zs)\n"
               "  %g = relu(%f)\n"
               "  return %g\n"
               "}\n",
               fern__pass_simplify, 6,
               "graph @main(%0: f32[2,3]) -> (f32[2,3]) {\n"
               "  %1 = const() {value=f32[] [1]}\n"
               "  %2 = const() {value=f64[] [0]}\n"
               "  %3 = ones() {shape=[2,3]}\n"
               "  %4 = full() {shape=[3]}\n"
               "  %5 = relu(%0)\n"
               "  return %5\n"
               "}\n");
    /* not when the identity would change the type: broadcasting (the ones
     * are bigger than x), promotion (i32 * f32 1 is f32) */
    check_pass("graph @main(%x: f32[3], %k: i32[3]) -> (f32[2,3], f32[3]) {\n"
               "  %ones = ones() {shape=[2,3]}\n"
               "  %one = const() {value=f32[] [1]}\n"
               "  %a = mul(%x, %ones)\n"
               "  %b = mul(%k, %one)\n"
               "  return %a, %b\n"
               "}\n",
               fern__pass_simplify, 0,
               "graph @main(%0: f32[3], %1: i32[3]) -> (f32[2,3], f32[3]) {\n"
               "  %2 = ones() {shape=[2,3]}\n"
               "  %3 = const() {value=f32[] [1]}\n"
               "  %4 = mul(%0, %2)\n"
               "  %5 = mul(%1, %3)\n"
               "  return %4, %5\n"
               "}\n");
}

static void test_simplify_zeros(void **state)
{
    (void)state;
    /* integers: x-x and x*0 are zeros */
    check_pass("graph @main(%x: i32[2,3], %y: i64[3]) -> (i32[2,3], i32[2,3], i64[2,3]) {\n"
               "  %z = const() {value=i32[] [0]}\n"
               "  %a = sub(%x, %x)\n"
               "  %b = mul(%z, %x)\n"
               "  %c = mul(%x, %y)\n"
               "  %zz = zeros_like(%c)\n"
               "  %d = mul(%c, %zz)\n"
               "  return %a, %b, %d\n"
               "}\n",
               fern__pass_simplify, 3,
               "graph @main(%0: i32[2,3], %1: i64[3]) -> (i32[2,3], i32[2,3], i64[2,3]) {\n"
               "  %2 = const() {value=i32[] [0]}\n"
               "  %3 = zeros() {shape=[2,3], dtype=i32}\n"
               "  %4 = zeros() {shape=[2,3], dtype=i32}\n"
               "  %5 = mul(%0, %1)\n"
               "  %6 = zeros_like(%5)\n"
               "  return %3, %4, %6\n"
               "}\n");
    /* floats: never (inf-inf and nan*0 are nan) */
    check_pass("graph @main(%x: f32[3]) -> (f32[3], f32[3]) {\n"
               "  %z = const() {value=f32[] [0]}\n"
               "  %a = sub(%x, %x)\n"
               "  %b = mul(%x, %z)\n"
               "  return %a, %b\n"
               "}\n",
               fern__pass_simplify, 0,
               "graph @main(%0: f32[3]) -> (f32[3], f32[3]) {\n"
               "  %1 = const() {value=f32[] [0]}\n"
               "  %2 = sub(%0, %0)\n"
               "  %3 = mul(%0, %1)\n"
               "  return %2, %3\n"
               "}\n");
}

static void test_simplify_unary(void **state)
{
    (void)state;
    /* neg(neg x), cast to the same dtype */
    check_pass("graph @main(%x: f32[4], %k: i64[4]) -> (f32[4], i64[4]) {\n"
               "  %a = neg(%x)\n"
               "  %b = neg(%a)\n"
               "  %c = cast(%b) {dtype=f32}\n"
               "  %d = cast(%k) {dtype=i64}\n"
               "  %e = neg(%d)\n"
               "  %f = neg(%e)\n"
               "  return %c, %f\n"
               "}\n",
               fern__pass_simplify, 4,
               "graph @main(%0: f32[4], %1: i64[4]) -> (f32[4], i64[4]) {\n"
               "  %2 = neg(%0)\n"
               "  %3 = neg(%1)\n"
               "  return %0, %1\n"
               "}\n");
    /* log(exp x) -> x; exp(log x) stays (log of x <= 0) */
    check_pass_ex("graph @main(%x: f64[5]) -> (f64[5], f64[5]) {\n"
                  "  %a = exp(%x)\n"
                  "  %b = log(%a)\n"
                  "  %c = log(%x)\n"
                  "  %d = exp(%c)\n"
                  "  return %b, %d\n"
                  "}\n",
                  fern__pass_simplify, 1,
               "graph @main(%0: f64[5]) -> (f64[5], f64[5]) {\n"
               "  %1 = exp(%0)\n"
               "  %2 = log(%0)\n"
               "  %3 = exp(%2)\n"
               "  return %0, %3\n"
               "}\n", -2.0, 2.0, 1e-14, NULL);
}

static void test_simplify_shapes(void **state)
{
    (void)state;
    /* permute o permute -> one permute, or nothing when the product is the
     * identity; an identity permute goes */
    check_pass("graph @main(%x: f32[2,3,4]) -> (f32[4,2,3], f32[2,3,4], f32[2,3,4]) {\n"
               "  %a = permute(%x) {perm=[1,2,0]}\n"
               "  %b = permute(%a) {perm=[1,2,0]}\n"
               "  %c = permute(%a) {perm=[2,0,1]}\n"
               "  %d = permute(%x) {perm=[0,1,-1]}\n"
               "  return %b, %c, %d\n"
               "}\n",
               fern__pass_simplify, 3,
               "graph @main(%0: f32[2,3,4]) -> (f32[4,2,3], f32[2,3,4], f32[2,3,4]) {\n"
               "  %1 = permute(%0) {perm=[1,2,0]}\n"
               "  %2 = permute(%0) {perm=[2,0,1]}\n"
               "  return %2, %0, %0\n"
               "}\n");
    /* reshape o reshape -> reshape; a reshape to the same shape goes,
     * symbolic dims included */
    check_pass("graph @main(%x: f32[N,6]) -> (f32[N,3,2], f32[N,6]) {\n"
               "  %a = reshape(%x) {shape=[-1,2,3]}\n"
               "  %b = reshape(%a) {shape=[-1,3,2]}\n"
               "  %c = reshape(%b) {shape=[-1,6]}\n"
               "  return %b, %c\n"
               "}\n",
               fern__pass_simplify, 2,
               "graph @main(%0: f32[N,6]) -> (f32[N,3,2], f32[N,6]) {\n"
               "  %1 = reshape(%0) {shape=[-1,2,3]}\n"
               "  %2 = reshape(%0) {shape=[-1,3,2]}\n"
               "  return %2, %0\n"
               "}\n");
}

/* ---- cse ----------------------------------------------------------------------- */

static void test_fuse_grad(void **state)
{
    (void)state;
    /* relu -> max pooling's gradients: relu_backward folds into the pooling
     * gradient, then the bias-style sum over H and W reads the masked
     * pooled gradient instead (the old pooling gradient is left for DCE).
     * Inputs in [-2, 2]: about half the relu outputs are 0, so whole
     * windows are masked. */
    check_pass_ex("graph @main(%z: f32[2,3,6,6], %g: f32[2,3,3,3]) -> (f32[2,3,6,6], f32[3]) {\n"
                  "  %y = relu(%z)\n"
                  "  %p = max_pool2d_backward(%y, %g) {kernel=[2,2]}\n"
                  "  %d = relu_backward(%p, %y)\n"
                  "  %b = sum(%d) {axes=[0,2,3]}\n"
                  "  return %d, %b\n"
                  "}\n",
                  fern__pass_fuse_grad, 2,
                  "graph @main(%0: f32[2,3,6,6], %1: f32[2,3,3,3]) -> (f32[2,3,6,6], f32[3]) {\n"
                  "  %2 = relu(%0)\n"
                  "  %3 = max_pool2d_backward(%2, %1) {kernel=[2,2]}\n"
                  "  %4 = max_pool2d_backward(%2, %1) {kernel=[2,2], relu=1}\n"
                  "  %5 = max_pool2d(%2) {kernel=[2,2]}\n"
                  "  %6 = relu_backward(%1, %5)\n"
                  "  %7 = sum(%6) {axes=[0,2,3]}\n"
                  "  return %4, %7\n"
                  "}\n",
                  -2.0, 2.0, 1e-5, NULL);
    /* not when the pooling gradient has another use, when relu_backward's
     * mask is another value, or when the sum keeps H or W */
    check_pass("graph @main(%z: f32[2,3,6,6], %g: f32[2,3,3,3], %w: f32[2,3,6,6]) -> "
               "(f32[2,3,6,6], f32[2,3,6,6], f32[2,3,6,6], f32[2,6]) {\n"
               "  %y = relu(%z)\n"
               "  %p = max_pool2d_backward(%y, %g) {kernel=[2,2]}\n"
               "  %d = relu_backward(%p, %y)\n"
               "  %q = max_pool2d_backward(%y, %g) {kernel=[2,2], relu=1}\n"
               "  %e = relu_backward(%q, %w)\n"
               "  %s = sum(%q) {axes=[1,3]}\n"
               "  return %p, %d, %e, %s\n"
               "}\n",
               fern__pass_fuse_grad, 0,
               "graph @main(%0: f32[2,3,6,6], %1: f32[2,3,3,3], %2: f32[2,3,6,6]) -> "
               "(f32[2,3,6,6], f32[2,3,6,6], f32[2,3,6,6], f32[2,6]) {\n"
               "  %3 = relu(%0)\n"
               "  %4 = max_pool2d_backward(%3, %1) {kernel=[2,2]}\n"
               "  %5 = relu_backward(%4, %3)\n"
               "  %6 = max_pool2d_backward(%3, %1) {kernel=[2,2], relu=1}\n"
               "  %7 = relu_backward(%6, %2)\n"
               "  %8 = sum(%6) {axes=[1,3]}\n"
               "  return %4, %5, %7, %8\n"
               "}\n");
}

/* max pooling moves before relu when the pooling and its masked gradient
 * are relu's only uses */
static void test_fuse_grad_pool_first(void **state)
{
    (void)state;
    check_pass_ex("graph @main(%z: f32[2,3,6,6], %g: f32[2,3,3,3]) -> (f32[2,3,3,3], f32[2,3,6,6]) {\n"
                  "  %y = relu(%z)\n"
                  "  %p = max_pool2d(%y) {kernel=[2,2]}\n"
                  "  %d = max_pool2d_backward(%y, %g) {kernel=[2,2], relu=1}\n"
                  "  return %p, %d\n"
                  "}\n",
                  fern__pass_fuse_grad, 1,
                  "graph @main(%0: f32[2,3,6,6], %1: f32[2,3,3,3]) -> (f32[2,3,3,3], f32[2,3,6,6]) {\n"
                  "  %2 = relu(%0)\n"
                  "  %3 = max_pool2d(%0) {kernel=[2,2]}\n"
                  "  %4 = relu(%3)\n"
                  "  %5 = max_pool2d_backward(%0, %1) {kernel=[2,2], relu=1}\n"
                  "  return %4, %5\n"
                  "}\n",
                  -2.0, 2.0, 0.0, NULL);
    /* not when relu's output has another use, or the pooling differs */
    check_pass("graph @main(%z: f32[2,3,6,6], %g: f32[2,3,3,3]) -> (f32[2,3,3,3], f32[2,3,6,6], f32[2,3,2,2]) {\n"
               "  %y = relu(%z)\n"
               "  %p = max_pool2d(%y) {kernel=[2,2]}\n"
               "  %e = exp(%y)\n"
               "  %w = relu(%z)\n"
               "  %q = max_pool2d(%w) {kernel=[2,2]}\n"
               "  %r = max_pool2d(%w) {kernel=[3,3]}\n"
               "  return %p, %e, %r\n"
               "}\n",
               fern__pass_fuse_grad, 0,
               "graph @main(%0: f32[2,3,6,6], %1: f32[2,3,3,3]) -> (f32[2,3,3,3], f32[2,3,6,6], f32[2,3,2,2]) {\n"
               "  %2 = relu(%0)\n"
               "  %3 = max_pool2d(%2) {kernel=[2,2]}\n"
               "  %4 = exp(%2)\n"
               "  %5 = relu(%0)\n"
               "  %6 = max_pool2d(%5) {kernel=[2,2]}\n"
               "  %7 = max_pool2d(%5) {kernel=[3,3]}\n"
               "  return %3, %4, %7\n"
               "}\n");
}

static void test_cse(void **state)
{
    (void)state;
    check_pass("graph @main(%x: f32[4], %y: f32[4]) -> (f32[4], f32[4], f32[4]) {\n"
               "  %a = add(%x, %y)\n"
               "  %b = add(%x, %y)\n"
               "  %c = add(%y, %x)\n"
               "  %d = leaky_relu(%a) {negative_slope=0.1}\n"
               "  %e = leaky_relu(%b) {negative_slope=0.1}\n"
               "  %f = leaky_relu(%b) {negative_slope=0.2}\n"
               "  %k1 = const() {value=f32[] [2]}\n"
               "  %k2 = const() {value=f32[] [2]}\n"
               "  %m1 = mul(%d, %k1)\n"
               "  %m2 = mul(%e, %k2)\n"
               "  %s = sub(%m1, %m2)\n"
               "  %t = add(%s, %c)\n"
               "  %u = add(%t, %f)\n"
               "  return %u, %m1, %m2\n"
               "}\n",
               fern__pass_cse, 4,
               "graph @main(%0: f32[4], %1: f32[4]) -> (f32[4], f32[4], f32[4]) {\n"
               "  %2 = add(%0, %1)\n"
               "  %3 = add(%1, %0)\n"
               "  %4 = leaky_relu(%2) {negative_slope=0.1}\n"
               "  %5 = leaky_relu(%2) {negative_slope=0.2}\n"
               "  %6 = const() {value=f32[] [2]}\n"
               "  %7 = mul(%4, %6)\n"
               "  %8 = sub(%7, %7)\n"
               "  %9 = add(%8, %3)\n"
               "  %10 = add(%9, %5)\n"
               "  return %10, %7, %7\n"
               "}\n");
    /* floats compare bitwise (0 and -0 differ); random draws never merge */
    check_pass("graph @main(%x: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {\n"
               "  %a = clip(%x) {lo=0}\n"
               "  %b = clip(%x) {lo=-0}\n"
               "  %r1 = rand_uniform() {shape=[4]}\n"
               "  %r2 = rand_uniform() {shape=[4]}\n"
               "  return %a, %b, %r1, %r2\n"
               "}\n",
               fern__pass_cse, 0,
               "graph @main(%0: f32[4]) -> (f32[4], f32[4], f32[4], f32[4]) {\n"
               "  %1 = clip(%0) {lo=0}\n"
               "  %2 = clip(%0) {lo=-0}\n"
               "  %3 = rand_uniform() {shape=[4]}\n"
               "  %4 = rand_uniform() {shape=[4]}\n"
               "  return %1, %2, %3, %4\n"
               "}\n");
}

static void test_cse_structured(void **state)
{
    (void)state;
    /* the same cond on the same operands is computed once */
    fern_clear_error();
    const char *text = "graph @main(%p: bool[], %x: f32[3]) -> (f32[3]) {\n"
                       "  %a = cond(%p, %x) {then=@t, else=@e}\n"
                       "  %b = cond(%p, %x) {then=@t, else=@e}\n"
                       "  %c = call(%x) {fn=@t}\n"
                       "  %s = add(%a, %b)\n"
                       "  %u = add(%s, %c)\n"
                       "  return %u\n"
                       "}\n"
                       "graph @t(%a: f32[3]) -> (f32[3]) {\n"
                       "  %b = exp(%a)\n"
                       "  return %b\n"
                       "}\n"
                       "graph @e(%a: f32[3]) -> (f32[3]) {\n"
                       "  %b = neg(%a)\n"
                       "  return %b\n"
                       "}\n";
    fern_module *m = parse_ok(text);
    fern_graph *g = fern_module_main(m);
    fern_tensor *in[2], *ref = NULL, *got = NULL;
    in[0] = fern_scalar(FERN_BOOL, 1);
    in[1] = random_for(FERN_F32, 1, (int64_t[]){3}, -1, 1);
    run_graph(g, 2, in, &ref);
    assert_int_equal(fern__pass_cse(g), 1);
    char *after = fern_graph_print(g);
    assert_text(after, "graph @main(%0: bool[], %1: f32[3]) -> (f32[3]) {\n"
                    "  %2 = cond(%0, %1) {then=@t, else=@e}\n"
                    "  %3 = call(%1) {fn=@t}\n"
                    "  %4 = add(%2, %2)\n"
                    "  %5 = add(%4, %3)\n"
                    "  return %5\n"
                    "}\n");
    free(after);
    run_graph(g, 2, in, &got);
    assert_close_t(got, ref, 0);
    release_all(in, 2);
    fern_release(ref);
    fern_release(got);
    fern_module_free(m);
}

/* ---- inline --------------------------------------------------------------------- */

static fern_tensor *bound_w;

static void bind_w(fern_module *m)
{
    fern_graph *f = fern_module_find_graph(m, "affine");
    for (int p = 0; p < f->n_params; p++)
        if (f->is_capture[p] && !f->captures[p])
            f->captures[p] = fern_retain(bound_w);
}

static void test_inline(void **state)
{
    (void)state;
    fern_clear_error();
    float w[3] = {0.5f, -1.0f, 2.0f};
    bound_w = fern_from_data(FERN_F32, 1, (int64_t[]){3}, w);
    /* two calls of a callee with a capture and a constant: one capture
     * parameter in the caller, the constant copied, calls gone */
    check_pass_ex("graph @main(%x: f32[3], %y: f32[3]) -> (f32[3]) {\n"
                  "  %a = call(%x) {fn=@affine}\n"
                  "  %b = call(%y) {fn=@affine}\n"
                  "  %c = call(%a, %b) {fn=@pair}\n"
                  "  return %c\n"
                  "}\n"
                  "graph @affine(%v: f32[3], %w: f32[3] capture) -> (f32[3]) {\n"
                  "  %k = const() {value=f32[] [1.5]}\n"
                  "  %m = mul(%v, %w)\n"
                  "  %r = add(%m, %k)\n"
                  "  return %r\n"
                  "}\n"
                  "graph @pair(%p: f32[3], %q: f32[3]) -> (f32[3]) {\n"
                  "  %s = call(%p) {fn=@ident}\n"
                  "  %t = sub(%s, %q)\n"
                  "  return %t\n"
                  "}\n"
                  "graph @ident(%i: f32[3]) -> (f32[3]) {\n"
                  "  return %i\n"
                  "}\n",
                  fern__pass_inline, 4,
               "graph @main(%0: f32[3], %1: f32[3], %2: f32[3] capture) -> (f32[3]) {\n"
               "  %3 = const() {value=f32[] [1.5]}\n"
               "  %4 = mul(%0, %2)\n"
               "  %5 = add(%4, %3)\n"
               "  %6 = const() {value=f32[] [1.5]}\n"
               "  %7 = mul(%1, %2)\n"
               "  %8 = add(%7, %6)\n"
               "  %9 = sub(%5, %8)\n"
               "  return %9\n"
               "}\n", -2, 2, 0, bind_w);
    fern_release(bound_w);
    bound_w = NULL;
}

/* ---- fuse ----------------------------------------------------------------------- */

static void test_fuse_chain(void **state)
{
    (void)state;
    /* a chain with scalar constants inline and a parameter scalar */
    check_pass("graph @main(%x: f32[4,300], %y: f32[4,300], %s: f32[]) -> (f32[4,300]) {\n"
               "  %h = const() {value=f32[] [0.5]}\n"
               "  %a = mul(%x, %y)\n"
               "  %b = tanh(%a)\n"
               "  %c = add(%b, %h)\n"
               "  %d = mul(%c, %s)\n"
               "  %e = leaky_relu(%d) {negative_slope=0.2}\n"
               "  %f = sub(%e, %x)\n"
               "  return %f\n"
               "}\n",
               fern__pass_fuse, 1,
               "graph @main(%0: f32[4,300], %1: f32[4,300], %2: f32[]) -> (f32[4,300]) {\n"
               "  %3 = const() {value=f32[] [0.5]}\n"
               "  %4 = fused_elementwise(%0, %1, %2) {program=\"mul r0 r1;tanh r3;add r4 0.5;mul r5 r2;leaky_relu(0.2) r6;sub r7 r0\"}\n"
               "  return %4\n"
               "}\n");
    /* a diamond (x used twice, an intermediate used twice) in f64 */
    check_pass("graph @main(%x: f64[1000]) -> (f64[1000]) {\n"
               "  %a = sigmoid(%x)\n"
               "  %b = mul(%x, %a)\n"
               "  %c = square(%a)\n"
               "  %d = add(%b, %c)\n"
               "  %e = clip(%d) {lo=-1, hi=0.75}\n"
               "  return %e\n"
               "}\n",
               fern__pass_fuse, 1,
               "graph @main(%0: f64[1000]) -> (f64[1000]) {\n"
               "  %1 = fused_elementwise(%0) {program=\"sigmoid r0;mul r0 r1;square r1;add r2 r3;clip(-1,0.75) r4\", dtype=f64}\n"
               "  return %1\n"
               "}\n");
    /* symbolic dims, a value used twice by one op, and a group of 0-d
     * values only */
    check_pass("graph @main(%x: f32[N,4], %s: f32[], %t: f64[]) -> (f32[N,4], f64[]) {\n"
               "  %a = mul(%x, %x)\n"
               "  %b = sub(%a, %s)\n"
               "  %c = exp(%t)\n"
               "  %d = mul(%c, %t)\n"
               "  return %b, %d\n"
               "}\n",
               fern__pass_fuse, 2,
               "graph @main(%0: f32[N,4], %1: f32[], %2: f64[]) -> (f32[N,4], f64[]) {\n"
               "  %3 = fused_elementwise(%0, %1) {program=\"mul r0 r0;sub r2 r1\"}\n"
               "  %4 = fused_elementwise(%2) {program=\"exp r0;mul r1 r0\", dtype=f64}\n"
               "  return %3, %4\n"
               "}\n");
}

static void test_fuse_boundaries(void **state)
{
    (void)state;
    /* an intermediate that is also a graph output stays materialized; a
     * broadcast operand stops the group; integer ops are not fused */
    check_pass("graph @main(%x: f32[2,3], %b: f32[3], %k: i32[2,3]) -> (f32[2,3], f32[2,3], i32[2,3]) {\n"
               "  %a = exp(%x)\n"
               "  %c = neg(%a)\n"
               "  %d = sin(%c)\n"
               "  %e = add(%d, %b)\n"
               "  %f = relu(%e)\n"
               "  %g = cos(%f)\n"
               "  %i = neg(%k)\n"
               "  %j = abs(%i)\n"
               "  return %g, %a, %j\n"
               "}\n",
               fern__pass_fuse, 2,
               "graph @main(%0: f32[2,3], %1: f32[3], %2: i32[2,3]) -> (f32[2,3], f32[2,3], i32[2,3]) {\n"
               "  %3 = exp(%0)\n"
               "  %4 = fused_elementwise(%3) {program=\"neg r0;sin r1\"}\n"
               "  %5 = add(%4, %1)\n"
               "  %6 = fused_elementwise(%5) {program=\"relu r0;cos r1\"}\n"
               "  %7 = neg(%2)\n"
               "  %8 = abs(%7)\n"
               "  return %6, %3, %8\n"
               "}\n");
}

/* ---- the fused op itself ------------------------------------------------------- */

static const char *const unary_ops[] = {
    "neg", "abs", "sign", "square", "reciprocal", "sqrt", "rsqrt", "exp", "expm1", "log",
    "log1p", "sin", "cos", "tan", "tanh", "erf", "sigmoid", "relu", "silu", "floor",
    "ceil", "round", "gelu", "gelu {approximate=1}", "leaky_relu {negative_slope=0.3}",
    "elu {alpha=1.5}", "softplus {beta=2, threshold=3}", "clip {lo=-0.5, hi=0.7}"};
static const char *const binary_ops[] = {"add", "sub", "mul", "div", "maximum", "minimum", "pow"};

/* Build "op(x) -> mul by y" (or "op(x, y) -> exp") graphs, run them unfused
 * and fused; the results must agree to 1e-6 relative (they are computed
 * with the same formulas: in practice bitwise). */
static void fused_matches(const char *dt, int n, const char *op_text, int binary, const char *y_decl,
                          const char *y_use)
{
    char name[64], attrs[96] = "";
    const char *brace = strchr(op_text, '{');
    if (brace) {
        snprintf(name, sizeof name, "%.*s", (int)(brace - op_text - 1), op_text);
        snprintf(attrs, sizeof attrs, " %s", brace);
    } else {
        snprintf(name, sizeof name, "%s", op_text);
    }
    char text[1024];
    if (binary)
        snprintf(text, sizeof text,
                 "graph @main(%%x: %s[%d], %%y: %s) -> (%s[%d]) {\n"
                 "  %%a = %s(%%x, %s)%s\n"
                 "  %%b = neg(%%a)\n"
                 "  return %%b\n"
                 "}\n",
                 dt, n, y_decl, dt, n, name, y_use, attrs);
    else
        snprintf(text, sizeof text,
                 "graph @main(%%x: %s[%d], %%y: %s[%d]) -> (%s[%d]) {\n"
                 "  %%a = %s(%%x)%s\n"
                 "  %%b = mul(%%a, %%y)\n"
                 "  return %%b\n"
                 "}\n",
                 dt, n, dt, n, dt, n, name, attrs);
    fern_module *m = parse_ok(text);
    fern_graph *g = fern_module_main(m);
    fern_tensor *in[2], *ref = NULL, *got = NULL;
    int n_in = make_inputs(g, in, 0.05, 3.0);
    if (!binary) { /* negative values too, except where the op needs x > 0 */
        fern_tensor *shifted = fern_add_scalar(in[0], -1.5);
        if (strcmp(name, "log") && strcmp(name, "sqrt") && strcmp(name, "rsqrt")) {
            fern_release(in[0]);
            in[0] = shifted;
        } else {
            fern_release(shifted);
        }
    }
    run_graph(g, n_in, in, &ref);
    assert_int_equal(fern__pass_fuse(g), 1);
    assert_int_equal(fern_graph_count_op(g, "fused_elementwise"), 1);
    assert_int_equal(fern_graph_node_count(g), 1); /* the whole graph is one node */
    run_graph(g, n_in, in, &got);
    assert_close_t(got, ref, 1e-6);
    assert_reparses(m);
    release_all(in, n_in);
    fern_release(ref);
    fern_release(got);
    fern_module_free(m);
}

static void test_fused_every_op(void **state)
{
    (void)state;
    fern_clear_error();
    const char *dts[2] = {"f32", "f64"};
    const int sizes[3] = {1, 3000, 100003};
    for (int t = 0; t < 2; t++)
        for (int s = 0; s < 3; s++) {
            for (size_t k = 0; k < sizeof unary_ops / sizeof *unary_ops; k++)
                fused_matches(dts[t], sizes[s], unary_ops[k], 0, NULL, NULL);
            char full[32];
            snprintf(full, sizeof full, "%s[%d]", dts[t], sizes[s]);
            for (size_t k = 0; k < sizeof binary_ops / sizeof *binary_ops; k++) {
                /* vector-vector, vector-scalar param, and literal operands */
                fused_matches(dts[t], sizes[s], binary_ops[k], 1, full, "%y");
                fused_matches(dts[t], sizes[s], binary_ops[k], 1, "f64[]", "%y");
            }
        }
    /* pow's exact fast paths for literal exponents, and literals on the left */
    const char *exps[] = {"2", "3", "1", "0", "-1", "-2", "0.5", "-0.5", "1.7"};
    for (size_t k = 0; k < sizeof exps / sizeof *exps; k++) {
        char text[512];
        snprintf(text, sizeof text,
                 "graph @main(%%x: f32[2000]) -> (f32[2000]) {\n"
                 "  %%e = const() {value=f32[] [%s]}\n"
                 "  %%a = pow(%%x, %%e)\n"
                 "  %%b = sub(%%e, %%a)\n"
                 "  return %%b\n"
                 "}\n",
                 exps[k]);
        fern_module *m = parse_ok(text);
        fern_graph *g = fern_module_main(m);
        fern_tensor *in[1], *ref = NULL, *got = NULL;
        make_inputs(g, in, 0.1, 3.0);
        run_graph(g, 1, in, &ref);
        assert_int_equal(fern__pass_fuse(g), 1);
        run_graph(g, 1, in, &got);
        assert_close_t(got, ref, 0);
        release_all(in, 1);
        fern_release(ref);
        fern_release(got);
        fern_module_free(m);
    }
}

static void expect_fused_error(const char *text, const char *words)
{
    fern_clear_error();
    fern_module *m = fern_module_parse(text);
    assert_null(m);
    if (!strstr(fern_last_error(), words) || !strstr(fern_last_error(), "fused_elementwise"))
        fail_msg("error '%s' does not contain '%s'", fern_last_error(), words);
    fern_clear_error();
}

/* A fused op run on a thread of its own (whose program cache is freed
 * when the thread exits). */
static void *fused_on_thread(void *arg)
{
    fern_tensor *x = arg, *y = NULL;
    const char *names[1] = {"program"};
    fern_attr prog = {.kind = FERN_ATTR_STR, .n = 1, .s = "neg r0;exp r1"};
    if (fern_op_invoke("fused_elementwise", 1, &x, 1, names, &prog, 1, &y) != FERN_OK)
        return NULL;
    return y;
}

static void test_fused_text_and_errors(void **state)
{
    (void)state;
    fern_clear_error();
    /* hand-written fused programs parse, verify and run; all-0-d inputs
     * and a non-contiguous input work */
    fern_module *m = parse_ok("graph @main(%x: f32[3,2], %s: f64[]) -> (f32[2,3], f64[]) {\n"
                              "  %t = permute(%x) {perm=[1,0]}\n"
                              "  %a = fused_elementwise(%t, %s) {program=\"mul r0 r1; exp r2 ;add r3 -inf;maximum r4 r0\"}\n"
                              "  %b = fused_elementwise(%s, %s) {program=\"add r0 r1;sqrt r2\", dtype=f64}\n"
                              "  return %a, %b\n"
                              "}\n");
    fern_graph *g = fern_module_main(m);
    float xs[6] = {1, -2, 3, -4, 5, 0.5f};
    fern_tensor *in[2] = {fern_from_data(FERN_F32, 2, (int64_t[]){3, 2}, xs), fern_scalar(FERN_F64, 2)};
    fern_tensor *out[2] = {0};
    run_graph(g, 2, in, out);
    /* max(exp(t*s) - inf, t) is t, the transpose of x */
    for (int i = 0; i < 6; i++)
        assert_true(fern_tensor_get_flat(out[0], i) == xs[(i % 3) * 2 + i / 3]);
    assert_true(fern_tensor_get_flat(out[1], 0) == 2.0);
    release_all(in, 2);
    release_all(out, 2);
    char *text = fern_module_print(m);
    assert_non_null(strstr(text, "program=\"mul r0 r1; exp r2 ;add r3 -inf;maximum r4 r0\""));
    assert_non_null(strstr(text, "dtype=f64"));
    free(text);
    assert_reparses(m);
    fern_module_free(m);

    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"exp r0;bogus r1\"}\n  return %a\n}\n",
                       "unknown op 'bogus'");
    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"exp r1\"}\n  return %a\n}\n",
                       "not defined yet");
    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"add r0\"}\n  return %a\n}\n",
                       "expected 2 operands");
    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"clip(1) r0\"}\n  return %a\n}\n",
                       "takes 2 parameters");
    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"\"}\n  return %a\n}\n",
                       "empty");
    expect_fused_error("graph @main(%x: f32[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"exp r0 r0\"}\n  return %a\n}\n",
                       "unexpected");
    expect_fused_error("graph @main(%x: f32[2], %y: f64[2]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x, %y) {program=\"add r0 r1\"}\n  return %a\n}\n",
                       "must be f32");
    expect_fused_error("graph @main(%x: f32[2], %y: f32[3]) -> (f32[2]) {\n"
                       "  %a = fused_elementwise(%x, %y) {program=\"add r0 r1\"}\n  return %a\n}\n",
                       "one shape");
    expect_fused_error("graph @main(%x: i32[2]) -> (i32[2]) {\n"
                       "  %a = fused_elementwise(%x) {program=\"neg r0\", dtype=i32}\n  return %a\n}\n",
                       "f32 or f64");
    /* by name, through the registry */
    fern_tensor *x = fern_from_data(FERN_F32, 2, (int64_t[]){2, 3}, xs), *y = NULL;
    const char *names[1] = {"program"};
    fern_attr prog = {.kind = FERN_ATTR_STR, .n = 1, .s = "abs r0;sqrt r1"};
    assert_int_equal(fern_op_invoke("fused_elementwise", 1, &x, 1, names, &prog, 1, &y), FERN_OK);
    for (int i = 0; i < 6; i++)
        assert_true(fern_tensor_get_flat(y, i) == sqrtf(fabsf(xs[i])));
    fern_release(y);
    pthread_t th;
    void *res = NULL;
    assert_int_equal(pthread_create(&th, NULL, fused_on_thread, x), 0);
    assert_int_equal(pthread_join(th, &res), 0);
    assert_non_null(res);
    for (int i = 0; i < 6; i++)
        assert_true(fabs(fern_tensor_get_flat(res, i) - exp(-xs[i])) <= 1e-6 * exp(-xs[i]));
    fern_release(res);
    fern_release(x);
}

/* ---- the whole pipeline on a module ----------------------------------------- */

static void test_pipeline_text(void **state)
{
    (void)state;
    fern_clear_error();
    const char *text = "graph @main(%x: f32[8], %y: f32[8]) -> (f32[8]) {\n"
                       "  %a = call(%x, %y) {fn=@f}\n"
                       "  %b = call(%x, %y) {fn=@f}\n"
                       "  %s = add(%a, %b)\n"
                       "  return %s\n"
                       "}\n"
                       "graph @f(%p: f32[8], %q: f32[8]) -> (f32[8]) {\n"
                       "  %one = const() {value=f32[] [1]}\n"
                       "  %two = const() {value=f32[] [2]}\n"
                       "  %k = add(%one, %two)\n"
                       "  %m = mul(%p, %k)\n"
                       "  %n = mul(%m, %one)\n"
                       "  %t = tanh(%n)\n"
                       "  %u = sub(%t, %q)\n"
                       "  return %u\n"
                       "}\n";
    fern_module *m = parse_ok(text);
    fern_graph *g = fern_module_main(m);
    fern_tensor *in[2], *ref = NULL, *got = NULL;
    make_inputs(g, in, -2, 2);
    run_graph(g, 2, in, &ref);
    /* inline, fold 1+2, drop *1, merge the two inlined bodies, drop the
     * dead, then fuse what is left */
    assert_int_equal(fern__run_pipeline(m, "test"), FERN_OK);
    char *after = fern_module_print(m);
    assert_text(after, "graph @main(%0: f32[8], %1: f32[8]) -> (f32[8]) {\n"
                       "  %2 = fused_elementwise(%0, %1) {program=\"mul r0 3;tanh r2;sub r3 r1;add r4 r4\"}\n"
                       "  return %2\n"
                       "}\n"
                       "\n"
                       "graph @f(%0: f32[8], %1: f32[8]) -> (f32[8]) {\n"
                       "  %2 = fused_elementwise(%0, %1) {program=\"mul r0 3;tanh r2;sub r3 r1\"}\n"
                       "  return %2\n"
                       "}\n");
    free(after);
    run_graph(g, 2, in, &got);
    assert_close_t(got, ref, 0);
    assert_reparses(m);
    release_all(in, 2);
    fern_release(ref);
    fern_release(got);
    fern_module_free(m);
}

/* ---- the pipeline on traced functions -------------------------------------- */

static void both_modes(fern_fn *f, int n_in, fern_tensor **in, int n_out, double rtol)
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
static fern_module *compiled_module(const fern_fn *f)
{
    char *text = fern_jit_dump(f);
    assert_non_null(text);
    fern_module *m = parse_ok(text);
    free(text);
    return m;
}

typedef struct {
    fern_tensor *w;
} mlp_ud;

static int mixed_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    mlp_ud *u = ud;
    fern_tensor *x = in[0];
    /* foldable constants, identities, duplicates and an elementwise tail */
    fern_tensor *k = fern_add_scalar(fern_full(FERN_F32, 0, NULL, 2.0), 1.0);
    fern_tensor *h = fern_matmul(x, u->w);
    fern_tensor *h1 = fern_mul_scalar(h, 1.0);
    fern_tensor *p = fern_permute(fern_permute(h1, (int[]){1, 0}), (int[]){1, 0});
    fern_tensor *a = fern_gelu(p, 0), *b = fern_gelu(p, 0);
    fern_tensor *s = fern_add(fern_mul(a, k), fern_tanh(b));
    out[0] = fern_sub_scalar(fern_sigmoid(s), 0.25);
    out[1] = fern_sum(fern_neg(fern_neg(s)), NULL, 0, 0);
    return out[0] && out[1] ? 0 : -1;
}

static void test_pipeline_graph_mode(void **state)
{
    (void)state;
    fern_clear_error();
    fern_seed(11);
    fern_scope_begin();
    mlp_ud u = {fern_rand_normal(FERN_F32, 2, (int64_t[]){8, 16}, 0, 0.5)};
    fern_tensor *x = fern_rand_normal(FERN_F32, 2, (int64_t[]){5, 8}, 0, 1);
    fern_fn *inner = fern_fn_new(mixed_body, &u, 1, 2);
    fern_fn *f = fern_jit(inner);
    fern_fn_release(inner); /* the jit holds its own reference */
    both_modes(f, 1, &x, 2, 1e-6);
    fern_jit_stats st;
    fern_jit_get_stats(f, &st);
    assert_true(st.nodes_optimized < st.nodes_traced);
    fern_module *m = compiled_module(f);
    fern_graph *g = fern_module_main(m);
    assert_int_equal(fern_graph_count_op(g, "permute"), 0);
    assert_int_equal(fern_graph_count_op(g, "gelu"), 0);
    assert_int_equal(fern_graph_count_op(g, "neg"), 0);
    assert_int_equal(fern_graph_count_op(g, "full"), 0);
    /* s feeds both the elementwise tail and the sum: two fused nodes */
    assert_int_equal(fern_graph_count_op(g, "fused_elementwise"), 2);
    fern_module_free(m);
    fern_fn_release(f);
    fern_scope_end();
}

#define CHAIN 50

static int chain_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    fern_tensor *x = in[0];
    for (int i = 0; i < CHAIN; i++) {
        switch (i % 5) {
        case 0: x = fern_mul_scalar(x, 0.9); break;
        case 1: x = fern_tanh(x); break;
        case 2: x = fern_add_scalar(x, 0.1); break;
        case 3: x = fern_sin(x); break;
        default: x = fern_add(x, in[1]); break;
        }
    }
    out[0] = x;
    return x ? 0 : -1;
}

static void test_chain_fuses(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_tensor *in[2] = {fern_rand_normal(FERN_F32, 2, (int64_t[]){64, 100}, 0, 1),
                          fern_rand_normal(FERN_F32, 2, (int64_t[]){64, 100}, 0, 0.1)};
    fern_fn *f = fern_fn_new(chain_body, NULL, 2, 1);
    both_modes(f, 2, in, 1, 1e-6);
    fern_jit_stats st;
    fern_jit_get_stats(f, &st);
    assert_true(st.nodes_traced >= CHAIN);
    fern_module *m = compiled_module(f);
    fern_graph *g = fern_module_main(m);
    int fused = fern_graph_count_op(g, "fused_elementwise");
    assert_true(fused >= 1 && fused <= 4);
    assert_int_equal(fern_graph_count_op(g, NULL) - fern_graph_count_op(g, "const") -
                         fused, 0);
    /* the intermediates are gone from the memory plan */
    assert_true(st.naive_bytes <= (size_t)fused * 64 * 100 * 4);
    fern_module_free(m);
    fern_fn_release(f);
    fern_scope_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_simplify_identities),
        cmocka_unit_test(test_simplify_zeros),
        cmocka_unit_test(test_simplify_unary),
        cmocka_unit_test(test_simplify_shapes),
        cmocka_unit_test(test_fuse_grad),
        cmocka_unit_test(test_fuse_grad_pool_first),
        cmocka_unit_test(test_cse),
        cmocka_unit_test(test_cse_structured),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_fuse_chain),
        cmocka_unit_test(test_fuse_boundaries),
        cmocka_unit_test(test_fused_every_op),
        cmocka_unit_test(test_fused_text_and_errors),
        cmocka_unit_test(test_pipeline_text),
        cmocka_unit_test(test_pipeline_graph_mode),
        cmocka_unit_test(test_chain_fuses),
    };
    return cmocka_run_group_tests_name("passes", tests, NULL, NULL);
}
