#!/usr/bin/env bash
# Type-checks the workspace with the GPU backends enabled (no GPU is needed to check; none can
# run here: Debian 12's lavapipe segfaults under burn's wgpu backend). Run before resolving any
# issue that touches model code; CI runs it too.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in wgpu cuda; do
  echo "-- cargo check --features $f"
  cargo check --workspace --all-targets --locked --features "$f"
done
