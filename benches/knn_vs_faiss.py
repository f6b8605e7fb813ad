#!/usr/bin/env python3
"""Exact top-k search: vpr-eval (host kernel and burn device engine) vs faiss-cpu IndexFlatIP vs numpy.

Same random L2-normalised float32 data for all three, in one run:
  (a) 75,984 database x 315 queries x 512-d (Tokyo 24/7 VPR size)
  (b) 1,000,000 database x 100 queries x 512-d

Setup (once; faiss-cpu comes from PyPI into a venv, nothing downloads at test time):
    /usr/bin/python3 -m venv --system-site-packages /tmp/venv-faiss
    /tmp/venv-faiss/bin/pip install faiss-cpu
    cargo build --release --example evaluate
Run from the workspace root:
    /tmp/venv-faiss/bin/python benches/knn_vs_faiss.py [--sizes a,b] [--k 20] [--threads 2]

vpr-eval runs with both engines: `host` (packed index, fused score + top-k kernel; what `auto`
picks on a CPU device) and `device` (blocked burn matmul + two-stage top-k, the path GPUs take).
Timings are of the search only (best of --repeat runs; faiss `add` and our upload are reported
separately). Neighbour lists are compared with each other and with an exact float64 ranking; rows
that differ are classified as near ties (float32 rounding: the two lists' float64 scores agree within
1e-5 at every rank) or as real disagreements (the script fails on those).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = {"a": (75_984, 315, 512), "b": (1_000_000, 100, 512)}
TIE_TOL = 1e-5


def make_data(n_db, n_q, dim, seed):
    rng = np.random.default_rng(seed)
    db = rng.standard_normal((n_db, dim), dtype=np.float32)
    db /= np.linalg.norm(db, axis=1, keepdims=True)
    q = rng.standard_normal((n_q, dim), dtype=np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return db, q


def numpy_topk(db, q, k):
    scores = q @ db.T  # (n_q, n_db) float32, BLAS sgemm
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(scores, part, axis=1)
    # order by (score desc, index asc)
    order = np.lexsort((part, -s), axis=1)
    return np.take_along_axis(part, order, axis=1)


def exact_f64(db, q, k, block=65536):
    """Exact top-k by float64 scores (ties by lower index), block by block."""
    q64 = q.astype(np.float64)
    best_s = np.full((q.shape[0], 0), -np.inf)
    best_i = np.zeros((q.shape[0], 0), dtype=np.int64)
    for s in range(0, db.shape[0], block):
        sc = q64 @ db[s:s + block].astype(np.float64).T
        idx = np.broadcast_to(np.arange(s, s + sc.shape[1]), sc.shape)
        cs = np.concatenate([best_s, sc], axis=1)
        ci = np.concatenate([best_i, idx], axis=1)
        order = np.lexsort((ci, -cs), axis=1)[:, :k]
        best_s = np.take_along_axis(cs, order, axis=1)
        best_i = np.take_along_axis(ci, order, axis=1)
    return best_i


def compare(name, got, ref, db, q):
    """(identical rows, near-tie rows, real disagreements) of `got` vs `ref`."""
    same = tie = bad = 0
    q64 = q.astype(np.float64)
    for r in range(got.shape[0]):
        if np.array_equal(got[r], ref[r]):
            same += 1
            continue
        sg = db[got[r]].astype(np.float64) @ q64[r]
        sr = db[ref[r]].astype(np.float64) @ q64[r]
        if np.all(np.abs(np.sort(sg)[::-1] - np.sort(sr)[::-1]) < TIE_TOL):
            tie += 1
        else:
            bad += 1
    return same, tie, bad


def best_of(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="a,b")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--binary", default="target/release/examples/evaluate")
    ap.add_argument("--custom", default="", help="n_db,n_q,dim instead of --sizes")
    ap.add_argument("--engines", default="host,device", help="vpr-eval engines to run")
    args = ap.parse_args()
    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"numpy {np.__version__}, faiss {faiss.__version__}, threads {args.threads}, k {args.k}")
    cases = [tuple(int(x) for x in args.custom.split(","))] if args.custom else [SIZES[s] for s in args.sizes.split(",")]
    failed = False
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for ci, (n_db, n_q, dim) in enumerate(cases):
            label = f"{n_db}x{n_q}x{dim}"
            db, q = make_data(n_db, n_q, dim, seed=ci + 1)
            db_p, q_p, out_p = (os.path.join(tmp, f) for f in ("db.npy", "q.npy", "ours.npy"))
            np.save(db_p, db)
            np.save(q_p, q)
            # ours (separate process per engine; reads the same files)
            ours_runs = {}
            for engine in args.engines.split(","):
                res = subprocess.run(
                    [args.binary, "knn", "--db", db_p, "--queries", q_p, "--k", str(args.k),
                     "--metric", "ip", "--engine", engine, "--out", out_p, "--repeat", str(args.repeat)],
                    check=True, capture_output=True, text=True)
                info = json.loads(res.stdout.strip().splitlines()[-1])
                ours_runs[engine] = (info["best_search_s"], info["upload_s"], np.load(out_p))
            # faiss
            index = faiss.IndexFlatIP(dim)
            t = time.perf_counter()
            index.add(db)
            t_add = time.perf_counter() - t
            t_faiss, (_, fa) = best_of(lambda: index.search(q, args.k), args.repeat)
            del index
            # numpy
            t_np, npy = best_of(lambda: numpy_topk(db, q, args.k), 1 if n_db > 200_000 else args.repeat)
            ref = exact_f64(db, q, args.k)
            print(f"\n({label}) search time, best of {args.repeat}: faiss IndexFlatIP {t_faiss:.3f} s "
                  f"(add {t_add:.2f} s), numpy {t_np:.3f} s")
            gflop = 2 * n_db * n_q * dim / 1e9
            for engine, (t_ours, t_up, _) in ours_runs.items():
                print(f"  vpr-eval {engine}: {t_ours:.3f} s (index build {t_up:.2f} s), "
                      f"{gflop / t_ours:.0f} GFLOP/s effective; faiss/ours = {t_faiss / t_ours:.2f}x, "
                      f"numpy/ours = {t_np / t_ours:.2f}x")
            named = [(f"vpr-eval {e}", r[2]) for e, r in ours_runs.items()]
            for name, got in named + [("faiss", fa), ("numpy", npy)]:
                same, tie, bad = compare(name, got, ref, db, q)
                print(f"  {name:15s} vs exact float64 ranking: {same}/{n_q} rows identical, {tie} differ only "
                      f"by near ties (< {TIE_TOL}), {bad} real disagreements")
                failed |= bad > 0
                if name.startswith("vpr-eval"):
                    same, tie, bad = compare("ours-faiss", got, fa, db, q)
                    print(f"  {name:15s} vs faiss: {same}/{n_q} rows identical, {tie} near-tie rows, "
                          f"{bad} real disagreements")
                    failed |= bad > 0
            for engine, (t_ours, _, _) in ours_runs.items():
                rows.append((f"{label} ({engine})", t_ours, t_faiss, t_np))
            del db, q
    print("\n| data | vpr-eval (s) | faiss IndexFlatIP (s) | numpy (s) | faiss / ours | numpy / ours |")
    print("|---|---|---|---|---|---|")
    for label, a, b, c in rows:
        print(f"| {label} | {a:.3f} | {b:.3f} | {c:.3f} | {b / a:.2f} | {c / a:.2f} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
