#!/usr/bin/env python3
"""Translator and darkening training speed: nightvision (burn flex, the criterion bench
`nightgen-gan/iterations`) vs the same computation in Debian's PyTorch, 2 threads, in one run
(issue 16).

    /usr/bin/python3 benches/gan_vs_torch.py [--skip-ours]     # from the workspace root

Rows (the examples' default shapes; `crates/nightgen-gan/benches/iterations.rs`):
- iteration/cut: one CUT iteration of the `nocplace` example's translator (NocPlaceConfig
  defaults): batch 1 of 64² crops (random scale 0.8-1) of images resized to a shorter side of 96;
  CUT's anti-aliased ResNet generator ngf 16, 6 blocks, instance norm; anti-aliased PatchGAN ndf 16
  (3 layers); PatchSampleF (Linear-ReLU-Linear, 256 features) on G's encoder layers 0, 4, 8, 12,
  16 with 64 patches per layer; G translates cat(x, y) in one pass (identity NCE, weight 1).
  D step: LSGAN ½[MSE(D(y), 1) + MSE(D(G(x)).detach, 0)], Adam. G + F step: MSE(D(G(x)), 1) +
  ½[NCE(x, G(x)) + NCE(y, G(y))] (PatchNCE τ 0.07, negatives from the same image), Adam on G and
  F. Adam lr 5e-4, β (0.5, 0.999).
- iteration/hedngan: one HEDN-GAN iteration of the `dark_side` example's translator
  (DarkSideConfig defaults): batch 2 of the same 64² crops; ResNet generator ngf 16, 6 blocks,
  instance norm, transposed convolutions, PatchGAN ndf 16, N(0, 0.02) init; full-width HED student
  and frozen teacher (random weights in both). D step (LSGAN, Adam 5e-4 β (0.5, 0.999)); student
  step L1(H_s(x), H_t(x)) + L1(H_s(G(x).detach), H_t(x)) on logits, Adam 1e-6 β (0.9, 0.999) with
  HED's Caffe lr / weight-decay multipliers (weight decay 2e-4); G step MSE(D(G(x)), 1) +
  5·L1(σ H_s(G(x)), σ H_t(x)), only G stepped.
- step/darkening: one Similarity Min-Max stage-1 step (SimilarityMinMaxConfig defaults): batch 4
  of 128² images, the darkening net D (64 channels, 8 curve rounds), exposures U(0, 0.5), a frozen
  MobileNetV2 trunk (random weights, BatchNorm in eval mode) on ImageNet-normalised day (no
  gradient) and darkened images, L = 0.1 L_sim + 10 L_exp + 25 L_col + 1600 L_tv + 5 L_flex,
  backward, global gradient-norm clipping at 0.1, Adam lr 1e-4 with weight decay 1e-4.

The GAN rows time, as the Rust bench does, calls that build the optimisers and run 4 iterations
(networks built untimed before each call), divided by 4; the data is sampled every iteration
from 8 random 320×240 PNGs per domain (decode, shorter side 96, random crop, bilinear resize to
64²), as the Rust trainers read their data. The darkening row times single steps on a fixed
random batch.

The PyTorch modules are the fixture scripts' (their definitions only, read with `ast` so their
fixture-writing top-level code does not run): ResnetGenerator / NLayerDiscriminator from
crates/nightgen-gan/scripts/gen_network_fixtures.py, the LSGAN loss, PatchSampleF (`Mlps`) and
PatchNCE from gen_loss_fixtures.py, HED and the N(0, 0.02) init from translator_dynamics.py,
the darkening net and its losses from crates/darkening-minmax/scripts/gen_fixtures.py;
MobileNetV2 is torchvision's.

Knowingly approximate on the PyTorch side:
- data: PIL decodes and resizes the shorter side (bilinear, PIL's antialiased filter) and the
  crop is resized with F.interpolate (bilinear, align_corners False); the Rust side uses the
  `image` crate and burn's bilinear resize. The random draws differ (same distributions).
- learning-rate schedules (gandtr's lambda_p2p / CUT's linear decay per epoch, the darkening
  MultiStep milestone) are left out: they change the rate's value, not the work.
- initialisations differ where they cannot change the work: F's MLPs (xavier gain 1 vs gain
  0.02), CUT's generator/discriminator (PyTorch default vs CUT's xavier), HED and MobileNetV2
  (PyTorch defaults vs burn's), the darkening net (PyTorch default vs burn's).
- NaN checks: the Rust trainers read every loss back to the host (check_finite) each iteration;
  here the losses are read with float() the same number of times.
- the instance-norm layers of the generator/discriminator have no affine parameters on both sides
  (`nn.InstanceNorm2d(affine=False)` here); HED's fused output is taken as logits before the
  sigmoid as `Hed::forward_logits` does.
"""
import ast
import math
import os
import sys
import tempfile
import time
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import criterion_seconds, timed  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))  # fixture_utils, as the fixture scripts add it
ITERATIONS = 4  # per timed call, as crates/nightgen-gan/benches/iterations.rs
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def definitions(rel):
    """The imports, functions, classes and UPPER_CASE constants of a fixture script, without its
    fixture-writing top-level statements."""
    path = os.path.join(ROOT, rel)
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    ns = {"__file__": path, "__name__": "defs_" + os.path.basename(path)[:-3]}
    for node in tree.body:
        keep = isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef))
        if isinstance(node, ast.Assign):
            names = [n for t in node.targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            keep = bool(names) and all(n.id.isupper() for n in names)
        if not keep:
            continue
        try:
            exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), ns)
        except Exception:  # an optional import (cv2) or a constant built from fixture data
            pass
    return types.SimpleNamespace(**ns)


NET = definitions("crates/nightgen-gan/scripts/gen_network_fixtures.py")
LOSS = definitions("crates/nightgen-gan/scripts/gen_loss_fixtures.py")
DYN = definitions("crates/nightgen-gan/scripts/translator_dynamics.py")
DARK = definitions("crates/darkening-minmax/scripts/gen_fixtures.py")


def timed_calls(setup, call, min_s=5.0, min_n=3):
    """Mean seconds per training iteration of `call(setup())` (ITERATIONS iterations; setup untimed)."""
    call(setup())
    total, n, t_start = 0.0, 0, time.perf_counter()
    while time.perf_counter() - t_start < min_s or n < min_n:
        arg = setup()
        t0 = time.perf_counter()
        call(arg)
        total += time.perf_counter() - t0
        n += 1
    return total / n / ITERATIONS


# ---------------------------------------------------------------- data (nightgen_gan::data)
def write_images(root):
    rng = np.random.default_rng(0)
    for domain, gain in (("trainA", 1.0), ("trainB", 0.25)):
        os.makedirs(os.path.join(root, domain))
        for k in range(8):
            px = (rng.integers(0, 256, (240, 320, 3)) * gain).astype(np.uint8)
            Image.fromarray(px).save(os.path.join(root, domain, f"{k:02d}.png"))


class Unpaired:
    """UnpairedBatches: per image, load the file, resize to the shorter side, ScaleCrop."""

    def __init__(self, root, crop, batch):
        self.files = [sorted(os.path.join(root, d, f) for f in os.listdir(os.path.join(root, d)))
                      for d in ("trainA", "trainB")]
        self.crop, self.batch, self.side = crop, batch, crop * 3 // 2
        self.rng = np.random.default_rng(1)

    def load_crop(self, path):
        img = Image.open(path).convert("RGB")
        w, h = img.size
        s = self.side / min(w, h)
        img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.BILINEAR)
        a = np.asarray(img, dtype=np.float32) / 255.0
        h, w = a.shape[:2]
        short = min(h, w)
        lowest = max(self.crop / short, 0.8)
        scale = lowest + (1 - lowest) * self.rng.random()
        side = min(max(math.ceil(self.crop / scale), 1), short)
        t, l = self.rng.integers(0, h - side + 1), self.rng.integers(0, w - side + 1)
        x = torch.from_numpy(a[t:t + side, l:l + side].transpose(2, 0, 1).copy())[None]
        return F.interpolate(x, size=(self.crop, self.crop), mode="bilinear", align_corners=False)

    def sample(self):
        day, night = [], []
        for _ in range(self.batch):
            day.append(self.load_crop(self.files[0][self.rng.integers(len(self.files[0]))]))
            night.append(self.load_crop(self.files[1][self.rng.integers(len(self.files[1]))]))
        return torch.cat(day), torch.cat(night)


def adam(params, lr, beta1):
    return torch.optim.Adam(params, lr=lr, betas=(beta1, 0.999), eps=1e-8)


# ---------------------------------------------------------------- CUT (nightgen_gan::train_cut)
NCE_LAYERS = (0, 4, 8, 12, 16)


def cut_nets():
    G = NET.ResnetGenerator(16, 6, "instance", antialias=True, antialias_up=True)
    D = NET.NLayerDiscriminator(16, 3, "instance", antialias=True)
    with torch.no_grad():
        chans = [f.shape[1] for f in G(torch.zeros(1, 3, 64, 64), NCE_LAYERS, encode_only=True)]
    Fm = LOSS.Mlps(chans, 256, seed=0)
    return G, D, Fm


def cut_train(nets, data):
    G, D, Fm = nets
    oG, oD, oF = adam(G.parameters(), 5e-4, 0.5), adam(D.parameters(), 5e-4, 0.5), adam(Fm.parameters(), 5e-4, 0.5)

    def nce(src, tgt, weight):
        feat_q = G(tgt, NCE_LAYERS, encode_only=True)
        feat_k = G(src, NCE_LAYERS, encode_only=True)
        ids = [torch.randperm(f.shape[2] * f.shape[3])[:64] for f in feat_k]
        k, q = Fm.sample(feat_k, ids), Fm.sample(feat_q, ids)
        b = src.shape[0]
        return weight * sum(LOSS.patch_nce(qi, ki, b).mean() for qi, ki in zip(q, k)) / len(q)

    for _ in range(ITERATIONS):
        day, night = data.sample()
        real_x, real_y = day * 2 - 1, night * 2 - 1
        b = real_x.shape[0]
        fake = G(torch.cat([real_x, real_y]))
        fake_y, idt_y = fake[:b], fake[b:]
        loss_d = 0.5 * (LOSS.gan_loss("lsgan", D(real_y), True) + LOSS.gan_loss("lsgan", D(fake_y.detach()), False))
        float(loss_d)
        oD.zero_grad()
        loss_d.backward()
        oD.step()
        adv = LOSS.gan_loss("lsgan", D(fake_y), True)
        nx, ny = nce(real_x, fake_y, 1.0), nce(real_y, idt_y, 1.0)
        float(adv), float(nx), float(ny)
        oG.zero_grad()
        oF.zero_grad()
        (adv + 0.5 * (nx + ny)).backward()
        oG.step()
        oF.step()


# ---------------------------------------------------------------- HEDN-GAN (nightgen_gan::train)
def hed_logits(net, rgb01):
    return net(rgb01.flip(1))[1]  # translator_dynamics' Hed takes BGR in [0, 1]; fused logits


def caffe_groups(hed, lr, decay):
    """hed_edges::caffe_optimizer / caffe_lr_scheduler: (lr ×, weight decay ×) per group."""
    mult = {"netVggOne": (1, 2), "netVggTwo": (1, 2), "netVggThr": (1, 2), "netVggFou": (1, 2),
            "netVggFiv": (100, 200), "netCombine": (0.001, 0.002)}
    groups = []
    for name, p in hed.named_parameters():
        block = name.split(".")[0]
        w, b = mult.get(block, (0.01, 0.02))  # netScore*
        weight = name.endswith("weight")
        groups.append({"params": [p], "lr": lr * (w if weight else b),
                       "weight_decay": decay if weight else 0.0})
    return groups


def hedngan_nets():
    G = DYN.init_normal(NET.ResnetGenerator(16, 6, "instance"))
    D = DYN.init_normal(NET.NLayerDiscriminator(16, 3, "instance"))
    teacher = DYN.Hed().eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return G, D, DYN.Hed(), teacher


def hedngan_train(nets, data):
    G, D, student, teacher = nets
    oG, oD = adam(G.parameters(), 5e-4, 0.5), adam(D.parameters(), 5e-4, 0.5)
    oH = torch.optim.Adam(caffe_groups(student, 1e-6, 2e-4), lr=1e-6, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(ITERATIONS):
        day, night = data.sample()
        real_x, real_y = day * 2 - 1, night * 2 - 1
        fake_y = G(real_x)
        fake_const = fake_y.detach()
        fake01 = (fake_y + 1) * 0.5
        loss_d = 0.5 * (LOSS.gan_loss("lsgan", D(real_y), True) + LOSS.gan_loss("lsgan", D(fake_const), False))
        oD.zero_grad()
        loss_d.backward()
        oD.step()
        with torch.no_grad():
            teacher_day = hed_logits(teacher, day)
        loss_e = ((hed_logits(student, day) - teacher_day).abs().mean()
                  + (hed_logits(student, (fake_const + 1) * 0.5) - teacher_day).abs().mean())
        oH.zero_grad()
        loss_e.backward()
        oH.step()
        adv = LOSS.gan_loss("lsgan", D(fake_y), True)
        edge = 5.0 * (torch.sigmoid(hed_logits(student, fake01)) - torch.sigmoid(teacher_day)).abs().mean()
        float(loss_d), float(loss_e), float(adv), float(edge)
        oG.zero_grad()
        (adv + edge).backward()
        oG.step()


# ---------------------------------------------------------------- darkening (darkening_minmax::train)
def darkening_step_fn():
    net = DARK.Darkening(64, 8, 0.95)
    trunk = torchvision.models.mobilenet_v2().features.eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4)
    x = torch.rand(4, 3, 128, 128)
    W = DARK.W

    def step():
        e = torch.rand(4, 1, 1, 1) * 0.5
        out, a, bb = net(x, e)
        with torch.no_grad():
            feat_day = trunk((x - IMAGENET_MEAN) / IMAGENET_STD)
        feat_dark = trunk((out - IMAGENET_MEAN) / IMAGENET_STD)
        total = (W["sim"] * DARK.l_sim(feat_day, feat_dark) + W["exposure"] * DARK.l_exp(out, e, 1)
                 + W["colour"] * DARK.l_color(out) + W["tv"] * DARK.l_tv(a, 0.02) + W["flex"] * DARK.l_flex(bb))
        float(total)
        opt.zero_grad()
        total.backward()
        norm = torch.nn.utils.clip_grad_norm_(net.parameters(), 0.1)
        float(norm)
        opt.step()

    return step


def torch_times(root):
    out = {}
    cut_data = Unpaired(root, 64, 1)
    out["iteration/cut"] = timed_calls(cut_nets, lambda n: cut_train(n, cut_data))
    hed_data = Unpaired(root, 64, 2)
    out["iteration/hedngan"] = timed_calls(hedngan_nets, lambda n: hedngan_train(n, hed_data))
    out["step/darkening"] = timed(darkening_step_fn(), min_s=5.0)
    return out


def our_times():
    return criterion_seconds("nightgen-gan", "iterations")


def main():
    with tempfile.TemporaryDirectory() as root:
        write_images(root)
        theirs = torch_times(root)
    ours = {} if "--skip-ours" in sys.argv else our_times()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| row | nightvision (s) | PyTorch (s) | speed ours/torch |")
    print("|---|---:|---:|---:|")
    for row, t in theirs.items():
        o = ours.get(row)
        if o is None:
            print(f"| {row} | – | {t:.3f} | – |")
        else:
            print(f"| {row} | {o:.3f} | {t:.3f} | {t / o:.2f}x |")


if __name__ == "__main__":
    main()
