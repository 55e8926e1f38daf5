"""Reference cases for the loss ops (cross_entropy, nll_loss, mse_loss,
bce_with_logits), from PyTorch. Reduction attr: 0 none, 1 mean, 2 sum."""
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, In, main_write

warnings.filterwarnings("ignore")  # mse_loss warns when it broadcasts
cs = Cases(seed=5)
T = torch.from_numpy
RED = {0: "none", 1: "mean", 2: "sum"}


def np_(t):
    return t.detach().numpy()


def opt(a):
    return None if a is None else T(a)


# ---- cross_entropy: class indices ---------------------------------------------
def ce(x, t, w=None, r=1, ls=0.0, ii=-100):
    if t.dtype.kind in "iu":
        t = t.astype(np.int64)  # torch wants i64 class indices; fern takes any integer dtype
    return np_(F.cross_entropy(T(np.array(x, order="C")), T(np.array(t, order="C")), weight=opt(w),
                               reduction=RED[r], label_smoothing=ls, ignore_index=ii))


def ce_case(cid, x, t, w=None, r=1, ls=0.0, ii=-100, xin=None, tin=None, tol=None):
    attrs = {"reduction": r}
    if ls:
        attrs["label_smoothing"] = ls
    if ii != -100:
        attrs["ignore_index"] = ii
    cs.case(cid, "cross_entropy", [x if xin is None else xin, t if tin is None else tin, w],
            [ce(x, t, w, r, ls, ii)], attrs, tol=tol)


x = cs.rand((6, 4), low=-3, high=3)
t = np.array([0, 3, 1, 2, 3, 0], np.int64)
w = cs.rand((4,), low=0.2, high=2.0)
tig = np.array([0, -100, 1, 2, -100, 3], np.int64)
for r in (0, 1, 2):
    ce_case("ce_basic_r%d" % r, x, t, r=r)
    ce_case("ce_weight_r%d" % r, x, t, w, r=r)
    ce_case("ce_ignore_r%d" % r, x, tig, r=r)
    ce_case("ce_weight_ignore_r%d" % r, x, tig, w, r=r)
    ce_case("ce_smooth_r%d" % r, x, t, r=r, ls=0.1)
    ce_case("ce_smooth_weight_ignore_r%d" % r, x, tig, w, r=r, ls=0.25)
ce_case("ce_smooth_ignore_mean", x, tig, ls=0.3)
ce_case("ce_custom_ignore", x, t, w, ii=3)
ce_case("ce_custom_ignore_smooth", x, t, ii=0, ls=0.2)
ce_case("ce_all_ignored_mean", x, np.full(6, -100, np.int64))
ce_case("ce_all_ignored_sum", x, np.full(6, -100, np.int64), r=2)
ce_case("ce_smooth_one", x, t, r=2, ls=1.0)
xs = cs.rand((2, 3, 4, 5), low=-2, high=2)
ts = cs.randint((2, 4, 5), 0, 3)
ts[0, 1, 2] = -100
ws = cs.rand((3,), low=0.5, high=1.5)
for r in (0, 1, 2):
    ce_case("ce_spatial_r%d" % r, xs, ts, ws, r=r)
ce_case("ce_spatial_smooth", xs, ts, ws, ls=0.15)
x3 = cs.rand((3, 4, 7))
t3 = cs.randint((3, 7), 0, 4)
ce_case("ce_3d_none", x3, t3, r=0)
xu = cs.rand((5,), low=-2, high=2)
ce_case("ce_unbatched", xu, np.array(3, np.int64))
ce_case("ce_unbatched_none", xu, np.array(1, np.int64), r=0)
wu = cs.rand((5,), low=0.3, high=1.7)
ce_case("ce_unbatched_weight_smooth", xu, np.array(2, np.int64), wu, ls=0.2)
ce_case("ce_unbatched_weight_smooth_sum", xu, np.array(4, np.int64), wu, r=2, ls=0.1)
ce_case("ce_i32_target", x, t.astype(np.int32), w)
ce_case("ce_u8_target", x, t.astype(np.uint8), r=2)
ce_case("ce_noncontig", x, t, xin=In(np.ascontiguousarray(x.T), view=[("permute", [1, 0])]))
ce_case("ce_noncontig_target", x, t, tin=In(np.repeat(t, 2), view=[("slice", 0, 0, 12, 2)]))
xd = cs.rand((4, 5), dtype=np.float64, low=-3, high=3)
td = np.array([4, 0, -100, 2], np.int64)
wd = cs.rand((5,), dtype=np.float64)
ce_case("ce_f64", xd, td, wd)
ce_case("ce_f64_smooth_none", xd, td, wd, r=0, ls=0.3)
xh = cs.rand((4, 5), low=-3, high=3).astype(np.float16)
cs.case("ce_f16", "cross_entropy", [xh, np.array([1, 2, 3, 4], np.int64), None],
        [ce(xh.astype(np.float32), np.array([1, 2, 3, 4], np.int64)).astype(np.float16)])
xl = cs.rand((4, 1000), low=-5, high=5)
tl = cs.randint((4,), 0, 1000)
ce_case("ce_many_classes", xl, tl)
xbig = cs.rand((4500, 10), low=-3, high=3)
tbig = cs.randint((4500,), 0, 10)
tbig[::7] = -100
ce_case("ce_parallel_mean", xbig, tbig, cs.rand((10,), low=0.5, high=1.5), ls=0.1)
ce_case("ce_parallel_none", xbig, tbig, r=0)
ext = np.array([[1000.0, -1000.0, 0.0], [-500.0, -600.0, -700.0]], np.float32)
ce_case("ce_extreme_logits", ext, np.array([1, 2], np.int64), r=0)
ce_case("ce_empty_mean", np.zeros((0, 3), np.float32), np.zeros((0,), np.int64))
ce_case("ce_empty_sum", np.zeros((0, 3), np.float32), np.zeros((0,), np.int64), r=2)
ce_case("ce_empty_none", np.zeros((0, 3), np.float32), np.zeros((0,), np.int64), r=0)

# ---- cross_entropy: class probabilities --------------------------------------------
p = np_(F.softmax(T(cs.rand((6, 4), low=-2, high=2)), 1))
for r in (0, 1, 2):
    ce_case("ce_probs_r%d" % r, x, p, r=r)
    ce_case("ce_probs_weight_smooth_r%d" % r, x, p, w, r=r, ls=0.2)
ps = np_(F.softmax(T(cs.rand((2, 3, 4, 5))), 1))
ce_case("ce_probs_spatial", xs, ps, ws)
ce_case("ce_probs_noncontig", x, p, tin=In(np.ascontiguousarray(p.T), view=[("permute", [1, 0])]))
ce_case("ce_probs_f64", xd, np_(F.softmax(T(cs.rand((4, 5), dtype=np.float64)), 1)), wd, r=2)
ce_case("ce_probs_empty_mean", np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))
ce_case("ce_probs_unbatched", xu, np_(F.softmax(T(cs.rand((5,))), 0)), r=0)
ce_case("ce_probs_unbatched_weight_smooth", xu, np_(F.softmax(T(cs.rand((5,))), 0)), wu, ls=0.3)
ce_case("ce_probs_spatial_smooth_sum", xs, ps, None, r=2, ls=0.1)

cs.error("ce_target_out_of_range", "cross_entropy", [x, np.array([0, 1, 4, 0, 0, 0], np.int64), None],
         "out of bounds")
cs.error("ce_target_negative", "cross_entropy", [x, np.array([0, 1, -1, 0, 0, 0], np.int64), None],
         "out of bounds")
cs.error("ce_target_shape", "cross_entropy", [x, np.array([0, 1, 2], np.int64), None], "does not match")
cs.error("ce_probs_shape", "cross_entropy", [x, cs.rand((6, 3)), None], "does not match")
cs.error("ce_probs_dtype", "cross_entropy", [x, p.astype(np.float64), None], "dtype")
cs.error("ce_bool_target", "cross_entropy", [x, np.ones(6, np.bool_), None], "target")
cs.error("ce_weight_shape", "cross_entropy", [x, t, cs.rand((3,))], "weight")
cs.error("ce_weight_dtype", "cross_entropy", [x, t, w.astype(np.float64)], "dtype")
cs.error("ce_bad_reduction", "cross_entropy", [x, t, None], "reduction", {"reduction": 3})
cs.error("ce_bad_smoothing", "cross_entropy", [x, t, None], "label_smoothing", {"label_smoothing": 1.5})
cs.error("ce_int_logits", "cross_entropy", [np.ones((2, 3), np.int64), np.array([0, 1], np.int64), None], "float")
cs.error("ce_0d_logits", "cross_entropy", [np.array(1.0, np.float32), np.array(0, np.int64), None], "0-d")


# ---- nll_loss ------------------------------------------------------------------------
def nll(x, t, w=None, r=1, ii=-100):
    return np_(F.nll_loss(T(np.array(x, order="C")), T(t), weight=opt(w), reduction=RED[r], ignore_index=ii))


lp = np_(F.log_softmax(T(x), 1))
for r in (0, 1, 2):
    cs.case("nll_basic_r%d" % r, "nll_loss", [lp, t, None], [nll(lp, t, r=r)], {"reduction": r})
    cs.case("nll_weight_ignore_r%d" % r, "nll_loss", [lp, tig, w], [nll(lp, tig, w, r=r)], {"reduction": r})
cs.case("nll_custom_ignore", "nll_loss", [lp, t, w], [nll(lp, t, w, ii=1)], {"ignore_index": 1})
cs.case("nll_all_ignored", "nll_loss", [lp, np.full(6, -100, np.int64), w], [nll(lp, np.full(6, -100, np.int64), w)])
lps = np_(F.log_softmax(T(xs), 1))
cs.case("nll_spatial", "nll_loss", [lps, ts, ws], [nll(lps, ts, ws)])
cs.case("nll_spatial_none", "nll_loss", [lps, ts, None], [nll(lps, ts, r=0)], {"reduction": 0})
cs.case("nll_unbatched", "nll_loss", [lp[0], np.array(2, np.int64), None], [nll(lp[0], np.array(2))])
cs.case("nll_unbatched_weight", "nll_loss", [lp[0], np.array(1, np.int64), w], [nll(lp[0], np.array(1), w)])
cs.case("nll_spatial_weight_sum", "nll_loss", [lps, ts, ws], [nll(lps, ts, ws, r=2)], {"reduction": 2})
cs.case("nll_raw_values", "nll_loss", [x, t, None], [nll(x, t, r=2)], {"reduction": 2})
cs.case("nll_noncontig", "nll_loss", [In(np.ascontiguousarray(lp.T), view=[("permute", [1, 0])]), t, None],
        [nll(lp, t)])
lpd = np_(F.log_softmax(T(xd), 1))
cs.case("nll_f64", "nll_loss", [lpd, td, wd], [nll(lpd, td, wd)])
lph = lp.astype(np.float16)
cs.case("nll_f16", "nll_loss", [lph, t, None], [nll(lph.astype(np.float32), t, r=0).astype(np.float16)],
        {"reduction": 0})
cs.case("nll_empty_mean", "nll_loss", [np.zeros((0, 3), np.float32), np.zeros((0,), np.int64), None],
        [nll(np.zeros((0, 3), np.float32), np.zeros((0,), np.int64))])
cs.error("nll_out_of_range", "nll_loss", [lp, np.array([0, 1, 2, 9, 0, 0], np.int64), None], "out of bounds")
cs.error("nll_float_target", "nll_loss", [lp, p, None], "integer")
cs.error("nll_target_shape", "nll_loss", [lps, t, None], "does not match")
cs.error("nll_weight_shape", "nll_loss", [lp, t, cs.rand((5,))], "weight")
cs.error("nll_bad_reduction", "nll_loss", [lp, t, None], "reduction", {"reduction": -1})

# ---- mse_loss --------------------------------------------------------------------------
a = cs.rand((3, 4), low=-2, high=2)
b = cs.rand((3, 4), low=-2, high=2)


def mse(a, b, r=1):
    return np_(F.mse_loss(T(np.array(a, order="C")), T(np.array(b, order="C")), reduction=RED[r]))


for r in (0, 1, 2):
    cs.case("mse_r%d" % r, "mse_loss", [a, b], [mse(a, b, r)], {"reduction": r})
b1 = cs.rand((4,))
cs.case("mse_broadcast_none", "mse_loss", [a, b1], [mse(a, np.broadcast_to(b1, (3, 4)), 0)], {"reduction": 0})
cs.case("mse_broadcast_mean", "mse_loss", [a, b1], [mse(a, np.broadcast_to(b1, (3, 4)), 1)])
bc = cs.rand((2, 1, 4))
cs.case("mse_broadcast_both", "mse_loss", [a, bc], [np_(F.mse_loss(T(a), T(bc), reduction="sum"))], {"reduction": 2})
cs.case("mse_noncontig", "mse_loss", [In(np.ascontiguousarray(a.T), view=[("permute", [1, 0])]), b], [mse(a, b, 2)],
        {"reduction": 2})
cs.case("mse_expanded", "mse_loss", [a, In(b1.reshape(1, 4), view=[("expand", [3, 4])])],
        [mse(a, np.broadcast_to(b1, (3, 4)), 0)], {"reduction": 0})
ad, bd = cs.rand((5, 3), dtype=np.float64), cs.rand((5, 3), dtype=np.float64)
cs.case("mse_f64", "mse_loss", [ad, bd], [mse(ad, bd)])
cs.case("mse_f64_none", "mse_loss", [ad, bd], [mse(ad, bd, 0)], {"reduction": 0})
ah, bh = a.astype(np.float16), b.astype(np.float16)
cs.case("mse_f16", "mse_loss", [ah, bh], [mse(ah.astype(np.float32), bh.astype(np.float32), 0).astype(np.float16)],
        {"reduction": 0})
s1, s2 = np.array(1.5, np.float32), np.array(-0.5, np.float32)
cs.case("mse_0d", "mse_loss", [s1, s2], [mse(s1, s2, 0)], {"reduction": 0})
cs.case("mse_0d_mean", "mse_loss", [s1, s2], [mse(s1, s2, 1)])
cs.case("mse_empty_mean", "mse_loss", [np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)],
        [mse(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))])
cs.case("mse_empty_sum", "mse_loss", [np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32)],
        [mse(np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32), 2)], {"reduction": 2})
ab_, bb_ = cs.rand((100, 500)), cs.rand((100, 500))
cs.case("mse_parallel_sum", "mse_loss", [ab_, bb_], [mse(ab_, bb_, 2)], {"reduction": 2}, tol=(1e-5, 1e-4))
cs.error("mse_shape", "mse_loss", [a, cs.rand((3, 5))], "broadcast")
cs.error("mse_int", "mse_loss", [np.ones((2,), np.int32), np.ones((2,), np.int32)], "float")
cs.error("mse_dtype", "mse_loss", [a, b.astype(np.float64)], "dtype")
cs.error("mse_bad_reduction", "mse_loss", [a, b], "reduction", {"reduction": 7})


# ---- bce_with_logits ---------------------------------------------------------------
def bce(x, t, w=None, pw=None, r=1):
    return np_(F.binary_cross_entropy_with_logits(T(np.array(x, order="C")), T(np.array(t, order="C")),
                                                  weight=opt(w), pos_weight=opt(pw), reduction=RED[r]))


xb = cs.rand((4, 3), low=-4, high=4)
tb = (cs.rand((4, 3)) > 0).astype(np.float32)
tb[0, 0] = 0.3  # soft label
wb = cs.rand((4, 3), low=0.1, high=2)
wrow = cs.rand((3,), low=0.1, high=2)
pwb = cs.rand((3,), low=0.5, high=3)
for r in (0, 1, 2):
    cs.case("bce_r%d" % r, "bce_with_logits", [xb, tb, None, None], [bce(xb, tb, r=r)], {"reduction": r})
    cs.case("bce_weight_r%d" % r, "bce_with_logits", [xb, tb, wb, None], [bce(xb, tb, wb, r=r)], {"reduction": r})
    cs.case("bce_pos_weight_r%d" % r, "bce_with_logits", [xb, tb, None, pwb], [bce(xb, tb, None, pwb, r)],
            {"reduction": r})
    cs.case("bce_both_r%d" % r, "bce_with_logits", [xb, tb, wrow, pwb], [bce(xb, tb, wrow, pwb, r)],
            {"reduction": r})
wcol = cs.rand((4, 1), low=0.1, high=2)
cs.case("bce_weight_col", "bce_with_logits", [xb, tb, wcol, None], [bce(xb, tb, wcol, r=0)], {"reduction": 0})
cs.case("bce_weight_scalar", "bce_with_logits", [xb, tb, np.array(0.7, np.float32), None],
        [bce(xb, tb, np.array(0.7, np.float32))])
xe = np.array([-200.0, -50.0, -1e-3, 0.0, 1e-3, 50.0, 200.0], np.float32)
te = np.array([1.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0], np.float32)
cs.case("bce_extreme", "bce_with_logits", [xe, te, None, None], [bce(xe, te, r=0)], {"reduction": 0})
cs.case("bce_extreme_pos_weight", "bce_with_logits", [xe, te, None, np.array([2.5], np.float32)],
        [bce(xe, te, None, np.array([2.5], np.float32), 0)], {"reduction": 0})
cs.case("bce_noncontig", "bce_with_logits",
        [In(np.ascontiguousarray(xb.T), view=[("permute", [1, 0])]), tb,
         In(np.repeat(wrow, 2), view=[("slice", 0, 0, 6, 2)]), None],
        [bce(xb, tb, wrow, r=0)], {"reduction": 0})
xbd = cs.rand((3, 5), dtype=np.float64, low=-3, high=3)
tbd = cs.rand((3, 5), dtype=np.float64, low=0, high=1)
pwd = cs.rand((5,), dtype=np.float64, low=0.5, high=2)
cs.case("bce_f64", "bce_with_logits", [xbd, tbd, None, pwd], [bce(xbd, tbd, None, pwd)])
cs.case("bce_f64_none", "bce_with_logits", [xbd, tbd, None, None], [bce(xbd, tbd, r=0)], {"reduction": 0})
xbh, tbh = xb.astype(np.float16), tb.astype(np.float16)
cs.case("bce_f16", "bce_with_logits", [xbh, tbh, None, None],
        [bce(xbh.astype(np.float32), tbh.astype(np.float32), r=0).astype(np.float16)], {"reduction": 0})
cs.case("bce_0d", "bce_with_logits", [np.array(0.7, np.float32), np.array(1.0, np.float32), None, None],
        [bce(np.array(0.7, np.float32), np.array(1.0, np.float32), r=0)], {"reduction": 0})
cs.case("bce_empty_mean", "bce_with_logits", [np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32), None, None],
        [bce(np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32))])
xbp, tbp = cs.rand((200, 300), low=-3, high=3), cs.rand((200, 300), low=0, high=1)
cs.case("bce_parallel_mean", "bce_with_logits", [xbp, tbp, None, None], [bce(xbp, tbp)])
cs.error("bce_target_shape", "bce_with_logits", [xb, cs.rand((4, 1)), None, None], "same as input size")
cs.error("bce_weight_shape", "bce_with_logits", [xb, tb, cs.rand((2,)), None], "broadcast")
cs.error("bce_weight_bigger", "bce_with_logits", [xb, tb, cs.rand((2, 4, 3)), None], "does not broadcast")
cs.error("bce_pos_weight_shape", "bce_with_logits", [xb, tb, None, cs.rand((4,))], "broadcast")
cs.error("bce_int", "bce_with_logits", [np.ones((2,), np.int64), np.ones((2,), np.int64), None, None], "float")
cs.error("bce_target_dtype", "bce_with_logits", [xb, tb.astype(np.float64), None, None], "dtype")
cs.error("bce_bad_reduction", "bce_with_logits", [xb, tb, None, None], "reduction", {"reduction": 4})

main_write(cs)
