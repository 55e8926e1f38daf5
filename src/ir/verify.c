/* The verifier: SSA (every use after its definition, each value defined
 * once), types consistent with op inference, structured nodes consistent
 * with their bodies, outputs defined. */
#include <stdlib.h>
#include <string.h>

#include "ir_internal.h"

static int types_agree(const ir_value *a, fern_dtype dt, int nd, const int64_t *shape)
{
    if (a->dtype != dt || a->ndim != nd)
        return 0;
    for (int d = 0; d < nd; d++)
        if (a->shape[d] != shape[d] && a->shape[d] != -1 && shape[d] != -1)
            return 0;
    return 1;
}

static fern_status bad(const fern_graph *g, int node, const char *what)
{
    const ir_node *n = node >= 0 ? &g->nodes[node] : NULL;
    fern_set_error(FERN_ERR_INVALID, "verify: @%s node %d (%s): %s", g->name, node,
                   !n ? "-" : n->kind == FERN_NODE_OP ? n->op->name : "structured", what);
    return FERN_ERR_INVALID;
}

static int n_plain_params(const fern_graph *s)
{
    int n = 0;
    for (int i = 0; i < s->n_params; i++)
        n += !s->is_capture[i];
    return n;
}

fern_status fern_graph_verify(const fern_graph *g)
{
    char *defined = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    if (!defined)
        return FERN_ERR_NOMEM;
    fern_status st = FERN_OK;
    for (int p = 0; p < g->n_params; p++) {
        int v = g->params[p];
        if (v < 0 || v >= g->n_values || defined[v] || g->values[v].node != -1) {
            st = bad(g, -1, "a parameter is not a distinct parameter value");
            goto out;
        }
        defined[v] = 1;
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++) {
            int v = n->in[k];
            if (v == -1 && n->kind == FERN_NODE_OP && k >= n->op->n_inputs - n->op->n_optional &&
                n->op->n_inputs >= 0)
                continue;
            if (v < 0 || v >= g->n_values || !defined[v]) {
                st = bad(g, i, "uses a value before it is defined");
                goto out;
            }
        }
        if (n->kind == FERN_NODE_OP) {
            fern_op_call c;
            if (fern__ir_infer((fern_graph *)g, n->op, n->attrs, n->n_in, n->in, &c)) {
                st = bad(g, i, fern_last_error());
                goto out;
            }
            if (c.n_out != n->n_out) {
                st = bad(g, i, "wrong number of outputs");
                goto out;
            }
            for (int k = 0; k < n->n_out; k++)
                if (!types_agree(&g->values[n->out[k]], c.out_dtype[k], c.out_ndim[k], c.out_shape[k])) {
                    st = bad(g, i, "an output's type differs from the op's inference");
                    goto out;
                }
        } else if (n->kind == FERN_NODE_CALL || n->kind == FERN_NODE_COND ||
                   n->kind == FERN_NODE_WHILE) {
            int off = n->kind == FERN_NODE_COND;
            for (int s = 0; s < (n->kind == FERN_NODE_CALL ? 1 : 2); s++) {
                const fern_graph *sub = n->sub[s];
                if (!sub || sub->module != g->module) {
                    st = bad(g, i, "missing subgraph or subgraph from another module");
                    goto out;
                }
                if (n_plain_params(sub) != n->n_in - off) {
                    st = bad(g, i, "subgraph parameter count differs from the operands");
                    goto out;
                }
                int want_out = n->kind == FERN_NODE_WHILE && s == 0 ? 1 : n->n_out;
                if (sub->n_outputs != want_out) {
                    st = bad(g, i, "subgraph result count differs from the node's outputs");
                    goto out;
                }
                if (fern_graph_verify(sub) != FERN_OK) {
                    st = FERN_ERR_INVALID;
                    goto out;
                }
            }
        } else if (n->kind == FERN_NODE_SCAN) {
            if (!n->sub[0] || n_plain_params(n->sub[0]) != n->n_in ||
                n->sub[0]->n_outputs != n->n_out || fern_graph_verify(n->sub[0]) != FERN_OK) {
                st = bad(g, i, "scan body does not match the node");
                goto out;
            }
        } else if (n->kind == FERN_NODE_CONST) {
            if (!n->value || n->n_out != 1 ||
                !types_agree(&g->values[n->out[0]], n->value->dtype, n->value->ndim, n->value->shape)) {
                st = bad(g, i, "constant does not match its value");
                goto out;
            }
        }
        for (int k = 0; k < n->n_out; k++) {
            int v = n->out[k];
            if (v < 0 || v >= g->n_values || defined[v]) {
                st = bad(g, i, "defines a value twice");
                goto out;
            }
            defined[v] = 1;
        }
    }
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] < 0 || g->outputs[k] >= g->n_values || !defined[g->outputs[k]]) {
            st = bad(g, -1, "returns an undefined value");
            goto out;
        }
out:
    free(defined);
    return st;
}

fern_status fern_module_verify(const fern_module *m)
{
    for (int i = 0; i < m->n_graphs; i++) {
        fern_status st = fern_graph_verify(m->graphs[i]);
        if (st != FERN_OK)
            return st;
    }
    return FERN_OK;
}
