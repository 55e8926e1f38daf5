"""Reference cases for the reduction ops (sum mean prod max min var std
logsumexp all any argmax argmin cumsum cumprod), from PyTorch 1.13 and NumPy.

Float results are computed in float64 from the (exactly converted) input
values and rounded to the output dtype, so fern's accumulation accuracy is
checked against the float64 answer."""
import numpy as np
import torch

from caselib import Cases, In, Out, main_write

cs = Cases(seed=7)

FLOAT_NP = {"f32": np.float32, "f64": np.float64, "f16": np.float16}


def view_array(arr, views):
    """The array the harness sees after applying the views."""
    for v in views:
        if v[0] == "permute":
            arr = arr.transpose(v[1])
        elif v[0] == "slice":
            ax, start, stop, step = v[1:]
            sl = [slice(None)] * arr.ndim
            sl[ax] = slice(start, stop, step)
            arr = arr[tuple(sl)]
        elif v[0] == "expand":
            arr = np.broadcast_to(arr, v[1])
        elif v[0] == "transpose":
            arr = np.swapaxes(arr, v[1], v[2])
    return arr


def bf16_round(a):
    return torch.from_numpy(np.asarray(a, np.float32)).to(torch.bfloat16).to(torch.float32).numpy()


def out_of(vals, dt):
    """Expected output of fern dtype dt from float64/int/bool values."""
    vals = np.asarray(vals)
    if dt == "bf16":
        return Out(bf16_round(vals.astype(np.float32)), dtype="bf16")
    if dt in FLOAT_NP:
        return Out(vals.astype(FLOAT_NP[dt]))
    ints = {"i8": np.int8, "u8": np.uint8, "i32": np.int32, "i64": np.int64}
    if dt in ints:
        return Out(vals.astype(ints[dt]))
    if dt == "bool":
        return Out(vals.astype(np.bool_))
    raise ValueError(dt)


def tdims(x, axes):
    return tuple(range(x.ndim)) if not axes else tuple(axes)


def as_t64(x):
    """torch tensor for the reference: floats in float64, others as they are."""
    # (np.ascontiguousarray would turn a 0-d array into a 1-d one)
    t = torch.from_numpy(np.array(x, order="C", copy=True))
    return t.double() if t.is_floating_point() else t


def reduce_ref(op, x, axes, keepdims, correction=1):
    """Expected values (float64 / int64 / bool numpy) of a reduction."""
    t = as_t64(x)
    d = tdims(x, axes)
    if x.ndim == 0:
        d = (0,)  # torch accepts dim 0 of a scalar (and its logsumexp rejects dim=())
    kd = bool(keepdims)
    if op == "sum":
        r = torch.sum(t, dim=d, keepdim=kd) if d else torch.sum(t)
    elif op == "mean":
        r = torch.mean(t, dim=d, keepdim=kd) if d else torch.mean(t)
    elif op == "max":
        r = torch.amax(t, dim=d, keepdim=kd)
    elif op == "min":
        r = torch.amin(t, dim=d, keepdim=kd)
    elif op in ("var", "std"):
        f = torch.var if op == "var" else torch.std
        r = f(t, dim=d if d else None, correction=correction, keepdim=kd)
    elif op == "logsumexp":
        r = torch.logsumexp(t if t.is_floating_point() else t.double(), dim=d, keepdim=kd)
    elif op == "prod":
        a = x.astype(np.float64) if x.dtype.kind == "f" else x.astype(np.int64)
        return np.prod(a, axis=d if x.ndim else None, keepdims=kd)
    elif op == "all":
        return np.all(x, axis=d if x.ndim else None, keepdims=kd)
    elif op == "any":
        return np.any(x, axis=d if x.ndim else None, keepdims=kd)
    else:
        raise ValueError(op)
    return r.numpy()


def out_dtype(op, dt):
    floats = ("f32", "f64", "f16", "bf16")
    if op in ("sum", "prod"):
        return dt if dt in floats else "i64"
    if op == "logsumexp":
        return dt if dt in floats else "f32"
    if op in ("all", "any"):
        return "bool"
    return dt


NP_OF = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64", np.dtype(np.float16): "f16",
         np.dtype(np.int8): "i8", np.dtype(np.uint8): "u8", np.dtype(np.int32): "i32",
         np.dtype(np.int64): "i64", np.dtype(np.bool_): "bool"}


def red_case(cid, op, base, axes, keepdims=0, views=None, dtype=None, correction=None, tol=None):
    """A reduction case over In(base, dtype, views) with torch/NumPy values."""
    views = views or []
    dt = dtype or NP_OF[base.dtype]
    x = view_array(base, views)
    xv = bf16_round(x) if dt == "bf16" else x
    kw = {} if correction is None else {"correction": correction}
    exp = reduce_ref(op, xv, axes, keepdims, **kw)
    attrs = {"axes": list(axes), "keepdims": keepdims}
    if correction is not None:
        attrs["correction"] = correction
    cs.case(cid, op, [In(base, dtype=dtype, view=views)], [out_of(exp, out_dtype(op, dt))], attrs,
            tol=tol)


# torch's own dtype rules, checked here so the cases encode torch 1.13
def _torch_dtype_checks():
    i = torch.tensor([1, 2, 3], dtype=torch.int32)
    b = torch.tensor([True, False])
    assert torch.sum(i).dtype == torch.int64 and torch.sum(b).dtype == torch.int64
    assert torch.prod(i).dtype == torch.int64 and torch.prod(b).dtype == torch.int64
    assert torch.amax(i).dtype == torch.int32 and torch.amax(b, 0).dtype == torch.bool
    assert torch.logsumexp(i, 0).dtype == torch.float32
    assert torch.cumsum(i, 0).dtype == torch.int64 and torch.cumsum(b, 0).dtype == torch.int64
    assert torch.cumprod(i.to(torch.uint8), 0).dtype == torch.int64
    for f in (lambda: torch.mean(i), lambda: torch.var(i), lambda: torch.std(i)):
        try:
            f()
            raise AssertionError("torch accepted an integer mean/var/std")
        except RuntimeError:
            pass


_torch_dtype_checks()

# ---------------------------------------------------------------- reductions
a = cs.rand((3, 4, 5))
a64 = cs.rand((3, 4, 5), dtype=np.float64)
b4 = cs.rand((3, 4, 5, 6))
AXES = [[], [0], [1], [-1], [0, 2], [-1, 0], [2, 1], [0, 1, 2], [-3, -2]]
ALL_OPS = ["sum", "mean", "prod", "max", "min", "var", "std", "logsumexp", "all", "any"]

for op in ALL_OPS:
    base = a if op not in ("all", "any") else (a > 0.3)  # all/any get bool and float below
    for ax in AXES:
        for kd in (0, 1):
            if kd == 1 and ax not in ([], [1], [-1, 0], [0, 1, 2]):
                continue
            name = "%s_ax%s_kd%d" % (op, "_".join(str(v) for v in ax) or "all", kd)
            red_case(name, op, base, ax, kd)
    # float data for all/any too (nonzero is true; exact zeros included)
    z = a.copy()
    z[0, 1, :] = 0
    z[2, :, 3] = 0
    z[1] = 0
    if op in ("all", "any"):
        red_case(op + "_f32_zeros_ax1", op, z, [1])
        red_case(op + "_f32_zeros_ax0_2", op, z, [0, 2])
        red_case(op + "_f32_zeros_all", op, z, [])
    # non-contiguous inputs: permute, slice, expand, combined
    red_case(op + "_permute", op, base, [0, 2], 0, views=[("permute", [2, 0, 1])])
    red_case(op + "_permute_kd", op, base, [1], 1, views=[("permute", [1, 2, 0])])
    red_case(op + "_transpose_all", op, base, [], 0, views=[("transpose", 0, 2)])
    red_case(op + "_slice", op, base, [-1], 0, views=[("slice", 2, 1, 5, 2)])
    red_case(op + "_slice_ax0", op, base, [0], 0, views=[("slice", 1, 0, 3, 1)])
    red_case(op + "_permute_slice", op, base, [1, 2], 1,
             views=[("permute", [2, 1, 0]), ("slice", 0, 1, 4, 2)])
    e = (cs.rand((3, 1, 5)) > 0.2) if op in ("all", "any") else cs.rand((3, 1, 5))
    red_case(op + "_expand", op, e, [1], 0, views=[("expand", [3, 4, 5])])
    red_case(op + "_expand_all", op, e, [0, 1], 0, views=[("expand", [3, 4, 5])])
    # 4-d: several reduced dims that do not coalesce, inner kept or reduced
    b4b = b4 if op not in ("all", "any") else (b4 > -0.5)
    red_case(op + "_4d_ax0_2", op, b4b, [0, 2])
    red_case(op + "_4d_ax1_3", op, b4b, [1, 3], 1)
    red_case(op + "_4d_ax0_1_3", op, b4b, [0, 1, 3])
    red_case(op + "_4d_perm_ax0_2", op, b4b, [0, 2], 0, views=[("permute", [3, 1, 0, 2])])
    # wide rows (more than one 512-column chunk), inner kept
    w = cs.rand((7, 1100)) if op not in ("all", "any") else (cs.rand((7, 1100)) > -0.9)
    red_case(op + "_wide_ax0", op, w, [0])
    red_case(op + "_wide_ax1", op, w, [1])
    # 0-d
    s = np.array(0.75, np.float32) if op not in ("all", "any") else np.array(True)
    red_case(op + "_0d", op, s, [])
    red_case(op + "_0d_ax0", op, s, [0])
    red_case(op + "_0d_axm1_kd", op, s, [-1], 1)
    # size-1 axes only
    red_case(op + "_size1_axes", op, cs.rand((4, 1, 3)), [1])
    # f64
    red_case(op + "_f64_ax1", op, a64 if op not in ("all", "any") else (a64 > 0), [1])
    red_case(op + "_f64_all", op, a64 if op not in ("all", "any") else (a64 > 0), [])

# half precision (computed in f32)
h = cs.rand((4, 6)).astype(np.float16)
for op in ALL_OPS:
    red_case(op + "_f16_ax1", op, h, [1])
    red_case(op + "_f16_all_kd", op, h, [], 1)
    red_case(op + "_bf16_ax0", op, bf16_round(cs.rand((5, 3))), [0], dtype="bf16")

# integer and bool inputs
ii = cs.randint((3, 4, 5), -50, 50, np.int32)
for op in ("sum", "prod", "max", "min", "logsumexp", "all", "any"):
    red_case(op + "_i32_ax1", op, ii, [1])
    red_case(op + "_i32_ax0_2_kd", op, ii, [0, 2], 1)
    red_case(op + "_i32_permute", op, ii, [-1], 0, views=[("permute", [2, 0, 1])])
    red_case(op + "_i64_all", op, cs.randint((6, 7), -1000, 1000, np.int64), [])
    red_case(op + "_i8_ax0", op, cs.randint((9, 4), -128, 128, np.int8), [0])
    red_case(op + "_u8_ax1", op, cs.randint((4, 9), 0, 256, np.uint8), [1])
    red_case(op + "_bool_ax1", op, cs.rand((5, 6)) > 0, [1])
    red_case(op + "_bool_all", op, cs.rand((5, 6)) > -0.8, [])
# small-valued prods that stay in range, and ones that wrap like torch's int64
red_case("prod_i32_small_ax1", "prod", cs.randint((4, 8), -3, 4, np.int32), [1])
big = np.array([[2 ** 40, 2 ** 30, 7], [3, -(2 ** 35), 2 ** 33]], np.int64)
tb = torch.from_numpy(big)
cs.case("prod_i64_wrap", "prod", [big], [torch.prod(tb, 1).numpy()], {"axes": [1]})
cs.case("sum_i64_wrap", "sum", [np.array([2 ** 62, 2 ** 62, 2 ** 62], np.int64)],
        [torch.sum(torch.tensor([2 ** 62] * 3)).numpy()], {"axes": []})
cs.case("sum_i8_no_overflow", "sum", [np.full((300,), 100, np.int8)],
        [torch.sum(torch.full((300,), 100, dtype=torch.int8)).numpy()], {"axes": [0]})

# var/std corrections, including N - correction <= 0 (torch gives inf/nan)
for op in ("var", "std"):
    for corr in (0, 2, -1):
        red_case("%s_corr%d" % (op, corr), op, a, [1], 0, correction=corr)
    red_case(op + "_one_elem", op, np.array([2.5], np.float32), [0])
    red_case(op + "_one_elem_corr0", op, np.array([2.5], np.float32), [0], correction=0)
    red_case(op + "_two_corr2", op, np.array([2.0, 3.0], np.float32), [0], correction=2)
    red_case(op + "_two_corr3", op, np.array([2.0, 3.0], np.float32), [0], correction=3)
    red_case(op + "_equal_corr3", op, np.array([2.0, 2.0], np.float32), [0], correction=3)
    red_case(op + "_4d_corr0", op, b4, [1, 3], 1, correction=0)

# nan and inf handling
nanx = a.copy()
nanx[1, 2, 3] = np.nan
nanx[0, 0, :] = np.nan
for op in ("sum", "mean", "max", "min", "logsumexp", "var", "prod"):
    red_case(op + "_nan_ax2", op, nanx, [2])
    red_case(op + "_nan_ax0", op, nanx, [0])
cs.case("max_nan_first", "max", [np.array([1.0, np.nan, 3.0], np.float32)],
        [np.array(np.nan, np.float32)], {"axes": []})
cs.case("min_nan_last", "min", [np.array([1.0, -4.0, np.nan], np.float32)],
        [np.array(np.nan, np.float32)], {"axes": []})
infx = np.array([[-np.inf, -np.inf], [np.inf, 1.0], [np.inf, -np.inf], [0.5, -np.inf]], np.float32)
red_case("logsumexp_inf", "logsumexp", infx, [1])
red_case("max_inf", "max", infx, [1])
red_case("sum_inf", "sum", infx, [1])

# 0-size inputs
E = np.zeros((0, 3), np.float32)
for op in ("sum", "mean", "prod", "var", "std", "logsumexp", "all", "any"):
    red_case(op + "_empty_ax0", op, E, [0])
    red_case(op + "_empty_ax1", op, E, [1])
    red_case(op + "_empty_all", op, E, [])
    red_case(op + "_empty_all_kd", op, E, [], 1)
red_case("sum_empty_i32_ax0", "sum", np.zeros((0, 4), np.int32), [0])
red_case("prod_empty_bool_ax0", "prod", np.zeros((0, 4), np.bool_), [0])
red_case("max_empty_ax1", "max", E, [1])
red_case("min_empty_ax1_kd", "min", E, [1], 1)
red_case("sum_empty_3d", "sum", np.zeros((2, 0, 3), np.float32), [0, 2])
cs.error("max_empty_ax0", "max", [E], "non-zero size", {"axes": [0]})
cs.error("min_empty_all", "min", [E], "non-zero size", {"axes": []})
cs.error("max_empty_i32", "max", [np.zeros((2, 0), np.int32)], "non-zero size", {"axes": [-1]})

# large reductions: accuracy (float64 references) and the blocked split of
# long reductions with few outputs. Values are multiples of 1/256 (short in
# the case file, exactly summable in float64; a float32 running sum of them
# would drift far beyond the tolerance).
def q256(x):
    return (np.round(x * 256) / 256).astype(x.dtype)


big1 = q256(cs.rand((200000,), low=0.5, high=1.5))
red_case("sum_large_f32", "sum", big1, [])
# float64 accumulation rounds once: within ~2 ulp of the float64 answer
red_case("sum_large_f32_tight", "sum", big1[:70000], [0], tol=(2e-7, 0))
red_case("mean_large_f32", "mean", big1[:70000], [0])
# small terms after a big one: a float32 running sum drops every one of them
absorb = np.full((200000,), 1.0 / 128, np.float32)
absorb[0] = 2.0 ** 20
red_case("sum_large_absorb_f32", "sum", absorb, [])
red_case("mean_large_absorb_rows_f32", "mean", absorb.reshape(20000, 10), [0])
# a large offset: a one-pass E[x^2] - E[x]^2, even in float64, loses ~1e-4
big2 = (np.round(cs.rand((2, 40000), low=-1.0, high=1.0) * 16) / 16 + 1e6).astype(np.float32)
red_case("var_large_offset_f32", "var", big2, [-1])
red_case("std_large_offset_f32", "std", big2[:, :5000], [1], 1)
big3 = q256(cs.rand((20000, 4), dtype=np.float64, low=0.0, high=1.0)) + 0.25
red_case("sum_large_rows_f64", "sum", big3, [0])
red_case("logsumexp_large_rows_f64", "logsumexp", big3[:15000], [0])
big4 = q256(cs.rand((14000, 5), low=-1.0, high=1.0))
red_case("sum_large_rows_f32", "sum", big4, [0])
red_case("max_large_rows_f32", "max", big4, [0])
red_case("mean_large_perm_f32", "mean", big4, [1], views=[("permute", [1, 0])])
# engine paths: wide multi-row passes over short contiguous rows (with
# rows left over and odometer carries), short inner runs, and reduction
# blocks that start in the middle of an inner run
rs = cs.rand((3, 1100, 4))
for op in ("sum", "max", "var", "logsumexp", "any"):
    red_case(op + "_rows_wide_slice", op, rs if op != "any" else (rs > 0.9), [0, 1],
             views=[("slice", 1, 0, 1050, 1)])
red_case("sum_rows_wide_blocks_i8", "sum", cs.randint((2, 20500, 3), -100, 100, np.int8), [0, 1],
         views=[("slice", 1, 0, 20000, 1)])
red_case("max_rows_wide_blocks_i8", "max", cs.randint((2, 20500, 3), -100, 100, np.int8), [0, 1],
         views=[("slice", 1, 3, 20500, 1)])
red_case("sum_short_runs_blocks_i8", "sum", cs.randint((35000, 2, 3), -100, 100, np.int8), [0, 2])
red_case("min_short_runs_blocks_i8", "min", cs.randint((35000, 2, 3), -100, 100, np.int8), [2, 0])
red_case("var_short_runs", "var", cs.rand((50, 30, 3)), [0, 2])
red_case("mean_short_runs_perm", "mean", cs.rand((50, 30, 3)), [1, 2], views=[("permute", [1, 2, 0])])
red_case("sum_large_i64", "sum", cs.randint((70000,), -10 ** 6, 10 ** 6, np.int64), [])
red_case("any_large", "any", np.zeros((70000,), np.bool_), [])
red_case("min_large_u8", "min", cs.randint((70000,), 1, 256, np.uint8), [])

# errors
for op in ("sum", "mean", "max", "var", "logsumexp", "all"):
    cs.error(op + "_bad_axis", op, [a], "out of range", {"axes": [3]})
    cs.error(op + "_bad_neg_axis", op, [a], "out of range", {"axes": [-4]})
    cs.error(op + "_repeated_axis", op, [a], "appears multiple times", {"axes": [0, -3]})
    cs.error(op + "_0d_bad_axis", op, [np.array(1.0, np.float32)], "out of range", {"axes": [1]})
cs.error("mean_i64", "mean", [np.arange(5, dtype=np.int64)], "floating point", {"axes": []})
cs.error("mean_bool", "mean", [np.ones(3, np.bool_)], "floating point", {"axes": [0]})
cs.error("var_i32", "var", [np.arange(5, dtype=np.int32)], "floating point", {"axes": []})
cs.error("std_u8", "std", [np.arange(5, dtype=np.uint8)], "floating point", {"axes": [0]})

# --------------------------------------------------------- argmax / argmin
def arg_ref(op, x, axis, keepdims):
    t = torch.from_numpy(np.array(x, order="C", copy=True))
    if t.dtype == torch.float16:
        t = t.float()
    f = torch.argmax if op == "argmax" else torch.argmin
    return f(t, dim=axis, keepdim=bool(keepdims)).numpy()


def arg_case(cid, op, base, axis, keepdims=0, views=None, dtype=None):
    views = views or []
    x = view_array(base, views)
    if dtype == "bf16":
        x = bf16_round(x)
    cs.case(cid, op, [In(base, dtype=dtype, view=views)], [arg_ref(op, x, axis, keepdims)],
            {"axis": axis, "keepdims": keepdims})


for op in ("argmax", "argmin"):
    for ax in (0, 1, 2, -1, -2):
        arg_case("%s_ax%d" % (op, ax), op, a, ax)
    arg_case(op + "_kd", op, a, 1, 1)
    arg_case(op + "_permute", op, a, 0, 0, views=[("permute", [2, 0, 1])])
    arg_case(op + "_slice", op, a, -1, 1, views=[("slice", 2, 0, 5, 2)])
    arg_case(op + "_f64", op, a64, 2)
    arg_case(op + "_f16", op, cs.rand((5, 7)).astype(np.float16), 1)
    arg_case(op + "_bf16", op, bf16_round(cs.rand((5, 7))), 0, dtype="bf16")
    arg_case(op + "_wide", op, cs.rand((6, 1300)), 0)
    arg_case(op + "_long_rows", op, cs.rand((3, 5000)), 1)
    # ties: the first occurrence (ints with many repeats)
    arg_case(op + "_i32_ties_ax1", op, cs.randint((6, 9), 0, 3, np.int32), 1)
    arg_case(op + "_i32_ties_ax0", op, cs.randint((9, 6), 0, 3, np.int32), 0, 1)
    arg_case(op + "_i64", op, cs.randint((4, 5), -10 ** 12, 10 ** 12, np.int64), -1)
    arg_case(op + "_i8", op, cs.randint((4, 5), -128, 128, np.int8), 0)
    arg_case(op + "_u8", op, cs.randint((4, 5), 0, 256, np.uint8), 1)
    arg_case(op + "_nan", op, nanx, 2)
    arg_case(op + "_nan_ax0", op, nanx, 0)
    arg_case(op + "_0d", op, np.array(2.5, np.float32), 0)
    arg_case(op + "_0d_neg_kd", op, np.array(2.5, np.float32), -1, 1)
    arg_case(op + "_empty_other", op, np.zeros((0, 3), np.float32), 1)
    cs.error(op + "_empty_axis", op, [np.zeros((0, 3), np.float32)], "non-zero size", {"axis": 0})
    cs.error(op + "_bad_axis", op, [a], "out of range", {"axis": 3})
    cs.error(op + "_bool", op, [np.ones((2, 2), np.bool_)], "bool", {"axis": 0})

# ------------------------------------------------------- cumsum / cumprod
def cum_ref(op, x, axis):
    t = as_t64(x)
    if x.ndim == 0:
        return t.numpy() if t.is_floating_point() else t.to(torch.int64).numpy()
    f = torch.cumsum if op == "cumsum" else torch.cumprod
    return f(t, dim=axis).numpy()


def cum_case(cid, op, base, axis, views=None, dtype=None):
    views = views or []
    dt = dtype or NP_OF[base.dtype]
    x = view_array(base, views)
    if dt == "bf16":
        x = bf16_round(x)
    odt = dt if dt in ("f32", "f64", "f16", "bf16") else "i64"
    cs.case(cid, op, [In(base, dtype=dtype, view=views)], [out_of(cum_ref(op, x, axis), odt)],
            {"axis": axis})


c1 = cs.rand((3, 4, 5), low=0.5, high=1.5)
for op in ("cumsum", "cumprod"):
    for ax in (0, 1, 2, -1, -3):
        cum_case("%s_ax%d" % (op, ax), op, c1, ax)
    cum_case(op + "_permute", op, c1, 1, views=[("permute", [2, 0, 1])])
    cum_case(op + "_slice", op, c1, 0, views=[("slice", 1, 1, 4, 2)])
    cum_case(op + "_f64", op, cs.rand((4, 6), dtype=np.float64, low=0.5, high=1.5), 1)
    cum_case(op + "_f16", op, cs.rand((3, 6), low=0.5, high=1.2).astype(np.float16), 1)
    cum_case(op + "_bf16", op, bf16_round(cs.rand((6, 3), low=0.5, high=1.2)), 0, dtype="bf16")
    cum_case(op + "_i32", op, cs.randint((4, 6), -5, 6, np.int32), 1)
    cum_case(op + "_i8_ax0", op, cs.randint((6, 4), -100, 100, np.int8), 0)
    cum_case(op + "_u8", op, cs.randint((3, 7), 0, 256, np.uint8), -1)
    cum_case(op + "_i64", op, cs.randint((3, 7), -10 ** 6, 10 ** 6, np.int64), 1)
    cum_case(op + "_bool", op, cs.rand((4, 5)) > 0, 1)
    cum_case(op + "_wide_ax0", op, cs.rand((5, 1200), low=0.9, high=1.1), 0)
    cum_case(op + "_0d", op, np.array(1.25, np.float32), 0)
    cum_case(op + "_0d_int", op, np.array(3, np.int32), -1)
    cum_case(op + "_empty", op, np.zeros((0, 3), np.float32), 0)
    cum_case(op + "_empty_ax1", op, np.zeros((2, 0), np.float32), 1)
    cum_case(op + "_nan", op, nanx, 2)
    cs.error(op + "_bad_axis", op, [a], "out of range", {"axis": 3})
    cs.error(op + "_0d_bad_axis", op, [np.array(1.0, np.float32)], "out of range", {"axis": 1})
cum_case("cumsum_large_f32", "cumsum", q256(cs.rand((40000,), low=0.5, high=1.5)), 0)
cum_case("cumsum_i64_wrap", "cumsum", np.array([2 ** 62, 2 ** 62, 2 ** 62], np.int64), 0)

main_write(cs)
