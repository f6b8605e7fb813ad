#!/usr/bin/env bash
# The README's main job, on the embedded default data:
# 1. render the synthetic day/night world (synthetic-places, default configuration) into
#    out/synthetic-places in the real datasets' formats and measure its night gap with a real
#    pretrained backbone (MobileNetV2-GeM, real torchvision ImageNet weights): Recall@1/5/10 of day
#    and night queries against the day database (report.json, report.md, recall.png,
#    contact-sheet.png in the same folder);
# 2. run the three papers' pipelines on that world, on CPU-sized schedules (shorter than the
#    examples' defaults so that the whole job takes about ten minutes on two cores):
#    out/dark_side, out/nocplace, out/similarity_minmax (report.json, report.md, recall.png and
#    pictures of the synthetic night each, and the translation-quality table of each generator on
#    the held-out places, its outputs in OUT/translated/); out/summary.md collects the tables.
# The real weights come from the real-data cache, filled here if absent.
#
# NIGHTVISION_QUICK=1 (CI): step 1 as above on the default world, but the pipelines run on a small
# second world (40 test places, 24 training places, 80 + 80 GAN images; same renderer, same
# looks), each pipeline in its --quick mode (about three minutes each).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA="${NIGHTVISION_DATA:-$HOME/.cache/nightvision/real}"
[[ -f "$DATA/MANIFEST.txt" ]] || bash scripts/fetch-real-data.sh
ROOT="${1:-out}"
WORLD="$ROOT/synthetic-places"
cargo run --example synthetic_places -- --out "$WORLD" --overwrite --no-progress \
  --contact-sheet "$WORLD/contact-sheet.png" --report
PIPE_WORLD="$WORLD"
# the CPU-sized schedules of the full job (quick mode replaces them below)
DSA=(--gan-iterations 100 --tuples 30 --epochs 1)
NOC=(--gan-iterations 100 --day-iterations 20 --night-iterations 20)
SMM=(--tuples 30 --epochs 1)
if [[ "${NIGHTVISION_QUICK:-0}" == 1 ]]; then
  # each pipeline's --quick mode: its mechanism check (short schedules: `--help` lists them),
  # on the quick world
  DSA=(--quick); NOC=(--quick); SMM=(--quick)
  PIPE_WORLD="$ROOT/synthetic-places-quick"
  mkdir -p "$ROOT"
  # nightvision::pipeline::quick_world_config, which the pipelines' --quick renders without --data
  echo '{"places": 40, "train_places": 24, "gan_images": 80}' > "$ROOT/quick-world.json"
  cargo run --example synthetic_places -- --out "$PIPE_WORLD" --overwrite --no-progress \
    --config "$ROOT/quick-world.json"
  echo "quick mode: the pipelines run on $PIPE_WORLD"
fi
# pipelines restart from scratch (their checkpoints would otherwise resume a finished run)
rm -rf "$ROOT/dark_side" "$ROOT/nocplace" "$ROOT/similarity_minmax"
cargo run --example dark_side -- --data "$PIPE_WORLD" --out "$ROOT/dark_side" "${DSA[@]}"
cargo run --example nocplace -- --data "$PIPE_WORLD" --out "$ROOT/nocplace" "${NOC[@]}"
# (D comes from models/: the shipped darkening network)
cargo run --example similarity_minmax -- --data "$PIPE_WORLD" --out "$ROOT/similarity_minmax" "${SMM[@]}"
{
  echo "# nightvision main job"
  [[ "$PIPE_WORLD" != "$WORLD" ]] && echo && echo "(quick mode: the pipelines ran on the small world $PIPE_WORLD)"
  for r in "$WORLD" "$ROOT/dark_side" "$ROOT/nocplace" "$ROOT/similarity_minmax"; do
    echo
    cat "$r/report.md"
  done
} > "$ROOT/summary.md"
cat "$ROOT/summary.md"
