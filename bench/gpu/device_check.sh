#!/usr/bin/env bash
# Everything the GPU kernels need shown on the GPU machine, in one command: the GPU test suite
# (attnd_gpu_test, and attnd_cudnn_test when BIN_DIR has it), the kernel benchmark against
# PyTorch's SDPA backends, then compute-sanitizer memcheck on a representative subset and
# racecheck on the fused kernels with the time left. Logs and CSVs go to OUT_DIR.
#
#   bench/gpu/device_check.sh BIN_DIR OUT_DIR [SECONDS]
#
# BIN_DIR holds attnd_gpu_test and attnd_gpu_bench (and attnd_cudnn_test from a build with
# cuDNN; libcudnn.so.9 then comes from PyTorch's nvidia/cudnn/lib, added to LD_LIBRARY_PATH
# here when python3 finds it): a kernels-only build there
# (build-gpu/tests/gpu and build-gpu/bench/gpu, see bench/gpu/device_deps.sh), or binaries built
# here and packed with ../shared/device/bundle.sh (then LD_LIBRARY_PATH must name its lib/).
# SECONDS (default 400) bounds the whole run; each step gets a share and is cut at it, so a slow
# step still leaves the next ones their time. With DEBS=folder of the carried .debs, the time
# left at the end checks the kernels-only build there (configure, build, emulated tests).
set -uo pipefail
bin=${1:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
out=${2:?usage: $0 BIN_DIR OUT_DIR [SECONDS]}
budget=${3:-400}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
left() { echo $(( budget - SECONDS )); }
cap() { local want=$1 l; l=$(left); echo $(( want < l ? want : (l > 5 ? l : 5) )); }

# Representative memcheck subset: every variant (each case runs naive, sliced, chunked twice), all
# dtypes, both layouts, GQA, kv_lengths, every kind of bias, a fully masked row, head dim 512,
# every row-kernel shape (warp and block, cached and streamed rows), and the API's refusals.
memcheck_filter='Matrix/CudaAttentionTest.*f16_BHMK*kvlen*:Matrix/CudaAttentionTest.*bf16_BMHK*H6x2*'
memcheck_filter+=':Matrix/CudaAttentionTest.*f32_BHMK*H6x2*:Matrix/CudaAttentionTest.*f32*neginfrow*'
memcheck_filter+=':Matrix/CudaAttentionTest.*bf16_BMHK_B2_Mq97_Mk1_H2x2_D512*'
memcheck_filter+=':Matrix/CudaAttentionTest.*f16_BMHK_B2_Mq97_Mk161_H2x2_D64_Dv64_kvlen_0_53*'
memcheck_filter+=':Matrix/CudaAttentionTest.*f16_BMHK_B2_Mq97_Mk161*bias2x2x97x161f32*'
memcheck_filter+=':Matrix/CudaAttentionTest.*bf16_BMHK_B2_Mq97_Mk1025_H2x2_D128*'
memcheck_filter+=':Matrix/CudaAttentionTest.*Mk4500*:Matrix/CudaAttentionTest.*Mk5000*'
memcheck_filter+=':Matrix/CudaAttentionTest.*Mk8300*'
# The fused kernel's bias tiles: an odd Mk (rows anywhere in a 16-byte piece, a partial last
# piece), a window, a bias broadcast over keys.
memcheck_filter+=':BiasTiles/CudaAttentionTest.*bf16*Mk157*:BiasTiles/CudaAttentionTest.*win37*'
memcheck_filter+=':BiasTiles/CudaAttentionTest.*bias1x1x130x1*'
# (bias1x1x130x1 caught the loader's read past a short tensor's end, 2026-12-07.)
# The warp-specialised kernel's TMA bias tiles (Mk a multiple of 8; a window moves the blocks'
# first keys) and the wide kernel (head dims above 256: D 512 with every bias, kv_lengths).
memcheck_filter+=':BiasTiles/CudaAttentionTest.*Mk1000*:BiasTiles/CudaAttentionTest.*Mk304*'
memcheck_filter+=':WideDims/CudaAttentionTest.*bf16_BMHK_B2_Mq130_Mk1025_H2x2_D512*'
memcheck_filter+=':WideDims/CudaAttentionTest.*f16*D512*bias*:WideDims/CudaAttentionTest.*kvlen*'
# Ragged batches: a sequence's rows placed at the end of the bound (bottom-right), empty
# sequences, a padded bias; the f32 kernel likewise.
memcheck_filter+=':Ragged/FusedRaggedTest.*bf16_BMHK_B6*D128*causalBR*bias6x4x200x300f16*'
memcheck_filter+=':Ragged/FusedRaggedTest.*f32_BMHK_B3*D64*causalBR*:Ragged/FusedRaggedTest.*D392*'
# (CudaApiTest.ContextsComeAndGo asks for a device that does not exist on purpose: the sanitizer
# would report that API error.)
memcheck_filter+=':CudaApiTest.OffersTheCublasVariants:CudaApiTest.RefusesBadRuns'

cudnn_lib=$(python3 -c 'import nvidia.cudnn as m; print(list(m.__path__)[0] + "/lib")' 2>/dev/null)
if [ -n "$cudnn_lib" ] && [ -d "$cudnn_lib" ]; then
  export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$cudnn_lib
fi

{ nvidia-smi -L; date -u; } >"$out/gpu_test.log" 2>&1
echo "== GPU tests"
timeout "$(cap 120)" "$bin/attnd_gpu_test" >>"$out/gpu_test.log" 2>&1
echo "attnd_gpu_test exit $?" | tee -a "$out/gpu_test.log"
grep -E "^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]|tests? from .* ran" "$out/gpu_test.log"
grep -E "^\[  FAILED  \]" "$out/gpu_test.log" | head -20

if [ -x "$bin/attnd_cudnn_test" ]; then
  echo "== cuDNN tests (libcudnn from ${cudnn_lib:-LD_LIBRARY_PATH})"
  timeout "$(cap 120)" "$bin/attnd_cudnn_test" >"$out/cudnn_test.log" 2>&1
  echo "attnd_cudnn_test exit $?" | tee -a "$out/cudnn_test.log"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]|tests? from .* ran" "$out/cudnn_test.log"
  grep -E "^\[  FAILED  \]" "$out/cudnn_test.log" | head -20
fi

echo "== kernel benchmark"
timeout "$(cap 260)" "$here/run_kernel_bench.sh" "$bin/attnd_gpu_bench" "$out/bench" \
  >"$out/bench.log" 2>&1
echo "run_kernel_bench exit $?" | tee -a "$out/bench.log"
mv "$out/bench/attnd.csv" "$out/bench/peers.csv" "$out/bench/table.md" "$out/" 2>/dev/null
rm -rf "$out/bench"
sed -n '/== table/,$p' "$out/bench.log"

# The fused rows again in the same run with the warp-specialised kernel
# (kernels/cuda/fused/wgmma_ws_kernel.cuh) copying by cp.async, and with it off (the synchronous
# wgmma kernel at padded D 64-128, mma.sync above): ms and TFLOP/s of each.
for mode in cp_async 0; do
  [ "$(left)" -gt 40 ] && grep -qa ATTND_FUSED_WS "$bin/attnd_gpu_bench" || break
  echo "== fused with ATTND_FUSED_WS=$mode ($(left) s left)"
  ATTND_FUSED_WS=$mode timeout "$(cap 40)" "$bin/attnd_gpu_bench" --variants fused --iters 10 \
    --csv "$out/fused_ws_$mode.csv" >"$out/fused_ws_$mode.log" 2>&1
  echo "attnd_gpu_bench exit $?"
  # shape, ms, TFLOP/s of the rows that ran (the labels hold commas: read it as CSV)
  python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["status"] == "ok": print(r["shape"], r["ms"], r["tflops"], sep=" | ")' \
    "$out/fused_ws_$mode.csv" 2>/dev/null
done

# The biased rows again with every bias copied by rows (ATTND_FUSED_WS_BIAS=rows: the path of
# biases broadcast over queries or keys, unaligned or ragged), against the TMA tiles above.
if [ "$(left)" -gt 40 ] && grep -qa ATTND_FUSED_WS_BIAS "$bin/attnd_gpu_bench"; then
  echo "== fused with ATTND_FUSED_WS_BIAS=rows ($(left) s left)"
  ATTND_FUSED_WS_BIAS=rows timeout "$(cap 30)" "$bin/attnd_gpu_bench" --variants fused --only bias \
    --iters 10 --csv "$out/fused_bias_rows.csv" >"$out/fused_bias_rows.log" 2>&1
  echo "attnd_gpu_bench exit $?"
  python3 -c 'import csv,sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["status"] == "ok": print(r["shape"], r["ms"], r["tflops"], sep=" | ")' \
    "$out/fused_bias_rows.csv" 2>/dev/null
fi

# The GPU suite again with the cp.async copies (the TMA path's fallback where the driver refuses a
# tensor map): every 16-bit fused case goes through them.
if [ "$(left)" -gt 90 ] && grep -qa ATTND_FUSED_WS "$bin/attnd_gpu_test"; then
  echo "== GPU tests with ATTND_FUSED_WS=cp_async ($(left) s left)"
  ATTND_FUSED_WS=cp_async timeout "$(cap 90)" "$bin/attnd_gpu_test" >"$out/gpu_test_cp_async.log" 2>&1
  echo "attnd_gpu_test (cp_async) exit $?" | tee -a "$out/gpu_test_cp_async.log"
  grep -E "^\[  (PASSED|FAILED|SKIPPED)  \] [0-9]|tests? from .* ran" "$out/gpu_test_cp_async.log"
  grep -E "^\[  FAILED  \]" "$out/gpu_test_cp_async.log" | head -20
fi

if [ "$(left)" -gt 20 ]; then
  echo "== memcheck ($(left) s left)"
  timeout "$(cap 90)" compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$bin/attnd_gpu_test" --gtest_filter="$memcheck_filter" >"$out/memcheck.log" 2>&1
  echo "compute-sanitizer exit $?" | tee -a "$out/memcheck.log"
  grep -E "ERROR SUMMARY|tests? from .* ran|PASSED|FAILED" "$out/memcheck.log" | tail -5
fi

# racecheck (shared-memory hazards between a CTA's threads) on attnd's own kernels, through the
# suites that launch nothing else: CudaAttentionTest's cases also run the cuBLAS variants, and
# under racecheck they fail with "The Sanitizer failed to handle a hardware exception" whatever
# kernels are instrumented (H100, 2026-12-07; memcheck passes them). The 16-bit one-pass kernel
# with its bias tiles (ragged cases with a bias), the wgmma kernel (decode cases below the split
# threshold, 16-bit, padded D 64/80/128: the warp-specialised kernel), the split-KV ring and
# merge, the f32 kernel; the warp-specialised kernel's TMA bias tiles (decode-suite cases with Mq
# above 16) and the wide kernel (ragged cases at D 392 and 512).
if [ "$(left)" -gt 20 ]; then
  echo "== racecheck on the fused kernels ($(left) s left)"
  : >"$out/racecheck.log"
  for filter in 'Ragged/FusedRaggedTest.*bias*:Ragged/FusedRaggedTest.*f32_BMHK_B3*D64*causalBR*' \
      'Decode/FusedDecodeTest.*Mk77_H8x2_D64*:Decode/FusedDecodeTest.*Mk77_H8x2_D80*:Decode/FusedDecodeTest.*Mk77_H8x2_D128*' \
      'Decode/FusedDecodeTest.*Mk1024_H8x2_D64*:Decode/FusedDecodeTest.*Mk1024_H8x2_D256*:Decode/FusedDecodeTest.*Mk2048*' \
      'Decode/FusedDecodeTest.*Mk1024*bias*:Ragged/FusedRaggedTest.*D512*:Ragged/FusedRaggedTest.*D392*' \
      'WgmmaTileTest.*'; do
    [ "$(left)" -gt 10 ] || break
    timeout "$(cap 45)" compute-sanitizer --tool racecheck --error-exitcode 9 \
      "$bin/attnd_gpu_test" --gtest_filter="$filter" >>"$out/racecheck.log" 2>&1
    echo "compute-sanitizer racecheck exit $? ($filter)" | tee -a "$out/racecheck.log"
  done
  grep -E "RACECHECK SUMMARY|tests? from .* ran" "$out/racecheck.log" | tail -8
  grep -E "^========= +(Error|and)" "$out/racecheck.log" | head -4
fi

if [ -n "${DEBS:-}" ] && [ "$(left)" -gt 30 ]; then
  echo "== kernels-only build there ($(left) s left)"
  (
    eval "$("$here/device_deps.sh" "$DEBS" /tmp/attnd-deps)"
    timeout "$(cap 400)" bash -c "cmake -S . -B build-gpu -G Ninja -DATTND_SERVER=OFF \
      -DATTND_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90a $ATTND_DEPS_CMAKE_FLAGS && \
      cmake --build build-gpu -j16 --target attnd_gpu_test attnd_gpu_bench && \
      ./build-gpu/tests/gpu/attnd_gpu_test --gtest_brief=1 \
        --gtest_filter='*Emulated*:*KeyBound*:CudaApiTest.*'"
    echo "build there exit $?"
  ) >"$out/build_there.log" 2>&1
  tail -5 "$out/build_there.log"
fi
echo "done in ${SECONDS}s"
