/* Copy a strided view (any strides, negative ones included: a flip) into a
 * contiguous tensor of its shape and dtype. Dims merge where the view
 * allows, then one of three loops: rows that run forward or backward in
 * memory (memcpy / a reversed copy), a blocked 2-D transpose when the
 * innermost dim is strided but another has unit stride (the flip of a
 * permuted conv weight), else fern__strided_copy. A row's position comes
 * from an odometer, not divisions per row as in fern__strided_copy, which
 * costs more than the copy for short rows. Split over fern's pool. */
#ifndef FERN_CPU_COPY_VIEW_H
#define FERN_CPU_COPY_VIEW_H

#include "../../core/internal.h"

void fern__copy_view(const fern_tensor *src, fern_tensor *dst);

#endif
