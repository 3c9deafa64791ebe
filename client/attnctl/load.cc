// attnctl load: a load test of Attend (or Echo, the wire alone) with pre-built requests (so
// generating tensors is not measured): one, or a mixed stream of lengths; a progress line on
// stderr, then the summary (and --json FILE).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/attnctl/build_request.h"
#include "client/attnctl/commands.h"
#include "client/attnctl/load_runner.h"

namespace attnd::attnctl {

std::vector<int64_t> MixedLengths(int64_t min_len, int64_t max_len, int count, uint64_t seed) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < count; ++i) {
    lengths.push_back(count == 1 ? max_len : min_len + (max_len - min_len) * i / (count - 1));
  }
  std::mt19937_64 rng(seed);
  std::shuffle(lengths.begin(), lengths.end(), rng);
  return lengths;
}

int RunLoad(const CommandLine& command_line, std::ostream& out, std::ostream& err) {
  const LoadFlags& flags = command_line.load;
  absl::StatusOr<BuiltRequest> built = BuildRequest(flags.problem);
  if (!built.ok()) {
    PrintError(err, "request", built.status());
    return kExitError;
  }
  std::vector<v1::AttendRequest> requests;
  int64_t request_bytes = static_cast<int64_t>(built->request.ByteSizeLong());
  if (flags.mixed_lengths.has_value()) {
    const auto [min_len, max_len] = *flags.mixed_lengths;
    int64_t total_bytes = 0;
    const std::vector<int64_t> lengths =
        MixedLengths(min_len, max_len, flags.mix_requests, flags.problem.seed);
    for (size_t i = 0; i < lengths.size(); ++i) {
      ProblemFlags problem = flags.problem;
      problem.q_len = lengths[i];
      problem.kv_len = lengths[i];
      problem.seed = flags.problem.seed + i;
      absl::StatusOr<BuiltRequest> one = BuildRequest(problem);
      if (!one.ok()) {
        PrintError(err, "request", one.status());
        return kExitError;
      }
      one->request.set_request_id(absl::StrCat("attnctl-mix-", i));
      total_bytes += static_cast<int64_t>(one->request.ByteSizeLong());
      requests.push_back(std::move(one->request));
    }
    request_bytes = total_bytes / static_cast<int64_t>(requests.size());
  } else {
    requests.push_back(std::move(built->request));
  }
  absl::StatusOr<std::unique_ptr<client::Client>> client =
      MakeClient(command_line.global, flags.channels);
  if (!client.ok()) {
    PrintError(err, "client", client.status());
    return kExitError;
  }
  // Connect first, so a server that is not there fails fast and connection setup is not
  // counted as the first requests' latency.
  if (absl::Status s = (*client)->WaitForReady(command_line.global.timeout); !s.ok()) {
    PrintError(err, "connect", s);
    return kExitError;
  }

  err << "load: " << (flags.echo ? "Echo, " : "") << DescribeSpec(built->spec);
  if (flags.mixed_lengths.has_value()) {
    err << " (Mq=Mk in [" << flags.mixed_lengths->first << ", " << flags.mixed_lengths->second
        << "] over " << requests.size() << " requests)";
  }
  err << ", " << request_bytes << " bytes a request" << (requests.size() > 1 ? " on average" : "")
      << ", concurrency " << flags.concurrency
      << (flags.rps > 0 ? absl::StrFormat(", open loop at %g req/s", flags.rps)
                        : std::string(", closed loop"))
      << "\n";

  LoadOptions options;
  options.concurrency = flags.concurrency;
  options.duration = flags.duration;
  options.requests = flags.requests;
  options.rps = flags.rps;
  options.timeout = command_line.global.timeout;
  options.echo = flags.echo;
  const bool tty = isatty(STDERR_FILENO) == 1;
  size_t last_width = 0;
  options.on_progress = [&err, tty, &last_width](const LoadProgress& p) {
    std::string line = FormatProgress(p.elapsed_s, p.done, p.rate_rps, p.errors);
    if (tty) {
      // Pad over a longer previous line.
      const size_t width = line.size();
      if (width < last_width) line.append(last_width - width, ' ');
      last_width = width;
      err << "\r" << line << std::flush;
    } else {
      err << line << "\n" << std::flush;
    }
  };

  LoadReport report = RunLoadTest(**client, requests, options);
  if (tty && last_width > 0) err << "\n";
  report.shape = built->spec;
  report.method = flags.echo ? "Echo" : "Attend";
  report.distinct_requests = static_cast<int64_t>(requests.size());
  if (flags.mixed_lengths.has_value()) {
    report.min_len = flags.mixed_lengths->first;
    report.max_len = flags.mixed_lengths->second;
  }

  out << FormatReportText(report);
  if (!flags.json_file.empty()) {
    std::ofstream file(flags.json_file, std::ios::trunc);
    file << FormatReportJson(report);
    file.close();
    if (!file) {
      PrintError(err, "--json",
                 absl::PermissionDeniedError(absl::StrCat("cannot write ", flags.json_file)));
      return kExitError;
    }
  }
  if (report.ok == 0) {
    err << "attnctl: every request failed\n";
    return kExitError;
  }
  return kExitOk;
}

}  // namespace attnd::attnctl
