/* Structured control flow. Eagerly, cond/while/scan run their functions
 * directly. While tracing, each function is traced into a subgraph of the
 * current module and one cond/while/scan node is emitted. Outer values a
 * body uses are "lifted": they become extra operands of the node (and, for
 * loops, extra loop-carried values passed through unchanged). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

#define MAXV FERN_MAX_INPUTS

static int same_value(const fern_tensor *a, const fern_tensor *b)
{
    if (a == b)
        return 1;
    return !a->storage && !b->storage && a->sym == b->sym && a->sym_value == b->sym_value;
}

/* Union of lifted lists (outer symbolic tensors, borrowed). */
typedef struct {
    fern_tensor *t[MAXV];
    int n;
} lift_set;

static int lift_add(lift_set *s, fern_tensor **ts, int n)
{
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < s->n; j++)
            found |= same_value(s->t[j], ts[i]);
        if (found)
            continue;
        if (s->n >= MAXV) {
            fern_set_error(FERN_ERR_INVALID, "control flow: a body uses too many outer values");
            return -1;
        }
        s->t[s->n++] = ts[i];
    }
    return 0;
}

/* Reorder g's parameters: the first n_lead plain ones, then one per lifted
 * value of `u` (reusing g's own lifted parameter or adding an unused one),
 * then the remaining plain ones (n_tail, e.g. scan's x slices), then the
 * captures. `mine`/`n_mine` are g's lifted tensors in parameter order. */
static int arrange_params(fern_graph *g, int n_lead, int n_tail, const lift_set *u,
                          fern_tensor **mine, int n_mine)
{
    int plain[MAXV * 2], n_plain = 0, caps[MAXV * 4], n_caps = 0;
    for (int p = 0; p < g->n_params; p++) {
        if (g->is_capture[p]) {
            if (n_caps >= MAXV * 4)
                return -1;
            caps[n_caps++] = p;
        } else {
            if (n_plain >= MAXV * 2)
                return -1;
            plain[n_plain++] = p;
        }
    }
    /* plain params: lead, tail, then lifted (in g's own lift order) */
    int lifted_start = n_lead + n_tail;
    int order[MAXV * 6], n = 0;
    for (int i = 0; i < n_lead; i++)
        order[n++] = g->params[plain[i]];
    for (int j = 0; j < u->n; j++) {
        int v = -1;
        for (int k = 0; k < n_mine; k++)
            if (same_value(mine[k], u->t[j]))
                v = g->params[plain[lifted_start + k]];
        if (v < 0) {
            const fern_tensor *t = u->t[j];
            v = fern_graph_add_param(g, t->dtype, t->ndim, t->shape);
            if (v < 0)
                return -1;
        }
        order[n++] = v;
    }
    for (int i = 0; i < n_tail; i++)
        order[n++] = g->params[plain[n_lead + i]];
    fern_tensor *capt[MAXV * 4];
    int capv[MAXV * 4];
    for (int i = 0; i < n_caps; i++) {
        capt[i] = g->captures[caps[i]];
        capv[i] = g->params[caps[i]];
    }
    g->n_params = 0; /* rebuild in the new order (captures keep their refs) */
    for (int i = 0; i < n; i++) {
        g->params[g->n_params] = order[i];
        g->captures[g->n_params] = NULL;
        g->is_capture[g->n_params] = 0;
        g->values[order[i]].index = g->n_params++;
    }
    for (int i = 0; i < n_caps; i++) {
        g->params[g->n_params] = capv[i];
        g->captures[g->n_params] = capt[i];
        g->is_capture[g->n_params] = 1;
        g->values[capv[i]].index = g->n_params++;
    }
    return 0;
}

static void unique_name(char *buf, size_t n, const char *base)
{
    fern_module *m = fern__trace_graph()->module;
    for (int k = m->n_graphs;; k++) {
        snprintf(buf, n, "%s_%d", base, k);
        if (!fern_module_find_graph(m, buf))
            return;
    }
}

static void free_lifted(fern_tensor **l, int n)
{
    for (int i = 0; i < n; i++)
        fern_release(l[i]);
    free(l);
}

static int outputs_match(const fern_graph *a, const fern_graph *b, int n, const char *who)
{
    for (int k = 0; k < n; k++) {
        const ir_value *x = &a->values[a->outputs[k]], *y = &b->values[b->outputs[k]];
        int ok = x->dtype == y->dtype && x->ndim == y->ndim &&
                 !memcmp(x->shape, y->shape, (size_t)x->ndim * sizeof(int64_t));
        if (!ok) {
            fern_set_error(FERN_ERR_INVALID, "%s: output %d of @%s and @%s differ in dtype or shape",
                           who, k, a->name, b->name);
            return -1;
        }
    }
    return 0;
}

/* Emit operands for `ts` in the current trace; -1 on error. */
static int operands(fern_tensor *const *ts, int n, int *vals)
{
    for (int i = 0; i < n; i++) {
        vals[i] = fern__trace_value_of(ts[i]);
        if (vals[i] < 0)
            return -1;
    }
    return 0;
}

/* Make symbolic tensors for all n_all outputs of the node just emitted,
 * let a tape record the node, and hand the user the ones listed in `user`. */
static fern_status finish_node(fern_node_kind kind, fern_graph *s0, fern_graph *s1, int n_carry,
                               int n_ops, fern_tensor *const *ops, const int *outv, int n_all,
                               const int *user, int n_user, fern_tensor **out)
{
    fern_tensor *all[MAXV * 2] = {0};
    fern_status st = FERN_OK;
    for (int k = 0; k < n_all && st == FERN_OK; k++) {
        all[k] = fern__trace_symbolic(outv[k]);
        if (!all[k])
            st = FERN_ERR_NOMEM;
    }
    fern_dispatch_hooks h = fern__get_dispatch_hooks();
    if (st == FERN_OK && h.record_node) {
        fern_struct_call sc = {kind, {s0, s1}, n_carry, n_ops, ops, n_all, all};
        h.record_node(&sc, h.record_ud);
    }
    for (int k = 0; k < n_user && st == FERN_OK; k++)
        out[k] = fern__scope_register(fern_retain(all[user[k]]));
    for (int k = 0; k < n_all; k++)
        fern_release(all[k]);
    return st;
}

static const int identity_index[MAXV * 2] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
    22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43,
    44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
    66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 83, 84, 85, 86, 87,
    88, 89, 90, 91, 92, 93, 94, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107,
    108, 109, 110, 111, 112, 113, 114, 115, 116, 117, 118, 119, 120, 121, 122, 123, 124, 125,
    126, 127};

static int check_inputs(const char *who, fern_tensor *const *in, int n)
{
    if (n > MAXV / 2) {
        fern_set_error(FERN_ERR_INVALID, "%s: too many inputs (%d)", who, n);
        return -1;
    }
    for (int i = 0; i < n; i++)
        if (!in[i]) {
            if (fern_last_status() == FERN_OK)
                fern_set_error(FERN_ERR_INVALID, "%s: input %d is NULL", who, i);
            return -1;
        }
    return 0;
}

/* ---- cond -------------------------------------------------------------- */

fern_status fern_cond(fern_tensor *pred, fern_fn *then_fn, fern_fn *else_fn, int n_in,
                      fern_tensor *const *in, int n_out, fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if (!pred || !then_fn || !else_fn || check_inputs("cond", in, n_in)) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "cond: NULL predicate or function");
        return fern_last_status();
    }
    if (fern_tensor_numel(pred) != 1) {
        char d[96];
        fern_set_error(FERN_ERR_INVALID, "cond: the predicate must have one element, got %s",
                       fern_tensor_desc(pred, d, sizeof d));
        return FERN_ERR_INVALID;
    }
    if (!fern__tracing()) {
        if (!pred->storage) {
            fern_set_error(FERN_ERR_INVALID, "cond: symbolic predicate outside a trace");
            return FERN_ERR_INVALID;
        }
        return fern_call(fern_tensor_get_flat(pred, 0) != 0.0 ? then_fn : else_fn, n_in, in, n_out, out);
    }
    fern_module *m = fern__trace_graph()->module;
    char n1[64], n2[64];
    unique_name(n1, sizeof n1, "cond_then");
    fern_tensor **l1 = NULL, **l2 = NULL;
    int nl1 = 0, nl2 = 0;
    fern_graph *g1 = fern__trace_fn(m, n1, then_fn, n_in, in, n_out, &l1, &nl1);
    unique_name(n2, sizeof n2, "cond_else");
    fern_graph *g2 = g1 ? fern__trace_fn(m, n2, else_fn, n_in, in, n_out, &l2, &nl2) : NULL;
    fern_status st = FERN_ERR_INVALID;
    lift_set u = {.n = 0};
    int vals[MAXV * 2], outv[MAXV];
    fern_tensor *p = pred;
    if (g1 && g2 && !outputs_match(g1, g2, n_out, "cond") && !lift_add(&u, l1, nl1) &&
        !lift_add(&u, l2, nl2) && !arrange_params(g1, n_in, 0, &u, l1, nl1) &&
        !arrange_params(g2, n_in, 0, &u, l2, nl2)) {
        fern_tensor *ops[MAXV * 2];
        memcpy(ops, in, (size_t)n_in * sizeof *in);
        memcpy(ops + n_in, u.t, (size_t)u.n * sizeof *ops);
        int pv = fern__trace_value_of(p);
        if (pv >= 0 && !operands(ops, n_in + u.n, vals) &&
            !fern_graph_add_cond(fern__trace_graph(), pv, g1, g2, n_in + u.n, vals, n_out, outv)) {
            fern_tensor *all_ops[MAXV * 2 + 1];
            all_ops[0] = p;
            memcpy(all_ops + 1, ops, (size_t)(n_in + u.n) * sizeof *ops);
            st = finish_node(FERN_NODE_COND, g1, g2, 0, 1 + n_in + u.n, all_ops, outv, n_out,
                             identity_index, n_out, out);
        }
    }
    free_lifted(l1, nl1);
    free_lifted(l2, nl2);
    if (st != FERN_OK && fern_last_status() == FERN_OK)
        fern_set_error(FERN_ERR_INVALID, "cond: could not trace the branches");
    return st;
}

/* ---- while ------------------------------------------------------------- */

fern_status fern_while_loop(fern_fn *cond_fn, fern_fn *body_fn, int n_vars,
                            fern_tensor *const *init, fern_tensor **out, int64_t max_iters)
{
    for (int k = 0; k < n_vars; k++)
        out[k] = NULL;
    if (!cond_fn || !body_fn || check_inputs("while_loop", init, n_vars)) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "while_loop: NULL function");
        return fern_last_status();
    }
    if (cond_fn->n_in != n_vars || cond_fn->n_out != 1 || body_fn->n_in != n_vars ||
        body_fn->n_out != n_vars) {
        fern_set_error(FERN_ERR_INVALID,
                       "while_loop: cond must take %d inputs and return 1; body must take and return %d",
                       n_vars, n_vars);
        return FERN_ERR_INVALID;
    }
    if (!fern__tracing()) {
        fern_tensor *vars[MAXV];
        for (int i = 0; i < n_vars; i++)
            vars[i] = fern_retain(init[i]);
        fern_status st = FERN_OK;
        fern__scope_detach(+1); /* we own every reference below */
        for (int64_t it = 0;; it++) {
            fern_tensor *p = NULL;
            st = fern_call(cond_fn, n_vars, vars, 1, &p);
            if (st != FERN_OK)
                break;
            int go = fern_tensor_get_flat(p, 0) != 0.0;
            fern_release(p);
            if (!go)
                break;
            if (max_iters > 0 && it >= max_iters) {
                fern_set_error(FERN_ERR_INVALID, "while_loop: reached max_iters=%lld", (long long)max_iters);
                st = FERN_ERR_INVALID;
                break;
            }
            fern_tensor *next[MAXV];
            st = fern_call(body_fn, n_vars, vars, n_vars, next);
            if (st != FERN_OK)
                break;
            for (int i = 0; i < n_vars; i++) {
                fern_release(vars[i]);
                vars[i] = next[i];
            }
        }
        fern__scope_detach(-1);
        for (int i = 0; i < n_vars; i++) {
            if (st == FERN_OK)
                out[i] = fern__scope_register(vars[i]);
            else
                fern_release(vars[i]);
        }
        return st;
    }
    fern_module *m = fern__trace_graph()->module;
    char n1[64], n2[64];
    unique_name(n1, sizeof n1, "while_cond");
    fern_tensor **l1 = NULL, **l2 = NULL;
    int nl1 = 0, nl2 = 0;
    fern_graph *gc = fern__trace_fn(m, n1, cond_fn, n_vars, init, 1, &l1, &nl1);
    unique_name(n2, sizeof n2, "while_body");
    fern_graph *gb = gc ? fern__trace_fn(m, n2, body_fn, n_vars, init, n_vars, &l2, &nl2) : NULL;
    fern_status st = FERN_ERR_INVALID;
    lift_set u = {.n = 0};
    if (gc && gb) {
        for (int k = 0; k < n_vars; k++) {
            const ir_value *o = &gb->values[gb->outputs[k]];
            if (o->dtype != init[k]->dtype || o->ndim != init[k]->ndim ||
                memcmp(o->shape, init[k]->shape, (size_t)o->ndim * sizeof(int64_t))) {
                char d[96];
                fern_set_error(FERN_ERR_INVALID,
                               "while_loop: the body changes loop variable %d's type (initially %s)", k,
                               fern_tensor_desc(init[k], d, sizeof d));
                gc = NULL;
                break;
            }
        }
    }
    if (gc && gb && !lift_add(&u, l1, nl1) && !lift_add(&u, l2, nl2) &&
        !arrange_params(gc, n_vars, 0, &u, l1, nl1) && !arrange_params(gb, n_vars, 0, &u, l2, nl2)) {
        /* the body passes lifted values through unchanged */
        int bo[MAXV * 2];
        memcpy(bo, gb->outputs, (size_t)n_vars * sizeof *bo);
        for (int j = 0; j < u.n; j++)
            bo[n_vars + j] = gb->params[n_vars + j];
        fern_graph_set_outputs(gb, n_vars + u.n, bo);
        fern_tensor *ops[MAXV * 2];
        memcpy(ops, init, (size_t)n_vars * sizeof *init);
        memcpy(ops + n_vars, u.t, (size_t)u.n * sizeof *ops);
        int vals[MAXV * 2], outv[MAXV * 2];
        if (!operands(ops, n_vars + u.n, vals) &&
            !fern_graph_add_while(fern__trace_graph(), gc, gb, n_vars + u.n, vals, n_vars + u.n, outv)) {
            int mi = (int)(max_iters > 0 && max_iters < 0x7fffffff ? max_iters : 0);
            fern__trace_graph()->nodes[fern__trace_graph()->n_nodes - 1].n_carry = mi;
            st = finish_node(FERN_NODE_WHILE, gc, gb, mi, n_vars + u.n, ops, outv, n_vars + u.n,
                             identity_index, n_vars, out);
        }
    }
    free_lifted(l1, nl1);
    free_lifted(l2, nl2);
    if (st != FERN_OK && fern_last_status() == FERN_OK)
        fern_set_error(FERN_ERR_INVALID, "while_loop: could not trace the loop");
    return st;
}

/* ---- scan -------------------------------------------------------------- */

fern_status fern_scan(fern_fn *body_fn, int n_carry, fern_tensor *const *init, int n_xs,
                      fern_tensor *const *xs, int n_out, fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if (!body_fn || check_inputs("scan", init, n_carry) || check_inputs("scan", xs, n_xs)) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "scan: NULL function");
        return fern_last_status();
    }
    if (body_fn->n_in != n_carry + n_xs || body_fn->n_out != n_out || n_out < n_carry) {
        fern_set_error(FERN_ERR_INVALID, "scan: the body must take %d inputs and return %d outputs",
                       n_carry + n_xs, n_out);
        return FERN_ERR_INVALID;
    }
    int64_t len = -1;
    for (int j = 0; j < n_xs; j++) {
        if (xs[j]->ndim == 0 || (len >= 0 && xs[j]->shape[0] != len)) {
            fern_set_error(FERN_ERR_INVALID, "scan: every xs tensor needs the same leading length");
            return FERN_ERR_INVALID;
        }
        len = xs[j]->shape[0];
    }
    if (n_xs == 0) {
        fern_set_error(FERN_ERR_INVALID, "scan: needs at least one xs tensor (use while_loop otherwise)");
        return FERN_ERR_INVALID;
    }
    int n_ys = n_out - n_carry;
    if (!fern__tracing()) {
        fern_tensor *carry[MAXV];
        for (int i = 0; i < n_carry; i++)
            carry[i] = fern_retain(init[i]);
        fern_tensor **ys = calloc((size_t)(n_ys * len + 1), sizeof *ys);
        if (!ys)
            return FERN_ERR_NOMEM;
        fern_status st = FERN_OK;
        fern__scope_detach(+1);
        for (int64_t t = 0; t < len && st == FERN_OK; t++) {
            fern_tensor *args[MAXV], *res[MAXV];
            memcpy(args, carry, (size_t)n_carry * sizeof *carry);
            for (int j = 0; j < n_xs; j++) {
                fern_tensor *s = fern_slice(xs[j], 0, t, t + 1, 1);
                args[n_carry + j] = fern_reshape(s, xs[j]->ndim - 1, xs[j]->shape + 1);
                fern_release(s);
            }
            st = fern_call(body_fn, n_carry + n_xs, args, n_out, res);
            for (int j = 0; j < n_xs; j++)
                fern_release(args[n_carry + j]);
            if (st != FERN_OK)
                break;
            for (int i = 0; i < n_carry; i++) {
                fern_release(carry[i]);
                carry[i] = res[i];
            }
            for (int j = 0; j < n_ys; j++)
                ys[j * len + t] = res[n_carry + j];
        }
        for (int j = 0; j < n_ys && st == FERN_OK; j++) {
            out[n_carry + j] = len ? fern_stack(ys + j * len, (int)len, 0) : NULL;
            if (!out[n_carry + j]) {
                if (len == 0)
                    fern_set_error(FERN_ERR_INVALID, "scan: zero-length scans with outputs need graph mode");
                st = fern_last_status();
            }
        }
        for (int64_t k = 0; k < n_ys * len; k++)
            fern_release(ys[k]);
        free(ys);
        fern__scope_detach(-1);
        for (int i = 0; i < n_carry; i++) {
            if (st == FERN_OK)
                out[i] = carry[i];
            else
                fern_release(carry[i]);
        }
        for (int k = 0; k < n_out; k++) {
            if (st == FERN_OK)
                fern__scope_register(out[k]);
            else if (k >= n_carry)
                fern_release(out[k]), out[k] = NULL;
        }
        return st;
    }
    /* trace the body on (carries, one slice of each xs) */
    fern_tensor *args[MAXV];
    memcpy(args, init, (size_t)n_carry * sizeof *init);
    for (int j = 0; j < n_xs; j++)
        args[n_carry + j] = fern__tensor_header(xs[j]->dtype, xs[j]->ndim - 1, xs[j]->shape + 1);
    fern_module *m = fern__trace_graph()->module;
    char nb[64];
    unique_name(nb, sizeof nb, "scan_body");
    fern_tensor **l = NULL;
    int nl = 0;
    fern_graph *gb = fern__trace_fn(m, nb, body_fn, n_carry + n_xs, args, n_out, &l, &nl);
    for (int j = 0; j < n_xs; j++)
        fern_release(args[n_carry + j]);
    fern_status st = FERN_ERR_INVALID;
    lift_set u = {.n = 0};
    if (gb) {
        for (int k = 0; k < n_carry; k++) {
            const ir_value *o = &gb->values[gb->outputs[k]];
            if (o->dtype != init[k]->dtype || o->ndim != init[k]->ndim ||
                memcmp(o->shape, init[k]->shape, (size_t)o->ndim * sizeof(int64_t))) {
                fern_set_error(FERN_ERR_INVALID, "scan: the body changes carry %d's type", k);
                gb = NULL;
                break;
            }
        }
    }
    if (gb && !lift_add(&u, l, nl) && !arrange_params(gb, n_carry, n_xs, &u, l, nl)) {
        int bo[MAXV * 2], nbo = 0;
        for (int k = 0; k < n_carry; k++)
            bo[nbo++] = gb->outputs[k];
        for (int j = 0; j < u.n; j++)
            bo[nbo++] = gb->params[n_carry + j];
        for (int k = n_carry; k < n_out; k++)
            bo[nbo++] = gb->outputs[k];
        fern_graph_set_outputs(gb, nbo, bo);
        fern_tensor *ops[MAXV * 2];
        int n_ops = 0;
        for (int i = 0; i < n_carry; i++)
            ops[n_ops++] = init[i];
        for (int j = 0; j < u.n; j++)
            ops[n_ops++] = u.t[j];
        for (int j = 0; j < n_xs; j++)
            ops[n_ops++] = xs[j];
        int vals[MAXV * 2], outv[MAXV * 2];
        if (!operands(ops, n_ops, vals) &&
            !fern_graph_add_scan(fern__trace_graph(), gb, n_carry + u.n, n_ops, vals, nbo, outv)) {
            int user[MAXV * 2], nu = 0;
            for (int k = 0; k < n_carry; k++)
                user[nu++] = k;
            for (int k = n_carry + u.n; k < nbo; k++)
                user[nu++] = k;
            st = finish_node(FERN_NODE_SCAN, gb, NULL, n_carry + u.n, n_ops, ops, outv, nbo, user,
                             nu, out);
        }
    }
    free_lifted(l, nl);
    if (st != FERN_OK && fern_last_status() == FERN_OK)
        fern_set_error(FERN_ERR_INVALID, "scan: could not trace the body");
    return st;
}

/* ---- fori_loop: a while loop over (i, vars...) ------------------------- */

typedef struct {
    fern_fn *body;
    int64_t hi;
    int n_vars;
} fori_ud;

static int fori_cond(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fori_ud *u = ud;
    fern_tensor *hi = fern_scalar(FERN_I64, (double)u->hi);
    out[0] = fern_lt(in[0], hi);
    return out[0] ? 0 : -1;
}

static int fori_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    fori_ud *u = ud;
    if (fern_call(u->body, 1 + u->n_vars, in, u->n_vars, out + 1) != FERN_OK)
        return -1;
    out[0] = fern_add_scalar(in[0], 1);
    return out[0] ? 0 : -1;
}

fern_status fern_fori_loop(int64_t lo, int64_t hi, fern_fn *body_fn, int n_vars,
                           fern_tensor *const *init, fern_tensor **out)
{
    for (int k = 0; k < n_vars; k++)
        out[k] = NULL;
    if (!body_fn || check_inputs("fori_loop", init, n_vars)) {
        if (fern_last_status() == FERN_OK)
            fern_set_error(FERN_ERR_INVALID, "fori_loop: NULL function");
        return fern_last_status();
    }
    if (body_fn->n_in != n_vars + 1 || body_fn->n_out != n_vars) {
        fern_set_error(FERN_ERR_INVALID, "fori_loop: the body must take (i, %d vars) and return %d vars",
                       n_vars, n_vars);
        return FERN_ERR_INVALID;
    }
    fori_ud u = {body_fn, hi, n_vars};
    fern_fn *c = fern_fn_new(fori_cond, &u, n_vars + 1, 1);
    fern_fn *b = fern_fn_new(fori_body, &u, n_vars + 1, n_vars + 1);
    fern_fn_set_name(c, "fori_cond");
    fern_fn_set_name(b, "fori_body");
    fern_tensor *vars[MAXV], *res[MAXV] = {0};
    fern_scope_begin();
    vars[0] = fern_scalar(FERN_I64, (double)lo);
    memcpy(vars + 1, init, (size_t)n_vars * sizeof *init);
    fern_status st = fern_while_loop(c, b, n_vars + 1, vars, res, 0);
    for (int k = 0; st == FERN_OK && k < n_vars; k++)
        out[k] = fern_retain(res[k + 1]);
    fern_scope_end();
    for (int k = 0; st == FERN_OK && k < n_vars; k++)
        fern__scope_register(out[k]);
    fern_fn_release(c);
    fern_fn_release(b);
    return st;
}
