/* Internal layout of fern's IR (see include/fern/ir.h). Passes and the
 * executor work on these structures directly. */
#ifndef FERN_IR_INTERNAL_H
#define FERN_IR_INTERNAL_H

#include "../ops/op_def.h"
#include "fern/ir.h"

typedef struct {
    fern_dtype dtype;
    int ndim;
    int64_t shape[FERN_MAX_DIMS]; /* -1 unknown, FERN_DIM_SYM(k) symbol k */
    int node;                     /* producing node, -1 for a parameter    */
    int index;                    /* output index, or parameter index      */
} ir_value;

typedef struct {
    fern_node_kind kind;
    const fern_op_def *op; /* FERN_NODE_OP                            */
    fern_attr *attrs;      /* op->n_attrs entries, schema order; owned */
    int n_in;
    int *in;               /* value ids; -1 = absent optional input    */
    int n_out;
    int *out;
    fern_graph *sub[2];
    int n_carry;           /* FERN_NODE_SCAN                           */
    fern_tensor *value;    /* FERN_NODE_CONST (a reference)            */
    int pinned_seed;       /* random op whose seed/offset the caller fixed;
                              otherwise it draws afresh at every run   */
} ir_node;

struct fern_graph {
    fern_module *module;
    char *name;
    ir_value *values;
    int n_values, cap_values;
    ir_node *nodes;
    int n_nodes, cap_nodes;
    int *params;
    fern_tensor **captures; /* per parameter: bound tensor or NULL   */
    char *is_capture;       /* per parameter: 1 if a capture (bound or
                               not yet: a parsed graph has no tensors) */
    int n_params, cap_params;
    int *outputs;
    int n_outputs;
};

struct fern_module {
    fern_graph **graphs;
    int n_graphs, cap_graphs;
    char **symbols;
    int n_symbols;
    char **strings; /* interned attribute strings */
    int n_strings, cap_strings;
};

const char *fern__ir_intern(fern_module *m, const char *s);
/* Add a value of the given type; returns its id or -1. */
int fern__ir_add_value(fern_graph *g, fern_dtype dt, int ndim, const int64_t *shape, int node,
                       int index);
/* Append a node; its `out` values must be created by the caller. Takes
 * ownership of nothing: in, attrs are copied. Returns the node index. */
int fern__ir_add_node(fern_graph *g, fern_node_kind kind, const fern_op_def *op,
                      const fern_attr *attrs, int n_in, const int *in, int n_out);
/* Infer the types of op outputs for inputs given by value id (handles
 * symbolic dims by probing). */
int fern__ir_infer(fern_graph *g, const fern_op_def *op, const fern_attr *attrs, int n_in,
                   const int *in, fern_op_call *c);
/* Add an op node with attributes in schema order; output ids to out. */
int fern__ir_add_op_bound(fern_graph *g, const fern_op_def *op, const fern_attr *attrs, int n_in,
                          const int *in, int n_out, int *out);
/* Replace every use of value `from` by `to` (node inputs and outputs). */
void fern__ir_replace_uses(fern_graph *g, int from, int to);
/* Drop nodes marked in `dead` (n_nodes flags) and unused values; keeps
 * value ids stable is NOT guaranteed: ids are renumbered densely. */
void fern__ir_compact(fern_graph *g, const char *dead);
size_t fern__ir_value_bytes(const fern_graph *g, int v);

#endif
