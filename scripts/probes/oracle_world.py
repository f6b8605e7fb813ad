#!/usr/bin/python3
"""Oracle probe (issue 14): a copy of a rendered world whose cirtorch *training* tuples contain
real night renders of their own places.

For every training place that has night GAN renders (`gan/trainB`, the odd training places),
the cirtorch views 0, 2, 4, 6 and 8 (the queries whose positive is the next, day, view) are
replaced by night renders of the same place. That is what a perfect day->night translator
would give DSA's anchors (at 25 % of all training images, DSA translates a hashed 25 % of its
anchors). Nothing else changes: the test, val and GAN folders are the world's own (hard links),
so a fine-tune on the copy is scored on exactly the held-out places of the original.

usage: oracle_world.py WORLD OUT
"""
import json
import os
import pickle
import re
import shutil
import subprocess
import sys

world, out = sys.argv[1], sys.argv[2]
if os.path.exists(out):
    sys.exit(f"{out} exists")
subprocess.run(["cp", "-al", world, out], check=True)
m = json.load(open(os.path.join(world, "manifest.json")))
cfg = m["config"]
first, n = cfg["places"], cfg["train_places"]
allp = list(range(first, first + n))
# synthetic-places' train/val split (export.rs `train_val`): every fifth training place is val
val = [p for k, p in enumerate(allp) if k % 5 == 4] or allp[-1:]
train = [p for p in allp if p not in val]
root = os.path.join(out, "cirtorch/train/synthetic-places")
db = pickle.load(open(os.path.join(root, "synthetic-places.pkl"), "rb"))["train"]
views = cfg["tuple_views"]
assert len(db["cids"]) == len(train) * views, (len(db["cids"]), len(train))

night = {}
for f in sorted(os.listdir(os.path.join(world, "gan/trainB"))):
    p = int(re.search(r"@p(\d{5})gan", f).group(1))
    night.setdefault(p, []).append(os.path.join(world, "gan/trainB", f))

replaced = 0
for c, p in enumerate(train):
    if p not in night:
        continue
    renders = night[p]
    for j, v in enumerate(range(0, views, 2)):
        if j >= len(renders):
            break
        i = c * views + v
        assert db["cluster"][i] == c
        cid = db["cids"][i]
        dst = os.path.join(root, "ims", cid[30:32], cid[28:30], cid[26:28], cid)
        os.remove(dst)  # a hard link to the original world: unlink, never write through
        shutil.copyfile(renders[j], dst)
        replaced += 1
print(f"{replaced} of {len(db['cids'])} training images replaced by real night renders "
      f"({len([p for p in train if p in night])} of {len(train)} places)")
