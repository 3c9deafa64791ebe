#include "tests/common/requests.h"

#include <utility>

#include "absl/status/statusor.h"
#include "gtest/gtest.h"

namespace attnd::testing {

client::RequestSpec SmallSpec() {
  client::RequestSpec spec;
  spec.batch = 2;
  spec.q_len = 7;
  spec.kv_len = 13;
  spec.heads = 4;
  spec.kv_heads = 2;
  spec.head_dim = 16;
  spec.v_head_dim = 16;
  spec.return_lse = true;
  return spec;
}

v1::AttendRequest MakeRequest(client::RequestSpec spec, uint64_t seed,
                              const std::string& request_id) {
  spec.seed = seed;
  spec.request_id = request_id;
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(spec);
  if (!request.ok()) {
    ADD_FAILURE() << "GenerateRequest: " << request.status();
    return v1::AttendRequest();
  }
  return *std::move(request);
}

wire::DecodedRequest DecodeOrFail(const v1::AttendRequest& request) {
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::ProblemLimits());
  if (!decoded.ok()) {
    ADD_FAILURE() << "DecodeRequest: " << decoded.status();
    return wire::DecodedRequest();
  }
  return *std::move(decoded);
}

}  // namespace attnd::testing
