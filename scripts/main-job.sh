#!/usr/bin/env bash
# The README's main job: classify a real photograph with the real torchvision MobileNetV2
# ImageNet weights (cat classes 281–285 expected in the top-5).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${NIGHTVISION_DATA:-$HOME/.cache/nightvision/real}"
[[ -f "$DATA/MANIFEST.txt" ]] || bash ../shared/fetch-real-data.sh
cargo run --example classify -- \
  --weights "$DATA/weights/mobilenet_v2_imagenet.safetensors" \
  --image "$DATA/photos/chelsea.png" --arch mobilenet_v2
