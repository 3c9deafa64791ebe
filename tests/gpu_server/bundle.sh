#!/usr/bin/env bash
# Packs what the GPU machine needs to run attnd's GPU server tests (it has no gRPC or yaml-cpp):
# attnd, attnctl, the GPU test binaries and hold_memory, with their shared libraries, into
# .device/bundle (git-ignored), plus this folder's run_on_device.sh and the paths the tests were
# built with (the integration harness starts attnd from its build path).
#
#   tests/gpu_server/bundle.sh [BUILD_DIR]     (default build-gpuserver, configured -DATTND_CUDA=ON)
#   # on the GPU machine, from the repository root:
#   .device/bundle/run_on_device.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpuserver}
dest=.device/bundle
bins=(
  "$build/server/attnd"
  "$build/client/attnctl"
  "$build/tests/server/cuda_executor/cuda_executor_gpu_test"
  "$build/tests/server/cuda_executor/cuda_executor_host_test"
  "$build/tests/gpu_server/memory_promise_gpu_test"
  "$build/tests/gpu_server/hold_memory"
)
rm -rf "$dest"
../shared/device/bundle.sh "$dest" "${bins[@]}"
# Debug info is most of the size and the carry is limited.
for bin in "$dest"/bin/*; do strip --strip-debug "$bin"; done
strip --strip-debug "$dest"/lib/*.so* 2>/dev/null || true
{
  echo "BUILT_ATTND=$(realpath "$build/server/attnd")"
  echo "BUILT_ATTNCTL=$(realpath "$build/client/attnctl")"
} > "$dest/paths.env"
cp tests/gpu_server/run_on_device.sh "$dest/"
du -sh "$dest"
