// The per-warpgroup steps both wgmma kernels share (wgmma_kernel.cuh, one warpgroup role;
// wgmma_ws_kernel.cuh, warp-specialised): the CTA's key range, S = Q·Kᵀ, one block's mask and
// online softmax on S held as m64nN accumulators, and the epilogue.
//
// Register layout (wgmma.cuh): a thread holds rows row_base and row_base + 8 of its warpgroup's
// 64; s[4j + 2r + e] is row row_base + 8r, key kb + 8j + 2·(lane % 4) + e; o likewise with head
// columns for keys. The four lanes lane % 4 = 0..3 share a row.
#ifndef ATTND_KERNELS_CUDA_FUSED_WGMMA_BLOCK_CUH_
#define ATTND_KERNELS_CUDA_FUSED_WGMMA_BLOCK_CUH_

#include <math.h>

#include <cstdint>

#include "kernels/cuda/fused/cta_rows.h"
#include "kernels/cuda/fused/fused_kernel.cuh"  // Exp2, kLn2, TileBias
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"  // PackPair
#include "kernels/cuda/wgmma/wgmma.cuh"
#include "kernels/mask.h"

namespace attnd::kernels::cuda::fused {

// The keys a CTA of rows [q0, q0 + block_m) of batch b walks: [key_lo, key_hi), in n_blocks
// blocks of block_n; keys in [all_lo, all_hi) are visible to every one of its rows, so blocks
// inside them need no mask.
struct WgmmaCtaKeys {
  int valid_keys = 0;  // Mk, or kv_lengths[b] clamped into [0, Mk]
  int key_lo = 0;
  int key_hi = 0;
  int all_lo = 0;
  int all_hi = 0;
  int n_blocks = 0;
};

// The same for a CTA whose rows are [q_first, q_last] (a ragged sequence's, cta_rows.h) and whose
// rows see keys [0, valid_keys).
__device__ __forceinline__ WgmmaCtaKeys KeysOfRows(const FusedParams& p, int valid_keys,
                                                   int64_t q_first, int64_t q_last, int block_n) {
  WgmmaCtaKeys keys;
  keys.valid_keys = valid_keys;
  const KeyRange first_row = p.mask.Visible(q_first, keys.valid_keys);
  const KeyRange last_row = p.mask.Visible(q_last, keys.valid_keys);
  keys.key_lo = static_cast<int>(first_row.lo);
  keys.key_hi = static_cast<int>(last_row.hi > keys.key_lo ? last_row.hi : keys.key_lo);
  keys.all_lo = static_cast<int>(last_row.lo);
  keys.all_hi = static_cast<int>(first_row.hi);
  keys.n_blocks = (keys.key_hi - keys.key_lo + block_n - 1) / block_n;
  return keys;
}

// A dense batch's CTA: rows [q0, q0 + block_m) below Mq, keys [0, kv_lengths[b] or Mk).
__device__ __forceinline__ WgmmaCtaKeys CtaKeysFor(const FusedParams& p, int64_t b, int64_t q0,
                                                   int block_m, int block_n) {
  const int64_t q_last = (q0 + block_m < p.q_len ? q0 + block_m : p.q_len) - 1;
  int valid_keys = static_cast<int>(p.kv_len);
  if (p.kv_lengths != nullptr) {
    const int64_t given = p.kv_lengths[b];
    valid_keys =
        given < 0 ? 0 : (given > p.kv_len ? static_cast<int>(p.kv_len) : static_cast<int>(given));
  }
  return KeysOfRows(p, valid_keys, q0, q_last, block_n);
}

// S started at bias / scale from a 16-bit bias tile (fused_kernel.cuh's LoadBiasTile layout,
// rows (kBlockN + 8) elements apart, `shifts` their first elements): the thread's rows are tile
// rows tile_row and tile_row + 8, or row 0 for a bias broadcast over queries; a bias broadcast
// over keys repeats its one element.
template <int kBlockN>
__device__ __forceinline__ void ScoresFromBiasTile(float (&s)[kBlockN / 2],
                                                   const unsigned char* bias_tile,
                                                   const uint8_t* shifts, const FusedParams& p,
                                                   int tile_row, int lane) {
  constexpr int kPitch = (kBlockN + 8) * 2;
  const int key_step = 2 * static_cast<int>(p.bias_index.col);  // 0: broadcast over keys
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int row_in_tile = p.bias_index.row == 0 ? 0 : tile_row + 8 * r;
    const unsigned char* row = bias_tile + row_in_tile * kPitch + shifts[row_in_tile] * 2;
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      const int col = 8 * j + 2 * (lane % 4);
      s[4 * j + 2 * r] = TileBias(row + col * key_step, p.bias_dtype) * p.bias_to_acc;
      s[4 * j + 2 * r + 1] = TileBias(row + (col + 1) * key_step, p.bias_dtype) * p.bias_to_acc;
    }
  }
}

// S (+)= Q·Kᵀ for warpgroup `wg`'s 64 rows of Q's kBlockM and the kBlockN keys of the K tile at
// `k_address`: D/16 k steps, 4 in each atom column; the warpgroup's rows start 8 row groups
// (8 KiB) into Q's atom columns.
// `biased`: S holds bias / scale and every step accumulates; else the first step sets it.
template <class Shape, class T>
__device__ __forceinline__ void IssueQK(float (&s)[Shape::kSRegs], uint32_t q_address,
                                        uint32_t k_address, int wg, bool biased) {
#pragma unroll
  for (int kk = 0; kk < Shape::kDim / 16; ++kk) {
    const uint32_t in_atom = (kk % 4) * 32;
    const uint64_t desc_q = wgmma::Sw128Descriptor(
        q_address + (kk / 4) * Shape::kBlockM * 128 + wg * 8192 + in_atom, 16, 1024);
    const uint64_t desc_k =
        wgmma::Sw128Descriptor(k_address + (kk / 4) * Shape::kBlockN * 128 + in_atom, 16, 1024);
    wgmma::MmaSS<Shape::kBlockN, T>(s, desc_q, desc_k, biased || kk > 0);
  }
}

// Scales S of keys [kb, kb + kBlockN) to base 2 and sets the scores of keys a row cannot see
// to -inf (rows at or past Mq see none).
template <int kBlockN>
__device__ __forceinline__ void ScaleAndMask(float (&s)[kBlockN / 2], const FusedParams& p,
                                             const WgmmaCtaKeys& keys, int kb, int row_base,
                                             int lane) {
  const bool whole = kb >= keys.all_lo && kb + kBlockN <= keys.all_hi;
  if (whole) {
#pragma unroll
    for (int i = 0; i < kBlockN / 2; ++i) s[i] *= p.scale_log2;
    return;
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row_base + 8 * r;
    const KeyRange visible = i < p.q_len ? p.mask.Visible(i, keys.valid_keys) : KeyRange{0, 0};
    const int lo_abs = static_cast<int>(visible.lo) - kb;
    const int hi_abs = static_cast<int>(visible.hi) - kb;
    const int lo = lo_abs < 0 ? 0 : (lo_abs > kBlockN ? kBlockN : lo_abs);
    const int hi = hi_abs < lo ? lo : (hi_abs > kBlockN ? kBlockN : hi_abs);
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int col = 8 * j + 2 * (lane % 4) + e;
        const float x = s[4 * j + 2 * r + e] * p.scale_log2;
        s[4 * j + 2 * r + e] = col >= lo && col < hi ? x : -INFINITY;
      }
    }
  }
}

// Online softmax of one masked block (base 2): the rows' new maxima m, the factor rescale[r]
// by which what was accumulated before (O and l) must be multiplied, S exponentiated in place
// and its sum added to l (this thread's share; the row's four lanes are summed at the end).
template <int kBlockN>
__device__ __forceinline__ void OnlineSoftmax(float (&s)[kBlockN / 2], float (&m)[2], float (&l)[2],
                                              float (&rescale)[2]) {
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float block_max = m[r];
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      block_max = fmaxf(block_max, fmaxf(s[4 * j + 2 * r], s[4 * j + 2 * r + 1]));
    }
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1));
    block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 2));
    const float base = block_max == -INFINITY ? 0.0f : block_max;
    rescale[r] = Exp2(m[r] - base);
    m[r] = block_max;
    l[r] *= rescale[r];
#pragma unroll
    for (int j = 0; j < kBlockN / 8; ++j) {
      s[4 * j + 2 * r] = Exp2(s[4 * j + 2 * r] - base);
      s[4 * j + 2 * r + 1] = Exp2(s[4 * j + 2 * r + 1] - base);
      l[r] += s[4 * j + 2 * r] + s[4 * j + 2 * r + 1];
    }
  }
}

// O's rows times rescale (OnlineSoftmax's factor).
template <int kORegs>
__device__ __forceinline__ void RescaleRows(float (&o)[kORegs], const float (&rescale)[2]) {
#pragma unroll
  for (int j = 0; j < kORegs / 4; ++j) {
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      o[4 * j + 2 * r] *= rescale[r];
      o[4 * j + 2 * r + 1] *= rescale[r];
    }
  }
}

// Writes O / l of the thread's two rows (head columns below Dv; o holding columns from col0, as in
// the wide kernel's halves) and, when asked, their LSE (natural log; -inf for a row that saw no
// key; written by the holder of column 0 only), for the rows of sequence `seq` (cta_rows.h):
// kernel row i is row i + q_shift of out, rows outside the sequence are not written, the LSE
// index is the sequence's. A dense batch element is DenseRows below.
// Batch element b of a dense batch as a sequence: rows [0, Mq), its LSE block.
__device__ __forceinline__ CtaRows DenseRows(const FusedParams& p, int64_t b) {
  CtaRows rows;
  rows.row_hi = p.q_len;
  rows.lse_base = b * p.q_heads * p.q_len;
  rows.lse_rows = p.q_len;
  return rows;
}

template <class T, int kORegs>
__device__ __forceinline__ void StoreSequenceRows(const FusedParams& p, const float (&o)[kORegs],
                                                  const float (&m)[2], const float (&l)[2],
                                                  const CtaRows& seq, int64_t b, int64_t h,
                                                  int row_base, int lane, int col0 = 0) {
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = row_base + 8 * r;
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (!seq.Has(i)) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    T* out_row = out + p.out_strides.Row(b, i + seq.q_shift, h) + col0;
#pragma unroll
    for (int j = 0; j < kORegs / 4; ++j) {
      const int col = 8 * j + 2 * (lane % 4);
      if (col0 + col < p.v_head_dim) {
        *reinterpret_cast<uint32_t*>(out_row + col) =
            PackPair<T>(o[4 * j + 2 * r] * inv, o[4 * j + 2 * r + 1] * inv);
      }
    }
    if (p.lse != nullptr && col0 == 0 && lane % 4 == 0) {
      p.lse[seq.LseIndex(h, i)] = sum > 0.0f ? (m[r] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_WGMMA_BLOCK_CUH_
