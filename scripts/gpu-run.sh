#!/usr/bin/env bash
# Runs on the GPU machine, in the repository root, with gpu-pack/ from scripts/build-gpu.sh beside
# it: unpacks the check binary and the Vulkan loader, then runs the CUDA check, the wgpu check and
# the PyTorch comparison, each under its own time limit. Results go to $OUT (or out/gpu-run):
# env.txt, cuda.json/.log, wgpu.json/.log, torch.json/.log. docs/GPU.md explains the run.
#
#   bash scripts/gpu-run.sh [cuda] [torch] [wgpu]      # default: all three, in this order
# Limits (seconds) through CUDA_LIMIT, WGPU_LIMIT, TORCH_LIMIT; extra check flags through CHECK_ARGS.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-out/gpu-run}"
mkdir -p "$OUT"
phases=("$@")
[[ ${#phases[@]} -eq 0 ]] && phases=(cuda torch wgpu)

tar xJf gpu-pack/gpu_check.tar.xz -C /tmp
for f in gpu-pack/gl/*.deb; do dpkg -x "$f" /; done
ldconfig
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[[ -f $icd ]] && export VK_DRIVER_FILES=$icd
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[[ -f $egl ]] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
for d in /usr/local/cuda /usr/local/cuda-13.0; do
  [[ -f $d/nvvm/libdevice/libdevice.10.bc ]] && { export CUDA_PATH=$d; break; }
done
{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  echo "CUDA_PATH=${CUDA_PATH:-unset} VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset}"
  nproc; ldd /tmp/gpu_check
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'
} > "$OUT/env.txt" 2>&1

for phase in "${phases[@]}"; do
  t=$(date +%s)
  case $phase in
    cuda | wgpu)
      limit_var="${phase^^}_LIMIT"
      # shellcheck disable=SC2086
      timeout "${!limit_var:-240}" /tmp/gpu_check --device "$phase" --json "$OUT/$phase.json" ${CHECK_ARGS:-} \
        > /dev/null 2> "$OUT/$phase.log"
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
tail -c 2000 "$OUT"/*.log
