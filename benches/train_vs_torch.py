#!/usr/bin/env python3
"""Training-step speed: nightvision (burn flex, the criterion bench `metric-learning/training`)
vs the same computation in Debian's PyTorch (oneDNN), 2 threads, in one run (issue 16).

    /usr/bin/python3 benches/train_vs_torch.py [--skip-ours]     # from the workspace root

Rows (the shapes of `crates/metric-learning/benches/training.rs`):
- train_step/<net>: one cirtorch tuple (query, positive, 5 negatives) of 272x362 images forwarded
  as a batch of 7 with BatchNorm frozen, GeM, contrastive loss (margin 0.7), backward, Adam step;
- extract/<net>/single_scale: one 272x362 image, no gradient.

Prints a Markdown table: seconds per item for both, ours/torch speed ratio, and our achieved
GFLOP/s (forward MACs x 2, x 3 for a training step: forward + input and weight gradients).
"""
import os, sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import criterion_seconds, timed  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
H, W = 272, 362
# Multiply-accumulates per image at 224x224 (torchvision's documented "GFLOPS", which are MACs).
GMACS_224 = {"mobilenet_v2_gem": 0.301, "resnet50_gem": 4.089}


class Gem(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.ones(1) * 3)

    def forward(self, x):
        x = x.clamp(min=1e-6).pow(self.p)
        return torch.nn.functional.avg_pool2d(x, (x.size(-2), x.size(-1))).pow(1.0 / self.p)


def net(name):
    if name == "mobilenet_v2_gem":
        trunk = torchvision.models.mobilenet_v2().features
    else:
        trunk = torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2])
    return torch.nn.Sequential(trunk, Gem(), torch.nn.Flatten())


def contrastive(d, label, margin=0.7):
    # cirtorch: the query against every other row; label 1 = positive, 0 = negative
    d = torch.nn.functional.normalize(d, dim=1)
    q, rest = d[0:1], d[1:]
    dist = (q - rest).pow(2).sum(1).add(1e-6).sqrt()
    y = label[1:]
    return (0.5 * y * dist.pow(2) + 0.5 * (1 - y) * (margin - dist).clamp(min=0).pow(2)).sum()


def torch_times():
    out = {}
    label = torch.tensor([-1, 1, 0, 0, 0, 0, 0], dtype=torch.float32)
    for name in GMACS_224:
        m = net(name)
        m.train()
        for mod in m.modules():  # cirtorch's frozen BatchNorm
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.eval()
        opt = torch.optim.Adam(m.parameters(), lr=1e-6)
        x = torch.randn(7, 3, H, W)

        def step():
            opt.zero_grad()
            contrastive(m(x), label).backward()
            opt.step()

        out[f"train_step/{name}"] = timed(step)
        m.eval()
        x1 = torch.randn(1, 3, H, W)
        with torch.no_grad():
            out[f"extract/{name}/single_scale"] = timed(lambda: m(x1), min_s=3.0)
    return out


def our_times():
    return criterion_seconds("metric-learning", "training", "train_step|single_scale")


def gflop(row):
    name = row.split("/")[1]
    per_image = 2 * GMACS_224[name] * H * W / (224 * 224)
    return 7 * 3 * per_image if row.startswith("train_step") else per_image


def main():
    theirs = torch_times()
    ours = {} if "--skip-ours" in sys.argv else our_times()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| row | nightvision (s) | PyTorch (s) | speed ours/torch | ours GFLOP/s | torch GFLOP/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for row, t in theirs.items():
        o = ours.get(row)
        g = gflop(row)
        if o is None:
            print(f"| {row} | – | {t:.3f} | – | – | {g / t:.1f} |")
        else:
            print(f"| {row} | {o:.3f} | {t:.3f} | {t / o:.2f}x | {g / o:.1f} | {g / t:.1f} |")


if __name__ == "__main__":
    main()
