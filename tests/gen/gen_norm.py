"""Reference cases for the normalization ops (softmax, log_softmax,
layer_norm, batch_norm, batch_norm_backward, group_norm), from PyTorch.

f16/bf16 cases: fern computes them in f32 and rounds the result, so the
reference is torch in f32 on the rounded inputs, rounded to the half type.
batch_norm has three outputs: y, the mean used and the inverse std used
(torch.native_batch_norm's save_mean / save_invstd when training; the
running mean and 1/sqrt(running_var + eps) in inference)."""
import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, In, Out, main_write

cs = Cases(seed=7)
T = torch.from_numpy


def np_(t):
    return t.detach().numpy()


def bf16_round(a):
    return T(np.ascontiguousarray(a)).to(torch.bfloat16).to(torch.float32).numpy()


# ---- softmax / log_softmax -------------------------------------------------
for op, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
    a = cs.rand((3, 5), low=-3, high=3)
    cs.case(op + "_last", op, [a], [np_(fn(T(a), -1))], {"axis": -1})
    cs.case(op + "_default_axis", op, [a], [np_(fn(T(a), -1))])
    b = cs.rand((4, 3, 5), low=-3, high=3)
    for ax in (0, 1, 2, -2):
        cs.case("%s_3d_axis%d" % (op, ax), op, [b], [np_(fn(T(b), ax))], {"axis": ax})
    c = cs.rand((2, 7, 130), low=-4, high=4)  # column blocks of 64 with a tail
    cs.case(op + "_inner_blocks", op, [c], [np_(fn(T(c), 1))], {"axis": 1})
    d = cs.rand((3, 1000), low=-5, high=5)
    cs.case(op + "_long_rows", op, [d], [np_(fn(T(d), 1))], {"axis": 1})
    big = cs.rand((2, 60, 150), low=-5, high=5)  # large enough for the thread pool
    cs.case(op + "_parallel", op, [big], [np_(fn(T(big), 2))], {"axis": 2})
    cs.case(op + "_parallel_cols", op, [big], [np_(fn(T(big), 1))], {"axis": 1})
    s = np.array(2.5, np.float32)
    cs.case(op + "_0d", op, [s], [np_(fn(T(s), 0))], {"axis": 0})
    cs.case(op + "_empty_rows", op, [np.zeros((0, 4), np.float32)], [np.zeros((0, 4), np.float32)],
            {"axis": 1})
    cs.case(op + "_empty_axis", op, [np.zeros((3, 0), np.float32)], [np.zeros((3, 0), np.float32)],
            {"axis": 1})
    cs.case(op + "_noncontig", op, [In(b, view=[("permute", [2, 0, 1])])],
            [np_(fn(T(b).permute(2, 0, 1), 1))], {"axis": 1})
    cs.case(op + "_sliced", op, [In(c, view=[("slice", 2, 1, 130, 3)])],
            [np_(fn(T(c)[:, :, 1::3], 2))], {"axis": 2})
    e = cs.rand((3, 6), dtype=np.float64, low=-3, high=3)
    cs.case(op + "_f64", op, [e], [np_(fn(T(e), 1))], {"axis": 1})
    e0 = cs.rand((5, 4), dtype=np.float64, low=-3, high=3)
    cs.case(op + "_f64_axis0", op, [e0], [np_(fn(T(e0), 0))], {"axis": 0})
    h = cs.rand((4, 9), low=-3, high=3).astype(np.float16)
    cs.case(op + "_f16", op, [h], [np_(fn(T(h.astype(np.float32)), 1)).astype(np.float16)], {"axis": 1})
    hb = bf16_round(cs.rand((4, 9), low=-3, high=3))
    cs.case(op + "_bf16", op, [In(hb, dtype="bf16")], [Out(bf16_round(np_(fn(T(hb), 0))), dtype="bf16")],
            {"axis": 0})
    ext = np.array([[1000.0, 999.0, -1000.0, 0.0], [-1e4, -1e4 + 1, -1e4 + 2, -np.inf]], np.float32)
    cs.case(op + "_extreme", op, [ext], [np_(fn(T(ext), 1))], {"axis": 1})
    cs.error(op + "_bad_axis", op, [a], "out of range", {"axis": 2})
    cs.error(op + "_bad_neg_axis", op, [a], "out of range", {"axis": -3})
    cs.error(op + "_int", op, [np.arange(6, dtype=np.int64).reshape(2, 3)], "float", {"axis": 1})

# ---- layer_norm ---------------------------------------------------------------
x = cs.rand((4, 8), low=-2, high=3)
w8 = cs.rand((8,), low=0.5, high=1.5)
b8 = cs.rand((8,))
cs.case("layer_norm_basic", "layer_norm", [x, w8, b8], [np_(F.layer_norm(T(x), (8,), T(w8), T(b8)))])
cs.case("layer_norm_no_affine", "layer_norm", [x, None, None], [np_(F.layer_norm(T(x), (8,)))])
cs.case("layer_norm_weight_only", "layer_norm", [x, w8, None], [np_(F.layer_norm(T(x), (8,), T(w8)))])
cs.case("layer_norm_bias_only", "layer_norm", [x, None, b8],
        [np_(F.layer_norm(T(x), (8,), None, T(b8)))])
cs.case("layer_norm_eps", "layer_norm", [x, w8, b8],
        [np_(F.layer_norm(T(x), (8,), T(w8), T(b8), eps=0.1))], {"n_norm_dims": 1, "eps": 0.1})
x4 = cs.rand((2, 3, 4, 5), low=-1, high=2)
w45 = cs.rand((4, 5), low=0.5, high=1.5)
b45 = cs.rand((4, 5))
cs.case("layer_norm_2dims", "layer_norm", [x4, w45, b45],
        [np_(F.layer_norm(T(x4), (4, 5), T(w45), T(b45)))], {"n_norm_dims": 2})
w345 = cs.rand((3, 4, 5), low=0.5, high=1.5)
cs.case("layer_norm_3dims", "layer_norm", [x4, w345, None],
        [np_(F.layer_norm(T(x4), (3, 4, 5), T(w345)))], {"n_norm_dims": 3})
cs.case("layer_norm_all_dims", "layer_norm", [x4, None, None],
        [np_(F.layer_norm(T(x4), (2, 3, 4, 5)))], {"n_norm_dims": 4})
cs.case("layer_norm_noncontig", "layer_norm", [In(x4, view=[("permute", [0, 2, 3, 1])]), None, None],
        [np_(F.layer_norm(T(x4).permute(0, 2, 3, 1), (3,)))])
xl = cs.rand((3, 2000), low=-1, high=1) + 5.0
# fern keeps row statistics in double; torch's f32 kernel loses ~1e-6 here, so
# the reference is torch in f64, rounded to f32
cs.case("layer_norm_long_rows_offset", "layer_norm", [xl, None, None],
        [np_(F.layer_norm(T(xl).double(), (2000,))).astype(np.float32)])
xp = cs.rand((300, 100), low=-2, high=2)
wp, bp = cs.rand((100,)), cs.rand((100,))
cs.case("layer_norm_parallel", "layer_norm", [xp, wp, bp], [np_(F.layer_norm(T(xp), (100,), T(wp), T(bp)))])
xd = cs.rand((3, 7), dtype=np.float64, low=-2, high=2)
wd, bd = cs.rand((7,), dtype=np.float64), cs.rand((7,), dtype=np.float64)
cs.case("layer_norm_f64", "layer_norm", [xd, wd, bd], [np_(F.layer_norm(T(xd), (7,), T(wd), T(bd)))])
xh = cs.rand((3, 16), low=-2, high=2).astype(np.float16)
wh = cs.rand((16,), low=0.5, high=1.5).astype(np.float16)
cs.case("layer_norm_f16", "layer_norm", [xh, wh, None],
        [np_(F.layer_norm(T(xh.astype(np.float32)), (16,), T(wh.astype(np.float32)))).astype(np.float16)])
w32 = cs.rand((16,), low=0.5, high=1.5)
cs.case("layer_norm_f16_f32_weight", "layer_norm", [xh, w32, None],
        [np_(F.layer_norm(T(xh.astype(np.float32)), (16,), T(w32))).astype(np.float16)])
xb = bf16_round(cs.rand((2, 12), low=-2, high=2))
cs.case("layer_norm_bf16", "layer_norm", [In(xb, dtype="bf16"), None, None],
        [Out(bf16_round(np_(F.layer_norm(T(xb), (12,)))), dtype="bf16")])
cs.case("layer_norm_empty_rows", "layer_norm", [np.zeros((0, 4), np.float32), None, None],
        [np.zeros((0, 4), np.float32)])
cs.case("layer_norm_empty_norm", "layer_norm", [np.zeros((3, 0), np.float32), None, None],
        [np_(F.layer_norm(torch.zeros(3, 0), (0,)))])
cs.error("layer_norm_weight_shape", "layer_norm", [x, cs.rand((7,)), None], "does not match")
cs.error("layer_norm_bias_shape", "layer_norm", [x4, w45, cs.rand((5, 4))], "does not match",
         {"n_norm_dims": 2})
cs.error("layer_norm_zero_dims", "layer_norm", [x, None, None], "n_norm_dims", {"n_norm_dims": 0})
cs.error("layer_norm_too_many_dims", "layer_norm", [x, None, None], "n_norm_dims", {"n_norm_dims": 3})
cs.error("layer_norm_int", "layer_norm", [np.ones((2, 3), np.int32), None, None], "float")
cs.error("layer_norm_weight_dtype", "layer_norm", [x, w8.astype(np.float64), None], "dtype")
cs.error("layer_norm_neg_eps", "layer_norm", [x, None, None], "eps", {"eps": -1.0})

# ---- batch_norm -----------------------------------------------------------------
EPS = 1e-5


def bn_train(x, w, b, eps=EPS, momentum=0.1):
    y, m, inv = torch.native_batch_norm(T(x), None if w is None else T(w), None if b is None else T(b),
                                        None, None, True, momentum, eps)
    return [np_(y), np_(m), np_(inv)]


def bn_eval(x, rm, rv, w, b, eps=EPS):
    y = F.batch_norm(T(x), T(rm), T(rv), None if w is None else T(w), None if b is None else T(b),
                     training=False, eps=eps)
    inv = (1.0 / np.sqrt(rv.astype(np.float64) + eps)).astype(x.dtype)
    return [np_(y), rm.copy(), inv]


x2 = cs.rand((8, 4), low=-2, high=2)
w4, b4 = cs.rand((4,), low=0.5, high=1.5), cs.rand((4,))
rm4, rv4 = cs.rand((4,)), cs.rand((4,), low=0.5, high=2.0)
cs.case("batch_norm_train_2d", "batch_norm", [x2, None, None, w4, b4], bn_train(x2, w4, b4), {"training": 1})
cs.case("batch_norm_train_2d_running", "batch_norm", [x2, rm4, rv4, w4, b4], bn_train(x2, w4, b4),
        {"training": 1, "momentum": 0.3})
cs.case("batch_norm_train_no_affine", "batch_norm", [x2, None, None, None, None], bn_train(x2, None, None),
        {"training": 1})
cs.case("batch_norm_train_eps", "batch_norm", [x2, None, None, w4, None], bn_train(x2, w4, None, eps=0.5),
        {"training": 1, "eps": 0.5})
x4 = cs.rand((3, 4, 5, 6), low=-1, high=3)
cs.case("batch_norm_train_4d", "batch_norm", [x4, rm4, rv4, w4, b4], bn_train(x4, w4, b4), {"training": 1})
x3 = cs.rand((2, 3, 7), low=-1, high=1)
w3, b3 = cs.rand((3,)), cs.rand((3,))
cs.case("batch_norm_train_3d", "batch_norm", [x3, None, None, None, b3], bn_train(x3, None, b3), {"training": 1})
xc = cs.rand((5, 100), low=-1, high=2)  # many channels, S == 1 channel blocks with a tail
wc, bc = cs.rand((100,)), cs.rand((100,))
cs.case("batch_norm_train_many_channels", "batch_norm", [xc, None, None, wc, bc], bn_train(xc, wc, bc),
        {"training": 1})
xbig = cs.rand((4, 4, 48, 48), low=-1, high=2)
w8b, b8b = cs.rand((4,)), cs.rand((4,))
cs.case("batch_norm_train_parallel", "batch_norm", [xbig, None, None, w8b, b8b], bn_train(xbig, w8b, b8b),
        {"training": 1})
cs.case("batch_norm_eval_4d", "batch_norm", [x4, rm4, rv4, w4, b4], bn_eval(x4, rm4, rv4, w4, b4))
cs.case("batch_norm_eval_2d_no_affine", "batch_norm", [x2, rm4, rv4, None, None],
        bn_eval(x2, rm4, rv4, None, None), {"training": 0})
cs.case("batch_norm_eval_eps", "batch_norm", [x2, rm4, rv4, w4, None],
        bn_eval(x2, rm4, rv4, w4, None, eps=0.25), {"training": 0, "eps": 0.25})
cs.case("batch_norm_train_noncontig", "batch_norm",
        [In(x4, view=[("permute", [0, 1, 3, 2])]), None, None, w4, b4],
        bn_train(np.ascontiguousarray(x4.transpose(0, 1, 3, 2)), w4, b4), {"training": 1})
cs.case("batch_norm_eval_noncontig_params", "batch_norm",
        [x2, In(np.repeat(rm4, 2), view=[("slice", 0, 1, 8, 2)]), rv4,
         In(np.repeat(w4, 2), view=[("slice", 0, 0, 8, 2)]), b4],
        bn_eval(x2, rm4, rv4, w4, b4))
xd = cs.rand((6, 3, 4), dtype=np.float64, low=-1, high=1)
wd, bd = cs.rand((3,), dtype=np.float64), cs.rand((3,), dtype=np.float64)
rmd, rvd = cs.rand((3,), dtype=np.float64), cs.rand((3,), dtype=np.float64, low=0.5, high=2)
cs.case("batch_norm_train_f64", "batch_norm", [xd, rmd, rvd, wd, bd], bn_train(xd, wd, bd), {"training": 1})
cs.case("batch_norm_eval_f64", "batch_norm", [xd, rmd, rvd, wd, bd], bn_eval(xd, rmd, rvd, wd, bd))
xh = cs.rand((6, 3, 4), low=-1, high=1).astype(np.float16)
cs.case("batch_norm_train_f16", "batch_norm", [xh, None, None, w3.astype(np.float16), b3.astype(np.float16)],
        [r.astype(np.float16) for r in bn_train(xh.astype(np.float32), w3.astype(np.float16).astype(np.float32),
                                                  b3.astype(np.float16).astype(np.float32))],
        {"training": 1})
xbf = bf16_round(cs.rand((5, 3), low=-1, high=1))
rm3, rv3 = cs.rand((3,)), cs.rand((3,), low=0.5, high=2)
yb, mb, ib = bn_eval(xbf, rm3, rv3, None, None)
cs.case("batch_norm_eval_bf16_f32_stats", "batch_norm", [In(xbf, dtype="bf16"), rm3, rv3, None, None],
        [Out(bf16_round(yb), dtype="bf16"), Out(bf16_round(mb), dtype="bf16"), Out(bf16_round(ib), dtype="bf16")])
# 0-size batch: torch returns an empty y and leaves the running stats alone;
# fern's saved stats of an empty batch are defined as mean 0, var 0.
empty = np.zeros((0, 3, 2), np.float32)
cs.case("batch_norm_train_empty_batch", "batch_norm", [empty, rm3, rv3, w3, b3],
        [np_(F.batch_norm(T(empty), T(rm3.copy()), T(rv3.copy()), T(w3), T(b3), training=True)),
         np.zeros(3, np.float32), np.full(3, 1 / np.sqrt(np.float32(EPS)), np.float32)], {"training": 1})
cs.case("batch_norm_eval_empty_batch", "batch_norm", [empty, rm3, rv3, w3, b3],
        [np.zeros((0, 3, 2), np.float32)] + bn_eval(np.zeros((1, 3), np.float32), rm3, rv3, w3, b3)[1:])
cs.error("batch_norm_eval_no_running", "batch_norm", [x2, None, None, w4, b4], "required")
cs.error("batch_norm_one_value", "batch_norm", [cs.rand((1, 3)), None, None, None, None],
         "more than 1 value", {"training": 1})
cs.error("batch_norm_one_value_4d", "batch_norm", [cs.rand((1, 3, 1, 1)), None, None, None, None],
         "more than 1 value", {"training": 1})
cs.error("batch_norm_weight_shape", "batch_norm", [x2, None, None, cs.rand((3,)), None], "weight",
         {"training": 1})
cs.error("batch_norm_running_shape", "batch_norm", [x2, cs.rand((5,)), rv4, None, None], "running_mean")
cs.error("batch_norm_half_running", "batch_norm", [x2, rm4, None, None, None], "together", {"training": 1})
cs.error("batch_norm_1d", "batch_norm", [cs.rand((5,)), None, None, None, None], "at least 2 dims",
         {"training": 1})
cs.error("batch_norm_int", "batch_norm", [np.ones((4, 2), np.int64), None, None, None, None], "float",
         {"training": 1})
cs.error("batch_norm_param_dtype", "batch_norm", [x2, rm4.astype(np.float64), rv4, None, None], "dtype")

xfc = cs.rand((3, 16, 5, 7), low=-2, high=1)
w16, b16 = cs.rand((16,), low=0.5, high=1.5), cs.rand((16,))
cs.case("batch_norm_train_16_channels", "batch_norm", [xfc, None, None, w16, b16], bn_train(xfc, w16, b16),
        {"training": 1})
xfd = cs.rand((2, 24, 9), dtype=np.float64, low=-1, high=3)
cs.case("batch_norm_train_24_channels_f64", "batch_norm", [xfd, None, None, None, None],
        bn_train(xfd, None, None), {"training": 1})
# statistics combine per-plane partials (sums and squared deviations from each plane's
# mean): a large offset and planes with different means must not cost accuracy. The
# statistics' reference is torch in f64, rounded to f32; y is then (x - mean) * invstd in
# f32 from those (the rounding of mean to f32 alone moves y by ~3e-5 here).
xoff = (cs.rand((4, 3, 500), low=-1, high=1) + np.arange(4, dtype=np.float32)[:, None, None] * 0.5 +
        np.float32(300.0)).astype(np.float32)
_, m_off, i_off = [r.astype(np.float32) for r in bn_train(xoff.astype(np.float64), None, None)]
y_off = (xoff - m_off[None, :, None]) * i_off[None, :, None]
cs.case("batch_norm_train_offset_planes", "batch_norm", [xoff, None, None, None, None], [y_off, m_off, i_off],
        {"training": 1})
xlp = cs.rand((2, 3, 80), low=-1, high=2)  # planes long enough for per-plane partials
cs.case("batch_norm_train_long_planes", "batch_norm", [xlp, None, None, w3, b3], bn_train(xlp, w3, b3),
        {"training": 1})
xlpd = cs.rand((2, 3, 70), dtype=np.float64, low=-1, high=2)
cs.case("batch_norm_train_f64_long_planes", "batch_norm", [xlpd, None, None, wd, bd], bn_train(xlpd, wd, bd),
        {"training": 1})
x1x2 = cs.rand((5, 3, 1, 2), low=-1, high=1)  # two-value planes
cs.case("batch_norm_train_tiny_planes", "batch_norm", [x1x2, None, None, w3, b3], bn_train(x1x2, w3, b3),
        {"training": 1})

# ---- batch_norm_backward ----------------------------------------------------------
# torch.native_batch_norm_backward(train=True): inputs grad_out, x, mean, invstd, weight?;
# outputs grad_input, grad_weight, grad_bias. mean / invstd are usually the forward's saved
# statistics, but the op takes them as given (one case uses others).


def bnb(g, x, mean, inv, w):
    r = torch.ops.aten.native_batch_norm_backward(T(g), T(x), None if w is None else T(w), None, None,
                                                  T(mean), T(inv), True, EPS, [True, True, True])
    return [np_(t) for t in r]


def bnb_case(cid, x, w, g=None, stats=None, inputs=None, tol=None):
    g = cs.rand(x.shape, dtype=x.dtype) if g is None else g
    m, inv = stats if stats is not None else bn_train(x, w, None)[1:]
    ins = inputs if inputs is not None else [g, x, m, inv, w]
    cs.case(cid, "batch_norm_backward", ins, bnb(g, x, m, inv, w), tol=tol)


bnb_case("batch_norm_backward_4d", cs.rand((3, 4, 5, 6), low=-1, high=3), w4)
bnb_case("batch_norm_backward_2d_no_weight", cs.rand((8, 4), low=-2, high=2), None)
bnb_case("batch_norm_backward_3d", cs.rand((2, 3, 7), low=-1, high=1), w3)
bnb_case("batch_norm_backward_many_channels", cs.rand((5, 100), low=-1, high=2), wc)  # blocks + tail
w520 = cs.rand((520,), low=0.5, high=1.5)
bnb_case("batch_norm_backward_many_blocks", cs.rand((3, 520)), w520)
bnb_case("batch_norm_backward_16_channels", cs.rand((2, 16, 3, 3), low=-2, high=1), w16)
xo = cs.rand((4, 3, 5), low=-1, high=1)
bnb_case("batch_norm_backward_other_stats", xo, w3,
         stats=(cs.rand((3,), low=-0.5, high=0.5), cs.rand((3,), low=0.5, high=2.0)))
xbd = cs.rand((6, 3, 4), dtype=np.float64, low=-1, high=1)
bnb_case("batch_norm_backward_f64", xbd, wd)
bnb_case("batch_norm_backward_f64_24_channels", cs.rand((2, 24, 9), dtype=np.float64, low=-1, high=3),
         cs.rand((24,), dtype=np.float64))
bnb_case("batch_norm_backward_parallel", cs.rand((4, 4, 48, 48), low=-1, high=2), w8b)
bnb_case("batch_norm_backward_parallel_32_channels", cs.rand((8, 32, 16, 16), low=-1, high=2), None)
xnc = cs.rand((3, 4, 6, 5), low=-1, high=1)
gnc = cs.rand((3, 4, 5, 6))
mnc, inc = bn_train(xnc, None, None)[1:]
cs.case("batch_norm_backward_noncontig", "batch_norm_backward",
        [In(gnc, view=[("permute", [0, 1, 3, 2])]), xnc, mnc, inc, w4],
        bnb(np.ascontiguousarray(gnc.transpose(0, 1, 3, 2)), xnc, mnc, inc, w4))
xbh = cs.rand((6, 3, 4), low=-1, high=1).astype(np.float16)
gbh = cs.rand((6, 3, 4), low=-1, high=1).astype(np.float16)
mbh, ibh = [t.astype(np.float16) for t in bn_train(xbh.astype(np.float32), None, None)[1:]]
w3h = w3.astype(np.float16)
cs.case("batch_norm_backward_f16", "batch_norm_backward", [gbh, xbh, mbh, ibh, w3h],
        [t.astype(np.float16) for t in bnb(gbh.astype(np.float32), xbh.astype(np.float32), mbh.astype(np.float32),
                                           ibh.astype(np.float32), w3h.astype(np.float32))])
cs.case("batch_norm_backward_empty_batch", "batch_norm_backward",
        [empty, empty, np.zeros(3, np.float32), np.ones(3, np.float32), w3],
        [empty, np.zeros(3, np.float32), np.zeros(3, np.float32)])
cs.error("batch_norm_backward_grad_shape", "batch_norm_backward",
         [cs.rand((8, 3)), x2, rm4, rv4, None], "grad_out")
cs.error("batch_norm_backward_grad_dtype", "batch_norm_backward",
         [cs.rand((8, 4), dtype=np.float64), x2, rm4, rv4, None], "grad_out")
cs.error("batch_norm_backward_mean_shape", "batch_norm_backward", [x2, x2, cs.rand((5,)), rv4, None], "mean")
cs.error("batch_norm_backward_invstd_dtype", "batch_norm_backward",
         [x2, x2, rm4, rv4.astype(np.float64), None], "invstd")
cs.error("batch_norm_backward_weight_shape", "batch_norm_backward", [x2, x2, rm4, rv4, cs.rand((3,))],
         "weight")
cs.error("batch_norm_backward_1d", "batch_norm_backward", [cs.rand((5,)), cs.rand((5,)), rm4, rv4, None],
         "at least 2 dims")
cs.error("batch_norm_backward_int", "batch_norm_backward",
         [np.ones((4, 2), np.int64), np.ones((4, 2), np.int64), rm4, rv4, None], "float")

# ---- group_norm ------------------------------------------------------------------
xg = cs.rand((2, 6, 4, 4), low=-1, high=2)
w6, b6 = cs.rand((6,), low=0.5, high=1.5), cs.rand((6,))
for g in (1, 2, 3, 6):
    cs.case("group_norm_g%d" % g, "group_norm", [xg, w6, b6], [np_(F.group_norm(T(xg), g, T(w6), T(b6)))],
            {"num_groups": g})
cs.case("group_norm_no_affine", "group_norm", [xg, None, None], [np_(F.group_norm(T(xg), 2))], {"num_groups": 2})
cs.case("group_norm_weight_only", "group_norm", [xg, w6, None], [np_(F.group_norm(T(xg), 3, T(w6)))],
        {"num_groups": 3})
cs.case("group_norm_eps", "group_norm", [xg, None, b6], [np_(F.group_norm(T(xg), 3, None, T(b6), eps=0.3))],
        {"num_groups": 3, "eps": 0.3})
x3g = cs.rand((3, 4, 5))
cs.case("group_norm_3d", "group_norm", [x3g, None, None], [np_(F.group_norm(T(x3g), 2))], {"num_groups": 2})
x2g = cs.rand((5, 4))
cs.case("group_norm_2d", "group_norm", [x2g, None, None], [np_(F.group_norm(T(x2g), 2))], {"num_groups": 2})
cs.case("group_norm_noncontig", "group_norm", [In(xg, view=[("permute", [0, 1, 3, 2])]), w6, b6],
        [np_(F.group_norm(T(xg).permute(0, 1, 3, 2), 3, T(w6), T(b6)))], {"num_groups": 3})
xgd = cs.rand((2, 4, 3), dtype=np.float64)
cs.case("group_norm_f64", "group_norm", [xgd, None, None], [np_(F.group_norm(T(xgd), 2))], {"num_groups": 2})
xgh = cs.rand((2, 4, 3)).astype(np.float16)
cs.case("group_norm_f16", "group_norm", [xgh, None, None],
        [np_(F.group_norm(T(xgh.astype(np.float32)), 2)).astype(np.float16)], {"num_groups": 2})
xgp = cs.rand((4, 32, 16, 16))
cs.case("group_norm_parallel", "group_norm", [xgp, None, None], [np_(F.group_norm(T(xgp), 8))], {"num_groups": 8})
cs.case("group_norm_empty_batch", "group_norm", [np.zeros((0, 4, 2), np.float32), None, None],
        [np_(F.group_norm(torch.zeros(0, 4, 2), 2))], {"num_groups": 2})
cs.error("group_norm_indivisible", "group_norm", [xg, None, None], "divisible", {"num_groups": 4})
cs.error("group_norm_zero_groups", "group_norm", [xg, None, None], "divisible", {"num_groups": 0})
cs.error("group_norm_weight_shape", "group_norm", [xg, cs.rand((3,)), None], "weight", {"num_groups": 3})
cs.error("group_norm_1d", "group_norm", [cs.rand((6,)), None, None], "at least 2 dims", {"num_groups": 3})
cs.error("group_norm_int", "group_norm", [np.ones((2, 4), np.int32), None, None], "float", {"num_groups": 2})

main_write(cs)
