// Compares a served AttendResponse with the float64 reference computed locally on the same
// request, with a tolerance tied to the dtype.
#ifndef ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_
#define ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_

#include <cmath>
#include <string>
#include <vector>

#include "attnd/v1/attention.pb.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "wire/request_codec.h"

namespace attnd::testing {

// Absolute error allowed on outputs of magnitude ≲ 1 (softmax-weighted means of N(0,1) values):
// a few units in the last place of the output dtype, twice the error of rounding the float64
// result (FlashAttention's rule of thumb).
inline double Tolerance(kernels::DType dtype) {
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

// Max |served - reference| over the rows [row_begin, row_end) of every (b, h) (all rows when
// row_end < 0), and the LSE when the request asked for it.
inline ::testing::AssertionResult MatchesReference(const v1::AttendRequest& request,
                                                   const v1::AttendResponse& response,
                                                   int64_t row_begin = 0, int64_t row_end = -1) {
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::UnlimitedProblemLimits());
  if (!decoded.ok()) return ::testing::AssertionFailure() << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  kernels::ReferenceResult ref;
  absl::Status st = kernels::ReferenceAttention(p, wire::TensorsFor(*decoded, nullptr, nullptr),
                                                &ref, row_begin, row_end);
  if (!st.ok()) return ::testing::AssertionFailure() << st;
  if (response.out().dtype() != request.q().dtype()) {
    return ::testing::AssertionFailure() << "out.dtype " << response.out().dtype();
  }
  if (static_cast<int64_t>(response.out().data().size()) != decoded->out_bytes()) {
    return ::testing::AssertionFailure() << "out.data has " << response.out().data().size()
                                         << " bytes, want " << decoded->out_bytes();
  }
  if (row_end < 0) row_end = p.q_len;
  const bool bhmk = p.layout == kernels::Layout::kBHMK;
  double max_err = 0;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = row_begin; i < row_end; ++i) {
        const int64_t row =
            bhmk ? (b * p.q_heads + h) * p.q_len + i : (b * p.q_len + i) * p.q_heads + h;
        for (int64_t d = 0; d < p.v_head_dim; ++d) {
          const int64_t idx = row * p.v_head_dim + d;
          const double got = kernels::LoadAsFloat(response.out().data().data(), p.dtype, idx);
          max_err = std::max(max_err, std::fabs(got - ref.out[idx]));
        }
        if (p.return_lse) {
          const int64_t li = (b * p.q_heads + h) * p.q_len + i;
          const float got = reinterpret_cast<const float*>(response.lse().data().data())[li];
          const double want = ref.lse[li];
          if (std::isinf(want) ? got != want : std::fabs(got - want) > 1e-3) {
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
           << kernels::DTypeName(p.dtype);
  }
  return ::testing::AssertionSuccess() << "max abs error " << max_err;
}

}  // namespace attnd::testing

#endif  // ATTND_TESTS_INTEGRATION_CHECK_UTIL_H_
