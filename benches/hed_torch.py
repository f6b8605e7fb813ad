#!/usr/bin/env python3
"""HED forward throughput at 320x480 (height x width), batch 1: nightvision (burn, criterion bench
`hed-edges/benches/hed.rs`) against the same network in Debian's PyTorch (oneDNN), 2 threads.

    cargo bench -p hed-edges --bench hed            # ours first (writes target/criterion/hed/...)
    /usr/bin/python3 benches/hed_torch.py           # from the workspace root

The PyTorch network is sniklaus/pytorch-hed run.py (preprocessing, five VGG16 blocks, score
convolutions, bilinear upsampling, fusion + sigmoid), with the real BSDS500 weights when the
real-data cache is present (speed does not depend on the values). Prints a Markdown table with
images/s, GFLOP/s and ours/torch; reads our number from criterion's estimates.json (mean).
"""
import json, os, sys, time

import torch
import torch.nn.functional as F

torch.set_num_threads(2)
torch.manual_seed(0)
H, W = 320, 480
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRITERION = os.path.join(ROOT, "target", "criterion", "hed", "forward_b1_320x480", "new", "estimates.json")
REAL = os.environ.get("NIGHTVISION_DATA", os.path.expanduser("~/.cache/nightvision/real"))
MEAN_BGR = [104.00698793, 116.66876762, 122.67891434]


class Network(torch.nn.Module):
    def __init__(self):
        super().__init__()
        C = lambda i, o: torch.nn.Conv2d(i, o, 3, 1, 1)
        R = lambda: torch.nn.ReLU(inplace=False)
        P = lambda: torch.nn.MaxPool2d(2, 2)
        self.netVggOne = torch.nn.Sequential(C(3, 64), R(), C(64, 64), R())
        self.netVggTwo = torch.nn.Sequential(P(), C(64, 128), R(), C(128, 128), R())
        self.netVggThr = torch.nn.Sequential(P(), C(128, 256), R(), C(256, 256), R(), C(256, 256), R())
        self.netVggFou = torch.nn.Sequential(P(), C(256, 512), R(), C(512, 512), R(), C(512, 512), R())
        self.netVggFiv = torch.nn.Sequential(P(), C(512, 512), R(), C(512, 512), R(), C(512, 512), R())
        S = lambda i: torch.nn.Conv2d(i, 1, 1, 1, 0)
        self.netScoreOne, self.netScoreTwo, self.netScoreThr = S(64), S(128), S(256)
        self.netScoreFou, self.netScoreFiv = S(512), S(512)
        self.netCombine = torch.nn.Sequential(torch.nn.Conv2d(5, 1, 1, 1, 0), torch.nn.Sigmoid())

    def forward(self, rgb):
        x = rgb[:, [2, 1, 0]] * 255.0 - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
        v1 = self.netVggOne(x)
        v2 = self.netVggTwo(v1)
        v3 = self.netVggThr(v2)
        v4 = self.netVggFou(v3)
        v5 = self.netVggFiv(v4)
        size = (x.shape[2], x.shape[3])
        s = [F.interpolate(m(v), size=size, mode="bilinear", align_corners=False) for m, v in [
            (self.netScoreOne, v1), (self.netScoreTwo, v2), (self.netScoreThr, v3),
            (self.netScoreFou, v4), (self.netScoreFiv, v5)]]
        return self.netCombine(torch.cat(s, 1))


def load_real(net):
    path = os.path.join(REAL, "weights", "hed_bsds500.safetensors")
    if not os.path.exists(path):
        return "random"
    import numpy as np, struct
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    sd = {}
    for k, v in header.items():
        if k != "__metadata__":
            a, b = v["data_offsets"]
            sd[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy())
    net.load_state_dict(sd, strict=True)
    return "real BSDS500"


def gflop():
    """Multiply-accumulates of the 13 3x3 convolutions and the 1x1 scores, x2 (FLOP)."""
    macs, h, w, cin = 0, H, W, 3
    for b, (n, c) in enumerate([(2, 64), (2, 128), (3, 256), (3, 512), (3, 512)]):
        if b:
            h, w = h // 2, w // 2
        for _ in range(n):
            macs += h * w * cin * c * 9
            cin = c
        macs += h * w * c
    return 2 * macs / 1e9


def main():
    net = Network().eval()
    weights = load_real(net)
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        net(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < 5.0 or n < 3:
            net(x)
            n += 1
        dt = (time.perf_counter() - t0) / n
    torch_rate = 1 / dt
    ours = None
    if os.path.exists(CRITERION):
        with open(CRITERION) as f:
            ours = 1e9 / json.load(f)["mean"]["point_estimate"]
    g = gflop()
    print(f"HED forward, batch 1, {H}x{W}, {weights} weights, {g:.1f} GFLOP/image, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads)\n")
    print("| implementation | images/s | GFLOP/s |")
    print("|---|---|---|")
    if ours is not None:
        print(f"| nightvision (burn flex) | {ours:.3f} | {ours * g:.1f} |")
    print(f"| PyTorch (oneDNN) | {torch_rate:.3f} | {torch_rate * g:.1f} |")
    if ours is not None:
        print(f"\nours / torch = {ours / torch_rate:.2f}")
    else:
        print(f"\n(no criterion result at {CRITERION}: run `cargo bench -p hed-edges --bench hed` first)",
              file=sys.stderr)


if __name__ == "__main__":
    main()
