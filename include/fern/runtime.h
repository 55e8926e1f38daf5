/*
 * fern/runtime.h — execution modes, functions as values, the tracing jit,
 * structured control flow, and the graph executor.
 *
 * One line switches the mode of the whole program (per thread):
 *     fern_set_mode(FERN_GRAPH_MODE);     or     fern_set_mode(FERN_PYNATIVE_MODE);
 * In pynative mode a fern_fn runs op by op. In graph mode fern_call traces
 * it once per input signature (dtypes and shapes) into the IR, runs the
 * compiler passes, plans memory, caches the result and executes it.
 */
#ifndef FERN_RUNTIME_H
#define FERN_RUNTIME_H

#include "fern/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { FERN_PYNATIVE_MODE = 0, FERN_GRAPH_MODE = 1 } fern_mode;
void fern_set_mode(fern_mode mode);
fern_mode fern_get_mode(void);

/* ---- functions ---------------------------------------------------------- */
/* The body of a function: reads n_in inputs, writes n_out new references
 * (or tensors owned by the current scope) to out. Returns 0, or -1 with an
 * error recorded. It must use only fern ops on its inputs (and on tensors it
 * captures through ud) so it can be traced. */
typedef int (*fern_fn_body)(void *ud, fern_tensor *const *in, fern_tensor **out);

typedef struct fern_fn fern_fn;

/* A function value. The fn keeps `ud` (it never frees it). */
fern_fn *fern_fn_new(fern_fn_body body, void *ud, int n_in, int n_out);
fern_fn *fern_fn_retain(fern_fn *f);
void fern_fn_release(fern_fn *f);
int fern_fn_n_in(const fern_fn *f);
int fern_fn_n_out(const fern_fn *f);
/* A name shown in IR dumps and errors. */
void fern_fn_set_name(fern_fn *f, const char *name);

/* Call f. Outputs are new references registered in the current scope (or
 * owned by the caller with no scope open), like op results. */
fern_status fern_call(fern_fn *f, int n_in, fern_tensor *const *in, int n_out, fern_tensor **out);
/* Single-output convenience. */
fern_tensor *fern_call1(fern_fn *f, int n_in, fern_tensor *const *in);

/* jit(f): in graph mode, calls are traced and compiled once per signature
 * and the cached executable is reused; in pynative mode it just runs f. */
fern_fn *fern_jit(fern_fn *f);

/* Compile statistics of the last compilation of a jitted function. */
typedef struct {
    int n_compiles;           /* signatures compiled so far                 */
    int nodes_traced;         /* nodes in the traced graph                   */
    int nodes_optimized;      /* nodes after the pass pipeline               */
    size_t planned_peak_bytes; /* peak of live intermediate bytes in the plan */
    size_t naive_bytes;        /* sum of all intermediate bytes (no reuse)    */
} fern_jit_stats;
fern_status fern_jit_get_stats(const fern_fn *jitted, fern_jit_stats *out);
/* The optimized IR of the last compiled signature (malloc'ed text). */
char *fern_jit_dump(const fern_fn *jitted);

/* ---- control flow -------------------------------------------------------
 * Run directly in pynative mode; become cond/while/scan nodes with traced
 * subgraphs in graph mode. Tensors captured by the branch bodies are lifted
 * into explicit operands automatically. */

/* pred: a bool (or nonzero-number) scalar tensor. then_fn and else_fn take
 * n_in inputs and return the same number and types of outputs. */
fern_status fern_cond(fern_tensor *pred, fern_fn *then_fn, fern_fn *else_fn, int n_in,
                      fern_tensor *const *in, int n_out, fern_tensor **out);
/* cond_fn(vars) -> bool scalar; body_fn(vars) -> vars (same types).
 * max_iters > 0 bounds the loop (an error if reached); 0 means unbounded. */
fern_status fern_while_loop(fern_fn *cond_fn, fern_fn *body_fn, int n_vars,
                            fern_tensor *const *init, fern_tensor **out, int64_t max_iters);
/* body_fn(carries..., x_t...) -> (carries..., y_t...). xs are sliced along
 * axis 0; ys are stacked along axis 0. n_out = n_carry + number of ys. */
fern_status fern_scan(fern_fn *body_fn, int n_carry, fern_tensor *const *init, int n_xs,
                      fern_tensor *const *xs, int n_out, fern_tensor **out);
/* for i in [lo, hi): vars = body(i, vars), i passed as an i64 scalar. */
fern_status fern_fori_loop(int64_t lo, int64_t hi, fern_fn *body_fn, int n_vars,
                           fern_tensor *const *init, fern_tensor **out);

/* ---- executing graphs -------------------------------------------------- */
/* Run a graph eagerly on concrete inputs (captures are read from their
 * tensors at run time). Writes n_out new references to out. */
fern_status fern_graph_run(const fern_graph *g, int n_in, fern_tensor *const *in, int n_out,
                           fern_tensor **out);

#ifdef __cplusplus
}
#endif
#endif /* FERN_RUNTIME_H */
