/* Type inference: re-run each op's inference on the current input types
 * and refresh the output value types. A dimension that was unknown (-1)
 * takes the inferred size or symbol, so symbolic dims propagate through
 * rewritten graphs; a known dimension never becomes unknown. A node whose
 * inferred dtype, rank or a known dim contradicts its output value is an
 * error: the graph is no longer consistent. Constants refresh from their
 * tensors; call/cond/while/scan outputs from their bodies' results.
 * When an input of a node still has an unknown dim, only the dtype and
 * rank of its outputs are checked: inference probes unknown dims with a
 * stand-in size, and a size derived from it by division is not
 * recognizable as unknown.
 * Returns the number of values whose type became more precise. */
#include <stdio.h>
#include <string.h>

#include "passes.h"

/* Merge an inferred type into value v: 1 if refined, 0 if unchanged, -1
 * on a contradiction. */
static int merge(fern_graph *g, int v, fern_dtype dt, int ndim, const int64_t *shape)
{
    ir_value *x = &g->values[v];
    if (x->dtype != dt || x->ndim != ndim)
        return -1;
    for (int d = 0; d < ndim; d++)
        if (x->shape[d] != shape[d] && x->shape[d] != -1 && shape[d] != -1)
            return -1;
    int changed = 0;
    for (int d = 0; d < ndim; d++)
        if (x->shape[d] == -1 && shape[d] != -1) {
            x->shape[d] = shape[d];
            changed = 1;
        }
    return changed;
}

static void type_str(const fern_graph *g, fern_dtype dt, int ndim, const int64_t *shape, char *buf,
                     size_t n)
{
    size_t u = (size_t)snprintf(buf, n, "%s[", fern_dtype_name(dt));
    for (int d = 0; d < ndim && u < n; d++) {
        if (FERN_DIM_IS_SYM(shape[d]))
            u += (size_t)snprintf(buf + u, n - u, "%s%s", d ? "," : "",
                                  fern_module_symbol_name(g->module, FERN_DIM_SYM_INDEX(shape[d])));
        else if (shape[d] == -1)
            u += (size_t)snprintf(buf + u, n - u, "%s?", d ? "," : "");
        else
            u += (size_t)snprintf(buf + u, n - u, "%s%lld", d ? "," : "", (long long)shape[d]);
    }
    if (u < n)
        snprintf(buf + u, n - u, "]");
}

static int inconsistent(const fern_graph *g, int i, int v, fern_dtype dt, int ndim,
                        const int64_t *shape)
{
    const ir_node *n = &g->nodes[i];
    static const char *kinds[] = {"op", "call", "cond", "while", "scan", "const"};
    char have[160], want[160];
    const ir_value *x = &g->values[v];
    type_str(g, x->dtype, x->ndim, x->shape, have, sizeof have);
    type_str(g, dt, ndim, shape, want, sizeof want);
    fern_set_error(FERN_ERR_INVALID,
                   "infer: @%s node %d (%s) is no longer consistent: its output is %s but "
                   "inference gives %s",
                   g->name, i, n->kind == FERN_NODE_OP ? n->op->name : kinds[n->kind], have, want);
    return -1;
}

static int merge_from(fern_graph *g, int i, int v, const fern_graph *src, int sv, int *changes)
{
    const ir_value *t = &src->values[sv];
    int r = merge(g, v, t->dtype, t->ndim, t->shape);
    if (r < 0)
        return inconsistent(g, i, v, t->dtype, t->ndim, t->shape);
    *changes += r;
    return 0;
}

int fern__pass_infer(fern_graph *g)
{
    int changes = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        switch (n->kind) {
        case FERN_NODE_OP: {
            fern_op_call c;
            if (fern__ir_infer(g, n->op, n->attrs, n->n_in, n->in, &c)) {
                char msg[512];
                snprintf(msg, sizeof msg, "%s", fern_last_error());
                fern_clear_error();
                fern_set_error(FERN_ERR_INVALID, "infer: @%s node %d (%s) is no longer consistent: %s",
                               g->name, i, n->op->name, msg);
                return -1;
            }
            if (c.n_out != n->n_out) {
                fern_set_error(FERN_ERR_INVALID,
                               "infer: @%s node %d (%s) has %d outputs but the op gives %d", g->name,
                               i, n->op->name, n->n_out, c.n_out);
                return -1;
            }
            /* With an unknown input dim the probe-based inference can only
             * vouch for dtypes and ranks (a probe divided by a size reads
             * as a plain number): then check those and keep the dims. */
            int unknown_in = 0;
            for (int k = 0; k < n->n_in; k++)
                if (n->in[k] >= 0)
                    for (int d = 0; d < g->values[n->in[k]].ndim; d++)
                        unknown_in |= g->values[n->in[k]].shape[d] == -1;
            for (int k = 0; k < n->n_out; k++) {
                if (unknown_in) {
                    const ir_value *x = &g->values[n->out[k]];
                    if (x->dtype != c.out_dtype[k] || x->ndim != c.out_ndim[k])
                        return inconsistent(g, i, n->out[k], c.out_dtype[k], c.out_ndim[k],
                                            c.out_shape[k]);
                    continue;
                }
                int r = merge(g, n->out[k], c.out_dtype[k], c.out_ndim[k], c.out_shape[k]);
                if (r < 0)
                    return inconsistent(g, i, n->out[k], c.out_dtype[k], c.out_ndim[k],
                                        c.out_shape[k]);
                changes += r;
            }
            break;
        }
        case FERN_NODE_CONST: {
            const fern_tensor *t = n->value;
            if (!t) {
                fern_set_error(FERN_ERR_INVALID, "infer: @%s node %d is a constant without a value",
                               g->name, i);
                return -1;
            }
            int r = merge(g, n->out[0], t->dtype, t->ndim, t->shape);
            if (r < 0)
                return inconsistent(g, i, n->out[0], t->dtype, t->ndim, t->shape);
            changes += r;
            break;
        }
        case FERN_NODE_CALL:
        case FERN_NODE_COND:
        case FERN_NODE_WHILE: {
            const fern_graph *body = n->kind == FERN_NODE_WHILE ? n->sub[1] : n->sub[0];
            if (!body || body->n_outputs != n->n_out) {
                fern_set_error(FERN_ERR_INVALID,
                               "infer: @%s node %d: its body does not match the node's outputs",
                               g->name, i);
                return -1;
            }
            for (int k = 0; k < n->n_out; k++)
                if (merge_from(g, i, n->out[k], body, body->outputs[k], &changes))
                    return -1;
            break;
        }
        case FERN_NODE_SCAN: {
            const fern_graph *body = n->sub[0];
            if (!body || body->n_outputs != n->n_out) {
                fern_set_error(FERN_ERR_INVALID,
                               "infer: @%s node %d: its body does not match the node's outputs",
                               g->name, i);
                return -1;
            }
            int64_t len = n->n_in > n->n_carry ? g->values[n->in[n->n_carry]].shape[0] : -1;
            for (int k = 0; k < n->n_out; k++) {
                const ir_value *t = &body->values[body->outputs[k]];
                if (k < n->n_carry) {
                    if (merge_from(g, i, n->out[k], body, body->outputs[k], &changes))
                        return -1;
                    continue;
                }
                int64_t shape[FERN_MAX_DIMS];
                if (t->ndim + 1 > FERN_MAX_DIMS) {
                    fern_set_error(FERN_ERR_INVALID, "infer: @%s node %d: scan output has too many dims",
                                   g->name, i);
                    return -1;
                }
                shape[0] = len;
                memcpy(shape + 1, t->shape, (size_t)t->ndim * sizeof(int64_t));
                int r = merge(g, n->out[k], t->dtype, t->ndim + 1, shape);
                if (r < 0)
                    return inconsistent(g, i, n->out[k], t->dtype, t->ndim + 1, shape);
                changes += r;
            }
            break;
        }
        }
    }
    return changes;
}
