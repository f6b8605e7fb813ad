#!/usr/bin/env python3
"""Backbone forward throughput: nightvision (burn flex, criterion bench) vs torchvision on Debian's
PyTorch (oneDNN), same models, same inputs shapes, 2 threads, in one run; plus the practical
compute limits (burn's and numpy/OpenBLAS's f32 matmul).

    /usr/bin/python3 benches/backbones_vs_torch.py        # from the workspace root

Prints a Markdown table: images/s for both, achieved GFLOP/s, and ours/torch.
"""
import os, re, subprocess, sys, time

import numpy as np
import torch
import torchvision

torch.set_num_threads(2)
torch.manual_seed(0)
# Multiply-accumulates per image at 224x224 (torchvision's documented "GFLOPS", which are MACs).
GMACS_224 = {"mobilenet_v2": 0.301, "resnet50": 4.089}
SIZES = [(1, 224, 224), (8, 224, 224), (1, 480, 640), (8, 480, 640)]


def gflops(name, h, w):
    return 2 * GMACS_224[name] * (h * w) / (224 * 224)


def torch_rates():
    rates = {}
    models = {"mobilenet_v2": torchvision.models.mobilenet_v2(), "resnet50": torchvision.models.resnet50()}
    for name, m in models.items():
        feats = m.features if name == "mobilenet_v2" else torch.nn.Sequential(*list(m.children())[:-2])
        feats.eval()
        for b, h, w in SIZES:
            x = torch.randn(b, 3, h, w)
            with torch.no_grad():
                feats(x)
                n, t0 = 0, time.perf_counter()
                while time.perf_counter() - t0 < 3.0 or n < 3:
                    feats(x)
                    n += 1
                dt = (time.perf_counter() - t0) / n
            rates[(name, b, h, w)] = b / dt
    return rates


def ours():
    env = dict(os.environ)
    out = subprocess.run(
        ["cargo", "bench", "-p", "backbones", "--bench", "forward", "--profile", "dev", "--",
         "--output-format", "bencher"],
        capture_output=True, text=True, env=env, check=True).stdout
    rates, matmul = {}, None
    for line in out.splitlines():
        m = re.match(r"test backbones/(\w+)/(\S+)\s+\.\.\. bench:\s+([\d,]+) ns/iter", line)
        if not m:
            continue
        name, param, ns = m.group(1), m.group(2), float(m.group(3).replace(",", ""))
        if name == "matmul":
            matmul = 2 * 1024 ** 3 / ns  # GFLOP/s (FLOP per ns)
            continue
        b, h, w = map(int, re.match(r"b(\d+)_(\d+)x(\d+)", param).groups())
        rates[(name, b, h, w)] = b / (ns * 1e-9)
    return rates, matmul


def numpy_sgemm():
    a = np.random.rand(1024, 1024).astype(np.float32)
    b = np.random.rand(1024, 1024).astype(np.float32)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < 2.0:
        a @ b
        n += 1
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t0) / 1e9


def main():
    r_ours, burn_mm = ours()
    r_torch = torch_rates()
    np_mm = numpy_sgemm()
    print(f"f32 matmul 1024^3: burn flex {burn_mm:.0f} GFLOP/s, numpy/OpenBLAS {np_mm:.0f} GFLOP/s\n")
    print("| model | batch | size | ours img/s | ours GFLOP/s | torch img/s | torch GFLOP/s | ours/torch |")
    print("|---|---|---|---|---|---|---|---|")
    for name in GMACS_224:
        for b, h, w in SIZES:
            o, t = r_ours.get((name, b, h, w)), r_torch[(name, b, h, w)]
            g = gflops(name, h, w)
            o_s = f"{o:.2f} | {o * g:.1f}" if o else "n/a | n/a"
            ratio = f"{o / t:.2f}" if o else "n/a"
            print(f"| {name} | {b} | {h}x{w} | {o_s} | {t:.2f} | {t * g:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
