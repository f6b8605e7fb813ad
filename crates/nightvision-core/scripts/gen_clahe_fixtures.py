#!/usr/bin/python3
"""Writes the CLAHE parity fixtures of nightvision-core into tests/fixtures/clahe/.

Run with Debian's Python (cv2 from python3-opencv):

    /usr/bin/python3 crates/nightvision-core/scripts/gen_clahe_fixtures.py

Reference = OpenCV itself, driven exactly as the Dark Side Augmentation code (mohwald/gandtr,
`mdir/components/data/transform/functional.py`: `rgb2normspace`, `normspace2rgb`,
`ChannelClahe.apply_clahe`, `ImageClahe.apply`) drives it for `ApplyClahe(clip_limit=1.0,
grid_size=8, colorspace="lab")`:

    img  = np.asarray(pil.convert("RGB")).astype(np.float32) / 255.0          # Pil2Numpy
    spc  = (cv2.cvtColor(img, cv2.COLOR_RGB2LAB) + [0, 128, 128]) / [100, 255, 255]   # float32 Lab
    L8   = (spc[:, :, 0] * 255).astype(np.uint8)                               # truncation
    spc[:, :, 0] = clahe.apply(L8).astype(np.float32) / 255.0
    out  = cv2.cvtColor(spc * [100, 255, 255] - [0, 128, 128], cv2.COLOR_LAB2RGB)  # float32 RGB

i.e. the *float32* Lab conversion (not the 8-bit one), RGB order, L quantised by truncation.

Files (all small, seeded, deterministic):
  gray_<name>_in.png / gray_<name>_out.png      cv2.createCLAHE(clip, tiles).apply on uint8
  rgb_<name>_in.png                             uint8 RGB input of the mdir pipeline
  rgb_<name>_lab16.png                          16-bit RGB PNG of OpenCV's float Lab of the input,
                                                stored exactly as integers: L*16384/100, (a+128)*64,
                                                (b+128)*64 (OpenCV's float RGB->Lab is a 14-bit
                                                trilinear LUT, so these are integers)
  rgb_<name>_L.png                              the CLAHE'd uint8 L plane (pipeline intermediate)
  rgb_<name>_out.f32                            float32 RGB output, little endian, row-major HxWx3
  f32_<name>_in.f32 / f32_<name>_out.f32        same pipeline on a float32 input (ClahePost case)
  manifest.json                                 cv2/numpy versions and every case's parameters
"""

import json
import os
import sys

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "clahe")
SEED = 20240607


def real_photo():
    """The real night query of the real-data cache, or None."""
    root = os.environ.get("NIGHTVISION_DATA") or os.path.join(
        os.path.expanduser("~"), ".cache", "nightvision", "real")
    path = os.path.join(root, "pairs", "tokyo_query_night.jpg")
    if not os.path.isfile(path):
        return None, None
    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        return None, None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), "pairs/tokyo_query_night.jpg"


def synthetic_scene(h, w, rng):
    """A dark street-like scene: dark gradient sky, a few bright lamps, textured ground."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.zeros((h, w, 3), np.float32)
    img[..., 0] = 10 + 25 * yy / h
    img[..., 1] = 12 + 20 * yy / h
    img[..., 2] = 30 + 10 * (1 - yy / h)
    for _ in range(4):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        r = rng.uniform(2, 6)
        glow = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        img += glow[..., None] * np.array([230, 190, 120], np.float32)
    img += rng.normal(0, 4, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def scene_crop(h, w, rng):
    photo, source = real_photo()
    if photo is None:
        return synthetic_scene(h, w, rng), "synthetic night scene (real-data cache absent)"
    small = cv2.resize(photo, (photo.shape[1] // 4, photo.shape[0] // 4), interpolation=cv2.INTER_AREA)
    y0 = small.shape[0] // 2 - h // 2
    x0 = small.shape[1] // 2 - w // 2
    return np.ascontiguousarray(small[y0:y0 + h, x0:x0 + w]), \
        f"real: {source} downscaled x1/4 (INTER_AREA), centre crop {w}x{h}"


def gradient(h, w, channels):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if channels == 1:
        return np.clip(20 + 180 * (0.6 * xx / w + 0.4 * yy / h), 0, 255).astype(np.uint8)
    img = np.stack([200 * xx / w + 20, 230 * yy / h, 120 + 100 * np.sin(xx / 5.0 + yy / 7.0)], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def noise(h, w, channels, rng):
    shape = (h, w) if channels == 1 else (h, w, channels)
    return rng.integers(0, 256, shape, dtype=np.uint8)


# ---------------------------------------------------------------- mdir, verbatim semantics
def rgb2normspace_lab(img):
    return (cv2.cvtColor(img, cv2.COLOR_RGB2LAB) + np.array([0, 128, 128], dtype=np.float32)) \
        / np.array([100.0, 255.0, 255.0], dtype=np.float32)


def normspace2rgb_lab(img):
    return cv2.cvtColor((img * np.array([100.0, 255.0, 255.0], dtype=np.float32))
                        - np.array([0, 128, 128], dtype=np.float32), cv2.COLOR_LAB2RGB)


def mdir_apply_clahe(img_f32, clip, tiles):
    clahe = cv2.createCLAHE(clipLimit=clip, tileGridSize=tiles)
    spc = rgb2normspace_lab(img_f32)
    l8 = (spc[:, :, 0] * 255).astype(np.uint8)
    spc[:, :, 0] = clahe.apply(l8).astype(np.float32) / 255.0
    out = normspace2rgb_lab(spc).astype(img_f32.dtype)
    return out, clahe.apply(l8)


def lab_as_int16(img_f32):
    lab = cv2.cvtColor(img_f32, cv2.COLOR_RGB2LAB)
    ints = np.stack([lab[..., 0] * 16384.0 / 100.0, (lab[..., 1] + 128.0) * 64.0,
                     (lab[..., 2] + 128.0) * 64.0], -1).astype(np.float64)
    rounded = np.rint(ints)
    err = np.abs(ints - rounded).max()
    if err > 1e-3:
        sys.exit(f"float Lab is not on the 14-bit LUT grid (max off-grid {err}); OpenCV changed?")
    return rounded.astype(np.uint16)


def write_f32(path, arr):
    np.ascontiguousarray(arr, dtype="<f4").tofile(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    rng = np.random.default_rng(SEED)
    cases = []

    scene, scene_source = scene_crop(75, 100, rng)
    scene_gray = cv2.cvtColor(scene, cv2.COLOR_RGB2GRAY)

    gray_cases = [
        ("gradient_37x53", gradient(53, 37, 1), 1.0, (8, 8)),
        ("noise_64x64", noise(64, 64, 1, rng), 1.0, (8, 8)),
        ("scene_100x75", scene_gray, 1.0, (8, 8)),
        ("scene_100x75_clip3_tiles4x6", scene_gray, 3.0, (4, 6)),
        ("noise_64x48_clip40_tiles2x3", noise(48, 64, 1, rng), 40.0, (2, 3)),
        ("gradient_64x75", gradient(75, 64, 1), 1.0, (8, 8)),
        ("noise_5x3", noise(3, 5, 1, rng), 1.0, (8, 8)),
        ("noise_1x1", noise(1, 1, 1, rng), 2.0, (8, 8)),
    ]
    for name, img, clip, tiles in gray_cases:
        out = cv2.createCLAHE(clipLimit=clip, tileGridSize=tiles).apply(img)
        cv2.imwrite(os.path.join(OUT, f"gray_{name}_in.png"), img)
        cv2.imwrite(os.path.join(OUT, f"gray_{name}_out.png"), out)
        cases.append({"kind": "gray", "name": name, "width": img.shape[1], "height": img.shape[0],
                      "clip_limit": clip, "tiles": list(tiles)})

    rgb_cases = [
        ("gradient_37x53", gradient(53, 37, 3), 1.0, (8, 8), "smooth gradient"),
        ("noise_40x32", noise(32, 40, 3, rng), 1.0, (8, 8), "uniform noise"),
        ("scene_100x75", scene, 1.0, (8, 8), scene_source),
        ("noise_13x11_clip2_tiles3x2", noise(11, 13, 3, rng), 2.0, (3, 2), "uniform noise"),
    ]
    for name, img, clip, tiles, source in rgb_cases:
        f = img.astype(np.float32) / 255.0  # mdir Pil2Numpy
        out, l_clahe = mdir_apply_clahe(f, clip, tiles)
        cv2.imwrite(os.path.join(OUT, f"rgb_{name}_in.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        lab16 = lab_as_int16(f)
        cv2.imwrite(os.path.join(OUT, f"rgb_{name}_lab16.png"), lab16[..., ::-1])
        cv2.imwrite(os.path.join(OUT, f"rgb_{name}_L.png"), l_clahe)
        write_f32(os.path.join(OUT, f"rgb_{name}_out.f32"), out)
        cases.append({"kind": "rgb", "name": name, "width": img.shape[1], "height": img.shape[0],
                      "clip_limit": clip, "tiles": list(tiles), "source": source})

    # Float input (the ClahePost wrapper after the generator): values off the /255 grid,
    # some outside [0, 1] to exercise OpenCV's clipping.
    h, w = 29, 37
    fin = rng.uniform(-0.05, 1.05, (h, w, 3)).astype(np.float32)
    fout, _ = mdir_apply_clahe(fin, 1.0, (8, 8))
    write_f32(os.path.join(OUT, "f32_noise_37x29_in.f32"), fin)
    write_f32(os.path.join(OUT, "f32_noise_37x29_out.f32"), fout)
    cases.append({"kind": "f32", "name": "noise_37x29", "width": w, "height": h,
                  "clip_limit": 1.0, "tiles": [8, 8], "source": "uniform(-0.05, 1.05) float32"})

    manifest = {
        "generator": "crates/nightvision-core/scripts/gen_clahe_fixtures.py",
        "seed": SEED,
        "cv2_version": cv2.__version__,
        "numpy_version": np.__version__,
        "pipeline": "mdir ApplyClahe(colorspace=lab): float32 RGB->Lab, L/100*255 truncated to "
                    "uint8, cv2 CLAHE, /255*100, float32 Lab->RGB",
        "f32_layout": "little-endian float32, row-major height x width x 3 (RGB)",
        "lab16_layout": "16-bit RGB PNG channels = L*16384/100, (a+128)*64, (b+128)*64",
        "tiles_order": "[tiles_x (columns), tiles_y (rows)] as cv2 tileGridSize",
        "cases": cases,
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(cases)} cases, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
