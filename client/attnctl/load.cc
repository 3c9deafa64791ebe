// attnctl load: a load test of Attend with one pre-built request (so generating tensors is not
// measured), a progress line on stderr, then the summary (and --json FILE).
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "absl/strings/str_format.h"
#include "client/attnctl/build_request.h"
#include "client/attnctl/commands.h"
#include "client/attnctl/load_runner.h"

namespace attnd::attnctl {

int RunLoad(const CommandLine& command_line, std::ostream& out, std::ostream& err) {
  const LoadFlags& flags = command_line.load;
  absl::StatusOr<BuiltRequest> built = BuildRequest(flags.problem);
  if (!built.ok()) {
    PrintError(err, "request", built.status());
    return kExitError;
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

  err << "load: " << DescribeSpec(built->spec) << ", " << built->request.ByteSizeLong()
      << " bytes a request, concurrency " << flags.concurrency
      << (flags.rps > 0 ? absl::StrFormat(", open loop at %g req/s", flags.rps)
                        : std::string(", closed loop"))
      << "\n";

  LoadOptions options;
  options.concurrency = flags.concurrency;
  options.duration = flags.duration;
  options.requests = flags.requests;
  options.rps = flags.rps;
  options.timeout = command_line.global.timeout;
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

  LoadReport report = RunLoadTest(**client, built->request, options);
  if (tty && last_width > 0) err << "\n";
  report.shape = built->spec;

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
