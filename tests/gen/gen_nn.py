"""Reference cases for the nn ops (dropout, embedding, one_hot, pad,
interpolate), from PyTorch and NumPy.

dropout's mask comes from Philox4x32-10 (Random123): element i is kept iff
word i%4 of Philox(key=seed, counter=(lo=i//4, hi=offset)) is at least
ceil(p * 2^32). The Philox below is an independent Python implementation
checked against the Random123 known-answer vectors at import time. The op
has two outputs, y and the bool keep-mask (like torch.native_dropout)."""
import math

import numpy as np
import torch
import torch.nn.functional as F

from caselib import Cases, Dtype, In, Out, main_write

cs = Cases(seed=11)
T = torch.from_numpy
M32 = 0xFFFFFFFF


def np_(t):
    return t.detach().numpy()


def bf16_round(a):
    return T(np.ascontiguousarray(a)).to(torch.bfloat16).to(torch.float32).numpy()


def philox(key, ctr_hi, ctr_lo):
    c0, c1 = ctr_lo & M32, (ctr_lo >> 32) & M32
    c2, c3 = ctr_hi & M32, (ctr_hi >> 32) & M32
    k0, k1 = key & M32, (key >> 32) & M32
    for _ in range(10):
        p0 = 0xD2511F53 * c0
        p1 = 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
        k0 = (k0 + 0x9E3779B9) & M32
        k1 = (k1 + 0xBB67AE85) & M32
    return [c0, c1, c2, c3]


# Random123 kat_vectors: philox4x32 10 rounds
assert philox(0, 0, 0) == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
assert philox(0x299F31D0A4093822, 0x0370734413198A2E, 0x85A308D3243F6A88) == \
    [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]


def dropout_ref(x, p, seed, offset):
    flat = x.reshape(-1)
    thr = math.ceil(p * 4294967296.0)
    words = []
    for b in range((flat.size + 3) // 4):
        words.extend(philox(seed, offset, b))
    keep = np.array(words[:flat.size], dtype=np.uint64) >= thr
    scale = x.dtype.type(1.0 / (1.0 - p))
    return np.where(keep, flat * scale, x.dtype.type(0)).reshape(x.shape).astype(x.dtype)


def dropout_mask(x, p, seed, offset):
    flat = x.reshape(-1)
    thr = math.ceil(p * 4294967296.0)
    words = []
    for b in range((flat.size + 3) // 4):
        words.extend(philox(seed, offset, b))
    return (np.array(words[:flat.size], dtype=np.uint64) >= thr).reshape(x.shape)


def dropout_outs(x, p, seed, offset, dt=None):
    y = dropout_ref(x, p, seed, offset)
    return [y if dt is None else y.astype(dt), dropout_mask(x, p, seed, offset)]


# ---- dropout ----------------------------------------------------------------
x = cs.rand((3, 50), low=-2, high=2)
for p, seed, off in ((0.3, 1234, 0), (0.5, 0xDEADBEEF12345, 7), (0.9, 42, 3)):
    cs.case("dropout_p%g" % p, "dropout", [x], dropout_outs(x, p, seed, off),
            {"p": p, "training": 1, "seed": seed, "offset": off})
xd = cs.rand((4, 5, 3), dtype=np.float64)
cs.case("dropout_f64", "dropout", [xd], dropout_outs(xd, 0.25, 99, 12),
        {"p": 0.25, "training": 1, "seed": 99, "offset": 12})
xz = x.copy()
xz[:, ::3] = 0.0  # zeros, kept or dropped: the mask output is what tells them apart
cs.case("dropout_zeros", "dropout", [xz], dropout_outs(xz, 0.5, 17, 4),
        {"p": 0.5, "training": 1, "seed": 17, "offset": 4})
xt = cs.rand((6, 5))
cs.case("dropout_noncontig", "dropout", [In(xt, view=[("permute", [1, 0])])],
        dropout_outs(np.ascontiguousarray(xt.T), 0.4, 5, 1), {"p": 0.4, "seed": 5, "offset": 1})
xh = cs.rand((2, 9)).astype(np.float16)
cs.case("dropout_f16", "dropout", [xh], dropout_outs(xh.astype(np.float32), 0.5, 8, 2, np.float16),
        {"p": 0.5, "seed": 8, "offset": 2})
s = np.array(1.5, np.float32)
cs.case("dropout_0d", "dropout", [s], dropout_outs(s, 0.5, 3, 0), {"p": 0.5, "seed": 3, "offset": 0})
cs.case("dropout_empty", "dropout", [np.zeros((0, 3), np.float32)],
        [np.zeros((0, 3), np.float32), np.zeros((0, 3), np.bool_)], {"p": 0.5, "seed": 3, "offset": 0})
keep_all = np.ones(x.shape, np.bool_)
cs.case("dropout_eval", "dropout", [x], [x, keep_all], {"p": 0.5, "training": 0})
cs.case("dropout_p0", "dropout", [x], [x, keep_all], {"p": 0.0, "training": 1})
cs.case("dropout_p1", "dropout", [x], [np_(F.dropout(T(x), 1.0, training=True)), ~keep_all],
        {"p": 1.0, "training": 1})
cs.case("dropout_eval_noncontig", "dropout", [In(xt, view=[("permute", [1, 0])])],
        [xt.T, np.ones(xt.T.shape, np.bool_)], {"p": 0.5, "training": 0})
cs.error("dropout_p_big", "dropout", [x], "between 0 and 1", {"p": 1.5})
cs.error("dropout_p_neg", "dropout", [x], "between 0 and 1", {"p": -0.1})
cs.error("dropout_int", "dropout", [np.ones((3,), np.int64)], "float", {"p": 0.5})

# ---- embedding ----------------------------------------------------------------
w = cs.rand((10, 4))
idx = np.array([[0, 3, 9], [3, 3, 1]], np.int64)
cs.case("embedding_basic", "embedding", [w, idx], [np_(F.embedding(T(idx), T(w)))])
cs.case("embedding_i32", "embedding", [w, idx.astype(np.int32)], [np_(F.embedding(T(idx), T(w)))])
cs.case("embedding_u8", "embedding", [w, idx.astype(np.uint8)], [w[idx]])
cs.case("embedding_0d_index", "embedding", [w, np.array(7, np.int64)], [w[7]])
cs.case("embedding_empty", "embedding", [w, np.zeros((0,), np.int64)], [np.zeros((0, 4), np.float32)])
wt = cs.rand((4, 10))
cs.case("embedding_noncontig_weight", "embedding", [In(wt, view=[("permute", [1, 0])]), idx],
        [np_(F.embedding(T(idx), T(wt).t()))])
idx3 = cs.randint((3, 4, 2), 0, 10)
cs.case("embedding_noncontig_idx", "embedding", [w, In(idx3, view=[("permute", [2, 0, 1])])],
        [w[idx3.transpose(2, 0, 1)]])
wd = cs.rand((5, 3), dtype=np.float64)
cs.case("embedding_f64", "embedding", [wd, np.array([4, 0, 2], np.int64)], [wd[[4, 0, 2]]])
wi = cs.randint((6, 2), -50, 50)
cs.case("embedding_i64_weight", "embedding", [wi, np.array([[5], [1]], np.int64)], [wi[[[5], [1]]]])
wh = cs.rand((6, 3)).astype(np.float16)
cs.case("embedding_f16", "embedding", [wh, np.array([1, 5], np.int64)], [wh[[1, 5]]], tol=(0, 0))
wbig = cs.rand((20, 8))
ibig = cs.randint((4200,), 0, 20)
cs.case("embedding_parallel", "embedding", [wbig, ibig], [wbig[ibig]])
ibad = ibig.copy()
ibad[[3000, 4100]] = 20
cs.error("embedding_parallel_out_of_range", "embedding", [wbig, ibad], "position 3000", {})
cs.error("embedding_out_of_range", "embedding", [w, np.array([1, 10], np.int64)], "out of range")
cs.error("embedding_negative", "embedding", [w, np.array([-1], np.int64)], "out of range")
cs.error("embedding_float_idx", "embedding", [w, np.array([1.0], np.float32)], "integer")
cs.error("embedding_1d_weight", "embedding", [cs.rand((5,)), np.array([1], np.int64)], "2-d")

# ---- one_hot ------------------------------------------------------------------
oi = np.array([[0, 4, 2], [1, 1, 3]], np.int64)
cs.case("one_hot_basic", "one_hot", [oi], [np_(F.one_hot(T(oi), 5))], {"num_classes": 5})
cs.case("one_hot_f32", "one_hot", [oi], [np_(F.one_hot(T(oi), 6)).astype(np.float32)],
        {"num_classes": 6, "dtype": Dtype("f32")})
cs.case("one_hot_bool", "one_hot", [oi.astype(np.int32)], [np_(F.one_hot(T(oi), 5)).astype(np.bool_)],
        {"num_classes": 5, "dtype": Dtype("bool")})
cs.case("one_hot_f16_from_u8", "one_hot", [oi.astype(np.uint8)], [np_(F.one_hot(T(oi), 5)).astype(np.float16)],
        {"num_classes": 5, "dtype": Dtype("f16")})
cs.case("one_hot_0d", "one_hot", [np.array(2, np.int64)], [np_(F.one_hot(torch.tensor(2), 4))],
        {"num_classes": 4})
cs.case("one_hot_empty", "one_hot", [np.zeros((0,), np.int64)], [np.zeros((0, 3), np.int64)],
        {"num_classes": 3})
cs.case("one_hot_noncontig", "one_hot", [In(oi, view=[("permute", [1, 0])])],
        [np_(F.one_hot(T(oi).t(), 5))], {"num_classes": 5})
obig = cs.randint((6000,), 0, 3)
cs.case("one_hot_parallel", "one_hot", [obig], [np_(F.one_hot(T(obig), 3))], {"num_classes": 3})
obad = obig.copy()
obad[[4000, 5000]] = 3
cs.error("one_hot_parallel_out_of_range", "one_hot", [obad], "position 4000", {"num_classes": 3})
cs.error("one_hot_out_of_range", "one_hot", [oi], "out of range", {"num_classes": 4})
cs.error("one_hot_negative", "one_hot", [np.array([0, -1], np.int64)], "out of range", {"num_classes": 4})
cs.error("one_hot_no_classes", "one_hot", [oi], "positive", {"num_classes": 0})
cs.error("one_hot_default_classes", "one_hot", [oi], "num_classes")
cs.error("one_hot_float", "one_hot", [np.array([1.0], np.float32)], "integer", {"num_classes": 3})

# ---- pad ----------------------------------------------------------------------
a = cs.rand((2, 3, 4))


def torch_pad(arr, pads, mode="constant", value=0.0):
    return np_(F.pad(T(arr), pads, mode=mode, value=value) if mode == "constant"
               else F.pad(T(arr), pads, mode=mode))


def np_pad(arr, pads, mode):
    """NumPy padding in torch's order (last dim first)."""
    width = [(0, 0)] * arr.ndim
    for k in range(len(pads) // 2):
        width[arr.ndim - 1 - k] = (pads[2 * k], pads[2 * k + 1])
    return np.pad(arr, width, mode={"reflect": "reflect", "replicate": "edge"}[mode])


cs.case("pad_constant_last", "pad", [a], [torch_pad(a, [1, 2])], {"pads": [1, 2]})
cs.case("pad_constant_value", "pad", [a], [torch_pad(a, [1, 2, 0, 1], value=1.5)],
        {"pads": [1, 2, 0, 1], "value": 1.5})
cs.case("pad_constant_all_dims", "pad", [a], [torch_pad(a, [1, 1, 2, 0, 1, 1], value=-2.0)],
        {"pads": [1, 1, 2, 0, 1, 1], "mode": 0, "value": -2.0})
cs.case("pad_constant_negative", "pad", [a], [torch_pad(a, [-1, 2, 1, -2])], {"pads": [-1, 2, 1, -2]})
cs.case("pad_constant_crop_most", "pad", [a], [torch_pad(a, [-3, 2])], {"pads": [-3, 2]})
cs.case("pad_constant_noncontig", "pad", [In(a, view=[("permute", [2, 0, 1])])],
        [torch_pad(np.ascontiguousarray(a.transpose(2, 0, 1)), [2, 1, 1, 0], value=3.0)],
        {"pads": [2, 1, 1, 0], "value": 3.0})
ai = cs.randint((3, 4), -9, 9, dtype=np.int32)
cs.case("pad_constant_i32", "pad", [ai], [torch_pad(ai, [1, 2, 2, 1], value=7.0)],
        {"pads": [1, 2, 2, 1], "value": 7.0})
ab = np.array([[True, False], [False, True]])
cs.case("pad_constant_bool", "pad", [ab], [np.pad(ab, ((1, 0), (0, 2)), constant_values=True)],
        {"pads": [0, 2, 1, 0], "value": 1.0})
au = cs.randint((2, 3), 0, 255, dtype=np.uint8)
cs.case("pad_replicate_u8", "pad", [au], [np_pad(au, [2, 1, 1, 1], "replicate")],
        {"pads": [2, 1, 1, 1], "mode": 2})
ah = cs.rand((2, 3)).astype(np.float16)
cs.case("pad_constant_f16", "pad", [ah], [torch_pad(ah, [1, 1], value=0.5)], {"pads": [1, 1], "value": 0.5},
        tol=(0, 0))
ad = cs.rand((2, 5), dtype=np.float64)
cs.case("pad_reflect_f64", "pad", [ad], [torch_pad(ad, [4, 3], "reflect")], {"pads": [4, 3], "mode": 1})
cs.case("pad_0d", "pad", [np.array(4.0, np.float32)], [np.array(4.0, np.float32)], {"pads": []})
cs.case("pad_no_pads", "pad", [a], [a], {"pads": []})
cs.case("pad_empty_dim", "pad", [np.zeros((0, 3), np.float32)], [np.zeros((0, 5), np.float32)],
        {"pads": [1, 1]})
cs.case("pad_fill_empty", "pad", [np.zeros((2, 0), np.float32)], [np.full((2, 3), 9.0, np.float32)],
        {"pads": [1, 2], "value": 9.0})
r3 = cs.rand((1, 2, 5))
cs.case("pad_reflect_1d", "pad", [r3], [torch_pad(r3, [2, 3], "reflect")], {"pads": [2, 3], "mode": 1})
r4 = cs.rand((1, 2, 4, 5))
cs.case("pad_reflect_2d", "pad", [r4], [torch_pad(r4, [1, 2, 3, 1], "reflect")],
        {"pads": [1, 2, 3, 1], "mode": 1})
cs.case("pad_reflect_noncontig", "pad", [In(r4, view=[("permute", [0, 1, 3, 2])])],
        [torch_pad(np.ascontiguousarray(r4.transpose(0, 1, 3, 2)), [2, 0, 1, 4], "reflect")],
        {"pads": [2, 0, 1, 4], "mode": 1})
r5 = cs.rand((1, 2, 3, 4, 5))
cs.case("pad_reflect_3d", "pad", [r5], [torch_pad(r5, [1, 2, 2, 1, 1, 2], "reflect")],
        {"pads": [1, 2, 2, 1, 1, 2], "mode": 1})
cs.case("pad_reflect_general", "pad", [a], [np_pad(a, [3, 1, 2, 2, 1, 0], "reflect")],
        {"pads": [3, 1, 2, 2, 1, 0], "mode": 1})
cs.case("pad_replicate_1d", "pad", [r3], [torch_pad(r3, [3, 6], "replicate")], {"pads": [3, 6], "mode": 2})
cs.case("pad_replicate_2d", "pad", [r4], [torch_pad(r4, [2, 1, 1, 3], "replicate")],
        {"pads": [2, 1, 1, 3], "mode": 2})
cs.case("pad_replicate_3d_noncontig", "pad", [In(r5, view=[("slice", 4, 0, 5, 2)])],
        [torch_pad(np.ascontiguousarray(r5[..., ::2]), [1, 2, 0, 1, 2, 2], "replicate")],
        {"pads": [1, 2, 0, 1, 2, 2], "mode": 2})
big = cs.rand((4, 8, 40, 40))
cs.case("pad_reflect_parallel", "pad", [big], [torch_pad(big, [3, 3, 3, 3], "reflect")],
        {"pads": [3, 3, 3, 3], "mode": 1})
cs.error("pad_odd", "pad", [a], "even", {"pads": [1, 2, 3]})
cs.error("pad_too_many", "pad", [a], "even", {"pads": [1] * 8})
cs.error("pad_reflect_too_big", "pad", [r3], "less than", {"pads": [5, 0], "mode": 1})
cs.error("pad_reflect_negative", "pad", [r3], "negative", {"pads": [-1, 0], "mode": 1})
cs.error("pad_replicate_empty", "pad", [np.zeros((2, 0), np.float32)], "size 0", {"pads": [1, 1], "mode": 2})
cs.error("pad_bad_mode", "pad", [a], "mode", {"pads": [1, 1], "mode": 5})
cs.error("pad_negative_size", "pad", [a], "negative size", {"pads": [-3, -2]})

# ---- interpolate ----------------------------------------------------------------
xi = cs.rand((1, 2, 3, 4))


def interp(arr, size, mode, align=None):
    t = T(np.ascontiguousarray(arr))
    if mode == "nearest":
        return np_(F.interpolate(t, size=size, mode="nearest"))
    return np_(F.interpolate(t, size=size, mode="bilinear", align_corners=align))


NEAREST, BILINEAR = 0, 1
for name, src, size in (("up2", xi, (6, 8)), ("up_frac", xi, (5, 7)), ("same", xi, (3, 4)),
                        ("down", cs.rand((2, 3, 8, 9)), (3, 4)), ("mixed", cs.rand((1, 1, 7, 3)), (2, 10)),
                        ("to1", xi, (1, 1))):
    cs.case("interpolate_nearest_" + name, "interpolate", [src], [interp(src, size, "nearest")],
            {"out_h": size[0], "out_w": size[1], "mode": NEAREST})
    for align in (0, 1):
        cs.case("interpolate_bilinear_%s_ac%d" % (name, align), "interpolate", [src],
                [interp(src, size, "bilinear", bool(align))],
                {"out_h": size[0], "out_w": size[1], "mode": BILINEAR, "align_corners": align})
xo = cs.rand((1, 1, 5, 5))
cs.case("interpolate_nearest_odd", "interpolate", [xo], [interp(xo, (3, 7), "nearest")],
        {"out_h": 3, "out_w": 7, "mode": NEAREST})
xn = cs.rand((2, 5, 6, 3))  # NHWC storage viewed as NCHW
cs.case("interpolate_bilinear_noncontig", "interpolate", [In(xn, view=[("permute", [0, 3, 1, 2])])],
        [interp(xn.transpose(0, 3, 1, 2), (4, 9), "bilinear", False)],
        {"out_h": 4, "out_w": 9, "mode": BILINEAR})
xd = cs.rand((1, 2, 4, 4), dtype=np.float64)
cs.case("interpolate_bilinear_f64", "interpolate", [xd], [interp(xd, (7, 3), "bilinear", False)],
        {"out_h": 7, "out_w": 3, "mode": BILINEAR})
cs.case("interpolate_bilinear_f64_ac", "interpolate", [xd], [interp(xd, (7, 3), "bilinear", True)],
        {"out_h": 7, "out_w": 3, "mode": BILINEAR, "align_corners": 1})
cs.case("interpolate_nearest_f64", "interpolate", [xd], [interp(xd, (3, 9), "nearest")],
        {"out_h": 3, "out_w": 9, "mode": NEAREST})
xh = cs.rand((1, 2, 3, 3)).astype(np.float16)
cs.case("interpolate_bilinear_f16", "interpolate", [xh],
        [interp(xh.astype(np.float32), (5, 4), "bilinear", False).astype(np.float16)],
        {"out_h": 5, "out_w": 4, "mode": BILINEAR})
xb = cs.rand((4, 16, 8, 8))
cs.case("interpolate_bilinear_parallel", "interpolate", [xb], [interp(xb, (20, 22), "bilinear", False)],
        {"out_h": 20, "out_w": 22, "mode": BILINEAR})
cs.case("interpolate_empty_batch", "interpolate", [np.zeros((0, 2, 3, 3), np.float32)],
        [interp(np.zeros((0, 2, 3, 3), np.float32), (4, 4), "bilinear", False)],
        {"out_h": 4, "out_w": 4, "mode": BILINEAR})
cs.error("interpolate_3d", "interpolate", [cs.rand((2, 3, 4))], "4-d", {"out_h": 2, "out_w": 2})
cs.error("interpolate_nearest_align", "interpolate", [xi], "align_corners",
         {"out_h": 2, "out_w": 2, "mode": NEAREST, "align_corners": 1})
cs.error("interpolate_zero_size", "interpolate", [xi], "greater than 0", {"out_h": 0, "out_w": 2})
cs.error("interpolate_empty_input", "interpolate", [np.zeros((1, 1, 0, 2), np.float32)], "greater than 0",
         {"out_h": 2, "out_w": 2})
cs.error("interpolate_bad_mode", "interpolate", [xi], "mode", {"out_h": 2, "out_w": 2, "mode": 3})
cs.error("interpolate_int", "interpolate", [np.ones((1, 1, 2, 2), np.int32)], "float", {"out_h": 2, "out_w": 2})

main_write(cs)
