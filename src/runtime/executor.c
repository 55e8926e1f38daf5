/* The graph executor: runs nodes in order with each value released right
 * after its last use, so the caching allocator hands the same buffers to
 * later nodes (the memory plan). Structured nodes run their bodies; when
 * their operands are symbolic (a graph run inside an outer trace) they go
 * through the control-flow API so the outer trace records them. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "runtime_internal.h"

typedef struct {
    const fern_graph *g;
} graph_fn_ud;

static fern_status run_graph(const fern_graph *g, int n_in, fern_tensor *const *in, int n_out,
                             fern_tensor **out);

static int graph_fn_body(void *ud, fern_tensor *const *in, fern_tensor **out)
{
    const fern_graph *g = ((graph_fn_ud *)ud)->g;
    int n_plain = 0;
    for (int i = 0; i < g->n_params; i++)
        n_plain += !g->is_capture[i];
    /* through fern_graph_run: the executor manages its values' references
     * with scope registration detached, and hands out scope-owned outputs */
    return fern_graph_run(g, n_plain, in, g->n_outputs, out) == FERN_OK ? 0 : -1;
}

/* A function value that runs a subgraph. */
static fern_fn *graph_fn(const fern_graph *g, graph_fn_ud *ud)
{
    ud->g = g;
    int n_plain = 0;
    for (int i = 0; i < g->n_params; i++)
        n_plain += !g->is_capture[i];
    return fern__fn_new_owned(graph_fn_body, ud, NULL, n_plain, g->n_outputs, g->name);
}

static void free_graph_fn_ud(void *ud) { free(ud); }

fern_fn *fern__graph_fn(const fern_graph *g)
{
    graph_fn_ud *ud = malloc(sizeof *ud);
    if (!ud) {
        fern_set_error(FERN_ERR_NOMEM, "graph_fn: out of memory");
        return NULL;
    }
    ud->g = g;
    int n_plain = 0;
    for (int i = 0; i < g->n_params; i++)
        n_plain += !g->is_capture[i];
    return fern__fn_new_owned(graph_fn_body, ud, free_graph_fn_ud, n_plain, g->n_outputs, g->name);
}

static int any_symbolic(fern_tensor *const *ts, int n)
{
    for (int i = 0; i < n; i++)
        if (ts[i] && !ts[i]->storage)
            return 1;
    return 0;
}

static int truth(fern_tensor *t) { return fern_tensor_get_flat(t, 0) != 0.0; }

static fern_status run_structured(const ir_node *n, fern_tensor **ins, fern_tensor **outs)
{
    fern_status st = FERN_OK;
    if (n->kind == FERN_NODE_CALL)
        return run_graph(n->sub[0], n->n_in, ins, n->n_out, outs);
    if (n->kind == FERN_NODE_COND) {
        if (!any_symbolic(ins, 1))
            return run_graph(truth(ins[0]) ? n->sub[0] : n->sub[1], n->n_in - 1, ins + 1, n->n_out, outs);
        graph_fn_ud u0, u1;
        fern_fn *a = graph_fn(n->sub[0], &u0), *b = graph_fn(n->sub[1], &u1);
        st = fern_cond(ins[0], a, b, n->n_in - 1, ins + 1, n->n_out, outs);
        fern_fn_release(a);
        fern_fn_release(b);
        return st;
    }
    if (n->kind == FERN_NODE_WHILE) {
        if (any_symbolic(ins, n->n_in)) {
            graph_fn_ud u0, u1;
            fern_fn *c = graph_fn(n->sub[0], &u0), *b = graph_fn(n->sub[1], &u1);
            st = fern_while_loop(c, b, n->n_in, ins, outs, n->n_carry);
            fern_fn_release(c);
            fern_fn_release(b);
            return st;
        }
        fern_tensor *vars[FERN_MAX_INPUTS];
        for (int i = 0; i < n->n_in; i++)
            vars[i] = fern_retain(ins[i]);
        for (int64_t it = 0;; it++) {
            fern_tensor *p = NULL;
            st = run_graph(n->sub[0], n->n_in, vars, 1, &p);
            if (st != FERN_OK)
                break;
            int go = truth(p);
            fern_release(p);
            if (!go)
                break;
            if (n->n_carry > 0 && it >= n->n_carry) {
                fern_set_error(FERN_ERR_INVALID, "while: reached max_iters=%d", n->n_carry);
                st = FERN_ERR_INVALID;
                break;
            }
            fern_tensor *next[FERN_MAX_INPUTS];
            st = run_graph(n->sub[1], n->n_in, vars, n->n_in, next);
            if (st != FERN_OK)
                break;
            for (int i = 0; i < n->n_in; i++) {
                fern_release(vars[i]);
                vars[i] = next[i];
            }
        }
        for (int i = 0; i < n->n_in; i++) {
            if (st == FERN_OK)
                outs[i] = vars[i];
            else
                fern_release(vars[i]);
        }
        return st;
    }
    if (n->kind == FERN_NODE_SCAN) {
        int nc = n->n_carry, n_xs = n->n_in - nc, n_ys = n->n_out - nc;
        if (any_symbolic(ins, n->n_in)) {
            graph_fn_ud u;
            fern_fn *b = graph_fn(n->sub[0], &u);
            st = fern_scan(b, nc, ins, n_xs, ins + nc, n->n_out, outs);
            fern_fn_release(b);
            return st;
        }
        int64_t len = n_xs ? ins[nc]->shape[0] : 0;
        fern_tensor *carry[FERN_MAX_INPUTS];
        fern_tensor **ys = calloc((size_t)(n_ys * (len ? len : 1) + 1), sizeof *ys);
        if (!ys)
            return FERN_ERR_NOMEM;
        for (int i = 0; i < nc; i++)
            carry[i] = fern_retain(ins[i]);
        for (int64_t t = 0; t < len && st == FERN_OK; t++) {
            fern_tensor *args[FERN_MAX_INPUTS], *res[FERN_MAX_INPUTS];
            for (int i = 0; i < nc; i++)
                args[i] = carry[i];
            for (int j = 0; j < n_xs; j++) {
                fern_tensor *x = ins[nc + j];
                fern_tensor *s = fern_slice(x, 0, t, t + 1, 1);
                args[nc + j] = fern_reshape(s, x->ndim - 1, x->shape + 1);
                fern_release(s);
            }
            st = run_graph(n->sub[0], n->n_in, args, n->n_out, res);
            for (int j = 0; j < n_xs; j++)
                fern_release(args[nc + j]);
            if (st != FERN_OK)
                break;
            for (int i = 0; i < nc; i++) {
                fern_release(carry[i]);
                carry[i] = res[i];
            }
            for (int j = 0; j < n_ys; j++)
                ys[j * len + t] = res[nc + j];
        }
        for (int j = 0; j < n_ys && st == FERN_OK; j++) {
            if (len == 0) {
                const ir_value *yt = &n->sub[0]->values[n->sub[0]->outputs[nc + j]];
                int64_t shape[FERN_MAX_DIMS];
                shape[0] = 0;
                memcpy(shape + 1, yt->shape, (size_t)yt->ndim * sizeof(int64_t));
                outs[nc + j] = fern_zeros(yt->dtype, yt->ndim + 1, shape);
            } else {
                outs[nc + j] = fern_stack(ys + j * len, (int)len, 0);
            }
            if (!outs[nc + j])
                st = fern_last_status();
        }
        for (int64_t k = 0; k < n_ys * len; k++)
            fern_release(ys[k]);
        free(ys);
        for (int i = 0; i < nc; i++) {
            if (st == FERN_OK)
                outs[i] = carry[i];
            else
                fern_release(carry[i]);
        }
        return st;
    }
    fern_set_error(FERN_ERR_INTERNAL, "executor: unknown node kind %d", n->kind);
    return FERN_ERR_INTERNAL;
}

static int shapes_compatible(const ir_value *v, const fern_tensor *t)
{
    if (v->dtype != t->dtype || v->ndim != t->ndim)
        return 0;
    for (int d = 0; d < v->ndim; d++)
        if (v->shape[d] >= 0 && v->shape[d] != t->shape[d])
            return 0;
    return 1;
}

static fern_status run_graph(const fern_graph *g, int n_in, fern_tensor *const *in, int n_out,
                             fern_tensor **out)
{
    int nv = g->n_values ? g->n_values : 1;
    fern_tensor **val = calloc((size_t)nv, sizeof *val);
    int *last = malloc((size_t)nv * sizeof *last);
    if (!val || !last) {
        free(val);
        free(last);
        fern_set_error(FERN_ERR_NOMEM, "executor: out of memory");
        return FERN_ERR_NOMEM;
    }
    fern_status st = FERN_OK;
    for (int v = 0; v < g->n_values; v++)
        last[v] = -1;
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                last[g->nodes[i].in[k]] = i;
    for (int k = 0; k < g->n_outputs; k++)
        last[g->outputs[k]] = INT_MAX;

    int k_in = 0;
    for (int p = 0; p < g->n_params; p++) {
        int v = g->params[p];
        if (g->is_capture[p]) {
            if (!g->captures[p]) {
                fern_set_error(FERN_ERR_INVALID, "run @%s: capture parameter %d is not bound to a tensor",
                               g->name, p);
                st = FERN_ERR_INVALID;
                goto done;
            }
            val[v] = fern_retain(g->captures[p]);
            continue;
        }
        if (k_in >= n_in || !in[k_in]) {
            fern_set_error(FERN_ERR_INVALID, "run @%s: missing input %d", g->name, k_in);
            st = FERN_ERR_INVALID;
            goto done;
        }
        if (!shapes_compatible(&g->values[v], in[k_in])) {
            char d[128];
            fern_set_error(FERN_ERR_INVALID, "run @%s: input %d is %s, which does not match the graph's parameter",
                           g->name, k_in, fern_tensor_desc(in[k_in], d, sizeof d));
            st = FERN_ERR_INVALID;
            goto done;
        }
        val[v] = fern_retain(in[k_in++]);
    }
    if (k_in != n_in) {
        fern_set_error(FERN_ERR_INVALID, "run @%s: takes %d inputs, got %d", g->name, k_in, n_in);
        st = FERN_ERR_INVALID;
        goto done;
    }

    for (int i = 0; i < g->n_nodes && st == FERN_OK; i++) {
        const ir_node *n = &g->nodes[i];
        fern_tensor *ins[FERN_MAX_INPUTS + 1], *outs[FERN_MAX_INPUTS] = {0};
        for (int k = 0; k < n->n_in; k++)
            ins[k] = n->in[k] >= 0 ? val[n->in[k]] : NULL;
        if (n->kind == FERN_NODE_OP) {
            const fern_attr *attrs = n->attrs;
            fern_attr fresh[32];
            if ((n->op->flags & FERN_OPF_RANDOM) && !n->pinned_seed) { /* each run draws anew */
                memcpy(fresh, n->attrs, (size_t)n->op->n_attrs * sizeof *fresh);
                uint64_t seed, offset;
                fern__rng_next(&seed, &offset);
                for (int a = 0; a < n->op->n_attrs; a++) {
                    if (!strcmp(n->op->attrs[a].name, "seed"))
                        fresh[a].i = (int64_t)seed;
                    else if (!strcmp(n->op->attrs[a].name, "offset"))
                        fresh[a].i = (int64_t)offset;
                }
                attrs = fresh;
            }
            if (fern__op_run(n->op, n->n_in, ins, attrs, n->n_out, outs))
                st = fern_last_status() ? fern_last_status() : FERN_ERR_INTERNAL;
        } else if (n->kind == FERN_NODE_CONST) {
            outs[0] = fern_retain(n->value);
        } else {
            st = run_structured(n, ins, outs);
        }
        if (st != FERN_OK)
            break;
        for (int k = 0; k < n->n_out; k++)
            val[n->out[k]] = outs[k];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v >= 0 && last[v] == i && val[v]) {
                fern_release(val[v]);
                val[v] = NULL;
            }
        }
    }
    if (st == FERN_OK)
        for (int k = 0; k < n_out; k++)
            out[k] = fern_retain(val[g->outputs[k]]);
done:
    for (int v = 0; v < g->n_values; v++)
        fern_release(val[v]);
    free(val);
    free(last);
    return st;
}

fern_status fern_graph_run(const fern_graph *g, int n_in, fern_tensor *const *in, int n_out,
                           fern_tensor **out)
{
    for (int k = 0; k < n_out; k++)
        out[k] = NULL;
    if (!g) {
        fern_set_error(FERN_ERR_INVALID, "graph_run: graph is NULL");
        return FERN_ERR_INVALID;
    }
    if (n_out != g->n_outputs) {
        fern_set_error(FERN_ERR_INVALID, "graph_run: @%s returns %d outputs, %d requested", g->name,
                       g->n_outputs, n_out);
        return FERN_ERR_INVALID;
    }
    fern__scope_detach(+1);
    fern_status st = run_graph(g, n_in, in, n_out, out);
    fern__scope_detach(-1);
    if (st == FERN_OK)
        for (int k = 0; k < n_out; k++)
            fern__scope_register(out[k]);
    return st;
}

void fern__plan_memory(const fern_graph *g, size_t *planned_peak, size_t *naive)
{
    *planned_peak = 0;
    *naive = 0;
    int nv = g->n_values ? g->n_values : 1;
    int *last = malloc((size_t)nv * sizeof *last);
    int *root = malloc((size_t)nv * sizeof *root);
    if (!last || !root) {
        free(last);
        free(root);
        return;
    }
    for (int v = 0; v < g->n_values; v++) {
        last[v] = -1;
        root[v] = v;
    }
    /* views alias their input: the root buffer lives as long as any view */
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->kind == FERN_NODE_OP && (n->op->flags & FERN_OPF_VIEW) && n->in[0] >= 0)
            root[n->out[0]] = root[n->in[0]];
    }
    for (int i = 0; i < g->n_nodes; i++)
        for (int k = 0; k < g->nodes[i].n_in; k++)
            if (g->nodes[i].in[k] >= 0)
                last[root[g->nodes[i].in[k]]] = i;
    for (int k = 0; k < g->n_outputs; k++)
        last[root[g->outputs[k]]] = INT_MAX;
    size_t live = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        if (n->kind == FERN_NODE_CONST)
            continue;
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (root[v] != v)
                continue;
            size_t b = fern__ir_value_bytes(g, v);
            *naive += b;
            live += b;
        }
        if (live > *planned_peak)
            *planned_peak = live;
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v < 0 || root[v] != v || g->values[v].node < 0 ||
                g->nodes[g->values[v].node].kind == FERN_NODE_CONST)
                continue;
            if (last[v] == i)
                live -= fern__ir_value_bytes(g, v);
        }
        for (int k = 0; k < n->n_out; k++) /* outputs nobody reads die at once */
            if (root[n->out[k]] == n->out[k] && last[n->out[k]] < 0)
                live -= fern__ir_value_bytes(g, n->out[k]);
    }
    free(last);
    free(root);
}
