// The fused forward kernel: O = softmax(scale·Q·Kᵀ + bias + mask)·V with the scores kept in
// registers (FlashAttention-2's schedule on mma.sync tensor cores, sm_80 and later).
//
// One CTA of kWarps warps owns kBlockM = 16·kWarps query rows of one (batch, head); each warp owns
// 16 of them. The CTA walks the keys its rows can see in blocks of kBlockN:
//   shared memory   Q [kBlockM, kDim], K and V [kBlockN, kDim] × 2 stages (cp.async, the next
//                   block loads while this one computes); rows padded by 16 bytes so that the 8
//                   rows of every ldmatrix fall in different banks
//   registers       S [16, kBlockN] f32 per warp → masked, biased, exponentiated in place (base 2)
//                   → packed to 16 bits as the A operand of P·V; O [16, kDim] f32 per warp; the
//                   running max m and sum l of the thread's two rows
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
#include "kernels/cuda/fused/fused_params.h"
#include "kernels/cuda/fused/mma.cuh"
#include "kernels/mask.h"

namespace attnd::kernels::cuda::fused {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

template <int kDim_, int kWarps_, int kBlockN_>
struct TileShape {
  static constexpr int kDim = kDim_;
  static constexpr int kWarps = kWarps_;
  static constexpr int kBlockN = kBlockN_;
  static constexpr int kBlockM = 16 * kWarps;
  static constexpr int kThreads = 32 * kWarps;
  static constexpr int kStride = kDim + 8;  // shared row stride in elements (+16 bytes)
  static constexpr int kChunks = kDim / 8;  // 16-byte pieces per row
  static constexpr int kQElems = kBlockM * kStride;
  static constexpr int kKvElems = kBlockN * kStride;
  static constexpr int kSTiles = kBlockN / 8;  // n8 tiles of a warp's S
  static constexpr int kOTiles = kDim / 8;     // n8 tiles of a warp's O
  static_assert(kDim % 16 == 0 && kBlockN % 16 == 0, "mma k-steps are 16 wide");
  template <class T>
  static constexpr int SmemBytes() {
    return (kQElems + 4 * kKvElems) * static_cast<int>(sizeof(T));  // Q, 2 × K, 2 × V
  }
};

// 2^x, approximate (ex2.approx: about 2 ulp); 2^-inf = 0.
__device__ __forceinline__ float Exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Starts copying rows [row0, row0 + rows) of head h of batch element b into a shared tile,
// zero-filling rows at or past `limit` and the columns from `dim` to kDim.
template <class Shape, class T>
__device__ __forceinline__ void LoadRows(T* tile, const T* base, const SeqHeadStrides& s,
                                         int64_t b, int64_t h, int64_t row0, int rows,
                                         int64_t limit, int dim) {
  for (int c = threadIdx.x; c < rows * Shape::kChunks; c += Shape::kThreads) {
    const int r = c / Shape::kChunks;
    const int col = (c % Shape::kChunks) * 8;
    const bool valid = row0 + r < limit && col < dim;
    const T* src = valid ? base + s.Row(b, row0 + r, h) + col : base;
    CpAsync16(tile + r * Shape::kStride + col, src, valid);
  }
}

template <class T, class Shape>
__global__ void __launch_bounds__(Shape::kThreads) FusedForwardKernel(const FusedParams p) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* q_tile = reinterpret_cast<T*>(smem);
  T* k_tiles = q_tile + Shape::kQElems;             // stage s at k_tiles + s · kKvElems
  T* v_tiles = k_tiles + 2 * Shape::kKvElems;

  const int warp = threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  // Causal rows late in the sequence see the most keys: launch them first.
  const int64_t q0 = static_cast<int64_t>(gridDim.x - 1 - blockIdx.x) * Shape::kBlockM;
  const int64_t h = blockIdx.y;
  const int64_t b = blockIdx.z;
  const int64_t kv_h = h / p.group;
  const int64_t q_last = (q0 + Shape::kBlockM < p.q_len ? q0 + Shape::kBlockM : p.q_len) - 1;

  int64_t valid_keys = p.kv_len;
  if (p.kv_lengths != nullptr) {
    valid_keys = p.kv_lengths[b];
    valid_keys = valid_keys < 0 ? 0 : (valid_keys > p.kv_len ? p.kv_len : valid_keys);
  }
  const KeyRange first_row = p.mask.Visible(q0, valid_keys);
  const KeyRange last_row = p.mask.Visible(q_last, valid_keys);
  const int64_t key_lo = first_row.lo;
  const int64_t key_hi = last_row.hi > key_lo ? last_row.hi : key_lo;
  const int n_blocks = static_cast<int>((key_hi - key_lo + Shape::kBlockN - 1) / Shape::kBlockN);

  // The thread's two rows (fragment rows lane/4 and lane/4 + 8 of its warp's 16).
  int64_t row[2];
  KeyRange visible[2];
  for (int t = 0; t < 2; ++t) {
    row[t] = q0 + 16 * warp + lane / 4 + 8 * t;
    visible[t] = row[t] < p.q_len ? p.mask.Visible(row[t], valid_keys) : KeyRange{0, 0};
  }

  const T* q = static_cast<const T*>(p.q);
  const T* k = static_cast<const T*>(p.k);
  const T* v = static_cast<const T*>(p.v);
  if (n_blocks > 0) {
    LoadRows<Shape>(q_tile, q, p.q_strides, b, h, q0, Shape::kBlockM, p.q_len, p.head_dim);
    LoadRows<Shape>(k_tiles, k, p.k_strides, b, kv_h, key_lo, Shape::kBlockN, key_hi, p.head_dim);
    LoadRows<Shape>(v_tiles, v, p.v_strides, b, kv_h, key_lo, Shape::kBlockN, key_hi,
                    p.v_head_dim);
  }
  CpAsyncCommit();

  float o[Shape::kOTiles][4];
  for (int d = 0; d < Shape::kOTiles; ++d) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
  float m[2] = {-INFINITY, -INFINITY};  // running max, base-2 units
  float l[2] = {0.0f, 0.0f};            // this thread's share of the running sum

  const T* q_warp = q_tile + 16 * warp * Shape::kStride;
  for (int n = 0; n < n_blocks; ++n) {
    const int stage = n & 1;
    const int64_t kb = key_lo + static_cast<int64_t>(n) * Shape::kBlockN;
    if (n + 1 < n_blocks) {
      const int next = stage ^ 1;
      LoadRows<Shape>(k_tiles + next * Shape::kKvElems, k, p.k_strides, b, kv_h,
                      kb + Shape::kBlockN, Shape::kBlockN, key_hi, p.head_dim);
      LoadRows<Shape>(v_tiles + next * Shape::kKvElems, v, p.v_strides, b, kv_h,
                      kb + Shape::kBlockN, Shape::kBlockN, key_hi, p.v_head_dim);
    }
    CpAsyncCommit();
    CpAsyncWait<1>();  // every group but the newest has landed: Q and block n
    __syncthreads();
    const T* k_tile = k_tiles + stage * Shape::kKvElems;
    const T* v_tile = v_tiles + stage * Shape::kKvElems;

    // S = Q·Kᵀ for the warp's 16 rows and the block's kBlockN keys.
    float s[Shape::kSTiles][4];
    for (int j = 0; j < Shape::kSTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < Shape::kDim / 16; ++kk) {
      uint32_t a[4];
      LdMatrixX4(a, q_warp + (lane % 16) * Shape::kStride + kk * 16 + (lane / 16) * 8);
#pragma unroll
      for (int j = 0; j < Shape::kSTiles / 2; ++j) {
        uint32_t bk[4];
        LdMatrixX4(bk, k_tile + (j * 16 + lane % 8 + (lane / 16) * 8) * Shape::kStride +
                           kk * 16 + ((lane / 8) % 2) * 8);
        Mma16816<T>(s[2 * j], a, bk[0], bk[1]);
        Mma16816<T>(s[2 * j + 1], a, bk[2], bk[3]);
      }
    }

    // Scale to base 2, add the bias, mask. A block inside every row's keys skips the test.
    const bool whole = kb >= last_row.lo && kb + Shape::kBlockN <= first_row.hi;
#pragma unroll
    for (int j = 0; j < Shape::kSTiles; ++j) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int t = e / 2;
        const int64_t key = kb + j * 8 + (lane % 4) * 2 + (e % 2);
        const bool seen = whole ? row[t] < p.q_len : key >= visible[t].lo && key < visible[t].hi;
        float x = s[j][e] * p.scale_log2;
        if (seen && p.bias != nullptr) {
          x += LoadElem(p.bias, p.bias_dtype, p.bias_index.At(b, h, row[t], key)) * kLog2e;
        }
        s[j][e] = seen ? x : -INFINITY;
      }
    }

    // Online softmax: new row max, rescale what came before, exponentiate the block.
#pragma unroll
    for (int t = 0; t < 2; ++t) {
      float block_max = m[t];
#pragma unroll
      for (int j = 0; j < Shape::kSTiles; ++j) {
        block_max = fmaxf(block_max, fmaxf(s[j][2 * t], s[j][2 * t + 1]));
      }
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
      for (int j = 0; j < Shape::kSTiles; ++j) {
        s[j][2 * t] = Exp2(s[j][2 * t] - base);
        s[j][2 * t + 1] = Exp2(s[j][2 * t + 1] - base);
        l[t] += s[j][2 * t] + s[j][2 * t + 1];
      }
    }

    // O += P·V: the S fragments of key tiles 2kk and 2kk + 1 are the A fragment of k-step kk.
#pragma unroll
    for (int kk = 0; kk < Shape::kBlockN / 16; ++kk) {
      const uint32_t a[4] = {PackPair<T>(s[2 * kk][0], s[2 * kk][1]),
                             PackPair<T>(s[2 * kk][2], s[2 * kk][3]),
                             PackPair<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]),
                             PackPair<T>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
#pragma unroll
      for (int d = 0; d < Shape::kOTiles / 2; ++d) {
        uint32_t bv[4];
        LdMatrixX4Trans(bv, v_tile + (kk * 16 + lane % 8 + ((lane / 8) % 2) * 8) * Shape::kStride +
                                d * 16 + (lane / 16) * 8);
        Mma16816<T>(o[2 * d], a, bv[0], bv[1]);
        Mma16816<T>(o[2 * d + 1], a, bv[2], bv[3]);
      }
    }
    __syncthreads();  // the stage is refilled two blocks on
  }
  CpAsyncWait<0>();

  // O / l and the LSE; the four lanes of a row hold parts of its sum.
  T* out = static_cast<T*>(p.out);
#pragma unroll
  for (int t = 0; t < 2; ++t) {
    float sum = l[t];
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    sum += __shfl_xor_sync(0xffffffffu, sum, 2);
    if (row[t] >= p.q_len) continue;
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    T* out_row = out + p.out_strides.Row(b, row[t], h);
#pragma unroll
    for (int d = 0; d < Shape::kOTiles; ++d) {
      const int col = d * 8 + (lane % 4) * 2;
      if (col < p.v_head_dim) {
        *reinterpret_cast<uint32_t*>(out_row + col) =
            PackPair<T>(o[d][2 * t] * inv, o[d][2 * t + 1] * inv);
      }
    }
    if (p.lse != nullptr && lane % 4 == 0) {
      p.lse[(b * p.q_heads + h) * p.q_len + row[t]] =
          sum > 0.0f ? (m[t] + log2f(sum)) * kLn2 : -INFINITY;
    }
  }
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_KERNEL_CUH_
