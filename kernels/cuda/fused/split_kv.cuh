// The fused variant's split-KV path for few query rows (decode: Mq <= 16, long Mk), two kernels:
//
// SplitKvPartialKernel: grid (row_tiles · splits, Hkv, B). One CTA takes one batch element b,
//   one kv head, 16 of the group · Mq query rows that read it (row r = hg · Mq + i: query head
//   kv_head · group + hg, position i; GQA/MQA rows of different heads share the CTA so K and V
//   are read once per kv head, not once per query head) and one of `splits` equal shares of the
//   keys those rows can see. Its warps share the 16 rows and take 16 keys each of every block of
//   kBlockN = 16 · kWarps keys:
//     shared memory  Q [16, kDim]; a ring of kStages (K, V) blocks [kBlockN, kDim], filled with
//                    16-byte cp.async kStages - 1 blocks ahead of the one computed
//     registers      S [16, 16] f32 per warp (mma m16n8k16) → masked, biased, exponentiated
//                    (base 2) → packed as the A operand of P·V; O [16, kDim] f32, running max m
//                    and sum l per warp (each warp saw other keys)
//   then merges its warps through shared memory (the K/V ring, reused) and writes the split's
//   normalised output O_s (f32) and LSE_s (base 2; -inf when the split saw no key of a row) into
//   the workspace (kernels/fused_support.h, FusedWorkspaceLayout).
// SplitKvCombineKernel: one warp per (b, query head, row): lse = log2 Σ_s 2^lse_s,
//   O = Σ_s 2^(lse_s - lse) · O_s, written in the input dtype; the LSE (natural log) if asked.
//   A row no split saw gives O = 0 and LSE -inf, as the one-pass kernel and the reference.
//
// Masking is kernels/mask.h's, as in fused_kernel.cuh: each row sees keys [lo_i, hi_i). The
// CTA's keys are the union over its rows, [key_lo, key_hi), cut into `splits` shares of
// split_len keys (a multiple of kBlockN) from key_lo: the split of the keys is decided on the
// device, after kv_lengths, so a short batch element still spreads over every split. Inside a
// share a warp's 16 keys need no per-element test when they lie in every row's interval and
// in the share, and there is no bias.
#ifndef ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_CUH_
#define ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include <cstdint>

#include "kernels/cuda/fused/fused_kernel.cuh"  // Exp2, Opaque, BiasPair, kLog2e, kLn2
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"
#include "kernels/cuda/fused/split_kv_tile.h"
#include "kernels/fused_support.h"  // kFusedMaxSplits
#include "kernels/mask.h"

namespace attnd::kernels::cuda::fused {

// What both kernels read: the problem's parameters and the workspace's partials.
struct SplitKvParams {
  FusedParams fused;
  float* partial_o = nullptr;    // [B·Hq·Mq, splits, Dv] f32, row = (b·Hq + h)·Mq + i
  float* partial_lse = nullptr;  // [B·Hq·Mq, splits] f32, base 2
  int64_t rows = 0;              // B·Hq·Mq output rows
  int splits = 1;
  int row_tiles = 1;  // 16-row tiles of group · Mq
};

// The compile-time shape of the partial kernel at padded head dim kDim (split_kv_tile.h's
// numbers).
template <int kDim_>
struct SplitShape {
  static constexpr fused_split::SplitKvTile kTile = fused_split::SplitKvTileFor(kDim_);
  static constexpr int kDim = kDim_;
  static constexpr int kRows = fused_split::kSplitRows;
  static constexpr int kWarps = kTile.warps;
  static constexpr int kBlockN = kTile.block_n();
  static constexpr int kStages = kTile.stages;
  static constexpr int kThreads = kTile.threads();
  static constexpr int kStride = kTile.stride();
  static constexpr int kChunks = kDim / 8;  // 16-byte pieces per row
  static constexpr int kQElems = kRows * kStride;
  static constexpr int kKvElems = kBlockN * kStride;  // one K or one V block
  static constexpr int kOTiles = kDim / 8;            // n8 tiles of O
  static constexpr int kSmemBytes = static_cast<int>(kTile.SmemBytes());
  // The warp merge, in the ring: O [kWarps, 16, kDim] f32, then m and l [kWarps, 16].
  static constexpr int kMergeBytes = (kWarps * kRows * kDim + 2 * kWarps * kRows) * 4;
  static_assert(kDim % 16 == 0, "mma k-steps and O's n16 loads are 16 wide");
  static_assert(kBlockN == fused_split::kWarpKeys * kWarps && fused_split::kWarpKeys == 16,
                "each warp takes one k16 step of keys");
  static_assert(kStages >= 2, "the ring needs a block in flight while one computes");
  static_assert(kMergeBytes <= kStages * 2 * kKvElems * 2, "the warp merge fits in the ring");
  static_assert(kSmemBytes == (kQElems + 2 * kStages * kKvElems) * 2, "split_kv_tile.h's count");
};

template <class T, class Shape>
__device__ __forceinline__ T* KTile(T* ring, int stage) {
  return ring + 2 * stage * Shape::kKvElems;
}
template <class T, class Shape>
__device__ __forceinline__ T* VTile(T* ring, int stage) {
  return ring + (2 * stage + 1) * Shape::kKvElems;
}

// Row `r` of the CTA's 16 rows: its query head and position, or false past group · Mq.
struct TileRow {
  bool real = false;
  int64_t h = 0;  // query head
  int64_t i = 0;  // query position
};
__device__ __forceinline__ TileRow RowOf(const FusedParams& p, int64_t kv_h, int64_t row0, int r) {
  TileRow t;
  const int64_t rg = row0 + r;
  if (rg >= p.group * p.q_len) return t;
  t.real = true;
  t.h = kv_h * p.group + rg / p.q_len;
  t.i = rg % p.q_len;
  return t;
}

// Starts copying the CTA's 16 query rows (each from its own head) into q_tile, zero-filling rows
// past group · Mq and columns from D to kDim.
template <class Shape, class T>
__device__ __forceinline__ void LoadQueryRows(T* q_tile, const FusedParams& p, int64_t b,
                                              int64_t kv_h, int64_t row0) {
  constexpr int kCopies = Shape::kRows * Shape::kChunks;
  const T* q = static_cast<const T*>(p.q);
#pragma unroll
  for (int n = 0; n < (kCopies + Shape::kThreads - 1) / Shape::kThreads; ++n) {
    const int c = static_cast<int>(threadIdx.x) + n * Shape::kThreads;
    if (kCopies % Shape::kThreads != 0 && c >= kCopies) break;
    const int r = c / Shape::kChunks;
    const int col = (c % Shape::kChunks) * 8;
    const TileRow row = RowOf(p, kv_h, row0, r);
    const bool valid = row.real && col < p.head_dim;
    const T* src = valid ? q + p.q_strides.Row(b, row.i, row.h) + col : q;
    CpAsync16(q_tile + r * Shape::kStride + col, src, valid);
  }
}

// Starts copying key rows [row0, row0 + kBlockN) of one kv head into a shared tile, zero-filling
// rows at or past `limit` and columns from `dim` to kDim. As LoadRows (fused_kernel.cuh), but
// the thread index too passes through Opaque: otherwise the compiler keeps every copy's offsets
// live across the key loop (at D 256, 32 copies per thread and block: 60 registers, spills).
template <class Shape, class T>
__device__ __forceinline__ void LoadKeyRows(T* tile, const T* head, int64_t seq_stride_in,
                                            int64_t row0, int64_t limit, int dim_in) {
  constexpr int kCopies = Shape::kBlockN * Shape::kChunks;
  const int tid = Opaque(static_cast<int>(threadIdx.x));
  const int64_t seq_stride = Opaque(seq_stride_in);
  const int dim = Opaque(dim_in);
#pragma unroll
  for (int n = 0; n < (kCopies + Shape::kThreads - 1) / Shape::kThreads; ++n) {
    const int c = tid + n * Shape::kThreads;
    if (kCopies % Shape::kThreads != 0 && c >= kCopies) break;
    const int r = c / Shape::kChunks;
    const int col = (c % Shape::kChunks) * 8;
    const bool valid = row0 + r < limit && col < dim;
    const T* src = valid ? head + (row0 + r) * seq_stride + col : head;
    CpAsync16(tile + r * Shape::kStride + col, src, valid);
  }
}

template <class T, class Shape>
__global__ void __launch_bounds__(Shape::kThreads) SplitKvPartialKernel(const SplitKvParams sp) {
  const FusedParams& p = sp.fused;
  extern __shared__ __align__(16) unsigned char smem[];
  T* q_tile = reinterpret_cast<T*>(smem);
  T* ring = q_tile + Shape::kQElems;

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int tile = static_cast<int>(blockIdx.x) % sp.row_tiles;   // row tiles of a split adjacent:
  const int split = static_cast<int>(blockIdx.x) / sp.row_tiles;  // they share K/V in L2
  const int64_t kv_h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t row0 = int64_t{tile} * Shape::kRows;

  // Lengths are below 2^31 (FusedRefusal): key positions live in 32-bit registers.
  int valid_keys = static_cast<int>(p.kv_len);
  if (p.kv_lengths != nullptr) {
    const int64_t given = p.kv_lengths[b];
    valid_keys =
        given < 0 ? 0 : (given > p.kv_len ? static_cast<int>(p.kv_len) : static_cast<int>(given));
  }

  // The union [key_lo, key_hi) of the rows' keys, and [all_lo, all_hi), the keys every row sees.
  int64_t key_lo = p.kv_len;
  int64_t key_hi = 0;
  int64_t all_lo = 0;
  int64_t all_hi = p.kv_len;
  for (int r = 0; r < Shape::kRows; ++r) {
    const TileRow row = RowOf(p, kv_h, row0, r);
    if (!row.real) break;
    const KeyRange visible = p.mask.Visible(row.i, valid_keys);
    all_lo = visible.lo > all_lo ? visible.lo : all_lo;
    all_hi = visible.hi < all_hi ? visible.hi : all_hi;
    if (!visible.empty()) {
      key_lo = visible.lo < key_lo ? visible.lo : key_lo;
      key_hi = visible.hi > key_hi ? visible.hi : key_hi;
    }
  }
  if (key_hi <= key_lo) key_lo = key_hi = 0;

  // This CTA's share of [key_lo, key_hi): [cta_lo, cta_hi), possibly empty.
  const int64_t per_split = (key_hi - key_lo + sp.splits - 1) / sp.splits;
  const int64_t split_len = (per_split + Shape::kBlockN - 1) / Shape::kBlockN * Shape::kBlockN;
  const int64_t share_lo = key_lo + split * split_len;
  const int cta_lo = static_cast<int>(share_lo < key_hi ? share_lo : key_hi);
  const int cta_hi =
      static_cast<int>(share_lo + split_len < key_hi ? share_lo + split_len : key_hi);
  const int n_blocks = (cta_hi - cta_lo + Shape::kBlockN - 1) / Shape::kBlockN;
  // Keys in [full_lo, full_hi) are seen by every row and belong to this share.
  const int full_lo = static_cast<int>(all_lo);
  const int full_hi = static_cast<int>(all_hi < cta_hi ? all_hi : cta_hi);

  // The thread's two rows (fragment rows lane/4 and lane/4 + 8): their keys inside the share
  // and their bias offset at key 0.
  int row_lo[2];
  int row_hi[2];
  int64_t bias_row[2];
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const TileRow row = RowOf(p, kv_h, row0, lane / 4 + 8 * t);
    const KeyRange visible = row.real ? p.mask.Visible(row.i, valid_keys) : KeyRange{0, 0};
    const int lo = static_cast<int>(visible.lo > cta_lo ? visible.lo : cta_lo);
    const int hi = static_cast<int>(visible.hi < cta_hi ? visible.hi : cta_hi);
    row_lo[t] = lo;
    row_hi[t] = hi > lo ? hi : lo;
    bias_row[t] = row.real && p.bias != nullptr ? p.bias_index.At(b, row.h, row.i, 0) : 0;
  }

  const T* k_head = static_cast<const T*>(p.k) + b * p.k_strides.batch + kv_h * p.k_strides.head;
  const T* v_head = static_cast<const T*>(p.v) + b * p.v_strides.batch + kv_h * p.v_strides.head;
  // Keys past cta_hi are zero-filled: V must be finite where P is 0.
  auto load_block = [&](int n) {
    const int stage = n % Shape::kStages;
    const int64_t kb = cta_lo + int64_t{n} * Shape::kBlockN;
    LoadKeyRows<Shape>(KTile<T, Shape>(ring, stage), k_head, p.k_strides.seq, kb, cta_hi,
                       p.head_dim);
    LoadKeyRows<Shape>(VTile<T, Shape>(ring, stage), v_head, p.v_strides.seq, kb, cta_hi,
                       p.v_head_dim);
  };

  // Prologue: Q with block 0 in the first group, then blocks 1 .. kStages - 2, one group each
  // (empty groups where there is no block, so that wait_group counts stay uniform).
  if (n_blocks > 0) LoadQueryRows<Shape>(q_tile, p, b, kv_h, row0);
#pragma unroll
  for (int n = 0; n < Shape::kStages - 1; ++n) {
    if (n < n_blocks) load_block(n);
    CpAsyncCommit();
  }

  float o[Shape::kOTiles][4];
#pragma unroll
  for (int d = 0; d < Shape::kOTiles; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max of the warp's keys, base-2 units
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum

  for (int n = 0; n < n_blocks; ++n) {
    // Block n has landed (groups 0..n done), and every warp is done with block n - 1, whose
    // stage block n + kStages - 1 now fills.
    CpAsyncWait<Shape::kStages - 2>();
    __syncthreads();
    if (n + Shape::kStages - 1 < n_blocks) load_block(n + Shape::kStages - 1);
    CpAsyncCommit();

    const T* k_tile = KTile<T, Shape>(ring, n % Shape::kStages);
    const T* v_tile = VTile<T, Shape>(ring, n % Shape::kStages);
    const int kw = cta_lo + n * Shape::kBlockN + fused_split::kWarpKeys * warp;  // warp's first key

    // S = Q·K_wᵀ: 16 rows × the warp's 16 keys (two n8 tiles).
    float s[2][4];
#pragma unroll
    for (int j = 0; j < 2; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < Shape::kDim / 16; ++kk) {
      uint32_t a[4];
      LdMatrixX4(a, q_tile + (lane % 16) * Shape::kStride + kk * 16 + (lane / 16) * 8);
      uint32_t bk[4];
      LdMatrixX4(bk, k_tile + (16 * warp + lane % 8 + (lane / 16) * 8) * Shape::kStride + kk * 16 +
                         ((lane / 8) % 2) * 8);
      Mma16816<T>(s[0], a, bk[0], bk[1]);
      Mma16816<T>(s[1], a, bk[2], bk[3]);
    }

    // Scale to base 2; add the bias and mask where needed.
    if (p.bias == nullptr && kw >= full_lo && kw + fused_split::kWarpKeys <= full_hi) {
#pragma unroll
      for (int j = 0; j < 2; ++j) {
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] *= p.scale_log2;
      }
    } else {
#pragma unroll
      for (int t = 0; t < 2; ++t) {
#pragma unroll
        for (int j = 0; j < 2; ++j) {
          const int key = kw + j * 8 + (lane % 4) * 2;  // this thread's two neighbouring keys
          const bool seen[2] = {key >= row_lo[t] && key < row_hi[t],
                                key + 1 >= row_lo[t] && key + 1 < row_hi[t]};
          float bias[2] = {0.0f, 0.0f};
          if (p.bias != nullptr) BiasPair(p, bias_row[t] + key * p.bias_index.col, seen, bias);
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float x = s[j][2 * t + e] * p.scale_log2 + bias[e] * kLog2e;
            s[j][2 * t + e] = seen[e] ? x : -INFINITY;
          }
        }
      }
    }

    // Online softmax over the warp's keys: new row max, rescale, exponentiate.
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      float block_max = fmaxf(
          m[t], fmaxf(fmaxf(s[0][2 * t], s[0][2 * t + 1]), fmaxf(s[1][2 * t], s[1][2 * t + 1])));
      block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 1));
      block_max = fmaxf(block_max, __shfl_xor_sync(0xffffffffu, block_max, 2));
      // A row that has seen nothing yet keeps max -inf; exponentiate against 0 so that its
      // -inf scores give 0 rather than NaN.
      const float base = block_max == -INFINITY ? 0.0f : block_max;
      const float rescale = Exp2(m[t] - base);
      m[t] = block_max;
      l[t] *= rescale;
#pragma unroll
      for (int d = 0; d < Shape::kOTiles; ++d) {
        o[d][2 * t] *= rescale;
        o[d][2 * t + 1] *= rescale;
      }
#pragma unroll
      for (int j = 0; j < 2; ++j) {
        s[j][2 * t] = Exp2(s[j][2 * t] - base);
        s[j][2 * t + 1] = Exp2(s[j][2 * t + 1] - base);
        l[t] += s[j][2 * t] + s[j][2 * t + 1];
      }
    }

    // O += P·V_w: the two S tiles are the A fragment of one k16 step.
    uint32_t a[4];
    a[0] = PackPair<T>(s[0][0], s[0][1]);
    a[1] = PackPair<T>(s[0][2], s[0][3]);
    a[2] = PackPair<T>(s[1][0], s[1][1]);
    a[3] = PackPair<T>(s[1][2], s[1][3]);
#pragma unroll
    for (int d = 0; d < Shape::kOTiles / 2; ++d) {
      uint32_t bv[4];
      LdMatrixX4Trans(bv, v_tile + (16 * warp + lane % 8 + ((lane / 8) % 2) * 8) * Shape::kStride +
                              d * 16 + (lane / 16) * 8);
      Mma16816<T>(o[2 * d], a, bv[0], bv[1]);
      Mma16816<T>(o[2 * d + 1], a, bv[2], bv[3]);
    }
  }
  // Every copy has landed and every warp is done with the ring: it becomes the merge buffer.
  CpAsyncWait<0>();
  __syncthreads();

  float* merge_o = reinterpret_cast<float*>(ring);                        // [kWarps, 16, kDim]
  float* merge_m = merge_o + Shape::kWarps * Shape::kRows * Shape::kDim;  // [kWarps, 16]
  float* merge_l = merge_m + Shape::kWarps * Shape::kRows;                // [kWarps, 16]
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    const int r = lane / 4 + 8 * t;
    float* o_row = merge_o + (warp * Shape::kRows + r) * Shape::kDim;
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) {
      *reinterpret_cast<float2*>(o_row + d * 8 + (lane % 4) * 2) =
          make_float2(o[d][2 * t], o[d][2 * t + 1]);
    }
    float sum = l[t];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (lane % 4 == 0) {
      merge_m[warp * Shape::kRows + r] = m[t];
      merge_l[warp * Shape::kRows + r] = sum;
    }
  }
  __syncthreads();

  // Per row: the split's max M and sum L over the warps; each warp's factor 2^(m_w - M) / L goes
  // where its m was, the split's LSE (base 2) where warp 0's l was.
  if (threadIdx.x < Shape::kRows) {
    const int r = threadIdx.x;
    float mw[Shape::kWarps];
    float lw[Shape::kWarps];
    float max_all = -INFINITY;
#pragma unroll
    for (int w = 0; w < Shape::kWarps; ++w) {
      mw[w] = merge_m[w * Shape::kRows + r];
      lw[w] = merge_l[w * Shape::kRows + r];
      max_all = fmaxf(max_all, mw[w]);
    }
    float sum_all = 0.0f;
    if (max_all != -INFINITY) {
#pragma unroll
      for (int w = 0; w < Shape::kWarps; ++w) sum_all += lw[w] * Exp2(mw[w] - max_all);
    }
    const bool any = sum_all > 0.0f;
#pragma unroll
    for (int w = 0; w < Shape::kWarps; ++w) {
      merge_m[w * Shape::kRows + r] = any ? Exp2(mw[w] - max_all) / sum_all : 0.0f;
    }
    merge_l[r] = any ? max_all + log2f(sum_all) : -INFINITY;
  }
  __syncthreads();

  // The split's partials for the CTA's real rows: O_s [Dv] per row, contiguous in the workspace.
  const int dv = p.v_head_dim;
  for (int idx = threadIdx.x; idx < Shape::kRows * dv; idx += Shape::kThreads) {
    const int r = idx / dv;
    const int col = idx % dv;
    const TileRow row = RowOf(p, kv_h, row0, r);
    if (!row.real) break;  // rows past group · Mq are the tile's last
    float value = 0.0f;
#pragma unroll
    for (int w = 0; w < Shape::kWarps; ++w) {
      value += merge_m[w * Shape::kRows + r] * merge_o[(w * Shape::kRows + r) * Shape::kDim + col];
    }
    const int64_t out_row = (b * p.q_heads + row.h) * p.q_len + row.i;
    sp.partial_o[(out_row * sp.splits + split) * dv + col] = value;
  }
  if (threadIdx.x < Shape::kRows) {
    const TileRow row = RowOf(p, kv_h, row0, threadIdx.x);
    if (row.real) {
      const int64_t out_row = (b * p.q_heads + row.h) * p.q_len + row.i;
      sp.partial_lse[out_row * sp.splits + split] = merge_l[threadIdx.x];
    }
  }
}

// The combine kernel's block: kCombineWarps rows, one per warp.
constexpr int kCombineWarps = 4;

template <class T>
__global__ void __launch_bounds__(32 * kCombineWarps) SplitKvCombineKernel(const SplitKvParams sp) {
  __shared__ float weights[kCombineWarps][kFusedMaxSplits];
  const FusedParams& p = sp.fused;
  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  const int64_t row = int64_t{blockIdx.x} * kCombineWarps + warp;  // (b·Hq + h)·Mq + i
  if (row >= sp.rows) return;  // the whole warp: row is warp-uniform

  const float* lse_s = sp.partial_lse + row * sp.splits;
  float max_lse = -INFINITY;
  for (int s = lane; s < sp.splits; s += 32) max_lse = fmaxf(max_lse, lse_s[s]);
#pragma unroll
  for (int x = 16; x >= 1; x /= 2)
    max_lse = fmaxf(max_lse, __shfl_xor_sync(0xffffffffu, max_lse, x));
  float sum = 0.0f;
  if (max_lse != -INFINITY) {
    for (int s = lane; s < sp.splits; s += 32) sum += Exp2(lse_s[s] - max_lse);
  }
#pragma unroll
  for (int x = 16; x >= 1; x /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, x);
  const bool any = max_lse != -INFINITY && sum > 0.0f;
  const float lse = any ? max_lse + log2f(sum) : -INFINITY;
  for (int s = lane; s < sp.splits; s += 32) {
    weights[warp][s] = any ? Exp2(lse_s[s] - lse) : 0.0f;
  }
  __syncwarp();

  const int64_t i = row % p.q_len;
  const int64_t h = (row / p.q_len) % p.q_heads;
  const int64_t b = row / (p.q_len * p.q_heads);
  T* out_row = static_cast<T*>(p.out) + p.out_strides.Row(b, i, h);
  const float* o_s = sp.partial_o + row * sp.splits * p.v_head_dim;
  for (int x = 2 * lane; x < p.v_head_dim; x += 64) {
    float acc0 = 0.0f;
    float acc1 = 0.0f;
    for (int s = 0; s < sp.splits; ++s) {
      const float w = weights[warp][s];
      if (w == 0.0f) continue;  // a split that saw no key of the row (or a negligible one)
      const float2 v = *reinterpret_cast<const float2*>(o_s + s * p.v_head_dim + x);
      acc0 += w * v.x;
      acc1 += w * v.y;
    }
    *reinterpret_cast<uint32_t*>(out_row + x) = PackPair<T>(acc0, acc1);
  }
  if (p.lse != nullptr && lane == 0) p.lse[row] = any ? lse * kLn2 : -INFINITY;
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_SPLIT_KV_CUH_
