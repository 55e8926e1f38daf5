/* Inlining: a call node is replaced by a copy of its callee's nodes. The
 * callee's plain parameters map to the call's operands, its captures
 * become captures of the caller (the same bound tensor is shared; an
 * unbound capture of a parsed graph becomes one unbound capture parameter
 * of the caller per callee parameter), its constants are copied (the
 * tensor is shared by reference) and its structured nodes keep their
 * subgraphs. The call's outputs are replaced by the copies of the callee's
 * results. Calls inside inlined bodies are inlined too (up to
 * INLINE_MAX_ROUNDS levels); a graph that calls itself is left alone.
 * Returns the number of call nodes inlined. */
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

#define INLINE_MAX_ROUNDS 32

typedef struct {
    const fern_graph *callee;
    int param;
    int value; /* the caller's capture parameter */
} unbound_cap;

typedef struct {
    ir_node *nodes;
    int n, cap;
} node_vec;

static int push_node(node_vec *v, const ir_node *n)
{
    if (v->n >= v->cap) {
        int nc = v->cap ? v->cap * 2 : 16;
        ir_node *nn = realloc(v->nodes, (size_t)nc * sizeof *nn);
        if (!nn)
            return -1;
        v->nodes = nn;
        v->cap = nc;
    }
    v->nodes[v->n++] = *n;
    return 0;
}

/* Copy callee's node n with inputs mapped through map (callee value ->
 * caller value); creates the output values in g and records them in map. */
static int clone_node(fern_graph *g, const fern_graph *callee, const ir_node *n, int *map,
                      int node_index, ir_node *out)
{
    memset(out, 0, sizeof *out);
    out->kind = n->kind;
    out->op = n->op;
    out->sub[0] = n->sub[0];
    out->sub[1] = n->sub[1];
    out->n_carry = n->n_carry;
    out->n_in = n->n_in;
    out->n_out = n->n_out;
    out->in = malloc((size_t)(n->n_in ? n->n_in : 1) * sizeof *out->in);
    out->out = malloc((size_t)(n->n_out ? n->n_out : 1) * sizeof *out->out);
    if (n->kind == FERN_NODE_OP && n->op->n_attrs) {
        out->attrs = malloc((size_t)n->op->n_attrs * sizeof *out->attrs);
        if (out->attrs)
            memcpy(out->attrs, n->attrs, (size_t)n->op->n_attrs * sizeof *out->attrs);
    }
    if (!out->in || !out->out || (n->kind == FERN_NODE_OP && n->op->n_attrs && !out->attrs)) {
        fern__pu_node_release(out);
        return -1;
    }
    if (n->value)
        out->value = fern_retain(n->value);
    for (int k = 0; k < n->n_in; k++)
        out->in[k] = n->in[k] >= 0 ? map[n->in[k]] : -1;
    for (int k = 0; k < n->n_out; k++) {
        const ir_value *t = &callee->values[n->out[k]];
        int v = fern__ir_add_value(g, t->dtype, t->ndim, t->shape, node_index, k);
        if (v < 0) {
            fern__pu_node_release(out);
            return -1;
        }
        out->out[k] = v;
        map[n->out[k]] = v;
    }
    return 0;
}

/* Caller value for callee parameter p (a capture). */
static int capture_value(fern_graph *g, const fern_graph *callee, int p, unbound_cap **ub,
                         int *n_ub)
{
    if (callee->captures[p])
        return fern_graph_add_capture(g, callee->captures[p]);
    for (int k = 0; k < *n_ub; k++)
        if ((*ub)[k].callee == callee && (*ub)[k].param == p)
            return (*ub)[k].value;
    const ir_value *t = &callee->values[callee->params[p]];
    int v = fern_graph_add_param(g, t->dtype, t->ndim, t->shape);
    if (v < 0)
        return -1;
    g->is_capture[g->n_params - 1] = 1;
    unbound_cap *nu = realloc(*ub, (size_t)(*n_ub + 1) * sizeof *nu);
    if (!nu)
        return -1;
    *ub = nu;
    nu[*n_ub].callee = callee;
    nu[*n_ub].param = p;
    nu[*n_ub].value = v;
    (*n_ub)++;
    return v;
}

/* One round: inline every call node present now. Returns the count. */
static int inline_round(fern_graph *g, unbound_cap **ub, int *n_ub)
{
    int n_calls = 0;
    for (int i = 0; i < g->n_nodes; i++)
        if (g->nodes[i].kind == FERN_NODE_CALL && g->nodes[i].sub[0] && g->nodes[i].sub[0] != g)
            n_calls++;
    if (!n_calls)
        return 0;
    int *repl = NULL, *map = NULL;
    int repl_n = 0;
    node_vec nv = {0};
    int rc = 0, inlined = 0;
    /* repl covers the values that exist now (call outputs are among them);
     * its targets are final (operands are renamed before use), so one
     * lookup suffices and new values need no entry */
    repl = fern__pu_repl_new(g);
    repl_n = g->n_values;
    if (!repl)
        return -1;
    int n_old = g->n_nodes, i;
    ir_node *old = g->nodes;
    for (i = 0; i < n_old && rc == 0; i++) {
        ir_node *n = &old[i];
        /* inputs of later nodes may name outputs of calls inlined above */
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0 && n->in[k] < repl_n)
                n->in[k] = repl[n->in[k]];
        if (n->kind != FERN_NODE_CALL || !n->sub[0] || n->sub[0] == g) {
            if (push_node(&nv, n))
                rc = -1;
            continue;
        }
        const fern_graph *callee = n->sub[0];
        free(map);
        map = malloc((size_t)(callee->n_values ? callee->n_values : 1) * sizeof *map);
        if (!map) {
            rc = -1;
            break;
        }
        for (int v = 0; v < callee->n_values; v++)
            map[v] = -1;
        for (int p = 0, k = 0; p < callee->n_params && rc == 0; p++) {
            int pv = callee->params[p];
            if (callee->is_capture[p]) {
                /* g->nodes is `old` during the round: add_param touches
                 * only values and params */
                map[pv] = capture_value(g, callee, p, ub, n_ub);
                if (map[pv] < 0)
                    rc = -1;
            } else {
                if (k >= n->n_in) {
                    fern_set_error(FERN_ERR_INVALID, "inline: call of @%s has too few operands",
                                   callee->name);
                    rc = -1;
                    break;
                }
                map[pv] = n->in[k++];
            }
        }
        for (int j = 0; j < callee->n_nodes && rc == 0; j++) {
            ir_node copy;
            if (clone_node(g, callee, &callee->nodes[j], map, nv.n, &copy) || push_node(&nv, &copy)) {
                fern__pu_node_release(&copy);
                rc = -1;
            }
        }
        for (int k = 0; k < n->n_out && rc == 0; k++) {
            int r = map[callee->outputs[k]];
            if (r < 0) {
                fern_set_error(FERN_ERR_INVALID, "inline: @%s returns an undefined value",
                               callee->name);
                rc = -1;
                break;
            }
            repl[n->out[k]] = r;
        }
        if (rc == 0) {
            fern__pu_node_release(n);
            inlined++;
        } else {
            /* keep the call: put it back so the graph stays whole */
            push_node(&nv, n);
        }
    }
    free(map);
    /* on failure the nodes not visited yet keep their order after the
     * rewritten prefix; the caller abandons the module anyway */
    for (; i < n_old; i++)
        push_node(&nv, &old[i]);
    free(old);
    g->nodes = nv.nodes;
    g->n_nodes = nv.n;
    g->cap_nodes = nv.cap;
    for (int k = 0; k < g->n_outputs; k++)
        if (g->outputs[k] < repl_n)
            g->outputs[k] = repl[g->outputs[k]];
    if (rc == 0)
        fern__ir_compact(g, NULL);
    free(repl);
    if (rc && fern_last_status() == FERN_OK)
        fern_set_error(FERN_ERR_NOMEM, "inline: out of memory");
    return rc ? -1 : inlined;
}

int fern__pass_inline(fern_graph *g)
{
    unbound_cap *ub = NULL;
    int n_ub = 0, total = 0;
    for (int round = 0; round < INLINE_MAX_ROUNDS; round++) {
        int c = inline_round(g, &ub, &n_ub);
        if (c < 0) {
            free(ub);
            return -1;
        }
        if (c == 0)
            break;
        total += c;
    }
    free(ub);
    return total;
}
