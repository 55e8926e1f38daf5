/* Helpers of the compiler-pass tests (test_passes.c, test_fusion.c). They
 * fail through cmocka, so a test binary including this includes cmocka.h
 * first. */
#ifndef FERN_TEST_PASS_CHECK_H
#define FERN_TEST_PASS_CHECK_H

#include "compiler/passes.h"
#include "fern/fern.h"
#include "ir/ir_internal.h"

typedef int (*pass_fn)(fern_graph *g);

/* The module of `text`, parsed and verified. */
fern_module *parse_ok(const char *text);
/* A random tensor for a value type; symbolic dims become 3. Floats are
 * uniform in [lo, hi]; integers in [-5, 5]; bools 0/1. */
fern_tensor *random_for(fern_dtype dt, int nd, const int64_t *dims, double lo, double hi);
/* Random inputs for g's plain (non-capture) parameters into in; returns how many. */
int make_inputs(const fern_graph *g, fern_tensor **in, double lo, double hi);
void run_graph(const fern_graph *g, int n_in, fern_tensor **in, fern_tensor **out);
/* Same dtype and shape, elements equal within rtol (NaN equals NaN). */
void assert_close_t(const fern_tensor *a, const fern_tensor *b, double rtol);
void release_all(fern_tensor **t, int n);
void assert_text(const char *got, const char *want);
/* The round trip of a rewritten module through its text form. */
void assert_reparses(const fern_module *m);

/* Parse `before`, run it, apply `pass` to @main (expecting `changes`
 * changes), compare the printed @main with `after`, run it again on the
 * same inputs (results within rtol), check the fixpoint and the text round
 * trip. Inputs are uniform in [lo, hi]. `bind` (optional) binds captures. */
void check_pass_ex(const char *before, pass_fn pass, int changes, const char *after, double lo,
                   double hi, double rtol, void (*bind)(fern_module *));
/* check_pass_ex with inputs in [-2, 2], exact results and no captures. */
void check_pass(const char *before, pass_fn pass, int changes, const char *after);

/* f called in pynative and in graph mode on the same inputs: results within rtol. */
void both_modes(fern_fn *f, int n_in, fern_tensor **in, int n_out, double rtol);
/* The compiled graph of a jitted function, parsed back from its dump. */
fern_module *compiled_module(const fern_fn *f);

#endif
