/* index ops (placeholder list; filled in by the index family). */
#include "op_def.h"

const fern_op_def *const fern_ops_index[] = {NULL};
