// One compute device (the CPU, or one GPU): what it can run, how much memory a plan may use right
// now, and running plans: one (Run) or a batch (RunBatch). The service-facing step around it
// (plan, allocate, run, fill the response) is RequestRunner (request_runner.h).
#ifndef ATTND_SERVER_EXECUTOR_EXECUTOR_H_
#define ATTND_SERVER_EXECUTOR_EXECUTOR_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
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

// How one request of a batch went through the device: the time of each stage and the bytes the
// host copied for it. A stage the device does not have (the CPU copies nothing) stays 0.
struct StageTimes {
  double copy_in_seconds = 0;       // host → device DMA (GPU events)
  double compute_seconds = 0;       // the plan's kernels (GPU events; wall time on the CPU)
  double copy_out_seconds = 0;      // device → host DMA (GPU events)
  double host_staging_seconds = 0;  // host memcpy into and out of pinned staging
  // Bytes the host copied between the request's own buffers (the request and response messages)
  // and the device's: into pinned staging, and out of it. 0 on the CPU, whose kernels read and
  // write the messages' bytes in place.
  int64_t host_copy_in_bytes = 0;
  int64_t host_copy_out_bytes = 0;
  // The requests that ran in this request's launch: 1 alone; more in a ragged launch, whose
  // members all report the shared launch's times. first_in_launch: this request is the launch's
  // first member (so a launch is counted once).
  int launch_requests = 1;
  bool first_in_launch = true;
  // The plan that ran, when it is not the entry's own (a ragged launch's); valid until Done
  // returns.
  const kernels::Plan* launch_plan = nullptr;
};

// One request of a batch: its plan and its tensors on the host (inputs in the request's bytes,
// outputs in the response's).
struct BatchEntry {
  const kernels::Plan* plan = nullptr;
  const kernels::AttentionProblem* problem = nullptr;
  kernels::AttentionTensors tensors;
  // The request fixed its chunk sizes (expert overrides): it runs with its own plan, never
  // inside a ragged launch that would plan chunks for all its members.
  bool fixed_chunks = false;
};

// What RunBatch reports to, from the thread that called it.
class BatchCallbacks {
 public:
  virtual ~BatchCallbacks() = default;
  // Asked right before entry `index` is launched: OK, or why it must not run any more (its
  // deadline passed or its client cancelled while earlier entries ran). A refused entry is
  // not launched and gets no Done.
  virtual absl::Status Admit(size_t index) = 0;
  // Entry `index` is finished: its outputs are on the host when `status` is OK. Called once per
  // admitted entry, as soon as it is (not when the whole batch is). RESOURCE_EXHAUSTED: the
  // workspace could not be had (the caller may re-plan smaller and Run it alone).
  virtual void Done(size_t index, absl::Status status, const StageTimes& times) = 0;
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

  // Runs a batch, in order, answering each entry through `callbacks`. Thread-safe like Run.
  //
  // This is the seam where a ragged launch plugs in: a device whose variant takes requests of
  // different lengths in one launch runs the batch's compatible entries as one launch here
  // (ragged_group.h chooses and packs them). The CPU executor does (cpu_chunked); this default
  // calls Run for each entry (compute_seconds: its wall time); the CUDA executor overlaps one
  // entry's copies with another's compute on separate streams, still one launch per entry.
  virtual void RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks);

  // How many of a batch's entries may hold device memory at once (their tensors and
  // workspace): the runner plans each entry of a batch with 1/this of the live budget.
  virtual int RequestsInFlight() const { return 1; }

 protected:
  // Runs entry `index` alone through Run and answers it (compute_seconds: its wall time): the
  // default RunBatch's step, for devices that run some entries of a batch otherwise.
  void RunEntry(absl::Span<const BatchEntry> entries, size_t index, BatchCallbacks* callbacks);
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_EXECUTOR_H_
