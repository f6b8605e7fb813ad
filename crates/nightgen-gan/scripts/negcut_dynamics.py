#!/usr/bin/env python3
"""NEG-CUT training dynamics probe (diagnostic only; writes no fixture).

    /usr/bin/python3 crates/nightgen-gan/scripts/negcut_dynamics.py            # all variants
    /usr/bin/python3 crates/nightgen-gan/scripts/negcut_dynamics.py base lr2e-5 --iters 10

A compact PyTorch re-implementation of one NEG-CUT iteration (docs/PAPERS.md B.1, docs/PAPERS.md protocols 3.2;
NEGCUT `negcut_model.py::optimize_parameters`, `negative_generator.py`, `losses.py`,
`feature_extractor.py`), to tell whether the collapse of the learned-negatives PatchNCE to 0
seen in `train_cut.rs` is inherent in the method at small settings or a Rust bug.

Networks: CUT's anti-aliased ResnetGenerator (ngf 16, 6 blocks, instance norm, reflect pad,
Downsample filt 3 / Upsample filt 4), CUT's anti-aliased PatchGAN (ndf 64, 3 layers), all
xavier-normal gain 0.02, biases 0. F, F' (independent init) and N: Linear-ReLU-Linear per NCE
layer, xavier 0.02 / bias 0 (what NEGCUT's lazily created MLPs get from `init_net(opt.init_type,
opt.init_gain)`; define_N's `init_net(xavier, 1.0)` runs before the layers exist).

Iteration (as the reference):
  fake = G(cat(A, B)); D step (LSGAN, 0.5(real + fake.detach()));
  N step: NCE_x, NCE_y = calculate_NCE_loss(.., use_neg=True) (q, k detached; negatives
    N(F'(feat_k, num_patches=0), K = num_patches) of the SAME pass, fresh ids and z);
    L_N = -0.5(NCE_x + NCE_y) + lambda_MS * mean_l(-mean|n[:, :K/2] - n[:, K/2:]|) on the
    negatives of the LAST (identity) pass; step N only;
  G step: N frozen, L_G = LSGAN(D(fake_B), 1) + 0.5(NCE_x + NCE_y) with fresh ids / z, negatives
    not detached; step G and F; then F' <- 0.9 F' + 0.1 F.
Logits = [q.k+, q.n_1..q.n_K] / 0.07 (generator negatives only, no diagonal mask).

Columns: NCEx / NCEy (G step), LN (N-step objective before N's update), div (its diversity
term), ncos (mean pairwise cosine of the G-step negatives, off-diagonal, mean over layers),
qk / qn (mean q.k+ and q.n in the G step), qcos (mean pairwise cosine of the G-step queries),
Nb / Fb (|last bias| / mean |pre-norm output| of N / F, mean over layers: how much of the
output direction is the shared bias).
"""
import argparse
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as Fn

torch.set_num_threads(1)

NCE_LAYERS = [0, 4, 8, 12, 16]
TAU = 0.07
Z_DIM = 64


# ---------------------------------------------------------------- CUT networks (anti-aliased)
def _filter(n):
    a = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}[n]
    a = torch.tensor(a)
    f = a[:, None] * a[None, :]
    return f / f.sum()


class Downsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.register_buffer("filt", _filter(3)[None, None].repeat(c, 1, 1, 1))
        self.pad = nn.ReflectionPad2d(1)

    def forward(self, x):
        return Fn.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.register_buffer("filt", (_filter(4) * 4)[None, None].repeat(c, 1, 1, 1))
        self.pad = nn.ReplicationPad2d(1)

    def forward(self, x):
        y = Fn.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return y[:, :, 1:, 1:][:, :, :-1, :-1]


class ResnetBlock(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), nn.InstanceNorm2d(d), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(d, d, 3), nn.InstanceNorm2d(d))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf=16, n_blocks=6):
        super().__init__()
        IN = nn.InstanceNorm2d
        m = [nn.ReflectionPad2d(3), nn.Conv2d(3, ngf, 7), IN(ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            m += [nn.Conv2d(c, 2 * c, 3, 1, 1), IN(2 * c), nn.ReLU(True), Downsample(2 * c)]
        m += [ResnetBlock(4 * ngf) for _ in range(n_blocks)]
        for i in range(2):
            c = ngf * 2 ** (2 - i)
            m += [Upsample(c), nn.Conv2d(c, c // 2, 3, 1, 1), IN(c // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, 3, 7), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x, layers=None):
        if layers is None:
            return self.model(x)
        feats = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if i == layers[-1]:
                return feats


class NLayerDiscriminator(nn.Module):
    def __init__(self, ndf=64):
        super().__init__()
        IN = nn.InstanceNorm2d
        s = [nn.Conv2d(3, ndf, 4, 1, 1), nn.LeakyReLU(0.2, True), Downsample(ndf)]
        m = 1
        for n in range(1, 3):
            p, m = m, min(2 ** n, 8)
            s += [nn.Conv2d(ndf * p, ndf * m, 4, 1, 1), IN(ndf * m), nn.LeakyReLU(0.2, True),
                  Downsample(ndf * m)]
        p, m = m, 8
        s += [nn.Conv2d(ndf * p, ndf * m, 4, 1, 1), IN(ndf * m), nn.LeakyReLU(0.2, True),
              nn.Conv2d(ndf * m, 1, 4, 1, 1)]
        self.model = nn.Sequential(*s)

    def forward(self, x):
        return self.model(x)


def init_xavier(net, gain=0.02):
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_normal_(m.weight, gain=gain)
            nn.init.constant_(m.bias, 0.0)
    return net


def l2n(x, dim):
    return x / (x.pow(2).sum(dim, keepdim=True).sqrt() + 1e-7)


def mlp(i, o):
    return nn.Sequential(nn.Linear(i, o), nn.ReLU(), nn.Linear(o, o))


class PatchSampleF(nn.Module):
    def __init__(self, chans, nc):
        super().__init__()
        self.nc = nc
        self.mlps = nn.ModuleList([mlp(c, nc) for c in chans])
        self.last_pre = None

    def forward(self, feats, num_patches, ids=None):
        out, out_ids = [], []
        self.last_pre = []
        for l, (f, m) in enumerate(zip(feats, self.mlps)):
            B, C, H, W = f.shape
            fr = f.permute(0, 2, 3, 1).flatten(1, 2)  # [B, HW, C]
            if num_patches > 0:
                pid = ids[l] if ids is not None else torch.randperm(H * W)[:min(num_patches, H * W)]
                pre = m(fr[:, pid, :].flatten(0, 1))
                self.last_pre.append(pre.detach())
                x = l2n(pre, 1)  # [B*P, nc]
            else:  # NEGCUT num_patches = 0: per-position MLP + L2, back to maps
                pid = None
                x = l2n(m(fr.flatten(0, 1)), 1).view(B, H * W, self.nc)
                x = x.permute(0, 2, 1).reshape(B, self.nc, H, W)
            out.append(x)
            out_ids.append(pid)
        return out, out_ids


class NegativeGenerator(nn.Module):
    def __init__(self, n_layers, nc, K):
        super().__init__()
        self.K = K
        self.mlps = nn.ModuleList([mlp(nc + Z_DIM, nc) for _ in range(n_layers)])
        self.last_pre = None

    def forward(self, maps):
        out = []
        self.last_pre = []
        for f, m in zip(maps, self.mlps):
            B = f.shape[0]
            z = torch.randn(B, self.K, Z_DIM)
            mean = f.permute(0, 2, 3, 1).mean(dim=(1, 2)).unsqueeze(1).repeat(1, self.K, 1)
            pre = m(torch.cat([mean, z], 2).flatten(0, 1))
            self.last_pre.append(pre.detach())
            out.append(l2n(pre, 1))  # [B*K, nc]
        return out


def learned_nce(q, k, n, B):
    """LearnedPatchNCELoss with neg_sample (batch_dim_for_bmm = batch size)."""
    k = k.detach()
    d = q.shape[1]
    l_pos = (q * k).sum(1, keepdim=True)
    qv, nv = q.view(B, -1, d), n.view(B, -1, d)
    l_neg = torch.bmm(qv, nv.transpose(2, 1)).view(-1, nv.shape[1])
    logits = torch.cat([l_pos, l_neg], 1) / TAU
    loss = Fn.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long), reduction="none")
    return loss, l_pos.detach().mean().item(), l_neg.detach().mean().item()


def set_rg(net, flag):
    for p in net.parameters():
        p.requires_grad_(flag)


# ---------------------------------------------------------------- data
def synthetic(gen, night):
    """A smooth random 64x64 RGB image in [-1, 1] (night: darker, a few bright spots)."""
    low = torch.rand(1, 3, 8, 8, generator=gen)
    img = Fn.interpolate(low, size=64, mode="bilinear", align_corners=False)
    img = img + 0.05 * torch.randn(1, 3, 64, 64, generator=gen)
    if night:
        img = 0.25 * img
        for _ in range(4):
            y, x = torch.randint(0, 60, (2,), generator=gen).tolist()
            img[:, :, y:y + 4, x:x + 4] = 0.9
    return img.clamp(0, 1) * 2 - 1


# ---------------------------------------------------------------- one run
def run(name, iters=10, lr=2e-4, num_patches=64, nc=256, init="xavier", n_step=True,
        n_gain=0.02, f_init=None, ngf=16, n_blocks=6, lambda_ms=1.0, seed=0):
    torch.manual_seed(seed)
    G = init_xavier(ResnetGenerator(ngf, n_blocks))
    D = init_xavier(NLayerDiscriminator(64))
    with torch.no_grad():
        chans = [f.shape[1] for f in G(torch.zeros(1, 3, 64, 64), NCE_LAYERS)]
    Fnet, Fm = PatchSampleF(chans, nc), PatchSampleF(chans, nc)
    N = NegativeGenerator(len(NCE_LAYERS), nc, num_patches)
    if init == "xavier":
        init_xavier(N, n_gain)
    if (f_init or init) == "xavier":
        init_xavier(Fnet), init_xavier(Fm)
    set_rg(Fm, True)  # as the reference (never stepped; EMA overwrites)
    adam = lambda net: torch.optim.Adam(net.parameters(), lr=lr, betas=(0.5, 0.999), eps=1e-8)
    oG, oD, oF, oN = adam(G), adam(D), adam(Fnet), adam(N)
    data = torch.Generator().manual_seed(seed + 1000)

    stats = {}
    print(f"   (lambda_MS {lambda_ms:g})") if lambda_ms != 1.0 else None

    def calc_nce(src, tgt, use_neg):
        fq, fk = G(tgt, NCE_LAYERS), G(src, NCE_LAYERS)
        kp, ids = Fnet(fk, num_patches)
        qp, _ = Fnet(fq, num_patches, ids)
        stats["fb"] = float(np.mean([(m[2].bias.norm() / p.norm(dim=1).mean()).item()
                                     for m, p in zip(Fnet.mlps, Fnet.last_pre)]))
        stats["qcos"] = pair_cos(qp, len(qp[0]) // src.shape[0])
        maps, _ = Fm(fk, 0)
        negs = N(maps)
        tot, qk, qn = 0.0, [], []
        for q, k, n in zip(qp, kp, negs):
            if use_neg:
                q, k = q.detach(), k.detach()
            loss, a, b = learned_nce(q, k, n, src.shape[0])
            tot = tot + loss.mean()
            qk.append(a), qn.append(b)
        return tot / len(NCE_LAYERS), negs, float(np.mean(qk)), float(np.mean(qn))

    def diversity(negs):
        tot = 0.0
        for n in negs:
            n = n.view(-1, num_patches, n.shape[1])
            tot = tot - (n[:, :num_patches // 2] - n[:, num_patches // 2:]).abs().mean()
        return tot / len(negs)

    def pair_cos(negs, k=num_patches):
        cs = []
        for n in negs:
            n = n.detach().view(-1, k, n.shape[1])
            g = torch.bmm(n, n.transpose(1, 2))
            K = g.shape[1]
            cs.append(((g.sum() - g.diagonal(dim1=1, dim2=2).sum()) / (g.shape[0] * K * (K - 1))).item())
        return float(np.mean(cs))

    mse = nn.MSELoss()
    print(f"\n== {name}: ngf {ngf}, {n_blocks} blocks, lr {lr:g}, num_patches {num_patches}, init {init}"
          f"{'' if init != 'xavier' else f' (N gain {n_gain:g})'}, F/F' init {f_init or init}, N step {n_step}")
    print(f"{'it':>3} {'NCEx':>8} {'NCEy':>8} {'LN':>8} {'div':>8} {'ncos':>7} {'qk':>7} {'qn':>7} {'qcos':>7} {'Nb':>6} {'Fb':>6}")
    rows = []
    for it in range(iters):
        A, B = synthetic(data, False), synthetic(data, True)
        fake = G(torch.cat([A, B], 0))
        fake_B, idt_B = fake[:1], fake[1:]
        # 1. D
        set_rg(D, True)
        oD.zero_grad()
        loss_D = 0.5 * (mse(D(fake_B.detach()), torch.zeros(1, 1, 6, 6))
                        + mse(D(B), torch.ones(1, 1, 6, 6)))
        loss_D.backward()
        oD.step()
        # 2. N
        LN = div = float("nan")
        if n_step:
            set_rg(N, True)
            oN.zero_grad()
            nx, _, _, _ = calc_nce(A, fake_B, True)
            ny, negs_last, _, _ = calc_nce(B, idt_B, True)
            dv = diversity(negs_last)
            loss_N = -0.5 * (nx + ny) + lambda_ms * dv
            loss_N.backward()
            oN.step()
            LN, div = loss_N.item(), dv.item()
        # 3. G + F (N frozen)
        set_rg(D, False)
        set_rg(N, False)
        oG.zero_grad()
        oF.zero_grad()
        adv = mse(D(fake_B), torch.ones(1, 1, 6, 6))
        nx, negs_x, qk, qn = calc_nce(A, fake_B, False)
        nb = float(np.mean([(m[2].bias.norm() / p.norm(dim=1).mean()).item()
                            for m, p in zip(N.mlps, N.last_pre)]))
        qcos, fb = stats["qcos"], stats["fb"]
        ny, _, _, _ = calc_nce(B, idt_B, False)
        (adv + 0.5 * (nx + ny)).backward()
        oG.step()
        oF.step()
        # 4. EMA F' <- 0.9 F' + 0.1 F
        with torch.no_grad():
            for p_, p in zip(Fm.parameters(), Fnet.parameters()):
                p_.mul_(0.9).add_(p, alpha=0.1)
        r = (it, nx.item(), ny.item(), LN, div, pair_cos(negs_x), qk, qn, qcos, nb, fb)
        rows.append(r)
        print("%3d %8.4f %8.4f %8.4f %8.5f %7.4f %7.4f %7.4f %7.4f %6.3f %6.3f" % r)
    return rows


VARIANTS = {
    "base": dict(),
    "lr5e-4": dict(lr=5e-4),
    "a_default_init": dict(init="default"),
    "b_lr2e-5": dict(lr=2e-5),
    "c_patches256": dict(num_patches=256),
    "d_no_nstep": dict(n_step=False),
    "a1_F_default_only": dict(f_init="default"),  # F, F' PyTorch default; N xavier 0.02
    "a2_N_default_only": dict(init="default", f_init="xavier"),  # N default; F, F' xavier 0.02
    "e_N_gain1": dict(n_gain=1.0),  # docs/PAPERS.md B.1's literal "N init xavier gain 1.0"
}
# Not in the default list (slow, ~10 s / iteration): the reference's full-size G and 256 patches.
EXTRA = {
    "ref_full_G": dict(ngf=64, n_blocks=9, num_patches=256),
    "f_no_diversity": dict(lambda_ms=0.0),  # does the diversity term drive the escape?
}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("variants", nargs="*", default=list(VARIANTS),
                    help=f"any of {list(VARIANTS) + list(EXTRA)}")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    for v in a.variants:
        run(v, iters=a.iters, seed=a.seed, **{**VARIANTS, **EXTRA}[v])
