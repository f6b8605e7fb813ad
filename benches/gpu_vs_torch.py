#!/usr/bin/env python3
"""The throughput half of `examples/gpu_check.rs`, in PyTorch, on the same device and shapes.

    python3 benches/gpu_vs_torch.py --device cuda --json torch.json     # on the GPU machine
    /usr/bin/python3 benches/gpu_vs_torch.py --device cpu --quick       # a dry run here

Same computations as the Rust check (random inputs; what is timed is the same work):
- MobileNetV2-GeM training step: one cirtorch tuple (7 images, 272x362) through torchvision's
  MobileNetV2 features (BatchNorm frozen: eval mode), GeM (p = 3), L2 normalisation, cirtorch's
  contrastive loss (margin 0.7, labels [-1, 1, 0 x 5]), backward, Adam step.
- ResNet-50 forward (torchvision, eval, no grad), batch 8 at 224x224.
- One CUT iteration at the paper's size (batch 1, 256x256, ngf 64, 9 residual blocks, anti-aliased
  generator and PatchGAN, PatchNCE on layers 0,4,8,12,16 with 256 patches and a 256-wide F,
  identity NCE): D step, G + F step — the networks of `crates/nightgen-gan/scripts/negcut_dynamics.py`.
- Exact top-20 inner-product k-NN of 100 queries in 1,000,000 x 512 unit vectors (matmul + topk
  in blocks of 262,144 rows, then a merge).
Each is timed as the median of 10 runs after 2 warm-ups, synchronising the device around each run.
Prints one JSON object.
"""
import argparse
import importlib.util
import json
import pathlib
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

ROOT = pathlib.Path(__file__).resolve().parent.parent


def load_cut_networks():
    path = ROOT / "crates/nightgen-gan/scripts/negcut_dynamics.py"
    spec = importlib.util.spec_from_file_location("negcut_dynamics", path)
    mod = importlib.util.module_from_spec(spec)
    threads = torch.get_num_threads()
    spec.loader.exec_module(mod)  # it sets one thread for its own CPU runs: undo that
    torch.set_num_threads(threads)
    return mod


def timed(fn, reps, sync):
    times = []
    for _ in range(reps + 2):
        sync()
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    runs = sorted(times[2:])
    return {"median_s": runs[len(runs) // 2], "warmup_s": times[:2], "runs": len(runs)}


def gem(x, p=3.0, eps=1e-6):
    return F.avg_pool2d(x.clamp(min=eps).pow(p), (x.size(-2), x.size(-1))).pow(1.0 / p)


def contrastive(x, labels, margin=0.7):
    # cirtorch: x [D, N] with the query first in each tuple
    dim = x.size(0)
    nq = int((labels == -1).sum())
    S = x.size(1) // nq
    x1 = x[:, ::S].permute(1, 0).repeat(1, S - 1).view((S - 1) * nq, dim).permute(1, 0)
    idx = [i for i in range(len(labels)) if labels[i] != -1]
    x2 = x[:, idx]
    lbl = labels[labels != -1]
    dif = x1 - x2
    D = torch.pow(dif + 1e-6, 2).sum(dim=0).sqrt()
    y = 0.5 * lbl * torch.pow(D, 2) + 0.5 * (1 - lbl) * torch.pow(torch.clamp(margin - D, min=0), 2)
    return torch.sum(y)


def mobilenet_gem_step(dev, size, reps, sync):
    net = torchvision.models.mobilenet_v2().features.to(dev)
    net.train()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.eval()
    p = nn.Parameter(torch.ones(1, device=dev) * 3.0)
    opt = torch.optim.Adam([{"params": net.parameters()}, {"params": [p], "weight_decay": 0}], lr=1e-6)
    x = torch.randn(7, 3, *size, device=dev)
    labels = torch.tensor([-1, 1, 0, 0, 0, 0, 0], device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        d = F.normalize(gem(net(x), p).flatten(1), dim=1).t()
        contrastive(d, labels).backward()
        opt.step()

    r = timed(step, reps, sync)
    r["tuples_per_s"] = 1.0 / r["median_s"]
    return r


def resnet50_forward(dev, reps, sync):
    net = torchvision.models.resnet50().to(dev).eval()
    x = torch.randn(8, 3, 224, 224, device=dev)

    def fwd():
        with torch.no_grad():
            net(x).sum().item()

    r = timed(fwd, reps, sync)
    r["images_per_s"] = 8.0 / r["median_s"]
    return r


def cut_iteration(dev, side, ngf, blocks, patches, reps, sync):
    mod = load_cut_networks()
    layers = [0, 4, 8, 12, 16]
    G = mod.init_xavier(mod.ResnetGenerator(ngf, blocks)).to(dev)
    D = mod.init_xavier(mod.NLayerDiscriminator(ngf)).to(dev)
    with torch.no_grad():
        chans = [f.shape[1] for f in G(torch.zeros(1, 3, side, side, device=dev), layers)]
    Fnet = mod.init_xavier(mod.PatchSampleF(chans, 256)).to(dev)
    adam = lambda n: torch.optim.Adam(n.parameters(), lr=2e-4, betas=(0.5, 0.999))
    oG, oD, oF = adam(G), adam(D), adam(Fnet)
    A = torch.rand(1, 3, side, side, device=dev) * 2 - 1
    B = torch.rand(1, 3, side, side, device=dev) * 0.5 - 1

    def nce(src, tgt):
        fq, fk = G(tgt, layers), G(src, layers)
        kp, ids = Fnet(fk, patches)
        qp, _ = Fnet(fq, patches, ids)
        total = 0.0
        for q, k in zip(qp, kp):
            k = k.detach()
            d = q.shape[1]
            l_pos = (q * k).sum(1, keepdim=True)
            qv, kv = q.view(1, -1, d), k.view(1, -1, d)
            l_neg = torch.bmm(qv, kv.transpose(2, 1))
            n = qv.shape[1]
            eye = torch.eye(n, device=dev, dtype=torch.bool)[None]
            l_neg = l_neg.masked_fill(eye, -10.0).view(-1, n)
            logits = torch.cat([l_pos, l_neg], 1) / 0.07
            total = total + F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=dev))
        return total / len(layers)

    def iteration():
        fake = G(torch.cat([A, B], 0))
        fake_B, idt_B = fake[:1], fake[1:]
        for p in D.parameters():
            p.requires_grad_(True)
        oD.zero_grad()
        pf, pr = D(fake_B.detach()), D(B)
        loss_D = 0.5 * (F.mse_loss(pf, torch.zeros_like(pf)) + F.mse_loss(pr, torch.ones_like(pr)))
        loss_D.backward()
        oD.step()
        for p in D.parameters():
            p.requires_grad_(False)
        oG.zero_grad()
        oF.zero_grad()
        pf = D(fake_B)
        loss_G = F.mse_loss(pf, torch.ones_like(pf)) + 0.5 * (nce(A, fake_B) + nce(B, idt_B))
        loss_G.backward()
        oG.step()
        oF.step()
        loss_G.item()

    r = timed(iteration, reps, sync)
    r["iterations_per_s"] = 1.0 / r["median_s"]
    return r


def knn(dev, rows, reps, sync, nq=100, dim=512, k=20):
    g = torch.Generator(device=dev).manual_seed(0)
    db = F.normalize(torch.randn(rows, dim, device=dev, generator=g), dim=1)
    q = F.normalize(torch.randn(nq, dim, device=dev, generator=g), dim=1)

    def search():
        best_s, best_i = [], []
        for start in range(0, rows, 262_144):
            s = q @ db[start:start + 262_144].t()
            v, i = s.topk(min(k, s.shape[1]), dim=1)
            best_s.append(v), best_i.append(i + start)
        v, j = torch.cat(best_s, 1).topk(k, dim=1)
        torch.cat(best_i, 1).gather(1, j).cpu()

    r = timed(search, reps, sync)
    r.update({"db": rows, "queries": nq, "dim": dim, "k": k})
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="small shapes (a dry run on the CPU)")
    ap.add_argument("--json", help="also write the result here")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # f32 as burn computes it
    torch.backends.cudnn.allow_tf32 = False
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    reps = 2 if a.quick else 10
    out = {"torch": torch.__version__, "device": str(dev),
           "device_name": torch.cuda.get_device_name(0) if dev.type == "cuda" else "cpu",
           "threads": torch.get_num_threads(), "tf32": False, "quick": a.quick}
    size = (68, 90) if a.quick else (272, 362)
    for name, fn in [
        ("mobilenet_v2_gem_train_step", lambda: mobilenet_gem_step(dev, size, reps, sync)),
        ("resnet50_forward_b8_224", lambda: resnet50_forward(dev, reps, sync)),
        ("cut_iteration", lambda: cut_iteration(dev, 32 if a.quick else 256, 8 if a.quick else 64,
                                                2 if a.quick else 9, 32 if a.quick else 256, reps, sync)),
        ("knn_top20", lambda: knn(dev, 20_000 if a.quick else 1_000_000, reps, sync)),
    ]:
        try:
            out[name] = fn()
        except Exception as e:  # report and go on: one failure must not hide the others
            out[name] = {"error": repr(e)}
        print(json.dumps({name: out[name]}), flush=True)
    text = json.dumps(out, indent=2)
    if a.json:
        pathlib.Path(a.json).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
