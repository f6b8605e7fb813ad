#!/usr/bin/python3
"""Seeded numpy / scipy reference for ``vpr_eval::stats`` (bootstrap intervals, McNemar, Fréchet).

Run from the crate directory with Debian's Python (numpy 1.24, scipy 1.10; ``apt-get install -y
python3-numpy python3-scipy``):

    /usr/bin/python3 scripts/stats_reference.py

Writes into tests/fixtures/stats/ (re-running gives identical files):

* reference.json   first-hit-rank vectors (``null`` = no positive found) with their Recall@N and
                   95 % percentile bootstrap intervals; paired cases (two methods on the same
                   queries) with the bootstrap interval of the R@N difference B - A and the exact
                   McNemar test on the R@1 hits; hand-chosen McNemar (b, c) pairs; Fréchet distances.
* frechet_*.npy    the float32 feature sets (rows x dim, C order) of the stored Fréchet cases.
* map_reference.json  per-query AP vectors (``null`` = a query without positives) with their mAP
                   and 95 % bootstrap interval, and paired cases with the bootstrap interval of
                   mAP(B) - mAP(A) and the sign-flip permutation p-value; small cases also carry
                   the exact p-value of the sign-flip test by enumerating all 2**n sign vectors.

The bootstrap draws its query indices from SplitMix64 (Steele, Lea & Flood 2014), written out below
exactly as ``vpr_eval::SplitMix64`` implements it, so the Rust intervals must equal these ones to
rounding, not merely within bootstrap noise:

* ``next_u64``: state += 0x9E3779B97F4A7C15; z = state; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
  z = (z ^ z >> 27) * 0x94D049BB133111EB; return z ^ z >> 31 (all mod 2**64); the state starts at
  the seed.
* ``below(n)``: unbiased index in [0, n) by rejection: draw x until x >= 2**64 mod n, return x % n.
* resample r = 0 .. B-1 draws its n query indices one after the other from one generator.
* R@N of a resample = (#drawn queries with rank < N) / n * 100; the interval is
  ``np.percentile(values, [2.5, 97.5])`` (numpy's default linear interpolation, Hyndman & Fan
  type 7); the paired difference of a resample = (hits_B - hits_A) / n * 100.

mAP (``bootstrap_map`` / ``paired_map``): the same resampled query indices over the queries with
positives; a resample's mAP = sum of the drawn APs / n * 100. The sign-flip test draws, for each of
``resamples`` sign vectors, one ``next_u64()`` per query in order from a generator seeded with
seed + 1, flipping the query's AP difference when the top bit is 1; p = (1 + #{|mean| >= |observed|
mean| - 1e-9 |observed|}) / (1 + resamples).

The McNemar p-values are ``scipy.stats.binomtest(min(b, c), b + c, 0.5).pvalue`` (1 when
b + c = 0, where scipy refuses n = 0). The Fréchet distances follow the FID reference (pytorch-fid
``calculate_frechet_distance``): float64 mean and ``np.cov(rowvar=False)`` of the float32 features,
``scipy.linalg.sqrtm(s1 @ s2)``, real part. An SVD-based value (nuclear norm of the product of the
centred data matrices) is stored next to it as ``d_svd`` for comparison.
"""
import itertools
import json
import os

import numpy as np
import scipy
from scipy import linalg, stats

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "stats")

MASK = (1 << 64) - 1
NS = [1, 5, 10, 20]
RESAMPLES = 2000


class SplitMix64:
    """SplitMix64, bit for bit as in vpr_eval::SplitMix64."""

    def __init__(self, seed):
        self.state = seed & MASK

    def next_u64(self):
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def below(self, n):
        threshold = (1 << 64) % n
        while True:
            x = self.next_u64()
            if x >= threshold:
                return x % n


def resample_indices(n, resamples, seed):
    rng = SplitMix64(seed)
    return np.array([[rng.below(n) for _ in range(n)] for _ in range(resamples)], dtype=np.int64)


def hit_matrix(ranks, ns):
    """(n_queries, len(ns)) booleans: query q is a hit at N (a query without a positive: a miss)."""
    return np.array([[r is not None and r < n for n in ns] for r in ranks], dtype=bool)


def bootstrap_recall(ranks, ns, resamples, seed):
    n = len(ranks)
    hits = hit_matrix(ranks, ns).astype(np.int64)
    idx = resample_indices(n, resamples, seed)
    counts = hits[idx].sum(axis=1)  # (resamples, len(ns))
    values = counts / n * 100.0
    point = hits.sum(axis=0) / n * 100.0
    lo = [float(np.percentile(values[:, j], 2.5)) for j in range(len(ns))]
    hi = [float(np.percentile(values[:, j], 97.5)) for j in range(len(ns))]
    return [float(x) for x in point], lo, hi


def mcnemar_p(b, c):
    if b + c == 0:
        return 1.0
    return float(stats.binomtest(min(b, c), b + c, 0.5).pvalue)


def paired(ranks_a, ranks_b, ns, resamples, seed):
    n = len(ranks_a)
    ha = hit_matrix(ranks_a, ns).astype(np.int64)
    hb = hit_matrix(ranks_b, ns).astype(np.int64)
    idx = resample_indices(n, resamples, seed)
    diffs = (hb[idx].sum(axis=1) - ha[idx].sum(axis=1)) / n * 100.0
    diff = (hb.sum(axis=0) - ha.sum(axis=0)) / n * 100.0
    lo = [float(np.percentile(diffs[:, j], 2.5)) for j in range(len(ns))]
    hi = [float(np.percentile(diffs[:, j], 97.5)) for j in range(len(ns))]
    a1 = np.array([r == 0 for r in ranks_a])
    b1 = np.array([r == 0 for r in ranks_b])
    b = int(np.sum(a1 & ~b1))
    c = int(np.sum(~a1 & b1))
    return {
        "recall_a": [float(x) for x in ha.sum(axis=0) / n * 100.0],
        "recall_b": [float(x) for x in hb.sum(axis=0) / n * 100.0],
        "diff": [float(x) for x in diff],
        "lower": lo,
        "upper": hi,
        "mcnemar": {"b": b, "c": c, "p_value": mcnemar_p(b, c)},
    }


def random_ranks(rng, n, p_none, p_top, depth=30):
    """First-hit ranks: None with probability p_none, else 0 with p_top, else uniform 1..depth-1."""
    out = []
    for _ in range(n):
        u = rng.random()
        if u < p_none:
            out.append(None)
        elif u < p_none + p_top:
            out.append(0)
        else:
            out.append(int(rng.integers(1, depth)))
    return out


def correlated(rng, ranks, p_keep, p_none, p_top):
    fresh = random_ranks(rng, len(ranks), p_none, p_top)
    return [r if rng.random() < p_keep else f for r, f in zip(ranks, fresh)]


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------
def frechet_scipy(a32, b32):
    a = a32.astype(np.float64)
    b = b32.astype(np.float64)
    mu1, mu2 = a.mean(axis=0), b.mean(axis=0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    diff = mu1 - mu2
    covmean, _ = linalg.sqrtm(s1.dot(s2), disp=False)
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def frechet_svd(a32, b32):
    """The same distance with tr((S1 S2)^1/2) = nuclear norm of Xb Xa^T / sqrt((na-1)(nb-1))."""
    a = a32.astype(np.float64)
    b = b32.astype(np.float64)
    xa = a - a.mean(axis=0)
    xb = b - b.mean(axis=0)
    diff = a.mean(axis=0) - b.mean(axis=0)
    tr_a = np.sum(xa * xa) / (len(a) - 1)
    tr_b = np.sum(xb * xb) / (len(b) - 1)
    nuc = np.linalg.svd(xb @ xa.T, compute_uv=False).sum() / np.sqrt((len(a) - 1) * (len(b) - 1))
    return float(diff.dot(diff) + tr_a + tr_b - 2.0 * nuc)


def gaussian_features(rng, rows, dim, scale, shift):
    mix = rng.normal(size=(dim, dim)) * scale / np.sqrt(dim)
    mean = rng.normal(size=dim) * shift
    return (rng.normal(size=(rows, dim)) @ mix + mean).astype(np.float32)


def splitmix_features(seed, rows, dim, variant):
    """Features generated from SplitMix64 alone (the Rust test rebuilds them bit for bit).

    u = (next_u64() >> 44) / 2**20 - 0.5 (row-major draw order, exact in f32); variant "a":
    x[i, j] = u[i, j] * 2**(j % 3); variant "b": x[i, j] = u[i, j] + 0.5 * u[i, (j + 1) % dim] + 0.25.
    Every value is exact in float32.
    """
    rng = SplitMix64(seed)
    u = np.array(
        [[(rng.next_u64() >> 44) / 2.0**20 - 0.5 for _ in range(dim)] for _ in range(rows)],
        dtype=np.float64,
    )
    if variant == "a":
        x = u * (2.0 ** (np.arange(dim) % 3))
    else:
        x = u + 0.5 * np.roll(u, -1, axis=1) + 0.25
    x32 = x.astype(np.float32)
    assert np.array_equal(x32.astype(np.float64), x)
    return x32


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)

    # first-hit ranks: a few sizes, with misses and hits beyond N = 20
    recall_cases = []
    for n, seed, p_none, p_top in [
        (40, 7, 0.2, 0.5),
        (200, 1234, 0.15, 0.6),
        (1000, 0xDEADBEEF, 0.3, 0.4),
        (1000, 2**64 - 1, 0.05, 0.85),
    ]:
        ranks = random_ranks(rng, n, p_none, p_top)
        values, lower, upper = bootstrap_recall(ranks, NS, RESAMPLES, seed)
        recall_cases.append(
            {
                "ranks": ranks,
                "n": NS,
                "seed": seed,
                "resamples": RESAMPLES,
                "values": values,
                "lower": lower,
                "upper": upper,
            }
        )
    # a small number of resamples, to pin the percentile interpolation
    ranks = random_ranks(rng, 25, 0.2, 0.5)
    values, lower, upper = bootstrap_recall(ranks, NS, 7, 99)
    recall_cases.append(
        {"ranks": ranks, "n": NS, "seed": 99, "resamples": 7, "values": values, "lower": lower,
         "upper": upper}
    )

    paired_cases = []
    for n, seed in [(200, 5), (1000, 42)]:
        a = random_ranks(rng, n, 0.2, 0.5)
        b = correlated(rng, a, 0.7, 0.15, 0.6)
        case = paired(a, b, NS, RESAMPLES, seed)
        case.update({"ranks_a": a, "ranks_b": b, "n": NS, "seed": seed, "resamples": RESAMPLES})
        paired_cases.append(case)

    mcnemar_cases = [
        {"b": b, "c": c, "p_value": mcnemar_p(b, c)}
        for b, c in [
            (0, 0), (0, 1), (1, 0), (0, 5), (3, 17), (17, 3), (10, 10), (7, 8), (100, 300),
            (500, 560), (20000, 20400), (45000, 47000), (50000, 50700), (60000, 60000),
        ]
    ]

    frechet_cases = []
    for name, (a, b) in {
        "gaussian_64": (
            gaussian_features(rng, 300, 64, 1.0, 0.5),
            gaussian_features(rng, 250, 64, 1.5, 0.5),
        ),
        "rank_deficient_128": (
            gaussian_features(rng, 50, 128, 1.0, 0.3),
            gaussian_features(rng, 60, 128, 0.7, 0.3),
        ),
    }.items():
        np.save(os.path.join(OUT, f"frechet_{name}_a.npy"), a)
        np.save(os.path.join(OUT, f"frechet_{name}_b.npy"), b)
        frechet_cases.append(
            {
                "name": name,
                "a": f"frechet_{name}_a.npy",
                "b": f"frechet_{name}_b.npy",
                "d_scipy": frechet_scipy(a, b),
                "d_svd": frechet_svd(a, b),
                "d_scipy_aa": frechet_scipy(a, a),
                "trace_a": float(np.trace(np.cov(a.astype(np.float64), rowvar=False))),
            }
        )
    # 1280-dimensional, a few hundred rows (rank-deficient): features rebuilt from SplitMix64
    a = splitmix_features(11, 300, 1280, "a")
    b = splitmix_features(12, 250, 1280, "b")
    frechet_cases.append(
        {
            "name": "splitmix_1280",
            "splitmix": {"a": {"seed": 11, "rows": 300, "variant": "a"},
                         "b": {"seed": 12, "rows": 250, "variant": "b"}, "dim": 1280},
            "d_scipy": frechet_scipy(a, b),
            "d_svd": frechet_svd(a, b),
            "trace_a": float(np.trace(np.cov(a.astype(np.float64), rowvar=False))),
        }
    )

    first = SplitMix64(0)
    out = {
        "generator": "SplitMix64; below(n) by rejection of x < 2**64 mod n; percentile: numpy linear",
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "splitmix64_seed0_first": [first.next_u64() for _ in range(3)],
        "recall": recall_cases,
        "paired": paired_cases,
        "mcnemar": mcnemar_cases,
        "frechet": frechet_cases,
    }
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def bootstrap_map(aps, resamples, seed):
    v = np.array([a for a in aps if a is not None], dtype=np.float64)
    n = len(v)
    idx = resample_indices(n, resamples, seed)
    values = v[idx].sum(axis=1) / n * 100.0
    return {
        "map": float(v.sum() / n * 100.0),
        "lower": float(np.percentile(values, 2.5)),
        "upper": float(np.percentile(values, 97.5)),
        "n_queries": n,
    }


def sign_flip_p(d, resamples, seed):
    n = len(d)
    observed = d.sum() / n * 100.0
    tol = 1e-9 * max(abs(observed), 1e-12)
    rng = SplitMix64(seed + 1)
    extreme = 0
    for _ in range(resamples):
        signs = np.array([-1.0 if rng.next_u64() >> 63 == 1 else 1.0 for _ in range(n)])
        if abs((signs * d).sum() / n * 100.0) >= abs(observed) - tol:
            extreme += 1
    return (1 + extreme) / (1 + resamples)


def exact_sign_flip_p(d):
    n = len(d)
    observed = abs(d.sum())
    signs = np.array(list(itertools.product([-1.0, 1.0], repeat=n)))
    return float(np.mean(np.abs(signs @ d) >= observed - 1e-12))


def paired_map(a, b, resamples, seed):
    keep = [i for i in range(len(a)) if a[i] is not None]
    va = np.array([a[i] for i in keep], dtype=np.float64)
    vb = np.array([b[i] for i in keep], dtype=np.float64)
    d = vb - va
    n = len(d)
    idx = resample_indices(n, resamples, seed)
    diffs = d[idx].sum(axis=1) / n * 100.0
    out = {
        "map_a": float(va.sum() / n * 100.0),
        "map_b": float(vb.sum() / n * 100.0),
        "diff": float(d.sum() / n * 100.0),
        "lower": float(np.percentile(diffs, 2.5)),
        "upper": float(np.percentile(diffs, 97.5)),
        "p_value": sign_flip_p(d, resamples, seed),
    }
    if n <= 16:
        out["p_exact"] = exact_sign_flip_p(d)
    return out


def random_aps(rng, n, p_none):
    return [None if rng.random() < p_none else float(rng.beta(2.0, 2.0)) for _ in range(n)]


def map_main():
    rng = np.random.default_rng(20261207)
    single = []
    for n, seed, p_none in [(30, 3, 0.1), (200, 77, 0.0), (600, 2**64 - 1, 0.05)]:
        aps = random_aps(rng, n, p_none)
        case = bootstrap_map(aps, RESAMPLES, seed)
        case.update({"aps": aps, "seed": seed, "resamples": RESAMPLES})
        single.append(case)
    paired_cases = []
    for n, seed, shift, resamples in [(12, 5, 0.15, 20000), (200, 9, 0.03, RESAMPLES),
                                      (200, 10, 0.0, RESAMPLES)]:
        a = random_aps(rng, n, 0.1)
        b = [None if x is None else float(np.clip(x + shift + rng.normal(0, 0.2), 0, 1))
             for x in a]
        case = paired_map(a, b, resamples, seed)
        case.update({"aps_a": a, "aps_b": b, "seed": seed, "resamples": resamples})
        paired_cases.append(case)
    with open(os.path.join(OUT, "map_reference.json"), "w") as f:
        json.dump({"single": single, "paired": paired_cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
    map_main()
