/* fused ops (placeholder list; filled in by the fusion pass work). */
#include "op_def.h"

const fern_op_def *const fern_ops_fused[] = {NULL};
