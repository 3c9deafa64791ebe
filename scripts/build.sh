#!/usr/bin/env bash
# Configures and builds attnd into build/ (CUDA variants where nvcc is found: ATTND_CUDA=auto).
# Extra arguments go to the CMake configure step, e.g. -DATTND_CUDA=OFF.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${ATTND_BUILD_DIR:-build}
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="${ATTND_BUILD_TYPE:-RelWithDebInfo}" \
  -DATTND_CUDA="${ATTND_CUDA:-auto}" "$@"
cmake --build "$build_dir" -j "$(nproc)"
