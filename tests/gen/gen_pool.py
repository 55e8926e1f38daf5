"""Reference cases for max_pool2d, avg_pool2d and adaptive_avg_pool2d, from
PyTorch 1.13 (torch.nn.functional)."""
import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, In, Out, main_write

cs = Cases(seed=31)
R = cs.rand
TOL32 = (1e-5, 1e-6)
TOL64 = (1e-10, 1e-12)


def tol_for(a):
    return TOL64 if a.dtype == np.float64 else TOL32


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def mp(cid, x, kernel, stride=None, padding=None, ceil_mode=None, xin=None):
    attrs = {"kernel": list(kernel)}
    if stride is not None:
        attrs["stride"] = list(stride)
    if padding is not None:
        attrs["padding"] = list(padding)
    if ceil_mode is not None:
        attrs["ceil_mode"] = int(ceil_mode)
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    if x.dtype.kind in "iu":  # torch's CPU max pool is float only: compute in f64, exact for these ints
        e = F.max_pool2d(t(x.astype(np.float64)), kernel, st, padding or 0, 1, bool(ceil_mode)).numpy().astype(x.dtype)
    else:
        e = F.max_pool2d(t(x), kernel, st, padding or 0, 1, bool(ceil_mode)).numpy()
    cs.case(cid, "max_pool2d", [xin if xin is not None else x], [e], attrs,
            tol=None if x.dtype.kind in "iu" else tol_for(x))


def ap(cid, x, kernel, stride=None, padding=None, ceil_mode=None, count_include_pad=None, xin=None, tol=None):
    attrs = {"kernel": list(kernel)}
    if stride is not None:
        attrs["stride"] = list(stride)
    if padding is not None:
        attrs["padding"] = list(padding)
    if ceil_mode is not None:
        attrs["ceil_mode"] = int(ceil_mode)
    if count_include_pad is not None:
        attrs["count_include_pad"] = int(count_include_pad)
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    e = F.avg_pool2d(t(x), kernel, st, padding or 0, bool(ceil_mode),
                     True if count_include_pad is None else bool(count_include_pad)).numpy()
    cs.case(cid, "avg_pool2d", [xin if xin is not None else x], [e], attrs, tol=tol or tol_for(x))


def aap(cid, x, out, xin=None):
    e = F.adaptive_avg_pool2d(t(x), out).numpy()
    cs.case(cid, "adaptive_avg_pool2d", [xin if xin is not None else x], [e], {"output_size": list(out)},
            tol=tol_for(x))


x = R((2, 3, 8, 9))
# ---- max_pool2d ------------------------------------------------------------
mp("mp_2x2", x, (2, 2))
mp("mp_3x3_s2", x, (3, 3), (2, 2))
mp("mp_3x3_s2_p1", x, (3, 3), (2, 2), (1, 1))                      # ResNet stem
mp("mp_3x2_s1", x, (3, 2), (1, 1))
mp("mp_rect_pad", x, (4, 3), (2, 1), (2, 1))
mp("mp_stride0_is_kernel", x, (2, 3), (0, 0))
mp("mp_ceil", x, (2, 2), (2, 2), None, True)
mp("mp_ceil_pad", R((1, 2, 7, 7)), (3, 3), (2, 2), (1, 1), True)
mp("mp_ceil_s3", R((1, 2, 10, 11)), (2, 2), (3, 3), (1, 0), True)
mp("mp_ceil_noop", R((1, 1, 8, 8)), (2, 2), (2, 2), None, True)
mp("mp_one_value", x, (2,), (1,))
mp("mp_big_kernel", R((1, 2, 5, 5)), (5, 5))
mp("mp_unbatched", R((3, 8, 9)), (2, 2))
mp("mp_lenet", R((4, 6, 24, 24)), (2, 2))
mp("mp_f64", R((2, 2, 7, 6), np.float64), (3, 3), (2, 2), (1, 1))
mp("mp_empty_batch", np.zeros((0, 3, 8, 8), np.float32), (2, 2))
cs.case("mp_empty_channels", "max_pool2d", [np.zeros((2, 0, 8, 8), np.float32)], [np.zeros((2, 0, 4, 4), np.float32)],
        {"kernel": [2, 2]})
xp = R((8, 2, 3, 9))
mp("mp_noncontig", xp.transpose(1, 2, 0, 3), (2, 2), xin=In(xp, view=[("permute", [1, 2, 0, 3])]))
xn = R((1, 1, 4, 4))
xn[0, 0, 1, 1] = np.nan
xn[0, 0, 3, 3] = np.nan
mp("mp_nan", xn, (2, 2), (1, 1))
xi = cs.randint((2, 2, 6, 7), -100, 100)
mp("mp_i64", xi, (3, 3), (2, 2), (1, 1))
mp("mp_i32", cs.randint((1, 2, 6, 6), -1000, 1000, np.int32), (2, 2))
mp("mp_u8", cs.randint((1, 3, 5, 6), 0, 256, np.uint8), (2, 3), (1, 2), (1, 1))
mp("mp_i8", cs.randint((1, 1, 6, 6), -128, 128, np.int8), (3, 3), (3, 3), (1, 1), True)
xh = R((1, 2, 6, 6)).astype(np.float16)
cs.case("mp_f16", "max_pool2d", [xh], [F.max_pool2d(t(xh).float(), 2).half().numpy()], {"kernel": [2, 2]},
        tol=(0, 0))
xb = torch.from_numpy(R((1, 2, 6, 6))).bfloat16()
cs.case("mp_bf16", "max_pool2d", [In(xb.float().numpy(), dtype="bf16")],
        [Out(F.max_pool2d(xb.float(), 3, 2, 1).bfloat16().float().numpy(), dtype="bf16")],
        {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]}, tol=(0, 0))
# the vector kernels (pool_max.c, pool_max2x2.c): rows longer than a vector,
# their borders, and rows of at most one (masked) vector; over 3000 elements,
# so the gradient harness leaves these to the small cases above
mp("mp_2x2_wide", R((2, 3, 8, 70)), (2, 2))                          # overlapping last vector
mp("mp_2x2_lenet2", R((8, 16, 10, 10)), (2, 2))                      # a row: one masked vector
mp("mp_2x2_odd_wide", R((2, 3, 9, 67)), (2, 2))                      # a column and a row left out
mp("mp_2x2_ceil_wide", R((2, 3, 9, 67)), (2, 2), None, None, True)   # clipped last windows
mp("mp_2x2_f64_wide", R((2, 3, 8, 70), np.float64), (2, 2))
mp("mp_2x2_f64_lenet", R((4, 6, 12, 14), np.float64), (2, 2))
mp("mp_3x3_s3_wide", R((2, 3, 9, 60)), (3, 3))                       # kernel == stride, stride 3
mp("mp_3x3_s3_odd", R((2, 3, 11, 62)), (3, 3), None, None, True)
mp("mp_stem_wide", R((2, 3, 9, 70)), (3, 3), (2, 2), (1, 1))         # stride 2, padding borders
mp("mp_stem_f64", R((2, 3, 9, 60), np.float64), (3, 3), (2, 2), (1, 1), True)
mp("mp_3x3_s1_p1_wide", R((2, 3, 6, 90)), (3, 3), (1, 1), (1, 1))    # stride 1 with padding
mp("mp_rect_s3_wide", R((2, 2, 10, 80)), (5, 4), (3, 3), (2, 2))
mp("mp_4x4_s4_wide", R((2, 2, 8, 100)), (4, 4))                      # stride 4: tap by tap
mp("mp_i32_wide", cs.randint((2, 3, 8, 70), -1000, 1000, np.int32), (3, 3), (2, 2), (1, 1))
mp("mp_i64_wide", cs.randint((2, 3, 8, 70), -1000, 1000), (2, 3), (1, 2))
mp("mp_u8_wide", cs.randint((2, 3, 8, 70), 0, 256, np.uint8), (3, 3), (2, 2), (1, 1))
xnw = R((2, 2, 8, 70))                                               # NaN and ties in vector lanes
xnw[..., 5::7] = np.nan
xnw[..., 1::4, ::3] = 0.5
xnw[0, 0, 2, :] = -np.inf
mp("mp_nan_wide", xnw, (2, 2))
mp("mp_nan_stem", xnw, (3, 3), (2, 2), (1, 1))
mp("mp_nan_s3", xnw, (3, 3))
cs.error("mp_err_ndim", "max_pool2d", [R((8, 8))], "expected a 3-D (C, H, W) or 4-D", {"kernel": [2, 2]})
cs.error("mp_err_5d", "max_pool2d", [R((1, 1, 1, 8, 8))], "expected a 3-D", {"kernel": [2, 2]})
cs.error("mp_err_bool", "max_pool2d", [np.ones((1, 1, 4, 4), np.bool_)], "expected a float or integer input",
         {"kernel": [2, 2]})
cs.error("mp_err_no_kernel", "max_pool2d", [x], "'kernel' is required")
cs.error("mp_err_kernel0", "max_pool2d", [x], "must be positive", {"kernel": [0, 2]})
cs.error("mp_err_neg_stride", "max_pool2d", [x], "must be positive", {"kernel": [2, 2], "stride": [-1, 1]})
cs.error("mp_err_pad", "max_pool2d", [x], "at most half of the kernel", {"kernel": [2, 2], "padding": [2, 0]})
cs.error("mp_err_too_small", "max_pool2d", [R((1, 1, 3, 3))], "too small", {"kernel": [4, 4]})
cs.error("mp_err_attr_len", "max_pool2d", [x], "needs 1 or 2 values", {"kernel": [2, 2, 2]})

# ---- avg_pool2d ------------------------------------------------------------
ap("ap_2x2", x, (2, 2))
ap("ap_3x3_s2", x, (3, 3), (2, 2))
ap("ap_pad_incl", x, (3, 3), (2, 2), (1, 1))
ap("ap_pad_excl", x, (3, 3), (2, 2), (1, 1), None, False)
ap("ap_rect_pad", x, (4, 3), (1, 2), (2, 1), None, False)
ap("ap_ceil_incl", R((1, 2, 7, 7)), (3, 3), (2, 2), (1, 1), True, True)
ap("ap_ceil_excl", R((1, 2, 7, 7)), (3, 3), (2, 2), (1, 1), True, False)
ap("ap_ceil_nopad", R((1, 2, 7, 8)), (2, 3), (2, 2), None, True)
ap("ap_ceil_s3", R((1, 2, 10, 11)), (2, 2), (3, 3), (1, 0), True, True)
ap("ap_global", R((2, 4, 4, 4)), (4, 4))
ap("ap_unbatched", R((3, 8, 9)), (2, 2))
ap("ap_f64", R((2, 2, 7, 6), np.float64), (3, 3), (2, 2), (1, 1), None, False)
ap("ap_empty_batch", np.zeros((0, 3, 8, 8), np.float32), (2, 2))
ap("ap_noncontig", xp.transpose(1, 2, 0, 3), (2, 2), (1, 1), xin=In(xp, view=[("permute", [1, 2, 0, 3])]))
xs = R((2, 3, 8, 18))
ap("ap_sliced", xs[:, :, :, ::2], (3, 3), (1, 1), (1, 1), xin=In(xs, view=[("slice", 3, 0, 18, 2)]))
xh2 = R((1, 2, 6, 6)).astype(np.float16)
cs.case("ap_f16", "avg_pool2d", [xh2], [F.avg_pool2d(t(xh2).float(), 2).half().numpy()], {"kernel": [2, 2]},
        tol=(2e-3, 1e-3))
cs.error("ap_err_int", "avg_pool2d", [np.ones((1, 1, 4, 4), np.int64)], "expected a float input", {"kernel": [2, 2]})
cs.error("ap_err_ndim", "avg_pool2d", [R((4,))], "expected a 3-D", {"kernel": [2, 2]})
cs.error("ap_err_pad", "avg_pool2d", [x], "at most half of the kernel", {"kernel": [3, 3], "padding": [1, 2]})
cs.error("ap_err_too_small", "avg_pool2d", [R((1, 1, 2, 9))], "too small", {"kernel": [3, 3]})

# ---- adaptive_avg_pool2d ---------------------------------------------------
aap("aap_1x1", x, (1, 1))
aap("aap_same", x, (8, 9))
aap("aap_divisible", R((2, 3, 8, 8)), (4, 2))
aap("aap_uneven", x, (3, 5))
aap("aap_upsample", R((1, 2, 3, 2)), (5, 4))
aap("aap_resnet_head", R((2, 16, 1, 1)), (1, 1))
aap("aap_unbatched", R((3, 7, 5)), (2, 3))
aap("aap_f64", R((2, 2, 7, 6), np.float64), (3, 4))
aap("aap_noncontig", xp.transpose(1, 2, 0, 3), (3, 4), xin=In(xp, view=[("permute", [1, 2, 0, 3])]))
aap("aap_empty_batch", np.zeros((0, 3, 8, 8), np.float32), (2, 2))
xb2 = torch.from_numpy(R((1, 2, 6, 5))).bfloat16()
cs.case("aap_bf16", "adaptive_avg_pool2d", [In(xb2.float().numpy(), dtype="bf16")],
        [Out(F.adaptive_avg_pool2d(xb2.float(), (4, 3)).bfloat16().float().numpy(), dtype="bf16")],
        {"output_size": [4, 3]}, tol=(1.6e-2, 1e-2))
cs.error("aap_err_zero_out", "adaptive_avg_pool2d", [x], "must be positive", {"output_size": [0, 2]})
cs.error("aap_err_empty_in", "adaptive_avg_pool2d", [np.zeros((1, 2, 0, 4), np.float32)], "empty spatial",
         {"output_size": [2, 2]})
cs.error("aap_err_ndim", "adaptive_avg_pool2d", [R((8, 8))], "expected a 3-D", {"output_size": [2, 2]})
cs.error("aap_err_int", "adaptive_avg_pool2d", [np.ones((1, 1, 4, 4), np.int32)], "expected a float input",
         {"output_size": [2, 2]})
cs.error("aap_err_len", "adaptive_avg_pool2d", [x], "needs 1 or 2 values", {"output_size": []})

# ---- backward ops (the gradient rules' kernels), against torch autograd ----


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a).astype(np.float64))


def pool_attrs(kernel, stride, padding, ceil_mode, count_include_pad=None):
    attrs = {"kernel": list(kernel)}
    if stride is not None:
        attrs["stride"] = list(stride)
    if padding is not None:
        attrs["padding"] = list(padding)
    if ceil_mode is not None:
        attrs["ceil_mode"] = int(ceil_mode)
    if count_include_pad is not None:
        attrs["count_include_pad"] = int(count_include_pad)
    return attrs


def mpb(cid, x, kernel, stride=None, padding=None, ceil_mode=None, xin=None):
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    xt = t64(x).requires_grad_(True)
    y = F.max_pool2d(xt, kernel, st, padding or 0, 1, bool(ceil_mode))
    gy = cs.rand(tuple(y.shape), x.dtype)
    (gx,) = torch.autograd.grad(y, xt, t64(gy))
    cs.case(cid, "max_pool2d_backward", [xin if xin is not None else x, gy], [gx.numpy().astype(x.dtype)],
            pool_attrs(kernel, stride, padding, ceil_mode), tol=tol_for(x))


def mpi(cid, x, kernel, stride=None, padding=None, ceil_mode=None):
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    _, idx = F.max_pool2d(t64(x), kernel, st, padding or 0, 1, bool(ceil_mode), return_indices=True)
    cs.case(cid, "max_pool2d_indices", [x], [idx.numpy().astype(np.int64)],
            pool_attrs(kernel, stride, padding, ceil_mode))


def apb(cid, x_shape, kernel, stride=None, padding=None, ceil_mode=None, count_include_pad=None, dt=np.float32):
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    xt = torch.zeros(x_shape, dtype=torch.float64, requires_grad=True)
    y = F.avg_pool2d(xt, kernel, st, padding or 0, bool(ceil_mode),
                     True if count_include_pad is None else bool(count_include_pad))
    gy = cs.rand(tuple(y.shape), dt)
    (gx,) = torch.autograd.grad(y, xt, t64(gy))
    attrs = pool_attrs(kernel, stride, padding, ceil_mode, count_include_pad)
    attrs["input_size"] = list(x_shape[-2:])
    cs.case(cid, "avg_pool2d_backward", [gy], [gx.numpy().astype(dt)], attrs, tol=tol_for(gy))


def aapb(cid, x_shape, out, dt=np.float32):
    xt = torch.zeros(x_shape, dtype=torch.float64, requires_grad=True)
    y = F.adaptive_avg_pool2d(xt, out)
    gy = cs.rand(tuple(y.shape), dt)
    (gx,) = torch.autograd.grad(y, xt, t64(gy))
    cs.case(cid, "adaptive_avg_pool2d_backward", [gy], [gx.numpy().astype(dt)],
            {"input_size": list(x_shape[-2:])}, tol=tol_for(gy))


mpb("mpb_2x2", R((2, 3, 8, 9)), (2, 2))                               # 2x2 fast path, odd width
mpb("mpb_2x2_ceil", R((1, 2, 7, 7)), (2, 2), (2, 2), None, True)      # partial last windows
mpb("mpb_3x3_s2_p1", R((2, 3, 8, 9)), (3, 3), (2, 2), (1, 1))
mpb("mpb_overlap", R((1, 2, 6, 7)), (3, 2), (1, 1))                   # windows share elements
mpb("mpb_rect_pad", R((2, 2, 8, 9)), (4, 3), (2, 1), (2, 1))
mpb("mpb_ceil_pad", R((1, 2, 7, 7)), (3, 3), (2, 2), (1, 1), True)
mpb("mpb_ceil_s3", R((1, 2, 10, 11)), (2, 2), (3, 3), (1, 0), True)
mpb("mpb_unbatched", R((3, 6, 7)), (2, 2))
mpb("mpb_f64", R((2, 2, 7, 6), np.float64), (3, 3), (2, 2), (1, 1))
mpb("mpb_lenet", R((4, 6, 24, 24)), (2, 2))                           # 8-wide vectors, an overlapping tail
mpb("mpb_2x2_f64_vec", R((2, 2, 7, 15), np.float64), (2, 2))           # 4-wide, odd sizes
mpb("mpb_2x2_f64_small", R((1, 2, 4, 5), np.float64), (2, 2))         # 2-wide
mpb("mpb_2x2_ceil_vec", R((1, 2, 5, 19)), (2, 2), None, None, True)    # vectors + partial windows
xmn = R((1, 1, 2, 16))
xmn[0, 0, 0, 1] = np.nan
xmn[0, 0, 1, 1] = np.nan                                               # the last NaN gets the gradient
xmn[0, 0, 1, 6] = np.nan
mpb("mpb_nan_vec", xmn, (2, 2))
xmp = R((8, 2, 3, 9))
mpb("mpb_x_noncontig", xmp.transpose(1, 2, 0, 3), (2, 2), xin=In(xmp, view=[("permute", [1, 2, 0, 3])]))
xtie = np.array([[[[1, 1, 0, 2], [1, 0, 2, 2], [3, 3, 0, 0], [3, 3, 0, 0]]]], np.float32)
mpb("mpb_ties_first", xtie, (2, 2))
mpb("mpb_ties_overlap", xtie, (2, 2), (1, 1))
mpb("mpb_2x2_wide", R((2, 3, 8, 70)), (2, 2))                        # vectors, overlapping last one
mpb("mpb_2x2_lenet2", R((8, 16, 10, 10)), (2, 2))                    # one masked vector a row
mpb("mpb_2x2_lenet1", R((2, 6, 28, 28)), (2, 2))
mpb("mpb_2x2_odd_wide", R((2, 3, 9, 67)), (2, 2))                    # rows / columns no window covers
mpb("mpb_2x2_ceil_wide", R((2, 3, 9, 67)), (2, 2), None, None, True)
mpb("mpb_2x2_f64_wide", R((2, 3, 8, 70), np.float64), (2, 2))
mpb("mpb_2x2_f64_masked", R((4, 6, 12, 14), np.float64), (2, 2))
mpb("mpb_nan_wide", xnw, (2, 2))
xtw = np.tile(xtie, (2, 3, 3, 18))                                   # ties in every lane
mpb("mpb_ties_wide", xtw, (2, 2))


# relu=1: relu_backward(max_pool2d_backward(x, gy), x) folded into one op by the
# compiler, x being relu's output (whole windows of zeros: tied, masked)
def mpb_relu(cid, z, kernel, stride=None, padding=None, ceil_mode=None):
    x = np.maximum(z, 0).astype(z.dtype)
    st = [s if s else k for s, k in zip(stride, kernel)] if stride else None
    xt = t64(x).requires_grad_(True)
    y = F.max_pool2d(xt, kernel, st, padding or 0, 1, bool(ceil_mode))
    gy = cs.rand(tuple(y.shape), x.dtype)
    (gx,) = torch.autograd.grad(y, xt, t64(gy))
    gx = torch.ops.aten.threshold_backward(gx, xt.detach(), 0)
    attrs = pool_attrs(kernel, stride, padding, ceil_mode)
    attrs["relu"] = 1
    cs.case(cid, "max_pool2d_backward", [x, gy], [gx.numpy().astype(x.dtype)], attrs, tol=tol_for(x))


Rn = lambda shape, dt=np.float32: cs.rand(shape, dt, -1.0, 0.4)  # mostly negative: many all-zero windows
mpb_relu("mpb_relu_lenet1", Rn((2, 6, 28, 28)), (2, 2))                  # one masked vector a row
mpb_relu("mpb_relu_lenet2", Rn((8, 16, 10, 10)), (2, 2))
mpb_relu("mpb_relu_wide", Rn((2, 3, 8, 70)), (2, 2))                     # full vectors, overlapping last
mpb_relu("mpb_relu_ceil", Rn((2, 3, 9, 67)), (2, 2), None, None, True)   # scalar partial windows
mpb_relu("mpb_relu_f64", Rn((4, 6, 12, 14), np.float64), (2, 2))
mpb_relu("mpb_relu_small", Rn((1, 2, 4, 5)), (2, 2))
mpb_relu("mpb_relu_overlap", Rn((2, 3, 8, 9)), (3, 3), (1, 1))           # generic kernel, accumulating
mpb_relu("mpb_relu_pad", Rn((2, 2, 8, 9), np.float64), (3, 3), (2, 2), (1, 1))
mpi("mpi_2x2", R((2, 3, 8, 9)), (2, 2))
mpi("mpi_3x3_s2_p1", R((2, 3, 8, 9)), (3, 3), (2, 2), (1, 1))
mpi("mpi_ceil_pad", R((1, 2, 7, 7)), (3, 3), (2, 2), (1, 1), True)
mpi("mpi_ties", xtie, (2, 2), (1, 1))
xinf = np.full((1, 1, 4, 4), -np.inf, np.float32)
xinf[0, 0, 3, 3] = 1.0
mpi("mpi_neg_inf", xinf, (2, 2))                                      # an all -inf window: its first element
xnan = R((1, 1, 4, 4))
xnan[0, 0, 0, 1] = np.nan
xnan[0, 0, 1, 0] = np.nan
mpi("mpi_nan", xnan, (2, 2))                                          # the last NaN, like torch
mpi("mpi_f64", R((2, 2, 7, 6), np.float64), (3, 3), (2, 2), (1, 1))
mpi("mpi_i64", cs.randint((1, 2, 6, 7), -100, 100), (3, 3), (2, 2), (1, 1))
cs.error("mpb_err_gy_shape", "max_pool2d_backward", [R((1, 2, 6, 6)), R((1, 2, 4, 3))], "output gradient must be",
         {"kernel": [2, 2]})
cs.error("mpb_err_int", "max_pool2d_backward", [np.ones((1, 1, 4, 4), np.int64), np.ones((1, 1, 2, 2), np.int64)],
         "expected a float input", {"kernel": [2, 2]})

apb("apb_2x2", (2, 3, 8, 9), (2, 2))
apb("apb_3x3_s2_incl", (2, 3, 8, 9), (3, 3), (2, 2), (1, 1))
apb("apb_3x3_s2_excl", (2, 3, 8, 9), (3, 3), (2, 2), (1, 1), None, False)
apb("apb_rect_excl", (2, 2, 8, 9), (4, 3), (1, 2), (2, 1), None, False)
apb("apb_ceil_incl", (1, 2, 7, 7), (3, 3), (2, 2), (1, 1), True, True)
apb("apb_ceil_excl", (1, 2, 7, 7), (3, 3), (2, 2), (1, 1), True, False)
apb("apb_ceil_nopad", (1, 2, 7, 8), (2, 3), (2, 2), None, True)
apb("apb_overlap", (1, 2, 6, 7), (3, 2), (1, 1))
apb("apb_global", (2, 4, 4, 4), (4, 4))
apb("apb_unbatched", (3, 8, 9), (2, 2))
apb("apb_f64", (2, 2, 7, 6), (3, 3), (2, 2), (1, 1), None, False, np.float64)
cs.error("apb_err_size", "avg_pool2d_backward", [R((1, 2, 3, 3))], "output gradient must be",
         {"kernel": [2, 2], "input_size": [8, 8]})
cs.error("apb_err_no_size", "avg_pool2d_backward", [R((1, 2, 4, 4))], "input_size", {"kernel": [2, 2]})

aapb("aapb_1x1", (2, 3, 8, 9), (1, 1))
aapb("aapb_uneven", (2, 3, 8, 9), (3, 5))
aapb("aapb_upsample", (1, 2, 3, 2), (5, 4))
aapb("aapb_unbatched", (3, 7, 5), (2, 3))
aapb("aapb_f64", (2, 2, 7, 6), (3, 4), np.float64)
cs.error("aapb_err_size", "adaptive_avg_pool2d_backward", [R((1, 2, 3, 3))], "must be positive",
         {"input_size": [0, 4]})

main_write(cs)
