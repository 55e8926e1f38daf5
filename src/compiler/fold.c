/* Constant folding: an op node whose inputs are all constants is run once,
 * now, and becomes constant nodes holding its results.
 *
 * Not folded: random ops (each run draws anew), structured nodes, nodes
 * whose output types are not fully concrete, and nodes whose results would
 * bloat the graph: more than FOLD_MAX_ELEMS elements in all, or more than
 * FOLD_SMALL_ELEMS elements in all with an output larger than all their
 * constant inputs together (so zeros([1000,1000]) or expand(scalar) stay
 * computed at run time instead of becoming megabytes of constant; a small
 * full([4]) or the sort of a big constant is folded). A node whose kernel fails (e.g. integer division by zero) is
 * left alone: the error belongs to the run, not to the compiler.
 *
 * Folded results never share storage with the input constants (views are
 * copied), so the inputs can be dropped by dead-code elimination. Folding
 * runs the kernels with the dispatch hooks cleared (no tracer, no autodiff
 * tape) and outside any scope. */
#include <stdlib.h>
#include <string.h>

#include "pass_util.h"

#define FOLD_MAX_ELEMS ((int64_t)1 << 20)
#define FOLD_SMALL_ELEMS 1024

static int is_const_value(const fern_graph *g, int v)
{
    const ir_node *p = fern__pu_producer(g, v);
    return p && p->kind == FERN_NODE_CONST && p->value;
}

/* A contiguous tensor of its own (not sharing storage with any input). */
static fern_tensor *own(fern_tensor *r, fern_tensor *const *ins, int n_in)
{
    int shares = !fern_tensor_is_contiguous(r);
    for (int k = 0; k < n_in && !shares; k++)
        if (ins[k] && fern_tensor_shares_storage(r, ins[k]))
            shares = 1;
    if (!shares)
        return r;
    fern_tensor *c = fern__tensor_alloc(r->dtype, r->ndim, r->shape, FERN_CPU);
    if (c)
        fern__strided_copy(r, c);
    fern_release(r);
    return c;
}

/* Evaluate node i; on success writes its n_out results (owned). */
static int evaluate(fern_graph *g, int i, fern_tensor **res)
{
    const ir_node *n = &g->nodes[i];
    fern_tensor *ins[FERN_MAX_INPUTS];
    for (int k = 0; k < n->n_in; k++)
        ins[k] = n->in[k] >= 0 ? fern__pu_producer(g, n->in[k])->value : NULL;
    int had = fern__pu_err_begin();
    fern_dispatch_hooks saved = fern__set_dispatch_hooks((fern_dispatch_hooks){0});
    fern__scope_detach(+1);
    int rc = fern__op_run(n->op, n->n_in, ins, n->attrs, n->n_out, res);
    fern__scope_detach(-1);
    fern__set_dispatch_hooks(saved);
    if (rc) {
        fern__pu_err_end(had);
        return -1;
    }
    for (int k = 0; k < n->n_out; k++) {
        const ir_value *v = &g->values[n->out[k]];
        int ok = res[k] && res[k]->dtype == v->dtype && res[k]->ndim == v->ndim;
        for (int d = 0; ok && d < v->ndim; d++)
            ok = res[k]->shape[d] == v->shape[d];
        if (ok) {
            res[k] = own(res[k], ins, n->n_in);
            ok = res[k] != NULL;
        }
        if (!ok) {
            for (int j = 0; j < n->n_out; j++) {
                fern_release(res[j]);
                res[j] = NULL;
            }
            fern__pu_err_end(had);
            return -1;
        }
    }
    return 0;
}

static int foldable(const fern_graph *g, const ir_node *n)
{
    if (n->kind != FERN_NODE_OP || (n->op->flags & FERN_OPF_RANDOM) || n->n_out > FERN_MAX_OUTPUTS)
        return 0;
    int64_t in_elems = 0, out_elems = 0, max_out = 0;
    for (int k = 0; k < n->n_in; k++) {
        if (n->in[k] < 0)
            continue;
        if (!is_const_value(g, n->in[k]))
            return 0;
        in_elems += fern_tensor_numel(fern__pu_producer(g, n->in[k])->value);
    }
    for (int k = 0; k < n->n_out; k++) {
        int64_t e = fern__pu_numel(g, n->out[k]);
        if (e < 0)
            return 0;
        out_elems += e;
        if (e > max_out)
            max_out = e;
    }
    if (out_elems > FOLD_MAX_ELEMS)
        return 0;
    if (out_elems > FOLD_SMALL_ELEMS && max_out > in_elems)
        return 0;
    return 1;
}

int fern__pass_fold(fern_graph *g)
{
    int folded = 0;
    int *pairs = NULL; /* (old value, new constant value) for outputs 1.. */
    int n_pairs = 0, cap_pairs = 0;
    int n0 = g->n_nodes, rc = 0;
    for (int i = 0; i < n0 && rc == 0; i++) {
        if (!foldable(g, &g->nodes[i]))
            continue;
        fern_tensor *res[FERN_MAX_OUTPUTS] = {0};
        if (evaluate(g, i, res))
            continue;
        int n_out = g->nodes[i].n_out;
        /* outputs 1.. become constant nodes of their own (appended, moved
         * into place by the topological sort below) */
        for (int k = 1; k < n_out; k++) {
            if (rc == 0 && n_pairs + 1 > cap_pairs) {
                cap_pairs = cap_pairs ? cap_pairs * 2 : 8;
                int *np = realloc(pairs, (size_t)cap_pairs * 2 * sizeof *np);
                if (!np) {
                    fern_set_error(FERN_ERR_NOMEM, "fold: out of memory");
                    rc = -1;
                } else {
                    pairs = np;
                }
            }
            int old = g->nodes[i].out[k];
            int v = rc == 0 ? fern_graph_add_const(g, res[k]) : -1;
            if (v < 0) {
                rc = -1;
            } else {
                pairs[2 * n_pairs] = old;
                pairs[2 * n_pairs + 1] = v;
                n_pairs++;
            }
            fern_release(res[k]);
        }
        if (rc == 0) {
            fern__pu_set_const(g, i, res[0]);
            folded++;
        }
        fern_release(res[0]);
    }
    if (rc == 0 && n_pairs) {
        int *repl = fern__pu_repl_new(g);
        if (!repl) {
            rc = -1;
        } else {
            for (int k = 0; k < n_pairs; k++)
                repl[pairs[2 * k]] = pairs[2 * k + 1];
            fern__pu_apply_repl(g, repl);
            free(repl);
            rc = fern__pu_toposort(g);
        }
    }
    free(pairs);
    return rc ? -1 : folded;
}
