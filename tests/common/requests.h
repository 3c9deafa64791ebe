// Random AttendRequests for the server tests, from the client library's generator
// (client::GenerateRequest: seeded N(0, 1) values, never zero), and decoding them as the
// server does.
#ifndef ATTND_TESTS_COMMON_REQUESTS_H_
#define ATTND_TESTS_COMMON_REQUESTS_H_

#include <cstdint>
#include <string>

#include "attnd/v1/attention.pb.h"
#include "client/tensor_gen.h"
#include "wire/request_codec.h"

namespace attnd::testing {

// The small problem the server tests start from: B=2, Mq=7, Mk=13, Hq=4, Hkv=2 (GQA),
// D=Dv=16, f32, BMHK, no mask, LSE returned.
client::RequestSpec SmallSpec();

// client::GenerateRequest for `spec` with `seed` and `request_id`. A spec it cannot generate is
// a test failure (and an empty request).
v1::AttendRequest MakeRequest(client::RequestSpec spec, uint64_t seed,
                              const std::string& request_id = "req");

// Overwrites a few elements of q, k and v with NaN, +Inf and -Inf (in each tensor's dtype), at
// positions chosen by `seed`: a request whose inputs are poisoned, for the isolation tests.
void PoisonWithNonFinite(v1::AttendRequest* request, uint64_t seed);

// wire::DecodeRequest with the default limits, as the server's executor sees the request. A
// request that does not decode is a test failure (and an empty problem). The result points into
// `request`, which must outlive it.
wire::DecodedRequest DecodeOrFail(const v1::AttendRequest& request);

}  // namespace attnd::testing

#endif  // ATTND_TESTS_COMMON_REQUESTS_H_
