#include "client/attnctl/check.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/attnctl/flags.h"
#include "client/npy.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "kernels/problem.h"
#include "wire/request_codec.h"

namespace attnd::attnctl {
namespace {

absl::Status CheckTensor(absl::string_view name, const v1::Tensor& tensor, v1::DType dtype,
                         const std::vector<int64_t>& shape) {
  const std::vector<int64_t> got(tensor.shape().begin(), tensor.shape().end());
  if (tensor.dtype() != dtype || got != shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "response.", name, " is ", DTypeName(tensor.dtype()), " [", absl::StrJoin(got, ", "),
        "], want ", DTypeName(dtype), " [", absl::StrJoin(shape, ", "), "]"));
  }
  int64_t elements = 1;
  for (int64_t d : shape) elements *= d;
  const int64_t want_bytes = elements * client::DTypeBytes(dtype);
  if (static_cast<int64_t>(tensor.data().size()) != want_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("response.", name, " has ", tensor.data().size(),
                                                   " bytes, want ", want_bytes));
  }
  return absl::OkStatus();
}

std::string FormatStats(absl::string_view name, const ErrorStats& s) {
  return absl::StrFormat(
      "%-4s %d elements: max abs err %.3e, max rel err %.3e, max scaled err %.3e%s", name,
      s.elements, s.max_abs_error, s.max_rel_error, s.max_scaled_error,
      s.has_nan ? " (NaN or infinity mismatch)" : "");
}

}  // namespace

kernels::ProblemLimits UnboundedLimits() {
  kernels::ProblemLimits limits;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  limits.max_batch = limits.max_seq_len = limits.max_heads = limits.max_head_dim = kMax;
  limits.max_tensor_elements = kMax;
  return limits;
}

double ToleranceFor(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F16:
      return 4e-3;
    case v1::DTYPE_BF16:
      return 3e-2;
    default:
      return 1e-4;
  }
}

ErrorStats CompareToReference(const std::vector<float>& got, const std::vector<double>& ref) {
  ErrorStats stats;
  stats.elements = static_cast<int64_t>(std::min(got.size(), ref.size()));
  for (int64_t i = 0; i < stats.elements; ++i) {
    const double g = got[i], r = ref[i];
    if (std::isnan(g) || std::isnan(r)) {
      stats.has_nan = true;
      continue;
    }
    if (std::isinf(g) || std::isinf(r)) {
      if (g != r) stats.has_nan = true;
      continue;
    }
    const double abs_error = std::fabs(g - r);
    const double scaled = abs_error / std::max(1.0, std::fabs(r));
    stats.max_abs_error = std::max(stats.max_abs_error, abs_error);
    if (std::fabs(r) >= 1e-3) {
      stats.max_rel_error = std::max(stats.max_rel_error, abs_error / std::fabs(r));
    }
    if (scaled > stats.max_scaled_error || stats.worst_index < 0) {
      stats.max_scaled_error = std::max(stats.max_scaled_error, scaled);
      stats.worst_index = i;
    }
  }
  if (got.size() != ref.size()) stats.has_nan = true;
  return stats;
}

std::string CheckResult::Summary() const {
  std::string out = FormatStats("out", this->out);
  if (lse.elements > 0) absl::StrAppend(&out, "\n", FormatStats("lse", lse));
  absl::StrAppend(&out, "\n",
                  absl::StrFormat("check %s: tolerance %.1e on |got - ref| / max(1, |ref|)",
                                  passed ? "PASSED" : "FAILED", tolerance));
  return out;
}

absl::StatusOr<CheckResult> CheckResponse(const v1::AttendRequest& request,
                                          const v1::AttendResponse& response) {
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(request, UnboundedLimits());
  if (!decoded.ok()) return decoded.status();
  const kernels::AttentionProblem& problem = decoded->problem;
  if (absl::Status s =
          CheckTensor("out", response.out(), request.q().dtype(), wire::OutShape(problem));
      !s.ok()) {
    return s;
  }
  if (problem.return_lse) {
    if (absl::Status s = CheckTensor("lse", response.lse(), v1::DTYPE_F32, wire::LseShape(problem));
        !s.ok()) {
      return s;
    }
  }

  // The reference answers in float64 into `reference`: it needs no output buffers.
  kernels::AttentionTensors tensors = wire::TensorsFor(*decoded, nullptr, nullptr);
  kernels::ReferenceResult reference;
  if (absl::Status s = kernels::ReferenceAttention(problem, tensors, &reference); !s.ok()) {
    return s;
  }

  CheckResult result;
  result.tolerance = ToleranceFor(request.q().dtype());
  std::vector<float> got(problem.out_elements());
  kernels::ConvertToFloat(response.out().data().data(), problem.dtype, problem.out_elements(),
                          got.data());
  result.out = CompareToReference(got, reference.out);
  bool passed = !result.out.has_nan && result.out.max_scaled_error <= result.tolerance;
  if (problem.return_lse) {
    std::vector<float> lse(problem.lse_elements());
    kernels::ConvertToFloat(response.lse().data().data(), kernels::DType::kF32,
                            problem.lse_elements(), lse.data());
    result.lse = CompareToReference(lse, reference.lse);
    passed = passed && !result.lse.has_nan && result.lse.max_scaled_error <= result.tolerance;
  }
  result.passed = passed;
  return result;
}

}  // namespace attnd::attnctl
