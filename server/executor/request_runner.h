// The execution step of one request on one device:
//   read the live budget → MakePlan (config.planner + the request's hint and chunk overrides)
//   → allocate the output (and LSE) in the response → Executor::Run → fill Execution.
// A RESOURCE_EXHAUSTED from Run re-plans with half the budget (attnd_oom_retries_total).
#ifndef ATTND_SERVER_EXECUTOR_REQUEST_RUNNER_H_
#define ATTND_SERVER_EXECUTOR_REQUEST_RUNNER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/planner.h"
#include "server/executor/executor.h"
#include "server/metrics/metrics.h"
#include "wire/request_codec.h"

namespace attnd::server::executor {

// How a request came to run (from the scheduler).
struct RunContext {
  int batch_size = 1;
  double queue_seconds = 0;
};

class RequestRunner {
 public:
  // `executor` must outlive the runner; `registry` may be null (no metrics) and must outlive
  // the runner otherwise. Registers the device's memory gauges, read at every scrape.
  RequestRunner(Executor* executor, const kernels::PlannerConfig& planner,
                metrics::Registry* registry, int max_oom_retries = 2);
  ~RequestRunner();

  RequestRunner(const RequestRunner&) = delete;
  RequestRunner& operator=(const RequestRunner&) = delete;

  // Computes `decoded` (whose views point into a live request) and returns the response: the
  // output in q's dtype and the request's layout, the LSE when asked, and what ran. Errors:
  // INVALID_ARGUMENT (a forced variant this device cannot run), RESOURCE_EXHAUSTED (nothing
  // fits the memory budget, or the output cannot be allocated), or the kernel's own.
  absl::StatusOr<v1::AttendResponse> Run(const wire::DecodedRequest& decoded,
                                         const std::string& request_id, const RunContext& context);

  Executor* executor() const { return executor_; }

 private:
  struct Metrics;
  struct GaugeSource;

  // Constant after construction.
  Executor* const executor_;
  const kernels::PlannerConfig planner_;
  const int max_oom_retries_;
  std::unique_ptr<Metrics> metrics_;     // null without a registry
  std::shared_ptr<GaugeSource> gauges_;  // shared with the registry's collect hook
};

// The planner config for one request: the server's, with the request's expert controls.
kernels::PlannerConfig PlannerConfigFor(const kernels::PlannerConfig& base,
                                        const wire::DecodedRequest& decoded);

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_REQUEST_RUNNER_H_
