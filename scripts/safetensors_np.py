"""Minimal safetensors reader/writer on numpy, shared by the fixture scripts in crates/*/scripts/
(Debian's torch 1.13 has no safetensors package). Import with:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
    from safetensors_np import write_safetensors, read_safetensors
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def write_safetensors(path, tensors):
    """Writes {name: array}: integer arrays as I64, everything else as F32."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "iub":
            arr, dt = arr.astype(np.int64), "I64"
        else:
            arr, dt = arr.astype(np.float32), "F32"
        b = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Reads a safetensors file into {name: numpy array}."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        a, b = meta["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=_DTYPES[meta["dtype"]]).reshape(meta["shape"]).copy()
    return out
