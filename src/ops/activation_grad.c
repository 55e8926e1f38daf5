/* Fused gradient kernels of activations. relu's gradient as generic ops is
 * gt + cast + mul: three passes and two temporaries over every activation of
 * the network. relu_backward is torch's threshold_backward(g, y, 0) in one
 * pass: g where y > 0, else 0. It reads relu's output y rather than its input
 * (relu(x) > 0 exactly where x > 0), so a tape keeps only y alive, which the
 * next layer holds anyway. A NaN in y passes g through, as in torch. */
#include "../backend/cpu/elementwise.h"
#include "op_def.h"

#define RELU_BWD_ROW(NAME, T)                                                                \
    static void NAME(void *ctx, int64_t n, char *const *p, const int64_t *s)                 \
    {                                                                                        \
        (void)ctx;                                                                           \
        T *restrict o = (T *)p[0];                                                           \
        const T *restrict g = (const T *)p[1], *restrict y = (const T *)p[2];                \
        if (s[0] == 1 && s[1] == 1 && s[2] == 1) {                                           \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i] = y[i] <= 0 ? (T)0 : g[i];                                              \
        } else {                                                                             \
            for (int64_t i = 0; i < n; i++)                                                  \
                o[i * s[0]] = y[i * s[2]] <= 0 ? (T)0 : g[i * s[1]];                         \
        }                                                                                    \
    }
RELU_BWD_ROW(relu_bwd_f32, float)
RELU_BWD_ROW(relu_bwd_f64, double)

static int relu_bwd_infer(fern_op_call *c)
{
    const fern_tensor *g = c->in[0], *y = c->in[1];
    char a[128], b[128];
    int ok = g->dtype == y->dtype && g->ndim == y->ndim;
    for (int d = 0; ok && d < g->ndim; d++)
        ok = g->shape[d] == y->shape[d];
    if (!ok) {
        fern_set_error(FERN_ERR_INVALID,
                       "relu_backward: the gradient %s and relu's output %s must have one shape and dtype",
                       fern__desc(g, a, sizeof a), fern__desc(y, b, sizeof b));
        return -1;
    }
    fern__set_out(c, 0, g->dtype, g->ndim, g->shape);
    return 0;
}

static int relu_bwd_kernel(fern_op_call *c)
{
    fern_ew_row_fn fn = c->out[0]->dtype == FERN_F64 ? relu_bwd_f64 : relu_bwd_f32;
    const fern_tensor *ops[3] = {c->out[0], c->in[0], c->in[1]};
    fern_ew_apply(3, ops, fn, NULL, FERN_EW_GRAIN);
    return 0;
}

/* linear in g with a fixed mask; flat (zero) in y */
static int relu_bwd_grad(const fern_op_call *c, fern_tensor *const *gs, fern_tensor **gi)
{
    if (!gs[0])
        return 0;
    gi[0] = fern_relu_backward(gs[0], c->in[1]);
    return gi[0] ? 0 : -1;
}

static const fern_op_def op_relu_backward = {
    .name = "relu_backward", .n_inputs = 2, .n_outputs = 1, .infer = relu_bwd_infer,
    .kernel = {[FERN_CPU] = relu_bwd_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .doc = "gradient of relu from its output: g where y > 0, else 0 (torch's threshold_backward)",
    .grad = relu_bwd_grad};

fern_tensor *fern_relu_backward(fern_tensor *g, fern_tensor *y)
{
    fern_tensor *in[2] = {g, y};
    return fern__op1(&op_relu_backward, 2, in, NULL);
}

const fern_op_def *const fern_ops_activation_grad[] = {&op_relu_backward, NULL};
