// attnd's own score GEMM for the cuBLAS variants (naive, sliced, chunked): S = alpha · Q·Kᵀ in f32
// from f16/bf16 Q and K on Hopper (score_gemm_kernel.cuh says how and why). CudaStepRunner
// offers it every GEMM step and calls cuBLAS for those it does not take.
#ifndef ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_
#define ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_

#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "kernels/cuda/steps.h"

namespace attnd::kernels::cuda {

// Launches the step on `stream` and returns true when the kernel takes it: a GEMM with Bᵀ and
// beta 0, A and B both f16 or both bf16 with 16-byte aligned bases and strides (TMA's rule), A
// not grouped, C f32, on a compute capability 9 device, and ATTND_SCORE_GEMM not "cublas" (which
// sends every step to cuBLAS, to measure both in one run). False (nothing launched) otherwise;
// an error status when the launch fails.
absl::StatusOr<bool> TryScoreGemm(const GemmStep& step, cudaStream_t stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_
