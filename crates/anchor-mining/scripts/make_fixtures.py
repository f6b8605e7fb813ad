#!/usr/bin/env python3
"""Seeded fixtures for the anchor-mining tests (numpy + hashlib only).

Run with /usr/bin/python3 from anywhere:
    /usr/bin/python3 crates/anchor-mining/scripts/make_fixtures.py [--tokyo-list PATH]

Writes into crates/anchor-mining/tests/fixtures/:
  diverse_<case>_desc.npy     float32 [Qp, D] L2-normalised candidate descriptors
  diverse_cases.json          per case: q, similar_include/exclude, the anchors numpy picks
                              (docs/PAPERS.md A.7 literally: growing S, max over columns, stable argsort
                              over all Qp, last element of the band)
  md5_names.json              1,000 Tokyo 24/7 database names (every 75th line of
                              gt/tokyo247_imageNames_index.txt) with hashlib's verdict
  cosplace_tuples.npy         float64 [1000, 3] (east, north, heading)
  cosplace_ids.npy            int64 [1000, 6] class (east, north, heading) and group ids, from
                              CosPlace's get__class_id__group_id on numpy float64 scalars
  cosplace_names.json         VPR-format names (integer headings) and the surviving classes per
                              group (CosPlace's initialize(), groups in dict order, classes in order
                              of first image instead of set order)
"""
import argparse
import hashlib
import json
import os
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")


# ----------------------------------------------------------------------------- A.7
def diverse_reference(Q, q, include=0.8, exclude=0.2):
    """docs/PAPERS.md A.7 verbatim. Q is D x Qp (columns = candidates), float32."""
    Qp = Q.shape[1]
    chosen = [0]
    S = np.empty((Qp, 0), dtype=np.float32)
    margins = []
    for _ in range(q - 1):
        S = np.concatenate([S, (Q.T @ Q[:, chosen[-1]])[:, None]], axis=1)
        m = S.max(axis=1)
        valid = Qp - len(chosen)
        hi = max(int(valid * (1 - exclude)), 1)
        lo = min(int(valid * (1 - include)), hi - 1)
        order = np.argsort(m, kind="stable")
        band = order[lo:hi]
        pick = int(band[-1])
        # Robustness of this fixture against f32 rounding differences between numpy and burn:
        # the picked value must be separated from its rank neighbours (or exactly tied).
        ms = m[order]
        r = hi - 1
        for nb in (r - 1, r + 1):
            if 0 <= nb < Qp and ms[nb] != ms[r]:
                margins.append(abs(float(ms[nb]) - float(ms[r])))
        # Chosen anchors (m ~ 1) must sit above every other candidate (see diverse.rs docs).
        others = np.setdiff1d(np.arange(Qp), chosen)
        assert m[others].max() < m[chosen].min(), "near-duplicate descriptors in fixture"
        chosen.append(pick)
    assert len(set(chosen)) == len(chosen)
    return chosen, (min(margins) if margins else float("inf"))


def normalise(x):
    x = x.astype(np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def diverse_cases():
    """Seeds are tried in order until every pick is separated from its rank neighbours by more
    than 1e-5 (f32 similarities over D <= 64 terms differ between numpy and burn by ~1e-7)."""
    cases = {}

    def first_robust(make, q, inc, exc):
        for seed in range(100):
            x = make(np.random.default_rng(seed))
            _, margin = diverse_reference(x.T.copy(), q, inc, exc)
            if margin > 1e-5:
                print(f"  seed {seed}")
                return x
        raise RuntimeError("no robust seed")

    def clustered(rng):
        centres = rng.standard_normal((12, 32))
        lab = rng.integers(0, 12, 400)
        return normalise(centres[lab] + 0.8 * rng.standard_normal((400, 32)))

    # Clustered data (a Gaussian mixture), default band.
    cases["clustered"] = (first_robust(clustered, 120, 0.8, 0.2), 120, 0.8, 0.2)
    # Isotropic data, another band.
    iso = lambda rng: normalise(rng.standard_normal((300, 64)))
    cases["isotropic"] = (first_robust(iso, 100, 0.9, 0.05), 100, 0.9, 0.05)
    # Exact ties: one-hot descriptors, every similarity is exactly 0 or 1.
    cases["onehot_ties"] = (np.eye(50, dtype=np.float32), 30, 0.8, 0.2)
    meta = {}
    for name, (x, q, inc, exc) in cases.items():
        chosen, margin = diverse_reference(x.T.copy(), q, inc, exc)
        if name != "onehot_ties":
            assert margin > 1e-5, (name, margin)
        np.save(os.path.join(OUT, f"diverse_{name}_desc.npy"), x)
        meta[name] = {
            "q": q,
            "similar_include": inc,
            "similar_exclude": exc,
            "anchors": chosen,
            "min_rank_margin": margin if np.isfinite(margin) else None,
        }
        print(f"diverse {name}: Qp={x.shape[0]} D={x.shape[1]} q={q} min rank margin {margin:.2e}")
    with open(os.path.join(OUT, "diverse_cases.json"), "w") as f:
        json.dump(meta, f, indent=1)


# ----------------------------------------------------------------------------- A.6
def md5_fraction(stem):
    return int(hashlib.md5(stem.encode()).hexdigest()[-4:], 16) / 65536


def md5_names(tokyo_list):
    with open(tokyo_list) as f:
        lines = [l.strip() for l in f if l.strip()]
    names = lines[::75][:1000]
    assert len(names) == 1000
    stems = [os.path.splitext(os.path.basename(n))[0] for n in names]
    translated = [md5_fraction(s) < 0.25 for s in stems]
    frac = sum(translated) / len(translated)
    print(f"md5 subset: {frac:.3f} of 1000 Tokyo names translated")
    with open(os.path.join(OUT, "md5_names.json"), "w") as f:
        json.dump(
            {
                "source": "gt/tokyo247_imageNames_index.txt, every 75th line",
                "ratio": 0.25,
                "names": names,
                "hex_last4": [int(hashlib.md5(s.encode()).hexdigest()[-4:], 16) for s in stems],
                "translated": translated,
            },
            f,
        )


# ----------------------------------------------------------------------------- B.5
def get__class_id__group_id(utm_east, utm_north, heading, M, alpha, N, L):
    """gmberton/CosPlace datasets/train_dataset.py (HEAD 33ce8d0), verbatim."""
    rounded_utm_east = int(utm_east // M * M)  # Rounded to nearest lower multiple of M
    rounded_utm_north = int(utm_north // M * M)
    rounded_heading = int(heading // alpha * alpha)
    class_id = (rounded_utm_east, rounded_utm_north, rounded_heading)
    group_id = (rounded_utm_east % (M * N) // M,
                rounded_utm_north % (M * N) // M,
                rounded_heading % (alpha * L) // alpha)
    return class_id, group_id


def cosplace():
    M, alpha, N, L, min_images = 10, 30, 5, 2, 10
    rng = np.random.default_rng(7)
    t = np.empty((1000, 3))
    t[:, 0] = rng.uniform(543000.0, 553000.0, 1000)
    t[:, 1] = rng.uniform(4170000.0, 4185000.0, 1000)
    t[:, 2] = rng.uniform(0.0, 360.0, 1000)
    # Boundaries: exact multiples, just below them, 2-decimal values as in file names.
    t[:100, 0] = np.round(t[:100, 0] / 10) * 10
    t[100:200, 1] = np.round(t[100:200, 1] / 10) * 10 - 1e-9
    t[200:300, 2] = rng.integers(0, 12, 100) * 30.0
    t[300:400, 2] = np.nextafter(rng.integers(1, 12, 100) * 30.0, 0.0)
    t[400:600, :2] = np.round(t[400:600, :2], 2)
    t[600:650, 2] = 359.999999
    ids = []
    for e, n, h in t:  # numpy float64 scalars, as in CosPlace
        c, g = get__class_id__group_id(e, n, h, M, alpha, N, L)
        ids.append([*c, *g])
    np.save(os.path.join(OUT, "cosplace_tuples.npy"), t)
    np.save(os.path.join(OUT, "cosplace_ids.npy"), np.array(ids, dtype=np.int64))

    # A small training set of VPR-format names: 120 places, 5..30 images each.
    names = []
    for p in range(120):
        e0 = rng.uniform(550000, 550400)
        n0 = rng.uniform(4180000, 4180400)
        h0 = rng.integers(0, 360)
        for k in range(int(rng.integers(5, 31))):
            e = e0 + rng.uniform(-4, 4)
            n = n0 + rng.uniform(-4, 4)
            h = int((h0 + rng.integers(-10, 11)) % 360)
            names.append(f"train/@{e:010.2f}@{n:010.2f}@10@S@37.77000@-122.43000@pano{p:03d}@@{h:03d}@@@@20130101@@.jpg")
    order = rng.permutation(len(names))
    names = [names[i] for i in order]
    # CosPlace initialize()
    utm = np.array([(m.split("@")[1], m.split("@")[2], m.split("@")[9]) for m in names]).astype(np.float64)
    cg = [get__class_id__group_id(*m, M, alpha, N, L) for m in utm]
    images_per_class = defaultdict(list)
    for i, (c, _) in enumerate(cg):
        images_per_class[c].append(i)
    images_per_class = {k: v for k, v in images_per_class.items() if len(v) >= min_images}
    classes_per_group = defaultdict(list)
    for c, g in cg:
        if c in images_per_class and c not in classes_per_group[g]:
            classes_per_group[g].append(c)
    groups = [
        {"group": list(g), "classes": [{"class": list(c), "images": images_per_class[c]} for c in cs]}
        for g, cs in classes_per_group.items()
    ]
    n_before = len({c for c, _ in cg})
    print(f"cosplace: {len(names)} names, {n_before} classes, {len(images_per_class)} kept, {len(groups)} groups")
    with open(os.path.join(OUT, "cosplace_names.json"), "w") as f:
        json.dump({"names": names, "num_classes_before_filter": n_before, "groups": groups}, f, indent=0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    home = os.environ.get("NIGHTVISION_DATA", os.path.expanduser("~/.cache/nightvision/real"))
    ap.add_argument("--tokyo-list", default=os.path.join(home, "gt", "tokyo247_imageNames_index.txt"))
    args = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    diverse_cases()
    md5_names(args.tokyo_list)
    cosplace()
