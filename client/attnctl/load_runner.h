// The load generator behind `attnctl load`: pre-built requests (one, or a mixed set cycled in
// order: call i sends requests[i % n]) sent over and over with at most `concurrency` calls in
// flight, to Attend or (echo) to Echo, on gRPC's callback API (one dispatching thread, no thread
// per worker, so the client keeps up at concurrency 64 and beyond on two cores).
//
// Closed loop (rps = 0): a new call starts as soon as one of the `concurrency` slots is free;
// latency is measured from the send. Open loop (rps > 0): call i is due at start + i / rps,
// whatever came back; latency is measured from when it was due, so a server (or client) that
// falls behind shows up as latency rather than hiding in a slower send rate.
#ifndef ATTND_CLIENT_ATTNCTL_LOAD_RUNNER_H_
#define ATTND_CLIENT_ATTNCTL_LOAD_RUNNER_H_

#include <cstdint>
#include <functional>
#include <optional>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "attnd/v1/attention.pb.h"
#include "client/attnctl/load_stats.h"
#include "client/client.h"

namespace attnd::attnctl {

struct LoadProgress {
  double elapsed_s = 0;
  int64_t done = 0;  // answered so far, ok or not
  int64_t errors = 0;
  double rate_rps = 0;  // answers per second since the previous report
};

struct LoadOptions {
  int concurrency = 1;
  std::optional<absl::Duration> duration;      // stop sending after this...
  int64_t requests = 0;                        // ...or after this many (when > 0)
  double rps = 0;                              // 0: closed loop
  absl::Duration timeout = absl::Seconds(60);  // per call
  bool echo = false;                           // call Echo (the wire alone) instead of Attend
  // Called from a background thread about every `progress_interval` while the run lasts.
  std::function<void(const LoadProgress&)> on_progress;
  absl::Duration progress_interval = absl::Seconds(1);
};

// Runs to completion (every call sent is waited for) and returns the figures; `report.shape`
// is left for the caller to fill.
LoadReport RunLoadTest(client::Client& client, const v1::AttendRequest& request,
                       const LoadOptions& options);
// The same over `requests` (at least one; they must stay alive until it returns), cycled.
LoadReport RunLoadTest(client::Client& client, absl::Span<const v1::AttendRequest> requests,
                       const LoadOptions& options);

}  // namespace attnd::attnctl

#endif  // ATTND_CLIENT_ATTNCTL_LOAD_RUNNER_H_
