// libFuzzer target: bytes -> AttendRequest -> wire::DecodeRequest, as the server decodes every
// request before anything is allocated for it. Beyond "no crash, no sanitizer report", it
// checks what the server relies on once a request is accepted:
//   - the views DecodeRequest returns lie inside the request's own bytes, sized as the problem
//     says (the kernels read exactly that much);
//   - a request accepted under tight limits is accepted under the default ones;
//   - an accepted problem small enough to compute runs through the float64 reference and
//     cpu_chunked without error: validation lets through nothing the kernels refuse, and
//     AddressSanitizer watches every read they make of the request's bytes.
// A custom mutator (request_mutator.cc) mutates parsed requests field by field; inputs that do
// not parse get libFuzzer's byte mutations.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "google/protobuf/stubs/logging.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/cpu_attention.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/fuzz/request_mutator.h"
#include "wire/request_codec.h"

extern "C" size_t LLVMFuzzerMutate(uint8_t* data, size_t size, size_t max_size);

namespace {

using attnd::kernels::AttentionProblem;
using attnd::kernels::ProblemLimits;
using attnd::wire::DecodedRequest;
namespace kernels = attnd::kernels;
namespace v1 = attnd::v1;

// Tight limits, so that small inputs reach every limit check; and the defaults (config/attnd.yaml's
// limits section sets the same values).
ProblemLimits TightLimits() {
  ProblemLimits limits;
  limits.max_batch = 4;
  limits.max_seq_len = 64;
  limits.max_heads = 8;
  limits.max_head_dim = 32;
  limits.max_tensor_elements = 4096;
  limits.max_tokens = 128;
  return limits;
}

// A broken invariant: say which, show the request, and abort so libFuzzer saves the input.
[[noreturn]] void Fail(const std::string& what, const v1::AttendRequest& request) {
  std::fprintf(stderr, "request_fuzzer: %s\nrequest (without data): %s\n", what.c_str(),
               [&] {
                 v1::AttendRequest shown = request;
                 for (v1::Tensor* t : {shown.mutable_q(), shown.mutable_k(), shown.mutable_v(),
                                       shown.mutable_bias()}) {
                   t->set_data(std::to_string(t->data().size()) + " bytes");
                 }
                 return shown.ShortDebugString();
               }()
                   .c_str());
  std::abort();
}

// `view` must point at the first byte of `data`, which must hold `bytes` bytes.
void CheckView(const char* name, const void* view, const std::string& data, int64_t bytes,
               const v1::AttendRequest& request) {
  if (view != data.data() || static_cast<int64_t>(data.size()) != bytes) {
    Fail(std::string(name) + ": view or size does not match the problem (" +
             std::to_string(data.size()) + " bytes, problem wants " + std::to_string(bytes) + ")",
         request);
  }
}

void CheckAccepted(const DecodedRequest& d, const v1::AttendRequest& request) {
  const AttentionProblem& p = d.problem;
  const int64_t size = static_cast<int64_t>(kernels::DTypeSize(p.dtype));
  CheckView("q", d.q, request.q().data(), p.q_elements() * size, request);
  CheckView("k", d.k, request.k().data(), p.k_elements() * size, request);
  CheckView("v", d.v, request.v().data(), p.v_elements() * size, request);
  if (p.has_bias) {
    CheckView("bias", d.bias, request.bias().data(),
              p.bias_elements() * static_cast<int64_t>(kernels::DTypeSize(p.bias_dtype)), request);
  } else if (d.bias != nullptr) {
    Fail("bias view without has_bias", request);
  }
  if (p.has_kv_lengths != (static_cast<int64_t>(d.kv_lengths.size()) == p.batch)) {
    Fail("kv_lengths count does not match has_kv_lengths", request);
  }
  if (d.out_bytes() <= 0 || d.lse_bytes() < 0) Fail("non-positive output size", request);
}

// Runs an accepted problem through the CPU kernels when it is small enough to be quick.
void RunKernels(const DecodedRequest& d, const v1::AttendRequest& request) {
  const AttentionProblem& p = d.problem;
  const int64_t work = p.batch * p.q_heads * p.q_len * p.kv_len * (p.head_dim + p.v_head_dim);
  if (work > (int64_t{1} << 16)) return;
  std::vector<char> out(static_cast<size_t>(d.out_bytes()));
  std::vector<float> lse(static_cast<size_t>(d.lse_bytes() / 4));
  const kernels::AttentionTensors tensors = attnd::wire::TensorsFor(d, out.data(), lse.data());
  absl::Status status = kernels::RunReference(p, tensors);
  if (!status.ok()) Fail("reference refused an accepted request: " + status.ToString(), request);

  kernels::Capabilities caps;
  caps.variants = {kernels::Variant::kCpuChunked, kernels::Variant::kReference};
  caps.threads = 1;
  kernels::PlannerConfig config;
  config.forced_variant = kernels::Variant::kCpuChunked;
  config.q_chunk_override = d.q_chunk;
  config.kv_chunk_override = d.kv_chunk;
  const absl::StatusOr<kernels::Plan> plan = kernels::MakePlan(p, caps, int64_t{1} << 28, config);
  if (!plan.ok()) Fail("no cpu_chunked plan for an accepted request: " + plan.status().ToString(),
                       request);
  status = kernels::RunCpuChunked(*plan, p, tensors);
  if (!status.ok()) Fail("cpu_chunked refused an accepted request: " + status.ToString(), request);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // Parsing invalid UTF-8 in request_id logs an error per input; the fuzzer's output is for
  // findings.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  v1::AttendRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;

  const absl::StatusOr<DecodedRequest> tight = attnd::wire::DecodeRequest(request, TightLimits());
  const absl::StatusOr<DecodedRequest> loose = attnd::wire::DecodeRequest(request, ProblemLimits());
  if (tight.ok() && !loose.ok()) {
    Fail("accepted under tight limits, refused under the defaults: " + loose.status().ToString(),
         request);
  }
  for (const absl::StatusOr<DecodedRequest>* decoded : {&tight, &loose}) {
    if (decoded->ok()) {
      CheckAccepted(**decoded, request);
    } else if ((*decoded).status().code() != absl::StatusCode::kInvalidArgument ||
               (*decoded).status().message().empty()) {
      Fail("refused with other than INVALID_ARGUMENT and a message: " +
               (*decoded).status().ToString(),
           request);
    }
  }
  if (loose.ok()) RunKernels(*loose, request);
  return 0;
}

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  std::mt19937_64 rng(seed);
  v1::AttendRequest request;
  // One time in four, or when it does not parse: libFuzzer's own byte mutations.
  if (rng() % 4 == 0 || !request.ParseFromArray(data, static_cast<int>(size))) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  attnd::fuzz::MutateRequest(rng, &request);
  std::string bytes;
  if (!request.SerializeToString(&bytes) || bytes.size() > max_size) {
    return LLVMFuzzerMutate(data, size, max_size);
  }
  std::copy(bytes.begin(), bytes.end(), data);
  return bytes.size();
}
