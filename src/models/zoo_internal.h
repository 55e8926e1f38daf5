/* Helpers shared by the model zoo's files. Not a public header. */
#ifndef FERN_ZOO_INTERNAL_H
#define FERN_ZOO_INTERNAL_H

#include "../nn/layers_internal.h"
#include "fern/models.h"

/* Adds child under name and drops the caller's reference to it (so the
 * parent holds the only one). Returns the child (borrowed) or NULL; a NULL
 * child (a failed constructor) is passed through as a failure. */
static inline fern_cell *fern__zoo_adopt(fern_cell *parent, const char *name, fern_cell *child)
{
    if (!parent || !child) {
        fern_cell_release(child);
        return NULL;
    }
    fern_status st = fern_cell_add_child(parent, name, child);
    fern_cell_release(child);
    return st == FERN_OK ? child : NULL;
}

#endif /* FERN_ZOO_INTERNAL_H */
