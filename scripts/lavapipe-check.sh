#!/usr/bin/env bash
# A dry run of the GPU check on the CPU: burn's wgpu backend on Mesa's lavapipe (a Vulkan driver
# that runs on the CPU through llvmpipe), so the wgpu code path — every kernel burn compiles for
# our models, and each of the six trainers — is exercised here before the scarce GPU minutes.
#
#   sudo bash scripts/lavapipe-check.sh [PHASE ...]   # default: wgpu:parity wgpu:trainer
#
# Debian 12's own Mesa (22.3) lavapipe segfaults under burn's wgpu backend; bookworm-backports'
# Mesa 25 (Vulkan 1.4) runs it. The script adds bookworm-backports and installs
# mesa-vulkan-drivers from it (root and Debian's archive needed, once), builds the check with the
# `wgpu` feature (dev profile: dependencies at opt-level 3), then runs scripts/gpu-run.sh with
# `--quick` sizes. cubecl's kernel and autotune caches go to ~/.cache/nightvision/cubecl-lavapipe,
# so a second run skips the compilation and tuning that take most of the first one.
# Results: out/lavapipe/ (wgpu*.json, wgpu*.log, env.txt). docs/GPU.md records a run.
set -euo pipefail
cd "$(dirname "$0")/.."
ICD=/usr/share/vulkan/icd.d/lvp_icd.json
if ! dpkg-query -W -f '${Version}' mesa-vulkan-drivers 2>/dev/null | grep -q '^2[4-9]\.'; then
  echo "-- installing mesa-vulkan-drivers from bookworm-backports"
  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
  apt-get update -qq
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1
fi
[[ -f $ICD ]] || { echo "no lavapipe ICD at $ICD" >&2; exit 1; }
echo "-- cargo build --features wgpu --example gpu_check"
cargo build --locked --features wgpu --example gpu_check
BIN="${CARGO_TARGET_DIR:-target}/debug/examples/gpu_check"
phases=("$@")
[[ ${#phases[@]} -eq 0 ]] && phases=(wgpu:parity wgpu:trainer)
export VK_DRIVER_FILES=$ICD GPU_CHECK_BIN=$BIN OUT="${OUT:-out/lavapipe}"
export CUBECL_ENV_DIR="${CUBECL_ENV_DIR:-$HOME/.cache/nightvision/cubecl-lavapipe}"
export WGPU_LIMIT="${WGPU_LIMIT:-3600}" CHECK_ARGS="${CHECK_ARGS:---quick}"
bash scripts/gpu-run.sh "${phases[@]}"
