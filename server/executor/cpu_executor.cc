#include "server/executor/cpu_executor.h"

#include <algorithm>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "kernels/cpu_attention.h"
#include "kernels/planner.h"
#include "server/executor/fatal_device_error.h"
#include "server/faults/fault_injector.h"

namespace attnd::server::executor {

int64_t CpuBudgetBytes(const MemorySection& memory, int64_t mem_available_bytes,
                       int64_t in_use_bytes) {
  const double fraction_bytes =
      memory.host_fraction * static_cast<double>(std::max<int64_t>(mem_available_bytes, 0));
  const int64_t by_fraction = static_cast<int64_t>(fraction_bytes);
  const int64_t by_config = memory.host_budget_bytes - std::max<int64_t>(in_use_bytes, 0);
  return std::max<int64_t>(std::min(by_config, by_fraction) - memory.safety_margin_bytes, 0);
}

int CpuThreads(const BackendSection& backend) {
  if (backend.cpu_threads > 0) return backend.cpu_threads;
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

CpuExecutor::CpuExecutor(const MemorySection& memory, int threads, MemInfoSource meminfo,
                         RaggedLaunchOptions batch)
    : memory_(memory), meminfo_(std::move(meminfo)), batch_(std::move(batch)) {
  capabilities_.is_cuda = false;
  capabilities_.variants = {kernels::Variant::kCpuChunked, kernels::Variant::kReference};
  capabilities_.threads = std::max(threads, 1);
}

MemInfo CpuExecutor::ReadMemInfo() const {
  absl::StatusOr<MemInfo> info = meminfo_();
  if (info.ok()) return *info;
  // No /proc (unusual): trust the configured cap alone.
  MemInfo fallback;
  fallback.total_bytes = memory_.host_budget_bytes;
  fallback.available_bytes = static_cast<int64_t>(static_cast<double>(memory_.host_budget_bytes) /
                                                  std::max(memory_.host_fraction, 1e-9));
  return fallback;
}

int64_t CpuExecutor::MemoryBudgetBytes() const {
  return CpuBudgetBytes(memory_, ReadMemInfo().available_bytes, in_use_bytes_.load());
}

MemoryStats CpuExecutor::Memory() const {
  const MemInfo info = ReadMemInfo();
  MemoryStats stats;
  stats.total_bytes = info.total_bytes;
  stats.free_bytes = info.available_bytes;
  stats.reserved_bytes = CpuBudgetBytes(memory_, info.available_bytes, /*in_use_bytes=*/0);
  stats.used_bytes = in_use_bytes_.load();
  stats.allocation_failures = allocation_failures_.load();
  return stats;
}

absl::Status CpuExecutor::Health() const {
  if (!broken_.load()) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(name_, " failed with a sticky device error (",
                                             FirstFatalDeviceError().message(),
                                             "); attnd is restarting, retry on another replica"));
}

absl::Status CpuExecutor::Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                              const kernels::AttentionTensors& tensors) {
  return RunHolding(plan, problem, tensors, /*held_bytes=*/0);
}

absl::Status CpuExecutor::RunHolding(const kernels::Plan& plan,
                                     const kernels::AttentionProblem& problem,
                                     const kernels::AttentionTensors& tensors, int64_t held_bytes) {
  if (absl::Status health = Health(); !health.ok()) return health;
  faults::FaultInjector* const injector = faults::Active();  // null in production
  if (injector != nullptr && injector->FailAllocation()) {
    allocation_failures_.fetch_add(1);
    return absl::ResourceExhaustedError(
        absl::StrCat("cpu could not get ", plan.workspace_bytes,
                     " workspace bytes (injected allocation failure)"));
  }
  // Held for the duration of the run, so that concurrent plans see a smaller budget.
  const int64_t in_use = plan.workspace_bytes + held_bytes;
  in_use_bytes_.fetch_add(in_use);
  absl::Status status;
  if (injector != nullptr) absl::SleepFor(injector->KernelDelay());
  switch (plan.variant) {
    case kernels::Variant::kCpuChunked:
      status = kernels::RunCpuChunked(plan, problem, tensors);
      break;
    case kernels::Variant::kReference:
      status = kernels::RunReference(problem, tensors);
      break;
    default:
      status = absl::InvalidArgumentError(
          absl::StrCat("variant ", std::string(kernels::VariantName(plan.variant)),
                       " cannot run on the cpu device"));
      break;
  }
  if (injector != nullptr) {
    absl::SleepFor(injector->CopyOutDelay());
    if (status.ok() && injector->StickyError()) {
      status = faults::InjectedStickyError();
      if (!broken_.exchange(true)) OnFatalDeviceError(name_, status);
      status = Health();
    }
  }
  in_use_bytes_.fetch_sub(in_use);
  return status;
}

void CpuExecutor::RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) {
  if (!batch_.ragged_launch || entries.size() < 2) {
    Executor::RunBatch(entries, callbacks);
    return;
  }
  RaggedGroupPolicy policy;
  // The reference takes ragged problems too, but a request that asked for it asked for the
  // oracle alone; auto plans on the CPU are cpu_chunked.
  policy.variants = {kernels::Variant::kCpuChunked};
  // The packed copies are host memory beside the requests' own: at most what a plan may use now.
  policy.max_packed_bytes = MemoryBudgetBytes();
  policy.max_tokens = batch_.max_batch_tokens;
  const std::vector<std::vector<size_t>> groups = ChooseRaggedGroups(entries, policy);
  RaggedLaunchSteps steps;
  steps.plan = [&](const kernels::AttentionProblem& problem, int64_t budget) {
    kernels::PlannerConfig config = batch_.planner;
    config.forced_variant = kernels::Variant::kCpuChunked;
    return kernels::MakePlan(problem, capabilities_, budget, config);
  };
  steps.run = [&](const kernels::Plan& plan, const RaggedLaunch& launch,
                  const kernels::AttentionTensors& packed) {
    return RunHolding(plan, launch.problem, packed, launch.packed_bytes());
  };
  steps.run_alone = [&](size_t i) { RunEntry(entries, i, callbacks); };
  RunBatchInGroups(entries, groups, callbacks, steps);
}

}  // namespace attnd::server::executor
