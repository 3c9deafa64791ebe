// `attnctl attend --check`: the server's answer against the local float64 reference.
//
// The request is decoded with the server's own codec (wire::DecodeRequest), so the reference
// runs exactly the problem the server saw, on the same (rounded) inputs. Per output element
//   scaled error = |out - ref| / max(1, |ref|)
// must stay within the dtype's tolerance: f32 1e-4, f16 4e-3, bf16 3e-2 (absolute for outputs
// of magnitude <= 1, relative above; the 16-bit outputs themselves round by 2^-11 and 2^-8).
// The LSE, when returned, is held to the same bound. NaN anywhere fails.
#ifndef ATTND_CLIENT_ATTNCTL_CHECK_H_
#define ATTND_CLIENT_ATTNCTL_CHECK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/problem.h"

namespace attnd::attnctl {

double ToleranceFor(v1::DType dtype);

// Limits for decoding on the client: none. The client does not know the server's; the server
// already enforced them on any request it answered.
kernels::ProblemLimits UnboundedLimits();

struct ErrorStats {
  int64_t elements = 0;
  double max_abs_error = 0;     // max |got - ref|
  double max_rel_error = 0;     // max |got - ref| / |ref| over elements with |ref| >= 1e-3
  double max_scaled_error = 0;  // max |got - ref| / max(1, |ref|): what the tolerance bounds
  int64_t worst_index = -1;     // element of max_scaled_error
  bool has_nan = false;         // a NaN in got (or a mismatch of infinities)
};

// Compares element-wise; `got` and `ref` have the same length. Infinities compare equal only to
// the same infinity (the LSE of a fully masked row is -inf).
ErrorStats CompareToReference(const std::vector<float>& got, const std::vector<double>& ref);

struct CheckResult {
  ErrorStats out;
  ErrorStats lse;  // elements == 0 without return_lse
  double tolerance = 0;
  bool passed = false;
  std::string Summary() const;  // a few lines for the terminal
};

// Decodes `request`, checks that `response`'s tensors have the shapes and dtypes the problem
// implies (INVALID_ARGUMENT naming the tensor when not), runs the reference and compares.
absl::StatusOr<CheckResult> CheckResponse(const v1::AttendRequest& request,
                                          const v1::AttendResponse& response);

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_CHECK_H_
