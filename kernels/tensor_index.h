// Element offsets into the problem's tensors, for both layouts and the broadcast bias. Shared by
// every variant so that layouts and broadcasting are defined once.
#ifndef ATTND_KERNELS_TENSOR_INDEX_H_
#define ATTND_KERNELS_TENSOR_INDEX_H_

#include <cstdint>

#include "kernels/mask.h"  // ATTND_HOST_DEVICE
#include "kernels/problem.h"

namespace attnd::kernels {

// Strides (in elements) of a [B, M, H, X] tensor stored BMHK or BHMK; the last axis is contiguous.
struct SeqHeadStrides {
  int64_t batch = 0;
  int64_t seq = 0;
  int64_t head = 0;

  ATTND_HOST_DEVICE static SeqHeadStrides For(Layout layout, int64_t seq_len, int64_t heads,
                                              int64_t dim) {
    SeqHeadStrides s;
    s.batch = seq_len * heads * dim;
    if (layout == Layout::kBMHK) {
      s.seq = heads * dim;  // [B, M, H, X]
      s.head = dim;
    } else {
      s.head = seq_len * dim;  // [B, H, M, X]
      s.seq = dim;
    }
    return s;
  }
  // Offset of element 0 of row m of head h in batch element b.
  ATTND_HOST_DEVICE int64_t Row(int64_t b, int64_t m, int64_t h) const {
    return b * batch + m * seq + h * head;
  }
};

// The strides of q, k, v and out for one problem. A ragged problem's packed [total, H, X] tensors
// are BMHK with one batch element: index them with batch 0 and the packed row (SequenceRows);
// their batch stride is meaningless.
struct ProblemStrides {
  SeqHeadStrides q, k, v, out;

  static ProblemStrides For(const AttentionProblem& p) {
    ProblemStrides s;
    s.q = SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.head_dim);
    s.k = SeqHeadStrides::For(p.layout, p.kv_len, p.kv_heads, p.head_dim);
    s.v = SeqHeadStrides::For(p.layout, p.kv_len, p.kv_heads, p.v_head_dim);
    s.out = SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.v_head_dim);
    return s;
  }
};

// Where sequence (batch element) b lies in the tensors, and its lengths: one form for dense and
// ragged problems, so that a variant indexes both alike.
//   dense   batch element b, rows from 0; Mq_b = Mq, Mk_b = kv_lengths[b] (or Mk)
//   ragged  batch 0 of the packed tensors, rows from q_offsets[b] and kv_offsets[b];
//           Mq_b, Mk_b the offsets' differences
// Query row m (0 <= m < Mq_b) of head h is q/out row strides.q.Row(tensor_batch, q_row0 + m, h),
// key j is k/v row strides.k.Row(tensor_batch, kv_row0 + j, kvh), its LSE element Lse(h, m), and
// its bias element BiasIndex::At(b, h, m, j) (the sequence index b, not tensor_batch).
struct SequenceRows {
  int64_t tensor_batch = 0;  // the batch index of the tensors: b, or 0 when packed
  int64_t q_row0 = 0;        // row of query 0 along the sequence axis of q and out
  int64_t kv_row0 = 0;       // row of key 0 along the sequence axis of k and v
  int64_t q_len = 0;         // Mq_b
  int64_t kv_len = 0;        // Mk_b: the keys this sequence has (its valid keys)
  int64_t lse_base = 0;      // element of LSE (h 0, m 0): b·Hq·Mq, or Hq·q_offsets[b]

  ATTND_HOST_DEVICE static SequenceRows Of(const AttentionProblem& p, const AttentionTensors& t,
                                           int64_t b) {
    SequenceRows s;
    if (p.ragged) {
      s.q_row0 = t.q_offsets[b];
      s.kv_row0 = t.kv_offsets[b];
      s.q_len = t.q_offsets[b + 1] - s.q_row0;
      s.kv_len = t.kv_offsets[b + 1] - s.kv_row0;
      s.lse_base = p.q_heads * s.q_row0;
    } else {
      s.tensor_batch = b;
      s.q_len = p.q_len;
      s.kv_len = p.has_kv_lengths ? t.kv_lengths[b] : p.kv_len;
      s.lse_base = b * p.q_heads * p.q_len;
    }
    return s;
  }
  // The LSE element of query row m of head h ([Hq, Mq_b] from lse_base).
  ATTND_HOST_DEVICE int64_t Lse(int64_t h, int64_t m) const { return lse_base + h * q_len + m; }
};

// The bias [bB, bH, bMq, bMk] (row-major, any layout of the problem) read as if it were
// [B, Hq, Mq, Mk]: a broadcast axis (size 1) gets stride 0. Ragged problems pad it to the bounds
// [B, Hq, q_len, kv_len]: sequence b reads rows i < Mq_b and keys j < Mk_b of its [b, h] block.
struct BiasIndex {
  int64_t batch = 0;
  int64_t head = 0;
  int64_t row = 0;
  int64_t col = 0;

  static BiasIndex For(const AttentionProblem& p) {
    const int64_t* shape = p.bias_shape;
    BiasIndex s;
    s.col = shape[3] == 1 ? 0 : 1;
    s.row = shape[2] == 1 ? 0 : shape[3];
    s.head = shape[1] == 1 ? 0 : shape[2] * shape[3];
    s.batch = shape[0] == 1 ? 0 : shape[1] * shape[2] * shape[3];
    return s;
  }
  ATTND_HOST_DEVICE int64_t At(int64_t b, int64_t h, int64_t i, int64_t j) const {
    return b * batch + h * head + i * row + j * col;
  }
};

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_TENSOR_INDEX_H_
