#!/usr/bin/env python3
"""Day→night translator training probe (diagnostic only; writes no fixture).

    /usr/bin/python3 crates/nightgen-gan/scripts/translator_dynamics.py WORLD base --iters 1000
    /usr/bin/python3 crates/nightgen-gan/scripts/translator_dynamics.py WORLD base ndf64 up --iters 1000

A compact PyTorch re-implementation of the `dark_side` example's HEDN-GAN stage (docs/PAPERS.md
A.4, `nightgen_gan::train`) on an exported world, to tell whether the examples' translators fail
because of the recipe at this scale or because of the Rust port, and to find, cheaply, which
changes of the recipe make night. Every variant starts from the same seed; the translation quality
is scored as `nightvision::quality::TranslationBench` does: the Fréchet distance of torchvision
MobileNetV2 features (the real ImageNet weights of the real-data cache, spatial mean of `features`)
of the generated held-out day queries (`vpr/images/test/queries`, full frames) to the real night
renders of the same places (`vpr/images/test/queries_night`), and the mean Rec. 709 luma.

Base recipe (the example's defaults): ResNet generator ngf 16, 6 blocks, instance norm, transposed
convolutions, PatchGAN ndf 16 (3 layers), N(0, 0.02) init, LSGAN, Adam 5e-4 β (0.5, 0.999),
batch 2, crops of 64² (random scale 0.8-1) of images resized to a shorter side of 96, two epochs
(constant, then linear decay), edge consistency 5·L1(σ HED(G(x)), σ HED(x)) with the frozen BSDS500
HED (the student HED of HEDN-GAN learns at lr 1e-6 and is left out here).

Variants (combine freely): ndf64 (discriminator width 64), ngf32, up (nearest upsampling + 3×3
convolution instead of transposed convolutions), crop128 (128² crops of 192-px images), lr2e-4,
noedge (no edge term), edge1 (edge weight 1), batch4, blocks9, cyclegan (CycleGAN: a night→day generator, a day discriminator, cycle loss λ 10 and identity
loss 0.5 λ; with noedge, no HED term; noid drops the identity loss, as gandtr's train_cyclegan.yml), ema (evaluate an exponential moving average of G's weights, decay 0.995), inoise (instance noise σ 0.1 on both of D's inputs), resid (G(x) = tanh(atanh(x) + net(x)): starts at the identity), native (crops of the images at their
native 240-px shorter side: the scale the held-out frames are translated at), bn (batch norm, gandtr's
`norm: batch`, evaluated with its running statistics, instead of instance norm), dnone (no
normalisation layers in the discriminators, convolutions with bias), dnobias (dnone with bias-free
inner convolutions, as the reference's `--norm none` and the Rust `NormKind::None`).

`--tiles T` also scores each evaluation with the held-out frames translated in T×T tiles
(non-overlapping, stitched), so that instance-norm statistics come from regions the size of the
training crops instead of the whole frame; `--keep` saves G's weights at every evaluation.
"""
import argparse
import math
import os
import sys
import time

import cv2
import numpy as np
import scipy.linalg
import torch
import torch.nn as nn
import torch.nn.functional as Fn
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "scripts"))
from fixture_utils import read_safetensors  # noqa: E402

REAL = os.environ.get("NIGHTVISION_DATA", os.path.expanduser("~/.cache/nightvision/real"))
MEAN_BGR = [104.00698793, 116.66876762, 122.67891434]
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
REC709 = torch.tensor([0.2126, 0.7152, 0.0722]).view(1, 3, 1, 1)


def read_rgb(path):
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"cannot read {path}")
    return bgr[:, :, ::-1].astype(np.float32) / 255.0


def folder(path):
    return sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith((".png", ".jpg")))


def shorter(img, side):
    h, w = img.shape[:2]
    s = side / min(h, w)
    return cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_LINEAR)


# ---------------------------------------------------------------- networks
class ResBlock(nn.Module):
    def __init__(self, c, norm):
        super().__init__()
        self.b = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c), nn.ReLU(True),
                               nn.ReflectionPad2d(1), nn.Conv2d(c, c, 3), norm(c))

    def forward(self, x):
        return x + self.b(x)


def generator(ngf, blocks, norm, up, residual=False):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), norm(ngf), nn.ReLU(True)]
    for i in range(2):
        m = 2 ** i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1), norm(ngf * m * 2), nn.ReLU(True)]
    layers += [ResBlock(ngf * 4, norm) for _ in range(blocks)]
    for i in range(2):
        m = 2 ** (2 - i)
        if up == "convT":
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1)]
        else:
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                       nn.Conv2d(ngf * m, ngf * m // 2, 3)]
        layers += [norm(ngf * m // 2), nn.ReLU(True)]
    if residual:
        return Residual(nn.Sequential(*layers, nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7)))
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
    return nn.Sequential(*layers)


class Residual(nn.Module):
    """G(x) = tanh(atanh(x) + net(x)): the identity plus a learned change in tanh's domain."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + self.net(x))


def discriminator(ndf, norm, n_layers=3, bias=True):
    layers = [nn.Conv2d(3, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
    mult = 1
    for n in range(1, n_layers):
        prev, mult = mult, min(2 ** n, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=bias), norm(ndf * mult), nn.LeakyReLU(0.2, True)]
    prev, mult = mult, min(2 ** n_layers, 8)
    layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=bias), norm(ndf * mult), nn.LeakyReLU(0.2, True)]
    layers += [nn.Conv2d(ndf * mult, 1, 4, 1, 1)]
    return nn.Sequential(*layers)


def init_normal(net):
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
    return net


class Hed(nn.Module):
    """sniklaus/pytorch-hed (as crates/hed-edges/scripts/gen_fixtures.py): BGR in [0, 1] → fused logits."""

    def __init__(self):
        super().__init__()
        w = (64, 128, 256, 512, 512)
        C = lambda i, o: nn.Conv2d(i, o, 3, 1, 1)
        P = lambda: nn.MaxPool2d(2, 2)
        R = nn.ReLU
        self.netVggOne = nn.Sequential(C(3, w[0]), R(), C(w[0], w[0]), R())
        self.netVggTwo = nn.Sequential(P(), C(w[0], w[1]), R(), C(w[1], w[1]), R())
        self.netVggThr = nn.Sequential(P(), C(w[1], w[2]), R(), C(w[2], w[2]), R(), C(w[2], w[2]), R())
        self.netVggFou = nn.Sequential(P(), C(w[2], w[3]), R(), C(w[3], w[3]), R(), C(w[3], w[3]), R())
        self.netVggFiv = nn.Sequential(P(), C(w[3], w[4]), R(), C(w[4], w[4]), R(), C(w[4], w[4]), R())
        S = lambda i: nn.Conv2d(i, 1, 1)
        self.netScoreOne, self.netScoreTwo, self.netScoreThr = S(w[0]), S(w[1]), S(w[2])
        self.netScoreFou, self.netScoreFiv = S(w[3]), S(w[4])
        self.netCombine = nn.Sequential(nn.Conv2d(5, 1, 1), nn.Sigmoid())

    def forward(self, x):
        x = x * 255.0 - torch.tensor(MEAN_BGR).view(1, 3, 1, 1)
        v1 = self.netVggOne(x)
        v2 = self.netVggTwo(v1)
        v3 = self.netVggThr(v2)
        v4 = self.netVggFou(v3)
        v5 = self.netVggFiv(v4)
        size = x.shape[2:]
        sides = [Fn.interpolate(s, size=size, mode="bilinear", align_corners=False) for s in [
            self.netScoreOne(v1), self.netScoreTwo(v2), self.netScoreThr(v3), self.netScoreFou(v4),
            self.netScoreFiv(v5)]]
        return sides, self.netCombine[0](torch.cat(sides, 1))


def hed():
    net = Hed()
    sd = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(REAL, "weights/hed_bsds500.safetensors")).items()}
    net.load_state_dict(sd, strict=True)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def hed_edges(net, rgb01):
    _, fused = net(rgb01.flip(1))  # the network takes BGR in [0, 1]
    return torch.sigmoid(fused)


def mobilenet():
    net = torchvision.models.mobilenet_v2()
    sd = {k: torch.from_numpy(v) for k, v in read_safetensors(os.path.join(REAL, "weights/mobilenet_v2_imagenet.safetensors")).items()}
    net.load_state_dict(sd, strict=True)
    return net.features.eval()


@torch.no_grad()
def features(net, imgs):
    out = []
    for i in range(0, len(imgs), 16):
        x = (imgs[i:i + 16] - IMAGENET_MEAN) / IMAGENET_STD
        out.append(net(x).mean((2, 3)).double().numpy())
    return np.concatenate(out)


def frechet(a, mu_b, cov_b):
    mu_a, cov_a = a.mean(0), np.cov(a, rowvar=False)
    covmean, _ = scipy.linalg.sqrtm(cov_a @ cov_b, disp=False)
    covmean = covmean.real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * np.trace(covmean))


# ---------------------------------------------------------------- data
class Crops:
    def __init__(self, files, side, size, rng):
        self.images = [shorter(read_rgb(f), side) for f in files]
        self.size, self.rng = size, rng

    def sample(self, n):
        out = []
        for _ in range(n):
            img = self.images[self.rng.integers(len(self.images))]
            h, w = img.shape[:2]
            scale = self.rng.uniform(0.8, 1.0)
            s = min(math.ceil(self.size / scale), h, w)
            t, l = self.rng.integers(h - s + 1), self.rng.integers(w - s + 1)
            c = cv2.resize(img[t:t + s, l:l + s], (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            if self.rng.random() < 0.5:
                c = c[:, ::-1]
            out.append(c.transpose(2, 0, 1).copy())
        return torch.from_numpy(np.stack(out))


# ---------------------------------------------------------------- run
def run(args, variant, world, mnet, hnet, test_day, mu_n, cov_n, night_luma):
    v = set(variant.split("+"))
    ngf = 32 if "ngf32" in v else 16
    ndf = 64 if "ndf64" in v else ngf
    blocks = 9 if "blocks9" in v else 6
    crop = 128 if "crop128" in v else 64
    lr = 2e-4 if "lr2e-4" in v else 5e-4
    batch = 4 if "batch4" in v else 2
    edge_w = 0.0 if "noedge" in v else 1.0 if "edge1" in v else 5.0
    up = "up" if "up" in v else "convT"
    norm = (lambda c: nn.BatchNorm2d(c)) if "bn" in v else (lambda c: nn.InstanceNorm2d(c))
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    G = init_normal(generator(ngf, blocks, norm, up, "resid" in v))
    # dnone: no normalisation in the discriminators. Instance norm (or batch norm over a batch of one
    # domain) removes each feature map's spatial mean, so a PatchGAN whose field covers the whole crop
    # cannot see the crop's global brightness or colour cast.
    # dnobias: as dnone, with the inner convolutions bias-free, as the reference's `--norm none`
    # builds them (`use_bias = norm_layer == nn.InstanceNorm2d`) and the Rust NormKind::None does
    dnorm = (lambda c: nn.Identity()) if ("dnone" in v or "dnobias" in v) else norm
    dbias = "dnobias" not in v
    D = init_normal(discriminator(ndf, dnorm, bias=dbias))
    side = 240 if "native" in v else crop * 3 // 2
    day = Crops(folder(os.path.join(world, "gan/trainA")), side, crop, rng)
    night = Crops(folder(os.path.join(world, "gan/trainB")), side, crop, rng)
    G_ema = None
    if "ema" in v:
        import copy

        G_ema = copy.deepcopy(G)
    cyc = "cyclegan" in v
    if cyc:  # the night→day generator and the day discriminator of CycleGAN
        F = init_normal(generator(ngf, blocks, norm, up, "resid" in v))
        DX = init_normal(discriminator(ndf, dnorm, bias=dbias))
        oG = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), lr=lr, betas=(0.5, 0.999))
        oD = torch.optim.Adam(list(D.parameters()) + list(DX.parameters()), lr=lr, betas=(0.5, 0.999))
    else:
        oG = torch.optim.Adam(G.parameters(), lr=lr, betas=(0.5, 0.999))
        oD = torch.optim.Adam(D.parameters(), lr=lr, betas=(0.5, 0.999))
    half = args.iters // 2
    sched = lambda it: 1.0 if it < half else 1.0 - (it - half) / (args.iters - half + 1)
    t0 = time.time()
    rows = []
    for it in range(args.iters):
        for o in (oG, oD):
            for g in o.param_groups:
                g["lr"] = lr * sched(it)
        x = day.sample(batch) * 2 - 1
        y = night.sample(batch) * 2 - 1
        fake = G(x)
        # instance noise: both of D's inputs get the same Gaussian noise, so that D cannot tell
        # the domains apart by sensor-noise texture alone
        sigma = 0.1 if "inoise" in v else 0.0
        noisy = lambda t: t + sigma * torch.randn_like(t) if sigma > 0 else t
        lD = 0.5 * (((D(noisy(y)) - 1) ** 2).mean() + (D(noisy(fake.detach())) ** 2).mean())
        if cyc:
            fake_x = F(y)
            lD = lD + 0.5 * (((DX(noisy(x)) - 1) ** 2).mean() + (DX(noisy(fake_x.detach())) ** 2).mean())
        oD.zero_grad()
        lD.backward()
        oD.step()
        lA = ((D(noisy(fake)) - 1) ** 2).mean()
        lE = torch.zeros(())
        if edge_w > 0:
            with torch.no_grad():
                target = hed_edges(hnet, (x + 1) / 2)
            lE = edge_w * (hed_edges(hnet, (fake + 1) / 2) - target).abs().mean()
        if cyc:  # CycleGAN's adversarial night→day term, cycle (λ 10) and identity (0.5 λ) losses
            lA = lA + ((DX(noisy(fake_x)) - 1) ** 2).mean()
            lE = lE + 10.0 * ((F(fake) - x).abs().mean() + (G(fake_x) - y).abs().mean())
            if "noid" not in v:  # gandtr's CycleGAN has no identity term (`noid`)
                lE = lE + 5.0 * ((G(y) - y).abs().mean() + (F(x) - x).abs().mean())
        oG.zero_grad()
        (lA + lE).backward()
        oG.step()
        if G_ema is not None:
            with torch.no_grad():
                for pe, p in zip(G_ema.parameters(), G.parameters()):
                    pe.mul_(0.995).add_(p, alpha=0.005)
                for be, b in zip(G_ema.buffers(), G.buffers()):  # batch norm's running statistics
                    be.copy_(b)
        if (it + 1) % args.eval_every == 0 or it + 1 == args.iters:
            Gt = G_ema if G_ema is not None else G
            Gt.eval()
            with torch.no_grad():
                gen = torch.cat([(Gt(test_day[i:i + 8] * 2 - 1) + 1) / 2 for i in range(0, len(test_day), 8)])
                tiled = tiled_translate(Gt, test_day, args.tiles) if args.tiles else None
            Gt.train()
            fd = frechet(features(mnet, gen), mu_n, cov_n)
            luma = float((gen * REC709).sum(1).mean())
            top = top_luma(gen)
            rows.append((it + 1, fd, luma, top, float(lD), float(lA), float(lE), time.time() - t0))
            extra = ""
            if tiled is not None:
                extra = f"  tiles {args.tiles}: FD {frechet(features(mnet, tiled), mu_n, cov_n):7.2f} luma {float((tiled * REC709).sum(1).mean()):.3f}"
            print(f"{variant:24s} it {it + 1:5d}  FD {fd:7.2f}  luma {luma:.3f} (night {night_luma:.3f})  top {top:.3f}  "
                  f"D {float(lD):.3f} G {float(lA):.3f} E {float(lE):.3f}  {time.time() - t0:6.0f} s{extra}", flush=True)
            if args.keep and args.save:
                torch.save(Gt.state_dict(), os.path.join(args.save, f"{variant}-{it + 1}.pt"))
            if args.save:
                grid = torch.cat([test_day[:4], gen[:4]] + ([tiled[:4]] if tiled is not None else []), 2)
                grid = torch.cat(list(grid), 2).permute(1, 2, 0).numpy()[:, :, ::-1]
                cv2.imwrite(os.path.join(args.save, f"{variant}-{it + 1}.png"), (grid.clip(0, 1) * 255).round().astype(np.uint8))
    return rows


def top_luma(imgs):
    """Mean Rec. 709 luma of the top fifth of the frames (mostly sky in this world's street views)."""
    return float((imgs[:, :, : imgs.shape[2] // 5] * REC709).sum(1).mean())


def tiled_translate(G, imgs, t):
    """Translate each frame in non-overlapping t×t tiles (the last row / column of tiles is taken
    flush with the border, so tiles overlap there), stitched back in `[0, 1]`."""
    n, _, h, w = imgs.shape
    out = torch.zeros_like(imgs)
    tops = sorted(set(list(range(0, h - t + 1, t)) + [h - t]))
    lefts = sorted(set(list(range(0, w - t + 1, t)) + [w - t]))
    for i in range(0, n, 8):
        x = imgs[i:i + 8] * 2 - 1
        for a in tops:
            for b in lefts:
                out[i:i + 8, :, a:a + t, b:b + t] = (G(x[:, :, a:a + t, b:b + t]) + 1) / 2
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("world")
    p.add_argument("variants", nargs="+")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--save", help="folder for day | generated strips of 4 held-out queries")
    p.add_argument("--tiles", type=int, default=0, help="also score translation in T×T tiles")
    p.add_argument("--keep", action="store_true", help="save G's weights at every evaluation (with --save)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    mnet = mobilenet()
    test_day = torch.from_numpy(np.stack([read_rgb(f).transpose(2, 0, 1) for f in folder(os.path.join(args.world, "vpr/images/test/queries"))]))
    test_night = torch.from_numpy(np.stack([read_rgb(f).transpose(2, 0, 1) for f in folder(os.path.join(args.world, "vpr/images/test/queries_night"))]))
    fn = features(mnet, test_night)
    mu_n, cov_n = fn.mean(0), np.cov(fn, rowvar=False)
    night_luma = float((test_night * REC709).sum(1).mean())
    print(f"day as is: FD {frechet(features(mnet, test_day), mu_n, cov_n):.2f}, night luma {night_luma:.3f}, "
          f"top-fifth luma day {top_luma(test_day):.3f} night {top_luma(test_night):.3f}", flush=True)
    hnet = hed()
    for variant in args.variants:
        run(args, variant, args.world, mnet, hnet, test_day, mu_n, cov_n, night_luma)


if __name__ == "__main__":
    main()
