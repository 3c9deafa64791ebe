// The fused variant's warp-specialised Hopper path (wgmma_ws_kernel.cuh): which problems it
// takes and its launch. Used by RunFused only.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_

#include "absl/status/status.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// Whether the warp-specialised kernel takes `problem` at padded head dim `padded_dim`: f16 or
// bf16, no bias or a 16-bit one, a dense or ragged batch, padded dim 64, 80, 96, 128, 160, 192 or
// 256, a device of compute capability 9.x (the current one), and ATTND_FUSED_WS in the
// environment: 1 (cp.async copies), 2 (the consumers' GEMMs in ping-pong turns), 3 (TMA copies
// of K and V), 4 (both). Off by default until it has passed the GPU suites on an H100.
bool WgmmaWsFusedTakes(const AttentionProblem& problem, int padded_dim);

// Launches it on `stream` (a cudaStream_t). INTERNAL on a launch error.
absl::Status RunWgmmaWsFused(const fused::FusedParams& params, const AttentionProblem& problem,
                             int padded_dim, void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_WS_H_
