/* The autodiff engine: a tape of op calls (and of structured nodes while
 * tracing) and the backward pass that replays gradient rules. */
#ifndef FERN_AUTODIFF_INTERNAL_H
#define FERN_AUTODIFF_INTERNAL_H

#include "../runtime/runtime_internal.h"
#include "fern/autodiff.h"

typedef struct tape tape;
typedef struct tape_entry tape_entry;

/* Backward of a non-op entry: cotangents of its outputs -> its inputs. */
typedef int (*entry_backward)(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins);

struct tape_entry {
    const fern_op_def *op; /* NULL for structured/custom entries          */
    fern_attr *attrs;
    int n_in, n_out;
    fern_tensor **in, **out; /* retained                                 */
    int *in_id, *out_id;     /* tape ids, -1 = not tracked                */
    entry_backward backward; /* for structured and custom entries         */
    fern_node_kind kind;
    fern_graph *sub[2];
    int n_carry;
    fern_fn *custom_bwd;
};

/* Start recording on this thread (nests: an outer tape keeps recording). */
tape *fern__tape_begin(void);
/* Track t: ops reading it are recorded. Returns its id, or -1. */
int fern__tape_watch(tape *t, fern_tensor *x);
/* Stop recording (restores the hooks that were active at begin). */
void fern__tape_end(tape *t);
/* Cotangents of outputs -> gradients of wrt (zeros where independent).
 * cots[k] NULL means zero. Results are new references (not registered). */
fern_status fern__tape_backward(tape *t, int n_out, fern_tensor *const *outs,
                                fern_tensor *const *cots, int n_wrt, fern_tensor *const *wrt,
                                fern_tensor **grads);
void fern__tape_free(tape *t);
/* Append an entry whose backward is custom (structured nodes, custom_vjp).
 * Takes references to in/out. Returns the entry or NULL if no input is
 * tracked (nothing to differentiate). */
tape_entry *fern__tape_record_custom(tape *t, int n_in, fern_tensor *const *in, int n_out,
                                     fern_tensor *const *out, entry_backward bw);

/* Record a custom entry on every active tape (innermost first) that
 * tracks one of the inputs; each entry calls bw with bwd attached. */
void fern__tapes_record_custom(int n_in, fern_tensor *const *in, int n_out,
                               fern_tensor *const *out, entry_backward bw, fern_fn *bwd);

/* Structured nodes (control_grad.c). */
int fern__cond_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins);
int fern__while_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins);
int fern__scan_backward(tape_entry *e, fern_tensor *const *gouts, fern_tensor **gins);
/* vjp of graph g as a function: (g's inputs..., one cotangent per output)
 * -> one gradient per input. */
fern_fn *fern__graph_vjp_fn(const fern_graph *g);

#endif
