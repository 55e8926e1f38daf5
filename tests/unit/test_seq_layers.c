/* Recurrent layers, attention, Transformer encoder layers and the sequence
 * zoo models against PyTorch 1.13 (tests/data/make_seq_refs.py): torch's
 * state dicts load by name, and outputs and the gradients of
 * sum_k sum(output_k * c_k) with respect to every float input and every
 * parameter match in pynative and graph mode (float64 modules: 1e-9
 * relative; one float32 LSTM: 1e-4). Graph mode traces an LSTM's time loop
 * into one scan node per layer direction. The zoo models give the same
 * outputs in both modes and train (loss, backward, optimizer update) in
 * both modes. Bad inputs and arguments are reported, never aborted on. */
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
#include "fern/layers.h"
#include "fern/seq_layers.h"
#include "fern/seq_models.h"

static fern_checkpoint *refs;

static fern_tensor *ref_opt(const char *c, const char *kind, const char *name)
{
    char key[256];
    snprintf(key, sizeof key, "%s.%s.%s", c, kind, name);
    return fern_checkpoint_get(refs, key);
}

static fern_tensor *ref(const char *c, const char *kind, const char *name)
{
    fern_tensor *t = ref_opt(c, kind, name);
    if (!t)
        fail_msg("reference '%s.%s.%s' missing", c, kind, name);
    return t;
}

/* Load "<case>.param.*" into the cell (strict: every name must match). */
static void load_params(fern_cell *cell, const char *c)
{
    char prefix[128];
    snprintf(prefix, sizeof prefix, "%s.param.", c);
    size_t np = strlen(prefix);
    fern_checkpoint *ck = fern_checkpoint_new();
    for (int i = 0; i < fern_checkpoint_count(refs); i++) {
        const char *n = fern_checkpoint_name_at(refs, i);
        if (!strncmp(n, prefix, np))
            fern_checkpoint_add(ck, n + np, fern_checkpoint_tensor_at(refs, i));
    }
    fern_load_report rep;
    if (fern_cell_load_state_dict(cell, ck, 1, &rep) != FERN_OK)
        fail_msg("%s: loading the torch state dict: %s (%s)", c, fern_last_error(), rep.message);
    assert_true(rep.n_loaded > 0);
    fern_checkpoint_free(ck);
}

static void compare(const char *what, const fern_tensor *got, const fern_tensor *want, double rtol, double atol)
{
    if (!got)
        fail_msg("%s: no result (%s)", what, fern_last_error());
    char d1[96], d2[96];
    int ok = fern_tensor_ndim(got) == fern_tensor_ndim(want);
    for (int k = 0; ok && k < fern_tensor_ndim(got); k++)
        ok = fern_tensor_shape(got)[k] == fern_tensor_shape(want)[k];
    if (!ok)
        fail_msg("%s: shape %s, reference %s", what, fern_tensor_desc(got, d1, sizeof d1),
                 fern_tensor_desc(want, d2, sizeof d2));
    double scale = 0; /* the largest finite magnitude */
    int64_t n = fern_tensor_numel(want);
    for (int64_t i = 0; i < n; i++) {
        double b = fabs(fern_tensor_get_flat(want, i));
        if (isfinite(b))
            scale = fmax(scale, b);
    }
    for (int64_t i = 0; i < n; i++) {
        double a = fern_tensor_get_flat(got, i), b = fern_tensor_get_flat(want, i);
        if (a != b && !(fabs(a - b) <= atol + rtol * fmax(fabs(b), 0.1 * scale)))
            fail_msg("%s[%lld]: fern %.12g, torch %.12g", what, (long long)i, a, b);
    }
}

/* ---- the generic harness ------------------------------------------------------------ */

typedef struct {
    const char *name;
    fern_cell *cell;
    int n_u; /* distinct inputs (from "<case>.in.<u_names>") */
    const char *u_names[8];
    fern_tensor *u[8];
    int n_cell_in;
    int map[8]; /* cell input j is u[map[j]] */
    int n_out;
    const char *out_names[4];
    double rtol, atol;
} harness;

/* (u..., c...) -> (sum_k sum(out_k * c_k), out...) */
static int loss_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    harness *h = ud;
    fern_tensor *ci[8], *co[4] = {0};
    for (int j = 0; j < h->n_cell_in; j++)
        ci[j] = in[h->map[j]];
    if (fern_cell_call(h->cell, h->n_cell_in, ci, h->n_out, co) != FERN_OK)
        return -1;
    fern_tensor *loss = NULL;
    for (int k = 0; k < h->n_out; k++) {
        fern_tensor *term = fern_sum(fern_mul(co[k], in[h->n_u + k]), NULL, 0, 0);
        loss = loss ? fern_add(loss, term) : term;
        out[1 + k] = co[k];
    }
    out[0] = loss;
    return loss ? 0 : -1;
}

static void run_harness(harness *h)
{
    fern_scope_begin();
    fern_tensor *args[16];
    int argnums[8], n_arg = 0;
    for (int i = 0; i < h->n_u; i++) {
        args[i] = h->u[i] = ref(h->name, "in", h->u_names[i]);
        if (ref_opt(h->name, "grad", h->u_names[i]))
            argnums[n_arg++] = i;
    }
    for (int k = 0; k < h->n_out; k++)
        args[h->n_u + k] = ref(h->name, "c", h->out_names[k]);
    int n_args = h->n_u + h->n_out;
    fern_tensor *params[64];
    const char *pnames[64];
    int np = fern_cell_parameters(h->cell, params, pnames, 64);
    assert_true(np > 0 && np <= 64);
    fern_fn *fn = fern_fn_new(loss_body, h, n_args, 1 + h->n_out);
    for (int mode = 0; mode < 2; mode++) {
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        const char *mname = mode ? "graph" : "pynative";
        char what[256];
        /* forward only */
        fern_fn *fwd = fern_jit(fn);
        fern_tensor *o[8] = {0};
        if (fern_call(fwd, n_args, args, 1 + h->n_out, o) != FERN_OK)
            fail_msg("%s (%s) forward: %s", h->name, mname, fern_last_error());
        for (int k = 0; k < h->n_out; k++) {
            snprintf(what, sizeof what, "%s (%s) %s", h->name, mname, h->out_names[k]);
            compare(what, o[1 + k], ref(h->name, "out", h->out_names[k]), h->rtol, h->atol);
        }
        fern_fn_release(fwd);
        /* gradients with respect to the inputs */
        if (n_arg) {
            fern_fn *vg = fern_value_and_grad(fn, argnums, n_arg);
            fern_fn *jvg = fern_jit(vg);
            fern_tensor *r[16] = {0};
            if (fern_call(jvg, n_args, args, 1 + h->n_out + n_arg, r) != FERN_OK)
                fail_msg("%s (%s) input gradients: %s", h->name, mname, fern_last_error());
            for (int j = 0; j < n_arg; j++) {
                snprintf(what, sizeof what, "%s (%s) d/d%s", h->name, mname, h->u_names[argnums[j]]);
                compare(what, r[1 + h->n_out + j], ref(h->name, "grad", h->u_names[argnums[j]]), h->rtol, h->atol);
            }
            fern_fn_release(jvg);
            fern_fn_release(vg);
        }
        /* gradients with respect to every parameter */
        fern_fn *vgp = fern_value_and_grad_params(fn, params, np);
        fern_fn *jvgp = fern_jit(vgp);
        fern_tensor *r[80] = {0};
        if (fern_call(jvgp, n_args, args, 1 + h->n_out + np, r) != FERN_OK)
            fail_msg("%s (%s) parameter gradients: %s", h->name, mname, fern_last_error());
        for (int k = 0; k < h->n_out; k++) {
            snprintf(what, sizeof what, "%s (%s, with gradients) %s", h->name, mname, h->out_names[k]);
            compare(what, r[1 + k], ref(h->name, "out", h->out_names[k]), h->rtol, h->atol);
        }
        for (int j = 0; j < np; j++) {
            snprintf(what, sizeof what, "%s (%s) d/d%s", h->name, mname, pnames[j]);
            compare(what, r[1 + h->n_out + j], ref(h->name, "grad", pnames[j]), h->rtol, h->atol);
        }
        fern_fn_release(jvgp);
        fern_fn_release(vgp);
    }
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_fn_release(fn);
    fern_scope_end();
}

/* ---- recurrent layers ---------------------------------------------------------------- */

typedef enum { RNN_TANH, RNN_RELU, LSTM, GRU } rnn_kind;

static void rnn_case(const char *name, rnn_kind kind, int num_layers, int bidirectional, int h0, int batch_first,
                     int bias, fern_dtype dt)
{
    fern_clear_error();
    fern_layers_set_default_dtype(dt);
    fern_rnn_opts o = fern_rnn_opts_default();
    o.num_layers = num_layers;
    o.bidirectional = bidirectional;
    o.initial_state = h0;
    o.batch_first = batch_first;
    o.bias = bias;
    fern_cell *cell = kind == LSTM  ? fern_layer_lstm(5, 4, &o)
                      : kind == GRU ? fern_layer_gru(5, 4, &o)
                                    : fern_layer_rnn(5, 4, kind == RNN_TANH ? FERN_RNN_TANH : FERN_RNN_RELU, &o);
    fern_layers_set_default_dtype(FERN_F32);
    if (!cell)
        fail_msg("%s: %s", name, fern_last_error());
    load_params(cell, name);
    fern_cell_set_training(cell, 0);
    int lstm = kind == LSTM;
    harness h = {.name = name, .cell = cell, .n_u = 1, .u_names = {"x"}, .n_cell_in = 1, .map = {0},
                 .n_out = lstm ? 3 : 2, .out_names = {"out", "h_n", "c_n"}};
    if (h0) {
        h.u_names[h.n_u] = "h0";
        h.map[h.n_cell_in++] = h.n_u++;
        if (lstm) {
            h.u_names[h.n_u] = "c0";
            h.map[h.n_cell_in++] = h.n_u++;
        }
    }
    h.rtol = dt == FERN_F32 ? 1e-4 : 1e-9;
    h.atol = dt == FERN_F32 ? 1e-5 : 1e-11;
    run_harness(&h);
    fern_cell_release(cell);
}

static void test_rnn(void **state)
{
    (void)state;
    rnn_case("rnn_tanh", RNN_TANH, 1, 0, 0, 1, 1, FERN_F64);
    rnn_case("rnn_relu_2bi_h0", RNN_RELU, 2, 1, 1, 1, 1, FERN_F64);
}

static void test_lstm(void **state)
{
    (void)state;
    rnn_case("lstm", LSTM, 1, 0, 0, 1, 1, FERN_F64);
    rnn_case("lstm_2_h0", LSTM, 2, 0, 1, 1, 1, FERN_F64);
    rnn_case("lstm_2bi_h0_tm", LSTM, 2, 1, 1, 0, 1, FERN_F64);
    rnn_case("lstm_nobias_unbatched", LSTM, 1, 0, 1, 1, 0, FERN_F64);
    rnn_case("lstm_f32", LSTM, 1, 0, 1, 1, 1, FERN_F32);
}

static void test_gru(void **state)
{
    (void)state;
    rnn_case("gru", GRU, 1, 0, 0, 1, 1, FERN_F64);
    rnn_case("gru_2bi_h0", GRU, 2, 1, 1, 1, 1, FERN_F64);
}

static void step_case(const char *name, rnn_kind kind)
{
    fern_clear_error();
    fern_layers_set_default_dtype(FERN_F64);
    fern_cell *cell = kind == LSTM ? fern_layer_lstm_cell(5, 4, 1)
                      : kind == GRU ? fern_layer_gru_cell(5, 4, 1)
                                    : fern_layer_rnn_cell(5, 4, 1, FERN_RNN_TANH);
    fern_layers_set_default_dtype(FERN_F32);
    if (!cell)
        fail_msg("%s: %s", name, fern_last_error());
    load_params(cell, name);
    int lstm = kind == LSTM;
    harness h = {.name = name, .cell = cell, .n_u = lstm ? 3 : 2, .u_names = {"x", "h", "c"},
                 .n_cell_in = lstm ? 3 : 2, .map = {0, 1, 2}, .n_out = lstm ? 2 : 1, .out_names = {"h", "c"},
                 .rtol = 1e-9, .atol = 1e-11};
    run_harness(&h);
    fern_cell_release(cell);
}

static void test_step_cells(void **state)
{
    (void)state;
    step_case("rnn_cell", RNN_TANH);
    step_case("lstm_cell", LSTM);
    step_case("gru_cell", GRU);
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub))
        n++;
    return n;
}

/* The graph of a 2-layer bidirectional LSTM over 6 steps holds 4 scan
 * nodes (one per layer direction), not 6 unrolled steps; so does its
 * gradient graph. */
static void test_lstm_graph_has_scan(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_rnn_opts o = fern_rnn_opts_default();
    o.num_layers = 2;
    o.bidirectional = 1;
    fern_cell *lstm = fern_layer_lstm(5, 4, &o);
    assert_non_null(lstm);
    int64_t shape[3] = {3, 6, 5};
    fern_tensor *x = fern_rand_normal(FERN_F32, 3, shape, 0, 1);
    fern_set_mode(FERN_GRAPH_MODE);
    fern_fn *j = fern_jit(fern_cell_as_fn(lstm));
    fern_tensor *out[3];
    if (fern_call(j, 1, &x, 3, out) != FERN_OK)
        fail_msg("%s", fern_last_error());
    char *ir = fern_jit_dump(j);
    assert_non_null(ir);
    /* the main graph is printed first: count scan nodes before the bodies */
    const char *body = strstr(ir, "graph @scan_body");
    assert_non_null(body);
    char *main_part = strndup(ir, (size_t)(body - ir));
    if (count_substr(main_part, "scan(") != 4)
        fail_msg("expected 4 scan nodes in the main graph, got IR:\n%s", ir);
    assert_int_equal(count_substr(ir, "graph @scan_body"), 4);
    free(main_part);
    free(ir);
    fern_jit_stats st;
    fern_jit_get_stats(j, &st);
    assert_true(st.nodes_traced < 120); /* T unrolled copies would be far more */
    fern_fn_release(j);
    /* same outputs as pynative mode */
    fern_set_mode(FERN_PYNATIVE_MODE);
    fern_tensor *eager[3];
    assert_int_equal(fern_cell_call(lstm, 1, &x, 3, eager), FERN_OK);
    for (int k = 0; k < 3; k++)
        compare("lstm graph vs pynative", out[k], eager[k], 1e-5, 1e-6);
    fern_cell_release(lstm);
    fern_scope_end();
}

/* fern_rnn_apply: optional states regardless of the cell's option. */
static void test_rnn_apply(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_layers_set_default_dtype(FERN_F64);
    fern_rnn_opts o = fern_rnn_opts_default();
    o.num_layers = 2;
    o.initial_state = 1;
    fern_cell *lstm = fern_layer_lstm(5, 4, &o);
    fern_layers_set_default_dtype(FERN_F32);
    load_params(lstm, "lstm_2_h0");
    fern_tensor *y, *hn, *cn;
    assert_int_equal(fern_rnn_apply(lstm, ref("lstm_2_h0", "in", "x"), ref("lstm_2_h0", "in", "h0"),
                                    ref("lstm_2_h0", "in", "c0"), &y, &hn, &cn),
                     FERN_OK);
    compare("rnn_apply out", y, ref("lstm_2_h0", "out", "out"), 1e-9, 1e-11);
    compare("rnn_apply c_n", cn, ref("lstm_2_h0", "out", "c_n"), 1e-9, 1e-11);
    /* zero states equal explicit zeros */
    fern_tensor *z = fern_zeros_like(ref("lstm_2_h0", "in", "h0"));
    fern_tensor *y0, *h0n, *y1, *h1n;
    assert_int_equal(fern_rnn_apply(lstm, ref("lstm_2_h0", "in", "x"), NULL, NULL, &y0, &h0n, NULL), FERN_OK);
    fern_tensor *in3[3] = {ref("lstm_2_h0", "in", "x"), z, z}, *r[3];
    assert_int_equal(fern_cell_call(lstm, 3, in3, 3, r), FERN_OK);
    y1 = r[0];
    h1n = r[1];
    compare("rnn_apply zero state", y0, y1, 1e-12, 1e-14);
    compare("rnn_apply zero state h_n", h0n, h1n, 1e-12, 1e-14);
    fern_cell_release(lstm);
    /* dropout between layers: off in eval mode (torch's outputs), on in
     * training mode */
    o.dropout = 0.5;
    fern_layers_set_default_dtype(FERN_F64);
    lstm = fern_layer_lstm(5, 4, &o);
    fern_layers_set_default_dtype(FERN_F32);
    load_params(lstm, "lstm_2_h0");
    fern_tensor *in_h[3] = {ref("lstm_2_h0", "in", "x"), ref("lstm_2_h0", "in", "h0"), ref("lstm_2_h0", "in", "c0")};
    fern_cell_set_training(lstm, 0);
    assert_int_equal(fern_cell_call(lstm, 3, in_h, 3, r), FERN_OK);
    compare("lstm dropout, eval mode", r[0], ref("lstm_2_h0", "out", "out"), 1e-9, 1e-11);
    fern_cell_set_training(lstm, 1);
    assert_int_equal(fern_cell_call(lstm, 3, in_h, 3, r), FERN_OK);
    double diff = 0;
    for (int64_t i = 0; i < fern_tensor_numel(r[0]); i++)
        diff = fmax(diff, fabs(fern_tensor_get_flat(r[0], i) - fern_tensor_get_flat(ref("lstm_2_h0", "out", "out"), i)));
    assert_true(diff > 1e-3);
    fern_cell_release(lstm);
    fern_scope_end();
}

/* ---- attention ------------------------------------------------------------------------ */

static void mha_case(const char *name, int self_attn, int batch_first, int kpm, int am, int average)
{
    fern_clear_error();
    fern_layers_set_default_dtype(FERN_F64);
    fern_mha_opts o = fern_mha_opts_default();
    o.batch_first = batch_first;
    o.key_padding_mask = kpm;
    o.attn_mask = am;
    o.need_weights = 1;
    o.average_attn_weights = average;
    fern_cell *cell = fern_layer_multihead_attention(8, 2, &o);
    fern_layers_set_default_dtype(FERN_F32);
    if (!cell)
        fail_msg("%s: %s", name, fern_last_error());
    load_params(cell, name);
    harness h = {.name = name, .cell = cell, .n_out = 2, .out_names = {"out", "weights"}, .rtol = 1e-9,
                 .atol = 1e-11};
    h.u_names[h.n_u++] = "query";
    if (self_attn) {
        h.map[0] = h.map[1] = h.map[2] = 0;
    } else {
        h.u_names[h.n_u++] = "key";
        h.u_names[h.n_u++] = "value";
        h.map[0] = 0;
        h.map[1] = 1;
        h.map[2] = 2;
    }
    h.n_cell_in = 3;
    if (kpm) {
        h.u_names[h.n_u] = "key_padding_mask";
        h.map[h.n_cell_in++] = h.n_u++;
    }
    if (am) {
        h.u_names[h.n_u] = "attn_mask";
        h.map[h.n_cell_in++] = h.n_u++;
    }
    run_harness(&h);
    fern_cell_release(cell);
}

static void test_mha(void **state)
{
    (void)state;
    mha_case("mha_self", 1, 1, 0, 0, 1);
    mha_case("mha_cross_masks", 0, 1, 1, 1, 0);
    mha_case("mha_bool3d_tm", 0, 0, 0, 1, 1);
    mha_case("mha_unbatched", 1, 1, 1, 0, 1);
    mha_case("mha_causal", 1, 1, 0, 1, 1);
}

/* The causal option equals an explicit causal mask; fern_mha_apply takes
 * any masks. */
static void test_mha_causal_and_apply(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_layers_set_default_dtype(FERN_F64);
    fern_mha_opts o = fern_mha_opts_default();
    o.causal = 1;
    o.need_weights = 1;
    fern_cell *causal = fern_layer_multihead_attention(8, 2, &o);
    fern_cell *plain = fern_layer_multihead_attention(8, 2, NULL);
    fern_layers_set_default_dtype(FERN_F32);
    load_params(causal, "mha_causal");
    load_params(plain, "mha_causal");
    fern_tensor *q = ref("mha_causal", "in", "query"), *in3[3] = {q, q, q}, *r[2];
    assert_int_equal(fern_cell_call(causal, 3, in3, 2, r), FERN_OK);
    compare("causal option out", r[0], ref("mha_causal", "out", "out"), 1e-9, 1e-11);
    compare("causal option weights", r[1], ref("mha_causal", "out", "weights"), 1e-9, 1e-11);
    fern_tensor *mask = fern_causal_mask(5, FERN_F64), *out, *w;
    compare("causal_mask", mask, ref("mha_causal", "in", "attn_mask"), 0, 0);
    assert_int_equal(fern_mha_apply(plain, q, q, q, NULL, mask, 1, 1, &out, &w), FERN_OK);
    compare("mha_apply out", out, ref("mha_causal", "out", "out"), 1e-9, 1e-11);
    compare("mha_apply weights", w, ref("mha_causal", "out", "weights"), 1e-9, 1e-11);
    /* need_weights 0 gives no weights */
    assert_int_equal(fern_mha_apply(plain, q, q, q, NULL, mask, 0, 1, &out, &w), FERN_OK);
    assert_null(w);
    fern_cell_release(causal);
    fern_cell_release(plain);
    fern_scope_end();
}

/* ---- transformer encoder layers ------------------------------------------------------ */

static void enc_case(const char *name, int norm_first, int gelu, int batch_first, int src_mask, int kpm)
{
    fern_clear_error();
    fern_layers_set_default_dtype(FERN_F64);
    fern_transformer_opts o = fern_transformer_opts_default();
    o.dim_feedforward = 16;
    o.dropout = 0.1;
    o.activation = gelu ? FERN_TRANSFORMER_GELU : FERN_TRANSFORMER_RELU;
    o.batch_first = batch_first;
    o.norm_first = norm_first;
    o.src_mask = src_mask;
    o.src_key_padding_mask = kpm;
    fern_cell *cell = fern_layer_transformer_encoder_layer(8, 2, &o);
    fern_layers_set_default_dtype(FERN_F32);
    if (!cell)
        fail_msg("%s: %s", name, fern_last_error());
    load_params(cell, name);
    fern_cell_set_training(cell, 0); /* dropout off, like torch's eval() */
    harness h = {.name = name, .cell = cell, .n_u = 1, .u_names = {"src"}, .n_cell_in = 1, .map = {0}, .n_out = 1,
                 .out_names = {"out"}, .rtol = 1e-9, .atol = 1e-11};
    if (src_mask) {
        h.u_names[h.n_u] = "src_mask";
        h.map[h.n_cell_in++] = h.n_u++;
    }
    if (kpm) {
        h.u_names[h.n_u] = "src_key_padding_mask";
        h.map[h.n_cell_in++] = h.n_u++;
    }
    run_harness(&h);
    fern_cell_release(cell);
}

static void test_encoder_layer(void **state)
{
    (void)state;
    enc_case("enc_post_relu", 0, 0, 1, 0, 1);
    enc_case("enc_pre_gelu_tm", 1, 1, 0, 1, 0);
}

/* In training mode dropout is active: outputs differ from eval mode and
 * still differentiate. */
static void test_encoder_training_dropout(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    fern_layers_set_default_dtype(FERN_F64);
    fern_transformer_opts o = fern_transformer_opts_default();
    o.dim_feedforward = 16;
    o.dropout = 0.5;
    fern_cell *cell = fern_layer_transformer_encoder_layer(8, 2, &o);
    fern_layers_set_default_dtype(FERN_F32);
    fern_tensor *x = ref("enc_post_relu", "in", "src");
    fern_cell_set_training(cell, 0);
    fern_tensor *ye = fern_cell_call1(cell, x);
    fern_cell_set_training(cell, 1);
    fern_tensor *yt = fern_cell_call1(cell, x);
    assert_non_null(ye);
    assert_non_null(yt);
    double diff = 0;
    for (int64_t i = 0; i < fern_tensor_numel(ye); i++)
        diff = fmax(diff, fabs(fern_tensor_get_flat(ye, i) - fern_tensor_get_flat(yt, i)));
    assert_true(diff > 1e-3);
    fern_cell_release(cell);
    fern_scope_end();
}

/* ---- zoo models ------------------------------------------------------------------------- */

static void zoo_case(const char *name, fern_cell *cell)
{
    if (!cell)
        fail_msg("%s: %s", name, fern_last_error());
    load_params(cell, name);
    fern_cell_set_training(cell, 0);
    harness h = {.name = name, .cell = cell, .n_u = 1, .u_names = {"tokens"}, .n_cell_in = 1, .map = {0},
                 .n_out = 1, .out_names = {"out"}, .rtol = 1e-9, .atol = 1e-11};
    run_harness(&h);
}

static void test_zoo_against_torch(void **state)
{
    (void)state;
    fern_clear_error();
    fern_layers_set_default_dtype(FERN_F64);
    fern_cell *clf = fern_model_lstm_classifier(11, 6, 5, 2, 3);
    fern_cell *lm = fern_model_transformer_lm(13, 8, 2, 2, 16, 10);
    fern_layers_set_default_dtype(FERN_F32);
    zoo_case("lstm_classifier", clf);
    zoo_case("transformer_lm", lm);
    fern_cell_release(clf);
    fern_cell_release(lm);
}

typedef struct {
    fern_cell *net;
    int lm; /* logits (N, T, V) against targets (N, T) */
} loss_ud;

static int net_loss_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    loss_ud *u = ud;
    fern_tensor *logits = fern_cell_call1(u->net, in[0]);
    fern_tensor *target = in[1];
    if (u->lm && logits) {
        int64_t v = fern_tensor_dim(logits, -1), two[2] = {-1, v}, one = -1;
        logits = fern_reshape(logits, 2, two);
        target = fern_reshape(target, 1, &one);
    }
    out[0] = fern_cross_entropy(logits, target, NULL, FERN_REDUCTION_MEAN, 0.0, -100);
    return out[0] ? 0 : -1;
}

typedef struct {
    fern_fn *vgp;
    fern_optimizer *opt;
    int np;
} step_ud;

static int train_step_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    step_ud *u = ud;
    fern_tensor *r[66];
    if (fern_call(u->vgp, 2, in, 1 + u->np, r) != FERN_OK)
        return -1;
    if (fern_optim_step(u->opt, r + 1, u->np) != FERN_OK)
        return -1;
    out[0] = r[0];
    return 0;
}

/* Three Adam steps in pynative and in graph mode from the same weights:
 * the same losses and parameters (dropout off), and the loss goes down. */
static void train_both_modes(const char *name, int lm, int training)
{
    fern_clear_error();
    double losses[2][3];
    fern_tensor *final[2][64];
    int np = 0;
    fern_tensor *tokens = ref(name, "in", "tokens");
    int64_t n = fern_tensor_dim(tokens, 0);
    fern_scope_begin();
    fern_tensor *target = lm ? fern_roll(tokens, (int64_t[]){-1}, (int[]){1}, 1)
                             : fern_randint(0, 3, FERN_I64, 1, &n);
    for (int mode = 0; mode < 2; mode++) {
        fern_layers_set_default_dtype(FERN_F64);
        fern_cell *net = lm ? fern_model_transformer_lm(13, 8, 2, 2, 16, 10) : fern_model_lstm_classifier(11, 6, 5, 2, 3);
        fern_layers_set_default_dtype(FERN_F32);
        load_params(net, name);
        fern_cell_set_training(net, training);
        fern_tensor *params[64];
        np = fern_cell_parameters(net, params, NULL, 64);
        loss_ud lu = {net, lm};
        fern_fn *lossfn = fern_fn_new(net_loss_body, &lu, 2, 1);
        step_ud su = {fern_value_and_grad_params(lossfn, params, np), fern_adam(params, np, 0.01, 0.9, 0.999, 1e-8, 0),
                      np};
        assert_non_null(su.vgp);
        assert_non_null(su.opt);
        fern_fn *inner = fern_fn_new(train_step_body, &su, 2, 1);
        fern_fn *step = fern_jit(inner);
        fern_fn_release(inner);
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        fern_seed(1234);
        for (int s = 0; s < 3; s++) {
            fern_optim_prepare(su.opt);
            fern_tensor *in[2] = {tokens, target}, *loss;
            if (fern_call(step, 2, in, 1, &loss) != FERN_OK)
                fail_msg("%s train step (%s): %s", name, mode ? "graph" : "pynative", fern_last_error());
            losses[mode][s] = fern_tensor_get_flat(loss, 0);
            assert_true(isfinite(losses[mode][s]));
        }
        fern_set_mode(FERN_PYNATIVE_MODE);
        if (mode) {
            fern_jit_stats st;
            fern_jit_get_stats(step, &st);
            assert_int_equal(st.n_compiles, 1);
        }
        for (int j = 0; j < np; j++)
            final[mode][j] = fern_clone(params[j]);
        fern_fn_release(step);
        fern_fn_release(su.vgp);
        fern_optim_free(su.opt);
        fern_fn_release(lossfn);
        fern_cell_release(net);
    }
    if (!training) {
        for (int s = 0; s < 3; s++)
            if (!(fabs(losses[0][s] - losses[1][s]) <= 1e-9 * fabs(losses[0][s])))
                fail_msg("%s step %d: pynative loss %.15g, graph loss %.15g", name, s, losses[0][s], losses[1][s]);
        for (int j = 0; j < np; j++)
            compare("parameters after training, graph vs pynative", final[1][j], final[0][j], 1e-8, 1e-10);
        assert_true(losses[0][2] < losses[0][0]);
    }
    fern_scope_end();
}

static void test_zoo_training(void **state)
{
    (void)state;
    train_both_modes("lstm_classifier", 0, 0);
    train_both_modes("transformer_lm", 1, 0);
    train_both_modes("transformer_lm", 1, 1); /* dropout on */
}

/* The classifier through the Model API (fern_model_train) in both modes. */
static void test_classifier_model_api(void **state)
{
    (void)state;
    fern_clear_error();
    for (int mode = 0; mode < 2; mode++) {
        fern_scope_begin();
        fern_seed(7);
        fern_cell *net = fern_model_lstm_classifier(11, 6, 8, 1, 2);
        assert_non_null(net);
        /* label: whether token 3 occurs in the sequence */
        int64_t xs[2] = {32, 5};
        fern_tensor *x = fern_randint(0, 11, FERN_I64, 2, xs);
        fern_tensor *y = fern_cast(fern_any(fern_eq(x, fern_scalar(FERN_I64, 3)), (int[]){1}, 1, 0), FERN_I64);
        assert_non_null(y);
        fern_tensor *params[16];
        int np = fern_cell_parameters(net, params, NULL, 16);
        fern_cell *loss = fern_loss_cross_entropy(NULL, FERN_REDUCTION_MEAN, 0.0, -100);
        fern_metric *acc = fern_metric_accuracy();
        fern_model *m = fern_model_new(net, loss, fern_adam(params, np, 0.02, 0.9, 0.999, 1e-8, 0), &acc, 1);
        fern_model_set_quiet(m, 1);
        fern_batch_source src = fern_tensor_batches(x, y, 8, 1, 1, 0);
        fern_set_mode(mode ? FERN_GRAPH_MODE : FERN_PYNATIVE_MODE);
        double before = 0, after = 0, a;
        assert_int_equal(fern_model_eval(m, &src, &before, &a), FERN_OK);
        if (fern_model_train(m, 15, &src, NULL, 0) != FERN_OK)
            fail_msg("model_train (%s): %s", mode ? "graph" : "pynative", fern_last_error());
        assert_int_equal(fern_model_eval(m, &src, &after, &a), FERN_OK);
        fern_set_mode(FERN_PYNATIVE_MODE);
        assert_true(after < before);
        fern_batch_source_free(&src);
        fern_model_free(m);
        fern_cell_release(loss);
        fern_cell_release(net);
        fern_scope_end();
    }
}

/* ---- errors ------------------------------------------------------------------------------ */

static void expect_error(const char *substr)
{
    assert_int_not_equal(fern_last_status(), FERN_OK);
    if (!strstr(fern_last_error(), substr))
        fail_msg("error '%s' does not mention '%s'", fern_last_error(), substr);
    fern_clear_error();
}

static void test_errors(void **state)
{
    (void)state;
    fern_clear_error();
    fern_scope_begin();
    /* constructors */
    assert_null(fern_layer_lstm(0, 4, NULL));
    expect_error("LSTM");
    fern_rnn_opts o = fern_rnn_opts_default();
    o.dropout = 1.5;
    assert_null(fern_layer_gru(3, 4, &o));
    expect_error("dropout");
    assert_null(fern_layer_rnn(3, 4, (fern_rnn_nonlinearity)7, NULL));
    expect_error("nonlinearity");
    assert_null(fern_layer_multihead_attention(10, 3, NULL));
    expect_error("multiple of num_heads");
    fern_transformer_opts to = fern_transformer_opts_default();
    to.activation = (fern_transformer_activation)9;
    assert_null(fern_layer_transformer_encoder_layer(8, 2, &to));
    expect_error("activation");
    assert_null(fern_model_transformer_lm(10, 8, 3, 1, 16, 8));
    expect_error("multiple of nhead");
    assert_null(fern_model_lstm_classifier(10, 8, 8, 0, 2));
    expect_error("num_layers");
    assert_null(fern_causal_mask(3, FERN_I64));
    expect_error("causal_mask");

    /* forwards */
    o = fern_rnn_opts_default();
    o.initial_state = 1;
    fern_cell *lstm = fern_layer_lstm(5, 4, &o);
    fern_tensor *x = fern_zeros(FERN_F32, 3, (int64_t[]){2, 3, 6});
    fern_tensor *h = fern_zeros(FERN_F32, 3, (int64_t[]){1, 2, 4});
    fern_tensor *in[3] = {x, h, h}, *r[3];
    assert_int_not_equal(fern_cell_call(lstm, 3, in, 3, r), FERN_OK);
    expect_error("input_size=5");
    in[0] = fern_zeros(FERN_F32, 3, (int64_t[]){2, 3, 5});
    in[1] = fern_zeros(FERN_F32, 3, (int64_t[]){1, 3, 4});
    assert_int_not_equal(fern_cell_call(lstm, 3, in, 3, r), FERN_OK);
    expect_error("h0 of shape (1, 2, 4)");
    in[1] = h;
    in[2] = fern_zeros(FERN_F64, 3, (int64_t[]){1, 2, 4});
    assert_int_not_equal(fern_cell_call(lstm, 3, in, 3, r), FERN_OK);
    expect_error("c0");
    in[0] = fern_zeros(FERN_F32, 3, (int64_t[]){2, 0, 5});
    in[2] = h;
    assert_int_not_equal(fern_cell_call(lstm, 3, in, 3, r), FERN_OK);
    expect_error("at least one time step");
    in[0] = fern_zeros(FERN_F64, 3, (int64_t[]){2, 3, 5});
    assert_int_not_equal(fern_cell_call(lstm, 3, in, 3, r), FERN_OK);
    expect_error("f32");
    fern_tensor *y, *hn;
    assert_int_not_equal(fern_rnn_apply(NULL, x, NULL, NULL, &y, &hn, NULL), FERN_OK);
    expect_error("rnn_apply");

    fern_cell *gcell = fern_layer_gru_cell(5, 4, 1);
    fern_tensor *gi[2] = {fern_zeros(FERN_F32, 2, (int64_t[]){2, 5}), fern_zeros(FERN_F32, 2, (int64_t[]){3, 4})};
    assert_int_not_equal(fern_cell_call(gcell, 2, gi, 1, r), FERN_OK);
    expect_error("GRUCell");

    fern_mha_opts mo = fern_mha_opts_default();
    mo.key_padding_mask = 1;
    mo.attn_mask = 1;
    fern_cell *mha = fern_layer_multihead_attention(8, 2, &mo);
    fern_tensor *q = fern_zeros(FERN_F32, 3, (int64_t[]){2, 4, 8});
    fern_tensor *k = fern_zeros(FERN_F32, 3, (int64_t[]){2, 5, 8});
    fern_tensor *kpm = fern_zeros(FERN_BOOL, 2, (int64_t[]){2, 5});
    fern_tensor *am = fern_zeros(FERN_F32, 2, (int64_t[]){4, 4});
    fern_tensor *mi[5] = {q, k, k, kpm, am};
    assert_int_not_equal(fern_cell_call(mha, 5, mi, 1, r), FERN_OK);
    expect_error("attn_mask of shape (4, 5)");
    mi[4] = fern_zeros(FERN_F32, 2, (int64_t[]){4, 5});
    mi[3] = fern_zeros(FERN_BOOL, 2, (int64_t[]){2, 4});
    assert_int_not_equal(fern_cell_call(mha, 5, mi, 1, r), FERN_OK);
    expect_error("key_padding_mask of shape (2, 5)");
    mi[3] = kpm;
    mi[4] = fern_zeros(FERN_I32, 2, (int64_t[]){4, 5});
    assert_int_not_equal(fern_cell_call(mha, 5, mi, 1, r), FERN_OK);
    expect_error("attn_mask must be bool");
    mi[1] = fern_zeros(FERN_F32, 3, (int64_t[]){2, 5, 6});
    assert_int_not_equal(fern_cell_call(mha, 5, mi, 1, r), FERN_OK);
    expect_error("MultiheadAttention(embed_dim=8");

    fern_cell *enc = fern_layer_transformer_encoder_layer(8, 2, NULL);
    assert_null(fern_cell_call1(enc, fern_zeros(FERN_F32, 3, (int64_t[]){2, 4, 6})));
    expect_error("d_model=8");
    assert_null(fern_transformer_encoder_apply(mha, q, NULL, NULL));
    expect_error("TransformerEncoderLayer");

    fern_cell *lm = fern_model_transformer_lm(10, 8, 2, 1, 16, 4);
    assert_null(fern_cell_call1(lm, fern_zeros(FERN_I64, 2, (int64_t[]){2, 5})));
    expect_error("max_len=4");
    assert_null(fern_cell_call1(lm, fern_zeros(FERN_F32, 2, (int64_t[]){2, 3})));
    expect_error("integer tokens");

    fern_cell_release(lstm);
    fern_cell_release(gcell);
    fern_cell_release(mha);
    fern_cell_release(enc);
    fern_cell_release(lm);
    fern_scope_end();
}

/* Parameter names, shapes and counts like torch (a summary of the LM). */
static void test_names_and_counts(void **state)
{
    (void)state;
    fern_clear_error();
    fern_rnn_opts o = fern_rnn_opts_default();
    o.num_layers = 2;
    o.bidirectional = 1;
    fern_cell *gru = fern_layer_gru(10, 20, &o);
    const char *names[16];
    fern_tensor *ps[16];
    assert_int_equal(fern_cell_parameters(gru, ps, names, 16), 16);
    assert_string_equal(names[0], "weight_ih_l0");
    assert_string_equal(names[4], "weight_ih_l0_reverse");
    assert_string_equal(names[15], "bias_hh_l1_reverse");
    assert_int_equal(fern_tensor_dim(ps[8], 0), 60); /* weight_ih_l1 (3*20, 2*20) */
    assert_int_equal(fern_tensor_dim(ps[8], 1), 40);
    /* torch.nn.GRU(10, 20, 2, bidirectional=True): 11280 parameters */
    assert_int_equal(fern_cell_param_count(gru), 11280);
    fern_cell_release(gru);
    fern_cell *enc = fern_layer_transformer_encoder_layer(512, 8, NULL);
    /* torch.nn.TransformerEncoderLayer(512, 8): 3152384 parameters */
    assert_int_equal(fern_cell_param_count(enc), 3152384);
    assert_non_null(fern_cell_find(enc, "self_attn.out_proj.weight"));
    fern_cell_release(enc);
    fern_cell *lm = fern_model_transformer_lm(100, 16, 4, 2, 32, 20);
    assert_non_null(fern_cell_find(lm, "encoder.layers.1.linear2.bias"));
    assert_non_null(fern_cell_find(lm, "encoder.norm.weight"));
    FILE *devnull = fopen("/dev/null", "w");
    fern_cell_summary(lm, devnull);
    fclose(devnull);
    fern_cell_release(lm);
    assert_int_equal(fern_last_status(), FERN_OK);
}

int main(void)
{
    const char *path = getenv("FERN_SEQ_REFS");
    if (!path) {
        fprintf(stderr, "set FERN_SEQ_REFS to the .npz written by tests/data/make_seq_refs.py\n");
        return 2;
    }
    refs = fern_npz_load(path);
    if (!refs) {
        fprintf(stderr, "%s\n", fern_last_error());
        return 2;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_counts),
        cmocka_unit_test(test_rnn),
        cmocka_unit_test(test_lstm),
        cmocka_unit_test(test_gru),
        cmocka_unit_test(test_step_cells),
        cmocka_unit_test(test_lstm_graph_has_scan),
        cmocka_unit_test(test_rnn_apply),
        cmocka_unit_test(test_mha),
        cmocka_unit_test(test_mha_causal_and_apply),
        cmocka_unit_test(test_encoder_layer),
        cmocka_unit_test(test_encoder_training_dropout),
        cmocka_unit_test(test_zoo_against_torch),
        cmocka_unit_test(test_zoo_training),
        cmocka_unit_test(test_classifier_model_api),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    fern_checkpoint_free(refs);
    return rc;
}
