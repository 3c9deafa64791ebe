#include "server/executor/request_runner.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/faults/fault_injector.h"

namespace attnd::server::executor {

const char kHostCopyBytesName[] = "attnd_host_copy_bytes_total";
const char kHostCopyBytesHelp[] =
    "Tensor bytes copied by the host on a request's way through attnd, by stage: grpc_parse "
    "(gRPC's protobuf parse of a request), staging_in and staging_out (memcpy to and from pinned "
    "staging), grpc_serialize (gRPC's protobuf serialization of a response). Divided by the "
    "tensor bytes received and sent, the number of host copies each byte takes.";

struct RequestRunner::Metrics {
  metrics::Registry* registry;
  metrics::Counter* oom_retries;
  metrics::Histogram* q_chunk;
  metrics::Histogram* kv_chunk;
  metrics::Histogram* copy_in;
  metrics::Histogram* compute;
  metrics::Histogram* copy_out;
  metrics::Histogram* host_staging;
  metrics::Counter* staging_in_bytes;
  metrics::Counter* staging_out_bytes;
  metrics::Counter* ragged_launches;
  metrics::Counter* ragged_launch_requests;

  explicit Metrics(metrics::Registry* r)
      : registry(r),
        oom_retries(r->GetCounter("attnd_oom_retries_total",
                                  "Plans retried with a smaller budget after an allocation "
                                  "failed.")),
        q_chunk(r->GetHistogram("attnd_chunk_tokens", "Chunk sizes of the plans that ran.",
                                metrics::ExponentialBuckets(1, 4, 11), {{"axis", "q"}})),
        kv_chunk(r->GetHistogram("attnd_chunk_tokens", "Chunk sizes of the plans that ran.",
                                 metrics::ExponentialBuckets(1, 4, 11), {{"axis", "kv"}})),
        copy_in(Stage(r, "copy_in")),
        compute(Stage(r, "compute")),
        copy_out(Stage(r, "copy_out")),
        host_staging(Stage(r, "host_staging")),
        staging_in_bytes(CopyBytes(r, "staging_in")),
        staging_out_bytes(CopyBytes(r, "staging_out")),
        ragged_launches(r->GetCounter("attnd_ragged_launches_total",
                                      "Launches that ran several requests of a batch together "
                                      "(packed as one ragged problem).")),
        ragged_launch_requests(r->GetCounter(
            "attnd_ragged_launch_requests_total",
            "Requests that ran inside a ragged launch with others of their batch.")) {}

  static metrics::Histogram* Stage(metrics::Registry* r, const char* stage) {
    return r->GetHistogram("attnd_stage_duration_seconds",
                           "Time of each stage of a request on its device: copy_in and copy_out "
                           "(DMA), compute (kernels), host_staging (memcpy to and from pinned "
                           "staging). Stages a device lacks are not observed.",
                           metrics::ExponentialBuckets(0.00001, 2.0, 24),  // 10us .. 84s
                           {{"stage", stage}});
  }
  static metrics::Counter* CopyBytes(metrics::Registry* r, const char* stage) {
    return r->GetCounter(kHostCopyBytesName, kHostCopyBytesHelp, {{"stage", stage}});
  }

  void ObserveStages(const StageTimes& t) {
    if (t.copy_in_seconds > 0) copy_in->Observe(t.copy_in_seconds);
    compute->Observe(t.compute_seconds);
    if (t.copy_out_seconds > 0) copy_out->Observe(t.copy_out_seconds);
    if (t.host_staging_seconds > 0) host_staging->Observe(t.host_staging_seconds);
    staging_in_bytes->Increment(static_cast<double>(t.host_copy_in_bytes));
    staging_out_bytes->Increment(static_cast<double>(t.host_copy_out_bytes));
    if (t.launch_requests > 1) {
      ragged_launch_requests->Increment();
      if (t.first_in_launch) ragged_launches->Increment();
    }
  }

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

// One request of a batch on its way through: the response being built and its plan.
struct RequestRunner::Pending {
  const RunRequest* request = nullptr;
  v1::AttendResponse response;
  kernels::AttentionTensors tensors;  // host views: the request's inputs, the response's outputs
  kernels::Capabilities capabilities;
  kernels::PlannerConfig config;
  kernels::Plan plan;
  int64_t tensor_bytes = 0;  // on the device
  bool retry = false;        // the device could not get its workspace: run alone, re-planned
};

absl::Status RequestRunner::Prepare(const RunRequest& request, int64_t live_budget, int64_t share,
                                    Pending* pending) {
  const wire::DecodedRequest& decoded = *request.decoded;
  const kernels::AttentionProblem& problem = decoded.problem;
  pending->request = &request;
  v1::AttendResponse& response = pending->response;
  response.set_request_id(request.request_id);
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
  pending->tensors = wire::TensorsFor(decoded, out, lse);

  // The budget less what the request's own tensors take on the device (0 on the CPU), and the
  // variants this device offers for this problem. A request whose tensors do not fit its share
  // of a batch's budget plans against the whole live budget (and if the device then cannot
  // give it the memory, runs alone once the batch is through).
  pending->tensor_bytes = executor_->TensorBytes(problem);
  if (pending->tensor_bytes > 0 && pending->tensor_bytes > live_budget) {
    return absl::ResourceExhaustedError(
        absl::StrCat("the request's tensors need ", pending->tensor_bytes, " bytes on ",
                     executor_->name(), " but its memory budget is ", live_budget, " bytes now"));
  }
  const int64_t budget = pending->tensor_bytes <= share ? share - pending->tensor_bytes
                                                        : live_budget - pending->tensor_bytes;
  pending->config = PlannerConfigFor(planner_, decoded);
  pending->capabilities = executor_->CapabilitiesFor(problem);
  absl::StatusOr<kernels::Plan> plan =
      PlanOnDevice(*executor_, problem, budget, pending->config, &pending->capabilities);
  if (!plan.ok()) return plan.status();
  pending->plan = *std::move(plan);
  if (metrics_ != nullptr) metrics_->ObservePlan(pending->plan);
  return absl::OkStatus();
}

absl::Status RequestRunner::RunAlone(Pending* pending, int64_t first_budget) {
  // The batch's attempt was the first; this is re-plan number 1 .. max_oom_retries_.
  const kernels::AttentionProblem& problem = pending->request->decoded->problem;
  int64_t budget = first_budget;
  for (int retry = 1;; ++retry) {
    if (metrics_ != nullptr) metrics_->oom_retries->Increment();
    absl::StatusOr<kernels::Plan> made =
        PlanOnDevice(*executor_, problem, budget, pending->config, &pending->capabilities);
    if (!made.ok()) return made.status();
    pending->plan = *std::move(made);
    if (metrics_ != nullptr) metrics_->ObservePlan(pending->plan);
    absl::Status status = executor_->Run(pending->plan, problem, pending->tensors);
    if (status.ok()) return status;
    if (!absl::IsResourceExhausted(status) || retry >= max_oom_retries_) return status;
    budget /= 2;
  }
}

absl::StatusOr<v1::AttendResponse> RequestRunner::Finish(Pending* pending,
                                                         const StageTimes& times) {
  // A ragged launch's members report the launch's plan: what ran.
  const kernels::Plan& plan = times.launch_plan != nullptr ? *times.launch_plan : pending->plan;
  const RunContext& context = pending->request->context;
  if (metrics_ != nullptr) {
    metrics_->ObserveCompute(plan.variant, times.compute_seconds);
    metrics_->ObserveStages(times);
  }
  v1::Execution* execution = pending->response.mutable_execution();
  execution->set_variant(wire::ToProto(plan.variant));
  execution->set_q_chunk(plan.q_chunk);
  execution->set_kv_chunk(plan.kv_chunk);
  execution->set_workspace_bytes(plan.workspace_bytes);
  execution->set_device(executor_->name());
  execution->set_batch_size(context.batch_size);
  execution->set_queue_seconds(context.queue_seconds);
  execution->set_compute_seconds(times.compute_seconds);
  execution->set_plan_reason(
      times.launch_plan == nullptr
          ? plan.reason
          : absl::StrCat("ragged launch of ", times.launch_requests, " requests: ", plan.reason));
  execution->set_launch_requests(times.launch_requests);
  return std::move(pending->response);
}

// Maps the executor's entries back to the batch's requests.
class RequestRunner::Callbacks final : public BatchCallbacks {
 public:
  Callbacks(RequestRunner* runner, std::vector<Pending>* pending, const std::vector<size_t>* index,
            const AdmitFn* admit, const AnswerFn* answer)
      : runner_(runner), pending_(pending), index_(index), admit_(admit), answer_(answer) {}

  absl::Status Admit(size_t entry) override {
    const size_t i = (*index_)[entry];
    absl::Status status = (*admit_)(i);
    if (!status.ok()) (*answer_)(i, status);
    return status;
  }

  void Done(size_t entry, absl::Status status, const StageTimes& times) override {
    const size_t i = (*index_)[entry];
    Pending& p = (*pending_)[i];
    if (status.ok()) {
      (*answer_)(i, runner_->Finish(&p, times));
    } else if (absl::IsResourceExhausted(status) && runner_->max_oom_retries_ > 0) {
      p.retry = true;  // run alone once the batch is through, re-planned smaller
    } else {
      (*answer_)(i, std::move(status));
    }
  }

 private:
  RequestRunner* const runner_;
  std::vector<Pending>* const pending_;
  const std::vector<size_t>* const index_;
  const AdmitFn* const admit_;
  const AnswerFn* const answer_;
};

namespace {

// The test-only leak (server/faults: LeakBytesPerRequest): bytes allocated, touched so that they
// are resident, and never freed. The sink keeps the compiler from eliding the allocation.
void LeakForTesting(faults::FaultInjector* injector, size_t requests) {
  static std::atomic<char*> sink{nullptr};
  const int64_t bytes = injector->LeakBytesPerRequest();
  if (bytes <= 0) return;
  for (size_t i = 0; i < requests; ++i) {
    char* leaked = new char[static_cast<size_t>(bytes)];
    std::memset(leaked, 0x5a, static_cast<size_t>(bytes));
    sink.store(leaked, std::memory_order_relaxed);
  }
}

}  // namespace

void RequestRunner::RunBatch(absl::Span<const RunRequest> requests, const AdmitFn& admit,
                             const AnswerFn& answer) {
  const size_t n = requests.size();
  if (faults::FaultInjector* injector = faults::Active(); injector != nullptr) {
    LeakForTesting(injector, n);
  }
  // Read once for the batch; each request plans with its share of it, as up to
  // RequestsInFlight() of them hold device memory at once.
  const int64_t live_budget = executor_->MemoryBudgetBytes();
  if (absl::Status health = executor_->Health(); !health.ok()) {
    for (size_t i = 0; i < n; ++i) answer(i, health);
    return;
  }
  const int64_t in_flight =
      std::clamp<int64_t>(executor_->RequestsInFlight(), 1, static_cast<int64_t>(n));
  const int64_t share = live_budget / in_flight;

  std::vector<Pending> pending(n);
  std::vector<BatchEntry> entries;
  std::vector<size_t> index;  // entry → request
  entries.reserve(n);
  index.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (absl::Status s = Prepare(requests[i], live_budget, share, &pending[i]); !s.ok()) {
      answer(i, std::move(s));
      continue;
    }
    BatchEntry entry;
    entry.plan = &pending[i].plan;
    entry.problem = &requests[i].decoded->problem;
    entry.tensors = pending[i].tensors;
    entry.fixed_chunks = requests[i].decoded->q_chunk > 0 || requests[i].decoded->kv_chunk > 0;
    entries.push_back(entry);
    index.push_back(i);
  }
  Callbacks callbacks(this, &pending, &index, &admit, &answer);
  if (!entries.empty()) executor_->RunBatch(entries, &callbacks);

  // What the device could not find memory for, alone now that the batch is through.
  for (size_t i = 0; i < n; ++i) {
    Pending& p = pending[i];
    if (!p.retry) continue;
    if (absl::Status s = admit(i); !s.ok()) {
      answer(i, std::move(s));
      continue;
    }
    const int64_t budget = (executor_->MemoryBudgetBytes() - p.tensor_bytes) / 2;
    const auto start = std::chrono::steady_clock::now();
    absl::Status status = RunAlone(&p, budget);
    if (!status.ok()) {
      answer(i, std::move(status));
      continue;
    }
    StageTimes times;
    times.compute_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    answer(i, Finish(&p, times));
  }
}

absl::StatusOr<v1::AttendResponse> RequestRunner::Run(const wire::DecodedRequest& decoded,
                                                      const std::string& request_id,
                                                      const RunContext& context) {
  RunRequest request{&decoded, request_id, context};
  absl::StatusOr<v1::AttendResponse> result = absl::InternalError("not answered");
  RunBatch(
      absl::MakeConstSpan(&request, 1), [](size_t) { return absl::OkStatus(); },
      [&result](size_t, absl::StatusOr<v1::AttendResponse> r) { result = std::move(r); });
  return result;
}

int64_t RequestRunner::MemoryCost(const wire::DecodedRequest& decoded) const {
  const int64_t budget = std::max<int64_t>(executor_->MemoryBudgetBytes(), 0);
  const int64_t tensors = executor_->TensorBytes(decoded.problem);
  if (tensors > budget) return tensors;
  absl::StatusOr<kernels::Plan> plan =
      kernels::MakePlan(decoded.problem, executor_->capabilities(), budget - tensors,
                        PlannerConfigFor(planner_, decoded));
  if (!plan.ok()) return budget + 1;  // fits nothing: it runs alone
  return tensors + plan->workspace_bytes;
}

}  // namespace attnd::server::executor
