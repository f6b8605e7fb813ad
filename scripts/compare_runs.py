#!/usr/bin/env python3
"""Compares two output folders of a pipeline example: the uninterrupted run and the killed-and-
resumed one (scripts/kill-test.sh). Exit 0 when they are equal, 1 with the differences listed.

Equal means:
- the same files, apart from temporary `.*.part` files and folders that a kill left behind (listed,
  never read by a run; counted in the output);
- JSON files equal once the wall-clock fields (`seconds`) are dropped;
- burnpack files (`*.bpk`) equal in their tensor data: the header names each parameter by a
  random per-process id, so it is skipped; optimiser states (`optim*.bpk`) store their tensors
  *by* those ids and are compared by their effect instead (the weights, logs and descriptors of
  the steps after them);
- every other file (PNG, .npy descriptors, Markdown, image lists) byte for byte.

Usage: compare_runs.py REFERENCE RESUMED
"""

import json
import os
import struct
import sys

WALL_CLOCK = {"seconds"}


def strip_wall_clock(v):
    if isinstance(v, dict):
        return {k: strip_wall_clock(x) for k, x in v.items() if k not in WALL_CLOCK}
    if isinstance(v, list):
        return [strip_wall_clock(x) for x in v]
    return v


def bpk_data(path):
    with open(path, "rb") as f:
        b = f.read()
    if b[:4] != b"NRUB" or len(b) < 10:
        raise ValueError(f"{path}: not a burnpack file")
    (header_len,) = struct.unpack_from("<I", b, 6)
    return b[10 + header_len:]


def files(root):
    out, temps = set(), []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in list(dirnames):
            if d.startswith(".") and d.endswith(".part"):
                temps.append(os.path.join(rel, d))
                dirnames.remove(d)
        for n in filenames:
            p = os.path.normpath(os.path.join(rel, n))
            if n.startswith(".") and n.endswith(".part"):
                temps.append(p)
            else:
                out.add(p)
    return out, temps


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    a_root, b_root = sys.argv[1], sys.argv[2]
    a, _ = files(a_root)
    b, temps = files(b_root)
    problems = []
    for p in sorted(a - b):
        problems.append(f"missing in the resumed run: {p}")
    for p in sorted(b - a):
        problems.append(f"only in the resumed run: {p}")
    compared = 0
    for p in sorted(a & b):
        pa, pb = os.path.join(a_root, p), os.path.join(b_root, p)
        name = os.path.basename(p)
        if "optim" in name and name.endswith(".bpk"):
            continue
        compared += 1
        if p.endswith(".json"):
            with open(pa) as fa, open(pb) as fb:
                ja, jb = json.load(fa), json.load(fb)
            if strip_wall_clock(ja) != strip_wall_clock(jb):
                problems.append(f"JSON differs: {p}")
        elif p.endswith(".bpk"):
            if bpk_data(pa) != bpk_data(pb):
                problems.append(f"tensor data differs: {p}")
        else:
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                if fa.read() != fb.read():
                    problems.append(f"bytes differ: {p}")
    print(f"compared {compared} files ({len(a)} in the reference); "
          f"{len(temps)} temporary .part left by kills (never read)")
    for t in temps:
        print(f"  left by a kill: {t}")
    for pr in problems:
        print(f"DIFFERENT: {pr}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
