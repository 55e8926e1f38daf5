"""Reference cases for the creation ops (zeros, ones, full, zeros_like,
ones_like, full_like, arange, linspace, eye), from NumPy and PyTorch 1.13."""
import numpy as np
import torch

from caselib import Cases, Dtype, In, Out, main_write

cs = Cases(seed=3)

NP = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "i8": np.int8, "u8": np.uint8,
      "i32": np.int32, "i64": np.int64, "bool": np.bool_}
TORCH = {"f32": torch.float32, "f64": torch.float64, "f16": torch.float16,
         "bf16": torch.bfloat16, "i8": torch.int8, "u8": torch.uint8, "i32": torch.int32,
         "i64": torch.int64, "bool": torch.bool}


def expect(t, dt):
    """A torch result as an expected output of fern dtype dt."""
    if dt == "bf16":
        return Out(t.to(torch.float32).numpy(), dtype="bf16")
    return Out(t.numpy().astype(NP[dt]), dtype=dt)


# ---- zeros / ones / full ----------------------------------------------------
for dt in ["f32", "f64", "f16", "bf16", "i8", "u8", "i32", "i64", "bool"]:
    cs.case("zeros_" + dt, "zeros", [], [expect(torch.zeros((2, 3), dtype=TORCH[dt]), dt)],
            {"shape": [2, 3], "dtype": Dtype(dt)})
    cs.case("ones_" + dt, "ones", [], [expect(torch.ones((3, 1, 2), dtype=TORCH[dt]), dt)],
            {"shape": [3, 1, 2], "dtype": Dtype(dt)})
cs.case("zeros_default_dtype", "zeros", [], [np.zeros((4,), np.float32)], {"shape": [4]})
cs.case("zeros_scalar", "zeros", [], [np.zeros((), np.float64)], {"shape": [], "dtype": Dtype("f64")})
cs.case("ones_scalar_i64", "ones", [], [np.ones((), np.int64)], {"shape": [], "dtype": Dtype("i64")})
cs.case("zeros_empty", "zeros", [], [np.zeros((0, 3), np.float32)], {"shape": [0, 3]})
cs.case("ones_empty", "ones", [], [np.ones((2, 0), np.int32)], {"shape": [2, 0], "dtype": Dtype("i32")})
cs.case("ones_large", "ones", [], [np.ones((300, 700), np.float32)], {"shape": [300, 700]})
cs.error("zeros_negative_dim", "zeros", [], "negative dimension", {"shape": [2, -1]})
cs.error("ones_too_many_dims", "ones", [], "more than", {"shape": [1] * 9})

for dt, v in [("f32", 2.5), ("f64", -1.0 / 3.0), ("f16", 1.0 / 3.0), ("bf16", 3.14159),
              ("i32", -3.7), ("i64", 123456789012.0), ("i8", -100.0), ("u8", 200.0),
              ("bool", 0.5), ("bool", 0.0)]:
    cid = "full_%s_%s" % (dt, "zero" if v == 0 else "v")
    cs.case(cid, "full", [], [expect(torch.full((2, 2), v, dtype=torch.float64).to(TORCH[dt]), dt)],
            {"shape": [2, 2], "dtype": Dtype(dt), "value": v})
cs.case("full_scalar", "full", [], [np.full((), 7.25, np.float32)], {"shape": [], "value": 7.25})
cs.case("full_empty", "full", [], [np.full((0,), 7.0, np.float64)],
        {"shape": [0], "dtype": Dtype("f64"), "value": 7.0})
cs.case("full_inf", "full", [], [np.full((3,), np.inf, np.float32)], {"shape": [3], "value": float("inf")})
cs.case("full_large_i64", "full", [], [np.full((70000,), -5, np.int64)],
        {"shape": [70000], "dtype": Dtype("i64"), "value": -5.0})
cs.error("full_negative_dim", "full", [], "negative dimension", {"shape": [-3], "value": 1.0})

# ---- *_like -----------------------------------------------------------------
a = cs.rand((2, 3, 4))
for dt in ["f32", "f64", "i64", "bool", "u8"]:
    x = (a * 10).astype(NP[dt])
    cs.case("zeros_like_" + dt, "zeros_like", [x], [np.zeros_like(x)])
    cs.case("ones_like_" + dt, "ones_like", [x], [np.ones_like(x)])
    cs.case("full_like_" + dt, "full_like", [x], [np.full_like(x, 3.75)], {"value": 3.75})
xt = a.transpose(2, 0, 1)
cs.case("zeros_like_T", "zeros_like", [In(a, view=[("permute", [2, 0, 1])])], [np.zeros_like(xt)])
cs.case("full_like_T", "full_like", [In(a, view=[("permute", [2, 0, 1])])], [np.full_like(xt, -2.0)],
        {"value": -2.0})
cs.case("ones_like_expanded", "ones_like", [In(cs.rand((3, 1)), view=[("expand", [3, 5])])],
        [np.ones((3, 5), np.float32)])
cs.case("ones_like_f16", "ones_like", [a.astype(np.float16)], [np.ones((2, 3, 4), np.float16)])
b16 = torch.tensor(a).to(torch.bfloat16).to(torch.float32).numpy()
cs.case("full_like_bf16", "full_like", [In(b16, dtype="bf16")],
        [Out(torch.full((2, 3, 4), 0.1, dtype=torch.bfloat16).float().numpy(), dtype="bf16")],
        {"value": 0.1})
cs.case("zeros_like_scalar", "zeros_like", [np.array(4.0, np.float64)], [np.array(0.0)])
cs.case("full_like_empty", "full_like", [np.zeros((0, 5), np.int32)], [np.zeros((0, 5), np.int32)],
        {"value": 9.0})
cs.case("full_like_i32_trunc", "full_like", [np.zeros((3,), np.int32)],
        [torch.full((3,), -2.9).to(torch.int32).numpy()], {"value": -2.9})

# ---- arange -----------------------------------------------------------------
def arange_case(cid, start, stop, step, dt):
    if dt in ("f32", "f64", "f16", "bf16"):
        # torch refuses a step whose sign points away from stop; numpy (and
        # fern) give an empty range
        ref = (torch.arange(start, stop, step, dtype=torch.float64) if (stop - start) * step > 0
               else torch.tensor(np.arange(start, stop, step, dtype=np.float64)))
        ref = ref.to(TORCH[dt])
    else:
        ref = torch.tensor(np.arange(start, stop, step, dtype=np.int64)).to(TORCH[dt])
    cs.case(cid, "arange", [], [expect(ref, dt)],
            {"start": float(start), "stop": float(stop), "step": float(step), "dtype": Dtype(dt)})


arange_case("arange_basic_f32", 0, 5, 1, "f32")
arange_case("arange_frac_f64", 1.0, 2.0, 0.1, "f64")
arange_case("arange_frac_f32", -1.5, 2.25, 0.25, "f32")
arange_case("arange_negstep_f64", 5.0, -3.0, -0.75, "f64")
arange_case("arange_i64", 0, 10, 3, "i64")
arange_case("arange_i64_neg", 5, -6, -2, "i64")
arange_case("arange_i32", -4, 4, 1, "i32")
arange_case("arange_i8", -3, 3, 2, "i8")
arange_case("arange_u8", 0, 200, 25, "u8")
arange_case("arange_f16", 0, 3, 0.5, "f16")
arange_case("arange_bf16", -2, 2, 0.5, "bf16")
arange_case("arange_empty", 10, 0, 1, "f32")
arange_case("arange_empty_equal", 3, 3, 1, "i64")
arange_case("arange_one", 0, 0.5, 1, "f64")
arange_case("arange_large", 0, 100000, 1, "i64")
cs.case("arange_large_f32", "arange", [],
        [torch.arange(0.0, 50000.0, 0.5, dtype=torch.float64).float().numpy()],
        {"start": 0.0, "stop": 50000.0, "step": 0.5}, tol=(1e-6, 1e-6))
cs.error("arange_step0", "arange", [], "step must be nonzero", {"start": 0.0, "stop": 5.0, "step": 0.0})
cs.error("arange_bool", "arange", [], "bool", {"start": 0.0, "stop": 2.0, "step": 1.0, "dtype": Dtype("bool")})
cs.error("arange_inf", "arange", [], "finite", {"start": 0.0, "stop": float("inf"), "step": 1.0})

# ---- linspace ---------------------------------------------------------------
def linspace_case(cid, start, stop, num, dt, tol=None):
    if dt in ("f16", "bf16"):
        ref = torch.linspace(start, stop, num, dtype=torch.float64).to(TORCH[dt])
    else:
        ref = torch.linspace(start, stop, num, dtype=TORCH[dt])
    cs.case(cid, "linspace", [], [expect(ref, dt)],
            {"start": float(start), "stop": float(stop), "num": num, "dtype": Dtype(dt)}, tol=tol)


linspace_case("linspace_f32", 0, 1, 5, "f32")
linspace_case("linspace_f64", -2.0, 3.0, 7, "f64")
linspace_case("linspace_f64_long", 0.1, 17.3, 1001, "f64")
linspace_case("linspace_f32_desc", 10, -10, 9, "f32")
linspace_case("linspace_one", 3.5, 9.0, 1, "f64")
linspace_case("linspace_two", 3.5, 9.0, 2, "f32")
linspace_case("linspace_empty", 0, 1, 0, "f32")
linspace_case("linspace_i64", 0, 10, 4, "i64")
linspace_case("linspace_i32_trunc", -2.7, 3.9, 5, "i32")
linspace_case("linspace_u8", 0, 255, 6, "u8")
linspace_case("linspace_f16", -1, 1, 11, "f16")
linspace_case("linspace_bf16", 0, 8, 5, "bf16")
linspace_case("linspace_large", -1, 1, 100001, "f32", tol=(1e-5, 1e-6))
cs.case("linspace_default_dtype", "linspace", [], [torch.linspace(0, 1, 3).numpy()],
        {"start": 0.0, "stop": 1.0, "num": 3})
cs.error("linspace_negative", "linspace", [], "num must be", {"start": 0.0, "stop": 1.0, "num": -1})
cs.error("linspace_bool", "linspace", [], "bool", {"start": 0.0, "stop": 1.0, "num": 2, "dtype": Dtype("bool")})

# ---- eye --------------------------------------------------------------------
for cid, n, m, dt in [("eye_square", 3, 3, "f32"), ("eye_wide", 2, 4, "f64"), ("eye_tall", 4, 2, "i64"),
                      ("eye_bool", 3, 3, "bool"), ("eye_f16", 3, 2, "f16"), ("eye_bf16", 2, 2, "bf16"),
                      ("eye_u8", 2, 3, "u8"), ("eye_empty", 0, 3, "f32"), ("eye_empty2", 2, 0, "i32")]:
    cs.case(cid, "eye", [], [expect(torch.eye(n, m, dtype=torch.float64).to(TORCH[dt]), dt)],
            {"n": n, "m": m, "dtype": Dtype(dt)})
cs.case("eye_default_m", "eye", [], [np.eye(4, dtype=np.float32)], {"n": 4})
cs.case("eye_large", "eye", [], [np.eye(300, 260, dtype=np.float32)], {"n": 300, "m": 260})
cs.error("eye_negative", "eye", [], "non-negative", {"n": -1})
cs.error("eye_negative_m", "eye", [], "non-negative", {"n": 2, "m": -4})

main_write(cs)
