/* Pooling: max_pool2d, avg_pool2d and adaptive_avg_pool2d, with torch's
 * semantics (output size formula, ceil_mode, count_include_pad, the
 * start/end indices of adaptive pooling, NaN propagation of max pooling).
 * Inputs are (N, C, H, W) or unbatched (C, H, W).
 *
 * This file is the family's op table: the definitions, public functions,
 * gradient rules and the list the registry reads, so adding an op starts
 * here. Checks and shape inference are in pool_geom.c, the kernels in
 * pool_max.c, pool_max_bwd.c and pool_avg.c (see pool_common.h).
 *
 * The gradient rules use four more ops of this family:
 *  - max_pool2d_backward(x, gy) -> dx: each window's gy added at its argmax
 *    (torch's choice: the first maximum in (kh, kw) order; a NaN wins, the
 *    last one), recomputed from x, so nothing is saved by the forward.
 *  - max_pool2d_indices(x) -> i64 (N, C, OH, OW): that argmax as a flat index
 *    ih * W + iw into its (H, W) plane, like torch's return_indices. Not
 *    differentiable.
 *  - avg_pool2d_backward(gy; ..., input_size) -> dx: gy / divisor spread
 *    over each window.
 *  - adaptive_avg_pool2d_backward(gy; input_size) -> dx, the same for
 *    torch's adaptive windows.
 * Each is linear in gy, and its gradient is the forward again: avg_pool2d,
 * adaptive_avg_pool2d, and for max pooling a gather of the cotangent at the
 * argmax indices (zero w.r.t. x, which only selects). So gradients of any
 * order go through pooling. */
#include <string.h>

#include "pool_common.h"

static int max_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int avg_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int adaptive_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int max_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int avg_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int adaptive_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- op definitions and public functions ------------------------------- */

static const fern_attr_spec max_pool_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                                {"stride", FERN_ATTR_INTS, 0, NULL},
                                                {"padding", FERN_ATTR_INTS, 0, NULL},
                                                {"ceil_mode", FERN_ATTR_INT, 0, NULL}};

static const fern_attr_spec avg_pool_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                                {"stride", FERN_ATTR_INTS, 0, NULL},
                                                {"padding", FERN_ATTR_INTS, 0, NULL},
                                                {"ceil_mode", FERN_ATTR_INT, 0, NULL},
                                                {"count_include_pad", FERN_ATTR_INT, 1, NULL}};

static const fern_attr_spec adaptive_attrs[] = {{"output_size", FERN_ATTR_INTS, 0, NULL}};

/* max_pool2d's, and relu: 1 when the compiler folded relu_backward(dx, x)
 * into the op (x is then relu's output), so windows whose maximum is <= 0
 * pass no gradient */
static const fern_attr_spec max_bwd_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                               {"stride", FERN_ATTR_INTS, 0, NULL},
                                               {"padding", FERN_ATTR_INTS, 0, NULL},
                                               {"ceil_mode", FERN_ATTR_INT, 0, NULL},
                                               {"relu", FERN_ATTR_INT, 0, NULL}};

static const fern_op_def op_max_pool2d = {
    .name = "max_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = max_pool_attrs, .n_attrs = 4,
    .infer = fern__max_pool_infer, .kernel = {[FERN_CPU] = fern__max_pool_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D max pooling over (N,C,H,W) or (C,H,W): kernel, stride (0/empty = kernel), "
           "padding (symmetric), ceil_mode; NaN propagates",
    .grad = max_pool_grad};

static const fern_op_def op_avg_pool2d = {
    .name = "avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = avg_pool_attrs, .n_attrs = 5,
    .infer = fern__avg_pool_infer, .kernel = {[FERN_CPU] = fern__avg_pool_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D average pooling over (N,C,H,W) or (C,H,W): kernel, stride (0/empty = kernel), "
           "padding, ceil_mode, count_include_pad",
    .grad = avg_pool_grad};

static const fern_op_def op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d", .n_inputs = 1, .n_outputs = 1, .attrs = adaptive_attrs,
    .n_attrs = 1, .infer = fern__adaptive_infer, .kernel = {[FERN_CPU] = fern__adaptive_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D adaptive average pooling to output_size (h, w), torch's window indices",
    .grad = adaptive_grad};

static const fern_attr_spec avg_bwd_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                               {"stride", FERN_ATTR_INTS, 0, NULL},
                                               {"padding", FERN_ATTR_INTS, 0, NULL},
                                               {"ceil_mode", FERN_ATTR_INT, 0, NULL},
                                               {"count_include_pad", FERN_ATTR_INT, 1, NULL},
                                               {"input_size", FERN_ATTR_INTS, 0, NULL}};

static const fern_attr_spec adaptive_bwd_attrs[] = {{"input_size", FERN_ATTR_INTS, 0, NULL}};

static const fern_op_def op_max_pool2d_backward = {
    .name = "max_pool2d_backward", .n_inputs = 2, .n_outputs = 1, .attrs = max_bwd_attrs,
    .n_attrs = 5, .infer = fern__max_bwd_infer, .kernel = {[FERN_CPU] = fern__max_bwd_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of max_pool2d: x, output gradient gy -> dx (gy added at each window's first "
           "max); the attributes of max_pool2d, and relu (1: relu_backward(dx, x) folded in)",
    .grad = max_bwd_grad};

static const fern_op_def op_max_pool2d_indices = {
    .name = "max_pool2d_indices", .n_inputs = 1, .n_outputs = 1, .attrs = max_pool_attrs,
    .n_attrs = 4, .infer = fern__indices_infer, .kernel = {[FERN_CPU] = fern__indices_kernel},
    .dtypes = FERN_DT_FLOAT | FERN_DT_INT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS | FERN_OPF_NONDIFF,
    .doc = "i64 flat index (ih*W + iw) of each max_pool2d window's first max (torch's "
           "return_indices); the attributes of max_pool2d"};

static const fern_op_def op_avg_pool2d_backward = {
    .name = "avg_pool2d_backward", .n_inputs = 1, .n_outputs = 1, .attrs = avg_bwd_attrs,
    .n_attrs = 6, .infer = fern__avg_bwd_infer, .kernel = {[FERN_CPU] = fern__avg_bwd_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of avg_pool2d: output gradient gy -> dx of spatial size input_size (h, w); "
           "the attributes of avg_pool2d",
    .grad = avg_bwd_grad};

static const fern_op_def op_adaptive_avg_pool2d_backward = {
    .name = "adaptive_avg_pool2d_backward", .n_inputs = 1, .n_outputs = 1,
    .attrs = adaptive_bwd_attrs, .n_attrs = 1, .infer = fern__adaptive_bwd_infer,
    .kernel = {[FERN_CPU] = fern__adaptive_bwd_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of adaptive_avg_pool2d: output gradient gy -> dx of spatial size "
           "input_size (h, w)",
    .grad = adaptive_bwd_grad};

fern_pool_opts fern_pool_opts_default(int64_t kh, int64_t kw)
{
    fern_pool_opts o;
    memset(&o, 0, sizeof o);
    o.kernel[0] = kh;
    o.kernel[1] = kw;
    o.count_include_pad = 1;
    return o;
}

static int pool_opts_check(const char *op, const fern_pool_opts *opts)
{
    if (!opts) {
        fern_set_error(FERN_ERR_INVALID, "%s: opts is NULL (use fern_pool_opts_default)", op);
        return -1;
    }
    return 0;
}

fern_tensor *fern_max_pool2d(fern_tensor *x, const fern_pool_opts *opts)
{
    if (!x)
        return NULL;
    if (pool_opts_check("max_pool2d", opts))
        return NULL;
    fern_attr a[4] = {fern__attr_ints(opts->kernel, 2), fern__attr_ints(opts->stride, 2),
                      fern__attr_ints(opts->padding, 2), fern__attr_int(opts->ceil_mode)};
    return fern__op1(&op_max_pool2d, 1, &x, a);
}

fern_tensor *fern_avg_pool2d(fern_tensor *x, const fern_pool_opts *opts)
{
    if (!x)
        return NULL;
    if (pool_opts_check("avg_pool2d", opts))
        return NULL;
    fern_attr a[5] = {fern__attr_ints(opts->kernel, 2), fern__attr_ints(opts->stride, 2),
                      fern__attr_ints(opts->padding, 2), fern__attr_int(opts->ceil_mode),
                      fern__attr_int(opts->count_include_pad)};
    return fern__op1(&op_avg_pool2d, 1, &x, a);
}

fern_tensor *fern_adaptive_avg_pool2d(fern_tensor *x, int64_t out_h, int64_t out_w)
{
    int64_t o[2] = {out_h, out_w};
    fern_attr a = fern__attr_ints(o, 2);
    return fern__op1(&op_adaptive_avg_pool2d, 1, &x, &a);
}

/* ---- gradient rules ---------------------------------------------------- */

/* Whether any tape tracks t: a cotangent no tape tracks is dropped anyway. */
static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static int max_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *in[2] = {c->in[0], g[0]};
    if (!g[0] || !fern_dtype_is_float(c->in[0]->dtype) || !wants_grad(c->in[0]))
        return 0;
    fern_attr a[5];
    memcpy(a, c->attrs, 4 * sizeof *a);
    a[4] = fern__attr_int(0);
    return (gi[0] = fern__op1(&op_max_pool2d_backward, 2, in, a)) ? 0 : -1;
}

/* linear in gy: its cotangent gathered at the argmax of each window; x only
 * selects (zero gradient almost everywhere) */
static int max_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *gy = c->in[1];
    if (!g[0] || !wants_grad(gy))
        return 0;
    fern_tensor *idx = fern__op1(&op_max_pool2d_indices, 1, &x, c->attrs);
    if (!idx)
        return -1;
    int nd = x->ndim;
    int64_t sx[4], si[4];
    memcpy(sx, x->shape, (size_t)nd * sizeof *sx);
    memcpy(si, gy->shape, (size_t)nd * sizeof *si);
    sx[nd - 2] *= sx[nd - 1];
    si[nd - 2] *= si[nd - 1];
    fern_tensor *r =
        fern_gather(fern_reshape(g[0], nd - 1, sx), nd - 2, fern_reshape(idx, nd - 1, si));
    r = r ? fern_reshape(r, nd, gy->shape) : NULL;
    if (r && c->attrs[4].i) { /* the folded relu: windows with maximum <= 0 pass nothing */
        fern_tensor *m = fern__op1(&op_max_pool2d, 1, &x, c->attrs);
        r = fern_where(fern_le(m, fern_scalar(r->dtype, 0)), fern_scalar(r->dtype, 0), r);
    }
    gi[1] = r;
    return gi[1] ? 0 : -1;
}

static int avg_pool_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *x = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    fern_attr a[6];
    memcpy(a, c->attrs, 5 * sizeof *a);
    a[5] = fern__attr_ints(x->shape + x->ndim - 2, 2);
    fern_tensor *gy = g[0];
    return (gi[0] = fern__op1(&op_avg_pool2d_backward, 1, &gy, a)) ? 0 : -1;
}

static int avg_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    fern_tensor *gx = g[0];
    if (!gx || !wants_grad(c->in[0]))
        return 0;
    return (gi[0] = fern__op1(&op_avg_pool2d, 1, &gx, c->attrs)) ? 0 : -1;
}

static int adaptive_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *x = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    fern_attr a = fern__attr_ints(x->shape + x->ndim - 2, 2);
    fern_tensor *gy = g[0];
    return (gi[0] = fern__op1(&op_adaptive_avg_pool2d_backward, 1, &gy, &a)) ? 0 : -1;
}

static int adaptive_bwd_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    const fern_tensor *gy = c->in[0];
    if (!g[0] || !wants_grad(c->in[0]))
        return 0;
    gi[0] = fern_adaptive_avg_pool2d(g[0], gy->shape[gy->ndim - 2], gy->shape[gy->ndim - 1]);
    return gi[0] ? 0 : -1;
}

const fern_op_def *const fern_ops_pool[] = {&op_max_pool2d,
                                            &op_avg_pool2d,
                                            &op_adaptive_avg_pool2d,
                                            &op_max_pool2d_backward,
                                            &op_max_pool2d_indices,
                                            &op_avg_pool2d_backward,
                                            &op_adaptive_avg_pool2d_backward,
                                            NULL};
