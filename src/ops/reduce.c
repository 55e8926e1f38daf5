/* reduce ops (placeholder list; filled in by the reduce family). */
#include "op_def.h"

const fern_op_def *const fern_ops_reduce[] = {NULL};
