#include "tests/common/requests.h"

#include <cstring>
#include <random>
#include <string>
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

namespace {

// Writes NaN, +Inf and -Inf, in `tensor`'s dtype, over three elements chosen by `rng`.
void Poison(v1::Tensor* tensor, std::mt19937_64* rng) {
  std::string* data = tensor->mutable_data();
  const bool f32 = tensor->dtype() == v1::DTYPE_F32;
  const size_t width = f32 ? 4 : 2;
  const size_t elements = data->size() / width;
  if (elements == 0) return;
  // f32: NaN, +Inf, -Inf; f16: 0x7e00, 0x7c00, 0xfc00; bf16: 0x7fc0, 0x7f80, 0xff80.
  const uint32_t f32_bits[3] = {0x7fc00000u, 0x7f800000u, 0xff800000u};
  const uint16_t f16_bits[3] = {0x7e00, 0x7c00, 0xfc00};
  const uint16_t bf16_bits[3] = {0x7fc0, 0x7f80, 0xff80};
  for (int i = 0; i < 3; ++i) {
    char* at = data->data() + ((*rng)() % elements) * width;
    if (f32) {
      std::memcpy(at, &f32_bits[i], 4);
    } else {
      std::memcpy(at, tensor->dtype() == v1::DTYPE_F16 ? &f16_bits[i] : &bf16_bits[i], 2);
    }
  }
}

}  // namespace

void PoisonWithNonFinite(v1::AttendRequest* request, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Poison(request->mutable_q(), &rng);
  Poison(request->mutable_k(), &rng);
  Poison(request->mutable_v(), &rng);
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
