#!/usr/bin/python3
"""OpenCV timing of the Dark Side Augmentation CLAHE, to compare with
`cargo bench -p nightvision-core --bench clahe` (crates/nightvision-core/benches/clahe.rs).

    /usr/bin/python3 benches/clahe_cv2.py            # prints a table, writes JSON to stdout's last line

Same sizes (362x362 and 1024x768 RGB) and the same image recipe (a gradient at half contrast
plus uniform noise in 0..63). "lab" is mdir's `ApplyClahe(clip_limit=1.0, grid_size=8,
colorspace=lab)` on a uint8 image after `Pil2Numpy` (float32 Lab, CLAHE on L, float32 Lab->RGB),
"gray" is `cv2.createCLAHE(1.0, (8, 8)).apply` alone. Timed single-threaded
(`cv2.setNumThreads(1)`, like the Rust code) and with OpenCV's default thread pool.
"""

import json
import time

import cv2
import numpy as np


def scene(w, h):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) * 255 // (w + h)], -1)
    return np.clip(base // 2 + rng.integers(0, 64, base.shape), 0, 255).astype(np.uint8)


def mdir_lab(img_u8, clahe):
    img = img_u8.astype(np.float32) / 255.0
    spc = (cv2.cvtColor(img, cv2.COLOR_RGB2LAB) + np.array([0, 128, 128], np.float32)) \
        / np.array([100.0, 255.0, 255.0], np.float32)
    spc[:, :, 0] = clahe.apply((spc[:, :, 0] * 255).astype(np.uint8)).astype(np.float32) / 255.0
    return cv2.cvtColor(spc * np.array([100.0, 255.0, 255.0], np.float32)
                        - np.array([0, 128, 128], np.float32), cv2.COLOR_LAB2RGB)


def best_of(fn, repeats=30):
    fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def main():
    clahe = cv2.createCLAHE(clipLimit=1.0, tileGridSize=(8, 8))
    default_threads = cv2.getNumThreads()
    rows = []
    for w, h in [(362, 362), (1024, 768)]:
        rgb = scene(w, h)
        gray = np.ascontiguousarray(rgb[:, :, 1])
        for threads in [1, default_threads]:
            cv2.setNumThreads(threads)
            rows.append({"size": f"{w}x{h}", "threads": threads,
                         "lab_ms": best_of(lambda: mdir_lab(rgb, clahe)),
                         "gray_ms": best_of(lambda: clahe.apply(gray))})
    cv2.setNumThreads(default_threads)
    print(f"cv2 {cv2.__version__}, median of 30 runs")
    print(f"{'size':>10} {'threads':>7} {'lab (ms)':>9} {'gray (ms)':>9}")
    for r in rows:
        print(f"{r['size']:>10} {r['threads']:>7} {r['lab_ms']:>9.3f} {r['gray_ms']:>9.3f}")
    print(json.dumps({"cv2_version": cv2.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
