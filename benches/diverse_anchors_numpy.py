#!/usr/bin/env python3
"""numpy reference timings for diverse anchor mining (docs/PAPERS.md A.7), on the same data as the
criterion bench `crates/anchor-mining/benches/diverse_anchors.rs` (it writes
target/diverse_anchors_bench.npy and target/diverse_anchors_bench_rust.json; run it first).

Two numpy implementations, deterministic mode (last element of the band):
  literal      A.7 as written: S = [S, Q^T q_last] grows, m = S.max(1), stable argsort of m.
  incremental  running max m = maximum(m, Q^T q_last) + stable argsort (the best plain numpy).
The anchor sequences are compared with the Rust run: they agree until the first pick decided by
a rounding-level tie (numpy's and burn's f32 products round differently in the last bit); the
exact agreement on tie-free data is what tests/diverse.rs checks against a fixture. (Even the two
numpy layouts disagree: Q^T @ q with Q stored D x Qp, as the literal version does, rounds
differently from the row-major product, and the sequences part ways after ~160 picks.) Writes target/diverse_anchors_numpy.json and
prints a table with the Rust time if given (--rust-seconds, the criterion median).

    /usr/bin/python3 benches/diverse_anchors_numpy.py [--rust-seconds 1.23] [--skip-literal]
"""
import argparse
import json
import os
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(ROOT, "target")


def band(valid, include=0.8, exclude=0.2):
    hi = max(int(valid * (1 - exclude)), 1)
    lo = min(int(valid * (1 - include)), hi - 1)
    return lo, hi


def literal(Q, q):
    Qp = Q.shape[1]
    chosen = [0]
    S = np.empty((Qp, 0), dtype=np.float32)
    for _ in range(q - 1):
        S = np.concatenate([S, (Q.T @ Q[:, chosen[-1]])[:, None]], axis=1)
        m = S.max(axis=1)
        lo, hi = band(Qp - len(chosen))
        chosen.append(int(np.argsort(m, kind="stable")[lo:hi][-1]))
    return chosen


def incremental(Q, q):
    Qp = Q.shape[1]
    Qt = np.ascontiguousarray(Q.T)  # [Qp, D] rows, like the Rust side
    chosen = [0]
    m = np.full(Qp, -np.inf, dtype=np.float32)
    for _ in range(q - 1):
        np.maximum(m, Qt @ Qt[chosen[-1]], out=m)
        lo, hi = band(Qp - len(chosen))
        chosen.append(int(np.argsort(m, kind="stable")[lo:hi][-1]))
    return chosen


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rust-seconds", type=float, default=None)
    ap.add_argument("--skip-literal", action="store_true")
    args = ap.parse_args()
    X = np.load(os.path.join(TARGET, "diverse_anchors_bench.npy"))
    with open(os.path.join(TARGET, "diverse_anchors_bench_rust.json")) as f:
        rust = json.load(f)
    q = rust["q"]
    Q = np.ascontiguousarray(X.T)  # D x Qp, as the reference stores it
    results = {"qp": X.shape[0], "d": X.shape[1], "q": q, "numpy": np.__version__}
    runs = [("incremental", incremental)] + ([] if args.skip_literal else [("literal", literal)])
    for name, fn in runs:
        t = time.perf_counter()
        chosen = fn(Q, q)
        dt = time.perf_counter() - t
        agree = next((i for i, (a, b) in enumerate(zip(chosen, rust["anchors"])) if a != b), q)
        same_set = sorted(chosen) == sorted(rust["anchors"])
        overlap = len(set(chosen) & set(rust["anchors"]))
        results[name] = {"seconds": dt, "first_anchors_identical_to_rust": agree,
                         "same_set_as_rust": same_set, "overlap_with_rust": overlap}
        print(f"{name}: {dt:.2f} s; first {agree} of {q} anchors identical to Rust, "
              f"overlap {overlap}, same set {same_set}")
    if args.rust_seconds:
        results["rust_seconds"] = args.rust_seconds
        for name, _ in runs:
            results[name]["speedup_rust"] = results[name]["seconds"] / args.rust_seconds
    with open(os.path.join(TARGET, "diverse_anchors_numpy.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"\n| implementation | seconds | Rust speed-up |\n|---|---|---|")
    if args.rust_seconds:
        print(f"| Rust (burn flex + int8 screen) | {args.rust_seconds:.2f} | 1.0x |")
    for name, _ in runs:
        r = results[name]
        sp = f"{r['speedup_rust']:.1f}x" if "speedup_rust" in r else "-"
        print(f"| numpy {name} | {r['seconds']:.2f} | {sp} |")


if __name__ == "__main__":
    main()
