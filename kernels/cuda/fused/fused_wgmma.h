// The fused variant's Hopper path (wgmma_kernel.cuh): which problems it takes and its launch.
// Used by RunFused only.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_H_

#include "absl/status/status.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda {

// The current device's compute capability major version (0 when there is none).
int CurrentDeviceMajor();

// Whether the wgmma kernel takes `problem` at padded head dim `padded_dim`: f16 or bf16, no
// bias or a 16-bit one, padded dim 64, 80, 96 or 128, on a device of compute capability 9.x
// (the current device), and ATTND_FUSED_WGMMA is not "0" in the environment (to measure the
// mma.sync kernel beside it).
bool WgmmaFusedTakes(const AttentionProblem& problem, int padded_dim);

// Launches it on `stream` (a cudaStream_t). INTERNAL on a launch error.
absl::Status RunWgmmaFused(const fused::FusedParams& params, const AttentionProblem& problem,
                           int padded_dim, void* stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_WGMMA_H_
