/* State: assign writes into an existing tensor. It is the one op with a
 * side effect; the compiler keeps it and its position. */
#include <string.h>

#include "op_def.h"

static int assign_infer(fern_op_call *c)
{
    const fern_tensor *t = c->in[0], *v = c->in[1];
    if (t->ndim != v->ndim || memcmp(t->shape, v->shape, (size_t)t->ndim * sizeof(int64_t))) {
        char a[128], b[128];
        fern_set_error(FERN_ERR_INVALID, "assign: value %s does not match target %s",
                       fern_tensor_desc(v, a, sizeof a), fern_tensor_desc(t, b, sizeof b));
        return -1;
    }
    fern__set_out(c, 0, t->dtype, t->ndim, t->shape);
    return 0;
}

static int assign_kernel(fern_op_call *c)
{
    fern_tensor *t = c->in[0];
    if (fern_tensor_assign(t, c->in[1]) != FERN_OK)
        return -1;
    c->out[0] = fern_retain(t);
    return 0;
}

static const fern_op_def op_assign = {
    .name = "assign", .n_inputs = 2, .n_outputs = 1, .infer = assign_infer,
    .kernel = {[FERN_CPU] = assign_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_SELF_ALLOC | FERN_OPF_SIDE_EFFECT | FERN_OPF_NONDIFF,
    .doc = "write value into target (an ordered side effect); returns target"};

fern_tensor *fern_assign(fern_tensor *target, fern_tensor *value)
{
    fern_tensor *in[2] = {target, value};
    return fern__op1(&op_assign, 2, in, NULL);
}

const fern_op_def *const fern_ops_state[] = {&op_assign, NULL};
