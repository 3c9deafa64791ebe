// The request that `attnctl attend` and `attnctl load` send: random tensors from the shape
// flags, or the tensors of .npy files (whose shapes then define the problem).
#ifndef ATTND_CLIENT_ATTNCTL_BUILD_REQUEST_H_
#define ATTND_CLIENT_ATTNCTL_BUILD_REQUEST_H_

#include <string>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"
#include "client/attnctl/flags.h"
#include "client/tensor_gen.h"

namespace attnd::attnctl {

struct BuiltRequest {
  v1::AttendRequest request;
  client::RequestSpec spec;  // the problem's dimensions and options, files included
};

// INVALID_ARGUMENT for inconsistent flags or files (a file's shape that disagrees with a shape
// flag, q/k/v of different dtypes, ranks other than 4), NOT_FOUND for a missing file.
absl::StatusOr<BuiltRequest> BuildRequest(const ProblemFlags& flags);

// One line: "B=2 Mq=128 Mk=128 Hq=8 Hkv=8 D=64 Dv=64 f32 bmhk causal=none bias=no lse=no".
std::string DescribeSpec(const client::RequestSpec& spec);

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_BUILD_REQUEST_H_
