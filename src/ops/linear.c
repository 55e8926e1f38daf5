/* linear: y = x W^T + b, torch.nn.functional.linear as one op (torch's addmm).
 *
 * Why not matmul(x, transpose(W)) + b: the bias add is a second pass over y,
 * and the weight gradient of a transposed operand comes out as the
 * transpose of a gemm, a strided view that every optimizer update then
 * reads across rows. Here the bias is written into y first and the gemm
 * accumulates onto it (beta = 1), and the gradient rule computes
 * gW = g^T x directly in W's layout, one gemm with a transposed-A flag. */
#include <string.h>

#include "../backend/cpu/gemm.h"
#include "op_def.h"

static int linear_infer(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2];
    char dx[128], dw[128], db[128];
    int ok = x->ndim >= 1 && w->ndim == 2 && x->dtype == w->dtype &&
             x->shape[x->ndim - 1] == w->shape[1];
    if (ok && b)
        ok = b->ndim == 1 && b->shape[0] == w->shape[0] && b->dtype == w->dtype;
    if (!ok) {
        fern_set_error(FERN_ERR_INVALID,
                       "linear: needs x (..., in), weight (out, in) and bias (out) of one float dtype; "
                       "got x %s, weight %s, bias %s",
                       fern__desc(x, dx, sizeof dx), fern__desc(w, dw, sizeof dw),
                       b ? fern__desc(b, db, sizeof db) : "none");
        return -1;
    }
    int64_t s[FERN_MAX_DIMS];
    memcpy(s, x->shape, (size_t)x->ndim * sizeof *s);
    s[x->ndim - 1] = w->shape[0];
    fern__set_out(c, 0, x->dtype, x->ndim, s);
    return 0;
}

static int linear_kernel(fern_op_call *c)
{
    const fern_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2];
    fern_tensor *y = c->out[0];
    const int64_t K = w->shape[1], N = w->shape[0];
    const int64_t M = K ? fern_tensor_numel(x) / K : fern_tensor_numel(y) / (N ? N : 1);
    const size_t es = fern_dtype_size(y->dtype);
    char *py = fern_tensor_data(y);
    if (M == 0 || N == 0)
        return 0;
    if (b) {
        for (int64_t r = 0; r < M; r++)
            memcpy(py + (size_t)(r * N) * es, fern_tensor_data(b), (size_t)N * es);
    } else if (K == 0) {
        memset(py, 0, (size_t)(M * N) * es);
    }
    if (K == 0)
        return 0;
    /* the dispatcher made x and w contiguous (FERN_OPF_CONTIG_INPUTS) */
    const void *px = fern_tensor_data(x), *pw = fern_tensor_data(w);
    fern__gemm(y->dtype, 'N', 'T', M, N, K, px, K, pw, K, b ? 1.0 : 0.0, py, N);
    return 0;
}

static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static int linear_grad(const fern_op_call *c, fern_tensor *const *gout, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2], *g = gout[0];
    if (!g)
        return 0;
    const int64_t K = w->shape[1], N = w->shape[0];
    const int64_t R = fern_tensor_numel(x) / (K ? K : 1);
    int64_t sg[2] = {R, N}, sx[2] = {R, K};
    fern_tensor *g2 = x->ndim == 2 ? g : fern_reshape(g, 2, sg);
    if (!g2)
        return -1;
    if (wants_grad(x)) {
        fern_tensor *gx = fern_matmul(g2, w);
        gi[0] = x->ndim == 2 ? gx : fern_reshape(gx, x->ndim, x->shape);
        if (!gi[0])
            return -1;
    }
    if (wants_grad(w)) {
        fern_tensor *x2 = x->ndim == 2 ? x : fern_reshape(x, 2, sx);
        gi[1] = fern_matmul(fern_transpose(g2, 0, 1), x2); /* (out, in), contiguous */
        if (!gi[1])
            return -1;
    }
    if (b && wants_grad(b)) {
        int axis0 = 0;
        gi[2] = fern_sum(g2, &axis0, 1, 0);
        if (!gi[2])
            return -1;
    }
    return 0;
}

static const fern_op_def op_linear = {
    .name = "linear", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .infer = linear_infer,
    .kernel = {[FERN_CPU] = linear_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "x @ weight^T + bias (torch.nn.functional.linear); bias optional", .grad = linear_grad};

fern_tensor *fern_linear(fern_tensor *x, fern_tensor *weight, fern_tensor *bias)
{
    fern_tensor *in[3] = {x, weight, bias};
    return fern__op1(&op_linear, 3, in, NULL);
}

const fern_op_def *const fern_ops_linear[] = {&op_linear, NULL};
