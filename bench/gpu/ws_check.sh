#!/usr/bin/env bash
# The warp-specialised wgmma kernel (kernels/cuda/fused/wgmma_ws_kernel.cuh, on only with
# ATTND_FUSED_WS: 1 cp.async copies, 2 with ping-pong, 3 TMA copies, 4 TMA with ping-pong) on the
# GPU machine, in one command: the GPU suite in each mode (every f16/bf16 case the fused variant
# runs without an f32 bias goes through it, ragged ones included), the fused rows of the kernel
# benchmark with it off and in each mode, in the same run, then memcheck and racecheck on cases
# that reach it. Logs and CSVs go to OUT_DIR.
#
#   bench/gpu/ws_check.sh BIN_DIR OUT_DIR [SECONDS]
#
# BIN_DIR and LD_LIBRARY_PATH as for device_check.sh. SECONDS (default 420) bounds the run.
set -uo pipefail
bin=${1:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
out=${2:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
budget=${3:-420}
mkdir -p "$out"
left() { echo $(( budget - SECONDS )); }
cap() { local want=$1 l; l=$(left); echo $(( want < l ? want : (l > 5 ? l : 5) )); }

# Dense cases at padded D 64, 128 and 256 (kv_lengths, GQA, both layouts, causal, a window, a
# bias), ragged ones with a padded bias, and decode-like ones below the split-KV threshold, which
# take the one-pass kernel.
sanitize_filter='Matrix/CudaAttentionTest.*f16_BHMK*kvlen*:Matrix/CudaAttentionTest.*bf16_BMHK*H6x2*'
sanitize_filter+=':Matrix/CudaAttentionTest.*bf16_BMHK_B2_Mq97_Mk1025_H2x2_D128*'
sanitize_filter+=':BiasTiles/CudaAttentionTest.*bf16*Mk157*:BiasTiles/CudaAttentionTest.*win37*'
sanitize_filter+=':Ragged/FusedRaggedTest.*bf16_BMHK_B6*D128*causalBR*bias6x4x200x300f16*'
sanitize_filter+=':Decode/FusedDecodeTest.*Mk77_H8x2_D64*:Decode/FusedDecodeTest.*Mk77_H8x2_D128*'
sanitize_filter+=':Decode/FusedDecodeTest.*Mk1024_H8x2_D256*'
# racecheck: suites that launch only attnd's kernels (device_check.sh says why).
race_filter='Ragged/FusedRaggedTest.*bias*:Decode/FusedDecodeTest.*Mk77_H8x2_D64*'
race_filter+=':Decode/FusedDecodeTest.*Mk77_H8x2_D128*:Decode/FusedDecodeTest.*Mk1024_H8x2_D256*'

# A mode whose smoke case hangs or fails (a kernel that never finishes would hold each later
# step to its cap) is left out of the steps after it.
nvidia-smi -L >"$out/ws_test.log" 2>&1
smoke='Matrix/CudaAttentionTest.*bf16_BMHK_B2_Mq97_Mk1025_H2x2_D128*'
modes=""
for ws in 1 2 3 4; do
  ATTND_FUSED_WS=$ws timeout 30 "$bin/attnd_gpu_test" --gtest_filter="$smoke" \
    >"$out/ws${ws}_smoke.log" 2>&1
  rc=$?
  echo "== smoke, ATTND_FUSED_WS=$ws: exit $rc"
  if [ "$rc" -eq 0 ]; then modes="$modes $ws"; else tail -5 "$out/ws${ws}_smoke.log"; fi
done
for ws in $modes; do
  echo "== GPU tests with ATTND_FUSED_WS=$ws ($(left) s left)"
  ATTND_FUSED_WS=$ws timeout "$(cap 90)" "$bin/attnd_gpu_test" >"$out/ws${ws}_test.log" 2>&1
  echo "attnd_gpu_test exit $?" | tee -a "$out/ws${ws}_test.log"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]|tests? from .* ran" "$out/ws${ws}_test.log"
  grep -E "^\[  FAILED  \]" "$out/ws${ws}_test.log" | head -20
done

# Speed before the sanitizers, which are slow: what time is left goes to them.
for ws in 0 $modes; do
  [ "$(left)" -gt 20 ] || break
  echo "== fused, ATTND_FUSED_WS=$ws ($(left) s left)"
  ATTND_FUSED_WS=$ws timeout "$(cap 60)" "$bin/attnd_gpu_bench" --variants fused --iters 10 \
    --csv "$out/fused_ws$ws.csv" >"$out/fused_ws$ws.log" 2>&1
  echo "attnd_gpu_bench exit $?"
  head -30 "$out/fused_ws$ws.csv" 2>/dev/null
done
for ws in 1 3; do
  [[ " $modes " == *" $ws "* ]] || continue
  [ "$(left)" -gt 20 ] || break
  echo "== memcheck, ATTND_FUSED_WS=$ws ($(left) s left)"
  ATTND_FUSED_WS=$ws timeout "$(cap 60)" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/attnd_gpu_test" --gtest_filter="$sanitize_filter" >"$out/ws${ws}_memcheck.log" 2>&1
  echo "compute-sanitizer memcheck exit $?" | tee -a "$out/ws${ws}_memcheck.log"
  grep -E "ERROR SUMMARY|tests? from .* ran" "$out/ws${ws}_memcheck.log" | tail -3
done
for ws in 2 4; do
  [[ " $modes " == *" $ws "* ]] || continue
  [ "$(left)" -gt 20 ] || break
  echo "== racecheck, ATTND_FUSED_WS=$ws ($(left) s left)"
  ATTND_FUSED_WS=$ws timeout "$(cap 45)" compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$bin/attnd_gpu_test" --gtest_filter="$race_filter" >"$out/ws${ws}_racecheck.log" 2>&1
  echo "compute-sanitizer racecheck exit $?" | tee -a "$out/ws${ws}_racecheck.log"
  grep -E "RACECHECK SUMMARY|tests? from .* ran" "$out/ws${ws}_racecheck.log" | tail -3
done

echo "done in ${SECONDS}s"
