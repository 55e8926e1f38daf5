/* The IR: building, text round trips (hand-written and printed), the
 * verifier's errors, parse errors with positions, and running graphs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

static void assert_round_trip(const char *text)
{
    fern_module *m = fern_module_parse(text);
    if (!m)
        fail_msg("parse failed: %s", fern_last_error());
    assert_int_equal(fern_module_verify(m), FERN_OK);
    char *once = fern_module_print(m);
    fern_module *m2 = fern_module_parse(once);
    if (!m2)
        fail_msg("re-parse failed: %s\n%s", fern_last_error(), once);
    char *twice = fern_module_print(m2);
    assert_string_equal(once, twice);
    free(once);
    free(twice);
    fern_module_free(m);
    fern_module_free(m2);
}

static const char *hand_written =
    "# a hand-written module: symbols, views, casts, constants, calls\n"
    "graph @main(%x: f32[N,4], %w: f32[4,2] capture) -> (f64[N,2,2], i32[3]) {\n"
    "  %t = permute(%x) {perm=[1,0]}\n"
    "  %r = reshape(%x) {shape=[-1,2,2]}\n"
    "  %c = cast(%r) {dtype=f64}\n"
    "  %k = const() {value=i32[3] [1,-2,3]}\n"
    "  %o = call(%c) {fn=@ident}\n"
    "  return %o, %k\n"
    "}\n"
    "graph @ident(%a: f64[N,2,2]) -> (f64[N,2,2]) {\n"
    "  %b = copy(%a)\n"
    "  return %b\n"
    "}\n";

static void test_parse_print_round_trip(void **state)
{
    (void)state;
    fern_clear_error();
    assert_round_trip(hand_written);
    fern_module *m = fern_module_parse(hand_written);
    assert_non_null(m);
    fern_graph *g = fern_module_main(m);
    assert_string_equal(fern_graph_name(g), "main");
    assert_int_equal(fern_graph_param_count(g), 2);
    assert_int_equal(fern_graph_output_count(g), 2);
    assert_int_equal(fern_graph_count_op(g, "cast"), 1);
    int64_t shape[8];
    /* the reshape keeps the symbolic batch dim */
    int nd = fern_graph_value_shape(g, 3, shape);
    assert_int_equal(nd, 3);
    assert_true(FERN_DIM_IS_SYM(shape[0]));
    assert_string_equal(fern_module_symbol_name(m, FERN_DIM_SYM_INDEX(shape[0])), "N");
    char *text = fern_module_print(m);
    assert_non_null(strstr(text, "%1: f32[4,2] capture"));
    assert_non_null(strstr(text, "value=i32[3] [1,-2,3]"));
    free(text);
    fern_module_free(m);
}

static void test_float_attrs_exact(void **state)
{
    (void)state;
    fern_clear_error();
    /* constants and float attributes print with enough digits to read back exactly */
    fern_module *m = fern_module_new();
    fern_graph *g = fern_graph_new(m, "main");
    double vals[3] = {0.1, 1.0 / 3.0, -2.5e-300};
    int64_t n = 3;
    fern_tensor *c = fern_from_data(FERN_F64, 1, &n, vals);
    int v = fern_graph_add_const(g, c);
    fern_release(c);
    fern_graph_set_outputs(g, 1, &v);
    char *text = fern_module_print(m);
    fern_module *m2 = fern_module_parse(text);
    assert_non_null(m2);
    fern_tensor *out = NULL;
    assert_int_equal(fern_graph_run(fern_module_main(m2), 0, NULL, 1, &out), FERN_OK);
    for (int i = 0; i < 3; i++)
        assert_true(fern_tensor_get_flat(out, i) == vals[i]);
    fern_release(out);
    free(text);
    fern_module_free(m);
    fern_module_free(m2);
}

static void expect_parse_error(const char *text, const char *words)
{
    fern_clear_error();
    fern_module *m = fern_module_parse(text);
    assert_null(m);
    if (!strstr(fern_last_error(), words))
        fail_msg("error '%s' does not contain '%s'", fern_last_error(), words);
    assert_non_null(strstr(fern_last_error(), "line"));
    fern_clear_error();
}

static void test_parse_errors(void **state)
{
    (void)state;
    fern_clear_error();
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  %y = nosuchop(%x)\n  return %y\n}\n",
                       "unknown op 'nosuchop'");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  return %z\n}\n", "not defined");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  %x = copy(%x)\n  return %x\n}\n",
                       "defined twice");
    expect_parse_error("graph @main(%x: q32[2]) -> (f32[2]) {\n  return %x\n}\n", "unknown dtype");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[3]) {\n  return %x\n}\n", "declared result");
    expect_parse_error("graph @main(%x: f32[2,3]) -> (f32[2,3]) {\n  %y = reshape(%x) {shape=[5]}\n  return %y\n}\n",
                       "cannot reshape");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  %y = call(%x) {fn=@main}\n  return %y\n}\n",
                       "itself");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  %y = copy(%x) {bogus=1}\n  return %y\n}\n",
                       "unknown attribute");
    expect_parse_error("graph @main(%x: f32[2]) -> (f32[2]) {\n  return %x\n", "not closed");
    expect_parse_error("", "no graph");
}

static void test_build_and_run(void **state)
{
    (void)state;
    fern_clear_error();
    fern_module *m = fern_module_new();
    fern_graph *g = fern_graph_new(m, "main");
    int64_t s[2] = {2, 3};
    int x = fern_graph_add_param(g, FERN_F32, 2, s);
    const char *names[1] = {"perm"};
    fern_attr perm = {.kind = FERN_ATTR_INTS, .n = 2, .ints = {1, 0}};
    int t;
    assert_int_equal(fern_graph_add_op(g, "permute", 1, &x, 1, names, &perm, 1, &t), 0);
    int c;
    fern_attr dt = {.kind = FERN_ATTR_DTYPE, .n = 1, .i = FERN_F64};
    const char *dn[1] = {"dtype"};
    assert_int_equal(fern_graph_add_op(g, "cast", 1, &t, 1, dn, &dt, 1, &c), 0);
    assert_int_equal(fern_graph_set_outputs(g, 1, &c), 0);
    assert_int_equal(fern_graph_verify(g), FERN_OK);
    /* type errors are caught while building */
    fern_attr bad = {.kind = FERN_ATTR_INTS, .n = 2, .ints = {0, 0}};
    int dummy;
    assert_int_not_equal(fern_graph_add_op(g, "permute", 1, &x, 1, names, &bad, 1, &dummy), 0);
    assert_non_null(strstr(fern_last_error(), "permutation"));
    fern_clear_error();

    float data[6] = {1, 2, 3, 4, 5, 6};
    fern_tensor *in = fern_from_data(FERN_F32, 2, s, data);
    fern_tensor *out = NULL;
    assert_int_equal(fern_graph_run(g, 1, &in, 1, &out), FERN_OK);
    assert_int_equal(fern_tensor_dtype(out), FERN_F64);
    assert_int_equal(fern_tensor_dim(out, 0), 3);
    assert_true(fern_tensor_get_flat(out, 1) == 4.0);
    fern_release(out);
    /* wrong input shape is an error, not a crash */
    int64_t s2[2] = {3, 3};
    fern_tensor *wrong = fern_zeros(FERN_F32, 2, s2);
    if (wrong) {
        assert_int_not_equal(fern_graph_run(g, 1, &wrong, 1, &out), FERN_OK);
        assert_non_null(strstr(fern_last_error(), "does not match"));
        fern_clear_error();
        fern_release(wrong);
    }
    fern_release(in);
    fern_module_free(m);
}

static void test_symbolic_reshapes(void **state)
{
    (void)state;
    fern_clear_error();
    /* flattening loses the symbol (N*3 is unknown); reshaping back recovers
     * a consistent type instead of a bogus size */
    fern_module *m = fern_module_parse(
        "graph @main(%x: f32[N,3]) -> (f32[?,3]) {\n"
        "  %f = reshape(%x) {shape=[-1]}\n"
        "  %y = reshape(%f) {shape=[-1,3]}\n"
        "  return %y\n"
        "}\n");
    if (!m)
        fail_msg("%s", fern_last_error());
    fern_graph *g = fern_module_main(m);
    int64_t s[8];
    assert_int_equal(fern_graph_value_shape(g, 1, s), 1);
    assert_true(s[0] == -1);
    fern_tensor *x = fern_ones(FERN_F32, 2, (int64_t[]){4, 3}), *y = NULL;
    assert_int_equal(fern_graph_run(g, 1, &x, 1, &y), FERN_OK);
    assert_int_equal(fern_tensor_dim(y, 0), 4);
    fern_release(x);
    fern_release(y);
    fern_module_free(m);
}

static void test_verifier(void **state)
{
    (void)state;
    fern_clear_error();
    /* an unbound capture cannot run */
    fern_module *m = fern_module_parse("graph @main(%w: f32[2] capture) -> (f32[2]) {\n  %y = copy(%w)\n  return %y\n}\n");
    assert_non_null(m);
    fern_tensor *out = NULL;
    assert_int_not_equal(fern_graph_run(fern_module_main(m), 0, NULL, 1, &out), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "not bound"));
    fern_clear_error();
    fern_module_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_print_round_trip), cmocka_unit_test(test_float_attrs_exact),
        cmocka_unit_test(test_parse_errors),           cmocka_unit_test(test_build_and_run),
        cmocka_unit_test(test_symbolic_reshapes), cmocka_unit_test(test_verifier),
    };
    return cmocka_run_group_tests_name("ir", tests, NULL, NULL);
}
