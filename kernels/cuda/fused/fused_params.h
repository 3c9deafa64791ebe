// What one launch of the fused kernel reads, flattened from the problem and its tensors on the
// host (fused_attention.cc) so the kernel does no host-side lookups. Plain C++.
#ifndef ATTND_KERNELS_CUDA_FUSED_FUSED_PARAMS_H_
#define ATTND_KERNELS_CUDA_FUSED_FUSED_PARAMS_H_

#include <cstdint>

#include "kernels/mask.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda::fused {

struct FusedParams {
  const void* q = nullptr;  // [B, Mq, Hq, D] or [B, Hq, Mq, D], 16-byte aligned rows
  const void* k = nullptr;  // [B, Mk, Hkv, D] or BHMK
  const void* v = nullptr;  // [B, Mk, Hkv, Dv] or BHMK
  void* out = nullptr;      // like q with Dv
  float* lse = nullptr;     // [B, Hq, Mq] natural-log LSE, or null
  const void* bias = nullptr;  // broadcast to [B, Hq, Mq, Mk] through bias_index, or null
  DType bias_dtype = DType::kF32;
  BiasIndex bias_index;
  const int64_t* kv_lengths = nullptr;  // [B] or null; clamped into [0, Mk]
  // A ragged batch's sequence offsets ([B + 1] each; cta_rows.h), or null for a dense one.
  const int64_t* q_offsets = nullptr;
  const int64_t* kv_offsets = nullptr;
  SeqHeadStrides q_strides, k_strides, v_strides, out_strides;
  MaskPolicy mask;
  int64_t q_heads = 0;
  int64_t group = 1;  // Hq / Hkv: query head h reads kv head h / group
  int64_t q_len = 0;
  int64_t kv_len = 0;
  int head_dim = 0;    // D, a multiple of 8, at most the kernel's padded dim
  int v_head_dim = 0;  // Dv, likewise
  float scale_log2 = 0.0f;  // scale · log2(e): the kernel works in base 2
  // 1 / scale: the 16-bit kernel starts each score's accumulator at bias / scale
  // (FusedRefusal keeps |scale| >= 2^-20 with a bias, so this is finite).
  float bias_to_acc = 0.0f;
  int64_t bias_bytes = 0;  // the bias tensor's size: its tiles copy nothing past it

  // The parameters of `p` on `t` (device pointers): the one fill of the 16-bit, split-KV and f32
  // kernels.
  static FusedParams For(const AttentionProblem& p, const AttentionTensors& t) {
    FusedParams params;
    params.q = t.q;
    params.k = t.k;
    params.v = t.v;
    params.out = t.out;
    params.lse = p.return_lse ? t.lse : nullptr;
    params.bias = p.has_bias ? t.bias : nullptr;
    params.bias_dtype = p.bias_dtype;
    params.bias_index = BiasIndex::For(p);
    params.kv_lengths = p.has_kv_lengths ? t.kv_lengths : nullptr;
    const ProblemStrides strides = ProblemStrides::For(p);
    params.q_strides = strides.q;
    params.k_strides = strides.k;
    params.v_strides = strides.v;
    params.out_strides = strides.out;
    if (p.ragged) {
      // Packed [total, H, X]: sequence b starts at its offset's row, not at b · batch stride.
      params.q_offsets = t.q_offsets;
      params.kv_offsets = t.kv_offsets;
      params.q_strides.batch = params.k_strides.batch = 0;
      params.v_strides.batch = params.out_strides.batch = 0;
    }
    params.mask = MaskPolicy::FromProblem(p);
    params.q_heads = p.q_heads;
    params.group = p.group_size();
    params.q_len = p.q_len;
    params.kv_len = p.kv_len;
    params.head_dim = static_cast<int>(p.head_dim);
    params.v_head_dim = static_cast<int>(p.v_head_dim);
    params.scale_log2 = static_cast<float>(p.scale * 1.4426950408889634);
    params.bias_to_acc = p.scale != 0.0 ? static_cast<float>(1.0 / p.scale) : 0.0f;
    params.bias_bytes =
        p.has_bias ? p.bias_elements() * static_cast<int64_t>(DTypeSize(p.bias_dtype)) : 0;
    return params;
  }
};

}  // namespace attnd::kernels::cuda::fused

#endif  // ATTND_KERNELS_CUDA_FUSED_FUSED_PARAMS_H_
