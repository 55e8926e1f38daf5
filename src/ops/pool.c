/* pool ops (placeholder list; filled in by the pool family). */
#include "op_def.h"

const fern_op_def *const fern_ops_pool[] = {NULL};
