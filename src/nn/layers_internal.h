/* Shared helpers of the layer library (layers.c, conv_layers.c,
 * norm_layers.c, loss_cells.c) and the model zoo. Not a public header. */
#ifndef FERN_LAYERS_INTERNAL_H
#define FERN_LAYERS_INTERNAL_H

#include <stdint.h>

#include "fern/layers.h"

/* Every layer's state struct starts with this head: a description of the
 * layer's configuration such as "Linear(in_features=5, out_features=4,
 * bias=1)" that errors quote. */
typedef struct {
    char desc[256];
} fern__layer_head;

/* A new cell whose state is a zeroed block of state_size bytes (starting
 * with a fern__layer_head whose desc is formatted from fmt). */
fern_cell *fern__layer_new(const char *type, fern_cell_forward_fn forward, int n_in,
                           size_t state_size, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/* Records FERN_ERR_INVALID "<desc>: <message>" and returns -1. */
int fern__layer_err(const fern_cell *self, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* A new parameter (buffer) of the given dtype and shape registered under
 * name; the cell holds the only reference. Returns it (borrowed) or NULL
 * with an error set. Contents are uninitialized. */
fern_tensor *fern__layer_add_param(fern_cell *c, const char *name, fern_dtype dt, int ndim,
                                   const int64_t *shape);
fern_tensor *fern__layer_add_buffer(fern_cell *c, const char *name, fern_dtype dt, int ndim,
                                    const int64_t *shape);

/* Input checks for forwards: x non-NULL, rank in [min_nd, max_nd], and (when
 * dt >= 0) dtype dt. Return 0 or -1 with an error naming the layer. */
int fern__layer_check(const fern_cell *self, const fern_tensor *x, int min_nd, int max_nd,
                      int dt, const char *expected);

#endif /* FERN_LAYERS_INTERNAL_H */
