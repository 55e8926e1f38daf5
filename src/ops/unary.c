/* Unary elementwise ops. */
#include "op_def.h"

/* ---- cast -------------------------------------------------------------- */

static const fern_attr_spec cast_attrs[] = {{"dtype", FERN_ATTR_DTYPE, FERN_F32, NULL}};

static int cast_infer(fern_op_call *c)
{
    int64_t dt = c->attrs[0].i;
    if (dt < 0 || dt >= FERN_DTYPE_COUNT) {
        fern_set_error(FERN_ERR_INVALID, "cast: invalid dtype %lld", (long long)dt);
        return -1;
    }
    fern__set_out(c, 0, (fern_dtype)dt, c->in[0]->ndim, c->in[0]->shape);
    return 0;
}

static int cast_kernel(fern_op_call *c)
{
    fern__convert(fern_tensor_data(c->in[0]), c->in[0]->dtype, fern_tensor_data(c->out[0]),
                  c->out[0]->dtype, fern_tensor_numel(c->in[0]));
    return 0;
}

static const fern_op_def op_cast = {
    .name = "cast", .n_inputs = 1, .n_outputs = 1, .attrs = cast_attrs, .n_attrs = 1,
    .infer = cast_infer, .kernel = {[FERN_CPU] = cast_kernel}, .dtypes = FERN_DT_ALL,
    .flags = FERN_OPF_CONTIG_INPUTS, .doc = "convert to another dtype (floats to ints truncate)"};

fern_tensor *fern_cast(fern_tensor *x, fern_dtype dt)
{
    fern_attr a = fern__attr_dtype(dt);
    return fern__op1(&op_cast, 1, &x, &a);
}

const fern_op_def *const fern_ops_unary[] = {&op_cast, NULL};
