// The score step S = alpha·Q·Kᵀ (16-bit Q and K, f32 S, evenly spaced matrices) through cuBLASLt
// with an algorithm picked by a measured rule, where cublasGemmStridedBatchedEx lets cuBLAS pick.
//
// Why: the cuBLASLt heuristic offers several algorithms for this product and the library's own
// choice (tile 256×128) is not the fastest on the H100. attnd_score_gemm_algos timed them all
// (bench/RESULTS.md, 2026-12-07): at k 512 the 128×160 tile took 0.258 ms against 0.296 for
// cuBLAS's choice at [8, 4096, 4096] and 0.496 against 0.614 at [8, 8192, 4096]; at k 256 0.2245
// against 0.2306. So the rule: the first 128×160 algorithm the heuristic returns, else its first.
// ATTND_SCORE_GEMM=cublas keeps every step on cublasGemmStridedBatchedEx (to measure both in one
// run).
#ifndef ATTND_KERNELS_CUDA_LT_SCORE_GEMM_H_
#define ATTND_KERNELS_CUDA_LT_SCORE_GEMM_H_

#include <cuda_runtime.h>

#include <cstdint>

#include "absl/status/statusor.h"
#include "kernels/cuda/steps.h"

namespace attnd::kernels::cuda {

// Runs the step on `stream` and returns true when it is a score step this path takes: Bᵀ, beta 0,
// A and B both f16 or both bf16, C f32, m and n at least 128 (smaller products gain nothing), the
// matrices of A, B and C stride_a, stride_b and stride_c elements apart, and cuBLASLt returns an
// algorithm whose workspace fits the step's pointer scratch (unused by strided steps). False
// (nothing launched) otherwise. The descriptors and the
// algorithm are made once per device and shape and kept (a process-wide cache, safe across
// threads; a cuBLASLt handle per device).
absl::StatusOr<bool> TryLtScoreGemm(const GemmStep& step, int64_t stride_a, int64_t stride_b,
                                    int64_t stride_c, cudaStream_t stream);

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_LT_SCORE_GEMM_H_
