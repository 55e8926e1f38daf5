/* The autodiff API: grad, value_and_grad, gradients for parameters,
 * sensitivities, vjp, jvp and custom_vjp, all built on one vjp core. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autodiff_internal.h"

/* ---- the vjp core -------------------------------------------------------- */

/* Run f on `in` under a new tape watching aliases of the inputs listed in
 * pos (n_pos of them; pos == NULL: all) and the params; then backpropagate
 * cots (NULL array: ones for output 0, zero for the rest). outs: n_out new
 * references; grads: n_pos + n_params new references. */
static fern_status vjp_core(fern_fn *f, int n_in, fern_tensor *const *in, fern_tensor *const *cots,
                            int n_pos, const int *pos, int n_params, fern_tensor *const *params,
                            fern_tensor **outs, fern_tensor **grads)
{
    int n_out = f->n_out;
    fern_tensor *al[FERN_MAX_INPUTS], *wrt[FERN_MAX_INPUTS * 2];
    fern_status st = FERN_OK;
    for (int k = 0; k < n_out; k++)
        outs[k] = NULL;
    for (int i = 0; i < n_pos + n_params; i++)
        grads[i] = NULL;
    if (n_in != f->n_in) {
        fern_set_error(FERN_ERR_INVALID, "grad: %s takes %d inputs, got %d", f->name, f->n_in, n_in);
        return FERN_ERR_INVALID;
    }
    for (int i = 0; i < n_in; i++)
        if (!in[i]) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INVALID, "grad: input %d of %s is NULL", i, f->name);
            return fern_last_status();
        }
    for (int j = 0; j < n_params; j++)
        if (!params[j]) {
            fern_set_error(FERN_ERR_INVALID, "grad: parameter %d is NULL", j);
            return FERN_ERR_INVALID;
        }
    fern_scope_begin();
    for (int i = 0; i < n_in; i++)
        al[i] = fern__identity(in[i]); /* connects to outer tapes */
    tape *t = fern__tape_begin();
    if (!t) {
        fern_scope_end();
        return fern_last_status();
    }
    for (int j = 0; j < n_pos; j++) {
        int p = pos ? pos[j] : j;
        if (p < 0 || p >= n_in) {
            fern_set_error(FERN_ERR_INVALID, "grad: argnum %d is out of range for %s (%d inputs)", p,
                           f->name, n_in);
            st = FERN_ERR_INVALID;
            break;
        }
        if (!fern_dtype_is_float(in[p]->dtype) && !pos) {
            wrt[j] = al[p]; /* vjp over all inputs: integer ones get zeros */
            continue;
        }
        if (!fern_dtype_is_float(in[p]->dtype)) {
            char d[96];
            fern_set_error(FERN_ERR_INVALID, "grad: input %d of %s is %s; only float inputs have gradients",
                           p, f->name, fern_tensor_desc(in[p], d, sizeof d));
            st = FERN_ERR_INVALID;
            break;
        }
        wrt[j] = al[p];
        fern__tape_watch(t, al[p]);
    }
    for (int j = 0; j < n_params && st == FERN_OK; j++) {
        wrt[n_pos + j] = params[j];
        fern__tape_watch(t, params[j]);
    }
    fern_tensor *o[FERN_MAX_INPUTS] = {0};
    if (st == FERN_OK)
        st = fern_call(f, n_in, al, n_out, o);
    fern__tape_end(t);
    fern_tensor *c[FERN_MAX_INPUTS] = {0};
    if (st == FERN_OK) {
        if (cots) {
            for (int k = 0; k < n_out; k++)
                c[k] = cots[k];
        } else {
            c[0] = fern_ones_like(o[0]);
            if (!c[0])
                st = fern_last_status();
        }
    }
    if (st == FERN_OK)
        st = fern__tape_backward(t, n_out, o, c, n_pos + n_params, wrt, grads);
    for (int k = 0; st == FERN_OK && k < n_out; k++)
        outs[k] = fern_retain(o[k]);
    fern__tape_free(t);
    fern_scope_end();
    if (st != FERN_OK)
        return st;
    for (int k = 0; k < n_out; k++)
        fern__scope_register(outs[k]);
    for (int i = 0; i < n_pos + n_params; i++)
        fern__scope_register(grads[i]);
    return FERN_OK;
}

/* ---- transforms as function values -------------------------------------- */

enum { GRAD, VALUE_AND_GRAD, WITH_SENS };

typedef struct {
    fern_fn *f;
    int kind;
    int n_pos;
    int pos[FERN_MAX_INPUTS];
    int n_params;
    fern_tensor **params;
} grad_ud;

static void grad_ud_free(void *p)
{
    grad_ud *u = p;
    for (int j = 0; j < u->n_params; j++)
        fern_release(u->params[j]);
    free(u->params);
    fern_fn_release(u->f);
    free(u);
}

static int grad_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    grad_ud *u = ud;
    fern_fn *f = u->f;
    fern_tensor *outs[FERN_MAX_INPUTS], *grads[FERN_MAX_INPUTS * 2];
    fern_status st;
    if (u->kind == WITH_SENS) {
        st = vjp_core(f, f->n_in, in, in + f->n_in, f->n_in, NULL, 0, NULL, outs, grads);
        for (int i = 0; st == FERN_OK && i < f->n_in; i++)
            out[i] = grads[i];
        return st == FERN_OK ? 0 : -1;
    }
    st = vjp_core(f, f->n_in, in, NULL, u->n_pos, u->pos, u->n_params, u->params, outs, grads);
    if (st != FERN_OK)
        return -1;
    int k = 0;
    if (u->kind == VALUE_AND_GRAD)
        for (int i = 0; i < f->n_out; i++)
            out[k++] = outs[i];
    for (int j = 0; j < u->n_pos + u->n_params; j++)
        out[k++] = grads[j];
    return 0;
}

static fern_fn *make_grad(fern_fn *f, int kind, const int *pos, int n_pos, fern_tensor *const *params,
                          int n_params, const char *prefix)
{
    if (!f) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "%s: function is NULL", prefix);
        return NULL;
    }
    if (n_pos < 0 || n_pos > FERN_MAX_INPUTS || n_params < 0 || n_params > FERN_MAX_INPUTS ||
        (kind != WITH_SENS && n_pos + n_params == 0)) {
        fern_set_error(FERN_ERR_INVALID, "%s: need 1..%d positions or parameters", prefix,
                       FERN_MAX_INPUTS);
        return NULL;
    }
    int all[FERN_MAX_INPUTS];
    if (!pos) { /* every input */
        for (int j = 0; j < n_pos && j < FERN_MAX_INPUTS; j++)
            all[j] = j;
        pos = all;
    }
    for (int j = 0; j < n_pos; j++)
        if (pos[j] < 0 || pos[j] >= f->n_in) {
            fern_set_error(FERN_ERR_INVALID, "%s: argnum %d is out of range for %s (%d inputs)", prefix,
                           pos[j], f->name, f->n_in);
            return NULL;
        }
    grad_ud *u = calloc(1, sizeof *u);
    if (!u || (n_params && !(u->params = calloc((size_t)n_params, sizeof *u->params)))) {
        free(u);
        fern_set_error(FERN_ERR_NOMEM, "%s: out of memory", prefix);
        return NULL;
    }
    u->f = fern_fn_retain(f);
    u->kind = kind;
    u->n_pos = n_pos;
    if (n_pos)
        memcpy(u->pos, pos, (size_t)n_pos * sizeof *pos);
    for (int j = 0; j < n_params; j++)
        u->params[j] = fern_retain(params[j]);
    u->n_params = n_params;
    int n_in = kind == WITH_SENS ? f->n_in + f->n_out : f->n_in;
    int n_out = kind == WITH_SENS         ? f->n_in
                : kind == VALUE_AND_GRAD ? f->n_out + n_pos + n_params
                                         : n_pos + n_params;
    char name[96];
    snprintf(name, sizeof name, "%s_%s", prefix, f->name);
    return fern__fn_new_owned(grad_body, u, grad_ud_free, n_in, n_out, name);
}

fern_fn *fern_grad(fern_fn *f, int argnum) { return make_grad(f, GRAD, &argnum, 1, NULL, 0, "grad"); }

fern_fn *fern_grad_n(fern_fn *f, const int *argnums, int n)
{
    return make_grad(f, GRAD, argnums, n, NULL, 0, "grad");
}

fern_fn *fern_value_and_grad(fern_fn *f, const int *argnums, int n)
{
    return make_grad(f, VALUE_AND_GRAD, argnums, n, NULL, 0, "value_and_grad");
}

fern_fn *fern_value_and_grad_params(fern_fn *f, fern_tensor *const *params, int n)
{
    return make_grad(f, VALUE_AND_GRAD, NULL, 0, params, n, "value_and_grad");
}

fern_fn *fern_grad_with_sens(fern_fn *f)
{
    if (f && f->n_in == 0) {
        fern_set_error(FERN_ERR_INVALID, "grad_with_sens: %s has no inputs", f->name);
        return NULL;
    }
    return make_grad(f, WITH_SENS, NULL, f ? f->n_in : 0, NULL, 0, "vjp");
}

static fern_status vjp_direct(fern_fn *f, int n_in, fern_tensor *const *in, fern_tensor *const *cotangents,
                              fern_tensor **outs, fern_tensor **grads)
{
    if (!f) {
        fern_set_error(FERN_ERR_INVALID, "vjp: function is NULL");
        return FERN_ERR_INVALID;
    }
    int n_out = f->n_out;
    fern_tensor *c[FERN_MAX_INPUTS], *o[FERN_MAX_INPUTS] = {0}, *g[FERN_MAX_INPUTS] = {0};
    fern_status st = FERN_OK;
    fern_scope_begin();
    if (!cotangents) { /* ones for every output */
        st = fern_call(f, n_in, in, n_out, o);
        for (int k = 0; st == FERN_OK && k < n_out; k++)
            if (!(c[k] = fern_ones_like(o[k])))
                st = fern_last_status();
        cotangents = c;
    }
    if (st == FERN_OK)
        st = vjp_core(f, n_in, in, cotangents, n_in, NULL, 0, NULL, o, g);
    for (int k = 0; st == FERN_OK && k < n_out; k++)
        outs[k] = fern_retain(o[k]);
    for (int i = 0; st == FERN_OK && i < n_in; i++)
        grads[i] = fern_retain(g[i]);
    fern_scope_end();
    if (st != FERN_OK)
        return st;
    for (int k = 0; k < n_out; k++)
        fern__scope_register(outs[k]);
    for (int i = 0; i < n_in; i++)
        fern__scope_register(grads[i]);
    return FERN_OK;
}

/* jvp by transposition: u -> vjp(f, x, u) is linear in u, and its own vjp
 * with cotangent t is J t. */
static fern_status jvp_direct(fern_fn *f, int n_in, fern_tensor *const *in, fern_tensor *const *tangents,
                              fern_tensor **outs, fern_tensor **tangent_outs)
{
    if (!f || !tangents) {
        fern_set_error(FERN_ERR_INVALID, "jvp: function or tangents are NULL");
        return FERN_ERR_INVALID;
    }
    int n_out = f->n_out;
    fern_status st = fern_call(f, n_in, in, n_out, outs);
    if (st != FERN_OK)
        return st;
    fern_fn *g = fern_grad_with_sens(f); /* (x..., u...) -> dx... */
    if (!g)
        return fern_last_status();
    fern_tensor *args[FERN_MAX_INPUTS * 2] = {0}, *gx[FERN_MAX_INPUTS], *gu[FERN_MAX_INPUTS * 2];
    fern_scope_begin();
    for (int i = 0; i < n_in; i++)
        args[i] = in[i];
    for (int k = 0; k < n_out; k++)
        args[n_in + k] = fern_zeros_like(outs[k]);
    int pos[FERN_MAX_INPUTS] = {0};
    for (int k = 0; k < n_out; k++)
        pos[k] = n_in + k;
    /* cotangents of g's outputs (the dx) are the tangents */
    fern_tensor *cot[FERN_MAX_INPUTS] = {0};
    for (int i = 0; i < n_in; i++)
        cot[i] = tangents[i];
    st = vjp_core(g, n_in + n_out, args, cot, n_out, pos, 0, NULL, gx, gu);
    for (int k = 0; st == FERN_OK && k < n_out; k++)
        tangent_outs[k] = fern_retain(gu[k]);
    fern_scope_end();
    fern_fn_release(g);
    if (st != FERN_OK)
        return st;
    for (int k = 0; k < n_out; k++)
        fern__scope_register(tangent_outs[k]);
    return FERN_OK;
}

/* ---- vjp and jvp at the top level of graph mode ---------------------------
 * In graph mode a top-level vjp/jvp is itself compiled: a wrapper function
 * (cached on f) runs the direct version under the trace, so forward and
 * backward become one optimized graph. */

enum { W_VJP, W_VJP_ONES, W_JVP };

static int wrap_body(void *ud, fern_tensor *const *in, fern_tensor **out, int kind)
{
    fern_fn *f = ud;
    int n_in = f->n_in, n_out = f->n_out;
    fern_status st;
    if (kind == W_VJP_ONES)
        st = vjp_direct(f, n_in, in, NULL, out, out + n_out);
    else if (kind == W_VJP)
        st = vjp_direct(f, n_in, in, in + n_in, out, out + n_out);
    else
        st = jvp_direct(f, n_in, in, in + n_in, out, out + n_out);
    return st == FERN_OK ? 0 : -1;
}

static int wrap_vjp(void *ud, fern_tensor *const *in, fern_tensor **out) { return wrap_body(ud, in, out, W_VJP); }
static int wrap_vjp_ones(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    return wrap_body(ud, in, out, W_VJP_ONES);
}
static int wrap_jvp(void *ud, fern_tensor *const *in, fern_tensor **out) { return wrap_body(ud, in, out, W_JVP); }

static int compile_at_top(void)
{
    return fern_get_mode() == FERN_GRAPH_MODE && !fern__tracing() && !fern__get_dispatch_hooks().record;
}

static fern_status via_wrapper(fern_fn *f, int kind, int n_in, fern_tensor *const *in,
                               fern_tensor *const *extra, int n_extra, fern_tensor **first, int n_first,
                               fern_tensor **second, int n_second)
{
    if (!f->derived[kind]) {
        static const fern_fn_body bodies[3] = {wrap_vjp, wrap_vjp_ones, wrap_jvp};
        /* the wrapper borrows f: f owns it, so f outlives it */
        f->derived[kind] = fern_fn_new(bodies[kind], f, f->n_in + n_extra, n_first + n_second);
        if (!f->derived[kind])
            return fern_last_status();
        fern_fn_set_name(f->derived[kind], kind == W_JVP ? "jvp" : "vjp");
    }
    fern_tensor *args[FERN_MAX_INPUTS * 2], *res[FERN_MAX_INPUTS * 2];
    memcpy(args, in, (size_t)n_in * sizeof *in);
    if (n_extra)
        memcpy(args + n_in, extra, (size_t)n_extra * sizeof *extra);
    fern_status st = fern_call(f->derived[kind], n_in + n_extra, args, n_first + n_second, res);
    if (st != FERN_OK)
        return st;
    memcpy(first, res, (size_t)n_first * sizeof *res);
    memcpy(second, res + n_first, (size_t)n_second * sizeof *res);
    return FERN_OK;
}

fern_status fern_vjp(fern_fn *f, int n_in, fern_tensor *const *in, fern_tensor *const *cotangents,
                     fern_tensor **outs, fern_tensor **grads)
{
    int all_cots = 1;
    for (int k = 0; f && cotangents && k < f->n_out; k++)
        all_cots &= cotangents[k] != NULL;
    if (!f || n_in != f->n_in || !compile_at_top() || !all_cots)
        return vjp_direct(f, n_in, in, cotangents, outs, grads);
    if (!cotangents)
        return via_wrapper(f, W_VJP_ONES, n_in, in, NULL, 0, outs, f->n_out, grads, n_in);
    return via_wrapper(f, W_VJP, n_in, in, cotangents, f->n_out, outs, f->n_out, grads, n_in);
}

fern_status fern_jvp(fern_fn *f, int n_in, fern_tensor *const *in, fern_tensor *const *tangents,
                     fern_tensor **outs, fern_tensor **tangent_outs)
{
    if (!f || !tangents || n_in != f->n_in || !compile_at_top())
        return jvp_direct(f, n_in, in, tangents, outs, tangent_outs);
    for (int i = 0; i < n_in; i++)
        if (!tangents[i])
            return jvp_direct(f, n_in, in, tangents, outs, tangent_outs);
    return via_wrapper(f, W_JVP, n_in, in, tangents, n_in, outs, f->n_out, tangent_outs, f->n_out);
}

/* ---- custom_vjp ---------------------------------------------------------- */

typedef struct {
    fern_fn *f, *bwd;
} custom_ud;

static void custom_free(void *p)
{
    custom_ud *u = p;
    fern_fn_release(u->f);
    fern_fn_release(u->bwd);
    free(u);
}

static int custom_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins)
{
    fern_fn *bwd = e->custom_bwd;
    fern_tensor *args[FERN_MAX_INPUTS * 3];
    int n = 0;
    for (int i = 0; i < e->n_in; i++)
        args[n++] = e->in[i];
    for (int k = 0; k < e->n_out; k++)
        args[n++] = e->out[k];
    for (int k = 0; k < e->n_out; k++)
        args[n++] = gouts[k] ? gouts[k] : fern_zeros_like(e->out[k]);
    return fern_call(bwd, n, args, e->n_in, gins) == FERN_OK ? 0 : -1;
}

static int custom_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    custom_ud *u = ud;
    fern_dispatch_hooks h = fern__get_dispatch_hooks();
    fern_dispatch_hooks quiet = h;
    quiet.record = NULL;
    quiet.record_node = NULL;
    quiet.record_ud = NULL;
    fern__set_dispatch_hooks(quiet);
    fern_status st = fern_call(u->f, u->f->n_in, in, u->f->n_out, out);
    fern__set_dispatch_hooks(h);
    if (st != FERN_OK)
        return -1;
    /* an entry on every active tape that tracks an input */
    fern__tapes_record_custom(u->f->n_in, in, u->f->n_out, out, custom_backward, u->bwd);
    return 0;
}

fern_fn *fern_custom_vjp(fern_fn *f, fern_fn *bwd)
{
    if (!f || !bwd) {
        fern_set_error(FERN_ERR_INVALID, "custom_vjp: function or backward is NULL");
        return NULL;
    }
    if (bwd->n_in != f->n_in + 2 * f->n_out || bwd->n_out != f->n_in) {
        fern_set_error(FERN_ERR_INVALID,
                       "custom_vjp: the backward of %s must take %d inputs (inputs, outputs, cotangents) and return %d gradients",
                       f->name, f->n_in + 2 * f->n_out, f->n_in);
        return NULL;
    }
    custom_ud *u = malloc(sizeof *u);
    if (!u) {
        fern_set_error(FERN_ERR_NOMEM, "custom_vjp: out of memory");
        return NULL;
    }
    u->f = fern_fn_retain(f);
    u->bwd = fern_fn_retain(bwd);
    char name[96];
    snprintf(name, sizeof name, "custom_%s", f->name);
    return fern__fn_new_owned(custom_body, u, custom_free, f->n_in, f->n_out, name);
}

/* ---- graphs as differentiable functions ---------------------------------- */

typedef struct {
    const fern_graph *g;
    fern_fn *run;
} gvjp_ud;

static void gvjp_free(void *p)
{
    gvjp_ud *u = p;
    fern_fn_release(u->run);
    free(u);
}

static int gvjp_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    gvjp_ud *u = ud;
    fern_fn *run = u->run;
    fern_tensor *outs[FERN_MAX_INPUTS];
    fern_tensor *cots[FERN_MAX_INPUTS];
    for (int k = 0; k < run->n_out; k++)
        cots[k] = in[run->n_in + k];
    return vjp_core(run, run->n_in, in, cots, run->n_in, NULL, 0, NULL, outs, out) == FERN_OK ? 0 : -1;
}

fern_fn *fern__graph_vjp_fn(const fern_graph *g)
{
    gvjp_ud *u = malloc(sizeof *u);
    if (!u)
        return NULL;
    u->g = g;
    u->run = fern__graph_fn(g);
    if (!u->run) {
        free(u);
        return NULL;
    }
    char name[96];
    snprintf(name, sizeof name, "vjp_%s", g->name);
    return fern__fn_new_owned(gvjp_body, u, gvjp_free, u->run->n_in + u->run->n_out, u->run->n_in, name);
}
