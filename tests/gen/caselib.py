"""Writes op reference cases for fern's test harness (tests/unit/test_ops_ref.c).

Each generator script (gen_<family>.py) builds inputs with NumPy, computes the
expected outputs with NumPy or PyTorch (the outside oracle), and writes them
with this module. The harness calls each op through the registry by name
(fern_op_invoke), applies the input views, and compares.

Usage in a generator:

    from caselib import Cases, In, Dtype
    cs = Cases()
    a = cs.rand((2, 3)); b = cs.rand((3,))
    cs.case("add_bcast", "add", [a, b], [a + b])
    cs.case("add_T", "add", [In(a.T.copy(), view=[("permute", [1, 0])]), a], [a + a])
    cs.error("add_mismatch", "add", [cs.rand((2, 3)), cs.rand((4,))], "broadcast")
    cs.write(sys.argv[1])

Attributes: int -> int, float -> float, list of int -> ints, list of float ->
floats, str -> str, Dtype("f32") -> dtype. Pass floats as Python floats
(1.0, not 1) where the schema wants a float.
"""
import math
import sys

import numpy as np

NP_TO_FERN = {
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
    np.dtype(np.float16): "f16",
    np.dtype(np.int8): "i8",
    np.dtype(np.uint8): "u8",
    np.dtype(np.int32): "i32",
    np.dtype(np.int64): "i64",
    np.dtype(np.bool_): "bool",
}

DEFAULT_TOL = {
    "f32": (1e-5, 1e-6),
    "f64": (1e-10, 1e-12),
    "f16": (2e-3, 1e-3),
    "bf16": (1.6e-2, 1e-2),
}


class Dtype:
    def __init__(self, name):
        self.name = name


class In:
    """An input: a base array, optionally declared with another fern dtype
    (e.g. "bf16" for float32 values exactly representable in bf16), and a
    list of views applied in order by the harness:
      ("permute", [perm...]), ("slice", axis, start, stop, step),
      ("expand", [shape...]), ("transpose", a0, a1)."""

    def __init__(self, array, dtype=None, view=None):
        self.array = np.asarray(array)
        self.dtype = dtype or NP_TO_FERN[self.array.dtype]
        self.view = view or []


class Out:
    """An expected output with an optional explicit fern dtype (e.g. bf16)."""

    def __init__(self, array, dtype=None):
        self.array = np.asarray(array)
        self.dtype = dtype or NP_TO_FERN[self.array.dtype]


def _fmt(v, dt):
    if dt in ("f32", "f64", "f16", "bf16"):
        v = float(v)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if dt == "bool":
        return "1" if v else "0"
    return str(int(v))


def _tensor_lines(kind, t):
    if t is None:
        return ["%s none" % kind]
    arr = t.array
    dims = " ".join(str(d) for d in arr.shape)
    lines = ["%s %s %d%s" % (kind, t.dtype, arr.ndim, (" " + dims) if dims else "")]
    flat = arr.reshape(-1)
    lines.append("data " + " ".join(_fmt(v, t.dtype) for v in flat))
    return lines


def _attr_line(name, v):
    if isinstance(v, Dtype):
        return "attr %s dtype %s" % (name, v.name)
    if isinstance(v, bool):
        return "attr %s int %d" % (name, int(v))
    if isinstance(v, (int, np.integer)):
        return "attr %s int %d" % (name, int(v))
    if isinstance(v, (float, np.floating)):
        return "attr %s float %s" % (name, _fmt(v, "f64"))
    if isinstance(v, str):
        return "attr %s str %s" % (name, v)
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            return "attr %s ints %d %s" % (name, len(v), " ".join(str(int(x)) for x in v))
        return "attr %s floats %d %s" % (name, len(v), " ".join(_fmt(x, "f64") for x in v))
    raise TypeError("unsupported attribute %r=%r" % (name, v))


def _as_in(x):
    if x is None or isinstance(x, In):
        return x
    return In(x)


def _as_out(x):
    if isinstance(x, Out):
        return x
    return Out(x)


class Cases:
    def __init__(self, seed=0):
        self.lines = []
        self.ids = set()
        self.rng = np.random.default_rng(seed)

    def rand(self, shape, dtype=np.float32, low=-1.0, high=1.0):
        return self.rng.uniform(low, high, size=shape).astype(dtype)

    def randint(self, shape, low, high, dtype=np.int64):
        return self.rng.integers(low, high, size=shape).astype(dtype)

    def _head(self, cid, op, inputs, attrs):
        if cid in self.ids:
            raise ValueError("duplicate case id " + cid)
        self.ids.add(cid)
        self.lines.append("case " + cid)
        self.lines.append("op " + op)
        for k, v in (attrs or {}).items():
            self.lines.append(_attr_line(k, v))
        for x in inputs:
            x = _as_in(x)
            self.lines.extend(_tensor_lines("in", x))
            if x is not None:
                for v in x.view:
                    self.lines.append("view " + " ".join(
                        str(a) if not isinstance(a, (list, tuple)) else
                        ("%d %s" % (len(a), " ".join(str(int(q)) for q in a)))
                        for a in v))

    def case(self, cid, op, inputs, outputs, attrs=None, tol=None):
        """A case whose outputs must match within tol=(rtol, atol) (per-dtype
        defaults otherwise; integer and bool outputs must match exactly)."""
        self._head(cid, op, inputs, attrs)
        for o in outputs:
            self.lines.extend(_tensor_lines("out", _as_out(o)))
        if tol is not None:
            self.lines.append("tol %r %r" % (float(tol[0]), float(tol[1])))
        self.lines.append("end")

    def error(self, cid, op, inputs, contains, attrs=None):
        """A case that must fail with an error message containing `contains`."""
        self._head(cid, op, inputs, attrs)
        self.lines.append("error " + contains)
        self.lines.append("end")

    def write(self, path):
        with open(path, "w") as f:
            f.write("\n".join(self.lines) + "\n")


def main_write(cs):
    if len(sys.argv) != 2:
        print("usage: %s OUTPUT.cases" % sys.argv[0], file=sys.stderr)
        sys.exit(2)
    cs.write(sys.argv[1])
