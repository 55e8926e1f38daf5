/* Helpers shared by the compiler passes: use counts, value replacement
 * maps, in-place node rewriting, topological re-sorting, type equality,
 * attribute comparison and the recognition of "splat" constants (a
 * constant, or a zeros/ones/full node, holding one value everywhere). */
#ifndef FERN_PASS_UTIL_H
#define FERN_PASS_UTIL_H

#include "passes.h"

/* Errors raised while trying a rewrite that is then abandoned must not
 * leak: remember whether one was pending, and clear what the attempt
 * recorded unless it was. */
static inline int fern__pu_err_begin(void) { return fern_last_status() != FERN_OK; }
static inline void fern__pu_err_end(int had_error)
{
    if (!had_error)
        fern_clear_error();
}

/* The node producing value v (NULL for a parameter). */
static inline ir_node *fern__pu_producer(const fern_graph *g, int v)
{
    if (v < 0 || v >= g->n_values || g->values[v].node < 0)
        return NULL;
    return &g->nodes[g->values[v].node];
}

/* 1 if the node is an OP node applying the registry op named `name`. */
int fern__pu_is_op(const ir_node *n, const char *name);

/* 1 if a and b have the same dtype and exactly the same dims; an unknown
 * dim (-1) is equal to nothing (it may differ at run time). */
int fern__pu_same_type(const fern_graph *g, int a, int b);
/* 1 if every dim of v is known (concrete or symbolic). */
int fern__pu_known_dims(const fern_graph *g, int v);
/* Number of elements of v if all its dims are concrete, else -1. */
int64_t fern__pu_numel(const fern_graph *g, int v);

/* Attributes of op: equal field by field for the schema kinds (floats
 * bitwise, strings by content), and a hash consistent with that. */
int fern__pu_attrs_equal(const fern_op_def *op, const fern_attr *a, const fern_attr *b);
uint64_t fern__pu_attrs_hash(const fern_op_def *op, const fern_attr *a);
uint64_t fern__pu_mix(uint64_t h, uint64_t v);

/* If value v is a splat constant, store its value (as held in v's dtype,
 * read back as double) and return 1; else 0. */
int fern__pu_splat(const fern_graph *g, int v, double *value);

/* Replacement map over value ids: repl[v] == v unless v was replaced. */
int *fern__pu_repl_new(const fern_graph *g);
static inline int fern__pu_resolve(const int *repl, int v)
{
    while (v >= 0 && repl[v] != v)
        v = repl[v];
    return v;
}
/* Apply repl to every node input and graph output. */
void fern__pu_apply_repl(fern_graph *g, const int *repl);

/* Release what a node owns (inputs, outputs, attributes, constant). */
void fern__pu_node_release(ir_node *n);

/* Turn node i into an application of op (attrs in schema order, n_in
 * inputs) in place, keeping its output value ids. The new op's inferred
 * output types must agree with the node's output values (unknown dims are
 * refined). Returns 0, or -1 (the node is unchanged; any error recorded by
 * the attempt is cleared unless one was pending before). */
int fern__pu_set_op(fern_graph *g, int i, const fern_op_def *op, const fern_attr *attrs, int n_in,
                    const int *in);

/* Turn node i (which must have exactly one output) into a CONST node
 * holding t (a new reference is taken). */
void fern__pu_set_const(fern_graph *g, int i, fern_tensor *t);

/* Reorder the nodes topologically, keeping the current order where it is
 * already valid, then renumber values (fern__ir_compact). Returns 0, or -1
 * with an error (a cycle or out of memory). */
int fern__pu_toposort(fern_graph *g);

/* Binary-op identities need the scalar type of results. */
static inline int fern__pu_is_float(fern_dtype dt) { return fern_dtype_is_float(dt); }

#endif
