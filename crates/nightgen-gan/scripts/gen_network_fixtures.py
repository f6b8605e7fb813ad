#!/usr/bin/env python3
"""Writes the nightgen-gan network parity fixtures with Debian's PyTorch, independently of the Rust code.

    /usr/bin/python3 crates/nightgen-gan/scripts/gen_network_fixtures.py     # from the workspace root

The networks are re-implemented here from the specification (docs/PAPERS.md A.2, B.1; docs/PAPERS.md protocols
3.1, 3.2): CycleGAN/CUT/gandtr `ResnetGenerator` (reflection padding, optional CUT anti-aliased
Downsample/Upsample) and `NLayerDiscriminator`, as `nn.Sequential`s with the reference indices, so
their `state_dict` keys are the reference ones (`model.1.weight`, `model.10.conv_block.5.weight`).

Weights are drawn with fixed seeds and are deliberately non-trivial: conv weights
N(0, sqrt(1.5 / fan_in)) (fan_in of a stride-2 transposed conv: in·k²/4) so activations neither
vanish nor saturate the Tanh, biases N(0, 0.1), BatchNorm weight N(1, 0.2),
bias N(0, 0.1), running_mean N(0, 0.2), running_var U(0.5, 1.5) (so eval mode differs from
train mode and from the identity).

Outputs in crates/nightgen-gan/tests/fixtures/ (float32):
  networks_gen_inorm.pth         ngf 4, 9 blocks, instance norm, no anti-aliasing (gandtr/CycleGAN layout)
                                 (not "networks_gen_instance.pth": torch.save names the archive's
                                 folder after the file, and with that 21-character name burn-store
                                 0.22.1's zip reader (zip 9.8.1) rejects this valid archive with
                                 "Invalid Central Directory header"; Python's zipfile and unzip -t
                                 accept it)
  networks_gen_batch.pth         ngf 8, 2 blocks, batch norm (HEDGAN layout); also as
  networks_gen_batch.safetensors the same state_dict in safetensors (exercises the variant remaps)
  networks_gen_cut.pth           ngf 4, 6 blocks, instance norm, CUT anti-aliased down/up-sampling
                                 (the state_dict holds the `filt` buffers, as CUT's does)
  networks_disc_instance.pth     ndf 8, 3 layers, instance norm
  networks_disc_batch.pth/.safetensors   ndf 4, 3 layers, batch norm
  networks_disc_cut.pth          ndf 4, 3 layers, instance norm, anti-aliased
  networks_io.safetensors        per case `<case>.x` (input in [-1, 1]), `<case>.out` (eval-mode
                                 output), `<case>.layer<i>` (encode-only features at the CUT layer
                                 ids), and for batch norm `<case>.train_out` (train-mode output of a
                                 fresh copy) and `<case>.bn_running_var_torch` / `_biased` (the
                                 first BatchNorm's running_var after that one train-mode forward,
                                 with PyTorch's unbiased and with the biased batch variance)
  networks_versions.json         torch / numpy versions
Re-running gives identical files (fixed seeds, deterministic CPU kernels).
"""
import copy
import json
import math
import os
import sys

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


# ---------------------------------------------------------------------------------------------
# The networks (from the spec)

def binomial_filter(size):
    """CUT get_filter: outer product of the binomial row, normalised to sum 1."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64)
    f = row[:, None] * row[None, :]
    return torch.tensor(f / f.sum(), dtype=torch.float32)


class Downsample(nn.Module):
    """Reflection pad 1, depthwise 3x3 binomial blur, stride 2 (filt_size 3, pad_off 0)."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """Replication pad 1, depthwise transposed conv with the 4x4 binomial kernel * stride^2,
    stride 2, padding 1 + (4 - 1) // 2, then [1:, 1:] and (even kernel) [:-1, :-1]."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        y = F.conv_transpose2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2,
                               padding=2, groups=x.shape[1])[:, :, 1:, 1:]
        return y[:, :, :-1, :-1]


def norm_layer(kind, c):
    if kind == "instance":
        return nn.InstanceNorm2d(c, affine=False)
    return nn.BatchNorm2d(c, affine=True, track_running_stats=True)


class ResnetBlock(nn.Module):
    def __init__(self, dim, norm):
        super().__init__()
        bias = norm == "instance"
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=bias), norm_layer(norm, dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, padding=0, bias=bias), norm_layer(norm, dim))

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, ngf, n_blocks, norm, antialias=False, antialias_up=False, in_nc=3, out_nc=3):
        super().__init__()
        bias = norm == "instance"
        m = [nn.ReflectionPad2d(3), nn.Conv2d(in_nc, ngf, 7, padding=0, bias=bias), norm_layer(norm, ngf), nn.ReLU(True)]
        for i in range(2):
            c = ngf * 2 ** i
            if antialias:
                m += [nn.Conv2d(c, 2 * c, 3, stride=1, padding=1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True),
                      Downsample(2 * c)]
            else:
                m += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), norm_layer(norm, 2 * c), nn.ReLU(True)]
        for _ in range(n_blocks):
            m += [ResnetBlock(4 * ngf, norm)]
        for i in range(2):
            c = 4 * ngf // 2 ** i
            if antialias_up:
                m += [Upsample(c), nn.Conv2d(c, c // 2, 3, stride=1, padding=1, bias=bias)]
            else:
                m += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)]
            m += [norm_layer(norm, c // 2), nn.ReLU(True)]
        m += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*m)

    def forward(self, x, layers=(), encode_only=False):
        if not layers:
            return self.model(x)
        feats = []
        for i, layer in enumerate(self.model):
            x = layer(x)
            if i in layers:
                feats.append(x)
            if encode_only and i == layers[-1]:
                return feats
        return x, feats


class NLayerDiscriminator(nn.Module):
    def __init__(self, ndf, n_layers, norm, antialias=False, in_nc=3):
        super().__init__()
        bias = norm == "instance"
        kw, padw = 4, 1
        s = 1 if antialias else 2
        seq = [nn.Conv2d(in_nc, ndf, kw, stride=s, padding=padw), nn.LeakyReLU(0.2, True)]
        if antialias:
            seq += [Downsample(ndf)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=s, padding=padw, bias=bias),
                    norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
            if antialias:
                seq += [Downsample(ndf * mult)]
        prev, mult = mult, min(2 ** n_layers, 8)
        seq += [nn.Conv2d(ndf * prev, ndf * mult, kw, stride=1, padding=padw, bias=bias),
                norm_layer(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        seq += [nn.Conv2d(ndf * mult, 1, kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*seq)

    def forward(self, x):
        return self.model(x)


# ---------------------------------------------------------------------------------------------

def randomise(net, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_in = m.weight.shape[1] * m.weight.shape[2] * m.weight.shape[3]
                if isinstance(m, nn.ConvTranspose2d):
                    fan_in = m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3] // 4
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.5 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
                m.num_batches_tracked.fill_(7)
    return net


def state_dict_np(net):
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


io = {}


def image(seed, shape):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=g) * 2 - 1


def batchnorm_train_record(case, net, x):
    """Train-mode forward of a fresh copy, and its first BatchNorm's running_var afterwards."""
    t = copy.deepcopy(net).train()
    bn = next(m for m in t.modules() if isinstance(m, nn.BatchNorm2d))
    seen = {}

    def hook(mod, inp, out):
        seen["x"] = inp[0].detach()

    h = bn.register_forward_hook(hook)
    rv0 = bn.running_var.detach().clone()
    with torch.no_grad():
        io[f"{case}.train_out"] = t(x).numpy()
    h.remove()
    io[f"{case}.bn_running_var_torch"] = bn.running_var.numpy()
    biased = seen["x"].var(dim=(0, 2, 3), unbiased=False)
    io[f"{case}.bn_running_var_biased"] = (0.9 * rv0 + 0.1 * biased).numpy()


def gen_case(case, seed, ngf, n_blocks, norm, antialias, layers, safetensors=False):
    torch.manual_seed(seed)
    net = randomise(ResnetGenerator(ngf, n_blocks, norm, antialias, antialias).eval(), seed)
    x = image(seed + 100, (2, 3, 32, 32))
    with torch.no_grad():
        io[f"{case}.x"] = x.numpy()
        io[f"{case}.out"] = net(x).numpy()
        feats = net(x, layers=list(layers), encode_only=True)
        for i, f in zip(layers, feats):
            io[f"{case}.layer{i}"] = f.numpy()
    if norm == "batch":
        batchnorm_train_record(case, net, x)
    torch.save(net.state_dict(), os.path.join(OUT, f"networks_{case}.pth"))
    if safetensors:
        write_safetensors(os.path.join(OUT, f"networks_{case}.safetensors"), state_dict_np(net))


def disc_case(case, seed, ndf, norm, antialias, shape, safetensors=False):
    torch.manual_seed(seed)
    net = randomise(NLayerDiscriminator(ndf, 3, norm, antialias).eval(), seed)
    x = image(seed + 100, shape)
    with torch.no_grad():
        io[f"{case}.x"] = x.numpy()
        io[f"{case}.out"] = net(x).numpy()
    if norm == "batch":
        batchnorm_train_record(case, net, x)
    torch.save(net.state_dict(), os.path.join(OUT, f"networks_{case}.pth"))
    if safetensors:
        write_safetensors(os.path.join(OUT, f"networks_{case}.safetensors"), state_dict_np(net))


gen_case("gen_inorm", 1, 4, 9, "instance", False, (0, 4, 8, 12, 16))
gen_case("gen_batch", 2, 8, 2, "batch", False, (4, 8, 10, 12), safetensors=True)
gen_case("gen_cut", 3, 4, 6, "instance", True, (0, 4, 8, 12, 16))
disc_case("disc_instance", 4, 8, "instance", False, (2, 3, 40, 48))
disc_case("disc_batch", 5, 4, "batch", False, (2, 3, 40, 48), safetensors=True)
disc_case("disc_cut", 6, 4, "instance", True, (2, 3, 40, 48))

write_safetensors(os.path.join(OUT, "networks_io.safetensors"), io)
with open(os.path.join(OUT, "networks_versions.json"), "w") as f:
    json.dump({"torch": torch.__version__, "numpy": np.__version__}, f)
for k, v in io.items():
    print(f"{k:40s} {tuple(v.shape)}  |max| {np.abs(v).max():.3f}")
