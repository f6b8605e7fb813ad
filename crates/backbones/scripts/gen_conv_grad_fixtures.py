#!/usr/bin/env python3
"""Writes the convolution-gradient fixture for `nightvision_core::kernels` (tested in
crates/backbones/tests/kernels.rs): for each case, a seeded input `x`, weight `w`, bias `b`
(zeros where the case has none), upstream gradient `up`, and PyTorch's `y = conv2d(x, w, b)`,
`dx`, `dw` of `sum(y * up)`. Computed in float64 and stored as float32, so the reference itself
carries no float32 summation-order error.

Run with Debian's PyTorch:  /usr/bin/python3 crates/backbones/scripts/gen_conv_grad_fixtures.py
Output: crates/backbones/tests/fixtures/conv_grads.safetensors (keys `<case>/<name>`).
Re-running gives an identical file (fixed seeds, deterministic CPU kernels).
"""
import os, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
torch.use_deterministic_algorithms(True)

# name: (batch, in, out, kernel, stride, padding, groups, h, w, bias)
CASES = {
    "dense_1x1": (2, 16, 8, 1, 1, 0, 1, 9, 11, False),
    "dense_1x1_s2": (2, 8, 12, 1, 2, 0, 1, 13, 10, False),
    "dense_3x3": (2, 8, 16, 3, 1, 1, 1, 12, 9, True),
    "dense_3x3_s2": (2, 8, 8, 3, 2, 1, 1, 15, 14, False),
    "dense_7x7_s2_stem": (2, 3, 8, 7, 2, 3, 1, 33, 29, False),
    "dense_4x4_s2_gan": (2, 6, 8, 4, 2, 1, 1, 16, 18, True),
    "dense_3x3_tiles": (1, 3, 4, 3, 1, 1, 1, 70, 70, False),
    "depthwise_3x3": (3, 12, 12, 3, 1, 1, 12, 10, 13, False),
    "depthwise_3x3_s2": (3, 12, 12, 3, 2, 1, 12, 17, 16, False),
    "depthwise_5x5_s2": (2, 6, 6, 5, 2, 2, 6, 15, 12, True),
}


def main():
    out = {}
    for i, (name, (n, cin, cout, k, s, p, g, h, w, bias)) in enumerate(CASES.items()):
        gen = torch.Generator().manual_seed(100 + i)
        x = torch.randn(n, cin, h, w, generator=gen, dtype=torch.float64)
        wt = torch.randn(cout, cin // g, k, k, generator=gen, dtype=torch.float64) * 0.2
        b = torch.randn(cout, generator=gen, dtype=torch.float64) if bias else torch.zeros(cout, dtype=torch.float64)
        x.requires_grad_(True)
        wt.requires_grad_(True)
        y = F.conv2d(x, wt, b, stride=s, padding=p, groups=g)
        up = torch.randn(y.shape, generator=gen, dtype=torch.float64)
        (y * up).sum().backward()
        for key, v in {"x": x, "w": wt, "b": b, "up": up, "y": y, "dx": x.grad, "dw": wt.grad}.items():
            out[f"{name}/{key}"] = v.detach().float().numpy()
        print(f"{name}: y {tuple(y.shape)}")
    write_safetensors(os.path.join(OUT, "conv_grads.safetensors"), out)


if __name__ == "__main__":
    main()
