"""Reference cases for the view ops (reshape, permute, slice, expand,
contiguous, copy) and cast, from NumPy."""
import numpy as np

from caselib import Cases, Dtype, In, Out, main_write

cs = Cases(seed=1)
a = cs.rand((2, 3, 4))

cs.case("reshape_basic", "reshape", [a], [a.reshape(6, 4)], {"shape": [6, 4]})
cs.case("reshape_infer", "reshape", [a], [a.reshape(4, -1)], {"shape": [4, -1]})
cs.case("reshape_scalar", "reshape", [np.array(3.5, np.float32)], [np.array([[3.5]], np.float32)], {"shape": [1, 1]})
cs.case("reshape_to_scalar", "reshape", [np.array([2.5], np.float32)], [np.array(2.5, np.float32)], {"shape": []})
cs.case("reshape_empty", "reshape", [np.zeros((0, 3), np.float32)], [np.zeros((3, 0), np.float32)], {"shape": [3, 0]})
t = a.transpose(2, 0, 1)
cs.case("reshape_noncontig_copy", "reshape",
        [In(a, view=[("permute", [2, 0, 1])])], [t.reshape(4, 6)], {"shape": [4, 6]})
cs.case("reshape_noncontig_view", "reshape",
        [In(a, view=[("permute", [2, 0, 1])])], [t.reshape(4, 2, 3, 1)], {"shape": [4, 2, 3, 1]})
cs.error("reshape_bad_numel", "reshape", [a], "cannot reshape", {"shape": [5, 5]})
cs.error("reshape_two_infer", "reshape", [a], "only one dimension", {"shape": [-1, -1]})

cs.case("permute_3d", "permute", [a], [a.transpose(1, 2, 0)], {"perm": [1, 2, 0]})
cs.case("permute_neg", "permute", [a], [a.transpose(2, 1, 0)], {"perm": [-1, 1, 0]})
cs.error("permute_dup", "permute", [a], "permutation", {"perm": [0, 0, 1]})
cs.error("permute_len", "permute", [a], "axes given", {"perm": [0, 1]})

cs.case("slice_basic", "slice", [a], [a[:, 1:3]], {"axis": 1, "start": 1, "stop": 3, "step": 1})
cs.case("slice_step", "slice", [a], [a[:, :, ::2]], {"axis": 2, "start": 0, "stop": 4, "step": 2})
cs.case("slice_neg", "slice", [a], [a[-1:]], {"axis": 0, "start": -1, "stop": 100, "step": 1})
cs.case("slice_empty", "slice", [a], [a[:, 3:1]], {"axis": 1, "start": 3, "stop": 1, "step": 1})
cs.case("slice_of_view", "slice", [In(a, view=[("permute", [2, 1, 0])])],
        [a.transpose(2, 1, 0)[1:4:2]], {"axis": 0, "start": 1, "stop": 4, "step": 2})
cs.error("slice_step0", "slice", [a], "step must be positive", {"axis": 0, "start": 0, "stop": 1, "step": 0})
cs.error("slice_axis", "slice", [a], "out of range", {"axis": 3, "start": 0, "stop": 1, "step": 1})

b = cs.rand((3, 1))
cs.case("expand_basic", "expand", [b], [np.broadcast_to(b, (2, 3, 4))], {"shape": [2, 3, 4]})
cs.case("expand_keep", "expand", [b], [np.broadcast_to(b, (3, 5))], {"shape": [-1, 5]})
cs.error("expand_bad", "expand", [b], "cannot expand", {"shape": [4, 4]})

cs.case("contiguous_T", "contiguous", [In(a, view=[("permute", [1, 0, 2])])], [a.transpose(1, 0, 2)])
cs.case("contiguous_expanded", "contiguous", [In(b, view=[("expand", [3, 4])])], [np.broadcast_to(b, (3, 4))])
cs.case("copy_slice", "copy", [In(a, view=[("slice", 2, 1, 4, 2)])], [a[:, :, 1:4:2]])
cs.case("copy_i64", "copy", [np.arange(6, dtype=np.int64).reshape(2, 3)], [np.arange(6, dtype=np.int64).reshape(2, 3)])

# cast between every pair of a few dtypes
x = np.array([-2.7, -1.5, -0.2, 0.0, 0.6, 1.5, 3.9, 100.25], np.float32)
cs.case("cast_f32_f64", "cast", [x], [x.astype(np.float64)], {"dtype": Dtype("f64")})
cs.case("cast_f32_i32", "cast", [x], [x.astype(np.int32)], {"dtype": Dtype("i32")})
cs.case("cast_f32_i64", "cast", [x], [x.astype(np.int64)], {"dtype": Dtype("i64")})
cs.case("cast_f32_bool", "cast", [x], [x.astype(np.bool_)], {"dtype": Dtype("bool")})
cs.case("cast_f32_f16", "cast", [x], [x.astype(np.float16)], {"dtype": Dtype("f16")}, tol=(0, 0))
cs.case("cast_i64_f32", "cast", [np.arange(-3, 5, dtype=np.int64)], [np.arange(-3, 5).astype(np.float32)],
        {"dtype": Dtype("f32")})
cs.case("cast_u8_f32", "cast", [np.array([0, 7, 255], np.uint8)], [np.array([0, 7, 255], np.float32)],
        {"dtype": Dtype("f32")})
cs.case("cast_bool_i32", "cast", [np.array([True, False, True])], [np.array([1, 0, 1], np.int32)],
        {"dtype": Dtype("i32")})
cs.case("cast_T", "cast", [In(a, view=[("permute", [2, 1, 0])])], [a.transpose(2, 1, 0).astype(np.float64)],
        {"dtype": Dtype("f64")})
try:
    import torch
    vals = torch.tensor([1.0, -2.5, 3.14159, 1e-3, 65504.0], dtype=torch.float32)
    bf = vals.to(torch.bfloat16).to(torch.float32).numpy()
    cs.case("cast_f32_bf16", "cast", [vals.numpy()], [Out(bf, dtype="bf16")], {"dtype": Dtype("bf16")}, tol=(0, 0))
except ImportError:
    pass
main_write(cs)
