/* Convolutions: conv1d, conv2d, conv_transpose2d and conv2d_weight_grad
 * (torch semantics): op definitions, shape inference, public functions and
 * gradient rules. The kernels live in conv_*.c (see conv_common.h).
 *
 * The ops carry explicit, IR-friendly attributes: `stride`, `pads` (conv2d
 * and conv_transpose2d: top, left, bottom, right; conv1d: left, right),
 * `dilation`, `groups`, and `output_padding` for the transposed conv. The
 * public functions turn fern_conv_opts (symmetric padding, padding_same)
 * into these. Inputs may be batched (N, C, ...) or unbatched (C, ...);
 * conv1d runs as a conv2d over a unit height. f32/f64 natively, f16/bf16
 * via f32. */
#include "conv_common.h"

static int conv1d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int conv2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int convt2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);
static int wgrad_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi);

/* ---- shape inference and kernel entry points ----------------------------- */

static void conv_out_shape(fern_op_call *c, int kind, const conv_geom *g)
{
    int64_t *s = c->out_shape[0];
    int n = 0;
    if (g->batched)
        s[n++] = g->N;
    s[n++] = g->O;
    if (kind != CONV1D)
        s[n++] = g->OH;
    s[n++] = g->OW;
    c->out_ndim[0] = n;
    c->out_dtype[0] = c->in[0]->dtype;
}

static int conv1d_infer(fern_op_call *c)
{
    conv_geom g;
    if (fern__conv_setup(c, CONV1D, &g))
        return -1;
    conv_out_shape(c, CONV1D, &g);
    return 0;
}

static int conv2d_infer(fern_op_call *c)
{
    conv_geom g;
    if (fern__conv_setup(c, CONV2D, &g))
        return -1;
    conv_out_shape(c, CONV2D, &g);
    return 0;
}

static int convt2d_infer(fern_op_call *c)
{
    conv_geom g;
    if (fern__conv_setup(c, CONVT2D, &g))
        return -1;
    conv_out_shape(c, CONVT2D, &g);
    return 0;
}

static int conv_kernel_common(fern_op_call *c, int kind)
{
    conv_geom g;
    if (fern__conv_setup(c, kind, &g))
        return -1;
    const conv_wview w = conv_wview_plain(&g, fern_tensor_data(c->in[1]));
#if FERN_HAVE_DNNL
    /* oneDNN where it is faster (conv_onednn.c); fern's kernels when it fails */
    if (kind == CONV2D && fern__conv_onednn_suits(&g, c->in[0]->dtype) &&
        fern__conv_onednn(&g, fern_tensor_data(c->in[0]), w.base,
                          c->in[2] ? fern_tensor_data(c->in[2]) : NULL,
                          fern_tensor_data(c->out[0])) == 0)
        return 0;
#endif
    return fern__conv_forward(&g, c->in[0]->dtype, fern_tensor_data(c->in[0]), &w,
                              c->in[2] ? fern_tensor_data(c->in[2]) : NULL,
                              fern_tensor_data(c->out[0]));
}

static int conv1d_kernel(fern_op_call *c) { return conv_kernel_common(c, CONV1D); }
static int conv2d_kernel(fern_op_call *c) { return conv_kernel_common(c, CONV2D); }

static int convt2d_kernel(fern_op_call *c)
{
    conv_geom g;
    if (fern__conv_setup(c, CONVT2D, &g))
        return -1;
    return fern__conv_transpose(&g, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                                fern_tensor_data(c->in[1]),
                                c->in[2] ? fern_tensor_data(c->in[2]) : NULL,
                                fern_tensor_data(c->out[0]));
}

static int wgrad_infer(fern_op_call *c)
{
    conv_geom g;
    if (fern__wgrad_setup(c, &g))
        return -1;
    int64_t s[4] = {g.O, g.C / g.G, g.KH, g.KW};
    fern__set_out(c, 0, c->in[0]->dtype, 4, s);
    return 0;
}

static int wgrad_kernel(fern_op_call *c)
{
    conv_geom g;
    if (fern__wgrad_setup(c, &g))
        return -1;
    return fern__conv_wgrad(&g, c->in[0]->dtype, fern_tensor_data(c->in[0]),
                            fern_tensor_data(c->in[1]), fern_tensor_data(c->out[0]));
}

/* ---- op definitions ---------------------------------------------------- */

static const fern_attr_spec conv_attrs[] = {{"stride", FERN_ATTR_INTS, 0, NULL},
                                            {"pads", FERN_ATTR_INTS, 0, NULL},
                                            {"dilation", FERN_ATTR_INTS, 0, NULL},
                                            {"groups", FERN_ATTR_INT, 1, NULL}};

static const fern_attr_spec convt_attrs[] = {{"stride", FERN_ATTR_INTS, 0, NULL},
                                             {"pads", FERN_ATTR_INTS, 0, NULL},
                                             {"dilation", FERN_ATTR_INTS, 0, NULL},
                                             {"groups", FERN_ATTR_INT, 1, NULL},
                                             {"output_padding", FERN_ATTR_INTS, 0, NULL}};

static const fern_op_def op_conv1d = {
    .name = "conv1d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .attrs = conv_attrs,
    .n_attrs = 4, .infer = conv1d_infer, .kernel = {[FERN_CPU] = conv1d_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "1-D convolution: x (N,C,L), w (O,C/groups,K), optional bias (O); "
           "stride, pads (left, right), dilation, groups",
    .grad = conv1d_grad};

static const fern_op_def op_conv2d = {
    .name = "conv2d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1, .attrs = conv_attrs,
    .n_attrs = 4, .infer = conv2d_infer, .kernel = {[FERN_CPU] = conv2d_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D convolution: x (N,C,H,W), w (O,C/groups,KH,KW), optional bias (O); "
           "stride (h,w), pads (top,left,bottom,right), dilation (h,w), groups",
    .grad = conv2d_grad};

static const fern_op_def op_conv_transpose2d = {
    .name = "conv_transpose2d", .n_inputs = 3, .n_optional = 1, .n_outputs = 1,
    .attrs = convt_attrs, .n_attrs = 5, .infer = convt2d_infer,
    .kernel = {[FERN_CPU] = convt2d_kernel}, .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "2-D transposed convolution: x (N,C,H,W), w (C,O/groups,KH,KW), optional bias (O); "
           "stride, pads (top,left,bottom,right), dilation, groups, output_padding",
    .grad = convt2d_grad};

static const fern_attr_spec wgrad_attrs[] = {{"kernel", FERN_ATTR_INTS, 0, NULL},
                                             {"stride", FERN_ATTR_INTS, 0, NULL},
                                             {"pads", FERN_ATTR_INTS, 0, NULL},
                                             {"dilation", FERN_ATTR_INTS, 0, NULL},
                                             {"groups", FERN_ATTR_INT, 1, NULL}};

static const fern_op_def op_conv2d_weight_grad = {
    .name = "conv2d_weight_grad", .n_inputs = 2, .n_outputs = 1, .attrs = wgrad_attrs,
    .n_attrs = 5, .infer = wgrad_infer, .kernel = {[FERN_CPU] = wgrad_kernel},
    .dtypes = FERN_DT_FLOAT, .dtype_arg = 0,
    .flags = FERN_OPF_HALF_VIA_F32 | FERN_OPF_CONTIG_INPUTS,
    .doc = "gradient of conv2d w.r.t. its weight: x (N,C,H,W), output gradient gy (N,O,OH,OW) -> "
           "(O,C/groups,KH,KW); kernel (kh,kw), stride, pads, dilation, groups",
    .grad = wgrad_grad};

/* ---- public functions -------------------------------------------------- */

fern_conv_opts fern_conv_opts_default(void)
{
    fern_conv_opts o;
    memset(&o, 0, sizeof o);
    o.stride[0] = o.stride[1] = 1;
    o.dilation[0] = o.dilation[1] = 1;
    o.groups = 1;
    return o;
}

/* "same" padding for spatial dim d: total dilation*(k-1), the odd one at the end. */
static void same_pads(int64_t k, int64_t dil, int64_t *begin, int64_t *end)
{
    int64_t total = dil * (k - 1);
    *begin = total / 2;
    *end = total - *begin;
}

fern_tensor *fern_conv1d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    int64_t pads[2] = {o.padding[0], o.padding[0]};
    if (o.padding_same) {
        if (o.stride[0] != 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "conv1d: padding_same is only supported with stride 1, got stride %lld",
                           (long long)o.stride[0]);
            return NULL;
        }
        if (w && w->ndim == 3)
            same_pads(w->shape[2], o.dilation[0], &pads[0], &pads[1]);
    }
    fern_attr a[4] = {fern__attr_ints(&o.stride[0], 1), fern__attr_ints(pads, 2),
                      fern__attr_ints(&o.dilation[0], 1), fern__attr_int(o.groups)};
    return fern__op1(&op_conv1d, 3, in, a);
}

fern_tensor *fern_conv2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                         const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    int64_t pads[4] = {o.padding[0], o.padding[1], o.padding[0], o.padding[1]};
    if (o.padding_same) {
        if (o.stride[0] != 1 || o.stride[1] != 1) {
            fern_set_error(FERN_ERR_INVALID,
                           "conv2d: padding_same is only supported with stride 1, got stride "
                           "(%lld, %lld)",
                           (long long)o.stride[0], (long long)o.stride[1]);
            return NULL;
        }
        if (w && w->ndim == 4) {
            same_pads(w->shape[2], o.dilation[0], &pads[0], &pads[2]);
            same_pads(w->shape[3], o.dilation[1], &pads[1], &pads[3]);
        }
    }
    fern_attr a[4] = {fern__attr_ints(o.stride, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(o.dilation, 2), fern__attr_int(o.groups)};
    return fern__op1(&op_conv2d, 3, in, a);
}

fern_tensor *fern_conv_transpose2d(fern_tensor *x, fern_tensor *w, fern_tensor *bias,
                                   const fern_conv_opts *opts)
{
    fern_conv_opts o = opts ? *opts : fern_conv_opts_default();
    fern_tensor *in[3] = {x, w, bias};
    if (o.padding_same) {
        fern_set_error(FERN_ERR_INVALID, "conv_transpose2d: padding_same is not supported");
        return NULL;
    }
    int64_t pads[4] = {o.padding[0], o.padding[1], o.padding[0], o.padding[1]};
    fern_attr a[5] = {fern__attr_ints(o.stride, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(o.dilation, 2), fern__attr_int(o.groups),
                      fern__attr_ints(o.output_padding, 2)};
    return fern__op1(&op_conv_transpose2d, 3, in, a);
}

/* ---- gradient rules ----------------------------------------------------
 * conv1d runs as a conv2d over a unit height (the unsqueezed tensors), and
 * unbatched inputs get a unit batch; then, for y = conv2d(x, w) + b:
 *  - dx: the transposed conv of gy with the same weight (conv_input_grad):
 *    conv_transpose2d with the top/left pads cropped, and the bottom/right
 *    crop or output_padding (or zero padding) that gives back x's exact size.
 *    Its kernel runs forward convs of gy with the flipped, channel-swapped
 *    weight (for strides, one per output phase), reading w in place: no
 *    flipped copy appears in the graph.
 *  - dw: conv2d_weight_grad(x, gy) (the op above).
 *  - db: gy summed over everything but the channels.
 * conv_transpose2d is the adjoint of the input gradient: dx = conv2d(gy, w)
 * (cropped to x's size), dw = conv2d_weight_grad(gy, x), db as above.
 * conv2d_weight_grad is linear in each input: d/dgy = conv2d(x, gw_bar),
 * d/dx = conv_input_grad(gy, gw_bar); so all orders compose from conv2d,
 * conv_transpose2d and conv2d_weight_grad. Rules skip inputs no tape
 * tracks (wants_grad). */

static int wants_grad(const fern_tensor *t) { return t && t->autograd != NULL; }

static fern_tensor *call_conv2d(fern_tensor *x, fern_tensor *w, const int64_t *s,
                                const int64_t *pads, const int64_t *d, int64_t G)
{
    fern_tensor *in[3] = {x, w, NULL};
    fern_attr a[4] = {fern__attr_ints(s, 2), fern__attr_ints(pads, 4), fern__attr_ints(d, 2),
                      fern__attr_int(G)};
    return fern__op1(&op_conv2d, 3, in, a);
}

static fern_tensor *call_convt2d(fern_tensor *x, fern_tensor *w, const int64_t *s,
                                 const int64_t *pads, const int64_t *d, int64_t G,
                                 const int64_t *opad)
{
    fern_tensor *in[3] = {x, w, NULL};
    fern_attr a[5] = {fern__attr_ints(s, 2), fern__attr_ints(pads, 4), fern__attr_ints(d, 2),
                      fern__attr_int(G), fern__attr_ints(opad, 2)};
    return fern__op1(&op_conv_transpose2d, 3, in, a);
}

static fern_tensor *call_wgrad(fern_tensor *x, fern_tensor *gy, int64_t KH, int64_t KW,
                               const int64_t *s, const int64_t *pads, const int64_t *d, int64_t G)
{
    fern_tensor *in[2] = {x, gy};
    int64_t k[2] = {KH, KW};
    fern_attr a[5] = {fern__attr_ints(k, 2), fern__attr_ints(s, 2), fern__attr_ints(pads, 4),
                      fern__attr_ints(d, 2), fern__attr_int(G)};
    return fern__op1(&op_conv2d_weight_grad, 2, in, a);
}

static fern_tensor *slice_to(fern_tensor *t, int64_t H, int64_t W)
{
    if (t && t->shape[2] > H)
        t = fern_slice(t, 2, 0, H, 1);
    if (t && t->shape[3] > W)
        t = fern_slice(t, 3, 0, W, 1);
    return t;
}

/* The input x (N, C, H, W) cotangent of a conv2d with weight w (O, C/G, KH,
 * KW), stride, top/left pads, dilation and groups from g, given the output
 * cotangent gy (N, O, OH, OW) of any size. */
static fern_tensor *conv_input_grad(fern_tensor *gy, fern_tensor *w, int64_t H, int64_t W,
                                    const conv_geom *g)
{
    if (!gy || !w)
        return NULL;
    const int64_t N = gy->shape[0], C = w->shape[1] * g->G;
    const int64_t o[2] = {gy->shape[2], gy->shape[3]}, k[2] = {w->shape[2], w->shape[3]};
    const int64_t n[2] = {H, W}, s[2] = {g->sh, g->sw}, d[2] = {g->dh, g->dw};
    const int64_t p0[2] = {g->pt, g->pl};
    int64_t total[2];
    for (int i = 0; i < 2; i++)
        total[i] = (o[i] - 1) * s[i] - p0[i] + d[i] * (k[i] - 1) + 1; /* rows reached, +1 */
    if (N == 0 || C == 0 || w->shape[0] == 0 || o[0] == 0 || o[1] == 0 || total[0] < 1 ||
        total[1] < 1) { /* no output position reads x */
        int64_t shape[4] = {N, C, H, W};
        return fern_zeros(gy->dtype, 4, shape);
    }
    int64_t crop[2], opad[2], extra[2];
    for (int i = 0; i < 2; i++) {
        crop[i] = opad[i] = extra[i] = 0;
        if (total[i] >= n[i])
            crop[i] = total[i] - n[i];
        else if (n[i] - total[i] < s[i] || n[i] - total[i] < d[i])
            opad[i] = n[i] - total[i];
        else
            extra[i] = n[i] - total[i];
    }
    int64_t pads[4] = {p0[0], p0[1], crop[0], crop[1]};
    fern_tensor *r = call_convt2d(gy, w, s, pads, d, g->G, opad);
    if (r && (extra[0] || extra[1])) {
        int64_t pp[4] = {0, extra[1], 0, extra[0]};
        r = fern_pad(r, pp, 4, FERN_PAD_CONSTANT, 0.0);
    }
    return r;
}

static fern_tensor *bias_grad(fern_tensor *gy, int batched)
{
    int axes[3], n = 0;
    for (int d = 0; d < gy->ndim; d++)
        if (d != (batched ? 1 : 0))
            axes[n++] = d;
    return fern_sum(gy, axes, n, 0);
}

static int conv_grad_common(const fern_op_call *c, int kind, fern_tensor *const *gout,
                            fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *w = c->in[1], *b = c->in[2], *gy = gout[0];
    if (!gy)
        return 0;
    conv_geom g;
    if (fern__conv_setup(c, kind, &g))
        return -1;
    fern_tensor *x4 = x, *w4 = w, *g4 = gy;
    if (kind == CONV1D) { /* (N, C, L) -> (N, C, 1, L) */
        x4 = fern_unsqueeze(x, x->ndim - 1);
        w4 = fern_unsqueeze(w, 2);
        g4 = fern_unsqueeze(gy, gy->ndim - 1);
    }
    if (!g.batched) {
        x4 = fern_unsqueeze(x4, 0);
        g4 = fern_unsqueeze(g4, 0);
    }
    if (!x4 || !w4 || !g4)
        return -1;
    const int64_t s[2] = {g.sh, g.sw}, d[2] = {g.dh, g.dw}, pads[4] = {g.pt, g.pl, g.pb, g.pr};
    if (kind == CONVT2D) {
        if (wants_grad(x)) { /* the adjoint of the transposed conv: a conv */
            fern_tensor *r = slice_to(call_conv2d(g4, w4, s, pads, d, g.G), g.H, g.W);
            if (!r || !(gi[0] = fern_reshape(r, x->ndim, x->shape)))
                return -1;
        }
        if (wants_grad(w) &&
            !(gi[1] = call_wgrad(g4, x4, g.KH, g.KW, s, pads, d, g.G)))
            return -1;
    } else {
        if (wants_grad(x)) {
            fern_tensor *r = conv_input_grad(g4, w4, g.H, g.W, &g);
            if (!r || !(gi[0] = fern_reshape(r, x->ndim, x->shape)))
                return -1;
        }
        if (wants_grad(w)) {
            fern_tensor *r = call_wgrad(x4, g4, g.KH, g.KW, s, pads, d, g.G);
            if (!r || !(gi[1] = fern_reshape(r, w->ndim, w->shape)))
                return -1;
        }
    }
    if (b && wants_grad(b) && !(gi[2] = bias_grad(gy, g.batched)))
        return -1;
    return 0;
}

static int conv1d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONV1D, g, gi);
}

static int conv2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONV2D, g, gi);
}

static int convt2d_grad(const fern_op_call *c, fern_tensor *const *g, fern_tensor **gi)
{
    return conv_grad_common(c, CONVT2D, g, gi);
}

/* gw = WG(x, gy) is bilinear: <gw_bar, WG(x, gy)> = <gy, conv2d(x, gw_bar)>
 * (the output positions gy has) = <x, conv_input_grad(gy, gw_bar)>. */
static int wgrad_grad(const fern_op_call *c, fern_tensor *const *gout, fern_tensor **gi)
{
    fern_tensor *x = c->in[0], *gy = c->in[1], *gb = gout[0];
    if (!gb)
        return 0;
    conv_geom g;
    if (fern__wgrad_setup(c, &g))
        return -1;
    if (wants_grad(x) && !(gi[0] = conv_input_grad(gy, gb, g.H, g.W, &g)))
        return -1;
    if (wants_grad(gy)) {
        if (g.OH == 0 || g.OW == 0 || g.N == 0) {
            gi[1] = fern_zeros_like(gy);
        } else {
            /* bottom/right pads so that conv2d's output covers gy's positions */
            int64_t ekh = g.dh * (g.KH - 1) + 1, ekw = g.dw * (g.KW - 1) + 1;
            int64_t pb = (g.OH - 1) * g.sh + ekh - g.H - g.pt;
            int64_t pr = (g.OW - 1) * g.sw + ekw - g.W - g.pl;
            int64_t pads[4] = {g.pt, g.pl, pb > 0 ? pb : 0, pr > 0 ? pr : 0};
            const int64_t s[2] = {g.sh, g.sw}, d[2] = {g.dh, g.dw};
            gi[1] = slice_to(call_conv2d(x, gb, s, pads, d, g.G), g.OH, g.OW);
        }
        if (!gi[1])
            return -1;
    }
    return 0;
}

const fern_op_def *const fern_ops_conv[] = {&op_conv1d, &op_conv2d, &op_conv_transpose2d,
                                            &op_conv2d_weight_grad, NULL};
