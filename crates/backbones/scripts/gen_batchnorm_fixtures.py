#!/usr/bin/env python3
"""Writes the frozen-BatchNorm fixture for `nightvision_core::kernels::batch_norm` (tested in
crates/backbones/tests/kernels.rs): for each activation (identity, ReLU, ReLU6), a seeded input
`x`, running `mean` and `var`, `gamma`, `beta`, upstream gradient `up`, and PyTorch's
`y = act(batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5))` with `dx`, `dgamma`,
`dbeta` of `sum(y * up)`. Computed in float64 and stored as float32.

Run with Debian's PyTorch:  /usr/bin/python3 crates/backbones/scripts/gen_batchnorm_fixtures.py
Output: crates/backbones/tests/fixtures/frozen_bn.safetensors (keys `<case>/<name>`).
"""
import os, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
ACTS = {"identity": lambda y: y, "relu": F.relu, "relu6": F.relu6}
# (batch, channels, h, w): a spatial size over several parallel tasks, and 1×1 maps.
SHAPES = {"identity": (2, 6, 37, 41), "relu": (3, 5, 9, 11), "relu6": (4, 7, 1, 1)}


def main():
    out = {}
    for i, (name, act) in enumerate(ACTS.items()):
        gen = torch.Generator().manual_seed(200 + i)
        n, c, h, w = SHAPES[name]
        f64 = torch.float64
        x = torch.randn(n, c, h, w, generator=gen, dtype=f64) * 3.0
        mean = torch.rand(c, generator=gen, dtype=f64) * 2 - 1
        var = torch.rand(c, generator=gen, dtype=f64) * 2.8 + 0.2
        gamma = torch.rand(c, generator=gen, dtype=f64) * 4 - 2
        beta = torch.rand(c, generator=gen, dtype=f64) * 2 - 1
        for t in (x, gamma, beta):
            t.requires_grad_(True)
        y = act(F.batch_norm(x, mean, var, gamma, beta, training=False, eps=1e-5))
        up = torch.randn(y.shape, generator=gen, dtype=f64)
        (y * up).sum().backward()
        arrays = {"x": x, "mean": mean, "var": var, "gamma": gamma, "beta": beta, "up": up, "y": y,
                  "dx": x.grad, "dgamma": gamma.grad, "dbeta": beta.grad}
        for key, v in arrays.items():
            out[f"{name}/{key}"] = v.detach().float().numpy()
        print(f"{name}: y {tuple(y.shape)}")
    write_safetensors(os.path.join(OUT, "frozen_bn.safetensors"), out)


if __name__ == "__main__":
    main()
