/*
 * fern/nn.h — Cells: layers with named parameters, buffers, submodules and
 * a train/eval mode; initializers; the layer library; losses as cells.
 *
 * A cell owns its parameters (tensors), buffers (non-trained state such as
 * batch norm's running mean) and children. Names are hierarchical:
 * "layer1.0.conv1.weight". A cell's forward is an ordinary function of
 * tensors written with fern ops, so it runs in pynative mode, traces in
 * graph mode and differentiates (fern_value_and_grad_params on the cell's
 * parameters).
 *
 * Ownership: constructors return a cell with one reference (fern_cell_release
 * frees it); add_child/add_param/add_buffer take a reference of their own.
 * fern_cell_call follows the op rules (a new reference, scope-owned).
 */
#ifndef FERN_NN_H
#define FERN_NN_H

#include <stdio.h>

#include "fern/autodiff.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fern_cell fern_cell;

/* forward(self, inputs) -> outputs; returns 0 or -1 with an error set. */
typedef int (*fern_cell_forward_fn)(fern_cell *self, int n_in, fern_tensor *const *in, int n_out,
                                    fern_tensor **out);

/* ---- the cell abstraction ------------------------------------------------ */
/* A new cell of the given type (shown by summaries). `state` is the layer's
 * private data (freed with free_state, which may be NULL). */
fern_cell *fern_cell_new(const char *type_name, fern_cell_forward_fn forward, int n_in, int n_out,
                         void *state, void (*free_state)(void *));
fern_cell *fern_cell_retain(fern_cell *c);
void fern_cell_release(fern_cell *c);
void *fern_cell_state(const fern_cell *c);
const char *fern_cell_type(const fern_cell *c);
int fern_cell_n_in(const fern_cell *c);
int fern_cell_n_out(const fern_cell *c);

fern_status fern_cell_add_param(fern_cell *c, const char *name, fern_tensor *t);
fern_status fern_cell_add_buffer(fern_cell *c, const char *name, fern_tensor *t);
fern_status fern_cell_add_child(fern_cell *c, const char *name, fern_cell *child);
/* Direct members by local name (NULL if absent). */
fern_tensor *fern_cell_param(const fern_cell *c, const char *name);
fern_tensor *fern_cell_buffer(const fern_cell *c, const char *name);
fern_cell *fern_cell_child(const fern_cell *c, const char *name);
fern_cell *fern_cell_child_at(const fern_cell *c, int i);
int fern_cell_n_children(const fern_cell *c);

/* All parameters (or buffers) of the tree in a stable order (depth first,
 * registration order), with hierarchical names. Writes up to `cap` entries
 * (tensors are borrowed; names point into the cells) and returns the total
 * count. Call with cap 0 to size the arrays. */
int fern_cell_parameters(const fern_cell *c, fern_tensor **params, const char **names, int cap);
int fern_cell_buffers(const fern_cell *c, fern_tensor **bufs, const char **names, int cap);
/* Find a parameter or buffer by its hierarchical name. */
fern_tensor *fern_cell_find(const fern_cell *c, const char *full_name);
int64_t fern_cell_param_count(const fern_cell *c); /* number of scalars */

/* Train/eval mode for the whole tree (dropout, batch norm). */
void fern_cell_set_training(fern_cell *c, int training);
int fern_cell_training(const fern_cell *c);

/* Run the forward. */
fern_status fern_cell_call(fern_cell *c, int n_in, fern_tensor *const *in, int n_out,
                           fern_tensor **out);
fern_tensor *fern_cell_call1(fern_cell *c, fern_tensor *x);
/* The cell as a function value (for fern_jit, fern_grad, ...). */
fern_fn *fern_cell_as_fn(fern_cell *c);

/* A table of the tree: name, type, parameter shapes and counts, totals. */
void fern_cell_summary(const fern_cell *c, FILE *out);

/* ---- initializers (in place, from fern's seeded generator) --------------- */
fern_status fern_init_zeros(fern_tensor *t);
fern_status fern_init_ones(fern_tensor *t);
fern_status fern_init_constant(fern_tensor *t, double value);
fern_status fern_init_normal(fern_tensor *t, double mean, double std);
fern_status fern_init_uniform(fern_tensor *t, double low, double high);
fern_status fern_init_truncated_normal(fern_tensor *t, double mean, double std, double a, double b);
/* fan_in/fan_out as torch computes them (dims 0/1 times the receptive field). */
fern_status fern_init_xavier_uniform(fern_tensor *t, double gain);
fern_status fern_init_xavier_normal(fern_tensor *t, double gain);
/* He (Kaiming) init; a: negative slope of the rectifier; fan_in mode. */
fern_status fern_init_he_uniform(fern_tensor *t, double a);
fern_status fern_init_he_normal(fern_tensor *t, double a);

/* ---- containers ---------------------------------------------------------- */
/* Runs children in order ("0", "1", ...). Takes references to the cells. */
fern_cell *fern_sequential(int n, fern_cell *const *cells);
fern_status fern_sequential_append(fern_cell *seq, fern_cell *c);

#ifdef __cplusplus
}
#endif
#endif /* FERN_NN_H */
