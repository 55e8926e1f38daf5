/* fern — an all-scenario deep-learning framework in C. The umbrella header:
 * include this one. Layers: core (tensors, memory, errors), ops (the op
 * library); graph mode, autodiff, nn, data and train layers build on them. */
#ifndef FERN_H
#define FERN_H

#include "fern/core.h"
#include "fern/ops.h"

#endif
