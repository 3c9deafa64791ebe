#include "kernels/run_checks.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/problem.h"

namespace attnd::kernels {

absl::Status CheckRunInputs(const AttentionProblem& problem, const AttentionTensors& tensors,
                            bool need_outputs) {
  if (absl::Status s = ValidateProblem(problem, UnlimitedProblemLimits()); !s.ok()) return s;
  if (tensors.q == nullptr || tensors.k == nullptr || tensors.v == nullptr) {
    return absl::InvalidArgumentError("tensors.q, tensors.k and tensors.v must all be set");
  }
  if (need_outputs && tensors.out == nullptr) return absl::InvalidArgumentError("tensors.out must be set");
  if (problem.has_bias && tensors.bias == nullptr) {
    return absl::InvalidArgumentError("problem.has_bias but tensors.bias is null");
  }
  if (need_outputs && problem.return_lse && tensors.lse == nullptr) {
    return absl::InvalidArgumentError("problem.return_lse but tensors.lse is null");
  }
  if (problem.has_kv_lengths) {
    if (tensors.kv_lengths == nullptr) {
      return absl::InvalidArgumentError("problem.has_kv_lengths but tensors.kv_lengths is null");
    }
    for (int64_t b = 0; b < problem.batch; ++b) {
      const int64_t n = tensors.kv_lengths[b];
      if (n < 0 || n > problem.kv_len) {
        return absl::InvalidArgumentError(absl::StrCat(
            "kv_lengths[", b, "] = ", n, " is outside [0, ", problem.kv_len, "] (Mk)"));
      }
    }
  }
  if (problem.ragged) {
    return ValidateSequenceOffsets(problem, tensors.q_offsets, tensors.kv_offsets);
  }
  return absl::OkStatus();
}

}  // namespace attnd::kernels
