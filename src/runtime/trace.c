/* Tracing: while a function runs under a trace, the dispatcher hands every
 * op call to trace_op, which appends a node to the graph being built and
 * returns symbolic tensors. Tensors from outside the function become
 * parameters: captures (read by reference at each run) for concrete ones,
 * lifted operands for symbolic values of an enclosing trace, and constants
 * for concrete tensors created during the trace itself. */
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

struct trace_ctx {
    fern_graph *g;
    trace_ctx *parent;
    uint64_t serial_start;
    fern_dispatch_hooks saved;
    fern_tensor **lifted; /* outer symbolic tensors, retained */
    int *lifted_param;    /* their parameter value ids in g  */
    int n_lifted, cap_lifted;
    fern_tensor **consts; /* trace-created concrete tensors -> const values */
    int *const_value;
    int n_consts, cap_consts;
};

static _Thread_local trace_ctx *cur;

int fern__tracing(void) { return cur != NULL; }
fern_graph *fern__trace_graph(void) { return cur ? cur->g : NULL; }

fern_tensor *fern__trace_symbolic(int v)
{
    const ir_value *iv = &cur->g->values[v];
    fern_tensor *t = fern__tensor_header(iv->dtype, iv->ndim, iv->shape);
    if (!t)
        return NULL;
    t->sym = cur->g;
    t->sym_value = v;
    return t;
}

static int grow(void **a, void **b, size_t sa, size_t sb, int n, int *cap)
{
    if (n < *cap)
        return 0;
    int nc = *cap ? *cap * 2 : 8;
    void *na = realloc(*a, (size_t)nc * sa);
    if (!na)
        return -1;
    *a = na;
    void *nb = realloc(*b, (size_t)nc * sb);
    if (!nb)
        return -1;
    *b = nb;
    *cap = nc;
    return 0;
}

int fern__trace_value_of(fern_tensor *t)
{
    trace_ctx *c = cur;
    /* In a nested trace (a control-flow body), values from outside become
     * explicit operands of the node: outer symbolic values, and concrete
     * tensors that existed before this body's trace began (so a gradient
     * can flow to a weight used inside a branch or a loop). */
    int lift = t->storage == NULL ? t->sym != c->g : c->parent != NULL && t->serial < c->serial_start;
    if (lift) {
        for (int i = 0; i < c->n_lifted; i++) {
            const fern_tensor *l = c->lifted[i];
            if (l == t || (!t->storage && !l->storage && l->sym == t->sym && l->sym_value == t->sym_value))
                return c->lifted_param[i];
        }
        if (grow((void **)&c->lifted, (void **)&c->lifted_param, sizeof(fern_tensor *), sizeof(int),
                 c->n_lifted, &c->cap_lifted))
            return -1;
        int v = fern_graph_add_param(c->g, t->dtype, t->ndim, t->shape);
        if (v < 0)
            return -1;
        c->lifted[c->n_lifted] = fern_retain(t);
        c->lifted_param[c->n_lifted++] = v;
        return v;
    }
    if (t->storage == NULL)
        return t->sym_value;
    if (t->serial >= c->serial_start) {
        for (int i = 0; i < c->n_consts; i++)
            if (c->consts[i] == t)
                return c->const_value[i];
        if (grow((void **)&c->consts, (void **)&c->const_value, sizeof(fern_tensor *), sizeof(int),
                 c->n_consts, &c->cap_consts))
            return -1;
        int v = fern_graph_add_const(c->g, t);
        if (v < 0)
            return -1;
        c->consts[c->n_consts] = t; /* the graph's const node holds the reference */
        c->const_value[c->n_consts++] = v;
        return v;
    }
    return fern_graph_add_capture(c->g, t);
}

static int trace_op(fern_op_call *call, void *ud)
{
    (void)ud;
    fern_graph *g = cur->g;
    /* A random op's public function took a draw from the generator; the
     * traced node draws at each run instead, so give the trace's draw back:
     * graph mode then consumes the same draws as pynative mode. */
    if ((call->op->flags & FERN_OPF_RANDOM) && call->rng_drawn)
        fern_rng_set_offset(fern_rng_offset() - 1);
    int ins[FERN_MAX_INPUTS];
    for (int i = 0; i < call->n_in; i++) {
        ins[i] = call->in[i] ? fern__trace_value_of(call->in[i]) : -1;
        if (call->in[i] && ins[i] < 0)
            return -1;
    }
    int node = fern__ir_add_node(g, FERN_NODE_OP, call->op, call->attrs, call->n_in, ins, call->n_out);
    if (node < 0)
        return -1;
    g->nodes[node].pinned_seed = (call->op->flags & FERN_OPF_RANDOM) && !call->rng_drawn;
    for (int k = 0; k < call->n_out; k++) {
        int v = fern__ir_add_value(g, call->out_dtype[k], call->out_ndim[k], call->out_shape[k], node, k);
        if (v < 0)
            return -1;
        g->nodes[node].out[k] = v;
        call->out[k] = fern__trace_symbolic(v);
        if (!call->out[k]) {
            for (int j = 0; j < k; j++)
                fern_release(call->out[j]);
            return -1;
        }
    }
    return 0;
}

static void ctx_free(trace_ctx *c)
{
    for (int i = 0; i < c->n_lifted; i++)
        fern_release(c->lifted[i]);
    free(c->lifted);
    free(c->lifted_param);
    free(c->consts);
    free(c->const_value);
    free(c);
}

fern_graph *fern__trace_fn(fern_module *m, const char *name, fern_fn *f, int n_in,
                           fern_tensor *const *in, int n_out, fern_tensor ***lifted_out,
                           int *n_lifted)
{
    *lifted_out = NULL;
    *n_lifted = 0;
    fern_graph *g = fern_graph_new(m, name);
    trace_ctx *c = g ? calloc(1, sizeof *c) : NULL;
    if (!c)
        return NULL;
    c->g = g;
    c->parent = cur;
    fern_tensor *sym[FERN_MAX_INPUTS] = {0};
    fern_tensor *outs[FERN_MAX_INPUTS] = {0};
    int ok = 1;
    /* parameters first, then enter the trace */
    trace_ctx *saved_cur = cur;
    cur = c;
    for (int i = 0; i < n_in && ok; i++) {
        int v = fern_graph_add_param(g, in[i]->dtype, in[i]->ndim, in[i]->shape);
        sym[i] = v < 0 ? NULL : fern__trace_symbolic(v);
        ok = sym[i] != NULL;
    }
    c->serial_start = fern__tensor_serial_next();
    /* ops inside the body are not recorded by an outer tape: the structured
     * node that uses this graph is (see control.c) */
    c->saved = fern__set_dispatch_hooks((fern_dispatch_hooks){.trace = trace_op, .trace_ud = c});
    fern_scope_begin(); /* owns the body's outputs */
    if (ok)
        ok = fern__fn_run_body(f, n_in, sym, n_out, outs) == FERN_OK;
    int ov[FERN_MAX_INPUTS];
    for (int k = 0; ok && k < n_out; k++) {
        ov[k] = fern__trace_value_of(outs[k]);
        ok = ov[k] >= 0;
    }
    fern__set_dispatch_hooks(c->saved);
    cur = saved_cur;
    fern_scope_end();
    for (int i = 0; i < n_in; i++)
        fern_release(sym[i]);
    if (ok)
        ok = fern_graph_set_outputs(g, n_out, ov) == 0;
    if (ok && c->n_lifted) {
        *lifted_out = c->lifted; /* ownership moves to the caller */
        *n_lifted = c->n_lifted;
        c->lifted = NULL;
        c->n_lifted = 0;
    }
    ctx_free(c);
    return ok ? g : NULL;
}
