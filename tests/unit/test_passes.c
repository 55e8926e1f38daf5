/* The compiler passes. For every pass: hand-written IR "before" text, the
 * pass, the expected "after" text (print form), both graphs run on the same
 * random inputs with the same results, the pass reaching a fixpoint (a
 * second run changes nothing) and the rewritten module printing and
 * parsing back (tests/support/pass_check.c). Then the whole pipeline, on a
 * module and on traced functions in graph mode against pynative mode. The
 * fusion passes and the fused op are in test_fusion.c. */
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

#include "../support/pass_check.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_infer),
        cmocka_unit_test(test_fold),
        cmocka_unit_test(test_simplify_identities),
        cmocka_unit_test(test_simplify_zeros),
        cmocka_unit_test(test_simplify_unary),
        cmocka_unit_test(test_simplify_shapes),
        cmocka_unit_test(test_cse),
        cmocka_unit_test(test_cse_structured),
        cmocka_unit_test(test_inline),
        cmocka_unit_test(test_pipeline_text),
        cmocka_unit_test(test_pipeline_graph_mode),
    };
    return cmocka_run_group_tests_name("passes", tests, NULL, NULL);
}
