#!/usr/bin/env bash
# The README's main job, on the embedded default data: render the synthetic day/night world
# (synthetic-places, default configuration) into out/synthetic-places in the real datasets'
# formats, then measure the night gap with a real pretrained backbone — MobileNetV2-GeM with the
# real torchvision ImageNet weights — as Recall@1/5/10 of day and of night queries against the
# day database (report.json, report.md, recall.png, contact-sheet.png in the same folder).
# The real weights come from the real-data cache, filled here if absent.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${NIGHTVISION_DATA:-$HOME/.cache/nightvision/real}"
[[ -f "$DATA/MANIFEST.txt" ]] || bash ../shared/fetch-real-data.sh
OUT="${1:-out/synthetic-places}"
cargo run --example synthetic_places -- --out "$OUT" --overwrite --no-progress \
  --contact-sheet "$OUT/contact-sheet.png" --report
