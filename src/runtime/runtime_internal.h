/* Internal interface of the runtime layer: function values, tracing, the
 * compiled-graph cache and the executor. */
#ifndef FERN_RUNTIME_INTERNAL_H
#define FERN_RUNTIME_INTERNAL_H

#include "../ir/ir_internal.h"
#include "fern/runtime.h"

typedef struct compiled compiled;

struct fern_fn {
    atomic_int refcount;
    fern_fn_body body;
    void *ud;
    void (*free_ud)(void *ud); /* for derived functions (jit, grad, ...) */
    int n_in, n_out;
    char name[64];
    compiled *cache;           /* graph-mode executables, one per signature */
    fern_fn *derived[3];       /* autodiff's compiled wrappers (vjp, vjp of ones, jvp) */
    fern_jit_stats stats;
};

/* A derived function owning its ud. */
fern_fn *fern__fn_new_owned(fern_fn_body body, void *ud, void (*free_ud)(void *), int n_in,
                            int n_out, const char *name);
/* Run f's body now (no compilation), inside its own scope. */
fern_status fern__fn_run_body(fern_fn *f, int n_in, fern_tensor *const *in, int n_out,
                              fern_tensor **out);
void fern__fn_free_cache(fern_fn *f);

/* A structured node just emitted while tracing, as the record_node hook
 * sees it: every operand (cond: the predicate first) and every output of
 * the node (loops include the lifted pass-through values). */
struct fern_struct_call {
    fern_node_kind kind;
    fern_graph *sub[2];
    int n_carry; /* scan: carries incl. lifted ones; while: max_iters */
    int n_in;
    fern_tensor *const *in;
    int n_out;
    fern_tensor *const *out;
};

/* ---- tracing ---------------------------------------------------------- */
typedef struct trace_ctx trace_ctx;
/* 1 if this thread is tracing. */
int fern__tracing(void);
/* Trace f's body into a new graph `name` of module m, with parameters
 * typed like `in` (which may be concrete or symbolic). On return the graph's
 * parameters are: the inputs, then any lifted outer values (listed in
 * lifted_out, new references) and captures; outputs are f's outputs. */
fern_graph *fern__trace_fn(fern_module *m, const char *name, fern_fn *f, int n_in,
                           fern_tensor *const *in, int n_out, fern_tensor ***lifted_out,
                           int *n_lifted);
/* Value id in the graph currently being traced for tensor t (lifting or
 * capturing it as needed); -1 on error. */
int fern__trace_value_of(fern_tensor *t);
/* A new symbolic tensor for value v of the graph being traced. */
fern_tensor *fern__trace_symbolic(int v);
fern_graph *fern__trace_graph(void);

/* ---- compilation and execution ---------------------------------------- */
/* A function value that runs graph g (its plain parameters as inputs). */
fern_fn *fern__graph_fn(const fern_graph *g);
/* Run the pass pipeline on the module's main graph (FERN_DUMP_IR=dir dumps
 * the IR after each pass). */
fern_status fern__compile_module(fern_module *m, const char *fn_name);
/* Memory plan figures for a graph: peak of live intermediate bytes under
 * the liveness-based plan, and the naive sum. */
void fern__plan_memory(const fern_graph *g, size_t *planned_peak, size_t *naive);

#endif
