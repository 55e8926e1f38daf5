/* nn ops (placeholder list; filled in by the nn family). */
#include "op_def.h"

const fern_op_def *const fern_ops_nn[] = {NULL};
