// The fused forward kernel: O = softmax(scale·Q·Kᵀ + bias + mask)·V with the scores kept in
// registers (FlashAttention-2's schedule on mma.sync tensor cores, sm_80 and later).
//
// One CTA of kWarps warps owns kBlockM = 16·kMTiles·kWarps query rows of one (batch, head); each
// warp owns kMTiles 16-row m-tiles of them, so every K and V fragment it reads from shared memory
// feeds kMTiles mma's. The CTA walks the keys its rows can see in blocks of kBlockN:
//   shared memory   Q [kBlockM, kDim], K and V [kBlockN, kDim], loaded with cp.async: V_n while
//                   S = Q·K_nᵀ is computed, K_{n+1} during the softmax and P·V_n (two barriers
//                   per block); rows padded by 16 bytes so that the 8 rows of every ldmatrix
//                   fall in different banks
//                   With a bias: two tiles of it [kBlockM, kBlockN] in its own dtype, block
//                   n+1's loading (cp.async) during block n
//   registers       S [16, kBlockN] f32 per m-tile, started at bias/scale rather than 0 (so
//                   scale·S is scale·Q·Kᵀ + bias with no per-score bias work later) → masked,
//                   exponentiated in place
//                   (base 2) → packed to 16 bits as the A operand of P·V; O [16, kDim] f32 per
//                   m-tile; the running max m and sum l of the thread's 2·kMTiles rows
// Head dims D ≤ kDim (multiples of 8) are zero-padded up to kDim on load: the padding adds 0 to
// Q·Kᵀ and gives output columns that are never stored.
//
// Masking follows kernels/mask.h: row i sees keys [lo_i, hi_i), both non-decreasing in i, so a
// CTA's keys are [lo of its first row, hi of its last row), and a key block inside
// [lo of its last row, hi of its first row) needs no per-element test. Rows that see no key
// write 0 and LSE -inf. kv_lengths come from device memory, so each CTA reads its own.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_KERNEL_CUH_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_KERNEL_CUH_

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>

#include <cstdint>

#include "kernels/cuda/elem_io.h"
#include "kernels/cuda/fused/cta_rows.h"
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"
#include "kernels/mask.h"

namespace attnd::kernels::cuda::fused {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int kDim_, int kWarps_, int kMTiles_, int kBlockN_>
struct TileShape {
  static constexpr int kDim = kDim_;
  static constexpr int kWarps = kWarps_;
  static constexpr int kMTiles = kMTiles_;  // 16-row m-tiles per warp: K/V fragments serve all
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kWarpRows = 16 * kMTiles;
  static constexpr int kBlockM = kWarpRows * kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStride = kDim + 8;  // shared row stride in elements (+16 bytes)
  static constexpr int kChunks = kDim / 8;  // 16-byte pieces per row
  static constexpr int kQElems = kBlockM * kStride;
  static constexpr int kKvElems = kBlockN * kStride;
  static constexpr int kSTiles = kBlockN / 8;  // n8 tiles of an m-tile's S
  static constexpr int kOTiles = kDim / 8;     // n8 tiles of an m-tile's O
  static constexpr int kRows = 2 * kMTiles;    // rows a thread holds (two per m-tile)
  static_assert(kDim % 16 == 0 && kBlockN % 16 == 0, "mma k-steps are 16 wide");
  template <class T>
  __host__ __device__ static constexpr int SmemBytes() {
    return (kQElems + 2 * kKvElems) * static_cast<int>(sizeof(T));  // Q, K, V
  }
  // A bias tile row in bytes for elements of `elem` bytes: the block's keys and up to 7 before
  // them (a row is copied from its first key's 16-byte piece), a multiple of 16.
  __host__ __device__ static constexpr int BiasPitch(int elem) { return (kBlockN + 8) * elem; }
  __host__ __device__ static constexpr int BiasTileBytes(int elem) {
    return kBlockM * BiasPitch(elem);
  }
  // Q, K, V and, for a bias of `bias_elem`-byte elements, its two tiles and their row shifts.
  template <class T>
  __host__ __device__ static constexpr int SmemBytesWithBias(int bias_elem) {
    return SmemBytes<T>() + 2 * BiasTileBytes(bias_elem) + 2 * kBlockM;
  }
};

// 2^x, approximate (ex2.approx: about 2 ulp); 2^-inf = 0.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// x, hidden from the optimizer (no hoisting of what depends on it).
__device__ __forceinline__ int64_t Opaque(int64_t x) {
  int64_t y;
  asm volatile("mov.b64 %0, %1;\n" : "=l"(y) : "l"(x));
  return y;
}
__device__ __forceinline__ int Opaque(int x) {
  int y;
  asm volatile("mov.b32 %0, %1;\n" : "=r"(y) : "r"(x));
  return y;
}

// Bytes of one bias element.
__device__ __forceinline__ int BiasElemBytes(const FusedParams& p) {
  return p.bias_dtype == DType::kF32 ? 4 : 2;
}

// One 16-byte piece of a bias tile: the tensor's bytes [from, from + 16) by cp.async (zeros
// where `valid` is false or the piece lies past the tensor's end), for the caller to commit.
__device__ __forceinline__ void CopyBiasPiece(unsigned char* to, const unsigned char* base,
                                              int64_t from, int64_t bias_bytes, bool valid) {
  const int64_t left = bias_bytes - from;
  const int bytes = !valid || left <= 0 ? 0 : (left < 16 ? static_cast<int>(left) : 16);
  if (bytes == 0 || bytes == 16) {
    CpAsyncPrefix16(to, base + (bytes > 0 ? from : 0), bytes);
  } else {
    // The tensor's last piece, short: a cp.async of it is a 16-byte access past the tensor's
    // end (compute-sanitizer memcheck reports it, H100 2026-12-07), so plain 2-byte loads
    // (bytes is a multiple of 2), the rest zeroed; the tile is read after the same barrier.
    const uint16_t* src = reinterpret_cast<const uint16_t*>(base + from);
    uint16_t* dst = reinterpret_cast<uint16_t*>(to);
#pragma unroll
    for (int i = 0; i < 8; ++i) dst[i] = 2 * i < bytes ? src[i] : uint16_t{0};
  }
}

// Copies the bias of query rows [q0, q0 + kBlockM) and keys [kb, kb + kBlockN) of the CTA's
// (batch, head) into a tile (only its first row when the bias is broadcast over queries), by
// 16-byte cp.async pieces the caller commits and waits for. A row's elements need not be
// 16-byte aligned (any Mk, any first key): each row copies the kBlockN + 8 elements from its
// first element's 16-byte piece, and `shifts[r]` records where that element landed in it
// (0-7). A bias broadcast over keys copies the piece of its one element per row. Pieces past
// the tensor's end are zero-filled, as are rows past the last query (masked anyway), and the
// tensor's short last piece is copied by plain loads, never read past its end; what is
// copied past Mk within the tensor belongs to later rows and is masked too. b, h and q0 come
// from the block index (special registers): nothing stays live across the key loop for this.
template <class Shape>
__device__ __forceinline__ void LoadBiasTile(unsigned char* tile, uint8_t* shifts,
                                             const FusedParams& p, int kb_in) {
  const int kb = Opaque(kb_in);
  const int64_t b = blockIdx.z;
  const int64_t h = blockIdx.y;
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int elem = BiasElemBytes(p);
  const CtaRows seq = RowsOf(p, Opaque(b));  // read again, not held across the key loop
  const int rows = p.bias_index.row == 0 ? 1 : Shape::kBlockM;
  const int pieces_per_row = p.bias_index.col == 0 ? 1 : Shape::BiasPitch(elem) / 16;
  const unsigned char* base = static_cast<const unsigned char*>(p.bias);
#pragma unroll 1
  for (int c = static_cast<int>(threadIdx.x); c < rows * pieces_per_row; c += Shape::kThreads) {
    const int r = c / pieces_per_row;
    const int piece = c % pieces_per_row;
    // A bias broadcast over queries has one row, read for any of the sequence's rows.
    const int64_t row = rows == 1 ? seq.row_lo : q0 + r;
    const bool row_valid = seq.Has(row);
    const int64_t first = row_valid ? p.bias_index.At(b, h, row - seq.row_lo, kb) * elem : 0;
    const int64_t from = (first & ~int64_t{15}) + 16 * piece;
    if (piece == 0) shifts[r] = static_cast<uint8_t>((first & 15) / elem);
    CopyBiasPiece(tile + r * Shape::BiasPitch(elem) + 16 * piece, base, from, p.bias_bytes,
                  row_valid);
  }
}

// A bias element of a tile row as a float.
__device__ __forceinline__ float TileBias(const unsigned char* at, DType dtype) {
  if (dtype == DType::kF32) return *reinterpret_cast<const float*>(at);
  const uint16_t bits = *reinterpret_cast<const uint16_t*>(at);
  return dtype == DType::kBF16 ? Bf16BitsToFloat(bits) : F16BitsToFloat(bits);
}

// The bias of two neighbouring keys starting at element `at` (where seen): one 32-bit load when
// both are seen, 16-bit and contiguous and aligned (the dense case), else one load each.
__device__ __forceinline__ void BiasPair(const FusedParams& p, int64_t at, const bool (&seen)[2],
                                         float (&bias)[2]) {
  if (seen[0] && seen[1] && p.bias_index.col == 1 && p.bias_dtype != DType::kF32 && at % 2 == 0 &&
      reinterpret_cast<uintptr_t>(p.bias) % 4 == 0) {
    const uint32_t pair = __ldg(reinterpret_cast<const uint32_t*>(
        static_cast<const uint16_t*>(p.bias) + at));
    const uint16_t lo = static_cast<uint16_t>(pair & 0xffffu);
    const uint16_t hi = static_cast<uint16_t>(pair >> 16);
    if (p.bias_dtype == DType::kBF16) {
      bias[0] = Bf16BitsToFloat(lo);
      bias[1] = Bf16BitsToFloat(hi);
    } else {
      bias[0] = F16BitsToFloat(lo);
      bias[1] = F16BitsToFloat(hi);
    }
    return;
  }
  if (seen[0]) bias[0] = LoadElem(p.bias, p.bias_dtype, at);
  if (seen[1]) bias[1] = LoadElem(p.bias, p.bias_dtype, at + p.bias_index.col);
}

// Thread row r of a warp's 2·kMTiles rows, from the warp's first row plus lane/4.
__device__ __forceinline__ int RowOffset(int r) { return 16 * (r / 2) + 8 * (r % 2); }

// Starts copying rows [row0, row0 + rows) of head h of batch element b into a shared tile,
// zero-filling rows at or past `limit` (and, with kFloor, rows before `floor`: another ragged
// sequence's) and the columns from `dim` to kDim.
// The copies' addresses are recomputed for every block on purpose: `seq_stride` and `dim` pass
// through Opaque so the compiler cannot hoist one 64-bit address per copy out of the key loop
// (16 copies per thread at D 256 would hold 32 registers the accumulators need).
template <class Shape, int kTileRows, bool kFloor = false, class T>
__device__ __forceinline__ void LoadRows(T* tile, const T* head_base, int64_t seq_stride_in,
                                         int64_t row0, int64_t limit, int dim_in,
                                         int64_t floor = 0) {
  constexpr int kCopies = kTileRows * Shape::kChunks;
  const int64_t seq_stride = Opaque(seq_stride_in);
  const int dim = Opaque(dim_in);
#pragma unroll
  for (int i = 0; i < (kCopies + Shape::kThreads - 1) / Shape::kThreads; ++i) {
    const int c = static_cast<int>(threadIdx.x) + i * Shape::kThreads;
    if (kCopies % Shape::kThreads != 0 && c >= kCopies) break;
    const int r = c / Shape::kChunks;
    const int col = (c % Shape::kChunks) * 8;
    const bool valid = row0 + r < limit && (!kFloor || row0 + r >= floor) && col < dim;
    const T* src = valid ? head_base + (row0 + r) * seq_stride + col : head_base;
    CpAsync16(tile + r * Shape::kStride + col, src, valid);
  }
}

template <class T, class Shape>
__global__ void __launch_bounds__(Shape::kThreads) FusedForwardKernel(const FusedParams p) {
  constexpr int kM = Shape::kMTiles;
  extern __shared__ __align__(16) unsigned char smem[];
  T* q_tile = reinterpret_cast<T*>(smem);
  T* k_tile = q_tile + Shape::kQElems;
  T* v_tile = k_tile + Shape::kKvElems;

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
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

  // The thread's rows are row_base + RowOffset(r): fragment rows lane/4 and lane/4 + 8 of each
  // of its warp's m-tiles. (Recomputed where needed rather than held: registers are the limit.)
  const int row_base = static_cast<int>(q0) + Shape::kWarpRows * warp + lane / 4;

  const T* q_head = static_cast<const T*>(p.q) + b * p.q_strides.batch + h * p.q_strides.head;
  const T* k_head = static_cast<const T*>(p.k) + b * p.k_strides.batch +
                    seq.kv_row0 * p.k_strides.seq + kv_h * p.k_strides.head;
  const T* v_head = static_cast<const T*>(p.v) + b * p.v_strides.batch +
                    seq.kv_row0 * p.v_strides.seq + kv_h * p.v_strides.head;
  // Bias tile t (0 or 1), after Q, K and V, and its rows' shifts after both tiles: block n reads
  // tile n % 2 while n + 1's loads.
  const auto bias_tile = [&](int t) {
    return smem + Shape::template SmemBytes<T>() + t * Shape::BiasTileBytes(BiasElemBytes(p));
  };
  const auto bias_shifts = [&](int t) {
    return reinterpret_cast<uint8_t*>(bias_tile(2)) + t * Shape::kBlockM;
  };
  if (n_blocks > 0) {
    // q_head is the head's row 0: kernel row r is its row r + q_shift.
    LoadRows<Shape, Shape::kBlockM, true>(q_tile, q_head, p.q_strides.seq, q0 + seq.q_shift,
                                          seq.row_hi + seq.q_shift, p.head_dim,
                                          seq.row_lo + seq.q_shift);
    LoadRows<Shape, Shape::kBlockN>(k_tile, k_head, p.k_strides.seq, key_lo, key_hi, p.head_dim);
    if (p.bias != nullptr) LoadBiasTile<Shape>(bias_tile(0), bias_shifts(0), p, key_lo);
  }
  CpAsyncCommit();

  float o[kM][Shape::kOTiles][4];
#pragma unroll
  for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) o[mt][d][0] = o[mt][d][1] = o[mt][d][2] = o[mt][d][3] = 0.0f;
  }
  float m[Shape::kRows];  // running max, base-2 units
  float l[Shape::kRows];  // this thread's share of the running sum
#pragma unroll
  for (int r = 0; r < Shape::kRows; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
  }

  const T* q_warp = q_tile + Shape::kWarpRows * warp * Shape::kStride;
  for (int n = 0; n < n_blocks; ++n) {
    const int kb = key_lo + n * Shape::kBlockN;
    // K_n and bias tile n have landed and every warp is done with V_{n-1} and bias tile n-1:
    // V_n and bias tile n+1 load while S is computed (the bias then has a whole block).
    CpAsyncWait<0>();
    __syncthreads();
    LoadRows<Shape, Shape::kBlockN>(v_tile, v_head, p.v_strides.seq, kb, key_hi, p.v_head_dim);
    if (p.bias != nullptr && n + 1 < n_blocks) {
      LoadBiasTile<Shape>(bias_tile((n + 1) % 2), bias_shifts((n + 1) % 2), p,
                          kb + Shape::kBlockN);
    }
    CpAsyncCommit();

    // S = Q·Kᵀ for the warp's rows and the block's kBlockN keys; each K fragment serves every
    // m-tile of the warp. With a bias S starts at bias / scale (bias_to_acc), so that
    // scale·log2(e)·S below is the biased score in base 2; without, at 0.
    float s[kM][Shape::kSTiles][4];
    if (p.bias != nullptr) {
      const int elem = BiasElemBytes(p);
      const int key_step = elem * static_cast<int>(p.bias_index.col);  // 0: broadcast over keys
#pragma unroll
      for (int r = 0; r < Shape::kRows; ++r) {
        const int tile_row =
            p.bias_index.row == 0 ? 0 : Shape::kWarpRows * warp + lane / 4 + RowOffset(r);
        const unsigned char* row = bias_tile(n % 2) + tile_row * Shape::BiasPitch(elem) +
                                   bias_shifts(n % 2)[tile_row] * elem;
#pragma unroll
        for (int j = 0; j < Shape::kSTiles; ++j) {
          const int col = j * 8 + (lane % 4) * 2;
          s[r / 2][j][2 * (r % 2)] = TileBias(row + col * key_step, p.bias_dtype) * p.bias_to_acc;
          s[r / 2][j][2 * (r % 2) + 1] =
              TileBias(row + (col + 1) * key_step, p.bias_dtype) * p.bias_to_acc;
        }
      }
    } else {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
        for (int j = 0; j < Shape::kSTiles; ++j) {
          s[mt][j][0] = s[mt][j][1] = s[mt][j][2] = s[mt][j][3] = 0.0f;
        }
      }
    }
#pragma unroll
    for (int kk = 0; kk < Shape::kDim / 16; ++kk) {
      uint32_t a[kM][4];
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        LdMatrixX4(a[mt], q_warp + (16 * mt + lane % 16) * Shape::kStride + kk * 16 +
                              (lane / 16) * 8);
      }
#pragma unroll
      for (int j = 0; j < Shape::kSTiles / 2; ++j) {
        uint32_t bk[4];
        LdMatrixX4(bk, k_tile + (j * 16 + lane % 8 + (lane / 16) * 8) * Shape::kStride +
                           kk * 16 + ((lane / 8) % 2) * 8);
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) {
          Mma16816<T>(s[mt][2 * j], a[mt], bk[0], bk[1]);
          Mma16816<T>(s[mt][2 * j + 1], a[mt], bk[2], bk[3]);
        }
      }
    }

    // V_n has landed and every warp is done with K_n: K_{n+1} loads during softmax and P·V.
    CpAsyncWait<0>();
    __syncthreads();
    if (n + 1 < n_blocks) {
      LoadRows<Shape, Shape::kBlockN>(k_tile, k_head, p.k_strides.seq, kb + Shape::kBlockN, key_hi,
                                      p.head_dim);
    }
    CpAsyncCommit();

    // Scale to base 2 (the bias is in S already); mask where needed. A block inside every row's
    // keys (the common case) only scales.
    const bool whole = kb >= all_lo && kb + Shape::kBlockN <= all_hi;
    if (whole) {
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
#pragma unroll
        for (int j = 0; j < Shape::kSTiles; ++j) {
#pragma unroll
          for (int e = 0; e < 4; ++e) s[mt][j][e] *= p.scale_log2;
        }
      }
    } else {
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
        const int t = r % 2;
#pragma unroll
        for (int j = 0; j < Shape::kSTiles; ++j) {
          const int col = j * 8 + (lane % 4) * 2;  // this thread's two neighbouring keys
          const bool seen[2] = {col >= lo && col < hi, col + 1 >= lo && col + 1 < hi};
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float x = s[mt][j][2 * t + e] * p.scale_log2;
            s[mt][j][2 * t + e] = seen[e] ? x : -INFINITY;
          }
        }
      }
    }

    // Online softmax: new row max, rescale what came before, exponentiate the block.
#pragma unroll
    for (int r = 0; r < Shape::kRows; ++r) {
      const int mt = r / 2;
      const int t = r % 2;
      float block_max = m[r];
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        block_max = fmaxf(block_max, fmaxf(s[mt][j][2 * t], s[mt][j][2 * t + 1]));
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
        o[mt][d][2 * t] *= rescale;
        o[mt][d][2 * t + 1] *= rescale;
      }
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        s[mt][j][2 * t] = Exp2(s[mt][j][2 * t] - base);
        s[mt][j][2 * t + 1] = Exp2(s[mt][j][2 * t + 1] - base);
        l[r] += s[mt][j][2 * t] + s[mt][j][2 * t + 1];
      }
    }

    // O += P·V: the S fragments of key tiles 2kk and 2kk + 1 are the A fragment of k-step kk;
    // each V fragment serves every m-tile.
#pragma unroll
    for (int kk = 0; kk < Shape::kBlockN / 16; ++kk) {
      uint32_t a[kM][4];
#pragma unroll
      for (int mt = 0; mt < kM; ++mt) {
        a[mt][0] = PackPair<T>(s[mt][2 * kk][0], s[mt][2 * kk][1]);
        a[mt][1] = PackPair<T>(s[mt][2 * kk][2], s[mt][2 * kk][3]);
        a[mt][2] = PackPair<T>(s[mt][2 * kk + 1][0], s[mt][2 * kk + 1][1]);
        a[mt][3] = PackPair<T>(s[mt][2 * kk + 1][2], s[mt][2 * kk + 1][3]);
      }
#pragma unroll
      for (int d = 0; d < Shape::kOTiles / 2; ++d) {
        uint32_t bv[4];
        LdMatrixX4Trans(bv, v_tile + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * Shape::kStride +
                                d * 16 + (lane / 16) * 8);
#pragma unroll
        for (int mt = 0; mt < kM; ++mt) {
          Mma16816<T>(o[mt][2 * d], a[mt], bv[0], bv[1]);
          Mma16816<T>(o[mt][2 * d + 1], a[mt], bv[2], bv[3]);
        }
      }
    }
  }
  CpAsyncWait<0>();

  // O / l and the LSE; the four lanes of a row hold parts of its sum.
  T* out = static_cast<T*>(p.out);
  // Read again (Opaque: not the prologue's loads reused), so nothing of it stayed live
  // across the key loop.
  const CtaRows rows = RowsOf(p, Opaque(b));
#pragma unroll
  for (int r = 0; r < Shape::kRows; ++r) {
    const int mt = r / 2;
    const int t = r % 2;
    const int i = row_base + RowOffset(r);
    float sum = l[r];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (!rows.Has(i)) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    T* out_row = out + p.out_strides.Row(b, i + rows.q_shift, h);
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) {
      const int col = d * 8 + (lane % 4) * 2;
      if (col < p.v_head_dim) {
        *reinterpret_cast<uint32_t*>(out_row + col) =
            PackPair<T>(o[mt][d][2 * t] * inv, o[mt][d][2 * t + 1] * inv);
      }
    }
    if (p.lse != nullptr && lane % 4 == 0) {
      p.lse[rows.LseIndex(h, i)] =
          sum > 0.0f ? (m[r] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_KERNEL_CUH_
