/* norm ops (placeholder list; filled in by the norm family). */
#include "op_def.h"

const fern_op_def *const fern_ops_norm[] = {NULL};
