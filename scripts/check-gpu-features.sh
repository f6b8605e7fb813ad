#!/usr/bin/env bash
# Type-checks the workspace with the GPU backends enabled. No GPU is needed to check, and none can
# run on the project's machines (no GPU; Debian 12's lavapipe segfaults under burn's wgpu backend).
# Run before resolving any issue that touches model code; CI runs it too.
#
# `cuda` pulls cubecl-llvm, whose build script (tracel-llvm-bundler) downloads an LLVM bundle; there
# is no network here, so the check sets DOCS_RS=1, the bundler's documented skip (it is a type-check:
# nothing is linked or run). On a real CUDA machine build normally, without DOCS_RS.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "-- cargo check --features burn/wgpu"
cargo check --workspace --all-targets --locked --features burn/wgpu
echo "-- cargo check --features burn/cuda (DOCS_RS=1: no LLVM download)"
DOCS_RS=1 cargo check --workspace --all-targets --locked --features burn/cuda
