/* random ops (placeholder list; filled in by the random family). */
#include "op_def.h"

const fern_op_def *const fern_ops_random[] = {NULL};
