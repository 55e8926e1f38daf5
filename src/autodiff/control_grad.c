/* Gradients of structured nodes (recorded while tracing):
 *
 *  cond:  cond(pred, vjp(then), vjp(else)) applied to (operands, cotangents).
 *  scan:  the forward scan is re-run saving the carry before every step;
 *         a reverse scan then applies the body's vjp step by step.
 *  while: the trip count N is computed by re-running the loop with a
 *         counter; the backward loop runs k = N-1 .. 0 and recomputes the
 *         state before step k from the initial values (k body applications),
 *         then applies the body's vjp. This is O(N^2) body evaluations and
 *         O(1) extra memory: exact gradients for any trip count without
 *         storing a per-iteration stack. Use scan (O(N) time, O(N) memory)
 *         for long loops with a known length.
 *
 * Each backward is written with the control-flow API, so in a trace it
 * becomes cond/while/scan nodes itself (and can be differentiated again). */
#include <stdlib.h>
#include <string.h>

#include "autodiff_internal.h"

#define MAXV FERN_MAX_INPUTS

static fern_tensor *zero_if_null(fern_tensor *g, fern_tensor *like)
{
    return g ? g : fern_zeros_like(like);
}

/* ---- cond ---------------------------------------------------------------- */

int fern__cond_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins)
{
    int n_ops = e->n_in - 1;
    fern_tensor *args[MAXV * 2];
    for (int i = 0; i < n_ops; i++)
        args[i] = e->in[1 + i];
    for (int k = 0; k < e->n_out; k++)
        args[n_ops + k] = zero_if_null(gouts[k], e->out[k]);
    fern_fn *a = fern__graph_vjp_fn(e->sub[0]), *b = fern__graph_vjp_fn(e->sub[1]);
    fern_status st = a && b ? fern_cond(e->in[0], a, b, n_ops + e->n_out, args, n_ops, gins + 1)
                            : fern_last_status();
    fern_fn_release(a);
    fern_fn_release(b);
    gins[0] = NULL;
    return st == FERN_OK ? 0 : -1;
}

/* ---- scan ---------------------------------------------------------------- */

typedef struct {
    fern_fn *body; /* runs the body graph: (carries, x_t) -> (carries, ys_t) */
    int nc, n_xs;
} save_ud;

/* (c, x_t) -> (c', ys_t..., c): the carry before the step is saved as a y */
static int save_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    save_ud *u = ud;
    if (fern_call(u->body, u->body->n_in, in, u->body->n_out, out) != FERN_OK)
        return -1;
    for (int i = 0; i < u->nc; i++)
        out[u->body->n_out + i] = in[i];
    return 0;
}

typedef struct {
    fern_fn *vjp; /* (c, x_t, cots of (c', ys_t)) -> (dc, dx_t) */
    int nc, n_xs, n_ys;
} back_ud;

/* carries: dc; per step: (c_t..., x_t..., dy_t...) -> (dc_prev, dx_t...) */
static int back_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    back_ud *u = ud;
    int nc = u->nc, nx = u->n_xs, ny = u->n_ys;
    fern_tensor *args[MAXV * 3];
    int n = 0;
    for (int i = 0; i < nc; i++) /* c_t */
        args[n++] = in[nc + i];
    for (int j = 0; j < nx; j++) /* x_t */
        args[n++] = in[2 * nc + j];
    for (int i = 0; i < nc; i++) /* cotangent of c' */
        args[n++] = in[i];
    for (int j = 0; j < ny; j++) /* cotangent of y_t */
        args[n++] = in[2 * nc + nx + j];
    return fern_call(u->vjp, n, args, nc + nx, out) == FERN_OK ? 0 : -1;
}

int fern__scan_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins)
{
    int nc = e->n_carry, nx = e->n_in - nc, ny = e->n_out - nc;
    fern_fn *run = fern__graph_fn(e->sub[0]);
    fern_fn *vjp = fern__graph_vjp_fn(e->sub[0]);
    fern_fn *save = NULL, *back = NULL;
    save_ud su = {run, nc, nx};
    back_ud bu = {vjp, nc, nx, ny};
    int rc = -1;
    if (!run || !vjp)
        goto done;
    /* 1. forward again, keeping the carry that enters every step */
    save = fern_fn_new(save_body, &su, nc + nx, nc + ny + nc);
    fern_tensor *fwd[MAXV * 3];
    if (fern_scan(save, nc, e->in, nx, e->in + nc, nc + ny + nc, fwd) != FERN_OK)
        goto done;
    fern_tensor *const *saved = fwd + nc + ny; /* (T, carry shape) each */
    /* 2. reverse scan over (saved carries, xs, dys) */
    int axis0 = 0;
    fern_tensor *xs_r[MAXV * 3], *init[MAXV];
    int n = 0;
    for (int i = 0; i < nc; i++)
        xs_r[n++] = fern_flip(saved[i], &axis0, 1);
    for (int j = 0; j < nx; j++)
        xs_r[n++] = fern_flip(e->in[nc + j], &axis0, 1);
    for (int j = 0; j < ny; j++)
        xs_r[n++] = fern_flip(zero_if_null(gouts[nc + j], e->out[nc + j]), &axis0, 1);
    for (int i = 0; i < nc; i++)
        init[i] = zero_if_null(gouts[i], e->out[i]);
    back = fern_fn_new(back_body, &bu, nc + n, nc + nx);
    fern_tensor *res[MAXV * 2];
    if (fern_scan(back, nc, init, n, xs_r, nc + nx, res) != FERN_OK)
        goto done;
    for (int i = 0; i < nc; i++)
        gins[i] = res[i];
    for (int j = 0; j < nx; j++)
        gins[nc + j] = fern_flip(res[nc + j], &axis0, 1);
    rc = 0;
done:
    fern_fn_release(save);
    fern_fn_release(back);
    fern_fn_release(run);
    fern_fn_release(vjp);
    return rc;
}

/* ---- while --------------------------------------------------------------- */

typedef struct {
    fern_fn *cond, *body;
    int n;
} count_ud;

static int count_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    count_ud *u = ud;
    return fern_call(u->cond, u->n, in, 1, out) == FERN_OK ? 0 : -1;
}

static int count_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    count_ud *u = ud;
    if (fern_call(u->body, u->n, in, u->n, out) != FERN_OK)
        return -1;
    out[u->n] = fern_add_scalar(in[u->n], 1.0);
    return out[u->n] ? 0 : -1;
}

/* recompute: (j, vars) while j < k: vars = body(vars) */
typedef struct {
    fern_fn *body;
    int n;
    fern_tensor *k; /* the target count (an outer value: lifted when traced) */
} redo_ud;

static int redo_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    redo_ud *u = ud;
    out[0] = fern_lt(in[0], u->k);
    return out[0] ? 0 : -1;
}

static int redo_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    redo_ud *u = ud;
    if (fern_call(u->body, u->n, in + 1, u->n, out + 1) != FERN_OK)
        return -1;
    out[0] = fern_add_scalar(in[0], 1.0);
    return out[0] ? 0 : -1;
}

typedef struct {
    fern_fn *body, *vjp;
    int n;
    fern_tensor *const *init;
} wback_ud;

static int wback_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    (void)ud;
    out[0] = fern_gt(in[0], fern_scalar(FERN_I64, 0));
    return out[0] ? 0 : -1;
}

/* (k, dvars) -> (k-1, vjp(body)(state_{k-1}, dvars)) */
static int wback_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    wback_ud *u = ud;
    int n = u->n;
    fern_tensor *km1 = fern_sub_scalar(in[0], 1.0);
    redo_ud ru = {u->body, n, km1};
    fern_fn *rc = fern_fn_new(redo_cond, &ru, n + 1, 1);
    fern_fn *rb = fern_fn_new(redo_body, &ru, n + 1, n + 1);
    fern_tensor *start[MAXV + 1], *state[MAXV + 1];
    start[0] = fern_scalar(FERN_I64, 0);
    for (int i = 0; i < n; i++)
        start[1 + i] = u->init[i];
    fern_status st = fern_while_loop(rc, rb, n + 1, start, state, 0);
    fern_fn_release(rc);
    fern_fn_release(rb);
    if (st != FERN_OK)
        return -1;
    fern_tensor *args[MAXV * 2];
    for (int i = 0; i < n; i++) {
        args[i] = state[1 + i];
        args[n + i] = in[1 + i];
    }
    if (fern_call(u->vjp, 2 * n, args, n, out + 1) != FERN_OK)
        return -1;
    out[0] = km1;
    return 0;
}

int fern__while_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins)
{
    int n = e->n_in;
    fern_fn *cond = fern__graph_fn(e->sub[0]), *body = fern__graph_fn(e->sub[1]);
    fern_fn *vjp = fern__graph_vjp_fn(e->sub[1]);
    fern_fn *cc = NULL, *cb = NULL, *bc = NULL, *bb = NULL;
    int rc = -1;
    if (!cond || !body || !vjp)
        goto done;
    /* 1. the trip count */
    count_ud cu = {cond, body, n};
    cc = fern_fn_new(count_cond, &cu, n + 1, 1);
    cb = fern_fn_new(count_body, &cu, n + 1, n + 1);
    fern_tensor *start[MAXV + 1], *fin[MAXV + 1];
    for (int i = 0; i < n; i++)
        start[i] = e->in[i];
    start[n] = fern_scalar(FERN_I64, 0);
    /* the counter is the last variable: count_cond only reads the first n */
    if (fern_while_loop(cc, cb, n + 1, start, fin, e->n_carry) != FERN_OK)
        goto done;
    /* 2. backward iterations */
    wback_ud wu = {body, vjp, n, e->in};
    bc = fern_fn_new(wback_cond, &wu, n + 1, 1);
    bb = fern_fn_new(wback_body, &wu, n + 1, n + 1);
    fern_tensor *binit[MAXV + 1], *bres[MAXV + 1];
    binit[0] = fin[n];
    for (int i = 0; i < n; i++)
        binit[1 + i] = zero_if_null(gouts[i], e->out[i]);
    if (fern_while_loop(bc, bb, n + 1, binit, bres, 0) != FERN_OK)
        goto done;
    for (int i = 0; i < n; i++)
        gins[i] = bres[1 + i];
    rc = 0;
done:
    fern_fn_release(cc);
    fern_fn_release(cb);
    fern_fn_release(bc);
    fern_fn_release(bb);
    fern_fn_release(cond);
    fern_fn_release(body);
    fern_fn_release(vjp);
    return rc;
}
