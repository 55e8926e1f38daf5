/* Dead-code elimination: drop nodes none of whose outputs reach a graph
 * output. Ops are pure (random ops included: an unused draw is not needed)
 * except side-effect ops (assign), which are always kept with their inputs. */
#include <stdlib.h>

#include "passes.h"

int fern__pass_dce(fern_graph *g)
{
    char *live = calloc((size_t)(g->n_values ? g->n_values : 1), 1);
    char *dead = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), 1);
    if (!live || !dead) {
        free(live);
        free(dead);
        fern_set_error(FERN_ERR_NOMEM, "dce: out of memory");
        return -1;
    }
    for (int k = 0; k < g->n_outputs; k++)
        live[g->outputs[k]] = 1;
    int removed = 0;
    for (int i = g->n_nodes - 1; i >= 0; i--) {
        const ir_node *n = &g->nodes[i];
        int used = n->kind == FERN_NODE_OP && (n->op->flags & FERN_OPF_SIDE_EFFECT);
        for (int k = 0; k < n->n_out; k++)
            used |= live[n->out[k]];
        if (!used) {
            dead[i] = 1;
            removed++;
            continue;
        }
        for (int k = 0; k < n->n_in; k++)
            if (n->in[k] >= 0)
                live[n->in[k]] = 1;
    }
    if (removed)
        fern__ir_compact(g, dead);
    free(live);
    free(dead);
    return removed;
}
