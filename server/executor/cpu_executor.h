// The CPU as a device: cpu_chunked (and the float64 reference) on host memory, with a budget
// from config and the host's available memory; a batch's compatible requests run as one ragged
// cpu_chunked launch (ragged_group.h, ragged_runner.h).
#ifndef ATTND_SERVER_EXECUTOR_CPU_EXECUTOR_H_
#define ATTND_SERVER_EXECUTOR_CPU_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "server/config/config.h"
#include "server/executor/executor.h"
#include "server/executor/meminfo.h"
#include "server/executor/ragged_runner.h"

namespace attnd::server::executor {

// The planner's budget on the CPU, a pure function:
//   min(host_budget_bytes - in_use, host_fraction * mem_available) - safety_margin_bytes,
// never below 0. `in_use` is workspace held by plans already running (host_budget_bytes caps
// them all together; MemAvailable already reflects them).
int64_t CpuBudgetBytes(const MemorySection& memory, int64_t mem_available_bytes,
                       int64_t in_use_bytes);

// backend.cpu_threads, or the hardware's concurrency when that is 0.
int CpuThreads(const BackendSection& backend);

class CpuExecutor final : public Executor {
 public:
  CpuExecutor(const MemorySection& memory, int threads, MemInfoSource meminfo = ReadProcMemInfo,
              RaggedLaunchOptions batch = {});

  const std::string& name() const override { return name_; }
  const std::string& kind() const override { return kind_; }
  const kernels::Capabilities& capabilities() const override { return capabilities_; }
  // UNAVAILABLE once an injected sticky error (server/faults) broke it; the CPU meets no real one.
  absl::Status Health() const override;
  int64_t MemoryBudgetBytes() const override;
  MemoryStats Memory() const override;
  // Consults the process's fault injector (server/faults), if any: an injected allocation
  // failure is RESOURCE_EXHAUSTED before computing, a slow kernel stalls before it, a slow
  // copy-out after it (holding the workspace, as a GPU holds its block until the copy is back),
  // and a sticky error marks the device broken and reports OnFatalDeviceError.
  absl::Status Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                   const kernels::AttentionTensors& tensors) override;

  // With batch.ragged_launch: each group of compatible entries (ChooseRaggedGroups, packed
  // bytes capped by the live budget) runs as one ragged launch at its first member's place in
  // the batch; the rest one by one, in order, as Executor::RunBatch.
  void RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) override;

 private:
  // MemAvailable, or (when /proc/meminfo cannot be read) what the config allows.
  MemInfo ReadMemInfo() const;
  // Run's body, shared with ragged launches: the fault injector, and `plan`'s workspace plus
  // `held_bytes` (a launch's packed copies) counted in use while it runs.
  absl::Status RunHolding(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                          const kernels::AttentionTensors& tensors, int64_t held_bytes);

  // Constant after construction.
  const std::string name_ = "cpu";
  const std::string kind_ = "cpu";
  const MemorySection memory_;
  const MemInfoSource meminfo_;
  const RaggedLaunchOptions batch_;  // its ragged launches: cpu_chunked
  kernels::Capabilities capabilities_;

  std::atomic<int64_t> in_use_bytes_{0};
  std::atomic<int64_t> allocation_failures_{0};  // injected ones: the CPU has no pool to refuse
  std::atomic<bool> broken_{false};
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_CPU_EXECUTOR_H_
