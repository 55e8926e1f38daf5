"""Reference cases for the sorting ops (sort, argsort, topk), from PyTorch
1.13. Value tests use distinct values (no ties) except the dedicated
stable-sort cases, whose order torch.sort(stable=True) defines."""
import numpy as np
import torch

from caselib import Cases, In, Out, main_write

cs = Cases(seed=11)


def view_array(arr, views):
    for v in views:
        if v[0] == "permute":
            arr = arr.transpose(v[1])
        elif v[0] == "slice":
            ax, start, stop, step = v[1:]
            sl = [slice(None)] * arr.ndim
            sl[ax] = slice(start, stop, step)
            arr = arr[tuple(sl)]
        elif v[0] == "transpose":
            arr = np.swapaxes(arr, v[1], v[2])
    return arr


def bf16_round(a):
    return torch.from_numpy(np.asarray(a, np.float32)).to(torch.bfloat16).to(torch.float32).numpy()


def as_t(x):
    """torch tensor of x (f16 computed as f32: exact, and torch's CPU topk
    has no Half kernel)."""
    t = torch.from_numpy(np.array(x, order="C", copy=True))
    return t.float() if t.dtype == torch.float16 else t


def distinct(shape, dtype=np.float32):
    """Distinct values (a shuffled grid), so sorts have no ties."""
    n = int(np.prod(shape))
    v = (cs.rng.permutation(n).astype(np.float64) - n / 2) / 8.0
    return v.reshape(shape).astype(dtype)


def out_like(vals, dt):
    if dt == "bf16":
        return Out(np.asarray(vals, np.float32), dtype="bf16")
    if dt == "f16":
        return Out(np.asarray(vals).astype(np.float16))
    return Out(np.asarray(vals))


def sort_case(cid, base, axis=-1, descending=0, views=None, dtype=None, argsort=True):
    views = views or []
    x = view_array(base, views)
    dt = dtype or {np.float16: "f16"}.get(base.dtype.type, None)
    v, i = torch.sort(as_t(x), dim=axis, descending=bool(descending), stable=True)
    v = v.numpy()
    if dt:
        v = out_like(v, dt)
    attrs = {"axis": axis, "descending": descending}
    cs.case(cid, "sort", [In(base, dtype=dtype, view=views)], [v, i.numpy()], attrs)
    if argsort:
        cs.case("arg" + cid, "argsort", [In(base, dtype=dtype, view=views)], [i.numpy()], attrs)


def topk_case(cid, base, k, axis=-1, largest=1, sorted_=1, views=None, dtype=None):
    views = views or []
    x = view_array(base, views)
    dt = dtype or {np.float16: "f16"}.get(base.dtype.type, None)
    t = as_t(x)
    v, i = torch.topk(t, k, dim=axis, largest=bool(largest), sorted=True)
    if not sorted_:
        # torch leaves the order unspecified; fern returns sorted order, which
        # must hold the same elements as torch's unsorted answer
        vu, iu = torch.topk(t, k, dim=axis, largest=bool(largest), sorted=False)
        assert torch.equal(torch.sort(iu, dim=axis).values, torch.sort(i, dim=axis).values)
    v = v.numpy()
    if dt:
        v = out_like(v, dt)
    cs.case(cid, "topk", [In(base, dtype=dtype, view=views)], [v, i.numpy()],
            {"k": k, "axis": axis, "largest": largest, "sorted": sorted_})


# ---------------------------------------------------------------------- sort
a = distinct((3, 4, 5))
for ax in (0, 1, 2, -1, -2):
    for desc in (0, 1):
        sort_case("sort_ax%d_d%d" % (ax, desc), a, ax, desc)
sort_case("sort_permute", a, 1, 0, views=[("permute", [2, 0, 1])])
sort_case("sort_permute_desc", a, -1, 1, views=[("permute", [1, 2, 0])])
sort_case("sort_slice", a, 0, 1, views=[("slice", 2, 1, 5, 2)])
sort_case("sort_transpose", a, 1, 0, views=[("transpose", 0, 2)])
sort_case("sort_f64", distinct((4, 7), np.float64), 1, 0)
sort_case("sort_f64_desc_ax0", distinct((6, 3), np.float64), 0, 1)
sort_case("sort_f16", distinct((3, 9)).astype(np.float16), -1, 1)
sort_case("sort_bf16", bf16_round(distinct((5, 4))), 0, 0, dtype="bf16")
sort_case("sort_i32", cs.rng.permutation(40).reshape(5, 8).astype(np.int32) - 20, 1, 0)
sort_case("sort_i64_desc", (cs.rng.permutation(30).reshape(6, 5).astype(np.int64) - 15) * 10 ** 12, 0, 1)
sort_case("sort_i8", cs.rng.permutation(24).reshape(4, 6).astype(np.int8) - 12, -1, 1)
sort_case("sort_u8", cs.rng.permutation(200).reshape(8, 25).astype(np.uint8), 1, 0)
# long lines: several merge passes, and many lines (parallel)
sort_case("sort_long", distinct((2, 1000)), -1, 0)
sort_case("sort_long_desc_ax0", distinct((700, 3)), 0, 1)
sort_case("sort_presorted", np.arange(300, dtype=np.float32).reshape(2, 150), 1, 0)
sort_case("sort_reversed", np.arange(300, dtype=np.float32)[::-1].reshape(2, 150).copy(), 1, 0)
sort_case("sort_many_lines", distinct((3000, 12)), 1, 1, argsort=False)
# stable sorts with ties (torch stable=True order), ascending and
# descending, on short lines (merge sort) and long ones (radix sort)
for n, tag in ((60, ""), (300, "_long")):
    ties = cs.randint((4, n), 0, 5, np.int32)
    sort_case("sort_stable_i32" + tag, ties, 1, 0)
    sort_case("sort_stable_i32_desc" + tag, ties, 1, 1)
    sort_case("sort_stable_i32_ax0" + tag, ties.T.copy(), 0, 1)
    tf = (cs.randint((3, n), -3, 3, np.int64) * 0.5).astype(np.float32)
    sort_case("sort_stable_f32" + tag, tf, -1, 0)
    sort_case("sort_stable_f32_desc" + tag, tf, -1, 1)
    sort_case("sort_stable_f64_desc" + tag, tf.astype(np.float64), -1, 1)
    sort_case("sort_stable_i64" + tag, cs.randint((2, n), -2, 2, np.int64) * 10 ** 15, 1, 0)
    sort_case("sort_stable_i8_desc" + tag, cs.randint((2, n), -3, 3, np.int8), 1, 1)
    sort_case("sort_stable_u8" + tag, cs.randint((2, n), 250, 256, np.uint8), 1, 0)
    sort_case("sort_stable_bool" + tag, cs.rand((3, n)) > 0, 1, 0)
    sort_case("sort_stable_bool_desc" + tag, cs.rand((3, n)) > 0, 1, 1)
    z = np.where(cs.rand((2, n)) > 0, 0.0, -0.0).astype(np.float32)
    z[:, ::7] = 1.0
    z[:, ::11] = -2.0
    sort_case("sort_stable_signed_zero" + tag, z, 1, 0)
    sort_case("sort_stable_signed_zero_desc" + tag, z, 1, 1)
sort_case("sort_presorted_ties_desc", np.repeat(np.arange(40, dtype=np.float32), 5)[::-1].copy(), 0, 1)
# nan sorts as the largest; inf below nan
nanx = np.array([[1.0, np.nan, -3.0, np.inf, 0.5, np.nan, -np.inf],
                 [np.nan, 2.0, np.nan, np.nan, -1.0, 7.0, 3.0]], np.float32)
sort_case("sort_nan", nanx, 1, 0)
sort_case("sort_nan_desc", nanx, 1, 1)
sort_case("sort_nan_ax0", nanx, 0, 0)
nl = np.where(cs.rand((2, 300)) > 0.8, np.nan, distinct((2, 300))).astype(np.float32)
nl[0, ::13] = np.inf
nl[1, ::17] = -np.inf
sort_case("sort_nan_long", nl, 1, 1)
sort_case("sort_nan_long_asc", nl, 1, 0)
sort_case("sort_nan_long_f64", nl.astype(np.float64), 1, 0)
sort_case("sort_neg_nan_long", np.where(nl != nl, -np.float32(np.nan), nl).astype(np.float32), 1, 0)
# 0-d and 0-size
sort_case("sort_0d", np.array(2.5, np.float32), 0, 0)
sort_case("sort_0d_neg", np.array(7, np.int32), -1, 1)
sort_case("sort_empty_axis", np.zeros((2, 0), np.float32), 1, 0)
sort_case("sort_empty_other", np.zeros((0, 3), np.float32), 1, 1)
sort_case("sort_size1", distinct((4, 1)), 1, 0)
for op in ("sort", "argsort"):
    cs.error(op + "_bad_axis", op, [a], "out of range", {"axis": 3})
    cs.error(op + "_bad_neg_axis", op, [a], "out of range", {"axis": -4})
    cs.error(op + "_0d_bad_axis", op, [np.array(1.0, np.float32)], "out of range", {"axis": 1})

# ---------------------------------------------------------------------- topk
b = distinct((3, 4, 10))
for k in (1, 3, 10):
    for largest in (1, 0):
        topk_case("topk_k%d_l%d" % (k, largest), b, k, -1, largest)
topk_case("topk_ax0", b, 2, 0, 1)
topk_case("topk_ax1_small", b, 3, 1, 0)
topk_case("topk_ax_neg2", b, 4, -2, 1)
topk_case("topk_unsorted", b, 4, -1, 1, sorted_=0)
topk_case("topk_unsorted_small", b, 5, 2, 0, sorted_=0)
topk_case("topk_permute", b, 2, 1, 1, views=[("permute", [2, 0, 1])])
topk_case("topk_slice", b, 3, -1, 0, views=[("slice", 2, 0, 10, 2)])
topk_case("topk_transpose", b, 2, 0, 1, views=[("transpose", 0, 2)])
topk_case("topk_f64", distinct((5, 8), np.float64), 3, 1, 1)
topk_case("topk_f16", distinct((4, 9)).astype(np.float16), 2, -1, 0)
topk_case("topk_bf16", bf16_round(distinct((6, 5))), 3, 0, 1, dtype="bf16")
topk_case("topk_i32", cs.rng.permutation(60).reshape(6, 10).astype(np.int32) - 30, 4, 1, 1)
topk_case("topk_i64_small", cs.rng.permutation(60).reshape(6, 10).astype(np.int64) * 7, 4, 1, 0)
topk_case("topk_i8", cs.rng.permutation(40).reshape(4, 10).astype(np.int8) - 20, 3, 0, 1)
topk_case("topk_u8", cs.rng.permutation(250).reshape(5, 50).astype(np.uint8), 6, 1, 0)
topk_case("topk_long", distinct((3, 5000)), 7, 1, 1)
topk_case("topk_long_all", distinct((2, 700)), 700, 1, 0)
topk_case("topk_many_lines", distinct((4000, 9)), 2, 1, 1)
nan1 = np.array([[1.0, np.nan, -3.0, np.inf, 0.5, 2.0], [4.0, 2.0, -1.0, np.nan, -np.inf, 0.0]],
                np.float32)
topk_case("topk_nan_largest", nan1, 3, 1, 1)
topk_case("topk_nan_smallest", nan1, 3, 1, 0)
topk_case("topk_k0", b, 0, -1, 1)
topk_case("topk_0d", np.array(3.5, np.float32), 1, 0, 1)
topk_case("topk_0d_k0", np.array(3.5, np.float32), 0, -1, 1)
topk_case("topk_empty_other", np.zeros((0, 4), np.float32), 2, 1, 1)
topk_case("topk_empty_k0", np.zeros((3, 0), np.float32), 0, 1, 1)
cs.error("topk_k_too_large", "topk", [b], "out of range", {"k": 11, "axis": -1})
cs.error("topk_k_negative", "topk", [b], "out of range", {"k": -1, "axis": -1})
cs.error("topk_0d_k2", "topk", [np.array(1.0, np.float32)], "out of range", {"k": 2, "axis": 0})
cs.error("topk_bad_axis", "topk", [b], "out of range", {"k": 1, "axis": 3})
cs.error("topk_bool", "topk", [np.ones((2, 3), np.bool_)], "bool", {"k": 1, "axis": 1})

main_write(cs)
