// The f32 fused forward kernel: O = softmax(scale·Q·Kᵀ + bias + mask)·V with the scores kept in
// registers, both products on tensor cores in 3xTF32 (mma_tf32.cuh) so that the result keeps
// f32 accuracy. FlashAttention-2's schedule, as the 16-bit kernel (fused_kernel.cuh), whose
// masking, bias and softmax steps it repeats on f32 tiles.
//
// One CTA of 4 warps owns kBlockM = 16·kMTiles·4 query rows of one (batch, head); each warp owns
// kMTiles 16-row m-tiles, so every K and V fragment it reads (and splits) feeds kMTiles m-tiles.
//   shared memory   Q [kBlockM, kDim], K and V [kBlockN, kDim] f32, rows kDim + 4 floats apart
//                   (≡ 4 mod 8: the 8 rows of an ldmatrix fall in different banks, and so do
//                   V's scalar loads at rows 2t, 2t + 1, columns g); loaded with cp.async: V_n
//                   while S = Q·K_nᵀ runs, K_{n+1} during the softmax and P·V_n
//   Q               multiplied by scale·log2(e) in shared memory once per CTA (each warp its own
//                   rows), so S comes out in base-2 units and a fully visible block without a
//                   bias needs no per-score work before the softmax
//   registers       S [16, kBlockN] f32 per m-tile → masked, biased, exponentiated in place →
//                   split into TF32 big/small as the A operand of P·V; O [16, kDim] f32 per
//                   m-tile; the running max m and sum l of the thread's 2·kMTiles rows
// P·V's k-step: the thread holds S at keys 2t and 2t + 1 of each 8-key tile (C layout) where A
// wants keys t and t + 4; the step sums over its 8 keys in any order, so A's column t takes key
// 2t, column t + 4 key 2t + 1, and B's rows t and t + 4 read V's rows 2t and 2t + 1 to match.
//
// Head dims D ≤ kDim (multiples of 8; 4 would do) are zero-padded to kDim on load. Masking is
// kernels/mask.h's, as in fused_kernel.cuh: a CTA's keys are [lo of its first row, hi of its
// last row); rows that see no key write 0 and LSE -inf, as kernels/reference.cc.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_F32_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_F32_KERNEL_CUH_

#include <math.h>

#include <cstdint>

#include "kernels/cuda/fused/cta_rows.h"
#include "kernels/cuda/fused/fused_kernel.cuh"  // Exp2, Opaque, BiasPair, RowOffset, kLog2e
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"
#include "kernels/cuda/fused/mma_tf32.cuh"
#include "kernels/mask.h"

namespace attnd::kernels::cuda::fused {

// Every derived constant of one f32 instantiation; the launcher (fused_f32.cu) reads them back.
template <int kDim_, int kMTiles_, int kBlockN_, int kPasses_>
struct F32TileShape {
  static constexpr int kDim = kDim_;
  static constexpr int kWarps = 4;
  static constexpr int kMTiles = kMTiles_;  // 16-row m-tiles per warp
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kPasses = kPasses_;  // 3: 3xTF32; 1: plain TF32 (test only)
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBlockM = kWarpRows * kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStride = kDim + 4;  // shared row stride in floats (≡ 4 mod 8)
  static constexpr int kChunks = kDim / 4;  // 16-byte pieces per row
  static constexpr int kQElems = kBlockM * kStride;
  static constexpr int kKvElems = kBlockN * kStride;
  static constexpr int kSTiles = kBlockN / 8;  // n8 tiles of an m-tile's S (= P·V's k-steps)
  static constexpr int kOTiles = kDim / 8;     // n8 tiles of an m-tile's O (= Q·Kᵀ's k-steps)
  static constexpr int kRows = 2 * kMTiles;    // rows a thread holds (two per m-tile)
  static_assert(kDim % 8 == 0, "k-steps of Q·Kᵀ and n-tiles of O are 8 wide");
  static_assert(kBlockN % 16 == 0, "one ldmatrix.x4 loads two n-tiles of K");
  static_assert(kStride % 8 == 4, "bank-conflict-free ldmatrix rows and V loads");
  static constexpr int SmemBytes() { return (kQElems + 2 * kKvElems) * 4; }  // Q, K, V
};

// Starts copying rows [row0, row0 + kTileRows) of one head into a shared f32 tile, zero-filling
// rows at or past `limit` (with kFloor, before `floor` too) and the columns from `dim` to kDim (dim is a multiple of 4). Addresses
// pass through Opaque for the reason LoadRows (fused_kernel.cuh) gives.
template <class Shape, int kTileRows, bool kFloor = false>
__device__ __forceinline__ void LoadRowsF32(float* tile, const float* head_base,
                                            int64_t seq_stride_in, int64_t row0, int64_t limit,
                                            int dim_in, int64_t floor = 0) {
  constexpr int kCopies = kTileRows * Shape::kChunks;
  // The thread index too: hoisted, the copies' shared addresses and row tests took ~90
  // registers at D 256 (16 copies per thread per tile) and spilled.
  const int64_t seq_stride = Opaque(seq_stride_in);
  const int dim = Opaque(dim_in);
  const int thread = Opaque(static_cast<int>(threadIdx.x));
#pragma unroll
  for (int i = 0; i < (kCopies + Shape::kThreads - 1) / Shape::kThreads; ++i) {
    const int c = thread + i * Shape::kThreads;
    if (kCopies % Shape::kThreads != 0 && c >= kCopies) break;
    const int r = c / Shape::kChunks;
    const int col = (c % Shape::kChunks) * 4;
    const bool valid = row0 + r < limit && (!kFloor || row0 + r >= floor) && col < dim;
    const float* src = valid ? head_base + (row0 + r) * seq_stride + col : head_base;
    CpAsync16(tile + r * Shape::kStride + col, src, valid);
  }
}

template <class Shape>
__global__ void __launch_bounds__(Shape::kThreads) FusedF32ForwardKernel(const FusedParams p) {
  constexpr int kM = Shape::kMTiles;
  constexpr int kP = Shape::kPasses;
  extern __shared__ __align__(16) unsigned char smem[];
  float* q_tile = reinterpret_cast<float*>(smem);
  float* k_tile = q_tile + Shape::kQElems;
  float* v_tile = k_tile + Shape::kKvElems;

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int g = lane / 4;  // fragment row (C, A) and column (B)
  const int t = lane % 4;
  // Causal rows late in the sequence see the most keys: launch them first.
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int64_t h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t kv_h = h / p.group;
  // The sequence's rows and keys (cta_rows.h); a ragged sequence shorter than the longest has
  // CTAs with none of its rows, which end here (the whole CTA alike).
  const CtaRows seq = RowsOf(p, b);
  int64_t q_first = 0;
  int64_t q_last = 0;
  if (!CtaHoldsRows(seq, q0, Shape::kBlockM, &q_first, &q_last)) return;

  // Lengths are below 2^31 (FusedRefusal): key positions live in 32-bit registers.
  const int valid_keys = seq.valid_keys;
  const KeyRange first_row = p.mask.Visible(q_first, valid_keys);
  const KeyRange last_row = p.mask.Visible(q_last, valid_keys);
  const int key_lo = static_cast<int>(first_row.lo);
  const int key_hi = static_cast<int>(last_row.hi > key_lo ? last_row.hi : key_lo);
  // Key blocks inside [all_lo, all_hi) are visible to every row of the CTA.
  const int all_lo = static_cast<int>(last_row.lo);
  const int all_hi = static_cast<int>(first_row.hi);
  const int n_blocks = (key_hi - key_lo + Shape::kBlockN - 1) / Shape::kBlockN;

  // The thread's rows are row_base + RowOffset(r): rows g and g + 8 of each of its m-tiles.
  const int row_base = static_cast<int>(q0) + Shape::kWarpRows * warp + g;

  const float* q_head =
      static_cast<const float*>(p.q) + b * p.q_strides.batch + h * p.q_strides.head;
  const float* k_head = static_cast<const float*>(p.k) + b * p.k_strides.batch +
                        seq.kv_row0 * p.k_strides.seq + kv_h * p.k_strides.head;
  const float* v_head = static_cast<const float*>(p.v) + b * p.v_strides.batch +
                        seq.kv_row0 * p.v_strides.seq + kv_h * p.v_strides.head;
  if (n_blocks > 0) {
    // q_head is the head's row 0: kernel row r is its row r + q_shift.
    LoadRowsF32<Shape, Shape::kBlockM, true>(q_tile, q_head, p.q_strides.seq, q0 + seq.q_shift,
                                             seq.row_hi + seq.q_shift, p.head_dim,
                                             seq.row_lo + seq.q_shift);
  }
  CpAsyncCommit();
  if (n_blocks > 0) {
    LoadRowsF32<Shape, Shape::kBlockN>(k_tile, k_head, p.k_strides.seq, key_lo, key_hi, p.head_dim);
  }
  CpAsyncCommit();

  // Q has landed (K_0 may still be in flight): each warp scales its own rows to base 2.
  float* q_warp = q_tile + Shape::kWarpRows * warp * Shape::kStride;  // [kWarpRows, kDim]
  CpAsyncWait<1>();
  __syncthreads();
  if (n_blocks > 0) {
#pragma unroll 4
    for (int e = 4 * lane; e < Shape::kWarpRows * Shape::kDim; e += 4 * 32) {
      float4* at = reinterpret_cast<float4*>(q_warp + (e / Shape::kDim) * Shape::kStride +
                                             e % Shape::kDim);
      float4 x = *at;
      x.x *= p.scale_log2;
      x.y *= p.scale_log2;
      x.z *= p.scale_log2;
      x.w *= p.scale_log2;
      *at = x;
    }
  }
  __syncwarp();

  float o[kM][Shape::kOTiles][4];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) {
      o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
    }
  }
  float m[Shape::kRows];  // running max, base-2 units
  float l[Shape::kRows];  // this thread's share of the running sum
#pragma unroll
  for (int r = 0; r < Shape::kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }

  for (int n = 0; n < n_blocks; ++n) {
    const int kb = key_lo + n * Shape::kBlockN;
    // K_n has landed and every warp is done with V_{n-1}: V_n loads while S is computed.
    CpAsyncWait<0>();
    __syncthreads();
    LoadRowsF32<Shape, Shape::kBlockN>(v_tile, v_head, p.v_strides.seq, kb, key_hi, p.v_head_dim);
    CpAsyncCommit();

    // S = Q·Kᵀ (base 2) for the warp's rows and the block's keys, k-steps of 8 head-dim columns.
    float s[kM][Shape::kSTiles][4];
#pragma unroll
    for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
      }
    }
#pragma unroll
    for (int kk = 0; kk < Shape::kDim / 8; ++kk) {
      // A: rows lane % 16 of the m-tile, columns kk·8 + 4·(lane / 16): a0..a3 in order.
      uint32_t a_big[kM][4];
      uint32_t a_small[kM][4];
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        uint32_t raw[4];
        LdMatrixX4(raw, q_warp + (16 * mt + lane % 16) * Shape::kStride + kk * 8 + (lane / 16) * 4);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const SplitTf32 x = Split(raw[e]);
          a_big[mt][e] = x.big;
          a_small[mt][e] = x.small;
        }
      }
      // B of n-tiles 2j and 2j + 1: matrix q = lane / 8 is key rows 16j + 8·(q / 2) + lane % 8,
      // columns kk·8 + 4·(q % 2), so bk = {b0, b1 of tile 2j, b0, b1 of tile 2j + 1}.
#pragma unroll
      for (int j = 0; j < Shape::kSTiles / 2; ++j) {
        uint32_t bk[4];
        LdMatrixX4(bk, k_tile + (16 * j + (lane / 16) * 8 + lane % 8) * Shape::kStride + kk * 8 +
                           ((lane / 8) % 2) * 4);
        const SplitTf32 b[4] = {Split(bk[0]), Split(bk[1]), Split(bk[2]), Split(bk[3])};
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) {
          MmaSplit<kP>(s[mt][2 * j], a_big[mt], a_small[mt], b[0], b[1]);
          MmaSplit<kP>(s[mt][2 * j + 1], a_big[mt], a_small[mt], b[2], b[3]);
        }
      }
    }

    // V_n has landed and every warp is done with K_n: K_{n+1} loads during softmax and P·V.
    CpAsyncWait<0>();
    __syncthreads();
    if (n + 1 < n_blocks) {
      LoadRowsF32<Shape, Shape::kBlockN>(k_tile, k_head, p.k_strides.seq, kb + Shape::kBlockN,
                                         key_hi, p.head_dim);
    }
    CpAsyncCommit();

    // Bias and mask where needed (S is already scaled). A block inside every row's keys and
    // without a bias (the common case) needs nothing.
    const bool whole = kb >= all_lo && kb + Shape::kBlockN <= all_hi;
    if (!whole || p.bias != nullptr) {
      // The sequence's first kernel row, read again for each block (Opaque: not kept from the
      // prologue) rather than held across the key loop: D 128 spilled with it held.
      const int row_lo = p.bias != nullptr && p.q_offsets != nullptr
                             ? static_cast<int>(RowsOf(p, Opaque(b)).row_lo)
                             : 0;
#pragma unroll
      for (int r = 0; r < Shape::kRows; ++r) {
        // The row's visible keys relative to kb, clamped into [0, kBlockN].
        const int i = row_base + RowOffset(r);
        const KeyRange visible = i < p.q_len ? p.mask.Visible(i, valid_keys) : KeyRange{0, 0};
        const int lo_abs = static_cast<int>(visible.lo) - kb;
        const int hi_abs = static_cast<int>(visible.hi) - kb;
        const int lo = lo_abs < 0 ? 0 : (lo_abs > Shape::kBlockN ? Shape::kBlockN : lo_abs);
        const int hi = hi_abs < lo ? lo : (hi_abs > Shape::kBlockN ? Shape::kBlockN : hi_abs);
        const int mt = r / 2;
        const int half = r % 2;
        // The row's bias element at key kb; its keys follow at stride bias_index.col (0 or 1).
        // Its bias row within the sequence: kernel rows of a ragged sequence start at row_lo
        // (0 when dense). Rows past the sequence read rows below q_len of the padded bias (and are
        // thrown away); rows before it read nothing.
        const bool biased = p.bias != nullptr && i < p.q_len && i >= row_lo;
        const int64_t bias_row = biased ? p.bias_index.At(b, h, i - row_lo, kb) : 0;
#pragma unroll
        for (int j = 0; j < Shape::kSTiles; ++j) {
          const int col = j * 8 + 2 * t;  // this thread's two neighbouring keys
          const bool seen[2] = {col >= lo && col < hi, col + 1 >= lo && col + 1 < hi};
          float bias[2] = {0.0f, 0.0f};
          if (biased) BiasPair(p, bias_row + col * p.bias_index.col, seen, bias);
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float x = s[mt][j][2 * half + e] + bias[e] * kLog2e;
            s[mt][j][2 * half + e] = seen[e] ? x : -INFINITY;
          }
        }
      }
    }

    // Online softmax: new row max, rescale what came before, exponentiate the block.
#pragma unroll
    for (int r = 0; r < Shape::kRows; ++r) {
      const int mt = r / 2;
      const int half = r % 2;
      float block_max = m[r];
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        block_max = fmaxf(block_max, fmaxf(s[mt][j][2 * half], s[mt][j][2 * half + 1]));
      }
      block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1));
      block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 2));
      // A row that has seen nothing yet keeps max -inf; exponentiate against 0 so that its
      // -inf scores give 0 rather than NaN.
      const float base = block_max == -INFINITY ? 0.0f : block_max;
      const float rescale = Exp2(m[r] - base);
      m[r] = block_max;
      l[r] *= rescale;
#pragma unroll
      for (int d = 0; d < Shape::kOTiles; ++d) {
        o[mt][d][2 * half] *= rescale;
        o[mt][d][2 * half + 1] *= rescale;
      }
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        s[mt][j][2 * half] = Exp2(s[mt][j][2 * half] - base);
        s[mt][j][2 * half + 1] = Exp2(s[mt][j][2 * half + 1] - base);
        l[r] += s[mt][j][2 * half] + s[mt][j][2 * half + 1];
      }
    }

    // O += P·V, one k-step per 8-key tile kk of S. A (see the top): a0 = P[g][2t] = c0,
    // a1 = P[g + 8][2t] = c2, a2 = P[g][2t + 1] = c1, a3 = P[g + 8][2t + 1] = c3; B: b0 =
    // V[2t][n], b1 = V[2t + 1][n] for the n-tile's column n = d·8 + g. Each V fragment serves
    // every m-tile.
#pragma unroll
    for (int kk = 0; kk < Shape::kSTiles; ++kk) {
      uint32_t a_big[kM][4];
      uint32_t a_small[kM][4];
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        const float pa[4] = {s[mt][kk][0], s[mt][kk][2], s[mt][kk][1], s[mt][kk][3]};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const SplitTf32 x = Split(pa[e]);
          a_big[mt][e] = x.big;
          a_small[mt][e] = x.small;
        }
      }
      const float* v_rows = v_tile + (kk * 8 + 2 * t) * Shape::kStride + g;
#pragma unroll
      for (int d = 0; d < Shape::kOTiles; ++d) {
        const SplitTf32 b0 = Split(v_rows[d * 8]);
        const SplitTf32 b1 = Split(v_rows[Shape::kStride + d * 8]);
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) MmaSplit<kP>(o[mt][d], a_big[mt], a_small[mt], b0, b1);
      }
    }
  }
  CpAsyncWait<0>();

  // O / l and the LSE; the four lanes of a row hold parts of its sum.
  float* out = static_cast<float*>(p.out);
  const CtaRows rows = RowsOf(p, Opaque(b));  // read again: nothing held across the loop
#pragma unroll
  for (int r = 0; r < Shape::kRows; ++r) {
    const int mt = r / 2;
    const int half = r % 2;
    const int i = row_base + RowOffset(r);
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (!rows.Has(i)) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    float* out_row = out + p.out_strides.Row(b, i + rows.q_shift, h);
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) {
      const int col = d * 8 + 2 * t;
      if (col < p.v_head_dim) {
        *reinterpret_cast<float2*>(out_row + col) =
            make_float2(o[mt][d][2 * half] * inv, o[mt][d][2 * half + 1] * inv);
      }
    }
    if (p.lse != nullptr && t == 0) {
      p.lse[rows.LseIndex(h, i)] =
          sum > 0.0f ? (m[r] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_F32_KERNEL_CUH_
