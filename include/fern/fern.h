/* fern — an all-scenario deep-learning framework in C. The umbrella header:
 * include this one. Layers: core (tensors, memory, errors), ops (the op
 * library), ir (graphs), runtime (modes, functions, jit, control flow). */
#ifndef FERN_H
#define FERN_H

#include "fern/core.h"
#include "fern/ops.h"
#include "fern/data.h"
#include "fern/record.h"
#include "fern/ir.h"
#include "fern/runtime.h"
#include "fern/autodiff.h"
#include "fern/nn.h"
#include "fern/layers.h"
#include "fern/models.h"
#include "fern/seq_layers.h"
#include "fern/seq_models.h"
#include "fern/io.h"
#include "fern/optim.h"
#include "fern/train.h"

#endif
