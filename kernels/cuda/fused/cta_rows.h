// Which query rows and keys one CTA's (batch element or ragged sequence) b has, for the one-pass
// fused kernels (fused_kernel.cuh, fused_f32_kernel.cuh).
//
// Dense: batch element b has rows [0, Mq) and its keys [0, Mk_b) (kv_lengths[b] clamped, or Mk).
//
// Ragged (p.q_offsets set; kernels/problem.h): sequence b owns packed query rows
// [q_offsets[b], q_offsets[b+1]) and key rows [kv_offsets[b], kv_offsets[b+1]); p.q_len and
// p.kv_len are the longest sequence's lengths and the batch strides are 0. The kernels keep one
// row coordinate and one mask for every sequence (p.mask aligns with p.q_len): sequence b's
// Mq_b rows are placed at kernel rows [shift, shift + Mq_b) with
//   shift = 0              causal top-left (row i sees keys j <= i: no length in it)
//   shift = Mq - Mq_b      otherwise (bottom-right and the window align row i at i + Mk_b - Mq_b,
//                          and (i + shift) + Mk_b - Mq = i + Mk_b - Mq_b)
// so p.mask.Visible(kernel row, Mk_b) is the sequence's own mask. Kernel row r is packed row
// r + q_shift. Kernel rows outside [row_lo, row_hi) are neither loaded nor stored; the loop may
// compute them (they are zeros) and throws them away, which keeps the loop free of per-sequence
// values: only the prologue and the epilogue call RowsOf, each reading the offsets again rather
// than holding them in registers across the key loop.
//
// Plain C++ callable on the host too (tests/gpu/fused_rows_test.cc checks the placement there).
//
// Offsets are trusted like kv_lengths: a sequence's lengths are clamped into [0, Mq] and
// [0, Mk], but the offsets themselves must lie in the packed tensors (the host checks them with
// ValidateSequenceOffsets before they reach a device).
#ifndef ATTND_KERNELS_CUDA_FUSED_CTA_ROWS_H_
#define ATTND_KERNELS_CUDA_FUSED_CTA_ROWS_H_

#include <cstdint>

#include "kernels/cuda/fused/fused_params.h"
#include "kernels/mask.h"  // ATTND_HOST_DEVICE
#include "kernels/problem.h"

// Inlined into the kernels (forceinline), plain inline on the host.
#if defined(__CUDACC__)
#define ATTND_ROWS_INLINE __host__ __device__ __forceinline__
#else
#define ATTND_ROWS_INLINE inline
#endif

namespace attnd::kernels::cuda::fused {

struct CtaRows {
  int64_t row_lo = 0;   // the sequence's first kernel row
  int64_t row_hi = 0;   // one past its last
  int64_t q_shift = 0;  // kernel row r is row r + q_shift of q and out (of batch element b)
  int64_t kv_row0 = 0;  // its first key row in k and v
  int valid_keys = 0;   // Mk_b: keys [0, Mk_b) from kv_row0 on (lengths are below 2^31)
  // The row's LSE is lse[lse_base + h·lse_rows + (r - row_lo)].
  int64_t lse_base = 0;
  int64_t lse_rows = 0;

  ATTND_HOST_DEVICE bool Has(int64_t row) const { return row >= row_lo && row < row_hi; }
  ATTND_HOST_DEVICE int64_t LseIndex(int64_t h, int64_t row) const {
    return lse_base + h * lse_rows + (row - row_lo);
  }
};

ATTND_ROWS_INLINE int64_t ClampLength(int64_t n, int64_t most) {
  return n < 0 ? 0 : (n > most ? most : n);
}

ATTND_ROWS_INLINE CtaRows RowsOf(const FusedParams& p, int64_t b) {
  CtaRows c;
  if (p.q_offsets == nullptr) {
    c.row_hi = p.q_len;
    c.valid_keys = static_cast<int>(
        p.kv_lengths != nullptr ? ClampLength(p.kv_lengths[b], p.kv_len) : p.kv_len);
    c.lse_base = b * p.q_heads * p.q_len;
    c.lse_rows = p.q_len;
    return c;
  }
  const int64_t q_begin = p.q_offsets[b];
  const int64_t rows = ClampLength(p.q_offsets[b + 1] - q_begin, p.q_len);
  const int64_t kv_begin = p.kv_offsets[b];
  const int64_t shift = p.mask.causal == Causal::kTopLeft ? 0 : p.q_len - rows;
  c.row_lo = shift;
  c.row_hi = shift + rows;
  c.q_shift = q_begin - shift;
  c.kv_row0 = kv_begin;
  c.valid_keys = static_cast<int>(ClampLength(p.kv_offsets[b + 1] - kv_begin, p.kv_len));
  c.lse_base = p.q_heads * q_begin;
  c.lse_rows = rows;
  return c;
}

// The sequence rows a CTA of kernel rows [q0, q0 + block_m) holds: [*first, *last], or false
// when it holds none (a short ragged sequence's CTAs past its rows; the whole CTA then ends).
ATTND_ROWS_INLINE bool CtaHoldsRows(const CtaRows& seq, int64_t q0, int64_t block_m,
                                    int64_t* first, int64_t* last) {
  // (An empty sequence holds no rows anywhere, though its row_lo may fall inside the CTA.)
  if (seq.row_hi <= seq.row_lo || q0 >= seq.row_hi || q0 + block_m <= seq.row_lo) return false;
  *first = q0 > seq.row_lo ? q0 : seq.row_lo;
  *last = (q0 + block_m < seq.row_hi ? q0 + block_m : seq.row_hi) - 1;
  return true;
}

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_CTA_ROWS_H_
