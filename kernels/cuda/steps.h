// The steps the cuBLAS variants are made of, as plain structs: a batched GEMM and three row
// operations (softmax, online-softmax merge, finalisation). kernels/cuda/pipeline.cc strings
// them together for naive, sliced and chunked; a StepRunner executes them (CUDA: one cuBLAS call
// or one kernel launch each; tests/gpu: a CPU emulation). The row structs are passed by value to
// the kernels, so they hold only trivially copyable members.
//
// Score rows: a step covers query rows [q0, q0 + rows) of every (b, h), Z = B·Hq of them, and
// key columns [k0, k0 + cols). Score row r (in [0, Z·rows)) is query row q0 + r % rows of
// z = r / rows = b·Hq + h. Scores are f32 [Z, rows, cols], row stride cols; P is written over
// them in place in the input dtype (row stride cols elements of P, i.e. 2·cols for f16/bf16 as the
// P row starts where its score row starts).
#ifndef ATTND_KERNELS_CUDA_STEPS_H_
#define ATTND_KERNELS_CUDA_STEPS_H_

#include <cstdint>

#include "kernels/mask.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda {

// One operand of a batched GEMM, seen row-major. Matrix z = b·Hq + h starts at
//   base + b·batch_stride + (h / head_div)·head_stride   (elements of dtype)
// and its rows are ld elements apart. head_div is the GQA group size for K and V, else 1.
struct GemmOperand {
  const void* base = nullptr;
  DType dtype = DType::kF32;
  int64_t batch_stride = 0;
  int64_t head_stride = 0;
  int64_t head_div = 1;
  int64_t ld = 0;

  ATTND_HOST_DEVICE int64_t Offset(int64_t z, int64_t q_heads) const {
    const int64_t b = z / q_heads;
    const int64_t h = z % q_heads;
    return b * batch_stride + (h / head_div) * head_stride;
  }
};

// Z independent row-major products C[m, n] = alpha·A[m, k]·op(B) + beta·C, where op(B) is B
// stored [k, n], or Bᵀ with B stored [n, k] when b_transposed. beta == 0 never reads C.
struct GemmStep {
  int64_t batch = 0;    // B
  int64_t q_heads = 0;  // Hq: Z = batch·q_heads
  int64_t m = 0;
  int64_t n = 0;
  int64_t k = 0;
  bool b_transposed = false;
  float alpha = 1.0f;
  float beta = 0.0f;
  GemmOperand a;
  GemmOperand b;
  GemmOperand c;             // c.base is written
  void** scratch = nullptr;  // [3, Z] device pointers, for runners that need pointer arrays
};

// Which score rows and columns a row step covers.
struct RowGeometry {
  int64_t z = 0;        // B·Hq
  int64_t q_heads = 0;  // Hq
  int64_t q_len = 0;    // Mq (LSE rows are [Z, Mq])
  int64_t q0 = 0;       // first query row
  int64_t rows = 0;     // query rows per (b, h)
  int64_t k0 = 0;       // first key
  int64_t cols = 0;     // keys

  ATTND_HOST_DEVICE int64_t total_rows() const { return z * rows; }
};

// The mask and bias, as kernels/mask.h and kernels/tensor_index.h define them.
struct ScoreMask {
  MaskPolicy policy;
  const int64_t* kv_lengths = nullptr;  // [B] (device memory on CUDA), or null
  const void* bias = nullptr;           // null: no bias
  DType bias_dtype = DType::kF32;
  BiasIndex bias_index;
};

// Naive/sliced: P = softmax(S + bias, masked) normalised, written in place as p_dtype; the LSE
// of each row to lse[z·Mq + i] when lse is set.
struct SoftmaxStep {
  RowGeometry geometry;
  ScoreMask mask;
  float* scores = nullptr;
  DType p_dtype = DType::kF32;
  float* lse = nullptr;
};

// Chunked, one key tile: folds the tile into the running (m, l) of each row and rescales the
// row's accumulator by exp(m_old - m_new); writes P = exp(S + bias - m_new) in place as p_dtype
// (masked: 0) for the accumulator GEMM that follows. m is the row's reference max, not always
// its exact max: it moves only when a tile's max passes it by more than kMergeSlack
// (row_ops.h), so that most tiles leave the accumulator alone. `first`: no state yet (m = -inf, l = 0, and
// the accumulator is not read: the GEMM that follows overwrites it).
struct MergeStep {
  RowGeometry geometry;
  ScoreMask mask;
  float* scores = nullptr;
  DType p_dtype = DType::kF32;
  float* row_max = nullptr;  // [Z·rows]
  float* row_sum = nullptr;  // [Z·rows]
  float* acc = nullptr;      // [Z·rows, Dv]
  int64_t v_head_dim = 0;
  bool first = false;
};

// Writes out rows [q0, q0 + rows) of every (b, h): acc / l in out_dtype and the LSE m + log(l).
// has_state false (no key visible to the whole chunk): zeros and -inf, nothing read.
struct FinalizeStep {
  RowGeometry geometry;
  const float* row_max = nullptr;
  const float* row_sum = nullptr;
  const float* acc = nullptr;
  int64_t v_head_dim = 0;
  void* out = nullptr;
  DType out_dtype = DType::kF32;
  SeqHeadStrides out_strides;
  float* lse = nullptr;
  bool has_state = false;
};

}  // namespace attnd::kernels::cuda

#endif  // ATTND_KERNELS_CUDA_STEPS_H_
