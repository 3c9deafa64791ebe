#!/usr/bin/env bash
# Packs what the serving benchmark needs on the GPU machine (which has CUDA, PyTorch, grpcio and
# protobuf, but no gRPC C++ libraries and no grpcio-tools): attnd and attnctl built with CUDA,
# the CUDA executor's GPU tests (run first there, against the float64 reference), with the shared
# libraries the GPU machine lacks, and attnd's Python messages generated from proto/ for the peer
# (never committed), as one archive in the git-ignored .device/serving/.
#
#   bench/serving/bundle.sh [BUILD_DIR]      (default build-serving; configured -DATTND_CUDA=ON
#                                             and built here when it does not exist yet)
#   then, on the GPU machine, from the repository root (carry .device/serving):
#   bench/serving/run_serving_bench.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-serving}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DATTND_CUDA=ON
fi
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(cd .. && pwd)}
cmake --build "$build" -j "$(nproc)" --target attnd attnctl cuda_executor_gpu_test
grep -q 'ATTND_CUDA_EXECUTOR' "$build/build.ninja" || {
  echo "bundle: $build has no CUDA executor (configure it with -DATTND_CUDA=ON)" >&2
  exit 1
}

# The workplace's packer (shared/device/bundle.sh) beside the checkout (or a worktree's parent).
packer=""
for dir in ../shared ../../shared; do
  [ -x "$dir/device/bundle.sh" ] && { packer=$dir/device/bundle.sh; break; }
done
[ -n "$packer" ] || { echo "bundle: no shared/device/bundle.sh beside this checkout" >&2; exit 1; }
stage=$(mktemp -d)
dest=$stage/serving
"$packer" "$dest" "$build/server/attnd" "$build/client/attnctl" \
  "$build/tests/server/cuda_executor/cuda_executor_gpu_test"
for bin in "$dest"/bin/*; do strip --strip-debug "$bin"; done
strip --strip-debug "$dest"/lib/*.so* 2>/dev/null || true

# The peer's messages: with grpcio-tools where a Python here has it, else protoc.
py=""
for candidate in "${ATTND_VENV:-.venv}/bin/python" python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import google.protobuf' 2>/dev/null; then
    py=$candidate
    break
  fi
done
[ -n "$py" ] || py=python3
"$py" bench/peer/attnd_stubs.py --out "$dest/stubs"

du -sh "$dest"
mkdir -p .device/serving
tar -cJf .device/serving/bundle.tar.xz -C "$stage" serving
rm -rf "$stage"
ls -la .device/serving/bundle.tar.xz
