#!/usr/bin/env python3
"""Does the darkening network D learn to follow the requested exposure E under the reference recipe?

    /usr/bin/python3 crates/darkening-minmax/scripts/exposure_dynamics.py --lr 1e-4 --steps 500 --tag a

A PyTorch re-run of docs/PAPERS.md C.1-C.2 (Similarity Min-Max, step 1: train D against a frozen F),
with the D network and loss terms of gen_fixtures.py (imported from it verbatim, see below) and the
real ImageNet MobileNetV2 `features` as F (last feature map, ImageNet-normalised input), as in the
Rust pipeline (src/pipelines/similarity_minmax.rs). CPU, one thread.

Data: day images from WORLD/gan/trainA (shorter side resized to --resize, random --crop² crops, [0, 1]);
probe: the first 16 files of WORLD/vpr/images/test/queries resized to --probe-size² (128 as the
Rust probe; 64 for the 64² crop runs, to keep the probe's cost below the training's).
Every --log-every steps one JSON line: L_sim, L_exp (unweighted MSE), the other terms, the total,
the pre-clip gradient norm, and the exposure response (mean clamped output on the probe at
E = 0.05 .. 0.4) with its least-squares slope against E.
"""
import argparse, glob, json, math, os, struct, sys, time

# glibc returns every large freed tensor to the kernel by default, and the page faults of the next
# allocation cost more system time than the convolutions (6.5 s sys vs 9 s user per 12 steps);
# keep the heap instead (read by glibc at start-up, hence the re-exec).
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "4000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000",
           "MALLOC_TOP_PAD_": "1000000000"}
if any(os.environ.get(k) != v for k, v in _MALLOC.items()):
    os.execve(sys.executable, [sys.executable] + sys.argv, {**os.environ, **_MALLOC})

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

torch.set_num_threads(1)
HERE = os.path.dirname(os.path.abspath(__file__))
PROBE_E = [0.05, 0.1, 0.2, 0.3, 0.4]
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


# ---------------------------------------------------------------- D and the loss terms (C.1, C.2)
# Same code as gen_fixtures.py (which is a script that writes files on import, so it is not imported).
class CsdnTem(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.depth_conv = nn.Conv2d(cin, cin, 3, 1, 1, groups=cin)
        self.point_conv = nn.Conv2d(cin, cout, 1, 1, 0)

    def forward(self, x):
        return self.point_conv(self.depth_conv(x))


class Darkening(nn.Module):
    def __init__(self, f=64, rounds=8, ds=0.95, use_e=True, e_scale=1.0):
        super().__init__()
        self.rounds, self.ds, self.use_e, self.e_scale = rounds, ds, use_e, e_scale
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
        e = e.expand(b, 1, h, w) * self.e_scale  # the input channel only; L_exp sees E itself
        if not self.use_e:
            e = torch.zeros_like(e)
        x0 = F.relu(self.e_conv0(torch.cat([x, e], 1)))
        x1 = F.relu(self.e_conv1(x0))
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(x2))
        x4 = F.relu(self.e_conv4(x3))
        x5 = F.relu(self.e_conv5(torch.cat([x3, x4], 1)))
        x6 = F.relu(self.e_conv6(torch.cat([x2, x5], 1)))
        x7 = self.e_conv7(torch.cat([x1, x6], 1))
        a = torch.tanh(x7[:, :3])
        bb = torch.sigmoid(x7[:, 3:]) * (1 - self.ds) + self.ds
        y = x * bb
        for _ in range(self.rounds):
            y = y + a * (torch.pow(y, 2) - y)
        return y / bb, a, bb


def l_sim(f1, f2):
    return (F.normalize(f1, dim=1) * F.normalize(f2, dim=1)).sum(dim=1).mean()


def l_exp(img, e, p=1):
    m = F.avg_pool2d(torch.mean(img, 1, keepdim=True), p)
    return torch.mean(torch.pow(m - e, 2))


def l_color(img):
    mr, mg, mb = torch.split(torch.mean(img, [2, 3], keepdim=True), 1, dim=1)
    drg, drb, dgb = torch.pow(mr - mg, 2), torch.pow(mr - mb, 2), torch.pow(mb - mg, 2)
    return torch.pow(torch.pow(drg, 2) + torch.pow(drb, 2) + torch.pow(dgb, 2), 0.5).mean()


def l_tv(a, mid=0.02):
    b, _, h, w = a.shape
    dh = a[:, :, 1:, :] - a[:, :, :h - 1, :]
    dw = a[:, :, :, 1:] - a[:, :, :, :w - 1]
    h_tv = torch.pow(torch.clamp(mid - torch.abs(torch.abs(dh) - mid), 0, 1), 2).sum()
    w_tv = torch.pow(torch.clamp(mid - torch.abs(torch.abs(dw) - mid), 0, 1), 2).sum()
    return 2 * (h_tv / ((h - 1) * w) + w_tv / (h * (w - 1))) / b


def l_flex(bb):
    return (1 - bb).mean()


# ---------------------------------------------------------------- F: frozen ImageNet MobileNetV2
def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    dt = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[s:e], dtype=dt[v["dtype"]]).reshape(v["shape"]).copy())
    return out


def mobilenet_features(path):
    m = torchvision.models.mobilenet_v2()
    sd = read_safetensors(path)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    assert not missing and not unexpected, (missing, unexpected)
    feats = m.features.eval()
    feats.requires_grad_(False)
    return feats


# ---------------------------------------------------------------- data
def load(path, size=None, short=None):
    im = Image.open(path).convert("RGB")
    if size is not None:
        im = im.resize((size, size), Image.BILINEAR)
    elif short is not None:
        w, h = im.size
        s = short / min(w, h)
        im = im.resize((round(w * s), round(h * s)), Image.BILINEAR)
    return torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).permute(2, 0, 1)


def table(paths):
    """Markdown table per run log (--table LOG.jsonl ...)."""
    for p in paths:
        lines = [json.loads(l) for l in open(p)]
        a = lines[0]["args"]
        print(f"\n### {a['tag']}: lr {a['lr']:g}, clip {a['clip']:g}, batch {a['batch']}, "
              f"crop {a['crop']}, w_exp {a['w_exp']:g}, w_sim {a['w_sim']:g}"
              f"{', no E input' if a['no_e'] else ''}\n")
        print("| step | L_sim | L_exp | total | grad norm | train out mean | "
              + " | ".join(f"resp E={e}" for e in PROBE_E) + " | slope |")
        print("|" + "---|" * (7 + len(PROBE_E)))
        for r in lines[1:]:
            if r["step"] == 0:
                vals = ["–"] * 5
            else:
                vals = [f"{r['sim']:.4f}", f"{r['exp']:.4f}", f"{r['total']:.4f}",
                        f"{r['grad_norm']:.2f}", f"{r['out_mean']:.3f}"]
            print(f"| {r['step']} | " + " | ".join(vals) + " | "
                  + " | ".join(f"{v:.3f}" for v in r["response"]) + f" | {r['slope']:.3f} |")
        if len(lines) > 2:
            print(f"\n{lines[-1]['s_per_step']:.3f} s/step (training only), "
                  f"{lines[-1]['wall']:.0f} s wall with the probes")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--table":
        return table(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--world", default="/work/runs/world")
    ap.add_argument("--weights", default=os.path.expanduser(
        "~/.cache/nightvision/real/weights/mobilenet_v2_imagenet.safetensors"))
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--wd", type=float, default=1e-4)
    ap.add_argument("--clip", type=float, default=0.1, help="global grad-norm clip; <= 0 disables")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--resize", type=int, default=144, help="shorter side before cropping")
    ap.add_argument("--emax", type=float, default=0.5)
    ap.add_argument("--w-sim", type=float, default=0.1)
    ap.add_argument("--w-exp", type=float, default=10.0)
    ap.add_argument("--no-e", action="store_true", help="feed zeros instead of the exposure map")
    ap.add_argument("--e-scale", type=float, default=1.0,
                    help="multiply the exposure map fed to D by this (2 feeds E / 0.5 in [0, 1])")
    ap.add_argument("--w-col", type=float, default=25.0)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--probe-size", type=int, default=128, help="probe images are resized to this square")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tag", default="run")
    ap.add_argument("--out", default="/tmp/exposure_dynamics")
    ap.add_argument("--time-limit", type=float, default=1e9, help="stop after this many seconds")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    log_path = os.path.join(args.out, f"{args.tag}.jsonl")
    logf = open(log_path, "w")
    logf.write(json.dumps({"args": vars(args)}) + "\n")

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    files = sorted(glob.glob(os.path.join(args.world, "gan/trainA/*")))
    train = [load(p, short=args.resize) for p in files]
    probe_files = sorted(glob.glob(os.path.join(args.world, "vpr/images/test/queries/*")))[:16]
    probe = torch.stack([load(p, size=args.probe_size) for p in probe_files])
    feats = mobilenet_features(args.weights)
    net = Darkening(use_e=not args.no_e, e_scale=args.e_scale)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr, weight_decay=args.wd)
    W = {"sim": args.w_sim, "exp": args.w_exp, "col": args.w_col, "tv": 1600.0, "flex": 5.0}
    print(f"[{args.tag}] {len(train)} train images, probe {tuple(probe.shape)}, "
          f"probe mean {probe.mean():.4f}", flush=True)

    def batch():
        xs = []
        for i in rng.integers(0, len(train), args.batch):
            t = train[i]
            _, h, w = t.shape
            y0 = rng.integers(0, h - args.crop + 1)
            x0 = rng.integers(0, w - args.crop + 1)
            xs.append(t[:, y0:y0 + args.crop, x0:x0 + args.crop])
        return torch.stack(xs)

    def response():
        net.eval()
        with torch.no_grad():
            r = [float(net(probe, torch.full((probe.shape[0], 1, 1, 1), e))[0].clamp(0, 1).mean())
                 for e in PROBE_E]
        net.train()
        slope = float(np.polyfit(PROBE_E, r, 1)[0])
        mono = all(b > a for a, b in zip(r, r[1:]))
        return r, slope, mono

    acc, n_acc = {}, 0
    t_start = time.time()
    t_steps = 0.0
    r, slope, mono = response()
    rec = {"step": 0, "response": r, "slope": slope, "monotonic": mono}
    logf.write(json.dumps(rec) + "\n"); logf.flush()
    print(f"[{args.tag}] step 0 response {['%.4f' % v for v in r]} slope {slope:.4f}", flush=True)
    for step in range(1, args.steps + 1):
        t0 = time.time()
        x = batch()
        e = torch.rand(args.batch, 1, 1, 1) * args.emax
        out, a, bb = net(x, e)
        with torch.no_grad():
            fd = feats((x - MEAN) / STD)
        fn = feats((out - MEAN) / STD)
        terms = {"sim": l_sim(fd, fn), "exp": l_exp(out, e), "col": l_color(out),
                 "tv": l_tv(a), "flex": l_flex(bb)}
        total = sum(W[k] * terms[k] for k in terms)
        opt.zero_grad(set_to_none=True)
        total.backward()
        gn = float(torch.nn.utils.clip_grad_norm_(net.parameters(),
                                                  args.clip if args.clip > 0 else float("inf")))
        opt.step()
        t_steps += time.time() - t0
        for k, v in terms.items():
            acc[k] = acc.get(k, 0.0) + float(v)
        acc["total"] = acc.get("total", 0.0) + float(total)
        acc["grad_norm"] = acc.get("grad_norm", 0.0) + gn
        acc["out_mean"] = acc.get("out_mean", 0.0) + float(out.detach().mean())
        acc["e_mean"] = acc.get("e_mean", 0.0) + float(e.mean())
        n_acc += 1
        stop = (time.time() - t_start) > args.time_limit
        if step % args.log_every == 0 or step == args.steps or stop:
            r, slope, mono = response()
            rec = {"step": step, **{k: v / n_acc for k, v in acc.items()}, "response": r,
                   "slope": slope, "monotonic": mono, "s_per_step": t_steps / step,
                   "wall": time.time() - t_start}
            logf.write(json.dumps(rec) + "\n"); logf.flush()
            print(f"[{args.tag}] step {step} sim {rec['sim']:.4f} exp {rec['exp']:.4f} "
                  f"total {rec['total']:.4f} |g| {rec['grad_norm']:.3f} "
                  f"resp {['%.4f' % v for v in r]} slope {slope:.4f} mono {mono} "
                  f"{rec['s_per_step']:.3f}s/step", flush=True)
            acc, n_acc = {}, 0
        if stop:
            break
    torch.save(net.state_dict(), os.path.join(args.out, f"{args.tag}.pth"))


if __name__ == "__main__":
    main()
