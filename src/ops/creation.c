/* creation ops (placeholder list; filled in by the creation family). */
#include "op_def.h"

const fern_op_def *const fern_ops_creation[] = {NULL};
