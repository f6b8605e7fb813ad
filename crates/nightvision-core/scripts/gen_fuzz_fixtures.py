#!/usr/bin/python3
"""Writes the seed inputs of the weights-loader fuzz test (tests/fuzz.rs) into
tests/fixtures/fuzz/: a tiny state dict in every PyTorch container format the loader reads.

Run with Debian's Python (torch 1.13 from python3-torch):

    /usr/bin/python3 crates/nightvision-core/scripts/gen_fuzz_fixtures.py

The state dict is that of `nn.Linear(4, 3)` plus a BatchNorm counter (`num_batches_tracked`, an
allowed unused key), seeded: weight [3, 4], bias [3]. Files (a few hundred bytes to 2 kB each):
  linear_zip.pth           torch.save, zip format (PyTorch >= 1.6), pickle protocol 2
  linear_legacy.pth        torch.save(_use_new_zipfile_serialization=False): legacy format
  linear_checkpoint.pth    zip format, {"state_dict": ..., "epoch": 3} (a top-level key)
  linear_p4.pth            zip format, pickle protocol 4
"""
import os
from collections import OrderedDict

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "fuzz")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(15)
    lin = torch.nn.Linear(4, 3)
    sd = OrderedDict((k, v.detach().clone()) for k, v in lin.state_dict().items())
    sd["num_batches_tracked"] = torch.tensor(7, dtype=torch.long)
    torch.save(sd, os.path.join(OUT, "linear_zip.pth"))
    torch.save(sd, os.path.join(OUT, "linear_legacy.pth"), _use_new_zipfile_serialization=False)
    torch.save({"state_dict": sd, "epoch": 3}, os.path.join(OUT, "linear_checkpoint.pth"))
    torch.save(sd, os.path.join(OUT, "linear_p4.pth"), pickle_protocol=4)
    for name in sorted(os.listdir(OUT)):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()
