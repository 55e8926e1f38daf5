/* The fusion passes and the op they make, checked like every pass (see
 * test_passes.c and tests/support/pass_check.c): fuse_grad (gradient ops
 * around relu and max pooling), elementwise fusion and its boundaries, the
 * fused_elementwise op against the unfused ops for every statement kind and
 * its errors, and a long traced chain fused in graph mode. */
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

/* ---- fuse_grad ---------------------------------------------------------- */

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
        cmocka_unit_test(test_fuse_grad),
        cmocka_unit_test(test_fuse_grad_pool_first),
        cmocka_unit_test(test_fuse_chain),
        cmocka_unit_test(test_fuse_boundaries),
        cmocka_unit_test(test_fused_every_op),
        cmocka_unit_test(test_fused_text_and_errors),
        cmocka_unit_test(test_chain_fuses),
    };
    return cmocka_run_group_tests_name("fusion", tests, NULL, NULL);
}
