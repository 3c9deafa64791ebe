#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/cuda/cudnn/cudnn_aux.h"
#include "kernels/mask.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"

namespace attnd::kernels::cuda::cudnn_internal {
namespace {

constexpr int kThreads = 256;
// Enough blocks to fill an H100 (132 SMs) several times; grid-stride loops cover the rest.
constexpr int64_t kMaxBlocks = 4096;

int Blocks(int64_t items) {
  const int64_t blocks = (items + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

absl::Status LaunchStatus(const char* what, const char* file, int line) {
  const cudaError_t error = cudaGetLastError();
  if (error == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, " failed at ", file, ":", line, ": ",
                                          cudaGetErrorName(error), " (", cudaGetErrorString(error),
                                          ")"));
}

__global__ void SequenceLengthsKernel(const int64_t* kv_lengths, int64_t batch, int64_t q_len,
                                      int64_t kv_len, int32_t* seq_q, int32_t* seq_kv) {
  for (int64_t b = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; b < batch;
       b += int64_t{gridDim.x} * blockDim.x) {
    int64_t n = kv_lengths != nullptr ? kv_lengths[b] : kv_len;
    n = n < 0 ? 0 : (n > kv_len ? kv_len : n);
    seq_q[b] = static_cast<int32_t>(q_len);
    seq_kv[b] = static_cast<int32_t>(n);
  }
}

// One thread per (b, i) query row, over its Hq heads: an empty row zeroes its Dv outputs (2-byte
// elements) and sets its LSE to -inf.
__global__ void ClearEmptyRowsKernel(MaskPolicy policy, const int64_t* kv_lengths, int64_t batch,
                                     int64_t q_heads, int64_t v_head_dim,
                                     SeqHeadStrides out_strides, const float* stats, uint16_t* out,
                                     float* lse) {
  const int64_t rows = batch * policy.q_len;
  for (int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; r < rows;
       r += int64_t{gridDim.x} * blockDim.x) {
    const int64_t b = r / policy.q_len;
    const int64_t i = r % policy.q_len;
    int64_t keys = policy.KeysOf(kv_lengths, b);
    keys = keys < 0 ? 0 : (keys > policy.kv_len ? policy.kv_len : keys);
    const bool masked = policy.Visible(i, keys).empty();
    if (!masked && stats == nullptr) continue;
    for (int64_t h = 0; h < q_heads; ++h) {
      const int64_t at = (b * q_heads + h) * policy.q_len + i;  // [B, Hq, Mq]
      // !(x > -inf): -inf and NaN, the stats of a row whose every score is -inf.
      if (!masked && stats[at] > -INFINITY) continue;
      uint16_t* row = out + out_strides.Row(b, i, h);
      for (int64_t x = 0; x < v_head_dim; ++x) row[x] = 0;  // +0 in f16 and bf16
      if (lse != nullptr) lse[at] = -INFINITY;
    }
  }
}

}  // namespace

absl::Status LaunchSequenceLengths(const int64_t* kv_lengths, int64_t batch, int64_t q_len,
                                   int64_t kv_len, int32_t* seq_q, int32_t* seq_kv, void* stream) {
  SequenceLengthsKernel<<<Blocks(batch), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      kv_lengths, batch, q_len, kv_len, seq_q, seq_kv);
  return LaunchStatus("SequenceLengthsKernel launch", __FILE__, __LINE__);
}

absl::Status LaunchClearEmptyRows(const AttentionProblem& problem, const int64_t* kv_lengths,
                                  const float* stats, void* out, float* lse, void* stream) {
  if (DTypeSize(problem.dtype) != 2) {
    return absl::InvalidArgumentError("LaunchClearEmptyRows takes f16 or bf16 outputs");
  }
  const MaskPolicy policy = MaskPolicy::FromProblem(problem);
  const SeqHeadStrides out_strides =
      SeqHeadStrides::For(problem.layout, problem.q_len, problem.q_heads, problem.v_head_dim);
  ClearEmptyRowsKernel<<<Blocks(problem.batch * problem.q_len), kThreads, 0,
                         static_cast<cudaStream_t>(stream)>>>(
      policy, problem.has_kv_lengths ? kv_lengths : nullptr, problem.batch, problem.q_heads,
      problem.v_head_dim, out_strides, stats, static_cast<uint16_t*>(out), lse);
  return LaunchStatus("ClearEmptyRowsKernel launch", __FILE__, __LINE__);
}

}  // namespace attnd::kernels::cuda::cudnn_internal
