// The fused forward kernel on Hopper's warpgroup tensor cores (sm_90a): O = softmax(scale·Q·Kᵀ +
// mask)·V with the scores in registers, for 16-bit inputs at padded head dims 64-128 without
// a bias or with a 16-bit one (RunFused routes those here on sm_90; everything else takes
// fused_kernel.cuh). Padded dims 80 and 96 use part of a second 64-column atom column: their
// loads and k steps stop at D, so the rest is never written nor read.
//
// One CTA of two warpgroups owns kBlockM = 128 query rows of one (batch, head), 64 a warpgroup,
// and walks the keys its rows see in blocks of kBlockN = 128:
//   shared memory   Q [128, D] K-major; K [128, D] K-major and V [128, D] MN-major, two stages
//                   each (wgmma.cuh's 128-byte-swizzled layouts); K_{n+1} and V_{n+1} load by
//                   cp.async while block n computes
//   registers       S [64, 128] f32 per warpgroup (64 a thread) from one m64n128 wgmma chain
//                   over D (Q and K from shared memory), masked and exponentiated in place
//                   (base 2), packed to 16 bits as the register A operand of O += P·V (V from
//                   shared memory, MN-major); O [64, D] f32 (D/2 a thread); the running max m
//                   and sum l of the thread's two rows
// With a bias, one tile of it [128, 128 + 8] (fused_kernel.cuh's LoadBiasTile: any Mk, any
// first key, every broadcast) after the K and V stages; S starts at bias / scale as in
// fused_kernel.cuh, so the bias costs no per-score work. One tile, not two (D 128 would pass
// 227 KiB): block n+1's loads once every thread has read block n's, behind a second barrier,
// and has the softmax and P·V of block n to land.
// Each warp's accumulators are mma.sync's m16n8 C fragments (wgmma.cuh), so the masking and
// the online softmax are fused_kernel.cuh's, on one 16-row m-tile a warp.
// Masking follows kernels/mask.h as in fused_kernel.cuh: a CTA's keys are [lo of its first row,
// hi of its last row); blocks inside every row's keys only scale.
#ifndef ATTND_KERNELS_CUDA_FUSED_WGMMA_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_FUSED_WGMMA_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include <cstdint>

#include "kernels/cuda/fused/fused_kernel.cuh"  // LoadBiasTile, TileBias, Opaque
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"  // CpAsync16, PackPair
#include "kernels/cuda/fused/wgmma_block.cuh"
#include "kernels/cuda/wgmma/wgmma.cuh"

namespace attnd::kernels::cuda::fused {

template <int kDim_>
struct WgmmaShape {
  static_assert(kDim_ % 16 == 0 && kDim_ >= 64 && kDim_ <= 128, "k16 steps, one or two atoms");
  static constexpr int kDim = kDim_;
  // 64-element atom columns a tile row spans (D 80 and 96 use part of the second).
  static constexpr int kAtomCols = (kDim + 63) / 64;
  static constexpr int kBlockM = 128;  // two warpgroups × 64 rows
  static constexpr int kBlockN = 128;
  static constexpr int kThreads = 256;
  static constexpr int kSRegs = kBlockN / 2;  // S accumulators a thread
  static constexpr int kORegs = kDim / 2;     // O accumulators a thread
  static constexpr int kQBytes = kBlockM * kAtomCols * 128;
  static constexpr int kKvBytes = kBlockN * kAtomCols * 128;  // one stage of K or of V
  // Q, two stages of K and of V, and slack to start the tiles at a multiple of 1024 bytes
  // (the swizzle acts on address bits 4-9). D 80-128: 161 KiB, one CTA a SM; D 64: 81 KiB, two.
  static constexpr int kSmemBytes = kQBytes + 4 * kKvBytes + 1024;
  // A bias tile (LoadBiasTile's layout) and its rows' shifts, after the above: 16-bit biases
  // only (D 128: 196 KiB in all).
  __host__ __device__ static constexpr int BiasPitch(int elem) { return (kBlockN + 8) * elem; }
  __host__ __device__ static constexpr int BiasTileBytes(int elem) {
    return kBlockM * BiasPitch(elem);
  }
  static constexpr int kSmemBytesWithBias = kSmemBytes + kBlockM * (kBlockN + 8) * 2 + kBlockM;
};

// Starts copying rows [row0, row0 + kRows) of a head into a K-major tile (or, kMnMajor, an
// MN-major one: rows are then the K dimension), zero-filling rows at or past `limit` and columns
// from `dim` to kDim. 16-byte pieces stay contiguous in both layouts.
template <class Shape, int kRows, bool kMnMajor, class T>
__device__ __forceinline__ void LoadSwizzledRows(unsigned char* tile, const T* head,
                                                 int64_t seq_stride_in, int64_t row0,
                                                 int64_t limit, int dim_in) {
  constexpr int kChunks = Shape::kDim / 8;
  constexpr int kCopies = kRows * kChunks;
  static_assert(kCopies % Shape::kThreads == 0, "every thread copies the same count");
  const int64_t seq_stride = Opaque(seq_stride_in);
  const int dim = Opaque(dim_in);
#pragma unroll
  for (int i = 0; i < kCopies / Shape::kThreads; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * Shape::kThreads;
    const int r = c / kChunks;
    const int col = (c % kChunks) * 8;
    const bool valid = row0 + r < limit && col < dim;
    const T* src = valid ? head + (row0 + r) * seq_stride + col : head;
    const int at = kMnMajor ? wgmma::MnMajorOffset(r, col, kRows * 128)
                            : wgmma::KMajorOffset(r, col, kRows);
    CpAsync16(tile + at, src, valid);
  }
}

template <class T, class Shape>
__global__ void __launch_bounds__(Shape::kThreads, 1) WgmmaForwardKernel(const FusedParams p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ unsigned char smem_raw[];
  const uint32_t raw_address = SmemAddress(smem_raw);
  unsigned char* q_tile = smem_raw + (1024 - raw_address % 1024) % 1024;
  unsigned char* k_tiles = q_tile + Shape::kQBytes;        // stage s at + s · kKvBytes
  unsigned char* v_tiles = k_tiles + 2 * Shape::kKvBytes;  // likewise
  const uint32_t q_address = SmemAddress(q_tile);
  const uint32_t k_address = SmemAddress(k_tiles);
  const uint32_t v_address = SmemAddress(v_tiles);
  unsigned char* bias_tile = v_tiles + 2 * Shape::kKvBytes;
  uint8_t* bias_shifts = bias_tile + Shape::BiasTileBytes(2);

  const int warpgroup = threadIdx.x / 128;
  const int warp = (threadIdx.x % 128) / 32;  // within the warpgroup
  const int lane = threadIdx.x % 32;
  // Causal rows late in the sequence see the most keys: launch them first.
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int64_t h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t kv_h = h / p.group;
  const WgmmaCtaKeys keys = CtaKeysFor(p, b, q0, Shape::kBlockM, Shape::kBlockN);
  const int key_lo = keys.key_lo;
  const int key_hi = keys.key_hi;
  const int n_blocks = keys.n_blocks;

  // The thread's two rows: row_base and row_base + 8.
  const int row_base = static_cast<int>(q0) + 64 * warpgroup + 16 * warp + lane / 4;

  const T* q_head = static_cast<const T*>(p.q) + b * p.q_strides.batch + h * p.q_strides.head;
  const T* k_head = static_cast<const T*>(p.k) + b * p.k_strides.batch + kv_h * p.k_strides.head;
  const T* v_head = static_cast<const T*>(p.v) + b * p.v_strides.batch + kv_h * p.v_strides.head;
  if (n_blocks > 0) {
    LoadSwizzledRows<Shape, Shape::kBlockM, false>(q_tile, q_head, p.q_strides.seq, q0, p.q_len,
                                                   p.head_dim);
    LoadSwizzledRows<Shape, Shape::kBlockN, false>(k_tiles, k_head, p.k_strides.seq, key_lo,
                                                   key_hi, p.head_dim);
    LoadSwizzledRows<Shape, Shape::kBlockN, true>(v_tiles, v_head, p.v_strides.seq, key_lo,
                                                  key_hi, p.v_head_dim);
    if (p.bias != nullptr) LoadBiasTile<Shape>(bias_tile, bias_shifts, p, key_lo);
  }
  CpAsyncCommit();

  float o[Shape::kORegs];
#pragma unroll
  for (int i = 0; i < Shape::kORegs; ++i) o[i] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max, base-2 units
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum

  for (int n = 0; n < n_blocks; ++n) {
    const int kb = key_lo + n * Shape::kBlockN;
    const int stage = n % 2;
    // K_n and V_n have landed (made visible to the tensor cores' async proxy), and every
    // warpgroup's wgmma of block n-1 has completed: the other stage is free for block n+1.
    CpAsyncWait<0>();
    wgmma::FenceSharedForAsyncProxy();
    __syncthreads();
    if (n + 1 < n_blocks) {
      const int next = 1 - stage;
      LoadSwizzledRows<Shape, Shape::kBlockN, false>(k_tiles + next * Shape::kKvBytes, k_head,
                                                     p.k_strides.seq, kb + Shape::kBlockN, key_hi,
                                                     p.head_dim);
      LoadSwizzledRows<Shape, Shape::kBlockN, true>(v_tiles + next * Shape::kKvBytes, v_head,
                                                    p.v_strides.seq, kb + Shape::kBlockN, key_hi,
                                                    p.v_head_dim);
    }
    CpAsyncCommit();

    // S = Q·K_nᵀ for the warpgroup's 64 rows (wgmma_block.cuh's IssueQK); S starts at
    // bias / scale (then every k step accumulates) or is set by the first step.
    float s[Shape::kSRegs];
    if (p.bias != nullptr) {
      ScoresFromBiasTile<Shape::kBlockN>(s, bias_tile, bias_shifts, p,
                                         64 * warpgroup + 16 * warp + lane / 4, lane);
    } else {
#pragma unroll
      for (int i = 0; i < Shape::kSRegs; ++i) s[i] = 0.0f;
    }
    const bool biased = p.bias != nullptr;
    wgmma::Fence();
    IssueQK<Shape, T>(s, q_address, k_address + stage * Shape::kKvBytes, warpgroup, biased);
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceOperands(s);
    // Every thread has read the bias tile: block n+1's may load into it.
    if (biased && n + 1 < n_blocks) {
      __syncthreads();
      LoadBiasTile<Shape>(bias_tile, bias_shifts, p, kb + Shape::kBlockN);
      CpAsyncCommit();
    }

    // Scale to base 2, mask where needed; online softmax (wgmma_block.cuh).
    ScaleAndMask<Shape::kBlockN>(s, p, keys, kb, row_base, lane);
    float rescale[2];
    OnlineSoftmax<Shape::kBlockN>(s, m, l, rescale);
    RescaleRows(o, rescale);

    // O += P·V_n: the accumulators of n-blocks 2kk and 2kk + 1 are the A fragment of k step kk;
    // V's k step kk is 16 keys, 2 KiB into its MN-major tile; its atom columns (64 of D each)
    // are 128 keys · 128 bytes apart.
    wgmma::Fence();
#pragma unroll
    for (int kk = 0; kk < Shape::kBlockN / 16; ++kk) {
      const uint32_t a[4] = {PackPair<T>(s[8 * kk], s[8 * kk + 1]),
                             PackPair<T>(s[8 * kk + 2], s[8 * kk + 3]),
                             PackPair<T>(s[8 * kk + 4], s[8 * kk + 5]),
                             PackPair<T>(s[8 * kk + 6], s[8 * kk + 7])};
      const uint64_t desc_v = wgmma::Sw128Descriptor(
          v_address + stage * Shape::kKvBytes + kk * 2048, Shape::kBlockN * 128, 1024);
      wgmma::MmaRS<Shape::kDim, T>(o, a, desc_v, true);
    }
    wgmma::Commit();
    wgmma::Wait<0>();
    wgmma::FenceOperands(o);
  }
  CpAsyncWait<0>();

  StoreSequenceRows<T>(p, o, m, l, DenseRows(p, b), b, h, row_base, lane);
#endif
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WGMMA_KERNEL_CUH_
