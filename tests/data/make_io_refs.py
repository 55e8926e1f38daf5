"""Reference files for tests/unit/test_io.c, written by NumPy (the outside
tool): .npy in C and Fortran order, an .npz archive, and a safetensors file
laid out by hand from its published format (8-byte little-endian header size,
JSON header, raw little-endian data)."""
import json
import os
import struct
import sys

import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
a = np.arange(24, dtype=np.float32).reshape(2, 3, 4) * 0.5 - 3
np.save(os.path.join(out, "a_f32.npy"), a)
np.save(os.path.join(out, "b_f64_fortran.npy"), np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)))
np.save(os.path.join(out, "c_i64.npy"), np.array([-5, 0, 7], dtype=np.int64))
np.save(os.path.join(out, "d_bool.npy"), np.array([[True, False], [False, True]]))
np.save(os.path.join(out, "e_scalar.npy"), np.array(2.5, dtype=np.float64))
np.savez(os.path.join(out, "bundle.npz"), weight=a, bias=np.array([1.0, 2.0], dtype=np.float32),
         steps=np.array(42, dtype=np.int64))

tensors = {"w": a, "idx": np.array([3, 1, 2], dtype=np.int32)}
header, blobs, off = {}, [], 0
for name, arr in tensors.items():
    raw = arr.tobytes()
    header[name] = {"dtype": {"float32": "F32", "int32": "I32"}[str(arr.dtype)],
                    "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
    blobs.append(raw)
    off += len(raw)
header["__metadata__"] = {"format": "pt", "note": "written by make_io_refs.py"}
hb = json.dumps(header).encode()
with open(os.path.join(out, "model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(hb)))
    f.write(hb)
    for b in blobs:
        f.write(b)
