/* binary ops (placeholder list; filled in by the binary family). */
#include "op_def.h"

const fern_op_def *const fern_ops_binary[] = {NULL};
