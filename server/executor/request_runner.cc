#include "server/executor/request_runner.h"

#include <algorithm>
#include <chrono>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace attnd::server::executor {

struct RequestRunner::Metrics {
  metrics::Registry* registry;
  metrics::Counter* oom_retries;
  metrics::Histogram* q_chunk;
  metrics::Histogram* kv_chunk;

  explicit Metrics(metrics::Registry* r)
      : registry(r),
        oom_retries(r->GetCounter("attnd_oom_retries_total",
                                  "Plans retried with a smaller budget after an allocation "
                                  "failed.")),
        q_chunk(r->GetHistogram("attnd_chunk_tokens", "Chunk sizes of the plans that ran.",
                                metrics::ExponentialBuckets(1, 4, 11), {{"axis", "q"}})),
        kv_chunk(r->GetHistogram("attnd_chunk_tokens", "Chunk sizes of the plans that ran.",
                                 metrics::ExponentialBuckets(1, 4, 11), {{"axis", "kv"}})) {}

  void ObservePlan(const kernels::Plan& plan) {
    const std::string variant(kernels::VariantName(plan.variant));
    registry->GetCounter("attnd_plans_total", "Plans made, by variant.", {{"variant", variant}})
        ->Increment();
    q_chunk->Observe(static_cast<double>(plan.q_chunk));
    kv_chunk->Observe(static_cast<double>(plan.kv_chunk));
  }

  void ObserveCompute(kernels::Variant variant, double seconds) {
    registry
        ->GetHistogram("attnd_compute_duration_seconds",
                       "Time spent computing requests on a device, by variant.",
                       metrics::ExponentialBuckets(0.0001, 2.0, 22),  // 100us .. 210s
                       {{"variant", std::string(kernels::VariantName(variant))}})
        ->Observe(seconds);
  }
};

// The device's memory gauges, refreshed at each scrape while the runner lives.
struct RequestRunner::GaugeSource {
  absl::Mutex mu;
  Executor* executor ABSL_GUARDED_BY(mu);
  metrics::Gauge* free_bytes;
  metrics::Gauge* reserved_bytes;
  metrics::Gauge* used_bytes;
  // A device pool's own figures (CUDA devices only; null on the CPU).
  metrics::Gauge* limit_bytes = nullptr;
  metrics::Gauge* peak_used_bytes = nullptr;
  metrics::Counter* allocation_failures = nullptr;
  int64_t failures_counted ABSL_GUARDED_BY(mu) = 0;

  void Refresh() {
    absl::MutexLock lock(&mu);
    if (executor == nullptr) return;
    const MemoryStats stats = executor->Memory();
    free_bytes->Set(static_cast<double>(stats.free_bytes));
    reserved_bytes->Set(static_cast<double>(stats.reserved_bytes));
    used_bytes->Set(static_cast<double>(stats.used_bytes));
    if (limit_bytes == nullptr) return;
    limit_bytes->Set(static_cast<double>(stats.limit_bytes));
    peak_used_bytes->Set(static_cast<double>(stats.peak_used_bytes));
    if (stats.allocation_failures > failures_counted) {
      allocation_failures->Increment(
          static_cast<double>(stats.allocation_failures - failures_counted));
      failures_counted = stats.allocation_failures;
    }
  }
};

namespace {

// MakePlan, then the device's own figure for the plan's workspace (cuDNN's plan workspace is
// cuDNN's to say). A plan whose device workspace exceeds the budget drops its variant from
// `capabilities` and plans again (a forced variant is RESOURCE_EXHAUSTED instead).
absl::StatusOr<kernels::Plan> PlanOnDevice(const Executor& executor,
                                           const kernels::AttentionProblem& problem, int64_t budget,
                                           const kernels::PlannerConfig& config,
                                           kernels::Capabilities* capabilities) {
  for (;;) {
    absl::StatusOr<kernels::Plan> plan = kernels::MakePlan(problem, *capabilities, budget, config);
    if (!plan.ok()) return plan.status();
    absl::StatusOr<int64_t> device_bytes = executor.DeviceWorkspaceBytes(*plan, problem);
    if (!device_bytes.ok()) return device_bytes.status();
    if (*device_bytes == plan->workspace_bytes) return plan;
    const std::string variant(kernels::VariantName(plan->variant));
    if (*device_bytes > budget) {
      if (config.forced_variant != kernels::Variant::kAuto) {
        return absl::ResourceExhaustedError(absl::StrCat(variant, " needs ", *device_bytes,
                                                         " workspace bytes on ", executor.name(),
                                                         " but the budget is ", budget, " bytes"));
      }
      std::vector<kernels::Variant>& variants = capabilities->variants;
      variants.erase(std::remove(variants.begin(), variants.end(), plan->variant), variants.end());
      continue;
    }
    plan->workspace_bytes = *device_bytes;
    absl::StrAppend(&plan->reason, "; ", variant, " workspace ", *device_bytes, " bytes");
    return plan;
  }
}

}  // namespace

kernels::PlannerConfig PlannerConfigFor(const kernels::PlannerConfig& base,
                                        const wire::DecodedRequest& decoded) {
  kernels::PlannerConfig config = base;
  config.forced_variant = decoded.variant_hint;
  config.q_chunk_override = decoded.q_chunk;
  config.kv_chunk_override = decoded.kv_chunk;
  return config;
}

RequestRunner::RequestRunner(Executor* executor, const kernels::PlannerConfig& planner,
                             metrics::Registry* registry, int max_oom_retries)
    : executor_(executor), planner_(planner), max_oom_retries_(max_oom_retries) {
  if (registry == nullptr) return;
  metrics_ = std::make_unique<Metrics>(registry);
  gauges_ = std::make_shared<GaugeSource>();
  const metrics::Labels device = {{"device", executor->name()}};
  gauges_->free_bytes = registry->GetGauge("attnd_device_memory_free_bytes",
                                           "Free memory on the device, read live.", device);
  gauges_->reserved_bytes = registry->GetGauge(
      "attnd_pool_reserved_bytes", "Memory the device's pool holds (CPU: the budget).", device);
  gauges_->used_bytes =
      registry->GetGauge("attnd_pool_used_bytes", "Workspace in use by running plans.", device);
  if (executor->kind() == "cuda") {
    gauges_->limit_bytes = registry->GetGauge("attnd_pool_limit_bytes",
                                              "The most the device's pool may hand out.", device);
    gauges_->peak_used_bytes = registry->GetGauge(
        "attnd_pool_peak_used_bytes", "The most the device's pool has handed out at once.", device);
    gauges_->allocation_failures = registry->GetCounter(
        "attnd_pool_allocation_failures_total",
        "Allocations the device's pool refused at its limit or could not get from the device.",
        device);
  }
  {
    absl::MutexLock lock(&gauges_->mu);
    gauges_->executor = executor;
  }
  gauges_->Refresh();
  std::weak_ptr<GaugeSource> weak = gauges_;
  registry->AddCollectHook([weak] {
    if (std::shared_ptr<GaugeSource> source = weak.lock()) source->Refresh();
  });
}

RequestRunner::~RequestRunner() {
  if (gauges_ != nullptr) {
    absl::MutexLock lock(&gauges_->mu);
    gauges_->executor = nullptr;
  }
}

absl::StatusOr<v1::AttendResponse> RequestRunner::Run(const wire::DecodedRequest& decoded,
                                                      const std::string& request_id,
                                                      const RunContext& context) {
  const kernels::AttentionProblem& problem = decoded.problem;
  const kernels::PlannerConfig config = PlannerConfigFor(planner_, decoded);

  v1::AttendResponse response;
  response.set_request_id(request_id);
  void* out = nullptr;
  float* lse = nullptr;
  try {
    v1::Tensor* out_tensor = response.mutable_out();
    out_tensor->set_dtype(wire::ToProto(problem.dtype));
    for (int64_t d : wire::OutShape(problem)) out_tensor->add_shape(d);
    out_tensor->mutable_data()->resize(static_cast<size_t>(decoded.out_bytes()));
    out = out_tensor->mutable_data()->data();
    if (problem.return_lse) {
      v1::Tensor* lse_tensor = response.mutable_lse();
      lse_tensor->set_dtype(v1::DTYPE_F32);
      for (int64_t d : wire::LseShape(problem)) lse_tensor->add_shape(d);
      lse_tensor->mutable_data()->resize(static_cast<size_t>(decoded.lse_bytes()));
      lse = reinterpret_cast<float*>(lse_tensor->mutable_data()->data());
    }
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate the output (", decoded.out_bytes() + decoded.lse_bytes(), " bytes)"));
  }
  const kernels::AttentionTensors tensors = wire::TensorsFor(decoded, out, lse);

  // The live budget less what the request's own tensors take on the device (0 on the CPU), and
  // the variants this device offers for this problem.
  const int64_t live_budget = executor_->MemoryBudgetBytes();
  if (absl::Status health = executor_->Health(); !health.ok()) return health;
  const int64_t tensor_bytes = executor_->TensorBytes(problem);
  if (tensor_bytes > 0 && tensor_bytes > live_budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the request's tensors need ", tensor_bytes, " bytes on ", executor_->name(),
                     " but its memory budget is ", live_budget, " bytes now"));
  }
  int64_t budget = live_budget - tensor_bytes;
  kernels::Capabilities capabilities = executor_->CapabilitiesFor(problem);
  const auto start = std::chrono::steady_clock::now();
  kernels::Plan plan;
  for (int attempt = 0;; ++attempt) {
    absl::StatusOr<kernels::Plan> made =
        PlanOnDevice(*executor_, problem, budget, config, &capabilities);
    if (!made.ok()) return made.status();
    plan = *std::move(made);
    if (metrics_ != nullptr) metrics_->ObservePlan(plan);
    absl::Status status = executor_->Run(plan, problem, tensors);
    if (status.ok()) break;
    if (!absl::IsResourceExhausted(status) || attempt >= max_oom_retries_) return status;
    if (metrics_ != nullptr) metrics_->oom_retries->Increment();
    budget /= 2;
  }
  const double compute_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (metrics_ != nullptr) metrics_->ObserveCompute(plan.variant, compute_seconds);

  v1::Execution* execution = response.mutable_execution();
  execution->set_variant(wire::ToProto(plan.variant));
  execution->set_q_chunk(plan.q_chunk);
  execution->set_kv_chunk(plan.kv_chunk);
  execution->set_workspace_bytes(plan.workspace_bytes);
  execution->set_device(executor_->name());
  execution->set_batch_size(context.batch_size);
  execution->set_queue_seconds(context.queue_seconds);
  execution->set_compute_seconds(compute_seconds);
  execution->set_plan_reason(plan.reason);
  return response;
}

}  // namespace attnd::server::executor
