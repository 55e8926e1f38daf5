/* loss ops (placeholder list; filled in by the loss family). */
#include "op_def.h"

const fern_op_def *const fern_ops_loss[] = {NULL};
