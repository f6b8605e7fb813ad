#!/usr/bin/env python3
"""Writes the metric-learning parity fixtures with PyTorch (Debian's torch 1.13) and numpy.

Every reference below is the upstream formula, transcribed from the sources named:
  - cirtorch (filipradenovic/cnnimageretrieval-pytorch): layers/functional.py (gem, mac, spoc, l2n,
    contrastive_loss, triplet_loss), networks/imageretrievalnet.py (ImageRetrievalNet.forward,
    extract_ms), utils/whiten.py (whitenlearn, cholesky, pcawhitenlearn, whitenapply);
  - CosPlace (gmberton/CosPlace): cosplace_model/layers.py (L2Norm = F.normalize, GeM),
    cosplace_network.py (aggregation Sequential), cosface_loss.py (MarginCosineProduct);
  - NocPlace (BinuxLiu/NocPlace): losses/ikt_loss.py (SoftTarget), train.py (how it is combined).

Run:  /usr/bin/python3 crates/metric-learning/scripts/gen_fixtures.py
Outputs in crates/metric-learning/tests/fixtures/ (deterministic: fixed seeds, CPU kernels):
  pooling.safetensors      GeM/MAC/SPoC/L2N forward + GeM gradients (x and p)
  heads.safetensors        cirtorch head (GeM->L2N->whiten->L2N) and CosPlace aggregation, fwd + grads
  losses.safetensors       contrastive, triplet, CosFace, IKT, NocPlace loss, fwd + grads
  whitening.safetensors    Lw (Radenovic) and PCA whitening with numpy (float64)
  cirtorch_resnet18.pth    a cirtorch-format checkpoint {'state_dict','meta'} (ResNet-18 / 16, GeM, whiten)
  cosplace_vgg16.pth       a CosPlace-format state_dict (VGG16 / 16 widths, GeM, Linear)
  networks_io.safetensors  inputs and outputs of both networks, incl. cirtorch extract_ms
  sfm_mini.pkl             a cirtorch training database in retrieval-SfM-120k.pkl's layout (protocol 2)
"""
import json, math, os, pickle, struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import ResNet, BasicBlock
from torchvision.models.vgg import VGG, make_layers
import sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "scripts"))
from fixture_utils import randomise, read_safetensors, shrink_resnet, write_safetensors  # noqa: E402


def write_safetensors_f64(path, tensors):
    write_safetensors(path, tensors, keep_f64=True)
    print(f"{os.path.basename(path)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
os.makedirs(OUT, exist_ok=True)
torch.use_deterministic_algorithms(True)


def np64(t):
    return t.detach().to(torch.float64).numpy()


# ---------------------------------------------------------------- cirtorch layers/functional.py
def gem(x, p=3, eps=1e-6):
    return F.avg_pool2d(x.clamp(min=eps).pow(p), (x.size(-2), x.size(-1))).pow(1.0 / p)


def mac(x):
    return F.max_pool2d(x, (x.size(-2), x.size(-1)))


def spoc(x):
    return F.avg_pool2d(x, (x.size(-2), x.size(-1)))


def l2n(x, eps=1e-6):
    return x / (torch.norm(x, p=2, dim=1, keepdim=True) + eps).expand_as(x)


def contrastive_loss(x, label, margin=0.7, eps=1e-6, reduce=True):
    # x is D x N
    dim = x.size(0)
    nq = torch.sum(label.data == -1)
    S = x.size(1) // nq
    x1 = x[:, ::S].permute(1, 0).repeat(1, S - 1).view((S - 1) * nq, dim).permute(1, 0)
    idx = [i for i in range(len(label)) if label.data[i] != -1]
    x2 = x[:, idx]
    lbl = label[label != -1]
    dif = x1 - x2
    D = torch.pow(dif + eps, 2).sum(dim=0).sqrt()
    y = 0.5 * lbl * torch.pow(D, 2) + 0.5 * (1 - lbl) * torch.pow(torch.clamp(margin - D, min=0), 2)
    return torch.sum(y) if reduce else y


def triplet_loss(x, label, margin=0.1, reduce=True):
    dim = x.size(0)
    nq = torch.sum(label.data == -1).item()
    S = x.size(1) // nq
    xa = x[:, label.data == -1].permute(1, 0).repeat(1, S - 2).view((S - 2) * nq, dim).permute(1, 0)
    xp = x[:, label.data == 1].permute(1, 0).repeat(1, S - 2).view((S - 2) * nq, dim).permute(1, 0)
    xn = x[:, label.data == 0]
    dist_pos = torch.sum(torch.pow(xa - xp, 2), dim=0)
    dist_neg = torch.sum(torch.pow(xa - xn, 2), dim=0)
    y = torch.clamp(dist_pos - dist_neg + margin, min=0)
    return torch.sum(y) if reduce else y


# ---------------------------------------------------------------- CosPlace / NocPlace
def cosine_sim(x1, x2, dim=1, eps=1e-8):
    ip = torch.mm(x1, x2.t())
    w1 = torch.norm(x1, 2, dim)
    w2 = torch.norm(x2, 2, dim)
    return ip / torch.ger(w1, w2).clamp(min=eps)


def margin_cosine_product(x, weight, label, s=30.0, m=0.40):
    cosine = cosine_sim(x, weight)
    one_hot = torch.zeros_like(cosine)
    one_hot.scatter_(1, label.view(-1, 1), 1.0)
    return s * (cosine - one_hot * m)


def soft_target(out_s, out_t, T):
    return F.kl_div(F.log_softmax(out_s / T, dim=1), F.softmax(out_t / T, dim=1), reduction="batchmean") * T * T


# ---------------------------------------------------------------- 1. pooling
g = torch.Generator().manual_seed(0)
x = torch.relu(torch.randn(2, 8, 5, 7, generator=g, dtype=torch.float64))  # ~half exact zeros -> clamp
x.requires_grad_(True)
w_gem = torch.randn(2, 8, generator=g, dtype=torch.float64)
pool = {"x": np64(x), "w_gem": np64(w_gem)}
for tag, p0 in [("p3", 3.0), ("p2_3", 2.3)]:
    p = torch.tensor([p0], dtype=torch.float64, requires_grad=True)
    y = gem(x, p)[:, :, 0, 0]
    (y * w_gem).sum().backward()
    pool[f"gem_{tag}"] = np64(y)
    pool[f"gem_{tag}_grad_x"] = np64(x.grad)
    pool[f"gem_{tag}_grad_p"] = np64(p.grad)
    x.grad = None
xs = torch.randn(2, 8, 5, 7, generator=g, dtype=torch.float64)  # signed input for MAC/SPoC
pool["xs"] = np64(xs)
pool["mac"] = np64(mac(xs)[:, :, 0, 0])
pool["spoc"] = np64(spoc(xs)[:, :, 0, 0])
v = torch.randn(3, 10, generator=g, dtype=torch.float64)
v[2] = 0.0  # the zero vector stays finite thanks to eps
pool["v"] = np64(v)
pool["l2n"] = np64(l2n(v))
pool["channel_l2"] = np64(F.normalize(xs, p=2, dim=1))
write_safetensors_f64(os.path.join(OUT, "pooling.safetensors"), pool)

# ---------------------------------------------------------------- 2. heads (pooling + whitening)
g = torch.Generator().manual_seed(1)
heads = {}
# cirtorch: features (post-ReLU) -> GeM -> L2N -> whiten Linear -> L2N
f = torch.relu(torch.randn(3, 12, 4, 6, generator=g, dtype=torch.float64)).requires_grad_(True)
p = torch.tensor([2.7], dtype=torch.float64, requires_grad=True)
W = torch.randn(12, 12, generator=g, dtype=torch.float64) * 0.3
b = torch.randn(12, generator=g, dtype=torch.float64) * 0.1
W.requires_grad_(True)
o = l2n(gem(f, p)).squeeze(-1).squeeze(-1)
o = l2n(F.linear(o, W, b))
wo = torch.randn(3, 12, generator=g, dtype=torch.float64)
(o * wo).sum().backward()
heads.update({"cir_f": np64(f), "cir_p": np64(p), "cir_w": np64(W), "cir_b": np64(b), "cir_out": np64(o),
              "cir_wo": np64(wo), "cir_grad_f": np64(f.grad), "cir_grad_p": np64(p.grad), "cir_grad_w": np64(W.grad)})
# CosPlace aggregation: L2Norm(dim=1) -> GeM -> Flatten -> Linear -> L2Norm (signed input: VGG16 pre-ReLU)
f = torch.randn(3, 12, 4, 6, generator=g, dtype=torch.float64).requires_grad_(True)
p = torch.tensor([3.1], dtype=torch.float64, requires_grad=True)
W = (torch.randn(5, 12, generator=g, dtype=torch.float64) * 0.3).requires_grad_(True)
b = torch.randn(5, generator=g, dtype=torch.float64) * 0.1
o = F.normalize(F.linear(gem(F.normalize(f, p=2, dim=1), p)[:, :, 0, 0], W, b), p=2, dim=1)
wo = torch.randn(3, 5, generator=g, dtype=torch.float64)
(o * wo).sum().backward()
heads.update({"cos_f": np64(f), "cos_p": np64(p), "cos_w": np64(W), "cos_b": np64(b), "cos_out": np64(o),
              "cos_wo": np64(wo), "cos_grad_f": np64(f.grad), "cos_grad_p": np64(p.grad), "cos_grad_w": np64(W.grad)})
write_safetensors_f64(os.path.join(OUT, "heads.safetensors"), heads)

# ---------------------------------------------------------------- 3. losses
g = torch.Generator().manual_seed(2)
D, nt, nneg = 16, 3, 5
cols, labels = [], []
for t in range(nt):
    q = F.normalize(torch.randn(D, generator=g, dtype=torch.float64), dim=0)
    cols.append(q)
    cols.append(F.normalize(q + 0.4 * torch.randn(D, generator=g, dtype=torch.float64), dim=0))
    for k in range(nneg):  # from near-duplicates (inside the margin) to unrelated images
        sigma = [0.1, 0.2, 0.35, 0.6, 3.0][k]
        cols.append(F.normalize(q + sigma * torch.randn(D, generator=g, dtype=torch.float64), dim=0))
    labels += [-1, 1] + [0] * nneg
X = torch.stack(cols, dim=1).requires_grad_(True)  # D x N, cirtorch layout
label = torch.tensor(labels)
losses = {"x": np64(X.t()), "labels": np.array(labels, dtype=np.int64)}
for tag, margin in [("c07", 0.7), ("c075", 0.75), ("c085", 0.85)]:
    X.grad = None
    y = contrastive_loss(X, label, margin=margin)
    y.backward()
    losses[f"contrastive_{tag}"] = np64(y).reshape(1)
    losses[f"contrastive_{tag}_pairs"] = np64(contrastive_loss(X, label, margin=margin, reduce=False))
    losses[f"contrastive_{tag}_grad"] = np64(X.grad.t())
X.grad = None
y = triplet_loss(X, label, margin=0.1)
y.backward()
losses["triplet"] = np64(y).reshape(1)
losses["triplet_triplets"] = np64(triplet_loss(X, label, margin=0.1, reduce=False))
losses["triplet_grad"] = np64(X.grad.t())

# CosFace / LMC on 7 descriptors, 5 classes
B, C, Dc = 7, 5, 8
xc = torch.randn(B, Dc, generator=g, dtype=torch.float64).requires_grad_(True)
Wc = torch.empty(C, Dc, dtype=torch.float64)
torch.manual_seed(3)
nn.init.xavier_uniform_(Wc)
Wc.requires_grad_(True)
yc = torch.tensor([0, 3, 1, 4, 2, 3, 0])
logits = margin_cosine_product(xc, Wc, yc)
ce = F.cross_entropy(logits, yc)
ce.backward()
losses.update({"cf_x": np64(xc), "cf_w": np64(Wc), "cf_y": yc.numpy().astype(np.int64), "cf_logits": np64(logits),
               "cf_loss": np64(ce).reshape(1), "cf_grad_x": np64(xc.grad), "cf_grad_w": np64(Wc.grad)})

# IKT alone on logits (student z_s, teacher z_t), T = 4, batchmean
zs = (torch.randn(B, C, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
zt = (torch.randn(B, C, generator=g, dtype=torch.float64) * 5).requires_grad_(True)
ikt = soft_target(zs, zt, 4.0)
ikt.backward()
losses.update({"ikt_zs": np64(zs), "ikt_zt": np64(zt), "ikt": np64(ikt).reshape(1),
               "ikt_grad_zs": np64(zs.grad), "ikt_grad_zt": np64(zt.grad)})

# NocPlace loss: CE(CosFace(f, y), y) + lambda * T^2 KL(softmax(CosFace(d, y)/T) || softmax(CosFace(f, y)/T))
# with the inherited (day) descriptors d constant and the same classifier, not detached (train.py).
fs = torch.randn(B, Dc, generator=g, dtype=torch.float64).requires_grad_(True)
dinh = torch.randn(B, Dc, generator=g, dtype=torch.float64)
Wn = Wc.detach().clone().requires_grad_(True)
out = margin_cosine_product(fs, Wn, yc)
inh = margin_cosine_product(dinh, Wn, yc)
lam = 1.0
total = F.cross_entropy(out, yc) + soft_target(out, inh, 4.0) * lam
total.backward()
losses.update({"noc_f": np64(fs), "noc_d": np64(dinh), "noc_loss": np64(total).reshape(1),
               "noc_grad_f": np64(fs.grad), "noc_grad_w": np64(Wn.grad)})
write_safetensors_f64(os.path.join(OUT, "losses.safetensors"), losses)


# ---------------------------------------------------------------- 4. whitening (numpy, cirtorch utils/whiten.py)
def cholesky(S):
    alpha = 0
    while 1:
        try:
            return np.linalg.cholesky(S + alpha * np.eye(*S.shape)), alpha
        except np.linalg.LinAlgError:
            alpha = 1e-10 if alpha == 0 else alpha * 10


def whitenlearn(X, qidxs, pidxs):
    m = X[:, qidxs].mean(axis=1, keepdims=True)
    df = X[:, qidxs] - X[:, pidxs]
    S = np.dot(df, df.T) / df.shape[1]
    L, alpha = cholesky(S)
    P = np.linalg.inv(L)
    df = np.dot(P, X - m)
    Dm = np.dot(df, df.T)
    eigval, eigvec = np.linalg.eig(Dm)
    order = eigval.argsort()[::-1]
    eigval = eigval[order].real
    eigvec = eigvec[:, order].real
    P = np.dot(eigvec.T, P)
    return m, P, alpha, eigval


def pcawhitenlearn(X):
    N = X.shape[1]
    m = X.mean(axis=1, keepdims=True)
    Xc = X - m
    Xcov = np.dot(Xc, Xc.T)
    Xcov = (Xcov + Xcov.T) / (2 * N)
    eigval, eigvec = np.linalg.eig(Xcov)
    order = eigval.argsort()[::-1]
    eigval = eigval[order].real
    eigvec = eigvec[:, order].real
    P = np.dot(np.linalg.inv(np.sqrt(np.diag(eigval))), eigvec.T)
    return m, P, eigval


def whitenapply(X, m, P, dimensions=None):
    if not dimensions:
        dimensions = P.shape[0]
    X = np.dot(P[:dimensions, :], X - m)
    return X / (np.linalg.norm(X, ord=2, axis=0, keepdims=True) + 1e-6)


rng = np.random.RandomState(4)
Dw, Nw, npairs = 8, 60, 30
Xw = rng.randn(Dw, Nw)
qidx = np.arange(npairs)
pidx = np.arange(npairs, 2 * npairs)
Xw[:, pidx] = Xw[:, qidx] + 0.3 * rng.randn(Dw, npairs)
Xw /= np.linalg.norm(Xw, axis=0, keepdims=True)
m, P, alpha, ev = whitenlearn(Xw, qidx, pidx)
assert alpha == 0
wh = {"x": Xw.T.copy(), "qidxs": qidx, "pidxs": pidx, "lw_m": m[:, 0], "lw_p": P, "lw_eig": ev,
      "lw_y": whitenapply(Xw, m, P).T.copy(), "lw_y4": whitenapply(Xw, m, P, 4).T.copy()}
# A singular pair covariance (last coordinate identically 0): Cholesky fails at alpha 0 and
# succeeds once the jitter 1e-10 is on the diagonal.
Xs = Xw.copy()
Xs[-1, :] = 0.0
ms, Ps, alpha_s, _ = whitenlearn(Xs, qidx, pidx)
assert alpha_s == 1e-10, alpha_s
wh.update({"xs": Xs.T.copy(), "lws_m": ms[:, 0], "lws_p": Ps, "lws_alpha": np.array([alpha_s]),
           "lws_y": whitenapply(Xs, ms, Ps).T.copy()})
mp, Pp, evp = pcawhitenlearn(Xw)
wh.update({"pca_m": mp[:, 0], "pca_p": Pp, "pca_eig": evp, "pca_y": whitenapply(Xw, mp, Pp).T.copy(),
           "pca_y5": whitenapply(Xw, mp, Pp, 5).T.copy()})
write_safetensors_f64(os.path.join(OUT, "whitening.safetensors"), wh)


# ---------------------------------------------------------------- 5. networks in the two checkpoint formats
class GeM(nn.Module):
    def __init__(self, p=3, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x):
        return gem(x, p=self.p, eps=self.eps)


class L2N(nn.Module):
    def forward(self, x):
        return l2n(x)


class ImageRetrievalNet(nn.Module):
    """cirtorch's ImageRetrievalNet.forward, returning N x D (cirtorch permutes to D x N)."""

    def __init__(self, features, pool, whiten):
        super().__init__()
        self.features = nn.Sequential(*features)
        self.pool = pool
        self.whiten = whiten
        self.norm = L2N()

    def forward(self, x):
        o = self.features(x)
        o = self.norm(self.pool(o)).squeeze(-1).squeeze(-1)
        if self.whiten is not None:
            o = self.norm(self.whiten(o))
        return o


def extract_ms(net, input, ms, msp):
    v = 0
    for s in ms:
        if s == 1:
            input_t = input.clone()
        else:
            input_t = F.interpolate(input, scale_factor=s, mode="bilinear", align_corners=False)
        v = v + net(input_t).pow(msp).squeeze()
    v = v / len(ms)
    v = v.pow(1.0 / msp)
    return v / v.norm()


class L2Norm(nn.Module):
    def forward(self, x):
        return F.normalize(x, p=2, dim=1)


class Flatten(nn.Module):
    def forward(self, x):
        return x[:, :, 0, 0]


class GeoLocalizationNet(nn.Module):
    def __init__(self, backbone, features_dim, fc_output_dim):
        super().__init__()
        self.backbone = backbone
        self.aggregation = nn.Sequential(L2Norm(), GeM(), Flatten(), nn.Linear(features_dim, fc_output_dim), L2Norm())

    def forward(self, x):
        return self.aggregation(self.backbone(x))


torch.manual_seed(5)
io = {}
# cirtorch GeM ResNet-18 (widths / 16 -> 32-d), learned p 2.6, whitening Linear(32, 32)
r18 = randomise(shrink_resnet(torchvision.models.resnet18(num_classes=10), 16, linear=False), 6)
cir = ImageRetrievalNet(list(r18.children())[:-2], GeM(), nn.Linear(32, 32)).eval()
with torch.no_grad():
    cir.pool.p.fill_(2.6)
    cir.whiten.weight.copy_(torch.eye(32) + 0.2 * torch.randn(32, 32))
    cir.whiten.bias.copy_(0.05 * torch.randn(32))
torch.save({"epoch": 3, "meta": {"architecture": "resnet18", "pooling": "gem", "whitening": True, "outputdim": 32},
            "state_dict": cir.state_dict(), "min_loss": 0.5}, os.path.join(OUT, "cirtorch_resnet18.pth"))
g = torch.Generator().manual_seed(7)
xin = torch.randn(2, 3, 70, 93, generator=g)
with torch.no_grad():
    io["cir_x"] = xin.numpy()
    io["cir_out"] = cir(xin).numpy()
    cir_nw = ImageRetrievalNet(list(r18.children())[:-2], cir.pool, None).eval()
    io["cir_out_nowhiten"] = cir_nw(xin).numpy()
    # multi-scale (cirtorch extract_ms; msp = GeM p for a net without whitening) on one image
    ms = [1, 1 / math.sqrt(2), 1 / 2]
    io["ms_x"] = xin[:1].numpy()
    io["ms_out"] = extract_ms(cir_nw, xin[:1], ms, cir.pool.p.item()).numpy()
    io["ms_out_p1"] = extract_ms(cir_nw, xin[:1], ms, 1.0).numpy()
    # the scale-factor resize on its own
    io["resize_071"] = F.interpolate(xin[:1], scale_factor=1 / math.sqrt(2), mode="bilinear", align_corners=False).numpy()
    io["resize_05"] = F.interpolate(xin[:1], scale_factor=0.5, mode="bilinear", align_corners=False).numpy()
# gradient through the whole cirtorch net w.r.t. GeM p (training signal for p)
cir.zero_grad()
out = cir(xin)
(out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
io["cir_grad_p"] = cir.pool.p.grad.numpy().copy()
io["cir_grad_whiten_w"] = cir.whiten.weight.grad.numpy().copy()

# CosPlace VGG16 (widths / 16), features[:-2] (last conv without its ReLU), 16 -> 12-d
cfg = [4, 4, "M", 8, 8, "M", 16, 16, 16, "M", 32, 32, 32, "M", 32, 32, 32, "M"]
vgg = randomise(VGG(make_layers(cfg), num_classes=10, init_weights=False), 8)
backbone = nn.Sequential(*list(vgg.features.children())[:-2])
cos = GeoLocalizationNet(backbone, 32, 12).eval()
with torch.no_grad():
    cos.aggregation[1].p.fill_(3.3)
    cos.aggregation[3].weight.copy_(0.3 * torch.randn(12, 32))
    cos.aggregation[3].bias.copy_(0.05 * torch.randn(12))
torch.save(cos.state_dict(), os.path.join(OUT, "cosplace_vgg16.pth"))
xin = torch.randn(2, 3, 64, 80, generator=g)
with torch.no_grad():
    io["cos_x"] = xin.numpy()
    io["cos_out"] = cos(xin).numpy()
write_safetensors_f64(os.path.join(OUT, "networks_io.safetensors"), io)

# ---------------------------------------------------------------- 6. cirtorch training pickle layout
rs = np.random.RandomState(6)
def db(n, nclusters):
    cids = ["".join(rs.choice(list("0123456789abcdef"), 32)) for _ in range(n)]
    cluster = [int(c) for c in rs.randint(0, nclusters, n)]
    q = [int(i) for i in rs.choice(n, n // 2, replace=False)]
    p = [int(next(j for j in range(n) if cluster[j] == cluster[i] and j != i)) if cluster.count(cluster[i]) > 1 else i for i in q]
    return {"cids": cids, "cluster": cluster, "qidxs": q, "pidxs": p}
with open(os.path.join(OUT, "sfm_mini.pkl"), "wb") as fh:
    pickle.dump({"train": db(12, 4), "val": db(6, 2)}, fh, protocol=2)
with open(os.path.join(OUT, "sfm_mini.json"), "w") as fh:  # the same content, for the test
    with open(os.path.join(OUT, "sfm_mini.pkl"), "rb") as pf:
        json.dump(pickle.load(pf), fh)

with open(os.path.join(OUT, "versions.json"), "w") as fh:
    json.dump({"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}, fh)
