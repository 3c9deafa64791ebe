// One compute device (the CPU, or later one GPU): what it can run, how much memory a plan may
// use right now, and running a plan. The service-facing step around it (plan, allocate, run,
// fill the response) is RequestRunner (request_runner.h).
#ifndef ATTND_SERVER_EXECUTOR_EXECUTOR_H_
#define ATTND_SERVER_EXECUTOR_EXECUTOR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "kernels/planner.h"
#include "kernels/problem.h"

namespace attnd::server::executor {

// A device's memory as the metrics and GetServerInfo report it, read live.
struct MemoryStats {
  int64_t total_bytes = 0;     // the device's (host's) memory
  int64_t free_bytes = 0;      // free now (MemAvailable on the CPU; cudaMemGetInfo on a GPU)
  int64_t reserved_bytes = 0;  // what the pool holds (CPU: the budget's cap)
  int64_t used_bytes = 0;      // workspace of plans running now
};

class Executor {
 public:
  virtual ~Executor() = default;

  // "cpu", "cuda:0", ...: the Execution.device of responses and the metrics' device label.
  virtual const std::string& name() const = 0;
  // "cpu" or "cuda".
  virtual const std::string& kind() const = 0;
  virtual const kernels::Capabilities& capabilities() const = 0;
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
