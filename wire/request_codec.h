// Between the wire (attnd.v1 protobuf messages) and the kernels' plain types. Used by the server
// to decode and validate requests before anything is allocated, and by clients (attnctl --check)
// to run the same problem through the local reference.
#ifndef ATTND_WIRE_REQUEST_CODEC_H_
#define ATTND_WIRE_REQUEST_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::wire {

// A validated request: the problem plus views into the request's own bytes (no copy). Valid only
// while the AttendRequest it was decoded from is alive and unchanged.
struct DecodedRequest {
  kernels::AttentionProblem problem;
  const void* q = nullptr;     // into request.q().data()
  const void* k = nullptr;
  const void* v = nullptr;
  const void* bias = nullptr;  // null without bias
  std::vector<int64_t> kv_lengths;  // [B] when problem.has_kv_lengths
  kernels::Variant variant_hint = kernels::Variant::kAuto;
  int64_t q_chunk = 0;   // expert overrides, 0 = planner's choice
  int64_t kv_chunk = 0;
  int32_t priority = 0;

  // Byte sizes of the outputs this problem produces.
  int64_t out_bytes() const;
  int64_t lse_bytes() const;
};

// Validates everything (ranks, dims > 0, element counts that overflow int64, data length exact,
// dtypes equal, Hq % Hkv, bias broadcastable, kv_lengths, window, limits) and returns
// INVALID_ARGUMENT naming the field, the dimension and the value, e.g.
//   "q.shape[2] (Hq) = 8 is not a multiple of k.shape[2] (Hkv) = 3".
// Allocates nothing proportional to the declared shapes.
absl::StatusOr<DecodedRequest> DecodeRequest(const v1::AttendRequest& request,
                                             const kernels::ProblemLimits& limits);

// The kernels' tensor views for a decoded request, writing into `out` (out_bytes()) and `lse`
// (lse_bytes() / 4 floats, may be null without return_lse).
kernels::AttentionTensors TensorsFor(const DecodedRequest& decoded, void* out, float* lse);

// Output tensor shapes in the request's layout.
std::vector<int64_t> OutShape(const kernels::AttentionProblem& problem);  // [B,Mq,Hq,Dv] / BHMK
std::vector<int64_t> LseShape(const kernels::AttentionProblem& problem);  // [B,Hq,Mq]

v1::DType ToProto(kernels::DType dtype);
v1::Variant ToProto(kernels::Variant variant);
kernels::Variant FromProto(v1::Variant variant);

}  // namespace attnd::wire

#endif  // ATTND_WIRE_REQUEST_CODEC_H_
