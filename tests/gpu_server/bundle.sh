#!/usr/bin/env bash
# Packs what the GPU machine needs to run attnd's GPU server tests (it has no gRPC or yaml-cpp):
# attnd, attnctl, the GPU test binaries and hold_memory, with their shared libraries (stripped of
# debug info), plus this folder's run_on_device.sh and the paths the tests were built with (the
# integration harness starts attnd from its build path), as one compressed archive in
# .device/gpu-server/ (git-ignored; small enough to carry).
#
#   tests/gpu_server/bundle.sh [BUILD_DIR]     (default build-gpuserver, configured -DATTND_CUDA=ON)
#   # on the GPU machine, from the repository root:
#   tar -xJf .device/gpu-server/bundle.tar.xz -C /tmp && /tmp/bundle/run_on_device.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-gpuserver}
stage=$(mktemp -d)
dest=$stage/bundle
bins=(
  "$build/server/attnd"
  "$build/client/attnctl"
  "$build/tests/server/cuda_executor/cuda_executor_gpu_test"
  "$build/tests/server/cuda_executor/cuda_executor_host_test"
  "$build/tests/gpu_server/memory_promise_gpu_test"
  "$build/tests/integration/integration_faults_test"
)
../shared/device/bundle.sh "$dest" "${bins[@]}"
# Needs no library the GPU machine lacks (the shared script stops on a binary with none to copy).
cp -L "$build/tests/gpu_server/hold_memory" "$dest/bin/"
# Debug info is most of the size and the carry is limited.
for bin in "$dest"/bin/*; do strip --strip-debug "$bin"; done
strip --strip-debug "$dest"/lib/*.so* 2>/dev/null || true
{
  echo "BUILT_ATTND=$(realpath "$build/server/attnd")"
  echo "BUILT_ATTNCTL=$(realpath "$build/client/attnctl")"
} > "$dest/paths.env"
cp tests/gpu_server/run_on_device.sh "$dest/"
du -sh "$dest"
mkdir -p .device/gpu-server
tar -cJf .device/gpu-server/bundle.tar.xz -C "$stage" bundle
rm -rf "$stage"
ls -la .device/gpu-server/bundle.tar.xz
