// What the score GEMM kernel (score_gemm_kernel.cuh) is given: plain values, passed by value.
#ifndef ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_PARAMS_H_
#define ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_PARAMS_H_

#include <cuda.h>  // CUtensorMap

#include <cstdint>

namespace attnd::kernels::cuda::score_gemm {

// Output tiles are kBlockM × kBlockN; a step of the shared dimension is kBlockK columns (one
// 128-byte swizzle atom of 16-bit elements).
constexpr int kBlockM = 128;
constexpr int kBlockN = 128;
constexpr int kBlockK = 64;
constexpr int kTileBytes = kBlockM * kBlockK * 2;  // one operand's tile of a step (= kBlockN rows)
constexpr int kStageBytes = 2 * kTileBytes;        // A's tile, then B's
constexpr int kThreads = 384;  // warpgroup 0: the producer; 1 and 2: the consumers
// The TMA epilogue: a consumer stages 64 rows × 128 f32 of its tile at a time as four boxes of 32
// columns (128 bytes a row, the swizzle's span), 8 KB each.
constexpr int kStoreBoxCols = 32;
constexpr int kStoreBoxBytes = 64 * kStoreBoxCols * 4;
constexpr int kStoreBytes = 4 * kStoreBoxBytes;  // one consumer's staging buffer

// C[z] = alpha · A[z] · B[z]ᵀ for z = b·Hq + h in [0, Z): A [m, k] and B [n, k] row-major in
// 16-bit elements (reached through `maps`), C [m, n] f32 at c + b·c_batch_stride + h·c_head_stride
// with rows ldc apart.
struct ScoreGemmParams {
  float* c = nullptr;
  int64_t c_batch_stride = 0;
  int64_t c_head_stride = 0;
  int64_t ldc = 0;
  int m = 0;
  int n = 0;
  int k_steps = 0;   // ceil(k / kBlockK); TMA fills the columns past k with zeros
  int q_heads = 0;   // Hq
  int head_div = 1;  // B's matrix z is B's head h / head_div (GQA)
  int m_tiles = 0;
  int n_tiles = 0;
  int64_t tiles = 0;  // Z · m_tiles · n_tiles; tile t is z = t / (m_tiles·n_tiles), then row-major
  float alpha = 1.0f;
  bool tma_store = false;      // C through maps.c (else stores from registers)
  bool vector_stores = false;  // the register stores: c and ldc allow 8-byte column pairs
};

// A's and B's tensor maps: rank 4 (k, rows, heads, batch), boxes of kBlockK × 128 rows, 128-byte
// swizzle, zeros outside. C's (with tma_store): rank 4 (n, m, heads, batch) f32, boxes of
// kStoreBoxCols × 64 rows, 128-byte swizzle; TMA writes nothing outside [m, n].
struct ScoreGemmMaps {
  CUtensorMap a;
  CUtensorMap b;
  CUtensorMap c;
};

}  // namespace attnd::kernels::cuda::score_gemm

#endif  // ATTND_KERNELS_CUDA_SCORE_GEMM_SCORE_GEMM_PARAMS_H_
