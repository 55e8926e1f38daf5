/* The layer library, part 2a: recurrent layers. RNN / LSTM / GRU over
 * sequences (the time loop is a fern_scan, so graph mode gets one scan
 * node per layer direction and autodiff differentiates through it) and the
 * single-step RNNCell / LSTMCell / GRUCell. torch.nn's parameter names,
 * layouts, gate orders and initialization. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fern/seq_layers.h"
#include "layers_internal.h"

enum { K_TANH = 0, K_RELU = 1, K_LSTM = 2, K_GRU = 3 };

static const char *const kind_names[] = {"RNN", "RNN", "LSTM", "GRU"};
static const int kind_gates[] = {1, 1, 4, 3};

fern_rnn_opts fern_rnn_opts_default(void)
{
    fern_rnn_opts o = {.num_layers = 1, .bias = 1, .batch_first = 1, .dropout = 0.0,
                       .bidirectional = 0, .initial_state = 0};
    return o;
}

/* A cell with n_out outputs whose state is a zeroed block of `size` bytes
 * starting with a fern__layer_head (so fern__layer_err can quote it). */
static fern_cell *new_cell(const char *type, fern_cell_forward_fn fwd, int n_in, int n_out, size_t size,
                           const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;
static fern_cell *new_cell(const char *type, fern_cell_forward_fn fwd, int n_in, int n_out, size_t size,
                           const char *fmt, ...)
{
    fern__layer_head *st = calloc(1, size < sizeof *st ? sizeof *st : size);
    if (!st) {
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", type);
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->desc, sizeof st->desc, fmt, ap);
    va_end(ap);
    return fern_cell_new(type, fwd, n_in, n_out, st, free);
}

/* ---- one time step ------------------------------------------------------------------ */

/* gx: the input projection of this step, (N, G*H), holding b_ih and (except
 * for GRU, whose b_hn sits inside r * (...)) b_hh. whh_t: W_hh^T (H, G*H);
 * bhh: b_hh for GRU (or NULL). Writes h' (and c' for LSTM). */
static int cell_step(int kind, int64_t H, fern_tensor *gx, fern_tensor *h, fern_tensor *c,
                     fern_tensor *whh_t, fern_tensor *bhh, fern_tensor **h_out, fern_tensor **c_out)
{
    fern_tensor *gh = fern_matmul(h, whh_t);
    switch (kind) {
    case K_TANH:
        *h_out = fern_tanh(fern_add(gx, gh));
        break;
    case K_RELU:
        *h_out = fern_relu(fern_add(gx, gh));
        break;
    case K_LSTM: {
        fern_tensor *g = fern_add(gx, gh);
        fern_tensor *sg = fern_sigmoid(g);
        fern_tensor *i = fern_slice(sg, -1, 0, H, 1);
        fern_tensor *f = fern_slice(sg, -1, H, 2 * H, 1);
        fern_tensor *gg = fern_tanh(fern_slice(g, -1, 2 * H, 3 * H, 1));
        fern_tensor *o = fern_slice(sg, -1, 3 * H, 4 * H, 1);
        fern_tensor *cn = fern_add(fern_mul(f, c), fern_mul(i, gg));
        *c_out = cn;
        *h_out = fern_mul(o, fern_tanh(cn));
        break;
    }
    default: { /* GRU */
        if (bhh)
            gh = fern_add(gh, bhh);
        fern_tensor *rz = fern_sigmoid(fern_add(fern_slice(gx, -1, 0, 2 * H, 1), fern_slice(gh, -1, 0, 2 * H, 1)));
        fern_tensor *r = fern_slice(rz, -1, 0, H, 1);
        fern_tensor *z = fern_slice(rz, -1, H, 2 * H, 1);
        fern_tensor *n = fern_tanh(fern_add(fern_slice(gx, -1, 2 * H, 3 * H, 1),
                                            fern_mul(r, fern_slice(gh, -1, 2 * H, 3 * H, 1))));
        /* (1 - z) * n + z * h = n + z * (h - n) */
        *h_out = fern_add(n, fern_mul(z, fern_sub(h, n)));
        break;
    }
    }
    if (!*h_out || (kind == K_LSTM && !*c_out))
        return -1;
    return 0;
}

/* The scan body: (h[, c], gx_t) -> (h'[, c'], h'). */
typedef struct {
    int kind;
    int64_t H;
    fern_tensor *whh_t, *bhh;
} step_ud;

static int scan_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    step_ud *u = ud;
    int lstm = u->kind == K_LSTM;
    fern_tensor *gx = in[lstm ? 2 : 1];
    fern_tensor *hn = NULL, *cn = NULL;
    if (cell_step(u->kind, u->H, gx, in[0], lstm ? in[1] : NULL, u->whh_t, u->bhh, &hn, &cn))
        return -1;
    out[0] = hn;
    if (lstm) {
        out[1] = cn;
        out[2] = hn;
    } else {
        out[1] = hn;
    }
    return 0;
}

/* ---- sequence layers ----------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int kind;
    int64_t in, hid;
    fern_rnn_opts o;
    int ndir;
    /* per (layer, direction) slot: w_ih, w_hh, b_ih, b_hh (borrowed; b_* may be NULL) */
    fern_tensor *p[];
} rnn_state;

static fern_tensor *param_at(const rnn_state *s, int layer, int dir, int which)
{
    return s->p[((size_t)layer * (size_t)s->ndir + (size_t)dir) * 4 + (size_t)which];
}

static int check_state(const fern_cell *self, const rnn_state *s, const char *name, fern_tensor *st,
                       int unbatched, int64_t n, fern_dtype dt)
{
    if (!st)
        return 0;
    int64_t ld = (int64_t)s->o.num_layers * s->ndir;
    int want_nd = unbatched ? 2 : 3;
    const int64_t *sh = fern_tensor_shape(st);
    int ok = fern_tensor_ndim(st) == want_nd && sh[0] == ld && sh[want_nd - 1] == s->hid &&
             (unbatched || sh[1] == n) && fern_tensor_dtype(st) == dt;
    if (!ok) {
        char d[128];
        if (unbatched)
            return fern__layer_err(self, "expected %s of shape (%lld, %lld) and dtype %s for an unbatched input, got %s",
                                   name, (long long)ld, (long long)s->hid, fern_dtype_name(dt),
                                   fern_tensor_desc(st, d, sizeof d));
        return fern__layer_err(self, "expected %s of shape (%lld, %lld, %lld) and dtype %s, got %s", name, (long long)ld,
                               (long long)n, (long long)s->hid, fern_dtype_name(dt), fern_tensor_desc(st, d, sizeof d));
    }
    return 0;
}

/* One direction of one layer over a time-major input xs (T, N, F):
 * returns ys (T, N, H) and the final states. */
static int run_direction(const rnn_state *s, int layer, int dir, fern_tensor *xs, fern_tensor *h0, fern_tensor *c0,
                         fern_tensor **ys, fern_tensor **hT, fern_tensor **cT)
{
    int lstm = s->kind == K_LSTM;
    fern_tensor *wih = param_at(s, layer, dir, 0), *whh = param_at(s, layer, dir, 1);
    fern_tensor *bih = param_at(s, layer, dir, 2), *bhh = param_at(s, layer, dir, 3);
    /* the input projection of every step at once */
    fern_tensor *gx = fern_matmul(xs, fern_transpose(wih, 0, 1));
    if (bih)
        gx = fern_add(gx, bih);
    if (bhh && s->kind != K_GRU)
        gx = fern_add(gx, bhh);
    int axis0 = 0;
    if (dir == 1)
        gx = fern_flip(gx, &axis0, 1);
    if (!gx)
        return -1;
    step_ud u = {s->kind, s->hid, fern_transpose(whh, 0, 1), s->kind == K_GRU ? bhh : NULL};
    if (!u.whh_t)
        return -1;
    fern_fn *body = fern_fn_new(scan_body, &u, lstm ? 3 : 2, lstm ? 3 : 2);
    if (!body)
        return -1;
    fern_fn_set_name(body, lstm ? "lstm_step" : s->kind == K_GRU ? "gru_step" : "rnn_step");
    fern_tensor *init[2] = {h0, c0}, *res[3] = {0};
    fern_status st = fern_scan(body, lstm ? 2 : 1, init, 1, &gx, lstm ? 3 : 2, res);
    fern_fn_release(body);
    if (st != FERN_OK)
        return -1;
    *hT = res[0];
    *cT = lstm ? res[1] : NULL;
    *ys = res[lstm ? 2 : 1];
    if (dir == 1)
        *ys = fern_flip(*ys, &axis0, 1);
    return *ys ? 0 : -1;
}

/* The whole forward; every result is owned by the current scope. */
static int rnn_compute(fern_cell *self, fern_tensor *x, fern_tensor *h0, fern_tensor *c0, fern_tensor **output,
                       fern_tensor **h_n, fern_tensor **c_n)
{
    rnn_state *s = fern_cell_state(self);
    int lstm = s->kind == K_LSTM;
    fern_dtype dt = fern_tensor_dtype(s->p[0]);
    if (fern__layer_check(self, x, 2, 3, (int)dt,
                          s->o.batch_first ? "an input of shape (N, T, input_size) or (T, input_size)"
                                           : "an input of shape (T, N, input_size) or (T, input_size)"))
        return -1;
    char d[128];
    if (fern_tensor_dim(x, -1) != s->in)
        return fern__layer_err(self, "expected an input whose last dim is input_size=%lld, got %s", (long long)s->in,
                               fern_tensor_desc(x, d, sizeof d));
    int unbatched = fern_tensor_ndim(x) == 2;
    /* time-major (T, N, F) from here on */
    fern_tensor *xs = unbatched ? fern_unsqueeze(x, 1) : s->o.batch_first ? fern_transpose(x, 0, 1) : x;
    if (!xs)
        return -1;
    int64_t T = fern_tensor_dim(xs, 0), N = fern_tensor_dim(xs, 1);
    if (T < 1)
        return fern__layer_err(self, "the sequence needs at least one time step, got %s", fern_tensor_desc(x, d, sizeof d));
    if (check_state(self, s, "h0", h0, unbatched, N, dt) || (lstm && check_state(self, s, "c0", c0, unbatched, N, dt)))
        return -1;
    if (unbatched) {
        if (h0)
            h0 = fern_unsqueeze(h0, 1);
        if (c0)
            c0 = fern_unsqueeze(c0, 1);
    }
    int L = s->o.num_layers, D = s->ndir;
    int64_t zshape[2] = {N, s->hid};
    fern_tensor *zero = (!h0 || (lstm && !c0)) ? fern_zeros(dt, 2, zshape) : NULL;
    fern_tensor *hs[2 * 64], *cs[2 * 64];
    fern_tensor *layer_in = xs;
    for (int l = 0; l < L; l++) {
        fern_tensor *outs[2];
        for (int dir = 0; dir < D; dir++) {
            int k = l * D + dir;
            fern_tensor *hi = h0 ? fern_reshape(fern_slice(h0, 0, k, k + 1, 1), 2, zshape) : zero;
            fern_tensor *ci = NULL;
            if (lstm)
                ci = c0 ? fern_reshape(fern_slice(c0, 0, k, k + 1, 1), 2, zshape) : zero;
            if (!hi || (lstm && !ci))
                return -1;
            if (run_direction(s, l, dir, layer_in, hi, ci, &outs[dir], &hs[k], &cs[k]))
                return -1;
        }
        layer_in = D == 2 ? fern_concat(outs, 2, 2) : outs[0];
        if (l < L - 1 && s->o.dropout > 0 && fern_cell_training(self))
            layer_in = fern_dropout(layer_in, s->o.dropout, 1);
        if (!layer_in)
            return -1;
    }
    fern_tensor *y = layer_in;
    fern_tensor *hn = fern_stack(hs, L * D, 0);
    fern_tensor *cn = lstm ? fern_stack(cs, L * D, 0) : NULL;
    if (unbatched) {
        int ax = 1;
        y = fern_squeeze(y, &ax, 1);
        hn = fern_squeeze(hn, &ax, 1);
        if (lstm)
            cn = fern_squeeze(cn, &ax, 1);
    } else if (s->o.batch_first) {
        y = fern_transpose(y, 0, 1);
    }
    if (!y || !hn || (lstm && !cn))
        return -1;
    *output = y;
    *h_n = hn;
    if (c_n)
        *c_n = cn;
    return 0;
}

static int rnn_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    rnn_state *s = fern_cell_state(self);
    int lstm = s->kind == K_LSTM;
    fern_tensor *h0 = n_in > 1 ? in[1] : NULL, *c0 = lstm && n_in > 2 ? in[2] : NULL;
    if (n_in > 1 && (!h0 || (lstm && !c0))) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(self, "an initial state input is NULL");
        return -1;
    }
    return rnn_compute(self, in[0], h0, c0, &out[0], &out[1], lstm ? &out[2] : NULL);
}

static int is_seq_rnn(const fern_cell *c)
{
    const char *t = fern_cell_type(c);
    return c && fern_cell_state(c) &&
           (!strcmp(t, "RNN") || !strcmp(t, "LSTM") || !strcmp(t, "GRU"));
}

fern_status fern_rnn_apply(fern_cell *rnn, fern_tensor *x, fern_tensor *h0, fern_tensor *c0,
                           fern_tensor **output, fern_tensor **h_n, fern_tensor **c_n)
{
    if (output)
        *output = NULL;
    if (h_n)
        *h_n = NULL;
    if (c_n)
        *c_n = NULL;
    if (!is_seq_rnn(rnn) || !output || !h_n) {
        fern_set_error(FERN_ERR_INVALID, "rnn_apply: need an RNN, LSTM or GRU cell and output / h_n pointers, got %s",
                       rnn ? fern_cell_type(rnn) : "NULL");
        return FERN_ERR_INVALID;
    }
    rnn_state *s = fern_cell_state(rnn);
    if (s->kind != K_LSTM && c0) {
        fern_set_error(FERN_ERR_INVALID, "rnn_apply: %s: c0 is only for an LSTM", s->h.desc);
        return FERN_ERR_INVALID;
    }
    fern_tensor *y = NULL, *hn = NULL, *cn = NULL;
    fern_scope_begin();
    int rc = rnn_compute(rnn, x, h0, c0, &y, &hn, &cn);
    if (rc == 0) {
        *output = fern_keep(y);
        *h_n = fern_keep(hn);
        if (c_n && cn)
            *c_n = fern_keep(cn);
    }
    fern_scope_end();
    if (rc) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(rnn, "forward failed");
        return fern_last_status();
    }
    return FERN_OK;
}

static fern_cell *make_rnn(int kind, int64_t in_size, int64_t hidden, const fern_rnn_opts *opts)
{
    fern_rnn_opts o = opts ? *opts : fern_rnn_opts_default();
    const char *type = kind_names[kind];
    if (in_size < 1 || hidden < 1 || o.num_layers < 1 || o.num_layers > 64 || !(o.dropout >= 0 && o.dropout <= 1)) {
        fern_set_error(FERN_ERR_INVALID,
                       "%s: input_size and hidden_size must be positive, num_layers in 1..64 and dropout in [0, 1], "
                       "got input_size %lld, hidden_size %lld, num_layers %d, dropout %g",
                       type, (long long)in_size, (long long)hidden, o.num_layers, o.dropout);
        return NULL;
    }
    o.bias = o.bias != 0;
    o.batch_first = o.batch_first != 0;
    o.bidirectional = o.bidirectional != 0;
    o.initial_state = o.initial_state != 0;
    int D = o.bidirectional ? 2 : 1, lstm = kind == K_LSTM;
    int n_state = lstm ? 2 : 1;
    char act[32] = "";
    if (kind == K_TANH || kind == K_RELU)
        snprintf(act, sizeof act, ", nonlinearity=%s", kind == K_TANH ? "tanh" : "relu");
    size_t size = sizeof(rnn_state) + (size_t)o.num_layers * (size_t)D * 4 * sizeof(fern_tensor *);
    fern_cell *c = new_cell(type, rnn_forward, o.initial_state ? 1 + n_state : 1, 1 + n_state, size,
                            "%s(%lld, %lld%s, num_layers=%d, bias=%d, batch_first=%d, dropout=%g, bidirectional=%d)",
                            type, (long long)in_size, (long long)hidden, act, o.num_layers, o.bias, o.batch_first,
                            o.dropout, o.bidirectional);
    if (!c)
        return NULL;
    rnn_state *s = fern_cell_state(c);
    s->kind = kind;
    s->in = in_size;
    s->hid = hidden;
    s->o = o;
    s->ndir = D;
    fern_dtype dt = fern_layers_default_dtype();
    int64_t G = kind_gates[kind];
    double bound = 1.0 / sqrt((double)hidden);
    int ok = 1;
    for (int l = 0; l < o.num_layers && ok; l++) {
        for (int dir = 0; dir < D && ok; dir++) {
            const char *sfx = dir ? "_reverse" : "";
            int64_t in_l = l == 0 ? in_size : D * hidden;
            int64_t wi[2] = {G * hidden, in_l}, wh[2] = {G * hidden, hidden}, bs = G * hidden;
            char name[64];
            fern_tensor **slot = &s->p[((size_t)l * (size_t)D + (size_t)dir) * 4];
            snprintf(name, sizeof name, "weight_ih_l%d%s", l, sfx);
            slot[0] = fern__layer_add_param(c, name, dt, 2, wi);
            snprintf(name, sizeof name, "weight_hh_l%d%s", l, sfx);
            slot[1] = slot[0] ? fern__layer_add_param(c, name, dt, 2, wh) : NULL;
            ok = slot[1] != NULL;
            if (ok && o.bias) {
                snprintf(name, sizeof name, "bias_ih_l%d%s", l, sfx);
                slot[2] = fern__layer_add_param(c, name, dt, 1, &bs);
                snprintf(name, sizeof name, "bias_hh_l%d%s", l, sfx);
                slot[3] = slot[2] ? fern__layer_add_param(c, name, dt, 1, &bs) : NULL;
                ok = slot[3] != NULL;
            }
            for (int k = 0; k < 4 && ok; k++)
                if (slot[k])
                    ok = fern_init_uniform(slot[k], -bound, bound) == FERN_OK;
        }
    }
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_rnn(int64_t input_size, int64_t hidden_size, fern_rnn_nonlinearity act,
                          const fern_rnn_opts *opts)
{
    if (act != FERN_RNN_TANH && act != FERN_RNN_RELU) {
        fern_set_error(FERN_ERR_INVALID, "RNN: nonlinearity must be FERN_RNN_TANH or FERN_RNN_RELU, got %d", (int)act);
        return NULL;
    }
    return make_rnn(act == FERN_RNN_TANH ? K_TANH : K_RELU, input_size, hidden_size, opts);
}

fern_cell *fern_layer_lstm(int64_t input_size, int64_t hidden_size, const fern_rnn_opts *opts)
{
    return make_rnn(K_LSTM, input_size, hidden_size, opts);
}

fern_cell *fern_layer_gru(int64_t input_size, int64_t hidden_size, const fern_rnn_opts *opts)
{
    return make_rnn(K_GRU, input_size, hidden_size, opts);
}

/* ---- single-step cells ----------------------------------------------------------------- */

typedef struct {
    fern__layer_head h;
    int kind;
    int64_t in, hid;
    fern_tensor *wih, *whh, *bih, *bhh;
} step_state;

static int check_hidden(const fern_cell *self, const step_state *s, const char *name, fern_tensor *t,
                        int unbatched, int64_t n, fern_dtype dt)
{
    if (!t) {
        if (fern_last_status() == FERN_OK)
            fern__layer_err(self, "%s is NULL", name);
        return -1;
    }
    const int64_t *sh = fern_tensor_shape(t);
    int ok = fern_tensor_dtype(t) == dt &&
             (unbatched ? fern_tensor_ndim(t) == 1 && sh[0] == s->hid
                        : fern_tensor_ndim(t) == 2 && sh[0] == n && sh[1] == s->hid);
    if (!ok) {
        char d[128];
        if (unbatched)
            return fern__layer_err(self, "expected %s of shape (%lld) and dtype %s for an unbatched input, got %s", name,
                                   (long long)s->hid, fern_dtype_name(dt), fern_tensor_desc(t, d, sizeof d));
        return fern__layer_err(self, "expected %s of shape (%lld, %lld) and dtype %s, got %s", name, (long long)n,
                               (long long)s->hid, fern_dtype_name(dt), fern_tensor_desc(t, d, sizeof d));
    }
    return 0;
}

static int step_forward(fern_cell *self, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out)
{
    step_state *s = fern_cell_state(self);
    fern_dtype dt = fern_tensor_dtype(s->wih);
    fern_tensor *x = in[0];
    if (fern__layer_check(self, x, 1, 2, (int)dt, "an input of shape (N, input_size) or (input_size)"))
        return -1;
    char d[128];
    if (fern_tensor_dim(x, -1) != s->in)
        return fern__layer_err(self, "expected an input whose last dim is input_size=%lld, got %s", (long long)s->in,
                               fern_tensor_desc(x, d, sizeof d));
    int unbatched = fern_tensor_ndim(x) == 1;
    int64_t n = unbatched ? 1 : fern_tensor_dim(x, 0);
    int lstm = s->kind == K_LSTM;
    if (check_hidden(self, s, lstm ? "h" : "hx", in[1], unbatched, n, dt) ||
        (lstm && check_hidden(self, s, "c", in[2], unbatched, n, dt)))
        return -1;
    fern_tensor *h = in[1], *c = lstm ? in[2] : NULL;
    if (unbatched) {
        x = fern_unsqueeze(x, 0);
        h = fern_unsqueeze(h, 0);
        if (lstm)
            c = fern_unsqueeze(c, 0);
    }
    fern_tensor *gx = fern_matmul(x, fern_transpose(s->wih, 0, 1));
    if (s->bih)
        gx = fern_add(gx, s->bih);
    if (s->bhh && s->kind != K_GRU)
        gx = fern_add(gx, s->bhh);
    if (!gx)
        return -1;
    fern_tensor *hn = NULL, *cn = NULL;
    if (cell_step(s->kind, s->hid, gx, h, c, fern_transpose(s->whh, 0, 1), s->kind == K_GRU ? s->bhh : NULL, &hn,
                  &cn))
        return -1;
    if (unbatched) {
        int ax = 0;
        hn = fern_squeeze(hn, &ax, 1);
        if (lstm)
            cn = fern_squeeze(cn, &ax, 1);
    }
    out[0] = hn;
    if (lstm)
        out[1] = cn;
    return out[0] && (!lstm || out[1]) ? 0 : -1;
}

static fern_cell *make_step(int kind, int64_t in_size, int64_t hidden, int bias)
{
    static const char *const types[] = {"RNNCell", "RNNCell", "LSTMCell", "GRUCell"};
    const char *type = types[kind];
    if (in_size < 1 || hidden < 1) {
        fern_set_error(FERN_ERR_INVALID, "%s: input_size and hidden_size must be positive, got %lld and %lld", type,
                       (long long)in_size, (long long)hidden);
        return NULL;
    }
    char act[32] = "";
    if (kind == K_TANH || kind == K_RELU)
        snprintf(act, sizeof act, ", nonlinearity=%s", kind == K_TANH ? "tanh" : "relu");
    int lstm = kind == K_LSTM;
    fern_cell *c = new_cell(type, step_forward, lstm ? 3 : 2, lstm ? 2 : 1, sizeof(step_state), "%s(%lld, %lld, bias=%d%s)",
                            type, (long long)in_size, (long long)hidden, bias != 0, act);
    if (!c)
        return NULL;
    step_state *s = fern_cell_state(c);
    s->kind = kind;
    s->in = in_size;
    s->hid = hidden;
    fern_dtype dt = fern_layers_default_dtype();
    int64_t G = kind_gates[kind];
    int64_t wi[2] = {G * hidden, in_size}, wh[2] = {G * hidden, hidden}, bs = G * hidden;
    s->wih = fern__layer_add_param(c, "weight_ih", dt, 2, wi);
    s->whh = s->wih ? fern__layer_add_param(c, "weight_hh", dt, 2, wh) : NULL;
    int ok = s->whh != NULL;
    if (ok && bias) {
        s->bih = fern__layer_add_param(c, "bias_ih", dt, 1, &bs);
        s->bhh = s->bih ? fern__layer_add_param(c, "bias_hh", dt, 1, &bs) : NULL;
        ok = s->bhh != NULL;
    }
    double bound = 1.0 / sqrt((double)hidden);
    fern_tensor *ps[4] = {s->wih, s->whh, s->bih, s->bhh};
    for (int k = 0; k < 4 && ok; k++)
        if (ps[k])
            ok = fern_init_uniform(ps[k], -bound, bound) == FERN_OK;
    if (!ok) {
        fern_cell_release(c);
        return NULL;
    }
    return c;
}

fern_cell *fern_layer_rnn_cell(int64_t input_size, int64_t hidden_size, int bias, fern_rnn_nonlinearity act)
{
    if (act != FERN_RNN_TANH && act != FERN_RNN_RELU) {
        fern_set_error(FERN_ERR_INVALID, "RNNCell: nonlinearity must be FERN_RNN_TANH or FERN_RNN_RELU, got %d",
                       (int)act);
        return NULL;
    }
    return make_step(act == FERN_RNN_TANH ? K_TANH : K_RELU, input_size, hidden_size, bias);
}

fern_cell *fern_layer_lstm_cell(int64_t input_size, int64_t hidden_size, int bias)
{
    return make_step(K_LSTM, input_size, hidden_size, bias);
}

fern_cell *fern_layer_gru_cell(int64_t input_size, int64_t hidden_size, int bias)
{
    return make_step(K_GRU, input_size, hidden_size, bias);
}
