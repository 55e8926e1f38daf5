/*
 * fern/ir.h — fern's graph IR: typed, SSA, functional.
 *
 * A module holds named graphs. A graph has parameters, nodes in topological
 * order and outputs. Every value has a dtype and a shape; a dimension may be
 * symbolic (a named size such as N, written as a name in the text form).
 * A node applies a registry op (with its attributes) or a structured
 * construct: call, cond, while, scan, whose bodies are other graphs of the
 * module. Graphs reference no outside state except "captures": parameters
 * bound by reference to a live tensor (a weight read at every run).
 *
 * Text form (printer and parser round-trip exactly):
 *
 *   graph @main(%x: f32[N,4], %w: f32[4,3]) -> (f32[N,3]) {
 *     %0 = matmul(%x, %w)
 *     %1 = relu(%0)
 *     %2 = mul(%1, %c) ...
 *     return %1
 *   }
 *
 * Ownership: a module owns its graphs; graphs own their values, nodes,
 * constants (tensor references) and strings.
 */
#ifndef FERN_IR_H
#define FERN_IR_H

#include "fern/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fern_module fern_module;
typedef struct fern_graph fern_graph;

/* Negative dimension values denote symbols: FERN_DIM_SYM(k) is symbol k of
 * the module (see fern_module_symbol). */
#define FERN_DIM_SYM(k) (-2 - (int64_t)(k))
#define FERN_DIM_IS_SYM(d) ((d) <= -2)
#define FERN_DIM_SYM_INDEX(d) ((int)(-2 - (d)))

typedef enum {
    FERN_NODE_OP = 0, /* a registry op                                        */
    FERN_NODE_CALL,   /* sub[0](inputs...)                                   */
    FERN_NODE_COND,   /* inputs: pred, operands...; sub[0] then, sub[1] else  */
    FERN_NODE_WHILE,  /* inputs: loop vars; sub[0] cond(vars)->bool, sub[1] body(vars)->vars */
    FERN_NODE_SCAN,   /* inputs: carries..., xs...; attr n_carry; sub[0] body(carries, x_t...)
                         -> (carries, y_t...); outputs: final carries, stacked ys */
    FERN_NODE_CONST   /* no inputs; one output holding a constant tensor       */
} fern_node_kind;

/* ---- modules ----------------------------------------------------------- */
fern_module *fern_module_new(void);
void fern_module_free(fern_module *m);
/* Symbols of the module ("N", "T"...): returns the index, adding it if new. */
int fern_module_symbol(fern_module *m, const char *name);
const char *fern_module_symbol_name(const fern_module *m, int index);
int fern_module_graph_count(const fern_module *m);
fern_graph *fern_module_graph(const fern_module *m, int i);
fern_graph *fern_module_find_graph(const fern_module *m, const char *name);
/* The entry graph: the one named "main", else the first. */
fern_graph *fern_module_main(const fern_module *m);

/* ---- building graphs --------------------------------------------------- */
/* Value ids are small integers local to a graph. */
fern_graph *fern_graph_new(fern_module *m, const char *name);
const char *fern_graph_name(const fern_graph *g);
int fern_graph_add_param(fern_graph *g, fern_dtype dt, int ndim, const int64_t *shape);
/* A parameter bound by reference to a live tensor (read at each run). */
int fern_graph_add_capture(fern_graph *g, fern_tensor *t);
/* A constant (the graph keeps a reference to t). */
int fern_graph_add_const(fern_graph *g, fern_tensor *t);
/* Apply a registry op: infers output types (symbolic dims allowed where the
 * op's rule permits) and writes n_out output value ids to out. Attributes
 * are given by name; unnamed ones take schema defaults. Returns 0 or -1. */
int fern_graph_add_op(fern_graph *g, const char *op, int n_in, const int *in, int n_attrs,
                      const char *const *attr_names, const fern_attr *attrs, int n_out,
                      int *out);
/* Structured nodes: sub graphs must belong to the same module. */
int fern_graph_add_call(fern_graph *g, fern_graph *callee, int n_in, const int *in, int n_out,
                        int *out);
int fern_graph_add_cond(fern_graph *g, int pred, fern_graph *then_g, fern_graph *else_g,
                        int n_in, const int *in, int n_out, int *out);
int fern_graph_add_while(fern_graph *g, fern_graph *cond_g, fern_graph *body_g, int n_in,
                         const int *in, int n_out, int *out);
int fern_graph_add_scan(fern_graph *g, fern_graph *body_g, int n_carry, int n_in, const int *in,
                        int n_out, int *out);
int fern_graph_set_outputs(fern_graph *g, int n, const int *values);

int fern_graph_param_count(const fern_graph *g);
int fern_graph_output_count(const fern_graph *g);
int fern_graph_node_count(const fern_graph *g);
int fern_graph_value_count(const fern_graph *g);
/* Count of nodes applying the named op (NULL: all nodes), for tests. */
int fern_graph_count_op(const fern_graph *g, const char *op);
/* Type of a value: dtype and shape (shape entries may be symbolic). */
fern_dtype fern_graph_value_dtype(const fern_graph *g, int v);
int fern_graph_value_shape(const fern_graph *g, int v, int64_t *shape);

/* ---- text form, verification ------------------------------------------- */
/* Returns a malloc'ed string (caller frees). */
char *fern_module_print(const fern_module *m);
char *fern_graph_print(const fern_graph *g);
/* Parse a module from text; NULL with an error naming line and column. */
fern_module *fern_module_parse(const char *text);
/* Check SSA form, types against op inference, subgraph signatures. */
fern_status fern_module_verify(const fern_module *m);
fern_status fern_graph_verify(const fern_graph *g);

#ifdef __cplusplus
}
#endif
#endif /* FERN_IR_H */
