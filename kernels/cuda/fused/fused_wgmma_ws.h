// The fused variant's warp-specialised Hopper path (wgmma_ws_kernel.cuh): which problems it
// takes and its launch. Used by RunFused only.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_

#include "absl/status/status.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Whether the warp-specialised kernel takes `problem` at padded head dim `padded_dim`: f16 or
// bf16, no bias or a 16-bit one, a dense or ragged batch, a padded dim of ATTND_FUSED_WS_DIMS
// (64 to 256), a device of compute capability 9.x (the current one), and ATTND_FUSED_WS not "0"
// in the environment ("cp_async": the producer copies K and V by cp.async, not TMA; the bias too).
// A dense 16-bit bias with 16-byte aligned rows is copied as TMA tiles (ws_bias_tiles.h) unless
// ATTND_FUSED_WS_BIAS=rows. On by default since its H100 runs of 2026-12-07 (bench/RESULTS.md):
// 1.1-2.7× the kernels it replaced, 1.6× at D 128.
bool WgmmaWsFusedTakes(const AttentionProblem& problem, int padded_dim);

// Launches it on `stream` (a cudaStream_t). INTERNAL on a launch error.
absl::Status RunWgmmaWsFused(const fused::FusedParams& params, const AttentionProblem& problem,
                             int padded_dim, void* stream);

// Launches the wide kernel (wgmma_wide_kernel.cuh: 16-bit, padded head dim kFusedWideDim, sm_90,
// which RunFused has checked) on `stream`, K and V copied by TMA. INTERNAL where the driver
// refuses their tensor maps or on a launch error.
absl::Status RunWideFused(const fused::FusedParams& params, const AttentionProblem& problem,
                          void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_
