// The execution step of a batch of requests on one device:
//   allocate each output (and LSE) in its response → read the live budget once → MakePlan per
//   request (config.planner + the request's hint and chunk overrides) with its share of the
//   budget → Executor::RunBatch (one by one, overlapped on a GPU, or compatible requests as one
//   ragged launch on the CPU: attnd_ragged_launches_total, attnd_ragged_launch_requests_total)
//   → fill Execution (a ragged launch's members report their own plans).
// A RESOURCE_EXHAUSTED from the device re-plans that request alone with half the budget
// (attnd_oom_retries_total) once the batch is through.
//
// Host copies of a request's tensor bytes, end to end (kernel socket copies not counted; the
// counter attnd_host_copy_bytes_total{stage} adds them up, tests/server/service checks it):
//   CPU   in: 1 (gRPC's protobuf parse into the request message; the kernels read it in place)
//         out: 1 (the kernels write the response message; gRPC's serialization copies it)
//   CUDA  in: 2 (the parse, then one memcpy into pinned staging; DMA to the device)
//         out: 2 (DMA into pinned staging, one memcpy into the response message, serialization)
#ifndef ATTND_SERVER_EXECUTOR_REQUEST_RUNNER_H_
#define ATTND_SERVER_EXECUTOR_REQUEST_RUNNER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "attnd/v1/attention.pb.h"
#include "kernels/planner.h"
#include "server/executor/executor.h"
#include "server/metrics/metrics.h"
#include "wire/request_codec.h"

namespace attnd::server::executor {

// The name and help of the host-copy counter, shared with the service (which counts the gRPC
// parse and serialization) so that both sides of it stay one metric family.
extern const char kHostCopyBytesName[];
extern const char kHostCopyBytesHelp[];

// How a request came to run (from the scheduler).
struct RunContext {
  int batch_size = 1;
  double queue_seconds = 0;
};

// One request of a batch: the decoded request (whose views point into a live request), its id
// and how it came to run.
struct RunRequest {
  const wire::DecodedRequest* decoded = nullptr;
  std::string request_id;
  RunContext context;
};

// OK to launch request `index` of a batch now, or why not (checked right before it launches).
using AdmitFn = std::function<absl::Status(size_t index)>;
// Request `index` is answered (once each, as soon as it is).
using AnswerFn = std::function<void(size_t index, absl::StatusOr<v1::AttendResponse> result)>;

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

  // Computes a batch in order, answering each request through `answer` exactly once (a request
  // `admit` refuses is answered with admit's status and never launched). Same responses and
  // errors as Run, request by request.
  void RunBatch(absl::Span<const RunRequest> requests, const AdmitFn& admit,
                const AnswerFn& answer);

  // The batcher's memory cost of `decoded` here, read now: the device bytes of its tensors plus
  // the workspace the planner would choose for it under the live budget (from capabilities(),
  // not asking the device per problem, so this is cheap and never waits for a device context).
  // More than the budget when the planner fits nothing: such a request runs alone.
  int64_t MemoryCost(const wire::DecodedRequest& decoded) const;

  Executor* executor() const { return executor_; }

 private:
  struct Metrics;
  struct GaugeSource;
  struct Pending;
  class Callbacks;

  // Allocates the response's outputs and plans `request` under `budget` (less its tensors).
  absl::Status Prepare(const RunRequest& request, int64_t live_budget, int64_t share,
                       Pending* pending);
  // Runs one prepared request alone, re-planning with half the budget on RESOURCE_EXHAUSTED.
  absl::Status RunAlone(Pending* pending, int64_t first_budget);
  // Fills Execution and the metrics of a request that ran.
  absl::StatusOr<v1::AttendResponse> Finish(Pending* pending, const StageTimes& times);

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
