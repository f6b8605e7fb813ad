#!/usr/bin/python3
"""Writes the ColorJitter parity fixture of nightvision-core: tests/fixtures/jitter/jitter.safetensors.

    /usr/bin/python3 crates/nightvision-core/scripts/gen_jitter_fixtures.py

Reference = torchvision's tensor implementation (Debian's python3-torchvision 0.14:
`torchvision.transforms.functional.adjust_brightness / adjust_contrast / adjust_saturation /
adjust_hue`, the functions `ColorJitter.forward` calls in the order of its `fn_idx`), on a seeded
float32 batch in [0, 1] that also holds gray pixels (max = min: the hue's special case), black,
white and saturated primaries. Each function is applied to the whole batch with one factor, and
a full jitter with a fixed order and fixed factors, as `ColorJitter.forward` would after
`get_params` drew them.
"""

import os
import sys

import torch
import torchvision.transforms.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))
from fixture_utils import write_safetensors  # noqa: E402

OUT = os.path.join(HERE, "..", "tests", "fixtures", "jitter")

torch.manual_seed(0)
x = torch.rand(2, 3, 6, 7)
x[0, :, 0, 0] = 0.5          # gray
x[0, :, 0, 1] = 0.0          # black
x[0, :, 0, 2] = 1.0          # white
x[0, :, 0, 3] = torch.tensor([1.0, 0.0, 0.0])
x[0, :, 0, 4] = torch.tensor([0.0, 1.0, 0.0])
x[0, :, 0, 5] = torch.tensor([0.0, 0.0, 1.0])
x[1, :, 1, 1] = torch.tensor([0.3, 0.3, 0.8])  # two equal channels
x[1, :, 1, 2] = torch.tensor([0.9, 0.2, 0.9])

out = {"input": x}
for f in (0.4, 1.7):
    out[f"brightness_{f}"] = F.adjust_brightness(x, f)
    out[f"contrast_{f}"] = F.adjust_contrast(x, f)
    out[f"saturation_{f}"] = F.adjust_saturation(x, f)
for h in (-0.45, -0.1, 0.25, 0.5):
    out[f"hue_{h}"] = F.adjust_hue(x, h)

# ColorJitter.forward with fn_idx = [3, 1, 0, 2] and factors b 1.2, c 0.7, s 1.5, h -0.2
y = F.adjust_hue(x, -0.2)
y = F.adjust_contrast(y, 0.7)
y = F.adjust_brightness(y, 1.2)
y = F.adjust_saturation(y, 1.5)
out["jitter_3102"] = y

os.makedirs(OUT, exist_ok=True)
write_safetensors(os.path.join(OUT, "jitter.safetensors"), {k: v.numpy() for k, v in out.items()})
print("wrote", len(out), "tensors to", OUT)
