#!/usr/bin/env bash
# The warp-specialised wgmma kernel (kernels/cuda/fused/wgmma_ws_kernel.cuh, on only with
# ATTND_FUSED_WS=1) on the GPU machine, in one command: the GPU suite with it on (every dense
# f16/bf16 case without a bias that the fused variant runs goes through it), memcheck and
# racecheck on cases that reach it, then the fused rows of the kernel benchmark with it on and
# off in the same run. Logs and CSVs go to OUT_DIR.
#
#   bench/gpu/ws_check.sh BIN_DIR OUT_DIR [SECONDS]
#
# BIN_DIR and LD_LIBRARY_PATH as for device_check.sh. SECONDS (default 300) bounds the run.
set -uo pipefail
bin=${1:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
out=${2:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
budget=${3:-300}
mkdir -p "$out"
left() { echo $(( budget - SECONDS )); }
cap() { local want=$1 l; l=$(left); echo $(( want < l ? want : (l > 5 ? l : 5) )); }
export ATTND_FUSED_WS=1

# Dense cases at padded D 64, 128 and 256 (kv_lengths, GQA, both layouts, causal, a window) and
# decode-like ones below the split-KV threshold, which take the one-pass kernel.
sanitize_filter='Matrix/CudaAttentionTest.*f16_BHMK*kvlen*:Matrix/CudaAttentionTest.*bf16_BMHK*H6x2*'
sanitize_filter+=':Matrix/CudaAttentionTest.*bf16_BMHK_B2_Mq97_Mk1025_H2x2_D128*'
sanitize_filter+=':Decode/FusedDecodeTest.*Mk77_H8x2_D64*:Decode/FusedDecodeTest.*Mk77_H8x2_D128*'
sanitize_filter+=':Decode/FusedDecodeTest.*Mk1024_H8x2_D256*'
race_filter='Decode/FusedDecodeTest.*Mk77_H8x2_D64*:Decode/FusedDecodeTest.*Mk77_H8x2_D128*'
race_filter+=':Decode/FusedDecodeTest.*Mk1024_H8x2_D256*'

{ nvidia-smi -L; date -u; } >"$out/ws_test.log" 2>&1
echo "== GPU tests with ATTND_FUSED_WS=1"
timeout "$(cap 120)" "$bin/attnd_gpu_test" >>"$out/ws_test.log" 2>&1
echo "attnd_gpu_test exit $?" | tee -a "$out/ws_test.log"
grep -E "^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]|tests? from .* ran" "$out/ws_test.log"
grep -E "^\[  FAILED  \]" "$out/ws_test.log" | head -20

if [ "$(left)" -gt 20 ]; then
  echo "== memcheck ($(left) s left)"
  timeout "$(cap 60)" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/attnd_gpu_test" --gtest_filter="$sanitize_filter" >"$out/ws_memcheck.log" 2>&1
  echo "compute-sanitizer memcheck exit $?" | tee -a "$out/ws_memcheck.log"
  grep -E "ERROR SUMMARY|tests? from .* ran" "$out/ws_memcheck.log" | tail -3
fi
if [ "$(left)" -gt 20 ]; then
  echo "== racecheck ($(left) s left)"
  timeout "$(cap 45)" compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$bin/attnd_gpu_test" --gtest_filter="$race_filter" >"$out/ws_racecheck.log" 2>&1
  echo "compute-sanitizer racecheck exit $?" | tee -a "$out/ws_racecheck.log"
  grep -E "RACECHECK SUMMARY|tests? from .* ran" "$out/ws_racecheck.log" | tail -3
fi

for ws in 1 0; do
  [ "$(left)" -gt 20 ] || break
  echo "== fused, ATTND_FUSED_WS=$ws ($(left) s left)"
  ATTND_FUSED_WS=$ws timeout "$(cap 60)" "$bin/attnd_gpu_bench" --variants fused --iters 10 \
    --csv "$out/fused_ws$ws.csv" >"$out/fused_ws$ws.log" 2>&1
  echo "attnd_gpu_bench exit $?"
  head -30 "$out/fused_ws$ws.csv" 2>/dev/null
done
echo "done in ${SECONDS}s"
