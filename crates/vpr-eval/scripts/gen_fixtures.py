#!/usr/bin/python3
"""Seeded fixtures for the vpr-eval parity tests.

Run from the crate directory with Debian's Python (numpy 1.24):

    /usr/bin/python3 scripts/gen_fixtures.py

Writes into tests/fixtures/ (re-running gives identical files):

* gnd_revisited_p{2,3,4,5}.pkl  cirtorch/revisitop-style ground truth (imlist, qimlist, gnd with
                                 easy/hard/junk and a numpy float64 ``bbx`` per query) pickled with
                                 protocols 2, 3, 4 and 5 (5 stores the arrays through PickleBuffer).
* gnd_old_p2.pkl                 old protocol (ok/junk, int32 numpy bbx), and
  gnd_tokyo_like_p4.pkl          Tokyo 24/7 style (ok/junk, bbx None, imlist == qimlist).
* gnd_expected.json              what each pickle holds, to compare the Rust reader with.
* map_cases.json                 >= 20 seeded random cases per protocol (old, revisited): ranks,
                                 ground truth, and mAP / APs / mP@k / P@k from ``compute_map`` below,
                                 a numpy re-implementation of cirtorch ``utils/evaluate.py`` written
                                 from cirtorch's code (docs/PAPERS.md, protocols 1.6; np.isin
                                 instead of np.in1d).
* recall_case/{db,queries}.npy, recall_case/gt.npz, recall_case/expected.json
                                 random descriptors and UTM coordinates (with points exactly on the
                                 25 m boundary), brute-force positives, L2 and inner-product
                                 neighbours and Recall@N as VPR-methods-evaluation computes it.
* npy/*.npy                      descriptor files in the layouts Python tools write (f32 C order,
                                 f64, Fortran order, big endian) with the values in npy_expected.json.
"""
import json
import os
import pickle

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures")


# --------------------------------------------------------------------------------------------
# cirtorch compute_ap / compute_map (filipradenovic/cnnimageretrieval-pytorch utils/evaluate.py;
# docs/PAPERS.md, protocols 1.6)
# --------------------------------------------------------------------------------------------
def compute_ap(ranks, nres):
    """Trapezoid AP; ranks = 0-based positions of the positives (junk already removed)."""
    nimgranks = len(ranks)
    ap = 0.0
    recall_step = 1.0 / nres
    for j in np.arange(nimgranks):
        rank = ranks[j]
        if rank == 0:
            precision_0 = 1.0
        else:
            precision_0 = float(j) / rank
        precision_1 = float(j + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * recall_step / 2.0
    return ap


def compute_map(ranks, gnd, kappas=()):
    """ranks: (n_db, n_q) int array, a column per query. Returns map, aps, pr, prs.

    One documented extension: cirtorch raises on ``max(pos)`` when no positive of a query occurs
    in its (truncated) ranking; here P@k is 0 for such a query (its AP is 0 in cirtorch too).
    """
    mAP = 0.0
    nq = len(gnd)
    aps = np.zeros(nq)
    pr = np.zeros(len(kappas))
    prs = np.zeros((nq, len(kappas)))
    nempty = 0
    for i in np.arange(nq):
        qgnd = np.array(gnd[i]["ok"])
        if qgnd.shape[0] == 0:
            aps[i] = float("nan")
            prs[i, :] = float("nan")
            nempty += 1
            continue
        try:
            qgndj = np.array(gnd[i]["junk"])
        except KeyError:
            qgndj = np.empty(0)
        pos = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgnd)]
        junk = np.arange(ranks.shape[0])[np.isin(ranks[:, i], qgndj)]
        k = 0
        ij = 0
        if len(junk):
            ip = 0
            while ip < len(pos):
                while ij < len(junk) and pos[ip] > junk[ij]:
                    k += 1
                    ij += 1
                pos[ip] = pos[ip] - k
                ip += 1
        ap = compute_ap(pos, len(qgnd))
        mAP = mAP + ap
        aps[i] = ap
        pos += 1
        for j in np.arange(len(kappas)):
            if len(pos) == 0:
                prs[i, j] = 0.0
                continue
            kq = min(max(pos), kappas[j])
            prs[i, j] = (pos <= kq).sum() / kq
        pr = pr + prs[i, :]
    mAP = mAP / (nq - nempty)
    pr = pr / (nq - nempty)
    return mAP, aps, pr, prs


def revisited(ranks, gnd, ks=(1, 5, 10)):
    """compute_map_and_print's Easy / Medium / Hard protocols."""
    out = {}
    setups = {
        "easy": lambda g: (g["easy"], np.concatenate([g["junk"], g["hard"]])),
        "medium": lambda g: (np.concatenate([g["easy"], g["hard"]]), g["junk"]),
        "hard": lambda g: (g["hard"], np.concatenate([g["junk"], g["easy"]])),
    }
    for name, f in setups.items():
        gnd_t = []
        for g in gnd:
            ok, junk = f(g)
            gnd_t.append({"ok": np.asarray(ok, dtype=np.int64), "junk": np.asarray(junk, dtype=np.int64)})
        m, aps, pr, prs = compute_map(ranks, gnd_t, ks)
        out[name] = {"map": m, "aps": jnan(aps), "mpk": pr.tolist(), "prs": [jnan(r) for r in prs]}
    return out


def jnan(a):
    """JSON has no NaN: encode it as null."""
    return [None if np.isnan(x) else float(x) for x in np.asarray(a, dtype=np.float64)]


# --------------------------------------------------------------------------------------------
# gnd pickles
# --------------------------------------------------------------------------------------------
def gnd_files(rng):
    n_db, n_q = 40, 6
    imlist = [f"all_souls_{i:06d}" for i in range(n_db)]
    qimlist = [f"query_{i:03d}" for i in range(n_q)]
    gnd_rev = []
    for _ in range(n_q):
        perm = rng.permutation(n_db)
        ne, nh, nj = rng.integers(0, 6, size=3)
        g = {
            "bbx": np.array(rng.uniform(0, 800, size=4).round(1), dtype=np.float64),
            "easy": [int(x) for x in perm[:ne]],
            "hard": [int(x) for x in perm[ne:ne + nh]],
            "junk": [int(x) for x in perm[ne + nh:ne + nh + nj]],
        }
        gnd_rev.append(g)
    cfg_rev = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd_rev}
    gnd_old = []
    for _ in range(n_q):
        perm = rng.permutation(n_db)
        no, nj = rng.integers(1, 7, size=2)
        gnd_old.append({
            "bbx": np.array(rng.integers(0, 1000, size=4), dtype=np.int32),
            "ok": np.array(perm[:no], dtype=np.int64),  # old gnd from .mat: numpy index arrays
            "junk": [int(x) for x in perm[no:no + nj]],
        })
    cfg_old = {"imlist": imlist, "qimlist": qimlist, "gnd": gnd_old}
    names = [f"247query_v3/{i:05d}" for i in range(9)]
    gnd_tokyo = []
    for i in range(9):
        others = [j for j in range(9) if j != i and j // 3 == i // 3]
        gnd_tokyo.append({"bbx": None, "ok": others, "junk": [i]})
    cfg_tokyo = {"imlist": names, "qimlist": names, "gnd": gnd_tokyo}

    for proto in (2, 3, 4, 5):
        with open(os.path.join(OUT, f"gnd_revisited_p{proto}.pkl"), "wb") as f:
            pickle.dump(cfg_rev, f, protocol=proto)
    with open(os.path.join(OUT, "gnd_old_p2.pkl"), "wb") as f:
        pickle.dump(cfg_old, f, protocol=2)
    with open(os.path.join(OUT, "gnd_tokyo_like_p4.pkl"), "wb") as f:
        pickle.dump(cfg_tokyo, f, protocol=4)

    def plain(cfg):
        out = {"imlist": cfg["imlist"], "qimlist": cfg["qimlist"], "gnd": []}
        for g in cfg["gnd"]:
            out["gnd"].append({k: (None if v is None else np.asarray(v).tolist()) for k, v in g.items()})
        return out

    with open(os.path.join(OUT, "gnd_expected.json"), "w") as f:
        json.dump({"revisited": plain(cfg_rev), "old": plain(cfg_old), "tokyo_like": plain(cfg_tokyo)}, f)


# --------------------------------------------------------------------------------------------
# mAP cases
# --------------------------------------------------------------------------------------------
def map_cases(rng, n_cases=24):
    cases = []
    for c in range(n_cases):
        n_db = int(rng.integers(8, 60))
        n_q = int(rng.integers(1, 9))
        n_rows = n_db if c % 4 else int(rng.integers(3, n_db + 1))  # every 4th ranking is truncated
        ranks = np.stack([rng.permutation(n_db)[:n_rows] for _ in range(n_q)], axis=1)
        old = []
        rev = []
        for q in range(n_q):
            perm = rng.permutation(n_db)
            no = int(rng.integers(0, max(2, n_db // 3)))
            if c == 0 and q == 0:
                no = 0  # an empty query: NaN AP, excluded from the mean
            nj = int(rng.integers(0, max(2, n_db // 4)))
            ok = perm[:no]
            junk = perm[no:no + nj]
            if c % 5 == 1 and no > 0:
                junk = np.concatenate([junk, ok[:1]])  # an id both positive and junk
            old.append({"ok": [int(x) for x in ok], "junk": [int(x) for x in junk]})
            ne = int(rng.integers(0, max(2, n_db // 4)))
            nh = int(rng.integers(0, max(2, n_db // 4)))
            nj = int(rng.integers(0, max(2, n_db // 5)))
            if c == 1 and q == 0:
                ne = nh = 0  # empty in every revisited protocol
            if c == 2 and q == 0:
                nh = 0  # empty in Hard only
            rev.append({
                "easy": [int(x) for x in perm[:ne]],
                "hard": [int(x) for x in perm[ne:ne + nh]],
                "junk": [int(x) for x in perm[ne + nh:ne + nh + nj]],
            })
        # the old protocol needs at least one non-empty query; so do all revisited setups
        if all(len(g["ok"]) == 0 for g in old):
            old[-1]["ok"] = [int(ranks[0, -1]) if n_rows else 0]
        for key in ("easy", "hard"):
            if all(len(g[key]) == 0 for g in rev):
                rev[-1][key] = [int(x) for x in rng.permutation(n_db)[:2] if int(x) not in rev[-1]["junk"]]
        kappas = [1, 5, 10]
        m, aps, pr, prs = compute_map(ranks, old, kappas)
        cases.append({
            "ranks": ranks.tolist(),
            "old": {"gnd": old, "map": m, "aps": jnan(aps), "mpk": pr.tolist(), "prs": [jnan(r) for r in prs]},
            "revisited": {"gnd": rev, **revisited(ranks, rev)},
        })
    with open(os.path.join(OUT, "map_cases.json"), "w") as f:
        json.dump({"kappas": [1, 5, 10], "cases": cases}, f)


# --------------------------------------------------------------------------------------------
# Recall@N
# --------------------------------------------------------------------------------------------
def min_top_gap(q, db, metric, depth):
    """Smallest gap between consecutive sorted scores among the first depth + 1 of every query."""
    q64, db64 = q.astype(np.float64), db.astype(np.float64)
    if metric == "l2":
        score = -((q64[:, None, :] - db64[None, :, :]) ** 2).sum(-1)
    else:
        score = q64 @ db64.T
    order = np.argsort(-score, axis=1, kind="stable")
    sorted_scores = np.take_along_axis(score, order, axis=1)[:, :depth + 1]
    return score, order, float(np.min(sorted_scores[:, :-1] - sorted_scores[:, 1:]))


def recall_case(rng):
    d = os.path.join(OUT, "recall_case")
    os.makedirs(d, exist_ok=True)
    n_db, n_q, dim = 400, 60, 24
    ns = [1, 5, 10, 20]
    # Redraw until every query's top-21 scores are separated by more than 1e-5 under both metrics:
    # the Rust side ranks by f32 scores (error < ~5e-6 here), so the lists must then be identical.
    for attempt in range(200):
        db = rng.standard_normal((n_db, dim)).astype(np.float32)
        db /= np.linalg.norm(db, axis=1, keepdims=True)
        q = rng.standard_normal((n_q, dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        # queries near a few database items so recall is neither 0 nor 100
        near = rng.integers(0, n_db, size=n_q)
        q = 0.6 * q + db[near]
        q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
        gaps = [min_top_gap(q, db, m, max(ns))[2] for m in ("l2", "ip")]
        if min(gaps) > 1e-5:
            break
    else:
        raise RuntimeError("no well-separated draw")
    utm_db = np.stack([rng.uniform(380000, 380300, n_db), rng.uniform(3946000, 3946300, n_db)], axis=1)
    utm_q = utm_db[near] + rng.normal(0, 15, size=(n_q, 2))
    # exact boundary cases: a query exactly 25 m east / 7-24-25 triangle from a database image
    utm_q[0] = utm_db[5] + np.array([25.0, 0.0])
    utm_q[1] = utm_db[6] + np.array([7.0, 24.0])
    utm_q[2] = np.array([10.0, 10.0])  # far from everything: no positive, counts as a miss
    np.save(os.path.join(d, "db.npy"), db)
    np.save(os.path.join(d, "queries.npy"), q)
    np.savez(os.path.join(d, "gt.npz"), utmQ=utm_q, utmDb=utm_db, posDistThr=np.int64(25))

    radius = 25.0
    dist = np.sqrt(((utm_q[:, None, :] - utm_db[None, :, :]) ** 2).sum(-1))
    positives = [np.nonzero(dist[i] <= radius)[0].tolist() for i in range(n_q)]
    dist2 = ((utm_q[:, None, :] - utm_db[None, :, :]) ** 2).sum(-1)
    assert all(np.nonzero(dist2[i] <= radius * radius)[0].tolist() == positives[i] for i in range(n_q))

    out = {"radius": radius, "positives": positives, "n": ns, "draws": attempt + 1}
    for metric in ("l2", "ip"):
        score, order, min_gap = min_top_gap(q, db, metric, max(ns))
        preds = order[:, :max(ns)]
        recalls = np.zeros(len(ns))
        for qi, p in enumerate(preds):
            for i, n in enumerate(ns):
                if np.any(np.isin(p[:n], positives[qi])):
                    recalls[i:] += 1
                    break
        recalls = recalls / n_q * 100
        out[metric] = {"preds": preds.tolist(), "recall": recalls.tolist(), "min_gap": min_gap}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(out, f)


# --------------------------------------------------------------------------------------------
# npy layouts
# --------------------------------------------------------------------------------------------
def npy_files(rng):
    d = os.path.join(OUT, "npy")
    os.makedirs(d, exist_ok=True)
    a = rng.standard_normal((5, 3))
    np.save(os.path.join(d, "f32_c.npy"), a.astype(np.float32))
    np.save(os.path.join(d, "f64_c.npy"), a.astype(np.float64))
    np.save(os.path.join(d, "f32_fortran.npy"), np.asfortranarray(a.astype(np.float32)))
    np.save(os.path.join(d, "f32_big_endian.npy"), a.astype(">f4"))
    np.save(os.path.join(d, "i64_ranks.npy"), np.argsort(-a, axis=0))
    np.save(os.path.join(d, "i32_ranks_fortran.npy"), np.asfortranarray(np.argsort(-a, axis=0).astype(np.int32)))
    bad = a.astype(np.float32)
    bad[3, 1] = np.nan
    np.save(os.path.join(d, "f32_nan.npy"), bad)
    np.save(os.path.join(d, "f32_1d.npy"), a[:, 0].astype(np.float32))
    with open(os.path.join(d, "npy_expected.json"), "w") as f:
        json.dump({"values": a.astype(np.float32).astype(np.float64).tolist(),
                   "values_f64": a.tolist(), "ranks": np.argsort(-a, axis=0).tolist()}, f)


if __name__ == "__main__":
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240229)
    gnd_files(rng)
    map_cases(rng)
    recall_case(rng)
    npy_files(rng)
    print("fixtures written to", os.path.normpath(OUT), "numpy", np.__version__)
