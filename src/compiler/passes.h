/* The compiler's passes over fern's IR. Each pass rewrites one graph in
 * place and returns the number of changes it made, or -1 with an error. */
#ifndef FERN_PASSES_H
#define FERN_PASSES_H

#include "../ir/ir_internal.h"

typedef struct {
    const char *name;
    int (*run)(fern_graph *g);
} fern_pass;

int fern__pass_infer(fern_graph *g);    /* re-infer value types, check consistency */
int fern__pass_fold(fern_graph *g);     /* constant folding                        */
int fern__pass_simplify(fern_graph *g); /* algebraic simplification                */
int fern__pass_cse(fern_graph *g);      /* common-subexpression elimination        */
int fern__pass_dce(fern_graph *g);      /* dead-code elimination                   */
int fern__pass_inline(fern_graph *g);   /* inline call nodes                       */
int fern__pass_fuse(fern_graph *g);     /* elementwise fusion                      */
int fern__pass_fuse_grad(fern_graph *g); /* gradient ops around relu + max pooling  */

/* Run the standard pipeline on every graph of the module. */
fern_status fern__run_pipeline(fern_module *m, const char *dump_name);

#endif
