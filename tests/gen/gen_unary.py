"""Reference cases for the unary elementwise ops, computed by PyTorch 1.13
(and NumPy where torch errors but fern defines a result).

Coverage per op: f32 and f64 values over the op's domain, an f16 and a bf16
case (expected: torch in f32 on the half values, rounded to the half dtype,
which is torch's own CPU semantics for the ops it implements in half), a
permuted, a strided-slice and an expanded (zero-stride) input, a 0-d and a
0-size input, special values (nan, +-inf, +-0, domain edges) and integer /
bool inputs with torch's dtype rules (float functions of integers give f32,
neg/abs/sign/square/relu/floor/ceil/round/clip keep integer dtypes). Error
cases: bool or integer inputs torch rejects, and a bad gelu attribute.

Tolerances: the defaults (f32 rtol 1e-5 atol 1e-6, f64 1e-10/1e-12, f16
2e-3/1e-3, bf16 1.6e-2/1e-2; integer and bool outputs exact), except tan
over a wide range, which gets atol 2e-6 near its poles. fern's f32 exp, log,
tanh, erf, sin, ... are its own vectorized code: within a few ulp of the
exact value, so within a few ulp of torch's (far inside rtol 1e-5); where
torch's f32 formula loses accuracy to cancellation (gelu tails) fern is
closer to exact, and the difference stays under atol 1e-6.
"""
import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, Dtype, In, Out, main_write

cs = Cases(seed=11)
inf, nan = float("inf"), float("nan")


def T(a):
    return torch.from_numpy(np.array(a, copy=True, order="C"))


def run(fn, a):
    return fn(T(a)).numpy()


def half_case(cid, op, fn, a32, attrs, half):
    """a32: float32 values; half is 'f16' or 'bf16'."""
    tdt = torch.float16 if half == "f16" else torch.bfloat16
    h = torch.from_numpy(a32).to(tdt)
    exp = fn(h.float()).to(tdt).float().numpy()
    base = h.float().numpy()
    if half == "f16":
        cs.case(cid, op, [base.astype(np.float16)], [exp.astype(np.float16)], attrs)
    else:
        cs.case(cid, op, [In(base, dtype="bf16")], [Out(exp, dtype="bf16")], attrs)


SPECIAL = np.array([nan, inf, -inf, 0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.5, -2.5, 1e-30, -1e-30,
                    3e38, -3e38, 1e-40, 88.0, -88.0, 100.0, -100.0], np.float32)

# name: (torch fn, low, high, attrs): random inputs are drawn from [low, high)
FLOAT_FNS = {
    "neg": (torch.neg, -3, 3, None),
    "abs": (torch.abs, -3, 3, None),
    "sign": (torch.sign, -3, 3, None),
    "exp": (torch.exp, -10, 10, None),
    "expm1": (torch.expm1, -3, 3, None),
    "log": (torch.log, 0.01, 20, None),
    "log1p": (torch.log1p, -0.9, 10, None),
    "sqrt": (torch.sqrt, 0, 10, None),
    "rsqrt": (torch.rsqrt, 0.01, 10, None),
    "square": (torch.square, -3, 3, None),
    "reciprocal": (torch.reciprocal, 0.1, 5, None),
    "sin": (torch.sin, -10, 10, None),
    "cos": (torch.cos, -10, 10, None),
    "tan": (torch.tan, -1.4, 1.4, None),
    "tanh": (torch.tanh, -5, 5, None),
    "sigmoid": (torch.sigmoid, -10, 10, None),
    "relu": (torch.relu, -3, 3, None),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.1), -3, 3, {"negative_slope": 0.1}),
    "elu": (lambda x: F.elu(x, 0.7), -4, 3, {"alpha": 0.7}),
    "gelu": (F.gelu, -5, 5, {"approximate": 0}),
    "silu": (F.silu, -8, 8, None),
    "softplus": (F.softplus, -10, 25, None),
    "erf": (torch.erf, -4, 4, None),
    "floor": (torch.floor, -5, 5, None),
    "ceil": (torch.ceil, -5, 5, None),
    "round": (torch.round, -5, 5, None),
    "clip": (lambda x: torch.clamp(x, -0.5, 0.75), -2, 2, {"lo": -0.5, "hi": 0.75}),
}

for name, (fn, lo, hi, attrs) in FLOAT_FNS.items():
    a = cs.rand((3, 4), np.float32, lo, hi)
    cs.case(name + "_f32", name, [a], [run(fn, a)], attrs)
    a = cs.rand((2, 3, 5), np.float64, lo, hi)
    cs.case(name + "_f64", name, [a], [run(fn, a)], attrs)
    half_case(name + "_f16", name, fn, cs.rand((7,), np.float32, lo, hi), attrs, "f16")
    half_case(name + "_bf16", name, fn, cs.rand((2, 3), np.float32, lo, hi), attrs, "bf16")
    # non-contiguous inputs
    b = cs.rand((4, 5), np.float32, lo, hi)
    cs.case(name + "_permuted", name, [In(b, view=[("permute", [1, 0])])], [run(fn, b.T)], attrs)
    b = cs.rand((3, 8), np.float64, lo, hi)
    cs.case(name + "_sliced", name, [In(b, view=[("slice", 1, 1, 8, 3)])], [run(fn, b[:, 1:8:3])],
            attrs)
    b = cs.rand((3, 1), np.float32, lo, hi)
    cs.case(name + "_expanded", name, [In(b, view=[("expand", [2, 3, 4])])],
            [run(fn, np.broadcast_to(b, (2, 3, 4)))], attrs)
    # 0-d and 0-size
    s = np.array(cs.rand((), np.float32, lo, hi), np.float32)
    cs.case(name + "_0d", name, [s], [run(fn, s)], attrs)
    e = np.zeros((2, 0, 3), np.float32)
    cs.case(name + "_empty", name, [e], [run(fn, e)], attrs)
    # special values (nan, inf, zeros, tiny, huge)
    with np.errstate(all="ignore"):
        cs.case(name + "_special", name, [SPECIAL], [run(fn, SPECIAL)], attrs)
        sp64 = SPECIAL.astype(np.float64)
        cs.case(name + "_special_f64", name, [sp64], [run(fn, sp64)], attrs)

# a dense sweep of the activation and transcendental functions in f32 (the
# vectorized f32 code paths, with their range edges)
sweep = np.linspace(-30, 30, 6001, dtype=np.float32)
for name in ["exp", "tanh", "sigmoid", "gelu", "silu", "erf", "softplus", "elu", "expm1"]:
    fn, _, _, attrs = FLOAT_FNS[name]
    x = sweep if name != "exp" else sweep * np.float32(2.9)
    cs.case(name + "_sweep", name, [x], [run(fn, x)], attrs)
big = np.arange(-36, 36, 1 / 1024, dtype=np.float32)  # 73728 elements: threaded
cs.case("sigmoid_big", "sigmoid", [big], [run(torch.sigmoid, big)])
cs.case("exp_big_permuted", "exp", [In(big.reshape(256, 288), view=[("permute", [1, 0])])],
        [run(torch.exp, big.reshape(256, 288).T)])
# trig: the vectorized f32 path (|x| <= 4000) and the libm path beyond it
trig = np.concatenate([np.linspace(-4100, 4100, 1001), [3999.9, 4000.0, 4000.5, -4000.5, 1e6, -3e7,
                                                        1e30, 0.7853982, 1.5707964, 3.1415927]]
                      ).astype(np.float32)
for name in ["sin", "cos", "tan"]:
    fn = FLOAT_FNS[name][0]
    # tan: atol 2e-6 for values near its poles
    cs.case(name + "_range", name, [trig], [run(fn, trig)],
            tol=(1e-5, 2e-6) if name == "tan" else None)
    t64 = trig.astype(np.float64)
    cs.case(name + "_range_f64", name, [t64], [run(fn, t64)])
# transposed / permuted inputs large enough for the tiled walk (partial tiles,
# a leading batch dim), and a permuted 3-d input
tp = cs.rand((3, 37, 70), np.float32, -3, 3)
cs.case("tanh_tiled", "tanh", [In(tp, view=[("permute", [0, 2, 1])])],
        [run(torch.tanh, tp.transpose(0, 2, 1))])
cs.case("neg_tiled_3d", "neg", [In(tp, view=[("permute", [2, 0, 1])])],
        [run(torch.neg, tp.transpose(2, 0, 1))])
ti = cs.randint((45, 33), -100, 100, np.int32)
cs.case("abs_tiled_i32", "abs", [In(ti, view=[("permute", [1, 0])])], [run(torch.abs, ti.T)])
pos = np.exp(np.linspace(-80, 80, 4001)).astype(np.float32)
cs.case("log_sweep", "log", [pos], [run(torch.log, pos)])
pos1 = pos - np.float32(0.999)
cs.case("log1p_sweep", "log1p", [pos1], [run(torch.log1p, pos1)])
small = np.linspace(-1e-3, 1e-3, 2001, dtype=np.float32)
for name in ["tanh", "expm1", "log1p", "erf", "sin", "gelu", "silu"]:
    fn = FLOAT_FNS[name][0]
    cs.case(name + "_small", name, [small], [run(fn, small)], FLOAT_FNS[name][3])

# gelu tanh form, softplus attributes, elu/leaky defaults
g = cs.rand((4, 6), np.float32, -6, 6)
gt = lambda x: F.gelu(x, approximate="tanh")
cs.case("gelu_tanh_f32", "gelu", [g], [run(gt, g)], {"approximate": 1})
cs.case("gelu_tanh_f64", "gelu", [g.astype(np.float64)], [run(gt, g.astype(np.float64))],
        {"approximate": 1})
cs.case("gelu_tanh_sweep", "gelu", [sweep], [run(gt, sweep)], {"approximate": 1})
cs.case("gelu_tanh_special", "gelu", [SPECIAL], [run(gt, SPECIAL)], {"approximate": 1})
half_case("gelu_tanh_bf16", "gelu", gt, g, {"approximate": 1}, "bf16")
cs.case("gelu_default_attr", "gelu", [g], [run(F.gelu, g)])
sp = cs.rand((5, 4), np.float32, -10, 10)
cs.case("softplus_beta_threshold", "softplus", [sp], [run(lambda x: F.softplus(x, 2.0, 5.0), sp)],
        {"beta": 2.0, "threshold": 5.0})
cs.case("softplus_beta_f64", "softplus", [sp.astype(np.float64)],
        [run(lambda x: F.softplus(x, 0.5, 3.0), sp.astype(np.float64))],
        {"beta": 0.5, "threshold": 3.0})
cs.case("leaky_relu_default", "leaky_relu", [sp], [run(F.leaky_relu, sp)])
cs.case("elu_default", "elu", [sp], [run(F.elu, sp)])
cs.case("softplus_default", "softplus", [sp * 3], [run(F.softplus, sp * 3)])

# round: half to even; floor/ceil of negative values
r = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, 2.5000002, -3.7, 1e20, nan, -inf],
             np.float32)
for name, fn in [("round", torch.round), ("floor", torch.floor), ("ceil", torch.ceil)]:
    cs.case(name + "_halves", name, [r], [run(fn, r)])
    cs.case(name + "_halves_f64", name, [r.astype(np.float64)], [run(fn, r.astype(np.float64))])

# ---- integer and bool inputs --------------------------------------------------
ii = np.array([[-7, -1, 0], [1, 3, 100]], np.int32)
il = np.array([-(2 ** 40), -5, 0, 5, 2 ** 40, 2 ** 62], np.int64)
i8 = np.array([-128, -3, 0, 4, 127], np.int8)
u8 = np.array([0, 1, 7, 200, 255], np.uint8)
bb = np.array([True, False, True])
KEEP = {"neg": torch.neg, "abs": torch.abs, "sign": torch.sign, "square": torch.square,
        "relu": torch.relu, "floor": torch.floor, "ceil": torch.ceil, "round": torch.round}
for name, fn in KEEP.items():
    cs.case(name + "_i32", name, [ii], [run(fn, ii)])
    cs.case(name + "_i64", name, [il], [run(fn, il)])
    cs.case(name + "_i8", name, [i8], [run(fn, i8)])
    cs.case(name + "_u8", name, [u8], [run(fn, u8)])
    cs.case(name + "_i32_T", name, [In(ii, view=[("permute", [1, 0])])], [run(fn, ii.T)])
cs.case("sign_bool", "sign", [bb], [run(torch.sign, bb)])
cs.case("square_bool", "square", [bb], [run(torch.square, bb)])  # torch: i64
for name in ["neg", "abs", "relu", "floor", "ceil", "round"]:
    cs.error(name + "_bool", name, [bb], "bool input is not supported")

FLOATY = ["exp", "expm1", "log", "log1p", "sqrt", "rsqrt", "reciprocal", "sin", "cos", "tan",
          "tanh", "sigmoid", "erf"]
for name in FLOATY:
    fn = FLOAT_FNS[name][0]
    with np.errstate(all="ignore"):
        cs.case(name + "_i32_to_f32", name, [ii], [run(fn, ii)])  # torch: f32
        cs.case(name + "_i64_to_f32", name, [il[1:4]], [run(fn, il[1:4])])
        cs.case(name + "_u8_to_f32", name, [u8], [run(fn, u8)])
        cs.case(name + "_bool_to_f32", name, [bb], [run(fn, bb)])
        cs.case(name + "_i32_sliced", name, [In(ii, view=[("slice", 1, 0, 3, 2)])],
                [run(fn, ii[:, 0:3:2])])
        cs.case(name + "_i32_expanded", name, [In(ii[:, :1], view=[("expand", [2, 5])])],
                [run(fn, np.broadcast_to(ii[:, :1], (2, 5)))])
for name, attrs in [("leaky_relu", None), ("elu", None), ("gelu", None), ("silu", None),
                    ("softplus", None)]:
    cs.error(name + "_i32", name, [ii], "expects a float input")
    cs.error(name + "_bool", name, [bb], "expects a float input")
cs.error("gelu_bad_approximate", "gelu", [g], "approximate must be 0", {"approximate": 2})
cs.error("gelu_bad_approximate_neg", "gelu", [g], "approximate must be 0", {"approximate": -1})

# ---- relu_backward: torch's threshold_backward(g, relu(x), 0) ------------------
rb_x = cs.rand((3, 7), np.float32, -2, 2)
rb_x[0, :4] = [0.0, -0.0, nan, inf]
rb_y = np.maximum(rb_x, 0, where=~np.isnan(rb_x), out=rb_x.copy())
rb_g = cs.rand((3, 7), np.float32, -1, 1)
rb_g[1, :2] = [inf, nan]
tb = lambda g, y: torch.ops.aten.threshold_backward(g, y, 0.0)
for dt in (np.float32, np.float64):
    gg, yy = rb_g.astype(dt), rb_y.astype(dt)
    cs.case("relu_backward_" + np.dtype(dt).name, "relu_backward", [gg, yy],
            [tb(torch.from_numpy(gg), torch.from_numpy(yy)).numpy()])
cs.case("relu_backward_T", "relu_backward",
        [In(rb_g.T.copy(), view=[("permute", [1, 0])]), rb_y],
        [tb(torch.from_numpy(rb_g), torch.from_numpy(rb_y)).numpy()])
cs.error("relu_backward_shape", "relu_backward", [rb_g, rb_y[:2]], "must have one shape")
cs.error("relu_backward_i32", "relu_backward", [ii, ii], "relu_backward")

# ---- clip ----------------------------------------------------------------------
c = cs.rand((4, 5), np.float32, -3, 3)
cs.case("clip_lo_only", "clip", [c], [run(lambda x: torch.clamp(x, min=-1.0), c)], {"lo": -1.0})
cs.case("clip_hi_only", "clip", [c], [run(lambda x: torch.clamp(x, max=0.25), c)],
        {"hi": 0.25, "lo": -inf})
cs.case("clip_no_bounds", "clip", [c], [c], {"lo": -inf, "hi": inf})
cs.case("clip_lo_gt_hi", "clip", [c], [run(lambda x: torch.clamp(x, 1.0, 0.0), c)],
        {"lo": 1.0, "hi": 0.0})
cs.case("clip_nan_bound", "clip", [c], [run(lambda x: torch.clamp(x, min=nan), c)], {"lo": nan})
cs.case("clip_i32", "clip", [ii], [run(lambda x: torch.clamp(x, -2, 50), ii)],
        {"lo": -2.0, "hi": 50.0})
cs.case("clip_i64_lo", "clip", [il], [run(lambda x: torch.clamp(x, min=0), il)], {"lo": 0.0})
cs.case("clip_u8", "clip", [u8], [run(lambda x: torch.clamp(x, 5, 100), u8)],
        {"lo": 5.0, "hi": 100.0})
cs.case("clip_i8", "clip", [i8], [run(lambda x: torch.clamp(x, -100, 3), i8)],
        {"lo": -100.0, "hi": 3.0})
# bounds outside the dtype's range saturate (torch raises an overflow error
# instead; NumPy's clip in a wide type is the reference)
cs.case("clip_u8_wide_bounds", "clip", [u8],
        [np.clip(u8.astype(np.int64), -5, 300).astype(np.uint8)], {"lo": -5.0, "hi": 300.0})
cs.case("clip_i32_frac_to_f32", "clip", [ii], [run(lambda x: torch.clamp(x, -0.5, 2.5), ii)],
        {"lo": -0.5, "hi": 2.5})
cs.case("clip_bool_to_i64", "clip", [bb], [run(lambda x: torch.clamp(x, 0, 0), bb)],
        {"lo": 0.0, "hi": 0.0})
cs.case("clip_bool_frac_to_f32", "clip", [bb], [run(lambda x: torch.clamp(x, max=0.5), bb)],
        {"hi": 0.5})
cs.case("clip_bool_no_bounds", "clip", [bb], [bb])

# ---- predicates ----------------------------------------------------------------
pv = np.array([nan, inf, -inf, 0.0, -0.0, 1.0, -2.5, 1e-40], np.float32)
PRED = {"isnan": torch.isnan, "isinf": torch.isinf, "logical_not": torch.logical_not}
for name, fn in PRED.items():
    cs.case(name + "_f32", name, [pv], [run(fn, pv)])
    cs.case(name + "_f64", name, [pv.astype(np.float64)], [run(fn, pv.astype(np.float64))])
    h = torch.from_numpy(pv).to(torch.float16)
    cs.case(name + "_f16", name, [h.numpy()], [fn(h).numpy()])
    hb = torch.from_numpy(pv).to(torch.bfloat16)
    cs.case(name + "_bf16", name, [In(hb.float().numpy(), dtype="bf16")], [fn(hb).numpy()])
    cs.case(name + "_i32", name, [ii], [run(fn, ii)])
    cs.case(name + "_i64", name, [il], [run(fn, il)])
    cs.case(name + "_u8", name, [u8], [run(fn, u8)])
    cs.case(name + "_i8", name, [i8], [run(fn, i8)])
    cs.case(name + "_bool", name, [bb], [run(fn, bb)])
    m = np.where(cs.rand((3, 4)) > 0.3, cs.rand((3, 4)), np.float32(nan)).astype(np.float32)
    m[0, 0], m[1, 2] = inf, 0.0
    cs.case(name + "_permuted", name, [In(m, view=[("permute", [1, 0])])], [run(fn, m.T)])
    cs.case(name + "_0d", name, [np.array(nan, np.float32)], [run(fn, np.array(nan, np.float32))])
    cs.case(name + "_empty", name, [np.zeros((0, 2), np.float64)],
            [run(fn, np.zeros((0, 2), np.float64))])

main_write(cs)
