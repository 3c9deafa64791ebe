// attnd's own score GEMM for the cuBLAS variants (naive, sliced, chunked): S = alpha · Q·Kᵀ in f32
// from f16/bf16 Q and K on Hopper (score_gemm_kernel.cuh says how). Opt-in: CudaStepRunner offers
// it the GEMM steps only with ATTND_SCORE_GEMM=own, because it is not yet faster than cuBLAS
// (H100, 2026-12-07, bench/RESULTS.md: 0.288-0.39 ms against cuBLAS's 0.288 ms for the score
// step of chunked at 1×8×8192×512), let alone than the cuBLASLt 128×160 tile the runner now
// uses (0.258-0.264 ms, lt_score_gemm.h). It is correct and tested
// (tests/gpu/score_gemm_test.cc, and the whole GPU suite passed with it as the default), the
// ground for a faster epilogue overlap.
#ifndef ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_
#define ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_

#include <cuda_runtime.h>

#include "absl/status/statusor.h"
#include "kernels/cuda/steps.h"

namespace attnd::kernels::cuda {

// Whether ATTND_SCORE_GEMM is "own" (read once): CudaStepRunner then offers every GEMM step to
// TryScoreGemm first.
bool ScoreGemmSelected();

// Launches the step on `stream` and returns true when the kernel takes it: a GEMM with Bᵀ and
// beta 0, A and B both f16 or both bf16 with 16-byte aligned bases and strides (TMA's rule), A
// not grouped, C f32, on a compute capability 9 device. False (nothing launched) otherwise; an
// error status when the launch fails.
absl::StatusOr<bool> TryScoreGemm(const GemmStep& step, cudaStream_t stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_H_
