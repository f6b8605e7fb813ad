#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, with gpu-pack/ from scripts/build-gpu.sh beside
# it: unpacks the check binary and the Vulkan loader, then runs the CUDA check, the wgpu check and
# the PyTorch comparison, each under its own time limit. Results go to $OUT (or out/gpu-run):
# env.txt, cuda.json/.log, wgpu.json/.log, torch.json/.log, and cubecl-env.tar.xz (the kernel and
# autotune caches this run filled). docs/GPU.md explains the run.
#
#   bash scripts/gpu-run.sh [PHASE ...]      # default: cuda torch wgpu, in this order
#
# A PHASE is `cuda`, `wgpu` or `torch`; `cuda:trainer,throughput` runs only the checks whose names
# start with one of the listed prefixes (parity, knn, throughput, trainer, or a full name such as
# trainer/cut), each device phase logging to its own files (cuda-1.log, … when a device repeats).
# Limits (seconds) through CUDA_LIMIT, WGPU_LIMIT, TORCH_LIMIT; extra check flags through CHECK_ARGS.
#
# cubecl keeps compiled kernels (PTX / SPIR-V) and autotune results in an on-disk environment. The
# run starts from gpu-pack/cubecl-env.tar.xz when there is one (the previous run's, carried back)
# and packs the environment it leaves into $OUT, so a second run skips most of the compilation and
# tuning that took most of the first one's minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${OUT:-out/gpu-run}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
phases=("$@")
[[ ${#phases[@]} -eq 0 ]] && phases=(cuda torch wgpu)

# GPU_CHECK_BIN: a gpu_check already at hand (a dry run here, e.g. on Mesa's lavapipe): nothing
# is unpacked.
BIN="${GPU_CHECK_BIN:-}"
if [[ -z $BIN ]]; then
  tar xJf gpu-pack/gpu_check.tar.xz -C /tmp
  for f in gpu-pack/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  BIN=/tmp/gpu_check
fi
BIN="$(realpath "$BIN")"
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd ]] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[[ -f $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
for d in /usr/local/cuda /usr/local/cuda-13.0; do
  [[ -f $d/nvvm/libdevice/libdevice.10.bc ]] && { export CUDA_PATH=$d; break; }
done

# cubecl reads cubecl.toml from the working directory (or a parent): the checks run from a folder
# of their own that holds it, with --root pointing back at the fixtures.
ENV_DIR="${CUBECL_ENV_DIR:-/tmp/cubecl-env}"
RUN_DIR=/tmp/gpu-run-cwd
mkdir -p "$ENV_DIR" "$RUN_DIR"
[[ -f gpu-pack/cubecl-env.tar.xz ]] && tar xJf gpu-pack/cubecl-env.tar.xz -C "$ENV_DIR"
cat > "$RUN_DIR/cubecl.toml" <<EOF
[environment]
name = "nightvision"
path = { directory = "$ENV_DIR" }

[compilation]
cache = true
EOF
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  echo "CUDA_PATH=${CUDA_PATH:-unset} VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
  echo "cubecl environment at start: $(du -sh "$ENV_DIR" | cut -f1)"
  nproc; ldd "$BIN"
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
} > "$OUT/env.txt" 2>&1

declare -A seen
for phase in "${phases[@]}"; do
  t=$(date +%s)
  device="${phase%%:*}"
  only=""
  [[ $phase == *:* ]] && only="--only ${phase#*:}"
  seen[$device]=$(( ${seen[$device]:-0} + 1 ))
  name="$device"
  (( ${seen[$device]} > 1 )) && name="$device-${seen[$device]}"
  case $device in
    cuda | wgpu | flex)
      limit_var="${device^^}_LIMIT"
      # shellcheck disable=SC2086
      (cd "$RUN_DIR" && timeout "${!limit_var:-240}" "$BIN" --device "$device" \
        --root "$ROOT" --json "$OUT/$name.json" $only ${CHECK_ARGS:-} \
        > /dev/null 2> "$OUT/$name.log")
      echo "$phase: exit $? in $(( $(date +%s) - t )) s" | tee -a "$OUT/env.txt"
      ;;
    torch)
      PYTHONUNBUFFERED=1 timeout "${TORCH_LIMIT:-120}" python3 benches/gpu_vs_torch.py --device cuda \
        --json "$OUT/torch.json" > "$OUT/torch.log" 2>&1
      echo "torch: exit $? in $(( $(date +%s) - t )) s" | tee -a "$OUT/env.txt"
      ;;
    *) echo "unknown phase $phase" >&2 ;;
  esac
done
echo "cubecl environment at end: $(du -sh "$ENV_DIR" | cut -f1)" >> "$OUT/env.txt"
# What comes back from the GPU machine is at most 16 MiB a file.
tar cJf "$OUT/cubecl-env.tar.xz" -C "$ENV_DIR" . &&
  [[ $(stat -c %s "$OUT/cubecl-env.tar.xz") -le $(( 16 << 20 )) ]] ||
  { echo "cubecl environment not packed (over 16 MiB or tar failed)" >> "$OUT/env.txt"; rm -f "$OUT/cubecl-env.tar.xz"; }
tail -c 2000 "$OUT"/*.log
