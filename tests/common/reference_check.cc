#include "tests/common/reference_check.h"

#include <cmath>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_join.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "wire/request_codec.h"

namespace attnd::testing {

double Tolerance(kernels::DType dtype) {
  switch (dtype) {
    case kernels::DType::kF32:
      return 1e-4;
    case kernels::DType::kF16:
      return 4e-3;
    case kernels::DType::kBF16:
      return 3e-2;
  }
  return 0;
}

::testing::AssertionResult MatchesReference(const v1::AttendRequest& request,
                                            const v1::AttendResponse& response, int64_t row_begin,
                                            int64_t row_end) {
  // No limits: the server already enforced its own on any request it answered.
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::UnlimitedProblemLimits());
  if (!decoded.ok()) return ::testing::AssertionFailure() << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  kernels::ReferenceResult ref;
  absl::Status st = kernels::ReferenceAttention(p, wire::TensorsFor(*decoded, nullptr, nullptr),
                                                &ref, row_begin, row_end);
  if (!st.ok()) return ::testing::AssertionFailure() << st;

  // The tensors' form.
  if (response.out().dtype() != request.q().dtype()) {
    return ::testing::AssertionFailure() << "out.dtype " << response.out().dtype();
  }
  const std::vector<int64_t> out_shape = wire::OutShape(p);
  const std::vector<int64_t> got_shape(response.out().shape().begin(),
                                       response.out().shape().end());
  if (got_shape != out_shape) {
    return ::testing::AssertionFailure() << "out.shape [" << absl::StrJoin(got_shape, ", ")
                                         << "], want [" << absl::StrJoin(out_shape, ", ") << "]";
  }
  if (static_cast<int64_t>(response.out().data().size()) != decoded->out_bytes()) {
    return ::testing::AssertionFailure() << "out.data has " << response.out().data().size()
                                         << " bytes, want " << decoded->out_bytes();
  }
  if (!p.return_lse && response.has_lse()) {
    return ::testing::AssertionFailure() << "lse returned without return_lse";
  }
  if (p.return_lse) {
    if (response.lse().dtype() != v1::DTYPE_F32) {
      return ::testing::AssertionFailure() << "lse.dtype " << response.lse().dtype();
    }
    if (static_cast<int64_t>(response.lse().data().size()) != p.lse_elements() * 4) {
      return ::testing::AssertionFailure() << "lse.data has " << response.lse().data().size()
                                           << " bytes, want " << p.lse_elements() * 4;
    }
  }

  // The values, over the rows asked for.
  if (row_end < 0) row_end = p.q_len;
  const bool bhmk = p.layout == kernels::Layout::kBHMK;
  double max_err = 0;
  int64_t worst = -1;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = row_begin; i < row_end; ++i) {
        const int64_t row =
            bhmk ? (b * p.q_heads + h) * p.q_len + i : (b * p.q_len + i) * p.q_heads + h;
        for (int64_t d = 0; d < p.v_head_dim; ++d) {
          const int64_t idx = row * p.v_head_dim + d;
          const double got = kernels::LoadAsFloat(response.out().data().data(), p.dtype, idx);
          const double err = std::fabs(got - ref.out[idx]);
          if (std::isnan(err)) {
            return ::testing::AssertionFailure()
                   << "out[" << idx << "] = " << got << ", reference " << ref.out[idx];
          }
          if (err > max_err) {
            max_err = err;
            worst = idx;
          }
        }
        if (p.return_lse) {
          const int64_t li = (b * p.q_heads + h) * p.q_len + i;
          const double got =
              kernels::LoadAsFloat(response.lse().data().data(), kernels::DType::kF32, li);
          const double want = ref.lse[li];
          if (std::isinf(want) ? got != want : !(std::fabs(got - want) <= 1e-3)) {
            return ::testing::AssertionFailure()
                   << "lse[" << li << "] = " << got << ", want " << want;
          }
        }
      }
    }
  }
  if (!(max_err <= Tolerance(p.dtype))) {
    return ::testing::AssertionFailure()
           << "max abs error " << max_err << " > tolerance " << Tolerance(p.dtype) << " for "
           << kernels::DTypeName(p.dtype) << " at out[" << worst
           << "] = " << kernels::LoadAsFloat(response.out().data().data(), p.dtype, worst)
           << ", reference " << ref.out[worst];
  }
  return ::testing::AssertionSuccess() << "max abs error " << max_err;
}

}  // namespace attnd::testing
