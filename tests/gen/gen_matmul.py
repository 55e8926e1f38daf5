"""Reference cases for matmul (numpy.matmul semantics), from NumPy and
PyTorch 1.13."""
import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, In, Out, main_write

cs = Cases(seed=11)
TOL = (1e-4, 1e-5)


def mm(a, b):
    """The expected value, computed by torch in float64 for float inputs."""
    if a.dtype.kind == "f":
        r = torch.matmul(torch.from_numpy(a.astype(np.float64)), torch.from_numpy(b.astype(np.float64)))
        return r.numpy().astype(a.dtype)
    return np.matmul(a, b)


def case(cid, a, b, expect=None, tol=TOL, ain=None, bin_=None):
    """a, b: the LOGICAL operands; ain/bin_: the In objects that produce them."""
    ain = ain if ain is not None else a
    bin_ = bin_ if bin_ is not None else b
    e = mm(a, b) if expect is None else expect
    cs.case(cid, "matmul", [ain, bin_], [e], tol=tol if e.dtype.kind == "f" else None)


# 2-D, assorted sizes (including ones that go to gemv)
for (m, k, n) in [(1, 1, 1), (2, 3, 4), (5, 7, 3), (17, 33, 9), (64, 48, 80), (1, 16, 8), (8, 16, 1)]:
    case("mm_%dx%dx%d" % (m, k, n), cs.rand((m, k)), cs.rand((k, n)))
case("mm_f64", cs.rand((6, 5), np.float64), cs.rand((5, 7), np.float64), tol=(1e-10, 1e-12))
case("mm_f64_gemv", cs.rand((6, 5), np.float64), cs.rand((5, 1), np.float64), tol=(1e-10, 1e-12))

# 1-D operands
v = cs.rand((5,))
m = cs.rand((5, 3))
case("vec_vec", v, cs.rand((5,)))
case("vec_mat", v, m)
case("mat_vec", cs.rand((4, 5)), v)
case("vec_batch", v, cs.rand((2, 5, 3)))
case("batch_vec", cs.rand((2, 3, 5)), v)
case("vec_vec_f64", v.astype(np.float64), cs.rand((5,), np.float64), tol=(1e-10, 1e-12))
case("vec_len1", cs.rand((1,)), cs.rand((1, 4)))

# batched and broadcast batches
case("bmm", cs.rand((3, 4, 5)), cs.rand((3, 5, 6)))
case("bmm_fold", cs.rand((3, 4, 5)), cs.rand((5, 6)))          # one (12,5)@(5,6) gemm
case("bmm_fold_4d", cs.rand((2, 3, 4, 5)), cs.rand((5, 2)))
case("bmm_fold_bcast_b", cs.rand((2, 3, 4, 5)), cs.rand((1, 1, 5, 2)))
case("bmm_left_shared", cs.rand((4, 5)), cs.rand((3, 5, 6)))
case("bcast_both", cs.rand((2, 1, 4, 5)), cs.rand((1, 3, 5, 6)))
case("bcast_rank", cs.rand((3, 2, 4, 5)), cs.rand((2, 5, 3)))
case("bmm_many_small", cs.rand((40, 3, 4)), cs.rand((40, 4, 2)))
case("bmm_big", cs.rand((3, 70, 80)), cs.rand((3, 80, 90)))
case("bmm_f64", cs.rand((2, 3, 4), np.float64), cs.rand((2, 4, 5), np.float64), tol=(1e-10, 1e-12))

# non-contiguous operands: transposes go to BLAS as Trans, others are copied
a = cs.rand((6, 4))
b = cs.rand((7, 6))
case("aT", a.T, cs.rand((6, 3)), ain=In(a, view=[("permute", [1, 0])]))
case("bT", cs.rand((3, 6)), b.T, bin_=In(b, view=[("permute", [1, 0])]))
bb = cs.rand((5, 4))
case("a_slice_of_T", a.T[:, :5], bb, ain=In(a, view=[("permute", [1, 0]), ("slice", 1, 0, 5, 1)]))
bt = cs.rand((5, 6))
case("true_both_T", a.T.copy(), bt.T.copy(), ain=In(a, view=[("permute", [1, 0])]),
     bin_=In(bt, view=[("permute", [1, 0])]))
s = cs.rand((6, 8))
case("a_col_slice", s[:, ::2], cs.rand((4, 3)), ain=In(s, view=[("slice", 1, 0, 8, 2)]))
case("a_row_slice", s[1:5], cs.rand((8, 3)), ain=In(s, view=[("slice", 0, 1, 5, 1)]))
case("a_row_step", s[::2], cs.rand((8, 3)), ain=In(s, view=[("slice", 0, 0, 6, 2)]))
ba = cs.rand((4, 3, 5))
case("batch_permuted", ba.transpose(1, 0, 2), cs.rand((3, 5, 2)), ain=In(ba, view=[("permute", [1, 0, 2])]))
case("batch_permuted_fold", ba.transpose(1, 0, 2), cs.rand((5, 2)), ain=In(ba, view=[("permute", [1, 0, 2])]))
bb3 = cs.rand((3, 6, 5))
case("batch_bT", cs.rand((3, 4, 5)), bb3.transpose(0, 2, 1), bin_=In(bb3, view=[("permute", [0, 2, 1])]))
row = cs.rand((1, 5))
case("b_expanded_rows", cs.rand((3, 4)), np.broadcast_to(row, (4, 5)).copy(),
     bin_=In(row, view=[("expand", [4, 5])]))
col = cs.rand((4, 1))
case("a_expanded_cols", np.broadcast_to(col, (4, 6)).copy(), cs.rand((6, 2)), ain=In(col, view=[("expand", [4, 6])]))
bexp = cs.rand((5, 2))
case("b_expanded_batch", cs.rand((3, 4, 5)), np.broadcast_to(bexp, (3, 5, 2)).copy(),
     bin_=In(bexp, view=[("expand", [3, 5, 2])]))
vv = cs.rand((10,))
case("vec_strided", vv[::2], cs.rand((5, 3)), ain=In(vv, view=[("slice", 0, 0, 10, 2)]))
case("vec_right_strided", cs.rand((3, 5)), vv[1::2], bin_=In(vv, view=[("slice", 0, 1, 10, 2)]))

# zero sizes
case("empty_k", np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32))
case("empty_m", np.zeros((0, 5), np.float32), cs.rand((5, 4)))
case("empty_batch", np.zeros((0, 3, 5), np.float32), cs.rand((5, 4)))
case("empty_batch_bcast", np.zeros((0, 1, 3, 5), np.float32), cs.rand((2, 5, 4)))
case("empty_k_int", np.zeros((2, 0), np.int64), np.zeros((0, 3), np.int64))
case("empty_vec_vec", np.zeros((0,), np.float32), np.zeros((0,), np.float32))

# integers (wrap-around like numpy)
case("int32", cs.randint((4, 6), -50, 50, np.int32), cs.randint((6, 5), -50, 50, np.int32))
case("int64", cs.randint((4, 6), -1000, 1000), cs.randint((6, 5), -1000, 1000))
case("int64_batch_bcast", cs.randint((2, 1, 3, 4), -9, 9), cs.randint((3, 4, 2), -9, 9))
case("int64_vec", cs.randint((7,), -9, 9), cs.randint((7, 3), -9, 9))
case("int64_mat_vec", cs.randint((3, 7), -9, 9), cs.randint((7,), -9, 9))
ia = cs.randint((5, 4), -9, 9)
case("int64_T", ia.T, cs.randint((5, 3), -9, 9), ain=In(ia, view=[("permute", [1, 0])]))
case("int64_big", cs.randint((70, 150), -100, 100), cs.randint((150, 600), -100, 100))
big32 = np.full((2, 2), 2 ** 30, np.int32)
case("int32_wrap", big32, np.full((2, 2), 3, np.int32))

# half precision (computed in f32)
ah = cs.rand((4, 6)).astype(np.float16)
bh = cs.rand((6, 3)).astype(np.float16)
eh = (torch.from_numpy(ah).float() @ torch.from_numpy(bh).float()).half().numpy()
cs.case("f16", "matmul", [ah, bh], [eh], tol=(2e-3, 2e-3))
abf = torch.from_numpy(cs.rand((2, 3, 8))).bfloat16()
bbf = torch.from_numpy(cs.rand((8, 5))).bfloat16()
ebf = (abf.float() @ bbf.float()).bfloat16().float().numpy()
cs.case("bf16_batch", "matmul", [In(abf.float().numpy(), dtype="bf16"), In(bbf.float().numpy(), dtype="bf16")],
        [Out(ebf, dtype="bf16")], tol=(1.6e-2, 1e-2))

# errors
cs.error("err_inner", "matmul", [cs.rand((2, 3)), cs.rand((4, 5))], "inner dimensions do not match")
cs.error("err_inner_shapes", "matmul", [cs.rand((2, 3)), cs.rand((4, 5))], "f32[2,3] @ f32[4,5]")
cs.error("err_vec", "matmul", [cs.rand((3,)), cs.rand((4,))], "inner dimensions")
cs.error("err_batch", "matmul", [cs.rand((2, 3, 4)), cs.rand((3, 4, 5))], "cannot be broadcast")
cs.error("err_scalar", "matmul", [np.array(2.0, np.float32), cs.rand((3,))], "at least 1 dimension")
cs.error("err_dtype_mix", "matmul", [cs.rand((2, 3)), cs.rand((3, 2), np.float64)], "same dtype")
cs.error("err_bool", "matmul", [np.ones((2, 2), np.bool_), np.ones((2, 2), np.bool_)], "dtype")
cs.error("err_u8", "matmul", [np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8)], "expected dtype")

# ---- linear: x @ W^T + b (torch.nn.functional.linear) ----------------------------
def lin(cid, x, w, b, xin=None, tol=None):
    tb = None if b is None else torch.from_numpy(b)
    e = F.linear(torch.from_numpy(x), torch.from_numpy(w), tb).numpy()
    cs.case("linear_" + cid, "linear", [xin if xin is not None else x, w, b], [e], tol=tol)

lin("bias", cs.rand((5, 7)), cs.rand((3, 7)), cs.rand((3,)))
lin("nobias", cs.rand((5, 7)), cs.rand((3, 7)), None)
lin("batch3d", cs.rand((2, 4, 6)), cs.rand((5, 6)), cs.rand((5,)))
lin("vec", cs.rand((6,)), cs.rand((5, 6)), cs.rand((5,)))
lin("f64", cs.rand((4, 9), np.float64), cs.rand((2, 9), np.float64), cs.rand((2,), np.float64))
lin("big", cs.rand((64, 300)), cs.rand((70, 300)), cs.rand((70,)), tol=(1e-4, 1e-5))
lin("rows0", np.zeros((0, 4), np.float32), cs.rand((3, 4)), cs.rand((3,)))
xt = cs.rand((7, 5))
lin("x_T", xt.T.copy(), cs.rand((3, 7)), cs.rand((3,)), xin=In(xt, view=[("permute", [1, 0])]))
cs.error("linear_err_in", "linear", [cs.rand((5, 7)), cs.rand((3, 6)), None], "weight (out, in)")
cs.error("linear_err_bias", "linear", [cs.rand((5, 7)), cs.rand((3, 7)), cs.rand((4,))], "f32[4]")
cs.error("linear_err_dtype", "linear", [cs.rand((5, 7)), cs.rand((3, 7), np.float64), None], "linear")

main_write(cs)
