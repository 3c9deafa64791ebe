// One compute device (the CPU, or later one GPU): what it can run, how much memory a plan may
// use right now, and running a plan. The service-facing step around it (plan, allocate, run,
// fill the response) is RequestRunner (request_runner.h).
#ifndef ATTND_SERVER_EXECUTOR_EXECUTOR_H_
#define ATTND_SERVER_EXECUTOR_EXECUTOR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::server::executor {

// A device's memory as the metrics and GetServerInfo report it, read live.
struct MemoryStats {
  int64_t total_bytes = 0;     // the device's (host's) memory
  int64_t free_bytes = 0;      // free now (MemAvailable on the CPU; cudaMemGetInfo on a GPU)
  int64_t reserved_bytes = 0;  // what the pool holds (CPU: the budget's cap)
  int64_t used_bytes = 0;      // workspace of plans running now
  // Added for the CUDA pool (0 on the CPU, which has none): the pool's limit, the most it has
  // handed out at once, and the allocations it refused or could not get from the device.
  int64_t limit_bytes = 0;
  int64_t peak_used_bytes = 0;
  int64_t allocation_failures = 0;
};

class Executor {
 public:
  virtual ~Executor() = default;

  // "cpu", "cuda:0", ...: the Execution.device of responses and the metrics' device label.
  virtual const std::string& name() const = 0;
  // "cpu" or "cuda".
  virtual const std::string& kind() const = 0;
  virtual const kernels::Capabilities& capabilities() const = 0;
  // What the planner may choose from for one problem: capabilities() less the variants this
  // device can run only for some problems and not this one (cuDNN's fused attention answers
  // per shape). The planner itself stays pure; this is the step before it.
  virtual kernels::Capabilities CapabilitiesFor(const kernels::AttentionProblem& problem) const {
    (void)problem;
    return capabilities();
  }
  // The workspace `plan` really needs here: plan.workspace_bytes unless the device knows better
  // (cuDNN's plan workspace is cuDNN's to say). The runner re-plans without the variant when
  // this exceeds the budget.
  virtual absl::StatusOr<int64_t> DeviceWorkspaceBytes(
      const kernels::Plan& plan, const kernels::AttentionProblem& problem) const {
    (void)problem;
    return plan.workspace_bytes;
  }
  // Device memory the problem's own tensors (inputs and outputs) take while it runs beside the
  // plan's workspace: the budget the planner sees is MemoryBudgetBytes() minus this. 0 where the
  // kernels read the request's bytes in place (the CPU).
  virtual int64_t TensorBytes(const kernels::AttentionProblem& problem) const {
    (void)problem;
    return 0;
  }
  // OK, or why this device cannot serve at all (UNAVAILABLE after a fatal device error): the
  // runner answers with it before planning. Read after MemoryBudgetBytes, which may find out.
  virtual absl::Status Health() const { return absl::OkStatus(); }
  // What a new plan may use, read live (never cached): the planner's budget.
  virtual int64_t MemoryBudgetBytes() const = 0;
  virtual MemoryStats Memory() const = 0;
  // Runs `plan` on `tensors` (on this device). Thread-safe: workers call it concurrently.
  // RESOURCE_EXHAUSTED when the workspace could not be had (the caller may re-plan smaller).
  virtual absl::Status Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                           const kernels::AttentionTensors& tensors) = 0;
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_EXECUTOR_H_
