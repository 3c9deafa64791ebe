#!/usr/bin/env bash
# The kernel benchmark in one command on the GPU machine: attnd's CUDA variants
# (attnd_gpu_bench) and PyTorch SDPA's backends (peers.py) on the same shapes, then one table
# (table.py): TFLOP/s per variant and peer, ratio to the best peer, chunked against its
# memory-traffic bound, extra memory.
#
#   bench/gpu/run_kernel_bench.sh [ATTND_GPU_BENCH] [OUT_DIR] [-- attnd_gpu_bench flags]
#
# ATTND_GPU_BENCH defaults to build-gpu/bench/gpu/attnd_gpu_bench (the kernels-only build:
# cmake -S . -B build-gpu -G Ninja -DATTND_SERVER=OFF -DATTND_CUDA=ON), OUT_DIR to a new
# temporary folder; attnd.csv, peers.csv and table.md land there.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-build-gpu/bench/gpu/attnd_gpu_bench}
out=${2:-$(mktemp -d)}
shift $(( $# < 2 ? $# : 2 ))
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
echo "== attnd_gpu_bench ($bench)"
"$bench" --csv "$out/attnd.csv" "$@" || echo "attnd_gpu_bench exited with $? (table shows what it measured)"
echo "== PyTorch SDPA peers"
PYTHONUNBUFFERED=1 python3 "$here/peers.py" --shapes "$out/attnd.csv" --csv "$out/peers.csv" \
  || echo "peers.py exited with $?"
echo "== table"
python3 "$here/table.py" "$out/attnd.csv" "$out/peers.csv" | tee "$out/table.md"
