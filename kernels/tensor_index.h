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

// The strides of q, k, v and out for one problem.
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

// The bias [bB, bH, bMq, bMk] (row-major, any layout of the problem) read as if it were
// [B, Hq, Mq, Mk]: a broadcast axis (size 1) gets stride 0.
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
