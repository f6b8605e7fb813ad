"""Helpers shared by the fixture scripts in crates/*/scripts/: a minimal safetensors reader/writer
on numpy (Debian's torch 1.13 has no safetensors package), and the seeded weight randomisation and
width shrinking of torchvision models used for parity fixtures. Import with:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
    from fixture_utils import write_safetensors, read_safetensors, randomise, shrink_resnet
"""
import json
import struct

import numpy as np

_DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def write_safetensors(path, tensors, keep_f64=False):
    """Writes {name: array}: integer arrays as I64, float64 as F64 when `keep_f64`, everything
    else as F32."""
    header, offset, blobs = {}, 0, []
    for name, arr in tensors.items():
        arr = np.asarray(arr)
        if arr.dtype.kind in "iub":
            arr, dt = arr.astype(np.int64), "I64"
        elif keep_f64 and arr.dtype == np.float64:
            dt = "F64"
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


def shrink_resnet(model, div, linear=True):
    """Divides every channel count of a torchvision ResNet by `div` (input RGB stays 3), keeping
    torchvision's own modules, names and forward code; `linear` also shrinks the fc input."""
    import torch.nn as nn

    for _, m in list(model.named_modules()):
        for cname, c in list(m.named_children()):
            if isinstance(c, nn.Conv2d):
                cin = c.in_channels if c.in_channels == 3 else c.in_channels // div
                setattr(m, cname, nn.Conv2d(cin, c.out_channels // div, c.kernel_size, c.stride, c.padding,
                                            bias=c.bias is not None))
            elif isinstance(c, nn.BatchNorm2d):
                setattr(m, cname, nn.BatchNorm2d(c.num_features // div))
            elif linear and isinstance(c, nn.Linear):
                setattr(m, cname, nn.Linear(c.in_features // div, c.out_features))
    return model


def randomise(model, seed):
    """Seeded weights: convs/linears ~ He-normal (kept well scaled through depth), BatchNorm
    gamma/beta/running stats away from the identity so a loader that drops them is caught."""
    import torch
    import torch.nn as nn

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) * 0.5 + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.num_batches_tracked.fill_(7)
    return model.eval()
