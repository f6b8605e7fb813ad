#!/usr/bin/env python3
"""Writes the nightgen-gan loss fixtures with Debian's PyTorch, independently of the Rust code.

    /usr/bin/python3 crates/nightgen-gan/scripts/gen_loss_fixtures.py     # from the workspace root

Re-implements, from docs/PAPERS.md protocols 3.1/3.2 and docs/PAPERS.md A.4/B.1, the math of
  - CycleGAN/CUT `GANLoss` (lsgan = MSELoss, vanilla = BCEWithLogitsLoss, target broadcast to the
    map, mean; D loss 0.5 (real + fake)), the L1 terms (mean);
  - CUT `PatchSampleF` (mlp_<i> = Linear-ReLU-Linear, same random ids for keys and queries,
    Normalize(2) = x / (||x|| + 1e-7)), `PatchNCELoss` (diagonal -10, CE target 0, reduction none,
    batch_dim_for_bmm = batch size or 1), `calculate_NCE_loss` (mean per layer, mean over layers);
  - NEG-CUT: F' on all positions (NEGCUT's per-position normalisation), `Negative_Generator`
    (spatial mean, repeat K, concat z, MLP, L2), `LearnedPatchNCELoss`, the diversity term
    -mean|n[:, :K/2] - n[:, K/2:]|, the N-step loss -NCE(q.detach(), k.detach(), n) + 1 * diversity,
    and `accumulate(F', F, 0.9)`.
Everything is computed in float64 and stored as float32. Sizes are reduced (nc 16, 10 patches,
10 negatives; z_dim stays 64).

Outputs in crates/nightgen-gan/tests/fixtures/:
  losses_gan.safetensors                GAN and L1 losses: inputs, values, autograd gradients
  losses_patch_f.safetensors            state dict of F  (PyTorch keys mlp_<i>.0/.2.weight/bias)
  losses_patch_fm.safetensors           state dict of F' (independent init, as in NEGCUT)
  losses_negative_generator.safetensors state dict of N
  losses_patchnce.safetensors           CUT: features, patch ids, sampled features, per-patch
                                        and total losses, gradients
  losses_negcut.safetensors             NEG-CUT: noise, F' maps, negatives, losses, gradients,
                                        EMA result
  losses_versions.json                  torch / numpy versions
Re-running gives identical files (fixed seeds, float64 CPU math).
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
torch.set_num_threads(1)
torch.set_default_dtype(torch.float64)
torch.manual_seed(0)


def a(t):
    return t.detach().numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------
# GAN and L1 losses
# ----------------------------------------------------------------------------------------------
def gan_loss(mode, pred, real):
    target = torch.tensor(1.0 if real else 0.0).expand_as(pred)
    if mode == "lsgan":
        return nn.MSELoss()(pred, target)
    return nn.BCEWithLogitsLoss()(pred, target)


gan = {}
pred_real = (torch.randn(2, 1, 5, 6) * 1.5 + 0.3)
pred_fake = (torch.randn(2, 1, 5, 6) * 1.5 - 0.2)
gan["pred_real"], gan["pred_fake"] = a(pred_real), a(pred_fake)
for mode in ["lsgan", "vanilla"]:
    pr = pred_real.clone().requires_grad_(True)
    pf = pred_fake.clone().requires_grad_(True)
    g = gan_loss(mode, pf, True)
    (gg,) = torch.autograd.grad(g, pf)
    d = 0.5 * (gan_loss(mode, pr, True) + gan_loss(mode, pf, False))
    dr, df = torch.autograd.grad(d, [pr, pf])
    gan[f"{mode}.g"] = a(g.reshape(1))
    gan[f"{mode}.g.grad_fake"] = a(gg)
    gan[f"{mode}.d"] = a(d.reshape(1))
    gan[f"{mode}.d.grad_real"] = a(dr)
    gan[f"{mode}.d.grad_fake"] = a(df)

rec = torch.randn(2, 3, 7, 8).requires_grad_(True)
orig = torch.randn(2, 3, 7, 8)
l1 = nn.L1Loss()(rec, orig)
(grec,) = torch.autograd.grad(l1, rec)
gan["l1.a"], gan["l1.b"], gan["l1.value"], gan["l1.grad_a"] = a(rec), a(orig), a(l1.reshape(1)), a(grec)
fake_edges = torch.sigmoid(torch.randn(2, 1, 7, 8) * 2).requires_grad_(True)
real_edges = torch.sigmoid(torch.randn(2, 1, 7, 8) * 2)
e = nn.L1Loss()(fake_edges, real_edges)
(ge,) = torch.autograd.grad(e, fake_edges)
gan["edge.fake"], gan["edge.real"], gan["edge.value"], gan["edge.grad_fake"] = (
    a(fake_edges), a(real_edges), a(e.reshape(1)), a(ge))
write_safetensors(os.path.join(OUT, "losses_gan.safetensors"), gan)


# ----------------------------------------------------------------------------------------------
# PatchSampleF and PatchNCE (CUT)
# ----------------------------------------------------------------------------------------------
def normalize(x):
    # Normalize(2): the norm over dim 1 of a 2-D [rows, features] tensor.
    return x / (x.pow(2).sum(1, keepdim=True).pow(0.5) + 1e-7)


class Mlps(nn.Module):
    """mlp_<i> = Sequential(Linear(c_in, nc), ReLU, Linear(nc, nc)), created eagerly."""

    def __init__(self, ins, nc, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        for i, c in enumerate(ins):
            mlp = nn.Sequential(nn.Linear(c, nc), nn.ReLU(), nn.Linear(nc, nc))
            for lin in (mlp[0], mlp[2]):
                fan_in, fan_out = lin.weight.shape[1], lin.weight.shape[0]
                std = (2.0 / (fan_in + fan_out)) ** 0.5  # xavier-normal, gain 1
                with torch.no_grad():
                    lin.weight.copy_(torch.randn(lin.weight.shape, generator=g) * std)
                    # Non-zero biases so that loading them is tested.
                    lin.bias.copy_(torch.randn(lin.bias.shape, generator=g) * 0.1)
            setattr(self, "mlp_%d" % i, mlp)

    def sample(self, feats, ids):
        """CUT PatchSampleF.forward with given patch ids -> list of [B*P, nc]."""
        out = []
        for i, feat in enumerate(feats):
            fr = feat.permute(0, 2, 3, 1).flatten(1, 2)
            x = fr[:, torch.as_tensor(ids[i], dtype=torch.long), :].flatten(0, 1)
            x = getattr(self, "mlp_%d" % i)(x)
            out.append(normalize(x))
        return out

    def all_positions(self, feats):
        """NEGCUT PatchSampleF.forward with num_patches = 0 -> list of [B, nc, H, W]."""
        out = []
        for i, feat in enumerate(feats):
            B, H, W = feat.shape[0], feat.shape[2], feat.shape[3]
            x = feat.permute(0, 2, 3, 1).flatten(1, 2).flatten(0, 1)
            x = normalize(getattr(self, "mlp_%d" % i)(x))
            x = x.reshape([B, -1, x.shape[-1]]).permute(0, 2, 1).reshape([B, x.shape[-1], H, W])
            out.append(x)
        return out


def patch_nce(feat_q, feat_k, batch_size, tau=0.07, all_negatives=False):
    """CUT PatchNCELoss.forward (reduction none)."""
    num_patches, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1)).view(num_patches, 1)
    bdim = 1 if all_negatives else batch_size
    q = feat_q.view(bdim, -1, dim)
    k = feat_k.view(bdim, -1, dim)
    npatches = q.size(1)
    l_neg = torch.bmm(q, k.transpose(2, 1))
    diagonal = torch.eye(npatches, dtype=torch.bool)[None, :, :]
    l_neg = l_neg.masked_fill(diagonal, -10.0).view(-1, npatches)
    out = torch.cat((l_pos, l_neg), dim=1) / tau
    return nn.CrossEntropyLoss(reduction="none")(out, torch.zeros(out.size(0), dtype=torch.long))


def learned_nce(feat_q, feat_k, neg, batch_size, tau=0.07, all_negatives=False):
    """NEGCUT LearnedPatchNCELoss.forward with neg_sample (reduction none)."""
    num_patches, dim = feat_q.shape
    feat_k = feat_k.detach()
    l_pos = torch.bmm(feat_q.view(num_patches, 1, -1), feat_k.view(num_patches, -1, 1)).view(num_patches, 1)
    bdim = 1 if all_negatives else batch_size
    q = feat_q.view(bdim, -1, dim)
    n = neg.view(bdim, -1, dim)
    l_neg = torch.bmm(q, n.transpose(2, 1)).view(-1, n.size(1))
    out = torch.cat((l_pos, l_neg), dim=1) / tau
    return nn.CrossEntropyLoss(reduction="none")(out, torch.zeros(out.size(0), dtype=torch.long))


def diversity(neg, K):
    n = neg.view(-1, K, neg.shape[1])
    return -torch.abs(n[:, :K // 2] - n[:, K // 2:]).mean()


def state_dict(m):
    return {k: a(v) for k, v in m.state_dict().items()}


B, NC, P, K, Z = 2, 16, 10, 10, 64
CH = [3, 8, 16]
HW = [(8, 8), (6, 5), (4, 4)]
rs = np.random.RandomState(0)
ids = [rs.permutation(h * w)[:P] for (h, w) in HW]
feats_k = [torch.randn(B, c, h, w) for c, (h, w) in zip(CH, HW)]
feats_q = [0.6 * fk + 0.8 * torch.randn(fk.shape) for fk in feats_k]
netF = Mlps(CH, NC, seed=1)
write_safetensors(os.path.join(OUT, "losses_patch_f.safetensors"), state_dict(netF))

pn = {}
for i in range(3):
    pn[f"feat_k.{i}"], pn[f"feat_q.{i}"], pn[f"ids.{i}"] = a(feats_k[i]), a(feats_q[i]), ids[i].astype(np.int64)
fq = [f.clone().requires_grad_(True) for f in feats_q]
k_pool = netF.sample(feats_k, ids)
q_pool = netF.sample(fq, ids)
total = 0.0
for i in range(3):
    per = patch_nce(q_pool[i], k_pool[i], B)
    pn[f"k_pool.{i}"], pn[f"q_pool.{i}"], pn[f"loss.{i}"] = a(k_pool[i]), a(q_pool[i]), a(per)
    total = total + per.mean()
total = total / 3
params = dict(netF.named_parameters())
grads = torch.autograd.grad(total, fq + [params["mlp_0.0.weight"], params["mlp_2.2.bias"], params["mlp_1.2.weight"]])
pn["total"] = a(total.reshape(1))
for i in range(3):
    pn[f"total.grad_feat_q.{i}"] = a(grads[i])
pn["total.grad.mlp_0.0.weight"] = a(grads[3])
pn["total.grad.mlp_2.2.bias"] = a(grads[4])
pn["total.grad.mlp_1.2.weight"] = a(grads[5])
# batch_dim_for_bmm = 1: negatives from the whole batch.
fq0 = feats_q[0].clone().requires_grad_(True)
qa = netF.sample([fq0], [ids[0]])[0]
per_all = patch_nce(qa, k_pool[0].detach(), B, all_negatives=True)
(g_all,) = torch.autograd.grad(per_all.mean(), fq0)
pn["all_negatives.loss.0"], pn["all_negatives.grad_feat_q.0"] = a(per_all), a(g_all)
# All positions (NEGCUT's num_patches = 0) of F.
for i, m in enumerate(netF.all_positions(feats_k)):
    pn[f"all_positions.{i}"] = a(m)
write_safetensors(os.path.join(OUT, "losses_patchnce.safetensors"), pn)


# ----------------------------------------------------------------------------------------------
# NEG-CUT
# ----------------------------------------------------------------------------------------------
class NegGen(nn.Module):
    """Negative_Generator(use_conv=False) with given noise."""

    def __init__(self, layers, nc, z_dim, seed):
        super().__init__()
        ins = [nc + z_dim] * layers
        self.body = Mlps(ins, nc, seed)  # only for its mlp_<i>; re-registered below
        for i in range(layers):
            setattr(self, "mlp_%d" % i, getattr(self.body, "mlp_%d" % i))
        del self.body

    def forward(self, feats, noise, num_patches):
        out = []
        for i, feat in enumerate(feats):
            f = feat.permute(0, 2, 3, 1).mean(dim=(1, 2))
            f = f.unsqueeze(dim=1).repeat(1, num_patches, 1)
            inp = torch.cat([f, noise[i]], dim=2).flatten(0, 1)
            out.append(normalize(getattr(self, "mlp_%d" % i)(inp)))
        return out


netFm = Mlps(CH, NC, seed=2)
netN = NegGen(3, NC, Z, seed=3)
write_safetensors(os.path.join(OUT, "losses_patch_fm.safetensors"), state_dict(netFm))
write_safetensors(os.path.join(OUT, "losses_negative_generator.safetensors"), state_dict(netN))
noise = [torch.randn(B, K, Z) for _ in range(3)]

ng = {}
for i in range(3):
    ng[f"noise.{i}"] = a(noise[i])
fm_maps = netFm.all_positions(feats_k)
for i in range(3):
    ng[f"fm_all.{i}"] = a(fm_maps[i])
negs = netN(fm_maps, noise, K)
for i in range(3):
    ng[f"negatives.{i}"] = a(negs[i])

# G step: L = mean over layers of the learned NCE (negatives not detached: the gradient reaches
# feat_k through F' and N).
fq = [f.clone().requires_grad_(True) for f in feats_q]
fk = [f.clone().requires_grad_(True) for f in feats_k]
k_pool = netF.sample(fk, ids)
q_pool = netF.sample(fq, ids)
negs = netN(netFm.all_positions(fk), noise, K)
total = 0.0
for i in range(3):
    per = learned_nce(q_pool[i], k_pool[i], negs[i], B)
    ng[f"learned.loss.{i}"] = a(per)
    total = total + per.mean()
total = total / 3
grads = torch.autograd.grad(total, fq + fk)
ng["g_step.total"] = a(total.reshape(1))
for i in range(3):
    ng[f"g_step.grad_feat_q.{i}"] = a(grads[i])
    ng[f"g_step.grad_feat_k.{i}"] = a(grads[3 + i])

# N step: -NCE(q.detach(), k.detach(), n) + lambda_MS * diversity, gradients w.r.t. N.
negs = netN(netFm.all_positions(feats_k), noise, K)
nce = sum(learned_nce(q_pool[i].detach(), k_pool[i].detach(), negs[i], B).mean() for i in range(3)) / 3
div_layers = [diversity(negs[i], K) for i in range(3)]
div = sum(div_layers) / 3
loss_n = -nce + 1.0 * div
nparams = dict(netN.named_parameters())
names = sorted(nparams)
grads = torch.autograd.grad(loss_n, [nparams[n] for n in names])
ng["n_step.nce"], ng["n_step.diversity"], ng["n_step.total"] = a(nce.reshape(1)), a(div.reshape(1)), a(loss_n.reshape(1))
for i in range(3):
    ng[f"diversity.{i}"] = a(div_layers[i].reshape(1))
for n, g in zip(names, grads):
    ng[f"n_step.grad.{n}"] = a(g)

# Leaf-tensor checks of the learned loss and the diversity term.
def unit(shape):
    x = torch.randn(shape)
    return x / x.norm(dim=-1, keepdim=True)


lq, lk, ln = unit((B * P, NC)).requires_grad_(True), unit((B * P, NC)), unit((B * K, NC)).requires_grad_(True)
per = learned_nce(lq, lk, ln, B)
gq, gn = torch.autograd.grad(per.mean(), [lq, ln])
ng["leaf.q"], ng["leaf.k"], ng["leaf.n"] = a(lq.view(B, P, NC)), a(lk.view(B, P, NC)), a(ln.view(B, K, NC))
ng["leaf.loss"], ng["leaf.grad_q"], ng["leaf.grad_n"] = a(per), a(gq.view(B, P, NC)), a(gn.view(B, K, NC))
per_all = learned_nce(lq, lk, ln, B, all_negatives=True)
ng["leaf.all_negatives.loss"] = a(per_all)
d = diversity(ln, K)
(gd,) = torch.autograd.grad(d, ln)
ng["leaf.diversity"], ng["leaf.diversity.grad_n"] = a(d.reshape(1)), a(gd.view(B, K, NC))

# EMA: accumulate(F', F, decay=0.9).
with torch.no_grad():
    pf = dict(netF.named_parameters())
    for k, v in netFm.named_parameters():
        v.mul_(0.9).add_(pf[k], alpha=1 - 0.9)
for k, v in netFm.state_dict().items():
    ng[f"ema.{k}"] = a(v)
write_safetensors(os.path.join(OUT, "losses_negcut.safetensors"), ng)

with open(os.path.join(OUT, "losses_versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "numpy": np.__version__}, f, indent=1)
    f.write("\n")
print("wrote", sorted(n for n in os.listdir(OUT) if n.startswith("losses_")))
