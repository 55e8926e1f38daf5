/* Common-subexpression elimination: a node equal to an earlier one (same
 * op, equal attributes field by field with floats compared bitwise, the
 * same inputs) is dropped and its outputs replaced by the earlier node's.
 * Random ops are never merged (two draws differ). Structured nodes merge
 * only with the same kind, the same subgraph pointers, the same carry
 * count and the same inputs. Constants merge when they hold the same
 * tensor, or equal dtype, shape and bytes (contiguous constants up to
 * CSE_CONST_ELEMS elements). One pass in topological order with a hash
 * table: inputs are renamed as the walk goes, so chains of duplicates
 * collapse in a single pass. */
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

#define CSE_CONST_ELEMS (1 << 16)

static int const_comparable(const fern_tensor *t)
{
    return t->storage && fern_tensor_is_contiguous(t) && fern_tensor_numel(t) <= CSE_CONST_ELEMS;
}

static uint64_t node_hash(const fern_graph *g, const ir_node *n)
{
    uint64_t h = fern__pu_mix(0x1234567u, (uint64_t)n->kind);
    if (n->kind == FERN_NODE_CONST) {
        const fern_tensor *t = n->value;
        h = fern__pu_mix(h, (uint64_t)t->dtype);
        for (int d = 0; d < t->ndim; d++)
            h = fern__pu_mix(h, (uint64_t)t->shape[d]);
        if (const_comparable(t)) {
            const unsigned char *p = fern_tensor_data(t);
            size_t nb = fern_tensor_nbytes(t);
            for (size_t k = 0; k < nb; k++)
                h = (h ^ p[k]) * 1099511628211ull;
        } else {
            h = fern__pu_mix(h, (uint64_t)(uintptr_t)t);
        }
        return h;
    }
    h = fern__pu_mix(h, (uint64_t)(uintptr_t)n->op);
    h = fern__pu_mix(h, (uint64_t)(uintptr_t)n->sub[0]);
    h = fern__pu_mix(h, (uint64_t)(uintptr_t)n->sub[1]);
    h = fern__pu_mix(h, (uint64_t)n->n_carry);
    h = fern__pu_mix(h, (uint64_t)n->n_in);
    for (int k = 0; k < n->n_in; k++)
        h = fern__pu_mix(h, (uint64_t)(int64_t)n->in[k]);
    if (n->kind == FERN_NODE_OP)
        h = fern__pu_mix(h, fern__pu_attrs_hash(n->op, n->attrs));
    (void)g;
    return h;
}

static int consts_equal(const fern_tensor *a, const fern_tensor *b)
{
    if (a == b)
        return 1;
    if (a->dtype != b->dtype || a->ndim != b->ndim)
        return 0;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d])
            return 0;
    if (!const_comparable(a) || !const_comparable(b))
        return 0;
    return memcmp(fern_tensor_data(a), fern_tensor_data(b), fern_tensor_nbytes(a)) == 0;
}

static int nodes_equal(const ir_node *a, const ir_node *b)
{
    if (a->kind != b->kind || a->n_out != b->n_out)
        return 0;
    if (a->kind == FERN_NODE_CONST)
        return consts_equal(a->value, b->value);
    if (a->op != b->op || a->sub[0] != b->sub[0] || a->sub[1] != b->sub[1] ||
        a->n_carry != b->n_carry || a->n_in != b->n_in)
        return 0;
    for (int k = 0; k < a->n_in; k++)
        if (a->in[k] != b->in[k])
            return 0;
    if (a->kind == FERN_NODE_OP && !fern__pu_attrs_equal(a->op, a->attrs, b->attrs))
        return 0;
    return 1;
}

static int mergeable(const ir_node *n)
{
    if (n->kind == FERN_NODE_OP)
        return !(n->op->flags & FERN_OPF_RANDOM);
    if (n->kind == FERN_NODE_CONST)
        return n->value != NULL;
    return 1;
}

int fern__pass_cse(fern_graph *g)
{
    int cap = 16;
    while (cap < 2 * g->n_nodes)
        cap *= 2;
    int *table = malloc((size_t)cap * sizeof *table);
    uint64_t *hashes = malloc((size_t)(g->n_nodes ? g->n_nodes : 1) * sizeof *hashes);
    char *dead = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1);
    int *repl = fern__pu_repl_new(g);
    if (!table || !hashes || !dead || !repl) {
        free(table);
        free(hashes);
        free(dead);
        free(repl);
        fern_set_error(FERN_ERR_NOMEM, "cse: out of memory");
        return -1;
    }
    for (int k = 0; k < cap; k++)
        table[k] = -1;
    int merged = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        ir_node *n = &g->nodes[i];
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                n->in[k] = fern__pu_resolve(repl, n->in[k]);
        if (!mergeable(n))
            continue;
        uint64_t h = node_hash(g, n);
        hashes[i] = h;
        unsigned slot = (unsigned)(h & (uint64_t)(cap - 1));
        int found = -1;
        while (table[slot] >= 0) {
            int j = table[slot];
            if (hashes[j] == h && nodes_equal(&g->nodes[j], n)) {
                found = j;
                break;
            }
            slot = (slot + 1) & (unsigned)(cap - 1);
        }
        if (found < 0) {
            table[slot] = i;
            continue;
        }
        for (int k = 0; k < n->n_out; k++)
            repl[n->out[k]] = g->nodes[found].out[k];
        dead[i] = 1;
        merged++;
    }
    if (merged) {
        fern__pu_apply_repl(g, repl);
        fern__ir_compact(g, dead);
    }
    free(table);
    free(hashes);
    free(dead);
    free(repl);
    return merged;
}
