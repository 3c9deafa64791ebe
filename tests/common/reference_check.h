// A served AttendResponse against the float64 reference (kernels::ReferenceAttention) computed
// locally on the same request, with a tolerance tied to the dtype.
#ifndef ATTND_TESTS_COMMON_REFERENCE_CHECK_H_
#define ATTND_TESTS_COMMON_REFERENCE_CHECK_H_

#include <cstdint>

#include "attnd/v1/attention.pb.h"
#include "gtest/gtest.h"
#include "kernels/problem.h"

namespace attnd::testing {

// Absolute error allowed on outputs of magnitude ≲ 1 (softmax-weighted means of N(0,1) values):
// a few units in the last place of the output dtype, twice the error of rounding the float64
// result (FlashAttention's rule of thumb).
double Tolerance(kernels::DType dtype);

// Success when `response` answers `request`: out has the request's dtype, the problem's output
// shape and byte count; the LSE is there (f32, one value per (b, h, row)) exactly when asked
// for; and over the
// query rows [row_begin, row_end) of every (b, h) (all rows when row_end < 0) max |out - ref|
// stays within Tolerance(dtype), no output is NaN, and every LSE is within 1e-3 (-inf where the
// reference says so). The failure says what differs and where.
::testing::AssertionResult MatchesReference(const v1::AttendRequest& request,
                                            const v1::AttendResponse& response,
                                            int64_t row_begin = 0, int64_t row_end = -1);

}  // namespace attnd::testing

#endif  // ATTND_TESTS_COMMON_REFERENCE_CHECK_H_
