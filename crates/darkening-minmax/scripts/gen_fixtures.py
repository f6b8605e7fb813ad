#!/usr/bin/env python3
"""Writes the darkening-minmax parity fixtures with Debian's PyTorch, independently of the Rust code.

    /usr/bin/python3 crates/darkening-minmax/scripts/gen_fixtures.py     # from the workspace root

Everything is re-implemented here from docs/PAPERS.md C.1-C.3 (the math of the reference code
Red-Fairy/ZeroShotDayNightDA: darkening/model.py, darkening/loss_func.py, classification/
utils/resnet_BYOL.py, classification/train.py, visual-place-recognition/.../train_night.py).

Outputs in crates/darkening-minmax/tests/fixtures/ (float32, small):
  darkening.pth           state_dict of the darkening network (64 channels, PyTorch default init,
                          e_conv7 scaled up so A and B span their ranges) with the buffers
                          down_scale, curve_round, encode_dim, as real checkpoints carry them
  darkening_c4_r6.pth     a 4-channel network saved with curve_round = 6 (buffer checks)
  darkening.safetensors   `x` [2,3,24,32], `exposure` [2,1,24,32], `out`, `alpha`, `beta`;
                          `c4_r6.x`, `c4_r6.out` for the 4-channel, 6-round network;
                          end-to-end: `e2e.*` feature extractor weights, total loss and its
                          gradient w.r.t. e_conv7.point_conv.weight and e_conv0.depth_conv.weight
  losses.safetensors      every D loss term (C.2) on seeded tensors, values and autograd gradients
  dark_view.safetensors   the exposure map of the dark view (C.3) from given noise tensors
  byol.safetensors        BYOL heads (state_dict keys), features, loss and gradients (C.3)
  versions.json           torch / numpy versions
Re-running gives identical files (fixed seeds, deterministic CPU kernels).
"""
import json, os, sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import write_safetensors  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(1)
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def npy(t):
    return t.detach().cpu().numpy().astype(np.float32)


# ---------------------------------------------------------------- C.1 darkening network
class CsdnTem(nn.Module):
    """Depthwise 3x3 (groups = in, padding 1, bias) then pointwise 1x1 (bias)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.depth_conv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
        self.point_conv = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        return self.point_conv(self.depth_conv(x))


class Darkening(nn.Module):
    """C.1: in = cat(I, E); eight CsdnTem blocks with the skip concatenations; A = tanh(x7[:3]),
    B = sigmoid(x7[3:])(1 - ds) + ds; x = I B; n times x = x + A (x^2 - x); out = x / B."""

    def __init__(self, f=64, rounds=8, ds=0.95):
        super().__init__()
        self.register_buffer("down_scale", torch.tensor(ds))
        self.register_buffer("curve_round", torch.tensor(rounds, dtype=torch.long))
        self.register_buffer("encode_dim", torch.tensor(1, dtype=torch.long))
        self.e_conv0 = CsdnTem(4, f)
        self.e_conv1 = CsdnTem(f, f)
        self.e_conv2 = CsdnTem(f, f)
        self.e_conv3 = CsdnTem(f, f)
        self.e_conv4 = CsdnTem(f, f)
        self.e_conv5 = CsdnTem(2 * f, f)
        self.e_conv6 = CsdnTem(2 * f, f)
        self.e_conv7 = CsdnTem(2 * f, 6)

    def forward(self, x, e):
        b, _, h, w = x.shape
        e = e.expand(b, 1, h, w)
        x0 = F.relu(self.e_conv0(torch.cat([x, e], 1)))
        x1 = F.relu(self.e_conv1(x0))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        x7 = self.e_conv7(torch.cat([x1, x6], 1))
        a = torch.tanh(x7[:, :3])
        ds = self.down_scale
        bb = torch.sigmoid(x7[:, 3:]) * (1 - ds) + ds
        y = x * bb
        for _ in range(int(self.curve_round)):
            y = y + a * (torch.pow(y, 2) - y)
        return y / bb, a, bb


def spread_head(net, seed):
    """Default init leaves A ~ 0 and B ~ 0.975; scale the last block so both span their ranges."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        pc = net.e_conv7.point_conv
        pc.weight.mul_(12.0)
        pc.bias.copy_(torch.randn(pc.bias.shape, generator=g) * 0.5)


torch.manual_seed(0)
net = Darkening()
spread_head(net, 1)
net.eval()
torch.save(net.state_dict(), os.path.join(OUT, "darkening.pth"))

g = torch.Generator().manual_seed(2)
x = torch.rand(2, 3, 24, 32, generator=g)
exp = (torch.tensor([0.1, 0.35]).view(2, 1, 1, 1)
       + 0.025 * torch.randn(2, 1, 24, 32, generator=g))
with torch.no_grad():
    out, a, bb = net(x, exp)
print(f"A range [{a.min():.3f}, {a.max():.3f}], B range [{bb.min():.4f}, {bb.max():.4f}], "
      f"out range [{out.min():.3f}, {out.max():.3f}]")
dk = {"x": npy(x), "exposure": npy(exp), "out": npy(out), "alpha": npy(a), "beta": npy(bb)}

torch.manual_seed(3)
small = Darkening(f=4, rounds=6)
spread_head(small, 4)
torch.save(small.state_dict(), os.path.join(OUT, "darkening_c4_r6.pth"))
xs = torch.rand(1, 3, 7, 9, generator=g)
with torch.no_grad():
    dk["c4_r6.x"] = npy(xs)
    dk["c4_r6.out"] = npy(small(xs, torch.full((1, 1, 1, 1), 0.2))[0])


# ---------------------------------------------------------------- C.2 losses (loss_func.py)
def l_sim(f1, f2):
    f1 = F.normalize(f1, dim=1)
    f2 = F.normalize(f2, dim=1)
    return (f1 * f2).sum(dim=1).mean()


def l_exp(img, e, p):
    m = torch.mean(img, 1, keepdim=True)
    m = F.avg_pool2d(m, p)
    return torch.mean(torch.pow(m - e, 2))


def l_color(img):
    mean_rgb = torch.mean(img, [2, 3], keepdim=True)
    mr, mg, mb = torch.split(mean_rgb, 1, dim=1)
    drg = torch.pow(mr - mg, 2)
    drb = torch.pow(mr - mb, 2)
    dgb = torch.pow(mb - mg, 2)
    return torch.pow(torch.pow(drg, 2) + torch.pow(drb, 2) + torch.pow(dgb, 2), 0.5).mean()


def l_tv(a, mid):
    b, _, h, w = a.shape
    count_h = (h - 1) * w
    count_w = h * (w - 1)
    dh = a[:, :, 1:, :] - a[:, :, :h - 1, :]
    dw = a[:, :, :, 1:] - a[:, :, :, :w - 1]
    h_tv = torch.pow(torch.clamp(mid - torch.abs(torch.abs(dh) - mid), 0, 1), 2).sum()
    w_tv = torch.pow(torch.clamp(mid - torch.abs(torch.abs(dw) - mid), 0, 1), 2).sum()
    return 2 * (h_tv / count_h + w_tv / count_w) / b


def l_flex(bb):
    return (1 - bb).mean()


W = {"sim": 0.1, "exposure": 10.0, "colour": 25.0, "tv": 1600.0, "flex": 5.0}
g = torch.Generator().manual_seed(5)
L = {}


def leaf(t):
    return t.clone().requires_grad_(True)


f1, f2 = leaf(torch.randn(2, 16, 3, 4, generator=g)), leaf(torch.randn(2, 16, 3, 4, generator=g))
v = l_sim(f1, f2)
v.backward()
L.update({"sim.f1": npy(f1), "sim.f2": npy(f2), "sim.loss": npy(v), "sim.grad_f1": npy(f1.grad),
          "sim.grad_f2": npy(f2.grad)})

img = torch.rand(2, 3, 8, 12, generator=g)
e = torch.rand(2, 1, 1, 1, generator=g) * 0.5
L.update({"exp.image": npy(img), "exp.e": npy(e)})
for p in (1, 4):
    im = leaf(img)
    v = l_exp(im, e, p)
    v.backward()
    L[f"exp.p{p}.loss"] = npy(v)
    L[f"exp.p{p}.grad"] = npy(im.grad)

im = leaf(torch.rand(3, 3, 8, 8, generator=g) * torch.tensor([1.0, 0.7, 0.4]).view(1, 3, 1, 1))
v = l_color(im)
v.backward()
L.update({"col.image": npy(im), "col.loss": npy(v), "col.grad": npy(im.grad)})

a = leaf(0.03 * torch.randn(2, 3, 10, 12, generator=g))
v = l_tv(a, 0.02)
v.backward()
L.update({"tv.a": npy(a), "tv.loss": npy(v), "tv.grad": npy(a.grad)})

bb = leaf(0.95 + 0.05 * torch.rand(2, 3, 5, 6, generator=g))
v = l_flex(bb)
v.backward()
L.update({"flex.b": npy(bb), "flex.loss": npy(v), "flex.grad": npy(bb.grad)})
write_safetensors(os.path.join(OUT, "losses.safetensors"), L)

# ---------------------------------------------------------------- end to end: L_D through D
# A frozen two-conv feature extractor stands in for ResNet layer4 (input ImageNet-normalised).
torch.manual_seed(6)
fx1 = nn.Conv2d(3, 8, 3, 2, 1)
fx2 = nn.Conv2d(8, 16, 3, 2, 1)
for m in (fx1, fx2):
    m.requires_grad_(False)


def feats(img01):
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return fx2(F.relu(fx1((img01 - mean) / std)))


e_img = torch.tensor([0.1, 0.35]).view(2, 1, 1, 1)
out, a, bb = net(x, e_img)
terms = {
    "sim": l_sim(feats(x), feats(out)),
    "exposure": l_exp(out, e_img, 1),
    "colour": l_color(out),
    "tv": l_tv(a, 0.02),
    "flex": l_flex(bb),
}
total = sum(W[k] * terms[k] for k in terms)
total.backward()
for k, t in terms.items():
    dk[f"e2e.{k}"] = npy(t)
dk.update({
    "e2e.e": npy(e_img), "e2e.total": npy(total),
    "e2e.fx1.weight": npy(fx1.weight), "e2e.fx1.bias": npy(fx1.bias),
    "e2e.fx2.weight": npy(fx2.weight), "e2e.fx2.bias": npy(fx2.bias),
    "e2e.grad.e_conv7.point_conv.weight": npy(net.e_conv7.point_conv.weight.grad),
    "e2e.grad.e_conv0.depth_conv.weight": npy(net.e_conv0.depth_conv.weight.grad),
})
print("e2e terms", {k: float(t) for k, t in terms.items()}, "total", float(total))
write_safetensors(os.path.join(OUT, "darkening.safetensors"), dk)

# ---------------------------------------------------------------- C.3 dark view exposure map
# E' = U(0, e_max) per image + resize(N(0, s^2) at (h // f, w // f)) bilinear + N(0, s^2) per pixel.
g = torch.Generator().manual_seed(7)
DV = {}
for name, (b, h, w, f) in {"vpr": (2, 70, 100, 32), "cls": (3, 48, 40, 16)}.items():
    e0 = torch.rand(b, generator=g) * 0.2
    patch = torch.randn(b, 1, h // f, w // f, generator=g) * 0.025
    pixel = torch.randn(b, 1, h, w, generator=g) * 0.025
    up = F.interpolate(patch, size=(h, w), mode="bilinear", align_corners=False)
    DV.update({f"{name}.e": npy(e0), f"{name}.patch": npy(patch), f"{name}.pixel": npy(pixel),
               f"{name}.map": npy(e0.view(b, 1, 1, 1) + up + pixel)})
write_safetensors(os.path.join(OUT, "dark_view.safetensors"), DV)


# ---------------------------------------------------------------- C.3 BYOL (resnet_BYOL.py)
class Head(nn.Module):
    """proj_head / pred_head: Linear - BatchNorm1d - ReLU - Linear."""

    def __init__(self, cin, cout):
        super().__init__()
        self.fc1 = nn.Linear(cin, cout)
        self.bn1 = nn.BatchNorm1d(cout)
        self.fc2 = nn.Linear(cout, cout)

    def forward(self, x):
        return self.fc2(F.relu(self.bn1(self.fc1(x))))


torch.manual_seed(8)
FEAT, PROJ, BATCH, WEIGHT = 32, 16, 6, 0.1
heads = nn.ModuleDict({"head_q": Head(FEAT, PROJ), "head_k": Head(FEAT, PROJ), "pred": Head(PROJ, PROJ)})
g = torch.Generator().manual_seed(9)
with torch.no_grad():
    for hd in heads.values():
        nn.init.kaiming_normal_(hd.fc1.weight)
        nn.init.kaiming_normal_(hd.fc2.weight)
        hd.bn1.weight.copy_(torch.rand(PROJ, generator=g) * 0.5 + 0.75)
        hd.bn1.bias.copy_(torch.randn(PROJ, generator=g) * 0.1)
heads.train()  # the reference trains with model.train(): BatchNorm1d on batch statistics
B = {f"heads.{k}": npy(v) for k, v in heads.state_dict().items() if "num_batches" not in k}
fd, fn = leaf(torch.randn(BATCH, FEAT, generator=g)), leaf(torch.randn(BATCH, FEAT, generator=g))
fdk, fnk = torch.randn(BATCH, FEAT, generator=g), torch.randn(BATCH, FEAT, generator=g)
q1 = F.normalize(heads["pred"](heads["head_q"](fd)), dim=1)   # day, online
q2 = F.normalize(heads["pred"](heads["head_q"](fn)), dim=1)   # dark, online
with torch.no_grad():
    k1 = F.normalize(heads["head_k"](fnk), dim=1)              # dark, momentum
    k2 = F.normalize(heads["head_k"](fdk), dim=1)              # day, momentum
loss = (2 - 2 * (q1 * k1).sum(dim=1).mean()) + (2 - 2 * (q2 * k2).sum(dim=1).mean())
loss = loss * 0.5 * WEIGHT
loss.backward()
B.update({
    "feat_day": npy(fd), "feat_dark": npy(fn), "feat_day_k": npy(fdk), "feat_dark_k": npy(fnk),
    "loss": npy(loss), "grad_feat_day": npy(fd.grad), "grad_feat_dark": npy(fn.grad),
    "grad.head_q.fc1.weight": npy(heads["head_q"].fc1.weight.grad),
    "grad.pred.fc2.weight": npy(heads["pred"].fc2.weight.grad),
    "grad.pred.bn1.weight": npy(heads["pred"].bn1.weight.grad),
})
write_safetensors(os.path.join(OUT, "byol.safetensors"), B)

with open(os.path.join(OUT, "versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "numpy": np.__version__}, f)
print("fixtures written to", os.path.normpath(OUT))
