#!/usr/bin/env python3
"""Per-layer convolution speed: burn's `Conv2d`, nightvision's `kernels::conv2d` (the criterion
bench `backbones/conv_layers`) and PyTorch (Debian's, oneDNN), 2 threads, in one run (issue 16).

    /usr/bin/python3 benches/conv_vs_torch.py [--skip-ours]     # from the workspace root

For each layer of LAYERS (the shapes of a cirtorch tuple: 7 images of 272x362), two modes:
- forward: `conv2d(x, w)` without gradients;
- train: forward, then the input and weight gradients of `sum(y * up)`.
Prints a Markdown table of milliseconds, the speed of ours relative to burn's and to PyTorch's,
and our GFLOP/s (MACs x 2, x 3 for the training pass).
"""
import os, sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import criterion_seconds, timed  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)

# name: (batch, in, out, kernel, stride, padding, groups, h, w), as in conv_layers.rs
LAYERS = {
    "resnet50_stem_7x7_s2": (7, 3, 64, 7, 2, 3, 1, 272, 362),
    "resnet50_1x1_256to64": (7, 256, 64, 1, 1, 0, 1, 68, 91),
    "resnet50_3x3_64": (7, 64, 64, 3, 1, 1, 1, 68, 91),
    "resnet50_3x3_512": (7, 512, 512, 3, 1, 1, 1, 9, 12),
    "mobilenet_v2_dw_3x3_144": (7, 144, 144, 3, 1, 1, 144, 68, 91),
    "mobilenet_v2_dw_3x3_144_s2": (7, 144, 144, 3, 2, 1, 144, 68, 91),
}


def out_hw(h, k, s, p):
    return (h + 2 * p - k) // s + 1


def gflop(layer, mode):
    n, cin, cout, k, s, p, g, h, w = LAYERS[layer]
    macs = n * cout * (cin // g) * k * k * out_hw(h, k, s, p) * out_hw(w, k, s, p)
    return 2e-9 * macs * (3 if mode == "train" else 1)


def torch_times():
    out = {}
    for name, (n, cin, cout, k, s, p, g, h, w) in LAYERS.items():
        x = torch.randn(n, cin, h, w)
        wt = torch.randn(cout, cin // g, k, k) * 0.1
        with torch.no_grad():
            out[(name, "forward")] = timed(lambda: F.conv2d(x, wt, None, s, p, 1, g), min_s=2.0, min_n=5)
        up = torch.randn(n, cout, out_hw(h, k, s, p), out_hw(w, k, s, p))
        xg, wg = x.clone().requires_grad_(True), wt.clone().requires_grad_(True)

        def train():
            xg.grad, wg.grad = None, None
            (F.conv2d(xg, wg, None, s, p, 1, g) * up).sum().backward()

        out[(name, "train")] = timed(train, min_s=2.0, min_n=5)
    return out


def our_times():
    out = {}
    for key, t in criterion_seconds("backbones", "conv_layers").items():
        _, layer, who, mode = key.split("/")
        out[(layer, who, mode)] = t
    return out


def main():
    theirs = torch_times()
    ours = {} if "--skip-ours" in sys.argv else our_times()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| layer | mode | burn Conv2d (ms) | ours (ms) | PyTorch (ms) | ours/burn speed | ours/torch speed | ours GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (layer, mode), t in theirs.items():
        b, o = ours.get((layer, "burn", mode)), ours.get((layer, "ours", mode))
        if b is None or o is None:
            print(f"| {layer} | {mode} | – | – | {t * 1e3:.1f} | – | – | – |")
            continue
        print(f"| {layer} | {mode} | {b * 1e3:.1f} | {o * 1e3:.1f} | {t * 1e3:.1f} | "
              f"{b / o:.2f}x | {t / o:.2f}x | {gflop(layer, mode) / o:.1f} |")


if __name__ == "__main__":
    main()
