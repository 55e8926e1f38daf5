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

main_write(cs)
