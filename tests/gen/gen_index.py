"""Reference cases for the shape and indexing ops (concat, stack, gather,
take_along_axis, index_select, scatter, scatter_add, tile, repeat, flip,
roll, tril, triu), from NumPy and PyTorch 1.13."""
import numpy as np
import torch

from caselib import Cases, In, Out, main_write

cs = Cases(seed=7)
T = torch.from_numpy


def bf16(x):
    """float32 values exactly representable in bf16, and an In for them."""
    v = torch.tensor(x).to(torch.bfloat16).to(torch.float32).numpy()
    return v


def typed(x, dt):
    """A float array turned into dtype dt with varied values."""
    if dt == np.bool_:
        return x > 0
    if np.issubdtype(dt, np.integer):
        lo = 0 if dt == np.uint8 else -50
        return np.round(x * 50 + (60 if dt == np.uint8 else 0)).clip(lo, 120).astype(dt)
    return x.astype(dt)


DTYPES = [np.float32, np.float64, np.float16, np.int8, np.uint8, np.int32, np.int64, np.bool_]

# ---- concat -----------------------------------------------------------------
a = cs.rand((2, 3))
b = cs.rand((4, 3))
c = cs.rand((2, 5))
cs.case("concat_axis0", "concat", [a, b], [np.concatenate([a, b], 0)], {"axis": 0})
cs.case("concat_axis1", "concat", [a, c], [np.concatenate([a, c], 1)], {"axis": 1})
cs.case("concat_neg_axis", "concat", [a, c, a], [np.concatenate([a, c, a], -1)], {"axis": -1})
cs.case("concat_default_axis", "concat", [a, b, a], [np.concatenate([a, b, a], 0)])
cs.case("concat_single", "concat", [b], [b], {"axis": 1})
for dt in DTYPES:
    x, y = typed(a, dt), typed(b, dt)
    cs.case("concat_" + np.dtype(dt).name, "concat", [x, y], [np.concatenate([x, y])], {"axis": 0})
cs.case("concat_bf16", "concat", [In(bf16(a), dtype="bf16"), In(bf16(b), dtype="bf16")],
        [Out(np.concatenate([bf16(a), bf16(b)]), dtype="bf16")], {"axis": 0}, tol=(0, 0))
# non-contiguous inputs
bt = cs.rand((3, 4))  # viewed as its transpose (4, 3)
cs.case("concat_noncontig", "concat", [In(bt, view=[("permute", [1, 0])]), b],
        [np.concatenate([bt.T, b])], {"axis": 0})
d3 = cs.rand((2, 6, 3))
e3 = cs.rand((2, 1, 3))
cs.case("concat_sliced", "concat", [In(d3, view=[("slice", 1, 0, 6, 2)]), e3],
        [np.concatenate([d3[:, ::2], e3], 1)], {"axis": 1})
ex = cs.rand((1, 3))
cs.case("concat_expanded", "concat", [In(ex, view=[("expand", [2, 3])]), a],
        [np.concatenate([np.broadcast_to(ex, (2, 3)), a])], {"axis": 0})
# dtype promotion like torch.cat
for cid, x, y in [("concat_promote_i32_f32", typed(a, np.int32), a),
                  ("concat_promote_i64_f64", typed(a, np.int64), b.astype(np.float64)),
                  ("concat_promote_bool_u8", typed(a, np.bool_), typed(b, np.uint8)),
                  ("concat_promote_i32_i64", typed(a, np.int32), typed(b, np.int64)),
                  ("concat_promote_f16_f32", a.astype(np.float16), b),
                  ("concat_promote_bool_f64", typed(a, np.bool_), b.astype(np.float64))]:
    ref = torch.cat([T(x), T(y)]).numpy()
    cs.case(cid, "concat", [x, y], [ref], {"axis": 0})
# empty pieces
cs.case("concat_zero_size", "concat", [np.zeros((2, 0), np.float32), a], [a], {"axis": 1})
cs.case("concat_all_empty", "concat", [np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)],
        [np.zeros((0, 3), np.float32)], {"axis": 0})
cs.case("concat_legacy_empty_1d", "concat", [np.zeros((0,), np.float32), b.astype(np.float64)],
        [torch.cat([torch.zeros(0), T(b.astype(np.float64))]).numpy()], {"axis": 0})
big1, big2 = cs.rand((150, 300)), cs.rand((150, 200))
cs.case("concat_large", "concat", [big1, big2], [np.concatenate([big1, big2], 1)], {"axis": 1})
cs.error("concat_shape_mismatch", "concat", [a, c], "sizes must match", {"axis": 0})
cs.error("concat_ndim_mismatch", "concat", [a, cs.rand((2, 3, 1))], "same number of dims", {"axis": 0})
cs.error("concat_bad_axis", "concat", [a, a], "out of range", {"axis": 2})
cs.error("concat_0d", "concat", [np.array(1.0, np.float32), np.array(2.0, np.float32)],
         "zero-dimensional", {"axis": 0})

# ---- stack ------------------------------------------------------------------
a2 = cs.rand((2, 3))
for ax in [0, 1, 2, -1, -3]:
    cs.case("stack_axis%d" % ax, "stack", [a, a2, a], [np.stack([a, a2, a], ax)], {"axis": ax})
cs.case("stack_scalars", "stack", [np.array(1.5, np.float32), np.array(-2.0, np.float32)],
        [np.array([1.5, -2.0], np.float32)], {"axis": 0})
p = cs.rand((3, 2))
cs.case("stack_noncontig", "stack", [In(p, view=[("permute", [1, 0])]), a], [np.stack([p.T, a], 1)],
        {"axis": 1})
for dt in [np.int64, np.bool_, np.float16, np.uint8]:
    x, y = typed(a, dt), typed(a2, dt)
    cs.case("stack_" + np.dtype(dt).name, "stack", [x, y], [np.stack([x, y], 1)], {"axis": 1})
cs.case("stack_promote", "stack", [typed(a, np.int32), a2.astype(np.float64)],
        [torch.stack([T(typed(a, np.int32)), T(a2.astype(np.float64))]).numpy()], {"axis": 0})
cs.case("stack_empty", "stack", [np.zeros((0, 2), np.float32)] * 3, [np.zeros((0, 3, 2), np.float32)],
        {"axis": 1})
cs.error("stack_shape_mismatch", "stack", [a, b], "equal shape", {"axis": 0})
cs.error("stack_bad_axis", "stack", [a, a], "out of range", {"axis": 3})

# ---- gather -----------------------------------------------------------------
x = cs.rand((3, 4))
idx0 = cs.randint((2, 4), 0, 3)
idx1 = cs.randint((3, 6), 0, 4)
cs.case("gather_axis0", "gather", [x, idx0], [torch.gather(T(x), 0, T(idx0)).numpy()], {"axis": 0})
cs.case("gather_axis1", "gather", [x, idx1], [torch.gather(T(x), 1, T(idx1)).numpy()], {"axis": 1})
cs.case("gather_neg_axis", "gather", [x, idx1], [torch.gather(T(x), -1, T(idx1)).numpy()], {"axis": -1})
cs.case("gather_i32_index", "gather", [x, idx1.astype(np.int32)], [torch.gather(T(x), 1, T(idx1)).numpy()],
        {"axis": 1})
small = cs.randint((2, 2), 0, 3)  # smaller than x in the other dim too
cs.case("gather_smaller_index", "gather", [x, small], [torch.gather(T(x), 0, T(small)).numpy()], {"axis": 0})
xt = cs.rand((4, 3))  # viewed as (3, 4)
it = cs.randint((6, 3), 0, 4)  # viewed as (3, 6)
cs.case("gather_noncontig", "gather", [In(xt, view=[("permute", [1, 0])]), In(it, view=[("permute", [1, 0])])],
        [torch.gather(T(xt.T.copy()), 1, T(it.T.copy())).numpy()], {"axis": 1})
x3 = cs.rand((2, 3, 4))
i3 = cs.randint((2, 5, 4), 0, 3)
cs.case("gather_3d", "gather", [x3, i3], [torch.gather(T(x3), 1, T(i3)).numpy()], {"axis": 1})
for dt in [np.int64, np.bool_, np.float16, np.int8, np.float64]:
    xd = typed(x, dt)
    cs.case("gather_" + np.dtype(dt).name, "gather", [xd, idx1],
            [torch.gather(T(xd), 1, T(idx1)).numpy()], {"axis": 1})
cs.case("gather_bf16", "gather", [In(bf16(x), dtype="bf16"), idx1],
        [Out(torch.gather(T(bf16(x)), 1, T(idx1)).numpy(), dtype="bf16")], {"axis": 1}, tol=(0, 0))
cs.case("gather_scalar", "gather", [np.array(2.5, np.float32), np.array(0, np.int64)],
        [np.array(2.5, np.float32)], {"axis": 0})
cs.case("gather_empty", "gather", [x, np.zeros((0, 4), np.int64)], [np.zeros((0, 4), np.float32)],
        {"axis": 0})
xb = cs.rand((64, 700))
ib = cs.randint((64, 900), 0, 700)
cs.case("gather_large", "gather", [xb, ib], [torch.gather(T(xb), 1, T(ib)).numpy()], {"axis": 1})
cs.error("gather_out_of_range", "gather", [x, np.array([[0, 1, 5, 0]], np.int64)],
         "index 5 is out of bounds for dimension 0 with size 3", {"axis": 0})
cs.error("gather_negative", "gather", [x, np.array([[0, -1, 0, 0]], np.int32)],
         "index -1 is out of bounds", {"axis": 0})
cs.error("gather_float_index", "gather", [x, idx0.astype(np.float32)], "i32 or i64", {"axis": 0})
cs.error("gather_ndim", "gather", [x, np.zeros((4,), np.int64)], "same number of dims", {"axis": 0})
cs.error("gather_bad_axis", "gather", [x, idx0], "out of range", {"axis": 2})
cs.error("gather_index_too_big", "gather", [x, np.zeros((2, 5), np.int64)], "exceeds", {"axis": 0})

# ---- take_along_axis --------------------------------------------------------
y = cs.rand((3, 5))
order = np.argsort(y, axis=1)
cs.case("take_argsort", "take_along_axis", [y, order], [np.take_along_axis(y, order, 1)], {"axis": 1})
top = order[:, :2].copy()
cs.case("take_top2", "take_along_axis", [y, top], [np.take_along_axis(y, top, 1)], {"axis": 1})
col = np.argmax(y, axis=0)[None, :]
cs.case("take_axis0", "take_along_axis", [y, col], [np.take_along_axis(y, col, 0)], {"axis": 0})
bi = np.array([[0, 4, -1, -5]], np.int64)  # broadcasts over rows, negative from the end
cs.case("take_bcast_index_neg", "take_along_axis", [y, bi], [np.take_along_axis(y, bi, 1)], {"axis": -1})
row = cs.rand((1, 4))
ri = cs.randint((3, 2), 0, 4).astype(np.int32)
cs.case("take_bcast_input", "take_along_axis", [row, ri], [np.take_along_axis(row, ri, 1)], {"axis": 1})
yt = cs.rand((5, 3))
cs.case("take_noncontig", "take_along_axis", [In(yt, view=[("permute", [1, 0])]), order],
        [np.take_along_axis(yt.T, order, 1)], {"axis": 1})
for dt in [np.int64, np.bool_, np.float16]:
    yd = typed(y, dt)
    cs.case("take_" + np.dtype(dt).name, "take_along_axis", [yd, order], [np.take_along_axis(yd, order, 1)],
            {"axis": 1})
cs.case("take_empty", "take_along_axis", [y, np.zeros((3, 0), np.int64)], [np.zeros((3, 0), np.float32)],
        {"axis": 1})
cs.error("take_out_of_range", "take_along_axis", [y, np.array([[0, 5]], np.int64)],
         "index 5 is out of bounds for axis 1 with size 5", {"axis": 1})
cs.error("take_neg_out_of_range", "take_along_axis", [y, np.array([[-6]], np.int64)],
         "index -6 is out of bounds", {"axis": 1})
cs.error("take_ndim", "take_along_axis", [y, np.zeros((2,), np.int64)], "same number of dims", {"axis": 0})
cs.error("take_float_index", "take_along_axis", [y, order.astype(np.float64)], "i32 or i64", {"axis": 1})
cs.error("take_bcast_mismatch", "take_along_axis", [y, np.zeros((2, 1), np.int64)], "broadcast", {"axis": 1})

# ---- index_select -----------------------------------------------------------
z = cs.rand((4, 5))
sel = np.array([3, 0, 3, 1], np.int64)
cs.case("index_select_axis0", "index_select", [z, sel], [torch.index_select(T(z), 0, T(sel)).numpy()], {"axis": 0})
cs.case("index_select_axis1", "index_select", [z, sel], [torch.index_select(T(z), 1, T(sel)).numpy()], {"axis": 1})
cs.case("index_select_neg_axis", "index_select", [z, sel.astype(np.int32)],
        [torch.index_select(T(z), -1, T(sel)).numpy()], {"axis": -1})
zt = cs.rand((5, 4))
cs.case("index_select_noncontig", "index_select", [In(zt, view=[("permute", [1, 0])]), sel],
        [zt.T[:, sel]], {"axis": 1})
cs.case("index_select_noncontig_index", "index_select", [z, In(np.array([0, 9, 2, 9, 3, 9], np.int64),
                                                                view=[("slice", 0, 0, 6, 2)])],
        [z[[0, 2, 3]]], {"axis": 0})
cs.case("index_select_0d_index", "index_select", [z, np.array(2, np.int64)],
        [torch.index_select(T(z), 1, torch.tensor(2)).numpy()], {"axis": 1})
cs.case("index_select_empty", "index_select", [z, np.zeros((0,), np.int64)], [np.zeros((0, 5), np.float32)],
        {"axis": 0})
cs.case("index_select_0d_input", "index_select", [np.array(3.5, np.float64), np.array([0], np.int64)],
        [np.array(3.5)], {"axis": 0})
z3 = cs.rand((3, 4, 5))
cs.case("index_select_3d_mid", "index_select", [z3, sel], [z3[:, sel]], {"axis": 1})
for dt in [np.int64, np.bool_, np.float16, np.uint8]:
    zd = typed(z, dt)
    cs.case("index_select_" + np.dtype(dt).name, "index_select", [zd, sel], [zd[sel]], {"axis": 0})
emb = cs.rand((1000, 64))
ids = cs.randint((3000,), 0, 1000)
cs.case("index_select_large", "index_select", [emb, ids], [emb[ids]], {"axis": 0})
cs.error("index_select_out_of_range", "index_select", [z, np.array([0, 4], np.int64)],
         "index 4 is out of bounds for dimension 0 with size 4", {"axis": 0})
cs.error("index_select_negative", "index_select", [z, np.array([-1], np.int64)], "index -1 is out of bounds",
         {"axis": 0})
cs.error("index_select_2d_index", "index_select", [z, np.zeros((2, 2), np.int64)], "0-d or 1-d", {"axis": 0})
cs.error("index_select_float_index", "index_select", [z, sel.astype(np.float32)], "i32 or i64", {"axis": 0})
cs.error("index_select_bad_axis", "index_select", [z, sel], "out of range", {"axis": -3})

# ---- scatter / scatter_add --------------------------------------------------
base = cs.rand((3, 5))
src = cs.rand((2, 5))
perm_idx = np.stack([cs.rng.permutation(3)[:2] for _ in range(5)], axis=1).astype(np.int64)  # unique per column
cs.case("scatter_axis0", "scatter", [base, perm_idx, src],
        [T(base).scatter(0, T(perm_idx), T(src)).numpy()], {"axis": 0})
idx_r = np.stack([cs.rng.permutation(5)[:3] for _ in range(3)], axis=0).astype(np.int64)
src3 = cs.rand((3, 4))  # larger than index in dim 1
cs.case("scatter_axis1_src_larger", "scatter", [base, idx_r, src3],
        [T(base).scatter(1, T(idx_r), T(src3)).numpy()], {"axis": 1})
cs.case("scatter_neg_axis_i32", "scatter", [base, idx_r.astype(np.int32), src3],
        [T(base).scatter(-1, T(idx_r), T(src3)).numpy()], {"axis": -1})
bt_ = cs.rand((5, 3))
st_ = cs.rand((4, 3))
cs.case("scatter_noncontig", "scatter",
        [In(bt_, view=[("permute", [1, 0])]), In(idx_r.T.copy(), view=[("permute", [1, 0])]),
         In(st_, view=[("permute", [1, 0])])],
        [T(bt_.T.copy()).scatter(1, T(idx_r), T(st_.T.copy())).numpy()], {"axis": 1})
for dt in [np.int64, np.bool_, np.float16, np.int8, np.float64]:
    bd, sd = typed(base, dt), typed(src, dt)
    cs.case("scatter_" + np.dtype(dt).name, "scatter", [bd, perm_idx, sd],
            [T(bd).scatter(0, T(perm_idx), T(sd)).numpy()], {"axis": 0})
cs.case("scatter_scalar", "scatter", [np.array(3.0, np.float32), np.array(0, np.int64), np.array(7.0, np.float32)],
        [np.array(7.0, np.float32)], {"axis": 0})
cs.case("scatter_empty_index", "scatter", [base, np.zeros((0, 5), np.int64), src], [base], {"axis": 0})
dup = np.array([[0, 1, 2, 0, 1], [0, 1, 2, 0, 1], [2, 2, 2, 2, 2]], np.int64)
src_d = cs.rand((3, 5))
cs.case("scatter_add_dup", "scatter_add", [base, dup, src_d],
        [T(base).scatter_add(0, T(dup), T(src_d)).numpy()], {"axis": 0})
cs.case("scatter_add_axis1", "scatter_add", [base, idx_r, src3],
        [T(base).scatter_add(1, T(idx_r), T(src3)).numpy()], {"axis": 1})
for dt in [np.float64, np.int32, np.int64, np.bool_, np.int8]:
    bd, sd = typed(base, dt), typed(src_d, dt)
    cs.case("scatter_add_" + np.dtype(dt).name, "scatter_add", [bd, dup.astype(np.int32), sd],
            [T(bd).scatter_add(0, T(dup), T(sd)).numpy()], {"axis": 0})
u8b = np.array([250, 10, 0], np.uint8)
cs.case("scatter_add_u8_wrap", "scatter_add", [u8b, np.array([0, 0, 1], np.int64), np.array([200, 100, 7], np.uint8)],
        [T(u8b).scatter_add(0, torch.tensor([0, 0, 1]), torch.tensor([200, 100, 7], dtype=torch.uint8)).numpy()],
        {"axis": 0})
hb = np.round(base * 8).astype(np.float16)
hs = np.round(src_d * 8).astype(np.float16)
cs.case("scatter_add_f16", "scatter_add", [hb, dup, hs],
        [T(hb).scatter_add(0, T(dup), T(hs)).numpy()], {"axis": 0})
cs.case("scatter_add_bf16", "scatter_add",
        [In(np.round(base * 8), dtype="bf16"), dup, In(np.round(src_d * 8), dtype="bf16")],
        [Out(T(np.round(base * 8)).scatter_add(0, T(dup), T(np.round(src_d * 8))).numpy(), dtype="bf16")],
        {"axis": 0})
cs.case("scatter_add_scalar", "scatter_add", [np.array(3.0), np.array(0, np.int64), np.array(7.0)],
        [np.array(10.0)], {"axis": 0})
lb = cs.rand((100, 400))
li = cs.randint((100, 600), 0, 400)
ls = cs.rand((100, 600))
cs.case("scatter_add_large", "scatter_add", [lb, li, ls],
        [T(lb).scatter_add(1, T(li), T(ls)).numpy()], {"axis": 1}, tol=(1e-5, 1e-5))
cs.error("scatter_out_of_range", "scatter", [base, np.array([[0, 3, 0, 0, 0]], np.int64), src],
         "index 3 is out of bounds for dimension 0 with size 3", {"axis": 0})
cs.error("scatter_negative", "scatter", [base, np.array([[0, -1, 0, 0, 0]], np.int64), src],
         "index -1 is out of bounds", {"axis": 0})
cs.error("scatter_add_out_of_range", "scatter_add", [base, np.array([[7]], np.int64), src],
         "index 7 is out of bounds", {"axis": 1})
cs.error("scatter_dtype_mismatch", "scatter", [base, perm_idx, src.astype(np.float64)], "same dtype",
         {"axis": 0})
cs.error("scatter_float_index", "scatter", [base, perm_idx.astype(np.float32), src], "i32 or i64", {"axis": 0})
cs.error("scatter_index_larger_than_src", "scatter", [base, np.zeros((3, 5), np.int64), src],
         "larger than src", {"axis": 0})
cs.error("scatter_add_ndim", "scatter_add", [base, np.zeros((5,), np.int64), src], "same number of dims",
         {"axis": 0})
cs.error("scatter_bad_axis", "scatter", [base, perm_idx, src], "out of range", {"axis": 2})

# ---- tile -------------------------------------------------------------------
t2 = cs.rand((2, 3))
for cid, reps in [("tile_same_ndim", [2, 3]), ("tile_fewer_reps", [2]), ("tile_more_reps", [2, 1, 2]),
                  ("tile_ones", [1, 1]), ("tile_zero", [0, 2]), ("tile_no_reps", [])]:
    cs.case(cid, "tile", [t2], [np.tile(t2, reps)], {"reps": reps})
cs.case("tile_scalar", "tile", [np.array(5, np.int64)], [np.tile(np.array(5, np.int64), (2, 3))], {"reps": [2, 3]})
cs.case("tile_scalar_no_reps", "tile", [np.array(5.0, np.float32)], [np.array(5.0, np.float32)], {"reps": []})
tt = cs.rand((3, 2))
cs.case("tile_noncontig", "tile", [In(tt, view=[("permute", [1, 0])])], [np.tile(tt.T, (3, 2))], {"reps": [3, 2]})
ts = cs.rand((2, 8))
cs.case("tile_sliced", "tile", [In(ts, view=[("slice", 1, 1, 8, 3)])], [np.tile(ts[:, 1:8:3], (2, 2))],
        {"reps": [2, 2]})
for dt in [np.bool_, np.float16, np.int64, np.uint8]:
    td = typed(t2, dt)
    cs.case("tile_" + np.dtype(dt).name, "tile", [td], [np.tile(td, (2, 2))], {"reps": [2, 2]})
cs.case("tile_empty_input", "tile", [np.zeros((0, 3), np.float32)], [np.zeros((0, 6), np.float32)], {"reps": [4, 2]})
tl = cs.rand((40, 50))
cs.case("tile_large", "tile", [tl], [np.tile(tl, (10, 5))], {"reps": [10, 5]})
cs.error("tile_negative", "tile", [t2], "non-negative", {"reps": [2, -1]})
cs.error("tile_too_many_dims", "tile", [t2], "more than", {"reps": [1] * 9})

# ---- repeat -----------------------------------------------------------------
r2 = cs.rand((2, 3))
for cid, reps, ax in [("repeat_axis0", 3, 0), ("repeat_axis1", 2, 1), ("repeat_neg_axis", 4, -1),
                      ("repeat_once", 1, 0), ("repeat_zero", 0, 1)]:
    cs.case(cid, "repeat", [r2], [np.repeat(r2, reps, axis=ax)], {"repeats": reps, "axis": ax})
cs.case("repeat_scalar", "repeat", [np.array(5, np.int64)], [np.repeat(np.array(5, np.int64), 3, axis=0)],
        {"repeats": 3, "axis": 0})
rt = cs.rand((3, 2))
cs.case("repeat_noncontig", "repeat", [In(rt, view=[("permute", [1, 0])])], [np.repeat(rt.T, 2, axis=1)],
        {"repeats": 2, "axis": 1})
r3 = cs.rand((2, 3, 4))
cs.case("repeat_3d_mid", "repeat", [r3], [np.repeat(r3, 2, axis=1)], {"repeats": 2, "axis": 1})
for dt in [np.bool_, np.float16, np.int64, np.int8, np.float64]:
    rd = typed(r2, dt)
    cs.case("repeat_" + np.dtype(dt).name, "repeat", [rd], [np.repeat(rd, 2, axis=0)], {"repeats": 2, "axis": 0})
cs.case("repeat_empty", "repeat", [np.zeros((0, 3), np.float32)], [np.zeros((0, 3), np.float32)],
        {"repeats": 5, "axis": 0})
rl = cs.rand((200, 300))
cs.case("repeat_large", "repeat", [rl], [np.repeat(rl, 3, axis=1)], {"repeats": 3, "axis": 1})
cs.error("repeat_negative", "repeat", [r2], "non-negative", {"repeats": -1, "axis": 0})
cs.error("repeat_bad_axis", "repeat", [r2], "out of range", {"repeats": 2, "axis": 2})

# ---- flip -------------------------------------------------------------------
f3 = cs.rand((2, 3, 4))
for cid, axes in [("flip_axis0", [0]), ("flip_axis2", [2]), ("flip_two", [0, 2]), ("flip_neg", [-1, -2]),
                  ("flip_all_listed", [0, 1, 2])]:
    cs.case(cid, "flip", [f3], [np.flip(f3, axis=tuple(axes))], {"axes": axes})
cs.case("flip_default_all", "flip", [f3], [np.flip(f3)], {"axes": []})
cs.case("flip_scalar", "flip", [np.array(2.0, np.float32)], [np.array(2.0, np.float32)], {"axes": []})
ft = cs.rand((4, 3))
cs.case("flip_noncontig", "flip", [In(ft, view=[("permute", [1, 0])])], [np.flip(ft.T, axis=1)], {"axes": [1]})
for dt in [np.bool_, np.float16, np.int64, np.int32]:
    fd = typed(f3, dt)
    cs.case("flip_" + np.dtype(dt).name, "flip", [fd], [np.flip(fd, axis=1)], {"axes": [1]})
cs.case("flip_empty", "flip", [np.zeros((0, 3), np.float32)], [np.zeros((0, 3), np.float32)], {"axes": [0]})
fl = cs.rand((300, 400))
cs.case("flip_large", "flip", [fl], [np.flip(fl, axis=(0, 1))], {"axes": [0, 1]})
cs.error("flip_dup_axes", "flip", [f3], "more than once", {"axes": [0, -3]})
cs.error("flip_bad_axis", "flip", [f3], "out of range", {"axes": [3]})

# ---- roll -------------------------------------------------------------------
g = np.arange(24, dtype=np.float32).reshape(2, 3, 4) + cs.rand((2, 3, 4))
for cid, shifts, axes in [("roll_axis2", [1], [2]), ("roll_negative", [-2], [1]), ("roll_big_shift", [11], [2]),
                          ("roll_multi", [1, -1], [0, 2]), ("roll_repeated_axis", [1, 2], [2, 2]),
                          ("roll_zero", [0], [1]), ("roll_neg_axis", [3], [-1])]:
    cs.case(cid, "roll", [g], [np.roll(g, shifts, axis=axes)], {"shifts": shifts, "axes": axes})
cs.case("roll_flat", "roll", [g], [np.roll(g, 5)], {"shifts": [5], "axes": []})
cs.case("roll_flat_negative", "roll", [g], [np.roll(g, -7)], {"shifts": [-7], "axes": []})
gt = cs.rand((4, 3))
cs.case("roll_noncontig", "roll", [In(gt, view=[("permute", [1, 0])])], [np.roll(gt.T, (1, 2), axis=(0, 1))],
        {"shifts": [1, 2], "axes": [0, 1]})
cs.case("roll_noncontig_flat", "roll", [In(gt, view=[("permute", [1, 0])])], [np.roll(gt.T, 4)],
        {"shifts": [4], "axes": []})
cs.case("roll_torch_match", "roll", [g], [torch.roll(T(g), (1, -2), (0, 1)).numpy()],
        {"shifts": [1, -2], "axes": [0, 1]})
for dt in [np.bool_, np.float16, np.int64, np.uint8]:
    gd = typed(g / 24, dt)
    cs.case("roll_" + np.dtype(dt).name, "roll", [gd], [np.roll(gd, 2, axis=2)], {"shifts": [2], "axes": [2]})
cs.case("roll_scalar", "roll", [np.array(4.0, np.float32)], [np.array(4.0, np.float32)], {"shifts": [3], "axes": []})
cs.case("roll_empty", "roll", [np.zeros((0, 4), np.float32)], [np.zeros((0, 4), np.float32)],
        {"shifts": [1], "axes": [1]})
rlg = cs.rand((300, 300))
cs.case("roll_large", "roll", [rlg], [np.roll(rlg, (7, -13), axis=(0, 1))], {"shifts": [7, -13], "axes": [0, 1]})
cs.error("roll_length_mismatch", "roll", [g], "shifts for", {"shifts": [1, 2], "axes": [0]})
cs.error("roll_flat_two_shifts", "roll", [g], "shifts for", {"shifts": [1, 2], "axes": []})
cs.error("roll_bad_axis", "roll", [g], "out of range", {"shifts": [1], "axes": [3]})

# ---- tril / triu ------------------------------------------------------------
m = cs.rand((4, 5))
for k in [0, 1, -1, 3, -3, 100, -100]:
    cs.case("tril_k%d" % k, "tril", [m], [torch.tril(T(m), k).numpy()], {"k": k})
    cs.case("triu_k%d" % k, "triu", [m], [torch.triu(T(m), k).numpy()], {"k": k})
cs.case("tril_default", "tril", [m], [np.tril(m)])
m3 = cs.rand((2, 3, 3))
cs.case("tril_batch", "tril", [m3], [torch.tril(T(m3)).numpy()], {"k": 0})
cs.case("triu_batch", "triu", [m3], [torch.triu(T(m3), 1).numpy()], {"k": 1})
mt = cs.rand((5, 4))
cs.case("tril_noncontig", "tril", [In(mt, view=[("permute", [1, 0])])], [np.tril(mt.T, -1)], {"k": -1})
cs.case("triu_noncontig", "triu", [In(mt, view=[("permute", [1, 0])])], [np.triu(mt.T, 2)], {"k": 2})
for dt in [np.bool_, np.float16, np.int64, np.int8]:
    md = typed(m, dt)
    cs.case("tril_" + np.dtype(dt).name, "tril", [md], [np.tril(md)], {"k": 0})
    cs.case("triu_" + np.dtype(dt).name, "triu", [md], [np.triu(md)], {"k": 0})
cs.case("triu_bf16", "triu", [In(bf16(m), dtype="bf16")], [Out(np.triu(bf16(m)), dtype="bf16")], {"k": 0},
        tol=(0, 0))
cs.case("tril_empty", "tril", [np.zeros((0, 3), np.float32)], [np.zeros((0, 3), np.float32)], {"k": 0})
cs.case("triu_empty_batch", "triu", [np.zeros((0, 3, 3), np.float64)], [np.zeros((0, 3, 3))], {"k": 0})
ml = cs.rand((3, 200, 150))
cs.case("tril_large", "tril", [ml], [np.tril(ml, 5)], {"k": 5})
cs.error("tril_1d", "tril", [cs.rand((4,))], "at least 2 dims", {"k": 0})
cs.error("triu_0d", "triu", [np.array(1.0, np.float32)], "at least 2 dims", {"k": 0})

# ---- gradient-oriented cases ----------------------------------------------------
# The gradient harness turns every float case into a finite-difference check
# of the op's rule; these add shapes where the rules' index bookkeeping
# matters (3-d, middle axes, repeated indices, broadcasting, views).
ga, gb, gcb = cs.rand((2, 1, 4)), cs.rand((2, 3, 4)), cs.rand((2, 4, 2))
cs.case("concat_grad_3d_mid", "concat", [ga, gb, In(gcb, view=[("permute", [0, 2, 1])])],
        [np.concatenate([ga, gb, gcb.transpose(0, 2, 1)], 1)], {"axis": 1})
gsb = cs.rand((4, 1, 2))
cs.case("stack_grad_3d_last", "stack", [ga, In(gsb, view=[("permute", [2, 1, 0])])],
        [np.stack([ga, gsb.transpose(2, 1, 0)], -1)], {"axis": -1})
gx3 = cs.rand((3, 4, 5))
gi3 = cs.randint((2, 4, 3), 0, 3)  # axis 0, smaller than x in dims 1 and 2
cs.case("gather_grad_3d_axis0_small", "gather", [gx3, gi3], [torch.gather(T(gx3), 0, T(gi3)).numpy()],
        {"axis": 0})
gi3b = cs.randint((3, 2, 7), 0, 5)  # repeated indices along the last axis
cs.case("gather_grad_3d_last_dups", "gather", [gx3, gi3b], [torch.gather(T(gx3), -1, T(gi3b)).numpy()],
        {"axis": -1})
tx = cs.rand((1, 4, 5))  # x broadcast on dim 0, index broadcast on dim 1, negative indices
tix = np.array([[[0, -1, 2, -1]], [[4, -5, 0, 4]], [[1, 1, -2, 3]]], np.int64)
cs.case("take_grad_bcast_both", "take_along_axis", [tx, tix], [np.take_along_axis(tx, tix, 2)], {"axis": -1})
tiy = cs.randint((2, 6, 5), -4, 4)
cs.case("take_grad_axis1_neg_dups", "take_along_axis", [tx, tiy],
        [np.take_along_axis(np.broadcast_to(tx, (2, 4, 5)), tiy, 1)], {"axis": 1})
isx = cs.rand((3, 5, 4))
isi = np.array([3, 0, 3, 3, 2], np.int32)
cs.case("index_select_grad_3d_last", "index_select", [In(isx, view=[("permute", [0, 2, 1])]), isi],
        [isx.transpose(0, 2, 1)[:, :, isi]], {"axis": 2})
sb = cs.rand((3, 4, 5))
sidx = np.stack([np.stack([cs.rng.permutation(4)[:3] for _ in range(2)], 1) for _ in range(2)], 0)  # (2, 3, 2)
ssrc = cs.rand((3, 4, 3))  # larger than the index in every dim
cs.case("scatter_grad_3d_mid", "scatter", [sb, sidx, ssrc],
        [T(sb).scatter(1, T(sidx), T(ssrc)).numpy()], {"axis": 1})
sdup = cs.randint((2, 5, 2), 0, 4)
cs.case("scatter_add_grad_3d_mid", "scatter_add", [sb, sdup, ssrc[:2].repeat(2, 1)],
        [T(sb).scatter_add(1, T(sdup), T(ssrc[:2].repeat(2, 1))).numpy()], {"axis": 1})
sadd_src = cs.rand((4, 6))
cs.case("scatter_add_grad_src_larger", "scatter_add", [base, dup[:2, :3], sadd_src],
        [T(base).scatter_add(0, T(dup[:2, :3]), T(sadd_src)).numpy()], {"axis": 0})
tg = cs.rand((2, 1, 3))
cs.case("tile_grad_3d_mixed", "tile", [tg], [np.tile(tg, (2, 3, 1, 2))], {"reps": [2, 3, 1, 2]})
tgs = cs.rand((3, 4))
cs.case("tile_grad_sliced_few_reps", "tile", [In(tgs, view=[("slice", 1, 1, 4, 2)])],
        [np.tile(tgs[:, 1:4:2], 3)], {"reps": [3]})
rg = cs.rand((2, 3, 2))
cs.case("repeat_grad_3d_last", "repeat", [rg], [np.repeat(rg, 3, axis=2)], {"repeats": 3, "axis": -1})
cs.case("repeat_grad_scalar", "repeat", [np.array(0.7)], [np.repeat(np.array(0.7), 4, axis=0)],
        {"repeats": 4, "axis": 0})
rfl = cs.rand((3, 2, 4))
cs.case("roll_grad_flat_noncontig", "roll", [In(rfl, view=[("permute", [2, 0, 1])])],
        [np.roll(rfl.transpose(2, 0, 1), -13)], {"shifts": [-13], "axes": []})
ftl = cs.rand((2, 5, 3))
cs.case("tril_grad_batch_rect", "tril", [In(ftl, view=[("permute", [0, 2, 1])])],
        [np.tril(ftl.transpose(0, 2, 1), -2)], {"k": -2})
cs.case("triu_grad_batch_rect", "triu", [In(ftl, view=[("permute", [0, 2, 1])])],
        [np.triu(ftl.transpose(0, 2, 1), 1)], {"k": 1})

main_write(cs)
