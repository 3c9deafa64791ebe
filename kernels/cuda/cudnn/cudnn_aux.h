// Two small kernels around cuDNN's SDPA (cudnn_aux.cu): the int32 sequence lengths its padding
// mask reads, and attnd's answer for rows that see no key. Plain C++ interface.
#ifndef ATTND_KERNELS_CUDA_CUDNN_CUDNN_AUX_H_
#define ATTND_KERNELS_CUDA_CUDNN_CUDNN_AUX_H_

#include <cstdint>

#include "absl/status/status.h"
#include "kernels/problem.h"

namespace attnd::kernels::cuda::cudnn_internal {

// seq_q[b] = Mq and seq_kv[b] = kv_lengths[b] (clamped to [0, Mk]; Mk when kv_lengths is null),
// b < B, on `stream`. All pointers on the device. INTERNAL naming the launch on failure.
absl::Status LaunchSequenceLengths(const int64_t* kv_lengths, int64_t batch, int64_t q_len,
                                   int64_t kv_len, int32_t* seq_q, int32_t* seq_kv, void* stream);

// attnd's answer for query rows that see no key: out[b, i, h, :] = 0 and, when `lse` is given,
// lse[b, h, i] = -inf. A row is empty when kernels/mask.h's policy leaves it no key (with the
// device kv_lengths when problem.has_kv_lengths) or, when `stats` is given (cuDNN's softmax stats
// [B, Hq, Mq] f32, possibly the same buffer as `lse`), when its stats are -inf or NaN: every
// score -inf, as a bias of -inf makes them. Other rows are left untouched. f16/bf16 outputs.
absl::Status LaunchClearEmptyRows(const AttentionProblem& problem, const int64_t* kv_lengths,
                                  const float* stats, void* out, float* lse, void* stream);

}  // namespace attnd::kernels::cuda::cudnn_internal

#endif  // ATTND_KERNELS_CUDA_CUDNN_CUDNN_AUX_H_
