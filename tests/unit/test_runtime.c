/* Graph mode against pynative mode: the same functions give the same
 * results (tolerance 1e-5 relative for f32 unless stated), compiled once
 * per signature; captures are read by reference; control flow (cond,
 * while, scan, fori, nested) works in both modes; random draws agree. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fern/fern.h"

static void assert_close(fern_tensor *a, fern_tensor *b, double rtol)
{
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(fern_tensor_ndim(a), fern_tensor_ndim(b));
    assert_int_equal(fern_tensor_numel(a), fern_tensor_numel(b));
    for (int64_t i = 0; i < fern_tensor_numel(a); i++) {
        double x = fern_tensor_get_flat(a, i), y = fern_tensor_get_flat(b, i);
        if (!(fabs(x - y) <= 1e-6 + rtol * fabs(y)))
            fail_msg("element %lld: %.9g vs %.9g", (long long)i, x, y);
    }
}

/* Run f in both modes on the same inputs; compare output 0.. n_out-1. */
static void both_modes(fern_fn *f, int n_in, fern_tensor **in, int n_out, double rtol)
{
    fern_tensor *a[8] = {0}, *b[8] = {0};
    fern_set_mode(FERN_PYNATIVE_MODE);
    if (fern_call(f, n_in, in, n_out, a) != FERN_OK)
        fail_msg("pynative: %s", fern_last_error());
    fern_set_mode(FERN_GRAPH_MODE);
    if (fern_call(f, n_in, in, n_out, b) != FERN_OK)
        fail_msg("graph: %s", fern_last_error());
    fern_set_mode(FERN_PYNATIVE_MODE);
    for (int k = 0; k < n_out; k++)
        assert_close(b[k], a[k], rtol);
}

/* ---- an MLP with captured weights ------------------------------------- */
typedef struct {
    fern_tensor *w1, *b1, *w2, *b2;
} mlp;

static int mlp_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    mlp *m = ud;
    fern_tensor *h = fern_relu(fern_add(fern_matmul(in[0], m->w1), m->b1));
    out[0] = fern_softmax(fern_add(fern_matmul(h, m->w2), m->b2), -1);
    return out[0] ? 0 : -1;
}

static void test_mlp_modes_and_cache(void **state)
{
    (void)state;
    fern_clear_error();
    fern_seed(7);
    fern_scope_begin();
    mlp m;
    m.w1 = fern_rand_normal(FERN_F32, 2, (int64_t[]){16, 32}, 0, 0.3);
    m.b1 = fern_rand_normal(FERN_F32, 1, (int64_t[]){32}, 0, 0.1);
    m.w2 = fern_rand_normal(FERN_F32, 2, (int64_t[]){32, 10}, 0, 0.3);
    m.b2 = fern_zeros(FERN_F32, 1, (int64_t[]){10});
    fern_tensor *x = fern_rand_normal(FERN_F32, 2, (int64_t[]){8, 16}, 0, 1);
    fern_fn *f = fern_fn_new(mlp_body, &m, 1, 1);
    fern_fn_set_name(f, "mlp");
    both_modes(f, 1, &x, 1, 1e-5);

    fern_jit_stats st;
    fern_jit_get_stats(f, &st);
    assert_int_equal(st.n_compiles, 1);
    assert_true(st.nodes_traced >= 6);
    assert_true(st.planned_peak_bytes < st.naive_bytes);

    /* the same signature reuses the executable; a new batch size compiles */
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *y1 = fern_call1(f, 1, &x);
    fern_tensor *x2 = fern_rand_normal(FERN_F32, 2, (int64_t[]){3, 16}, 0, 1);
    fern_tensor *y2 = fern_call1(f, 1, &x2);
    assert_non_null(y1);
    assert_non_null(y2);
    fern_jit_get_stats(f, &st);
    assert_int_equal(st.n_compiles, 2);

    /* weights are captured by reference: an update is seen by the graph */
    float *b2 = fern_tensor_data(m.b2);
    b2[3] = 50.0f;
    fern_tensor *y3 = fern_call1(f, 1, &x);
    assert_true(fern_tensor_get_flat(y3, 3) > 0.99);
    fern_set_mode(FERN_PYNATIVE_MODE);

    /* the compiled IR prints and parses back to the same text */
    char *text = fern_jit_dump(f);
    assert_non_null(text);
    fern_module *mod = fern_module_parse(text);
    if (!mod)
        fail_msg("%s\n%s", fern_last_error(), text);
    char *again = fern_module_print(mod);
    assert_string_equal(text, again);
    free(text);
    free(again);
    fern_module_free(mod);
    fern_fn_release(f);
    fern_scope_end();
}

/* ---- cond with a lifted outer value ------------------------------------ */
typedef struct {
    fern_fn *then_fn, *else_fn;
} cond_ud;

static fern_tensor *captured_y; /* set per test: an outer value used by a branch */

static int then_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul(in[0], captured_y); /* uses an outer traced value */
    return out[0] ? 0 : -1;
}

static int else_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_sub_scalar(in[0], 1.0);
    return out[0] ? 0 : -1;
}

static int cond_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    cond_ud *c = ud;
    captured_y = fern_exp(in[0]);
    fern_tensor *zero = fern_scalar(FERN_F32, 0);
    fern_tensor *p = fern_gt(fern_sum(in[0], NULL, 0, 0), zero);
    fern_status st = fern_cond(p, c->then_fn, c->else_fn, 1, in, 1, out);
    return st == FERN_OK ? 0 : -1;
}

static void test_cond(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    cond_ud c = {fern_fn_new(then_body, NULL, 1, 1), fern_fn_new(else_body, NULL, 1, 1)};
    fern_fn *f = fern_fn_new(cond_main, &c, 1, 1);
    fern_tensor *pos = fern_from_data(FERN_F32, 1, (int64_t[]){3}, (float[]){1, 2, -0.5f});
    fern_tensor *neg = fern_from_data(FERN_F32, 1, (int64_t[]){3}, (float[]){-1, 2, -3.5f});
    both_modes(f, 1, &pos, 1, 1e-6);
    both_modes(f, 1, &neg, 1, 1e-6);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *r = fern_call1(f, 1, &pos);
    assert_true(fabs(fern_tensor_get_flat(r, 1) - 2 * exp(2.0)) < 1e-4);
    fern_set_mode(FERN_PYNATIVE_MODE);
    char *text = fern_jit_dump(f);
    assert_non_null(strstr(text, "cond("));
    free(text);
    fern_fn_release(f);
    fern_fn_release(c.then_fn);
    fern_fn_release(c.else_fn);
    fern_scope_end();
}

/* ---- while: double until the sum exceeds a bound ----------------------- */
static int wl_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_lt(fern_sum(in[0], NULL, 0, 0), fern_scalar(FERN_F32, 100));
    return out[0] ? 0 : -1;
}

static int wl_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_mul_scalar(in[0], 2.0);
    out[1] = fern_add_scalar(in[1], 1.0);
    return out[0] && out[1] ? 0 : -1;
}

typedef struct {
    fern_fn *c, *b;
} loop_ud;

static int wl_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    loop_ud *l = ud;
    fern_tensor *init[2] = {in[0], fern_scalar(FERN_I64, 0)};
    return fern_while_loop(l->c, l->b, 2, init, out, 1000) == FERN_OK ? 0 : -1;
}

static void test_while(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    loop_ud l = {fern_fn_new(wl_cond, NULL, 2, 1), fern_fn_new(wl_body, NULL, 2, 2)};
    fern_fn *f = fern_fn_new(wl_main, &l, 1, 2);
    fern_tensor *x = fern_from_data(FERN_F32, 1, (int64_t[]){2}, (float[]){1, 2});
    both_modes(f, 1, &x, 2, 0);
    fern_tensor *out[2];
    fern_set_mode(FERN_GRAPH_MODE);
    assert_int_equal(fern_call(f, 1, &x, 2, out), FERN_OK);
    fern_set_mode(FERN_PYNATIVE_MODE);
    assert_true(fern_tensor_get_flat(out[1], 0) == 6.0); /* 3 -> 6 -> ... -> 192 */
    assert_true(fern_tensor_get_flat(out[0], 1) == 128.0);
    fern_fn_release(f);
    fern_fn_release(l.c);
    fern_fn_release(l.b);
    fern_scope_end();
}

/* ---- scan: running sum and per-step outputs; fori ---------------------- */
static int scan_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_add(in[0], in[1]);
    out[1] = fern_mul(out[0], in[1]);
    return out[0] && out[1] ? 0 : -1;
}

typedef struct {
    fern_fn *body;
} scan_ud;

static int scan_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    scan_ud *s = ud;
    fern_tensor *init = fern_zeros(FERN_F32, 1, (int64_t[]){3});
    return fern_scan(s->body, 1, &init, 1, in, 2, out) == FERN_OK ? 0 : -1;
}

static int fori_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud; /* acc = acc * 2 + i */
    out[0] = fern_add(fern_mul_scalar(in[1], 2.0), fern_cast(in[0], FERN_F32));
    return out[0] ? 0 : -1;
}

static int fori_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    return fern_fori_loop(0, 5, (fern_fn *)ud, 1, in, out) == FERN_OK ? 0 : -1;
}

static void test_scan_and_fori(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    scan_ud s = {fern_fn_new(scan_body, NULL, 2, 2)};
    fern_fn *f = fern_fn_new(scan_main, &s, 1, 2);
    fern_tensor *xs = fern_rand_uniform(FERN_F32, 2, (int64_t[]){5, 3}, -1, 1);
    both_modes(f, 1, &xs, 2, 1e-6);
    fern_tensor *out[2];
    assert_int_equal(fern_call(f, 1, &xs, 2, out), FERN_OK);
    assert_int_equal(fern_tensor_dim(out[1], 0), 5);
    double want = 0;
    for (int t = 0; t < 5; t++)
        want += fern_tensor_get_flat(xs, t * 3 + 2);
    assert_true(fabs(fern_tensor_get_flat(out[0], 2) - want) < 1e-5);

    fern_fn *body = fern_fn_new(fori_body, NULL, 2, 1);
    fern_fn *g = fern_fn_new(fori_main, body, 1, 1);
    fern_tensor *acc = fern_scalar(FERN_F32, 1);
    both_modes(g, 1, &acc, 1, 0);
    fern_tensor *r = fern_call1(g, 1, &acc); /* ((((1*2+0)*2+1)*2+2)*2+3)*2+4 = 58 */
    assert_true(fern_tensor_get_flat(r, 0) == 58.0);
    fern_fn_release(f);
    fern_fn_release(g);
    fern_fn_release(body);
    fern_fn_release(s.body);
    fern_scope_end();
}

/* ---- nested: a cond inside a while body --------------------------------- */
static int nested_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    cond_ud *c = ud;
    captured_y = fern_scalar(FERN_F32, 3);
    fern_tensor *p = fern_gt(fern_sum(in[0], NULL, 0, 0), fern_scalar(FERN_F32, 10));
    if (fern_cond(p, c->then_fn, c->else_fn, 1, in, 1, out) != FERN_OK)
        return -1;
    out[0] = fern_add_scalar(out[0], 4.0);
    out[1] = fern_add_scalar(in[1], 1.0);
    return out[1] ? 0 : -1;
}

static int nested_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_lt(in[1], fern_scalar(FERN_I64, 6));
    return out[0] ? 0 : -1;
}

static int nested_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    loop_ud *l = ud;
    fern_tensor *init[2] = {in[0], fern_scalar(FERN_I64, 0)};
    return fern_while_loop(l->c, l->b, 2, init, out, 0) == FERN_OK ? 0 : -1;
}

static void test_nested_control_flow(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    cond_ud c = {fern_fn_new(then_body, NULL, 1, 1), fern_fn_new(else_body, NULL, 1, 1)};
    loop_ud l = {fern_fn_new(nested_cond, NULL, 2, 1), fern_fn_new(nested_body, &c, 2, 2)};
    fern_fn *f = fern_fn_new(nested_main, &l, 1, 2);
    fern_tensor *x = fern_from_data(FERN_F32, 1, (int64_t[]){2}, (float[]){0.5f, 1});
    both_modes(f, 1, &x, 2, 1e-6);
    fern_fn_release(f);
    fern_fn_release(l.c);
    fern_fn_release(l.b);
    fern_fn_release(c.then_fn);
    fern_fn_release(c.else_fn);
    fern_scope_end();
}

/* ---- errors ------------------------------------------------------------- */
static int bad_else(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_cast(in[0], FERN_F64);
    return out[0] ? 0 : -1;
}

static int bad_main(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    cond_ud *c = ud;
    fern_tensor *p = fern_gt(fern_sum(in[0], NULL, 0, 0), fern_scalar(FERN_F32, 0));
    return fern_cond(p, c->then_fn, c->else_fn, 1, in, 1, out) == FERN_OK ? 0 : -1;
}

static void test_errors(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    cond_ud c = {fern_fn_new(else_body, NULL, 1, 1), fern_fn_new(bad_else, NULL, 1, 1)};
    fern_fn *f = fern_fn_new(bad_main, &c, 1, 1);
    fern_tensor *x = fern_ones(FERN_F32, 1, (int64_t[]){2});
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *out = NULL;
    assert_int_not_equal(fern_call(f, 1, &x, 1, &out), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "differ"));
    fern_clear_error();
    /* wrong arity */
    assert_int_not_equal(fern_call(f, 2, (fern_tensor *[]){x, x}, 1, &out), FERN_OK);
    assert_non_null(strstr(fern_last_error(), "takes 1 inputs"));
    fern_clear_error();
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_fn_release(f);
    fern_fn_release(c.then_fn);
    fern_fn_release(c.else_fn);
    fern_scope_end();
}

/* ---- random draws agree between modes ---------------------------------- */
static int drop_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_dropout(in[0], 0.5, 1);
    return out[0] ? 0 : -1;
}

static void test_random_agrees(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_fn *f = fern_fn_new(drop_body, NULL, 1, 1);
    fern_tensor *x = fern_ones(FERN_F32, 1, (int64_t[]){64});
    fern_seed(11);
    fern_tensor *a1 = fern_call1(f, 1, &x), *a2 = fern_call1(f, 1, &x);
    fern_seed(11);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *b1 = fern_call1(f, 1, &x), *b2 = fern_call1(f, 1, &x);
    fern_set_mode(FERN_PYNATIVE_MODE);
    assert_close(b1, a1, 0);
    assert_close(b2, a2, 0);
    int differ = 0;
    for (int i = 0; i < 64; i++)
        differ |= fern_tensor_get_flat(b1, i) != fern_tensor_get_flat(b2, i);
    assert_true(differ); /* each run draws a new mask */
    fern_fn_release(f);
    fern_scope_end();
}

/* ---- the memory plan reuses buffers on a real network ------------------ */
static void test_memory_plan_lenet(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_seed(1);
    fern_cell *net = fern_model_lenet5(1, 10);
    fern_cell_set_training(net, 0);
    fern_fn *f = fern_cell_as_fn(net);
    fern_tensor *x = fern_rand_normal(FERN_F32, 4, (int64_t[]){8, 1, 28, 28}, 0, 1);
    fern_tensor *eager = fern_call1(f, 1, &x);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_tensor *graph = fern_call1(f, 1, &x);
    fern_set_mode(FERN_PYNATIVE_MODE);
    assert_close(graph, eager, 1e-5);
    fern_jit_stats st;
    fern_jit_get_stats(f, &st);
    assert_int_equal(st.n_compiles, 1);
    /* activations die as soon as the next layer has read them */
    if (!(st.planned_peak_bytes < st.naive_bytes))
        fail_msg("planned peak %zu bytes is not below the naive %zu", st.planned_peak_bytes, st.naive_bytes);
    fern_cell_release(net);
    fern_scope_end();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mlp_modes_and_cache), cmocka_unit_test(test_cond),
        cmocka_unit_test(test_while),               cmocka_unit_test(test_scan_and_fori),
        cmocka_unit_test(test_nested_control_flow), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_random_agrees),       cmocka_unit_test(test_memory_plan_lenet),
    };
    return cmocka_run_group_tests_name("runtime", tests, NULL, NULL);
}
