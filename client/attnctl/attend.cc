// attnctl attend: one request (random or from .npy files), what ran, how long, and optionally
// the output saved and checked against the local float64 reference.
#include <chrono>

#include "absl/strings/str_format.h"
#include "client/attnctl/build_request.h"
#include "client/attnctl/check.h"
#include "client/attnctl/commands.h"
#include "client/npy.h"
#include "wire/request_codec.h"

namespace attnd::attnctl {
namespace {

// 4·B·Hq·Mq·Mk·D-style flops of the request, from the server's own decoding; 0 when the
// client cannot decode it.
double RequestFlops(const v1::AttendRequest& request) {
  absl::StatusOr<wire::DecodedRequest> decoded = wire::DecodeRequest(request, UnboundedLimits());
  return decoded.ok() ? decoded->problem.Flops() : 0;
}

void PrintExecution(const v1::AttendResponse& response, double round_trip_s, double flops,
                    std::ostream& out) {
  const v1::Execution& e = response.execution();
  out << absl::StrFormat(
      "ran      variant %s, q_chunk %d, kv_chunk %d, workspace %d bytes, device %s, batch of %d\n",
      VariantName(e.variant()), e.q_chunk(), e.kv_chunk(), e.workspace_bytes(),
      e.device().empty() ? "?" : e.device(), e.batch_size());
  out << "plan     " << (e.plan_reason().empty() ? "(no reason given)" : e.plan_reason()) << "\n";
  out << absl::StrFormat("time     queue %.3f ms, compute %.3f ms, round trip %.3f ms",
                         e.queue_seconds() * 1e3, e.compute_seconds() * 1e3, round_trip_s * 1e3);
  // In a ragged launch compute_seconds is the whole launch's: no rate of this request's own.
  if (flops > 0 && e.compute_seconds() > 0 && e.launch_requests() <= 1) {
    out << absl::StrFormat(", %.2f GFLOP/s in compute", flops / e.compute_seconds() / 1e9);
  }
  out << "\n";
}

}  // namespace

int RunAttend(const CommandLine& command_line, std::ostream& out, std::ostream& err) {
  const AttendFlags& flags = command_line.attend;
  absl::StatusOr<BuiltRequest> built = BuildRequest(flags.problem);
  if (!built.ok()) {
    PrintError(err, "request", built.status());
    return kExitError;
  }
  out << "problem  " << DescribeSpec(built->spec) << "\n";

  absl::StatusOr<std::unique_ptr<client::Client>> client = MakeClient(command_line.global);
  if (!client.ok()) {
    PrintError(err, "client", client.status());
    return kExitError;
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<v1::AttendResponse> response =
      (*client)->Attend(built->request, command_line.global.timeout);
  const double round_trip_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!response.ok()) {
    PrintError(err, "Attend", response.status());
    return kExitError;
  }
  PrintExecution(*response, round_trip_s, RequestFlops(built->request), out);

  if (!flags.out_file.empty()) {
    if (absl::Status s = client::WriteNpy(flags.out_file, client::FromTensor(response->out()));
        !s.ok()) {
      PrintError(err, "--out", s);
      return kExitError;
    }
    out << "wrote    " << flags.out_file << "\n";
  }
  if (!flags.lse_file.empty()) {
    if (absl::Status s = client::WriteNpy(flags.lse_file, client::FromTensor(response->lse()));
        !s.ok()) {
      PrintError(err, "--lse-out", s);
      return kExitError;
    }
    out << "wrote    " << flags.lse_file << "\n";
  }

  if (!flags.check) return kExitOk;
  absl::StatusOr<CheckResult> check = CheckResponse(built->request, *response);
  if (!check.ok()) {
    PrintError(err, "check", check.status());
    return kExitCheckFailed;
  }
  out << check->Summary() << "\n";
  return check->passed ? kExitOk : kExitCheckFailed;
}

}  // namespace attnd::attnctl
