#!/usr/bin/env python3
"""Writes the backbone parity fixtures: torchvision's own models (reduced widths where the
architecture allows, so the files stay small), seeded random weights with non-trivial BatchNorm
statistics, a seeded input, and torchvision's forward outputs.

Run with Debian's PyTorch:  /usr/bin/python3 crates/backbones/scripts/gen_fixtures.py
Outputs in crates/backbones/tests/fixtures/:
  <name>.pth                 the state_dict (torch.save, zip format) -> exercises the .pth reader
  <name>_io.safetensors      input `x` [2,3,H,W], `features` (last conv map) and `logits` (if any)
Re-running gives identical files (fixed seeds, deterministic CPU kernels).
"""
import json, os, struct, sys

import numpy as np
import torch
import torch.nn as nn
import torchvision
from torchvision.models import mobilenet_v2
from torchvision.models.resnet import ResNet, BasicBlock, Bottleneck
from torchvision.models.vgg import VGG, make_layers
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import randomise, read_safetensors, shrink_resnet, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
torch.use_deterministic_algorithms(True)


def save(name, model, size, features_fn, logits_fn, seed):
    g = torch.Generator().manual_seed(seed + 1000)
    x = torch.randn((2, 3) + size, generator=g)
    with torch.no_grad():
        feats = features_fn(model, x)
        io = {"x": x.numpy(), "features": feats.numpy()}
        if logits_fn is not None:
            io["logits"] = logits_fn(model, x).numpy()
    torch.save(model.state_dict(), os.path.join(OUT, f"{name}.pth"))
    write_safetensors(os.path.join(OUT, f"{name}_io.safetensors"), io)
    print(f"{name}: features {tuple(feats.shape)} |max| {feats.abs().max():.3f}")


def resnet_features(m, x):
    x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
    return m.layer4(m.layer3(m.layer2(m.layer1(x))))


DIV = 16  # ResNet widths 64..2048 -> 4..128
for name, block, layers, seed in [("resnet18", BasicBlock, [2, 2, 2, 2], 1),
                                  ("resnet50", Bottleneck, [3, 4, 6, 3], 2),
                                  ("resnet101", Bottleneck, [3, 4, 23, 3], 3)]:
    m = randomise(shrink_resnet(ResNet(block, layers, num_classes=10), DIV), seed)
    save(name, m, (67, 75), resnet_features, lambda m, x: m(x), seed)

# MobileNetV2 at width 0.25 (torchvision's own width_mult), 10 classes.
m = randomise(mobilenet_v2(width_mult=0.25, num_classes=10), 4)
save("mobilenet_v2", m, (70, 61), lambda m, x: m.features(x), lambda m, x: m(x), 4)

# VGG16 ("D") with every width divided by 8, through torchvision's own make_layers; cirtorch
# uses features[:-1] (drops the last max-pool).
cfg = [8, 8, "M", 16, 16, "M", 32, 32, 32, "M", 64, 64, 64, "M", 64, 64, 64, "M"]
# The classifier keeps torchvision's structure (Linear-ReLU-Dropout ×2, Linear) at hidden width 32.
m = VGG(make_layers(cfg), num_classes=10, init_weights=False)
m.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
                             nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))
m = randomise(m, 5)
save("vgg16", m, (50, 66), lambda m, x: m.features[:-1](x), lambda m, x: m(x), 5)

with open(os.path.join(OUT, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}, f)
