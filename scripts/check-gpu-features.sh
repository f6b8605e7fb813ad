#!/usr/bin/env bash
# Type-checks the workspace with the GPU backends enabled (the umbrella's `wgpu` / `cuda` features:
# burn's backend plus its fusion and autotuning). No GPU is needed to check, and none can run on
# the project's machines (no GPU; Debian 12's lavapipe segfaults under burn's wgpu backend).
# Run before resolving any issue that touches model code; CI runs it too. Building real GPU
# binaries offline: scripts/build-gpu.sh and docs/GPU.md.
#
# `cuda` pulls cubecl-llvm, whose build script (tracel-llvm-bundler) downloads an LLVM bundle; there
# is no network here, so the check sets DOCS_RS=1, the bundler's documented skip (it is a type-check:
# nothing is linked or run). scripts/build-gpu.sh links a real LLVM instead.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "-- cargo check --features nightvision/wgpu"
cargo check --workspace --all-targets --locked --features nightvision/wgpu
echo "-- cargo check --features nightvision/cuda (DOCS_RS=1: no LLVM download)"
DOCS_RS=1 cargo check --workspace --all-targets --locked --features nightvision/cuda
