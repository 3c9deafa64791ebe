// Where a request's tensors lie in its one device block, and in the pinned staging slabs that
// carry them: plain C++ (no CUDA), so that the arithmetic is tested without a GPU.
//
//   block  [q | k | v | bias | kv_lengths | q_offsets | kv_offsets | out | lse | workspace]
//          └────────────────── inputs: one copy in ─────────────────┘└─ outputs: one copy out ┘
//   every part 256-byte aligned; a part the problem lacks is empty (offsets: ragged only, [B + 1]
//   int64 each; q, k, v, out and lse then have their packed sizes).
//
// The inputs are contiguous from offset 0 to `out`, and the outputs from `out` to `workspace`,
// so a request whose inputs fit one staging slab (and outputs another) moves in one DMA each
// way: the host packs the inputs into the slab at the block's own offsets.
#ifndef ATTND_SERVER_EXECUTOR_BLOCK_LAYOUT_H_
#define ATTND_SERVER_EXECUTOR_BLOCK_LAYOUT_H_

#include <cstdint>

#include "kernels/problem.h"
#include "server/executor/device_budget.h"

namespace attnd::server::executor {

struct BlockLayout {
  int64_t q = 0, k = 0, v = 0, bias = 0, kv_lengths = 0, q_offsets = 0, kv_offsets = 0, out = 0,
          lse = 0, workspace = 0;
  int64_t q_bytes = 0, k_bytes = 0, v_bytes = 0, bias_bytes = 0, kv_lengths_bytes = 0,
          offsets_bytes = 0, out_bytes = 0, lse_bytes = 0, workspace_bytes = 0;
  int64_t total = 0;

  static BlockLayout For(const kernels::AttentionProblem& p, int64_t workspace_bytes) {
    const int64_t element = static_cast<int64_t>(kernels::DTypeSize(p.dtype));
    BlockLayout l;
    l.q_bytes = p.q_elements() * element;
    l.k_bytes = p.k_elements() * element;
    l.v_bytes = p.v_elements() * element;
    l.bias_bytes =
        p.has_bias ? p.bias_elements() * static_cast<int64_t>(kernels::DTypeSize(p.bias_dtype)) : 0;
    l.kv_lengths_bytes = p.has_kv_lengths ? p.batch * static_cast<int64_t>(sizeof(int64_t)) : 0;
    // Each of q_offsets and kv_offsets.
    l.offsets_bytes = p.ragged ? (p.batch + 1) * static_cast<int64_t>(sizeof(int64_t)) : 0;
    l.out_bytes = p.out_elements() * element;
    l.lse_bytes = p.return_lse ? p.lse_elements() * static_cast<int64_t>(sizeof(float)) : 0;
    l.workspace_bytes = workspace_bytes;
    int64_t at = 0;
    auto place = [&at](int64_t bytes) {
      const int64_t offset = at;
      at += AlignDeviceBytes(bytes);
      return offset;
    };
    l.q = place(l.q_bytes);
    l.k = place(l.k_bytes);
    l.v = place(l.v_bytes);
    l.bias = place(l.bias_bytes);
    l.kv_lengths = place(l.kv_lengths_bytes);
    l.q_offsets = place(l.offsets_bytes);
    l.kv_offsets = place(l.offsets_bytes);
    l.out = place(l.out_bytes);
    l.lse = place(l.lse_bytes);
    l.workspace = place(l.workspace_bytes);
    l.total = at;
    return l;
  }

  // The inputs' span [0, out) and the outputs' span [out, workspace).
  int64_t input_span() const { return out; }
  int64_t output_span() const { return workspace - out; }
  // The tensor bytes themselves (what the host copies), without the alignment padding.
  int64_t input_bytes() const {
    return q_bytes + k_bytes + v_bytes + bias_bytes + kv_lengths_bytes + 2 * offsets_bytes;
  }
  int64_t output_bytes() const { return out_bytes + lse_bytes; }
  // The request's tensors in a block of this layout that starts at `base` (device memory).
  kernels::AttentionTensors TensorsAt(const kernels::AttentionProblem& p, char* base) const {
    kernels::AttentionTensors t;
    t.q = base + q;
    t.k = base + k;
    t.v = base + v;
    if (p.has_bias) t.bias = base + bias;
    if (p.has_kv_lengths) t.kv_lengths = reinterpret_cast<const int64_t*>(base + kv_lengths);
    if (p.ragged) {
      t.q_offsets = reinterpret_cast<const int64_t*>(base + q_offsets);
      t.kv_offsets = reinterpret_cast<const int64_t*>(base + kv_offsets);
    }
    t.out = base + out;
    if (p.return_lse) t.lse = reinterpret_cast<float*>(base + lse);
    return t;
  }
  // Whether the inputs fit one staging slab and the outputs another (one DMA each way).
  bool FitsSlabs(int64_t slab_bytes) const {
    return input_span() <= slab_bytes && output_span() <= slab_bytes;
  }
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_BLOCK_LAYOUT_H_
