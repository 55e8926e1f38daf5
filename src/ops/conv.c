/* conv ops (placeholder list; filled in by the conv family). */
#include "op_def.h"

const fern_op_def *const fern_ops_conv[] = {NULL};
