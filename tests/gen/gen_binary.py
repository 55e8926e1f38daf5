"""Reference cases for the binary and ternary elementwise ops, computed by
PyTorch 1.13 (torch's dtype rules are the reference: result types, 0-d
operands that do not widen within a category, integer division giving f32,
errors for bool subtraction and bool pow/fmod).

Coverage per op: f32 and f64, an f16 and a bf16 case (expected: torch in f32
on the half values rounded to the half dtype), broadcasting ((3,1) with
(1,4), rank mismatch, a 0-d operand on either side, size-1 dims), permuted,
strided-slice and expanded inputs, a 0-size result, integer and bool dtypes
where torch defines them, mixed-dtype promotion, special values (nan, inf,
signed zeros, division by zero) and a large broadcast that runs threaded.
Error cases: broadcast mismatch, bool subtraction, bool pow/fmod, integer
fmod by zero, non-bool where condition.

Tolerances: the per-dtype defaults (f32 rtol 1e-5 atol 1e-6, f64 1e-10 /
1e-12, f16 2e-3 / 1e-3, bf16 1.6e-2 / 1e-2); integer and bool outputs exact.
u8 with i8 promotes to i16 in torch; fern has no i16 and gives i32 (the
expected values are torch's, stored as i32).
"""
import numpy as np
import torch

from caselib import Cases, In, Out, main_write

cs = Cases(seed=23)
inf, nan = float("inf"), float("nan")


def T(a):
    return torch.from_numpy(np.array(a, copy=True, order="C"))


def run(fn, *arrs):
    return fn(*[T(a) for a in arrs]).numpy()


FNS = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "pow": torch.pow, "maximum": torch.maximum, "minimum": torch.minimum,
    "atan2": torch.atan2, "fmod": torch.fmod,
    "eq": torch.eq, "ne": torch.ne, "lt": torch.lt, "le": torch.le, "gt": torch.gt,
    "ge": torch.ge,
    "logical_and": torch.logical_and, "logical_or": torch.logical_or,
    "logical_xor": torch.logical_xor,
}
ARITH = ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "atan2", "fmod"]
CMP = ["eq", "ne", "lt", "le", "gt", "ge"]
LOGIC = ["logical_and", "logical_or", "logical_xor"]


def operands(name, shape_a, shape_b, dtype=np.float32):
    """Random operands suited to the op (positive bases for pow, divisors
    away from zero, a few equal pairs for comparisons)."""
    if name == "pow":
        a = cs.rand(shape_a, dtype, 0.1, 3.0)
        b = cs.rand(shape_b, dtype, -2.0, 2.0)
    elif name in ("div", "fmod"):
        a = cs.rand(shape_a, dtype, -5, 5)
        b = cs.rand(shape_b, dtype, 0.5, 2.0) * np.where(cs.rand(shape_b) > 0, 1, -1).astype(dtype)
    elif name in CMP or name in LOGIC:
        a = np.round(cs.rand(shape_a, dtype, -2, 2)).astype(dtype)
        b = np.round(cs.rand(shape_b, dtype, -2, 2)).astype(dtype)
    else:
        a = cs.rand(shape_a, dtype, -3, 3)
        b = cs.rand(shape_b, dtype, -3, 3)
    return a.astype(dtype), b.astype(dtype)


def half_case(cid, name, a, b, half):
    fn = FNS[name]
    tdt = torch.float16 if half == "f16" else torch.bfloat16
    ha, hb = T(a).to(tdt), T(b).to(tdt)
    r = fn(ha.float(), hb.float())
    if r.dtype == torch.float32:
        r = r.to(tdt)
    ins = [ha.float().numpy(), hb.float().numpy()]
    if half == "f16":
        ins = [x.astype(np.float16) for x in ins]
        outs = [r.numpy()]
    else:
        ins = [In(x, dtype="bf16") for x in ins]
        outs = [Out(r.float().numpy(), dtype="bf16") if r.dtype == tdt else r.numpy()]
    cs.case(cid, name, ins, outs)


for name in ARITH + CMP + LOGIC:
    fn = FNS[name]
    a, b = operands(name, (3, 4), (3, 4))
    cs.case(name + "_f32", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (2, 3, 2), (2, 3, 2), np.float64)
    cs.case(name + "_f64", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (5,), (5,))
    half_case(name + "_f16", name, a, b, "f16")
    a, b = operands(name, (2, 3), (2, 3))
    half_case(name + "_bf16", name, a, b, "bf16")
    # broadcasting
    a, b = operands(name, (3, 1), (1, 4))
    cs.case(name + "_bcast_3x1_1x4", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (2, 3, 4), (4,))
    cs.case(name + "_bcast_rank", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (4,), (2, 3, 1))
    cs.case(name + "_bcast_rank_rev", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (2, 1, 3, 1), (1, 4, 1, 5))
    cs.case(name + "_bcast_ones", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (3, 5), ())
    cs.case(name + "_scalar_right", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (), (3, 5))
    cs.case(name + "_scalar_left", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (), ())
    cs.case(name + "_0d_0d", name, [a, b], [run(fn, a, b)])
    # non-contiguous inputs
    a, b = operands(name, (4, 3), (3, 4))
    cs.case(name + "_permuted", name, [In(a, view=[("permute", [1, 0])]), b],
            [run(fn, a.T, b)])
    a, b = operands(name, (3, 8), (3, 3), np.float64)
    cs.case(name + "_sliced", name, [In(a, view=[("slice", 1, 1, 8, 3)]), b],
            [run(fn, a[:, 1:8:3], b)])
    a, b = operands(name, (3, 1), (4, 3, 2))
    cs.case(name + "_expanded", name, [In(a, view=[("expand", [2, 3, 4])]),
                                       In(b, view=[("permute", [2, 1, 0])])],
            [run(fn, np.broadcast_to(a, (2, 3, 4)), b.transpose(2, 1, 0))])
    # 0-size
    a, b = operands(name, (0, 3), (3,))
    cs.case(name + "_empty", name, [a, b], [run(fn, a, b)])
    a, b = operands(name, (2, 0, 1), (1, 4))
    cs.case(name + "_empty_bcast", name, [a, b], [run(fn, a, b)])
    # a broadcast large enough to run threaded
    if name in ("add", "gt", "pow"):
        # values on a 1/4 grid keep the case file small
        a, b = [np.round(v * 4) / 4 for v in operands(name, (300, 1, 64), (1, 4, 64))]
        if name == "pow":
            a, b = np.abs(a) + np.float32(0.25), np.float32(2.0) * np.ones_like(b)
        cs.case(name + "_big", name, [a, b], [run(fn, a, b)])
    # errors
    cs.error(name + "_bcast_mismatch", name, [cs.rand((2, 3)), cs.rand((4,))], "broadcast")
    cs.error(name + "_bcast_mismatch_inner", name, [cs.rand((2, 3, 4)), cs.rand((3, 3, 1))],
             "broadcast")

# transposed operands large enough for the tiled walk (partial tiles, a
# leading dim, mixed with broadcasting)
ta, tb = cs.rand((3, 40, 50)), cs.rand((3, 50, 40))
cs.case("add_tiled", "add", [In(ta, view=[("permute", [0, 2, 1])]), tb],
        [run(torch.add, ta.transpose(0, 2, 1), tb)])
cs.case("mul_tiled_bcast", "mul", [In(ta[0], view=[("permute", [1, 0])]), tb[:, :1, :]],
        [run(torch.mul, ta[0].T, tb[:, :1, :])])
cs.case("gt_tiled_both", "gt", [In(ta, view=[("permute", [2, 1, 0])]),
                                In(tb, view=[("permute", [1, 2, 0])])],
        [run(torch.gt, ta.transpose(2, 1, 0), tb.transpose(1, 2, 0))])
tw, twa = cs.rand((64, 48)) > 0, cs.rand((48, 1))
half32 = np.array(0.5, np.float32)
cs.case("where_tiled", "where", [In(tw, view=[("permute", [1, 0])]), twa, half32],
        [run(torch.where, tw.T, twa, half32)])
tl = cs.randint((33, 70), -50, 50, np.int64)
cs.case("sub_tiled_i64", "sub", [In(tl, view=[("permute", [1, 0])]), tl.T.copy()],
        [run(torch.sub, tl.T, tl.T.copy())])

# ---- integer and bool dtypes ----------------------------------------------------
ia = np.array([[-7, -1, 0, 5], [3, 100, -100, 2 ** 30]], np.int32)
ib = np.array([[2, -3, 4, 5], [-1, 7, 3, -2]], np.int32)
la = np.array([-(2 ** 40), -5, 0, 9, 2 ** 62, 17], np.int64)
lb = np.array([3, -2, 7, -4, 2, 5], np.int64)
i8a = np.array([-128, -3, 0, 4, 127, 100], np.int8)
i8b = np.array([-1, 2, 5, -7, 1, 3], np.int8)
u8a = np.array([0, 1, 7, 200, 255, 9], np.uint8)
u8b = np.array([3, 255, 2, 100, 1, 4], np.uint8)
ba = np.array([True, False, True, False])
bb = np.array([True, True, False, False])

for name in ["add", "sub", "mul", "maximum", "minimum", "fmod"] + CMP + LOGIC:
    fn = FNS[name]
    cs.case(name + "_i32", name, [ia, ib], [run(fn, ia, ib)])
    cs.case(name + "_i64", name, [la, lb], [run(fn, la, lb)])
    cs.case(name + "_i8", name, [i8a, i8b], [run(fn, i8a, i8b)])
    cs.case(name + "_u8", name, [u8a, u8b], [run(fn, u8a, u8b)])
    cs.case(name + "_i32_bcast", name, [ia, ib[:1, :]], [run(fn, ia, ib[:1, :])])
    cs.case(name + "_i32_T", name, [In(ia.T.copy(), view=[("permute", [1, 0])]), ib],
            [run(fn, ia, ib)])
for name in ["div", "atan2", "pow"]:
    fn = FNS[name]
    with np.errstate(all="ignore"):
        cs.case(name + "_i32", name, [ia, ib], [run(fn, ia, ib)])
        cs.case(name + "_i64", name, [la[:4], lb[:4]], [run(fn, la[:4], lb[:4])])
        cs.case(name + "_u8", name, [u8a, u8b], [run(fn, u8a, u8b)])
# pow of integers: negative exponents (torch gives 0 but for bases +-1),
# overflow wraps
pa = np.array([2, 1, -1, -1, 0, 3, 5, -2, 7], np.int64)
pb = np.array([-1, -2, -3, -4, 5, 0, 3, 63, 40], np.int64)
cs.case("pow_i64_neg_exp", "pow", [pa, pb], [run(torch.pow, pa, pb)])
cs.case("pow_i32_wrap", "pow", [pa.astype(np.int32), pb.astype(np.int32)],
        [run(torch.pow, pa.astype(np.int32), pb.astype(np.int32))])
cs.case("pow_i8_abs_exp", "pow", [i8a, np.abs(i8b)], [run(torch.pow, i8a, np.abs(i8b))])
cs.case("pow_u8_small_exp", "pow", [u8a, u8b % 4], [run(torch.pow, u8a, u8b % 4)])
# integer wraparound in add/sub/mul
big32 = np.array([2 ** 31 - 1, -(2 ** 31), 65536], np.int32)
for name in ["add", "sub", "mul"]:
    cs.case(name + "_i32_wrap", name, [big32, big32[::-1].copy()],
            [run(FNS[name], big32, big32[::-1].copy())])
cs.case("fmod_i32_neg_one", "fmod", [np.array([7, -7, 2 ** 31 - 1], np.int32),
                                     np.array([-1, -1, -1], np.int32)],
        [np.array([0, 0, 0], np.int32)])  # torch crashes on INT_MIN % -1; C fmod gives 0
fs_a, fs_b = np.array([7, -7, 7, -7], np.int32), np.array([3, 3, -3, -3], np.int32)
cs.case("fmod_i32_signs", "fmod", [fs_a, fs_b], [run(torch.fmod, fs_a, fs_b)])
cs.error("fmod_i32_zero", "fmod", [ia, np.array([1, 0, 2, 3], np.int32)], "division by zero")
cs.error("fmod_i64_zero_scalar", "fmod", [la, np.array(0, np.int64)], "division by zero")

# bool
for name in ["add", "mul", "maximum", "minimum"] + CMP + LOGIC + ["div", "atan2"]:
    cs.case(name + "_bool", name, [ba, bb], [run(FNS[name], ba, bb)])
cs.error("sub_bool", "sub", [ba, bb], "bool")
cs.error("sub_bool_int", "sub", [ia[0], ba], "bool")
cs.error("sub_int_bool_0d", "sub", [ia, np.array(True)], "bool")
cs.error("pow_bool", "pow", [ba, bb], "bool")
cs.error("fmod_bool", "fmod", [ba, bb], "bool")
cs.case("pow_int_bool", "pow", [ia[0], ba], [run(torch.pow, ia[0], ba)])

# ---- type promotion ---------------------------------------------------------------
fa = cs.rand((2, 4), np.float32)
da = cs.rand((2, 4), np.float64)
PROMO = [
    ("i32_f32", ia, fa), ("f32_f64", fa, da), ("i64_i32", la[:4].reshape(1, 4), ia),
    ("bool_i32", ba, ia), ("bool_f32", ba, fa), ("u8_i32", u8a[:4], ia),
    ("f32_tensor_f64_0d", fa, np.array(2.5)), ("i32_tensor_i64_0d", ia, np.array(3, np.int64)),
    ("i32_tensor_f64_0d", ia, np.array(0.5)),
    ("f32_0d_i64_tensor", np.array(1.5, np.float32), la[:4]),
    ("bool_tensor_i32_0d", ba, np.array(2, np.int32)), ("bool_tensor_f64_0d", ba, np.array(-1.5)),
    ("i64_0d_f64_0d", np.array(3, np.int64), np.array(2.0)),
    ("u8_tensor_i8_0d", u8a, np.array(-3, np.int8)),
    ("i8_tensor_f32", i8a[:4], fa[0]),
]
for name in ["add", "mul", "div", "maximum", "lt", "eq", "atan2", "logical_and", "logical_xor"]:
    for tag, x, y in PROMO:
        with np.errstate(all="ignore"):
            cs.case("%s_promo_%s" % (name, tag), name, [x, y], [run(FNS[name], x, y)])
for name in ["sub", "pow", "fmod", "minimum", "ge"]:
    for tag, x, y in PROMO[:3] + PROMO[6:10]:
        if name == "fmod" and not np.all(y):
            y = np.where(y == 0, 1, y).astype(y.dtype)  # integer fmod by 0 is an error
        with np.errstate(all="ignore"):
            cs.case("%s_promo_%s" % (name, tag), name, [x, y], [run(FNS[name], x, y)])
# u8 with i8: torch gives i16, fern i32 (no i16 dtype); values are torch's
for name in ["add", "mul", "maximum"]:
    r = run(FNS[name], u8a, i8a)
    cs.case(name + "_promo_u8_i8", name, [u8a, i8a], [r.astype(np.int32)])
# f16 with bf16 -> f32; f16 tensor with f32 0-d stays f16
h16 = cs.rand((4,), np.float32).astype(np.float16)
hbf = torch.from_numpy(cs.rand((4,), np.float32)).to(torch.bfloat16)
cs.case("add_promo_f16_bf16", "add", [h16, In(hbf.float().numpy(), dtype="bf16")],
        [(T(h16).float() + hbf.float()).numpy()])
r = (T(h16).float() * np.float32(1.25)).to(torch.float16).numpy()
cs.case("mul_promo_f16_tensor_f32_0d", "mul", [h16, np.array(1.25, np.float32)], [r])
cs.case("lt_promo_f16_f32", "lt", [h16, fa[0]], [(T(h16) < T(fa[0])).numpy()])
cs.case("eq_f16_f16", "eq", [h16, h16[::-1].copy()], [(T(h16) == T(h16[::-1].copy())).numpy()])
cs.case("gt_bf16_bf16", "gt", [In(hbf.float().numpy(), dtype="bf16"),
                               In(hbf.flip(0).float().numpy(), dtype="bf16")],
        [(hbf > hbf.flip(0)).numpy()])

# ---- special values -------------------------------------------------------------
sx = np.array([nan, 1.0, nan, inf, -inf, inf, 0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 0.0, 2.0, -3.0,
               1e-30], np.float32)
sy = np.array([1.0, nan, nan, inf, inf, -inf, -0.0, 0.0, 0.0, -0.0, 0.0, 0.0, 0.0, inf, -inf, 1e30],
              np.float32)
for name in ARITH + CMP + LOGIC:
    with np.errstate(all="ignore"):
        cs.case(name + "_special", name, [sx, sy], [run(FNS[name], sx, sy)])
        cs.case(name + "_special_f64", name, [sx.astype(np.float64), sy.astype(np.float64)],
                [run(FNS[name], sx.astype(np.float64), sy.astype(np.float64))])
# atan2 quadrants and signed zeros
ay = np.array([0.0, -0.0, 0.0, -0.0, 1.0, -1.0, 1.0, -1.0, inf, -inf, 3.0], np.float32)
ax = np.array([0.0, 0.0, -0.0, -0.0, -1.0, -1.0, 0.0, 0.0, inf, -inf, -inf], np.float32)
cs.case("atan2_quadrants", "atan2", [ay, ax], [run(torch.atan2, ay, ax)])
# pow with each fast-path exponent (0-d and broadcast) over special bases
pbase = np.array([-inf, -8.0, -2.0, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 3.0, inf, nan], np.float32)
for e in [2.0, 3.0, 1.0, 0.0, -1.0, -2.0, 0.5, -0.5, 1.5, -3.0, inf, -inf, nan]:
    for dt in (np.float32, np.float64):
        ex = np.array(e, dt)
        tag = ("%g" % e).replace("-", "m").replace(".", "p")
        with np.errstate(all="ignore"):
            cs.case("pow_exp_%s_%s" % (tag, np.dtype(dt).name), "pow", [pbase.astype(dt), ex],
                    [run(torch.pow, pbase.astype(dt), ex)])
pa2 = cs.rand((3, 4))
pe2 = np.full((3, 1), 2.0, np.float32)
cs.case("pow_exp_2_bcast", "pow", [pa2, pe2], [run(torch.pow, pa2, pe2)])
psb = np.array(2.0, np.float32)
pse = cs.rand((5,), np.float32, -3, 3)
cs.case("pow_scalar_base", "pow", [psb, pse], [run(torch.pow, psb, pse)])

# ---- where ---------------------------------------------------------------------
cond = cs.rand((3, 4)) > 0
wa, wb = cs.rand((3, 4)), cs.rand((3, 4))
W = lambda c, a, b: run(torch.where, c, a, b)
cs.case("where_f32", "where", [cond, wa, wb], [W(cond, wa, wb)])
cs.case("where_f64", "where", [cond, wa.astype(np.float64), wb.astype(np.float64)],
        [W(cond, wa.astype(np.float64), wb.astype(np.float64))])
cs.case("where_f16", "where", [cond, wa.astype(np.float16), wb.astype(np.float16)],
        [W(cond, wa.astype(np.float16), wb.astype(np.float16))])
hwa, hwb = T(wa).to(torch.bfloat16), T(wb).to(torch.bfloat16)
cs.case("where_bf16", "where", [cond, In(hwa.float().numpy(), dtype="bf16"),
                                In(hwb.float().numpy(), dtype="bf16")],
        [Out(torch.where(T(cond), hwa, hwb).float().numpy(), dtype="bf16")])
cs.case("where_i64", "where", [cond[0], la[:4], lb[:4]], [W(cond[0], la[:4], lb[:4])])
cs.case("where_i8", "where", [cond[0], i8a[:4], i8b[:4]], [W(cond[0], i8a[:4], i8b[:4])])
cs.case("where_bool", "where", [cond[0], ba, bb], [W(cond[0], ba, bb)])
cs.case("where_u8_cond", "where", [cond.astype(np.uint8) * 3, wa, wb], [W(cond, wa, wb)])
cs.case("where_bcast3", "where", [cond[:, :1], wa[:1, :], np.array(0.5, np.float32)],
        [W(cond[:, :1], wa[:1, :], np.array(0.5, np.float32))])
cs.case("where_scalar_a", "where", [cond, np.array(-1.0, np.float32), wb],
        [W(cond, np.array(-1.0, np.float32), wb)])
wx = cs.rand((2, 3, 4))
cs.case("where_rank", "where", [cond[0], wx, wb[1]], [W(cond[0], wx, wb[1])])
cs.case("where_promo_i32_f32", "where", [cond, ia.repeat(2, 0)[:3, :], wb],
        [W(cond, ia.repeat(2, 0)[:3, :], wb)])
cs.case("where_promo_i32_f64_0d", "where", [cond[0], ia[0], np.array(2.5)],
        [W(cond[0], ia[0], np.array(2.5))])
q32 = np.array(0.25, np.float32)
cs.case("where_promo_f16_f32_0d", "where", [cond[0], wa[0].astype(np.float16), q32],
        [W(cond[0], wa[0].astype(np.float16), q32)])
cs.case("where_permuted", "where", [In(cond.T.copy(), view=[("permute", [1, 0])]),
                                    In(wa.T.copy(), view=[("permute", [1, 0])]),
                                    In(wb[:, :1], view=[("expand", [3, 4])])],
        [W(cond, wa, np.broadcast_to(wb[:, :1], (3, 4)))])
cs.case("where_sliced", "where",
        [In(cond, view=[("slice", 1, 0, 4, 2)]), In(wa, view=[("slice", 1, 1, 4, 2)]), wb[:, :2]],
        [W(cond[:, 0:4:2], wa[:, 1:4:2], wb[:, :2])])
cs.case("where_0d", "where", [np.array(True), np.array(1.5, np.float32), np.array(2.5, np.float32)],
        [W(np.array(True), np.array(1.5, np.float32), np.array(2.5, np.float32))])
cs.case("where_empty", "where", [np.zeros((0, 4), bool), wa[0], wb[0]],
        [W(np.zeros((0, 4), bool), wa[0], wb[0])])
bigc = cs.rand((200, 1, 200)) > 0
biga = np.round(cs.rand((1, 2, 200)) * 8) / 8
cs.case("where_big", "where", [bigc, biga, np.array(0.0, np.float32)],
        [W(bigc, biga, np.array(0.0, np.float32))])
cs.error("where_float_cond", "where", [wa, wa, wb], "condition must be a bool")
cs.error("where_i32_cond", "where", [ia, ia, ib], "condition must be a bool")
cs.error("where_bcast_mismatch", "where", [cond, wa[:, :3], wb], "broadcast")
main_write(cs)
