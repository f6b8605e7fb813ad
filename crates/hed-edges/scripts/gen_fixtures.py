#!/usr/bin/env python3
"""Writes the hed-edges parity fixtures with Debian's PyTorch, independently of the Rust code.

    /usr/bin/python3 crates/hed-edges/scripts/gen_fixtures.py     # from the workspace root

The network is sniklaus/pytorch-hed `run.py` (current module names `netVggOne` ... `netCombine`):
five VGG16 blocks (MaxPool2d(2, 2), floor mode, between them), 1x1 score convolutions, bilinear
upsampling (align_corners=False) to the input size, a 1x1 fusion. Its forward takes BGR in [0, 1];
the fixtures store RGB in [0, 1] and flip it here, as the Rust `Hed` does with
`Normalization::CaffeBgr`.

Outputs in crates/hed-edges/tests/fixtures/ (all float32, small):
  hed_random.pth          the port's state_dict at widths 4, 8, 16, 32, 32 with seeded weights
                          (torch.save, zip format -> exercises the .pth reader and the key remaps)
  hed_io.safetensors      `x` [2, 3, 61, 83]: crops of pairs/tokyo_db_day.png and photos/brick.png;
                          `random.side{1..5}`, `random.fused`: logits of the random network;
                          `real.side{1..5}`, `real.fused`: logits with the real BSDS500 weights
                          (weights/hed_bsds500.safetensors of the real-data cache, read here with a
                          ten-line numpy safetensors reader);
                          `real.{tokyo,brick}_ratio`: the edge/gradient property at half size
                          (320x240, 256x256), which tests/real.rs recomputes
  upsample.safetensors    F.interpolate(bilinear, align_corners=False) on odd sizes
  losses.safetensors      class-balanced BCE (Caffe formula), the HED total loss, the HED^N losses,
                          values and autograd gradients
  optim.safetensors       two Adam steps with gandtr's Caffe parameter groups on the random network
                          (parameter deltas of one layer per group)
Re-running gives identical files (fixed seeds, deterministic CPU kernels).
"""
import json, os, struct, sys

import cv2
import numpy as np
import torch
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import read_safetensors, write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
REAL = os.environ.get("NIGHTVISION_DATA", os.path.expanduser("~/.cache/nightvision/real"))
MEAN_BGR = [104.00698793, 116.66876762, 122.67891434]  # run.py
NAMES = ["One", "Two", "Thr", "Fou", "Fiv"]


class Network(torch.nn.Module):
    """sniklaus/pytorch-hed run.py, widths configurable; returns the five upsampled side logits and
    the fused logits (the port's netCombine is Conv + Sigmoid: the sigmoid is applied by callers)."""

    def __init__(self, w=(64, 128, 256, 512, 512)):
        super().__init__()
        C = lambda i, o: torch.nn.Conv2d(in_channels=i, out_channels=o, kernel_size=3, stride=1, padding=1)
        R = lambda: torch.nn.ReLU(inplace=False)
        P = lambda: torch.nn.MaxPool2d(kernel_size=2, stride=2)
        self.netVggOne = torch.nn.Sequential(C(3, w[0]), R(), C(w[0], w[0]), R())
        self.netVggTwo = torch.nn.Sequential(P(), C(w[0], w[1]), R(), C(w[1], w[1]), R())
        self.netVggThr = torch.nn.Sequential(P(), C(w[1], w[2]), R(), C(w[2], w[2]), R(), C(w[2], w[2]), R())
        self.netVggFou = torch.nn.Sequential(P(), C(w[2], w[3]), R(), C(w[3], w[3]), R(), C(w[3], w[3]), R())
        self.netVggFiv = torch.nn.Sequential(P(), C(w[3], w[4]), R(), C(w[4], w[4]), R(), C(w[4], w[4]), R())
        S = lambda i: torch.nn.Conv2d(in_channels=i, out_channels=1, kernel_size=1, stride=1, padding=0)
        self.netScoreOne, self.netScoreTwo, self.netScoreThr = S(w[0]), S(w[1]), S(w[2])
        self.netScoreFou, self.netScoreFiv = S(w[3]), S(w[4])
        self.netCombine = torch.nn.Sequential(
            torch.nn.Conv2d(in_channels=5, out_channels=1, kernel_size=1, stride=1, padding=0),
            torch.nn.Sigmoid())

    def forward(self, tenInput):  # BGR in [0, 1], as run.py
        tenInput = tenInput * 255.0
        tenInput = tenInput - torch.tensor(MEAN_BGR, dtype=tenInput.dtype).view(1, 3, 1, 1)
        v1 = self.netVggOne(tenInput)
        v2 = self.netVggTwo(v1)
        v3 = self.netVggThr(v2)
        v4 = self.netVggFou(v3)
        v5 = self.netVggFiv(v4)
        size = (tenInput.shape[2], tenInput.shape[3])
        sides = [F.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in [
            self.netScoreOne(v1), self.netScoreTwo(v2), self.netScoreThr(v3), self.netScoreFou(v4),
            self.netScoreFiv(v5)]]
        fused = self.netCombine[0](torch.cat(sides, 1))
        return sides, fused


def randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
    return net.eval()


def rgb01(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read {path}: fill the real-data cache {REAL} with scripts/fetch-real-data.sh "
                 "(or set NIGHTVISION_DATA to a filled copy)")
    return bgr[:, :, ::-1].astype(np.float32) / 255.0


def run(net, x_rgb):
    with torch.no_grad():
        sides, fused = net(torch.from_numpy(x_rgb[:, ::-1].copy()))
    return [s.numpy() for s in sides], fused.numpy()


# ---- network parity: random weights (committed; CI) and the real BSDS500 weights ----
tokyo = rgb01(os.path.join(REAL, "pairs/tokyo_db_day.png"))
brick = rgb01(os.path.join(REAL, "photos/brick.png"))
H, W = 61, 83
crops = [tokyo[200:200 + H, 300:300 + W], brick[150:150 + H, 210:210 + W]]
x = np.stack([c.transpose(2, 0, 1) for c in crops]).astype(np.float32)  # [2, 3, 61, 83] RGB
io = {"x": x}

WIDTHS = (4, 8, 16, 32, 32)
rnd = randomise(Network(WIDTHS), 7)
torch.save(rnd.state_dict(), os.path.join(OUT, "hed_random.pth"))
sides, fused = run(rnd, x)
for i, s in enumerate(sides):
    io[f"random.side{i + 1}"] = s
io["random.fused"] = fused

real = Network()
sd = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(REAL, "weights/hed_bsds500.safetensors")).items()}
real.load_state_dict(sd, strict=True)
real.eval()
sides, fused = run(real, x)
for i, s in enumerate(sides):
    io[f"real.side{i + 1}"] = s
io["real.fused"] = fused


def gradient_ratio(rgb, edges):
    """Mean edge response on the top-10 % gradient pixels over that on the bottom 50 % (the Rust
    property test computes the same on its own forward)."""
    gray = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    gy, gx = np.zeros_like(gray), np.zeros_like(gray)
    gy[1:-1] = (gray[2:] - gray[:-2]) / 2
    gx[:, 1:-1] = (gray[:, 2:] - gray[:, :-2]) / 2
    mag = np.hypot(gx, gy).ravel()
    order = np.argsort(mag, kind="stable")
    e = edges.ravel()[order]
    n = e.size
    return e[n - n // 10:].mean() / e[: n // 2].mean()


for name, img in [("tokyo", tokyo), ("brick", brick)]:
    small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2), interpolation=cv2.INTER_AREA)
    _, f = run(real, small.transpose(2, 0, 1)[None].copy())
    ratio = gradient_ratio(small, 1 / (1 + np.exp(-f[0, 0])))
    print(f"real weights, {name} at {small.shape[1]}x{small.shape[0]}: edge response "
          f"top-10% / bottom-50% gradient = {ratio:.3f}")
    io[f"real.{name}_ratio"] = np.array([ratio], dtype=np.float32)
write_safetensors(os.path.join(OUT, "hed_io.safetensors"), io)
print("hed_io: |random.fused| max %.3f, |real.fused| max %.3f" % (
    np.abs(io["random.fused"]).max(), np.abs(io["real.fused"]).max()))

# ---- bilinear upsampling, align_corners=False, odd and non-integer ratios ----
g = torch.Generator().manual_seed(11)
up = {}
for name, (shape, size) in {"a": ((1, 2, 3, 5), (61, 83)), "b": ((2, 1, 7, 10), (61, 83)),
                            "c": ((1, 1, 1, 1), (17, 16)), "d": ((1, 1, 2, 3), (16, 17)),
                            "e": ((1, 1, 9, 13), (4, 5))}.items():
    t = torch.randn(shape, generator=g)
    up[f"{name}.in"] = t.numpy()
    up[f"{name}.out"] = F.interpolate(t, size=size, mode="bilinear", align_corners=False).numpy()
write_safetensors(os.path.join(OUT, "upsample.safetensors"), up)


# ---- losses ----
def balanced_bce(logits, labels):
    """HED's class-balanced sigmoid cross-entropy (s9xie/hed sigmoid_cross_entropy_loss_layer.cpp):
    per image, positives (label 1) weighted by |Y-|/(|Y+|+|Y-|), negatives (label 0) by
    |Y+|/(|Y+|+|Y-|), other labels ignored; summed over pixels, averaged over images."""
    pos = (labels == 1).to(logits.dtype)
    neg = (labels == 0).to(logits.dtype)
    n_pos = pos.sum(dim=(1, 2, 3), keepdim=True)
    n_neg = neg.sum(dim=(1, 2, 3), keepdim=True)
    total = (n_pos + n_neg).clamp(min=1)
    loss_pos = -F.logsigmoid(logits) * pos * (n_neg / total)
    loss_neg = -F.logsigmoid(-logits) * neg * (n_pos / total)
    return (loss_pos + loss_neg).sum() / logits.shape[0]


g = torch.Generator().manual_seed(21)
shape = (2, 1, 9, 11)
L = {}
logits = (torch.randn(shape, generator=g) * 3).requires_grad_()
u = torch.rand(shape, generator=g)
labels = (u < 0.25).float()
labels[0][(u[0] > 0.25) & (u[0] < 0.35)] = 0.5  # ignored in image 0
loss = balanced_bce(logits, labels)
loss.backward()
L.update({"bce.logits": logits.detach().numpy(), "bce.labels": labels.numpy(),
          "bce.loss": loss.detach().numpy().reshape(1), "bce.grad": logits.grad.numpy()})

maps = [(torch.randn(shape, generator=g) * 2).requires_grad_() for _ in range(6)]
labels = (torch.rand(shape, generator=g) < 0.15).float()
loss = sum(balanced_bce(m, labels) for m in maps)  # sum of the five sides and the fusion
loss.backward()
L["hed.labels"] = labels.numpy()
L["hed.loss"] = loss.detach().numpy().reshape(1)
for i, m in enumerate(maps):
    key = f"side{i + 1}" if i < 5 else "fused"
    L[f"hed.{key}"] = m.detach().numpy()
    L[f"hed.grad.{key}"] = m.grad.numpy()

# HED^N (gandtr SupervisedHedNGanEpoch, docs/PAPERS.md A.4): detector step on logits,
# L_E = 1 * L1(H_s(real_X), H_t(real_X)) + 1 * L1(H_s(fake_Y.detach()), H_t(real_X));
# generator edge term 5 * L1(sigmoid(H_s(fake_Y)), sigmoid(H_t(real_X))).
s_day, s_night, s_fake = [(torch.randn(shape, generator=g) * 2).requires_grad_() for _ in range(3)]
t_day = torch.randn(shape, generator=g) * 2
student = 1.0 * F.l1_loss(s_day, t_day) + 1.0 * F.l1_loss(s_night, t_day)
student.backward()
edge = 5.0 * F.l1_loss(torch.sigmoid(s_fake), torch.sigmoid(t_day))
edge.backward()
L.update({"hedn.s_day": s_day.detach().numpy(), "hedn.s_night": s_night.detach().numpy(),
          "hedn.s_fake": s_fake.detach().numpy(), "hedn.t_day": t_day.numpy(),
          "hedn.student_loss": student.detach().numpy().reshape(1),
          "hedn.grad_s_day": s_day.grad.numpy(), "hedn.grad_s_night": s_night.grad.numpy(),
          "hedn.edge_loss": edge.detach().numpy().reshape(1), "hedn.grad_s_fake": s_fake.grad.numpy()})
write_safetensors(os.path.join(OUT, "losses.safetensors"), L)
print("losses: bce %.5f, hed %.5f, student %.5f, edge %.5f" % (
    L["bce.loss"][0], L["hed.loss"][0], L["hedn.student_loss"][0], L["hedn.edge_loss"][0]))

# ---- optimiser: gandtr HedInterpolation.parameter_groups (docs/PAPERS.md A.3) on the port's names ----
LR_MULT = {"conv.weight": 1, "conv.bias": 2, "conv5.weight": 100, "conv5.bias": 200,
           "score.weight": 0.01, "score.bias": 0.02, "fusion.weight": 0.001, "fusion.bias": 0.002}
DECAY_MULT = {"conv.weight": 1, "conv.bias": 0, "conv5.weight": 1, "conv5.bias": 0,
              "score.weight": 1, "score.bias": 0, "fusion.weight": 1, "fusion.bias": 0}


def group_of(name):
    parts = name.split(".")
    if parts[0] in {"netVggOne", "netVggTwo", "netVggThr", "netVggFou"}:
        return "conv.%s" % parts[2]
    if parts[0] == "netVggFiv":
        return "conv5.%s" % parts[2]
    if parts[0].startswith("netScore"):
        return "score.%s" % parts[1]
    if parts[0] == "netCombine":
        return "fusion.%s" % parts[2]
    raise KeyError(name)


BASE_LR, WD, STEPS = 1e-3, 2e-4, 2
net = Network(WIDTHS).double()
net.load_state_dict(torch.load(os.path.join(OUT, "hed_random.pth")))
before = {k: v.detach().clone() for k, v in net.named_parameters()}
groups = {}
for name, p in net.named_parameters():
    groups.setdefault(group_of(name), []).append(p)
opt = torch.optim.Adam([{"params": ps, "lr": LR_MULT[k] * BASE_LR, "weight_decay": DECAY_MULT[k] * WD}
                        for k, ps in groups.items()], lr=BASE_LR, betas=(0.9, 0.999), eps=1e-8)
g = torch.Generator().manual_seed(31)
ox = torch.rand((1, 3, 24, 20), generator=g, dtype=torch.float64)
olabels = (torch.rand((1, 1, 24, 20), generator=g) < 0.2).double()
for _ in range(STEPS):
    opt.zero_grad()
    sides, fused = net(ox[:, [2, 1, 0]])
    loss = sum(balanced_bce(m, olabels) for m in sides + [fused])
    loss.backward()
    opt.step()
O = {"x": ox.numpy(), "labels": olabels.numpy()}
for name in ["netVggOne.0", "netVggThr.3", "netVggFiv.5", "netScoreTwo", "netCombine.0"]:
    for kind in ["weight", "bias"]:
        k = f"{name}.{kind}"
        O[f"delta.{k}"] = (dict(net.named_parameters())[k] - before[k]).detach().numpy()
write_safetensors(os.path.join(OUT, "optim.safetensors"), O)
print("optim: |delta| max per layer:", {k: float(np.abs(v).max()) for k, v in O.items() if k.startswith("delta")})

with open(os.path.join(OUT, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "numpy": np.__version__, "opencv": cv2.__version__}, f)
