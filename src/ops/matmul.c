/* matmul ops (placeholder list; filled in by the matmul family). */
#include "op_def.h"

const fern_op_def *const fern_ops_matmul[] = {NULL};
