/* sort ops (placeholder list; filled in by the sort family). */
#include "op_def.h"

const fern_op_def *const fern_ops_sort[] = {NULL};
