"""Reference cases for conv1d, conv2d and conv_transpose2d, from PyTorch 1.13
(torch.nn.functional, computed in float64).

The ops take explicit pads: conv2d/conv_transpose2d `pads` = (top, left,
bottom, right), conv1d `pads` = (left, right). Asymmetric pads are checked
against torch by padding the input (conv) or cropping the full output
(transposed conv)."""
import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, In, Out, main_write

cs = Cases(seed=21)
TOL32 = (1e-4, 1e-5)
TOL64 = (1e-10, 1e-12)


def t64(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a).astype(np.float64))


def tol_for(dt):
    return TOL64 if dt == np.float64 else TOL32


def conv2d_ref(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    xt = t64(x)
    unbatched = xt.dim() == 3
    if unbatched:
        xt = xt[None]
    xt = F.pad(xt, (pads[1], pads[3], pads[0], pads[2]))
    r = F.conv2d(xt, t64(w), t64(b), stride, 0, dilation, groups)
    if unbatched:
        r = r[0]
    return r.numpy().astype(x.dtype)


def conv1d_ref(x, w, b, stride=1, pads=(0, 0), dilation=1, groups=1):
    xt = t64(x)
    unbatched = xt.dim() == 2
    if unbatched:
        xt = xt[None]
    xt = F.pad(xt, (pads[0], pads[1]))
    r = F.conv1d(xt, t64(w), t64(b), stride, 0, dilation, groups)
    if unbatched:
        r = r[0]
    return r.numpy().astype(x.dtype)


def convt2d_ref(x, w, b, stride=(1, 1), pads=(0, 0, 0, 0), output_padding=(0, 0), dilation=(1, 1),
                groups=1):
    xt = t64(x)
    unbatched = xt.dim() == 3
    if unbatched:
        xt = xt[None]
    if pads[0] == pads[2] and pads[1] == pads[3]:
        r = F.conv_transpose2d(xt, t64(w), t64(b), stride, (pads[0], pads[1]), output_padding, groups,
                               dilation)
    else:  # crop the full (unpadded) output, extended by zeros (+ bias) at the end
        full = F.conv_transpose2d(xt, t64(w), None, stride, 0, 0, groups, dilation)
        H, W = xt.shape[2], xt.shape[3]
        kh, kw = w.shape[2], w.shape[3]
        oh = (H - 1) * stride[0] - pads[0] - pads[2] + dilation[0] * (kh - 1) + output_padding[0] + 1
        ow = (W - 1) * stride[1] - pads[1] - pads[3] + dilation[1] * (kw - 1) + output_padding[1] + 1
        full = F.pad(full, (0, 8, 0, 8))
        r = full[:, :, pads[0]:pads[0] + oh, pads[1]:pads[1] + ow]
        if b is not None:
            r = r + t64(b)[None, :, None, None]
    if unbatched:
        r = r[0]
    return r.numpy().astype(x.dtype)


def c2(cid, x, w, b=None, stride=None, pads=None, dilation=None, groups=None, xin=None, win=None, tol=None):
    attrs = {}
    if stride is not None:
        attrs["stride"] = list(stride)
    if pads is not None:
        attrs["pads"] = list(pads)
    if dilation is not None:
        attrs["dilation"] = list(dilation)
    if groups is not None:
        attrs["groups"] = groups
    e = conv2d_ref(x, w, b, stride or (1, 1), pads or (0, 0, 0, 0), dilation or (1, 1), groups or 1)
    cs.case(cid, "conv2d", [xin if xin is not None else x, win if win is not None else w, b], [e], attrs,
            tol=tol or tol_for(x.dtype))


def c1(cid, x, w, b=None, stride=None, pads=None, dilation=None, groups=None, xin=None, tol=None):
    attrs = {}
    if stride is not None:
        attrs["stride"] = [stride]
    if pads is not None:
        attrs["pads"] = list(pads)
    if dilation is not None:
        attrs["dilation"] = [dilation]
    if groups is not None:
        attrs["groups"] = groups
    e = conv1d_ref(x, w, b, stride or 1, pads or (0, 0), dilation or 1, groups or 1)
    cs.case(cid, "conv1d", [xin if xin is not None else x, w, b], [e], attrs, tol=tol or tol_for(x.dtype))


def ct(cid, x, w, b=None, stride=None, pads=None, output_padding=None, dilation=None, groups=None,
       xin=None, win=None, tol=None):
    attrs = {}
    if stride is not None:
        attrs["stride"] = list(stride)
    if pads is not None:
        attrs["pads"] = list(pads)
    if output_padding is not None:
        attrs["output_padding"] = list(output_padding)
    if dilation is not None:
        attrs["dilation"] = list(dilation)
    if groups is not None:
        attrs["groups"] = groups
    e = convt2d_ref(x, w, b, stride or (1, 1), pads or (0, 0, 0, 0), output_padding or (0, 0),
                    dilation or (1, 1), groups or 1)
    cs.case(cid, "conv_transpose2d", [xin if xin is not None else x, win if win is not None else w, b], [e],
            attrs, tol=tol or tol_for(x.dtype))


R = cs.rand

# ---- conv2d ---------------------------------------------------------------
x = R((2, 3, 7, 8))
w = R((4, 3, 3, 3))
b = R((4,))
c2("c2_basic", x, w, b)
c2("c2_nobias", x, w)
c2("c2_stride2", x, w, b, stride=(2, 2))
c2("c2_stride21", x, w, b, stride=(2, 1))
c2("c2_pad1", x, w, b, pads=(1, 1, 1, 1))
c2("c2_pad_hw", x, w, b, pads=(2, 1, 2, 1))
c2("c2_pad_asym", x, w, b, pads=(1, 2, 0, 3))
c2("c2_pad_stride", x, w, b, stride=(2, 3), pads=(1, 1, 1, 1))
c2("c2_dil2", x, w, b, dilation=(2, 2))
c2("c2_dil21_pad", x, w, b, dilation=(2, 1), pads=(2, 1, 2, 1))
c2("c2_dil_stride_pad", R((2, 3, 11, 10)), w, b, stride=(2, 2), pads=(2, 2, 2, 2), dilation=(3, 2))
c2("c2_kernel_rect", x, R((5, 3, 2, 4)), R((5,)), pads=(0, 1, 1, 2))
c2("c2_kernel_eq_input", R((2, 3, 3, 4)), R((2, 3, 3, 4)), R((2,)))
c2("c2_kernel_needs_pad", R((1, 2, 2, 2)), R((3, 2, 3, 3)), R((3,)), pads=(1, 1, 0, 0))
c2("c2_groups2", R((2, 4, 6, 6)), R((6, 2, 3, 3)), R((6,)), groups=2, pads=(1, 1, 1, 1))
c2("c2_groups3_stride", R((2, 6, 9, 7)), R((3, 2, 3, 2)), R((3,)), groups=3, stride=(2, 2))
c2("c2_depthwise", R((2, 4, 8, 8)), R((4, 1, 3, 3)), R((4,)), groups=4, pads=(1, 1, 1, 1))
c2("c2_depthwise_mult2", R((2, 4, 8, 8)), R((8, 1, 3, 3)), R((8,)), groups=4, stride=(2, 2), pads=(1, 1, 1, 1))
c2("c2_depthwise_dil", R((1, 3, 9, 9)), R((3, 1, 3, 3)), None, groups=3, dilation=(2, 2), pads=(2, 2, 2, 2))
c2("c2_cin1", R((3, 1, 12, 12)), R((6, 1, 5, 5)), R((6,)))                     # LeNet conv1 (direct)
c2("c2_cin1_pad", R((2, 1, 10, 9)), R((4, 1, 3, 3)), R((4,)), pads=(2, 1, 0, 2), stride=(1, 2))
c2("c2_cin1_many_out", R((2, 1, 9, 9)), R((12, 1, 3, 3)), R((12,)), pads=(1, 1, 1, 1))  # gemm
c2("c2_lenet2", R((4, 6, 12, 12)), R((16, 6, 5, 5)), R((16,)))
c2("c2_pointwise", R((3, 8, 5, 5)), R((6, 8, 1, 1)), R((6,)))
c2("c2_pointwise_n1", R((1, 8, 5, 5)), R((6, 8, 1, 1)), R((6,)))            # gemm straight on x
c2("c2_pointwise_n1_nobias", R((1, 8, 5, 5)), R((6, 8, 1, 1)))
c2("c2_pointwise_stride2", R((2, 8, 6, 6)), R((5, 8, 1, 1)), R((5,)), stride=(2, 2))
c2("c2_pointwise_pad", R((2, 4, 3, 3)), R((5, 4, 1, 1)), R((5,)), pads=(1, 1, 1, 1))
c2("c2_pointwise_groups", R((1, 8, 4, 4)), R((6, 4, 1, 1)), R((6,)), groups=2)
c2("c2_n1", R((1, 5, 9, 9)), R((7, 5, 3, 3)), R((7,)), pads=(1, 1, 1, 1))
c2("c2_n1_groups", R((1, 6, 9, 9)), R((4, 3, 3, 3)), R((4,)), groups=2, pads=(1, 1, 1, 1))
c2("c2_1x1_spatial", R((5, 16, 1, 1)), R((8, 16, 3, 3)), R((8,)), pads=(1, 1, 1, 1))   # ResNet layer4-like
c2("c2_same_even", R((2, 3, 6, 7)), R((4, 3, 4, 4)), R((4,)), pads=(1, 1, 2, 2))
c2("c2_same_even_dil", R((2, 3, 8, 8)), R((2, 3, 2, 4)), R((2,)), pads=(1, 3, 1, 3), dilation=(2, 2))
# Shapes oneDNN builds route to its convolution (conv_onednn.c: >= 128 input
# and output channels, <= 2304 inputs per output, groups 1): the batch split
# per thread uneven or a single sample, strides, asymmetric pads, dilation,
# output channels not a multiple of 16, rectangular kernels, 1x1 downsample.
# Sums of 1152-2304 f32 products: atol 1e-4 (f32 rounding, either kernel).
c2("c2_dnnl_odd_batch", R((3, 128, 5, 5)), R((128, 128, 3, 3)), R((128,)), pads=(1, 1, 1, 1), tol=(1e-4, 1e-4))
c2("c2_dnnl_n1_asym_stride", R((1, 128, 6, 7)), R((128, 128, 3, 3)), None, stride=(2, 2), pads=(1, 0, 2, 1), tol=(1e-4, 1e-4))
c2("c2_dnnl_dil_o136", R((5, 128, 6, 6)), R((136, 128, 3, 3)), R((136,)), pads=(2, 2, 2, 2), dilation=(2, 2), tol=(1e-4, 1e-4))
c2("c2_dnnl_rect_stride21", R((2, 128, 5, 6)), R((130, 128, 2, 3)), R((130,)), stride=(2, 1), pads=(0, 1, 1, 1), tol=(1e-4, 1e-4))
c2("c2_dnnl_1x1_s2", R((3, 160, 6, 6)), R((128, 160, 1, 1)), None, stride=(2, 2), tol=(1e-4, 1e-4))
c2("c2_dnnl_256_3x3", R((3, 256, 3, 3)), R((128, 256, 3, 3)), R((128,)), pads=(1, 1, 1, 1), tol=(1e-4, 1e-4))
cs.case("c2_one_value_attrs", "conv2d", [x, w, b], [conv2d_ref(x, w, b, (2, 2), (1, 1, 1, 1))],
        {"stride": [2], "pads": [1], "dilation": [1]}, tol=TOL32)
xs = R((2, 3, 7, 8))
cs.case("c2_same_torch_check", "conv2d", [xs, w, b],
        [F.conv2d(t64(xs), t64(w), t64(b), padding="same").numpy().astype(np.float32)],
        {"pads": [1, 1, 1, 1]}, tol=TOL32)
w4 = R((4, 3, 4, 3))
cs.case("c2_same_even_torch", "conv2d", [xs, w4, b],
        [F.conv2d(t64(xs), t64(w4), t64(b), padding="same").numpy().astype(np.float32)],
        {"pads": [1, 1, 2, 1]}, tol=TOL32)
# the direct kernel: wide rows (a full vector plus a tail), output-channel
# tails of 1, 4, 8 and 16, several samples per thread, dilation, row stride
c2("c2_direct_wide", R((2, 3, 6, 20)), R((5, 3, 3, 3)), R((5,)), pads=(1, 1, 1, 1))
c2("c2_direct_wide_many", R((6, 4, 5, 37)), R((17, 4, 3, 3)), R((17,)), pads=(0, 2, 1, 1))
c2("c2_direct_og20", R((5, 2, 6, 9)), R((20, 2, 2, 3)), R((20,)))
c2("c2_direct_og13_dil", R((4, 3, 9, 16)), R((13, 3, 3, 3)), R((13,)), dilation=(2, 3), pads=(1, 3, 2, 3))
c2("c2_direct_og1", R((3, 2, 7, 7)), R((1, 2, 3, 3)), None, pads=(1, 1, 1, 1))
c2("c2_direct_stride_h", R((2, 3, 9, 14)), R((6, 3, 3, 3)), R((6,)), stride=(2, 1), pads=(1, 1, 1, 1))
c2("c2_direct_groups_wide", R((2, 6, 5, 18)), R((4, 3, 3, 2)), R((4,)), groups=2, pads=(1, 0, 1, 1))
c2("c2_direct_depthwise_wide", R((5, 3, 6, 17)), R((3, 1, 3, 3)), R((3,)), groups=3, pads=(1, 1, 1, 1))
c2("c2_direct_f64_wide", R((4, 2, 5, 9), np.float64), R((5, 2, 3, 3), np.float64), R((5,), np.float64),
   pads=(1, 1, 1, 1))
# the channel-vectorized kernel (AVX-512 builds): 16/32/64-channel blocks,
# padded channel tails, strides, dilation, groups, taps that only see padding
c2("c2_cblock_og64", R((3, 8, 5, 6)), R((64, 8, 3, 3)), R((64,)), pads=(1, 1, 1, 1))
c2("c2_cblock_og32_s2", R((2, 8, 9, 7)), R((32, 8, 3, 3)), R((32,)), stride=(2, 2), pads=(1, 1, 1, 1))
c2("c2_cblock_og24_dil", R((2, 8, 9, 9)), R((24, 8, 3, 3)), None, dilation=(2, 1), pads=(2, 0, 1, 1))
c2("c2_cblock_groups", R((2, 16, 5, 5)), R((32, 8, 3, 3)), R((32,)), groups=2, stride=(1, 2), pads=(1, 1, 1, 1))
c2("c2_cblock_1x1", R((3, 80, 3, 3)), R((16, 80, 1, 1)), R((16,)))
c2("c2_cblock_1x1_s2", R((2, 72, 5, 5)), R((16, 72, 1, 1)), R((16,)), stride=(2, 2))
c2("c2_cblock_7x7_s2", R((2, 3, 11, 11)), R((16, 3, 7, 7)), R((16,)), stride=(2, 2), pads=(3, 3, 3, 3))
c2("c2_cblock_dead_taps", R((9, 16, 1, 1)), R((32, 16, 3, 3)), R((32,)), pads=(1, 1, 1, 1))
c2("c2_cblock_f64_og8", R((2, 8, 5, 5), np.float64), R((8, 8, 3, 3), np.float64), R((8,), np.float64),
   pads=(1, 1, 1, 1))
c2("c2_cblock_f64_og16", R((2, 8, 5, 4), np.float64), R((16, 8, 3, 3), np.float64), R((16,), np.float64),
   stride=(2, 1))
c2("c2_cblock_f64_og32", R((1, 8, 4, 4), np.float64), R((32, 8, 3, 3), np.float64), None, pads=(1, 1, 1, 1))
# the few-channel kernel (AVX-512 builds, f32, <= 8 output channels per
# group, stride 1 along W): blocks of output rows (a partial last block),
# several 16-column segments, rows whose taps all read padding, groups,
# depthwise, one sample (rows split over threads)
c2("c2_rows_lenet1", R((3, 1, 28, 28)), R((6, 1, 5, 5)), R((6,)), pads=(2, 2, 2, 2))
c2("c2_rows_og3_segs", R((2, 4, 13, 33)), R((3, 4, 3, 3)), R((3,)), pads=(1, 1, 1, 1))
c2("c2_rows_og8_sh2_dil", R((2, 3, 17, 20)), R((8, 3, 3, 2)), None, stride=(2, 1), dilation=(2, 2),
   pads=(1, 0, 2, 1))
c2("c2_rows_og5_groups", R((2, 6, 9, 16)), R((10, 3, 3, 3)), R((10,)), groups=2, pads=(0, 1, 0, 1))
c2("c2_rows_depthwise_n1", R((1, 3, 30, 12)), R((3, 1, 3, 3)), R((3,)), groups=3, pads=(1, 1, 1, 1))
c2("c2_rows_og7_pad_rows", R((1, 2, 6, 9)), R((7, 2, 2, 2)), None, pads=(3, 0, 2, 0))
c2("c2_rows_og4_1x3", R((2, 2, 5, 40)), R((4, 2, 1, 3)), R((4,)), pads=(0, 1, 0, 1))
# the gemm paths: strided (small per-sample gemms spread over threads), many
# channels, taps that only ever see padding (1x1 map, 3x3 kernel)
c2("c2_gemm_stride_small", R((5, 3, 9, 9)), R((8, 3, 3, 3)), R((8,)), stride=(2, 2), pads=(1, 1, 1, 1))
c2("c2_gemm_dead_taps", R((3, 64, 1, 1)), R((32, 64, 3, 3)), R((32,)), pads=(1, 1, 1, 1))
c2("c2_gemm_dead_taps_2x2", R((2, 48, 2, 2)), R((24, 48, 5, 5)), R((24,)), pads=(2, 2, 2, 2))
c2("c2_gemm_wide_channels", R((2, 40, 6, 6)), R((48, 40, 3, 3)), R((48,)), pads=(1, 1, 1, 1))
c2("c2_gemm_n1_big", R((1, 40, 6, 6)), R((48, 40, 3, 3)), None, stride=(1, 2), pads=(1, 1, 1, 1))
# non-contiguous input and weight
xp = R((7, 2, 3, 8))   # stored (H, N, C, W), viewed as (N, C, H, W)
c2("c2_x_permuted", xp.transpose(1, 2, 0, 3), w, b, pads=(1, 1, 1, 1), xin=In(xp, view=[("permute", [1, 2, 0, 3])]))
wp = R((3, 3, 3, 4))   # stored (KH, KW, Cin, Cout)
c2("c2_w_permuted", x, wp.transpose(3, 2, 0, 1), b, win=In(wp, view=[("permute", [3, 2, 0, 1])]))
xsl = R((2, 3, 7, 16))
c2("c2_x_sliced", xsl[:, :, :, ::2], w, b, xin=In(xsl, view=[("slice", 3, 0, 16, 2)]))
bb = R((8,))
cs.case("c2_bias_strided", "conv2d", [x, w, In(bb, view=[("slice", 0, 0, 8, 2)])],
        [conv2d_ref(x, w, bb[::2])], tol=TOL32)
# dtypes, unbatched, empty
c2("c2_f64", R((2, 3, 6, 6), np.float64), R((4, 3, 3, 3), np.float64), R((4,), np.float64), stride=(2, 1),
   pads=(1, 1, 1, 1))
c2("c2_f64_depthwise", R((1, 3, 6, 6), np.float64), R((3, 1, 3, 3), np.float64), None, groups=3)
c2("c2_f64_pointwise_n1", R((1, 4, 3, 3), np.float64), R((2, 4, 1, 1), np.float64), R((2,), np.float64))
c2("c2_unbatched", R((3, 7, 8)), w, b, pads=(1, 1, 1, 1))
c2("c2_empty_batch", np.zeros((0, 3, 7, 8), np.float32), w, b)
cs.case("c2_no_in_channels", "conv2d", [np.zeros((2, 0, 4, 4), np.float32), np.zeros((3, 0, 3, 3), np.float32), b[:3]],
        [np.broadcast_to(b[:3][None, :, None, None], (2, 3, 2, 2)).copy()], tol=TOL32)
xh = torch.from_numpy(R((2, 3, 6, 6))).half()
wh = torch.from_numpy(R((4, 3, 3, 3))).half()
bh = torch.from_numpy(R((4,))).half()
eh = F.conv2d(xh.double(), wh.double(), bh.double(), padding=1).half().numpy()
cs.case("c2_f16", "conv2d", [xh.numpy(), wh.numpy(), bh.numpy()], [eh], {"pads": [1, 1, 1, 1]}, tol=(2e-3, 2e-3))
xb = torch.from_numpy(R((2, 4, 5, 5))).bfloat16()
wb = torch.from_numpy(R((4, 1, 3, 3))).bfloat16()
eb = F.conv2d(xb.double(), wb.double(), None, groups=4).bfloat16().float().numpy()
cs.case("c2_bf16_depthwise", "conv2d", [In(xb.float().numpy(), dtype="bf16"), In(wb.float().numpy(), dtype="bf16"), None],
        [Out(eb, dtype="bf16")], {"groups": 4}, tol=(1.6e-2, 1e-2))
# errors
cs.error("c2_err_channels", "conv2d", [R((1, 4, 5, 5)), R((2, 3, 3, 3)), None], "channel mismatch")
cs.error("c2_err_groups_in", "conv2d", [R((1, 4, 5, 5)), R((3, 2, 3, 3)), None], "must divide the input channels",
         {"groups": 3})
cs.error("c2_err_groups_out", "conv2d", [R((1, 4, 5, 5)), R((3, 2, 3, 3)), None], "must divide the output channels",
         {"groups": 2})
cs.error("c2_err_groups0", "conv2d", [R((1, 4, 5, 5)), R((3, 4, 3, 3)), None], "groups must be >= 1", {"groups": 0})
cs.error("c2_err_kernel_big", "conv2d", [R((1, 3, 4, 4)), R((2, 3, 5, 5)), None], "larger than the padded input")
cs.error("c2_err_kernel_big_dil", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), None], "larger than the padded input",
         {"dilation": [3, 3]})
cs.error("c2_err_x_ndim", "conv2d", [R((3, 5)), R((2, 3, 3, 3)), None], "expected a 3-D (C, H, W) or 4-D")
cs.error("c2_err_x_5d", "conv2d", [R((1, 1, 3, 5, 5)), R((2, 3, 3, 3)), None], "4-D (N, C, H, W)")
cs.error("c2_err_w_ndim", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3)), None], "expected a 4-D weight")
cs.error("c2_err_int", "conv2d", [np.ones((1, 3, 5, 5), np.int64), np.ones((2, 3, 3, 3), np.int64), None],
         "expected a float input")
cs.error("c2_err_dtype_mix", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3), np.float64), None], "same dtype")
cs.error("c2_err_bias_dtype", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), R((2,), np.float64)], "same dtype")
cs.error("c2_err_bias_shape", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), R((3,))], "bias must have shape [2]")
cs.error("c2_err_stride0", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), None], "'stride' must be >= 1",
         {"stride": [0, 1]})
cs.error("c2_err_neg_pad", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), None], "'pads' must be >= 0",
         {"pads": [0, -1, 0, 0]})
cs.error("c2_err_pads_len", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), None], "needs 4 values, got 3",
         {"pads": [1, 1, 1]})
cs.error("c2_err_dilation0", "conv2d", [R((1, 3, 5, 5)), R((2, 3, 3, 3)), None], "'dilation' must be >= 1",
         {"dilation": [0, 0]})

# ---- conv1d ---------------------------------------------------------------
x1 = R((2, 4, 11))
w1 = R((3, 4, 3))
b1 = R((3,))
c1("c1_basic", x1, w1, b1)
c1("c1_nobias", x1, w1)
c1("c1_stride", x1, w1, b1, stride=2)
c1("c1_pads", x1, w1, b1, pads=(1, 1))
c1("c1_pads_asym", x1, w1, b1, pads=(0, 2), stride=3)
c1("c1_dilation", x1, w1, b1, dilation=3, pads=(2, 2))
c1("c1_groups", x1, R((6, 2, 3)), R((6,)), groups=2)
c1("c1_depthwise", x1, R((4, 1, 5)), R((4,)), groups=4, pads=(2, 2))
c1("c1_pointwise", x1, R((5, 4, 1)), R((5,)))
c1("c1_unbatched", R((4, 9)), w1, b1, pads=(1, 1))
c1("c1_f64", R((2, 4, 11), np.float64), R((3, 4, 3), np.float64), R((3,), np.float64), stride=2, pads=(1, 1))
x1p = R((11, 2, 4))
c1("c1_x_permuted", x1p.transpose(1, 2, 0), w1, b1, xin=In(x1p, view=[("permute", [1, 2, 0])]))
c1("c1_empty_batch", np.zeros((0, 4, 11), np.float32), w1, b1)
c1("c1_same_even", R((2, 4, 10)), R((3, 4, 4)), b1, pads=(1, 2))
xbf = torch.from_numpy(R((2, 4, 9))).bfloat16()
wbf = torch.from_numpy(R((3, 4, 3))).bfloat16()
ebf = F.conv1d(xbf.double(), wbf.double(), None, padding=1).bfloat16().float().numpy()
cs.case("c1_bf16", "conv1d", [In(xbf.float().numpy(), dtype="bf16"), In(wbf.float().numpy(), dtype="bf16"), None],
        [Out(ebf, dtype="bf16")], {"pads": [1, 1]}, tol=(1.6e-2, 1e-2))
cs.error("c1_err_channels", "conv1d", [x1, R((3, 5, 3)), None], "channel mismatch")
cs.error("c1_err_groups", "conv1d", [x1, R((3, 4, 3)), None], "must divide the input channels", {"groups": 3})
cs.error("c1_err_kernel_big", "conv1d", [R((1, 4, 3)), R((3, 4, 5)), None], "larger than the padded input")
cs.error("c1_err_ndim", "conv1d", [R((1, 2, 4, 3)), w1, None], "expected a 2-D (C, L) or 3-D")
cs.error("c1_err_w_ndim", "conv1d", [x1, R((3, 4, 3, 1)), None], "expected a 3-D weight")
cs.error("c1_err_dtype", "conv1d", [x1.astype(np.float64), w1, None], "same dtype")
cs.error("c1_err_stride_len", "conv1d", [x1, w1, None], "needs 1 values, got 2", {"stride": [1, 1]})

# ---- conv_transpose2d -----------------------------------------------------
xt = R((2, 4, 5, 6))
wt = R((4, 3, 3, 3))
bt = R((3,))
ct("ct_basic", xt, wt, bt)
ct("ct_nobias", xt, wt)
ct("ct_stride2", xt, wt, bt, stride=(2, 2))
ct("ct_stride_pad", xt, wt, bt, stride=(2, 2), pads=(1, 1, 1, 1))
ct("ct_stride_pad_outpad", xt, wt, bt, stride=(2, 3), pads=(1, 1, 1, 1), output_padding=(1, 2))
ct("ct_outpad_dil", xt, wt, bt, stride=(1, 1), dilation=(2, 2), output_padding=(1, 1))
ct("ct_dilation", xt, wt, bt, dilation=(2, 1), pads=(1, 0, 1, 0))
ct("ct_pads_asym", xt, wt, bt, stride=(2, 2), pads=(0, 1, 2, 1))
ct("ct_groups", R((2, 4, 4, 4)), R((4, 3, 3, 3)), R((6,)), groups=2, stride=(2, 2), pads=(1, 1, 1, 1))
ct("ct_depthwise", R((2, 3, 4, 4)), R((3, 1, 2, 2)), R((3,)), groups=3, stride=(2, 2))
ct("ct_k4s2p1", R((2, 8, 4, 4)), R((8, 4, 4, 4)), R((4,)), stride=(2, 2), pads=(1, 1, 1, 1))   # DCGAN-style
ct("ct_1x1", R((2, 5, 3, 3)), R((5, 2, 1, 1)), R((2,)))
ct("ct_n1", R((1, 4, 5, 6)), wt, bt, stride=(2, 2))
ct("ct_unbatched", R((4, 5, 6)), wt, bt, stride=(2, 2), pads=(1, 1, 1, 1))
ct("ct_f64", R((2, 4, 5, 6), np.float64), R((4, 3, 3, 3), np.float64), R((3,), np.float64), stride=(2, 2),
   output_padding=(1, 0))
xtp = R((5, 2, 4, 6))
ct("ct_x_permuted", xtp.transpose(1, 2, 0, 3), wt, bt, stride=(2, 1), xin=In(xtp, view=[("permute", [1, 2, 0, 3])]))
ct("ct_empty_batch", np.zeros((0, 4, 5, 6), np.float32), wt, bt, stride=(2, 2))
xth = torch.from_numpy(R((1, 4, 3, 3))).half()
wth = torch.from_numpy(R((4, 2, 3, 3))).half()
eth = F.conv_transpose2d(xth.double(), wth.double(), None, stride=2).half().numpy()
cs.case("ct_f16", "conv_transpose2d", [xth.numpy(), wth.numpy(), None], [eth], {"stride": [2, 2]}, tol=(2e-3, 2e-3))
# as forward convs: ResNet's strided input gradient (channel-vectorized
# kernel), output phases with no taps (bias only), stride 3, a bottom crop
# past the kernel (scratch output), LeNet's conv2 input gradient and a
# depthwise one (few-channel kernel); pads past the kernel's reach and
# strides with dilation take the gemm + col2im path
ct("ct_fwd_rn_s2", R((2, 32, 4, 4)), R((32, 16, 3, 3)), None, stride=(2, 2), pads=(1, 1, 1, 1),
   output_padding=(1, 1))
ct("ct_fwd_1x1_s2", R((2, 32, 4, 4)), R((32, 16, 1, 1)), R((16,)), stride=(2, 2), output_padding=(1, 1))
ct("ct_fwd_s1_cblock", R((2, 32, 5, 5)), R((32, 16, 3, 3)), R((16,)), pads=(1, 1, 1, 1))
ct("ct_fwd_s3_k5", R((2, 3, 4, 5)), R((3, 4, 5, 5)), R((4,)), stride=(3, 2), pads=(2, 1, 0, 3),
   output_padding=(2, 1))
ct("ct_fwd_s1_crop_bottom", R((2, 3, 6, 6)), R((3, 2, 3, 3)), R((2,)), pads=(0, 0, 3, 3))
ct("ct_fwd_lenet_dgrad", R((3, 16, 10, 10)), R((16, 6, 5, 5)), None)
ct("ct_fwd_depthwise", R((2, 4, 9, 16)), R((4, 1, 3, 3)), None, groups=4, pads=(1, 1, 1, 1))
ct("ct_fwd_groups_s2", R((2, 4, 5, 5)), R((4, 3, 3, 3)), R((6,)), groups=2, stride=(2, 2), pads=(1, 1, 1, 1),
   output_padding=(1, 1))
ct("ct_gemm_pad_past_kernel", R((2, 3, 6, 6)), R((3, 2, 2, 2)), None, pads=(2, 2, 2, 2))
# stride 1 on small inputs as a gemm and shifted sums (conv_transpose_cols.c):
# LeNet's conv2 input gradient with an odd batch (a last chunk of one
# sample), batch 1 and unbatched, kernel widths 3 (unrolled), 4 and 7 (any
# width), taps not a multiple of the register block, pads, groups, 1 and 8
# output channels, rows wider than a vector, pads past the kernel's reach,
# f64 (the forward-conv path)
ct("ct_cols_lenet_b5", R((5, 16, 10, 10)), R((16, 6, 5, 5)), R((6,)))
ct("ct_cols_lenet_b1", R((1, 16, 10, 10)), R((16, 6, 5, 5)), None)
ct("ct_cols_unbatched", R((16, 10, 10)), R((16, 6, 5, 5)), R((6,)))
ct("ct_cols_k43", R((3, 7, 5, 6)), R((7, 5, 4, 3)), R((5,)))
ct("ct_cols_k37_pads", R((2, 8, 6, 7)), R((8, 4, 3, 7)), R((4,)), pads=(1, 2, 0, 3))
ct("ct_cols_groups", R((3, 12, 5, 6)), R((12, 2, 5, 5)), R((6,)), groups=3, pads=(2, 1, 2, 1))
ct("ct_cols_og1", R((2, 16, 8, 8)), R((16, 1, 5, 5)), R((1,)))
ct("ct_cols_og8_wide", R((2, 8, 9, 20)), R((8, 8, 5, 5)), R((8,)))
ct("ct_cols_pads_past_kernel", R((2, 16, 6, 6)), R((16, 3, 3, 3)), R((3,)), pads=(3, 0, 1, 4))
ct("ct_cols_lenet_f64", R((3, 16, 10, 10), np.float64), R((16, 6, 5, 5), np.float64), R((6,), np.float64))
ct("ct_gemm_s2_dil2", R((2, 3, 4, 4)), R((3, 2, 3, 3)), R((2,)), stride=(2, 2), dilation=(2, 2), pads=(1, 1, 1, 1))
cs.error("ct_err_channels", "conv_transpose2d", [xt, R((3, 3, 3, 3)), None], "channel mismatch")
cs.error("ct_err_groups", "conv_transpose2d", [xt, wt, None], "must divide the input channels", {"groups": 3})
cs.error("ct_err_outpad", "conv_transpose2d", [xt, wt, None], "smaller than either stride or dilation",
         {"stride": [2, 2], "output_padding": [2, 0]})
cs.error("ct_err_too_small", "conv_transpose2d", [R((1, 4, 1, 1)), R((4, 3, 1, 1)), None], "too small",
         {"pads": [1, 1, 1, 1]})
cs.error("ct_err_ndim", "conv_transpose2d", [R((4, 5)), wt, None], "expected a 3-D (C, H, W) or 4-D")
cs.error("ct_err_bias", "conv_transpose2d", [xt, wt, R((4,))], "bias must have shape [3]")
cs.error("ct_err_int", "conv_transpose2d", [np.ones((1, 4, 2, 2), np.int32), np.ones((4, 3, 3, 3), np.int32), None],
         "expected a float input")

# ---- flip of a permuted weight (the copy conv gradients once made) --------
# flip's merged-dims copy: reversed rows, the blocked transpose (no unit
# stride innermost), and the generic fallback (no unit stride at all)
fw = R((20, 35, 3, 3))
cs.case("flip_conv_weight", "flip", [In(fw, view=[("permute", [1, 0, 2, 3])])],
        [np.ascontiguousarray(np.flip(fw.transpose(1, 0, 2, 3), axis=(2, 3)))], {"axes": [2, 3]})
fw64 = R((3, 17, 33), np.float64)
cs.case("flip_transpose_tiles", "flip", [In(fw64, view=[("permute", [2, 0, 1])])],
        [np.ascontiguousarray(np.flip(fw64.transpose(2, 0, 1), axis=(0, 2)))], {"axes": [0, 2]})
fs = R((6, 8, 10))
cs.case("flip_strided_fallback", "flip", [In(fs, view=[("slice", 2, 0, 10, 2), ("slice", 1, 0, 8, 2)])],
        [np.ascontiguousarray(np.flip(fs[:, ::2, ::2], axis=(1,)))], {"axes": [1]})

# ---- conv2d_weight_grad (the weight gradient op of conv2d's rule) ----------
# gw = d<gy, conv2d(x, w)>/dw, from torch autograd; gy may have any spatial
# size (positions past the conv's own output read x beyond its bottom/right
# edge: zeros), as it does when the op serves conv_transpose2d's rule.


def wgrad_ref(x, gy, kernel, stride=(1, 1), pads=(0, 0, 0, 0), dilation=(1, 1), groups=1):
    xt = t64(x)
    kh, kw = kernel
    oh, ow = gy.shape[2], gy.shape[3]
    ekh, ekw = dilation[0] * (kh - 1) + 1, dilation[1] * (kw - 1) + 1
    pb = max(pads[2], (oh - 1) * stride[0] + ekh - xt.shape[2] - pads[0])
    pr = max(pads[3], (ow - 1) * stride[1] + ekw - xt.shape[3] - pads[1])
    xt = F.pad(xt, (pads[1], pr, pads[0], pb))
    w = torch.zeros((gy.shape[1], x.shape[1] // groups, kh, kw), dtype=torch.float64, requires_grad=True)
    y = F.conv2d(xt, w, None, stride, 0, dilation, groups)
    g = F.pad(t64(gy), (0, y.shape[3] - ow, 0, y.shape[2] - oh))
    (gw,) = torch.autograd.grad(y, w, g)
    return gw.numpy().astype(x.dtype)


def wg(cid, x, gy, kernel, stride=None, pads=None, dilation=None, groups=None, xin=None):
    attrs = {"kernel": list(kernel)}
    if stride is not None:
        attrs["stride"] = list(stride)
    if pads is not None:
        attrs["pads"] = list(pads)
    if dilation is not None:
        attrs["dilation"] = list(dilation)
    if groups is not None:
        attrs["groups"] = groups
    p4 = pads if pads is None or len(pads) == 4 else (pads[0], pads[1], pads[0], pads[1])
    e = wgrad_ref(x, gy, kernel, stride or (1, 1), p4 or (0, 0, 0, 0), dilation or (1, 1), groups or 1)
    cs.case(cid, "conv2d_weight_grad", [xin if xin is not None else x, gy], [e], attrs, tol=tol_for(x.dtype))


wg("wg_basic", R((2, 3, 7, 8)), R((2, 4, 5, 6)), (3, 3))
wg("wg_pad", R((2, 3, 7, 8)), R((2, 4, 7, 8)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_stride_pad_asym", R((2, 3, 9, 8)), R((2, 5, 5, 3)), (3, 2), stride=(2, 3), pads=(1, 0, 2, 1))
wg("wg_dil", R((2, 2, 9, 9)), R((2, 3, 5, 7)), (3, 2), dilation=(2, 2), pads=(1, 1, 1, 1))
wg("wg_groups", R((2, 4, 6, 6)), R((2, 6, 6, 6)), (3, 3), pads=(1, 1, 1, 1), groups=2)
wg("wg_depthwise_s2", R((3, 3, 8, 8)), R((3, 6, 4, 4)), (3, 3), stride=(2, 2), pads=(1, 1, 1, 1), groups=3)
wg("wg_pointwise", R((3, 5, 4, 4)), R((3, 6, 4, 4)), (1, 1))
wg("wg_pointwise_n1", R((1, 5, 4, 4)), R((1, 6, 4, 4)), (1, 1))
wg("wg_pointwise_s2", R((2, 5, 5, 5)), R((2, 3, 3, 3)), (1, 1), stride=(2, 2))
wg("wg_dead_taps", R((4, 6, 1, 1)), R((4, 8, 1, 1)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_lenet1", R((8, 1, 12, 12)), R((8, 6, 8, 8)), (5, 5))
# the few-channel kernel (AVX-512 builds, f32, <= 8 output channels per
# group, stride 1 along W): row blocks with a remainder, a masked last
# column segment, depthwise, row stride 2, one sample, gy wider than the
# conv's output, taps that only see padding
wg("wg_rows_lenet1", R((3, 1, 28, 28)), R((3, 6, 28, 28)), (5, 5), pads=(2, 2, 2, 2))
wg("wg_rows_og7_cin5", R((2, 5, 9, 16)), R((2, 7, 9, 16)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_rows_og5_rem", R((3, 5, 9, 27)), R((3, 5, 9, 27)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_rows_depthwise", R((2, 4, 10, 12)), R((2, 4, 10, 12)), (3, 3), pads=(1, 1, 1, 1), groups=4)
wg("wg_rows_og8_sh2", R((2, 3, 17, 16)), R((2, 8, 8, 16)), (3, 3), stride=(2, 1), pads=(1, 1, 1, 1))
wg("wg_rows_og2_dil", R((3, 2, 12, 20)), R((3, 2, 8, 16)), (3, 3), dilation=(2, 2), pads=(0, 0, 0, 0))
wg("wg_rows_groups_n1", R((1, 4, 6, 14)), R((1, 6, 6, 14)), (3, 3), pads=(1, 1, 1, 1), groups=2)
wg("wg_rows_gy_long", R((2, 2, 5, 12)), R((2, 3, 6, 14)), (2, 3), pads=(0, 1, 0, 0))
wg("wg_rows_dead_taps", R((2, 2, 1, 16)), R((2, 4, 1, 16)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_rows_og3_wide", R((2, 2, 6, 40)), R((2, 3, 6, 40)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_rows_og6_r27", R((3, 3, 7, 30)), R((3, 6, 7, 30)), (3, 3), pads=(1, 1, 1, 1))
# the per-sample kernel (AVX-512 builds, f32, 9-16 output channels per
# group, kernel width 3 or 5, unit stride and dilation along W, at least a
# sample per thread): LeNet's conv2 with an odd batch, 12 and 9 channels
# (lanes past og), padding, row stride and dilation, groups, gy wider than
# the conv's output, a single position (no pair of columns), blocks of
# (ci, kh) rows split unevenly; f64 takes the channel-vectorized kernel
wg("wg_sample_lenet2", R((5, 6, 14, 14)), R((5, 16, 10, 10)), (5, 5))
wg("wg_sample_og12_pad", R((3, 5, 9, 11)), R((3, 12, 9, 11)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_sample_og9_sh2", R((2, 7, 11, 9)), R((2, 9, 6, 9)), (3, 3), stride=(2, 1), pads=(1, 1, 1, 1))
wg("wg_sample_groups", R((2, 4, 8, 7)), R((2, 24, 8, 7)), (5, 5), pads=(2, 2, 2, 2), groups=2)
wg("wg_sample_dil_h", R((2, 3, 12, 10)), R((2, 16, 8, 8)), (3, 3), dilation=(2, 1))
wg("wg_sample_gy_long", R((2, 3, 6, 6)), R((2, 10, 5, 7)), (3, 3))
wg("wg_sample_one_pos", R((3, 6, 5, 5)), R((3, 16, 1, 1)), (5, 5))
wg("wg_sample_dead_taps", R((2, 3, 1, 2)), R((2, 16, 1, 2)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_lenet2_f64", R((3, 6, 14, 14), np.float64), R((3, 16, 10, 10), np.float64), (5, 5))
wg("wg_gy_short", R((2, 3, 7, 7)), R((2, 4, 2, 3)), (3, 3), stride=(2, 2), pads=(1, 1, 0, 0))
wg("wg_gy_long", R((1, 2, 5, 4)), R((1, 3, 5, 6)), (2, 3), stride=(1, 1), pads=(0, 1, 0, 0))
wg("wg_sym_pads", R((2, 3, 6, 5)), R((2, 2, 6, 5)), (3, 3), pads=(1, 1))
wg("wg_f64", R((2, 3, 6, 6), np.float64), R((2, 4, 3, 3), np.float64), (3, 3), stride=(2, 2), pads=(1, 1, 1, 1))
wg("wg_n1", R((1, 8, 6, 6)), R((1, 16, 6, 6)), (3, 3), pads=(1, 1, 1, 1))
wg("wg_empty_batch", np.zeros((0, 3, 5, 5), np.float32), np.zeros((0, 4, 3, 3), np.float32), (3, 3))
xwp = R((7, 2, 3, 8))
wg("wg_x_permuted", xwp.transpose(1, 2, 0, 3), R((2, 4, 7, 8)), (3, 3), pads=(1, 1, 1, 1),
   xin=In(xwp, view=[("permute", [1, 2, 0, 3])]))
cs.error("wg_err_ndim", "conv2d_weight_grad", [R((3, 5, 5)), R((4, 3, 3))], "expected a 4-D input",
         {"kernel": [3, 3]})
cs.error("wg_err_batch", "conv2d_weight_grad", [R((2, 3, 5, 5)), R((1, 4, 3, 3))], "batch sizes differ",
         {"kernel": [3, 3]})
cs.error("wg_err_kernel", "conv2d_weight_grad", [R((2, 3, 5, 5)), R((2, 4, 3, 3))], "'kernel' is required")
cs.error("wg_err_groups", "conv2d_weight_grad", [R((2, 3, 5, 5)), R((2, 4, 3, 3))], "must divide",
         {"kernel": [3, 3], "groups": 2})
cs.error("wg_err_dtype", "conv2d_weight_grad", [R((2, 3, 5, 5)), R((2, 4, 3, 3), np.float64)], "same dtype",
         {"kernel": [3, 3]})

main_write(cs)
