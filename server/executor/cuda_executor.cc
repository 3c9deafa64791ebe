#include "server/executor/cuda_executor.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/cuda/fused/fused_attention.h"  // FusedDeviceRefusal
#include "kernels/cuda/workspace_layout.h"
#include "kernels/device_query.h"
#include "kernels/planner.h"
#include "server/executor/block_layout.h"
#include "server/executor/cuda_pipeline.h"
#include "server/executor/cuda_status.h"
#include "server/executor/device_budget.h"
#include "server/executor/device_pool.h"
#include "server/executor/fatal_device_error.h"
#include "server/executor/ragged_runner.h"
#include "server/executor/staging_pool.h"
#include "server/faults/fault_injector.h"
#include "server/logging/logging.h"
#ifdef ATTND_WITH_CUDNN
#include "kernels/cuda/cudnn/cudnn_attention.h"
#endif

namespace attnd::server::executor {
namespace {

using logging::F;

bool IsCudaVariant(kernels::Variant v) {
  return v == kernels::Variant::kNaive || v == kernels::Variant::kSliced ||
         v == kernels::Variant::kChunked || v == kernels::Variant::kCudnn ||
         v == kernels::Variant::kFused;
}

cudaStream_t StreamOf(const kernels::cuda::CudaContext& context) {
  return static_cast<cudaStream_t>(context.stream);
}

// Makes `device` current on this thread (worker threads may serve several devices).
absl::Status UseDevice(int device) { return ATTND_CUDA_STATUS(cudaSetDevice(device)); }

// A stall injected by server/faults (a slow kernel or copy-out), on the launching thread.
void Stall(absl::Duration d) {
  if (d > absl::ZeroDuration()) std::this_thread::sleep_for(absl::ToChronoNanoseconds(d));
}

// Copies the inputs in, runs the plan and copies the outputs out, all queued on the copier's
// stream; the outputs are on the host when this returns OK.
absl::Status StageAndRun(StagedCopier* copier, const kernels::Plan& plan,
                         const kernels::AttentionProblem& problem,
                         const kernels::AttentionTensors& host,
                         const kernels::AttentionTensors& device, const BlockLayout& layout,
                         void* workspace, const kernels::cuda::CudaContext& context) {
  auto in = [copier](const void* device_dst, const void* host_src, int64_t bytes) {
    return copier->ToDevice(const_cast<void*>(device_dst), host_src, bytes);
  };
  if (absl::Status s = in(device.q, host.q, layout.q_bytes); !s.ok()) return s;
  if (absl::Status s = in(device.k, host.k, layout.k_bytes); !s.ok()) return s;
  if (absl::Status s = in(device.v, host.v, layout.v_bytes); !s.ok()) return s;
  if (problem.has_bias) {
    if (absl::Status s = in(device.bias, host.bias, layout.bias_bytes); !s.ok()) return s;
  }
  if (problem.has_kv_lengths) {
    absl::Status s = in(device.kv_lengths, host.kv_lengths, layout.kv_lengths_bytes);
    if (!s.ok()) return s;
  }
  if (problem.ragged) {
    if (absl::Status s = in(device.q_offsets, host.q_offsets, layout.offsets_bytes); !s.ok()) {
      return s;
    }
    if (absl::Status s = in(device.kv_offsets, host.kv_offsets, layout.offsets_bytes); !s.ok()) {
      return s;
    }
  }
  faults::FaultInjector* const injector = faults::Active();  // null in production
  if (injector != nullptr) Stall(injector->KernelDelay());
  if (absl::Status s =
          kernels::cuda::RunCuda(plan, problem, device, workspace, plan.workspace_bytes, context);
      !s.ok()) {
    return s;
  }
  if (injector != nullptr) {
    if (injector->StickyError()) return faults::InjectedStickyError();  // CheckDevice: broken
    Stall(injector->CopyOutDelay());
  }
  if (absl::Status s = copier->ToHost(host.out, device.out, layout.out_bytes); !s.ok()) return s;
  if (problem.return_lse) {
    absl::Status s = copier->ToHost(host.lse, device.lse, layout.lse_bytes);
    if (!s.ok()) return s;
  }
  return copier->Finish();
}

}  // namespace

struct CudaExecutor::Lane {
  kernels::cuda::CudaContext context;          // its stream computes
  cudaEvent_t events[2] = {nullptr, nullptr};  // the staged copies' two slabs (Run)
  cudaStream_t copy_in = nullptr;              // RunBatch's copies, beside the compute stream
  cudaStream_t copy_out = nullptr;
  PipelineEvents slots[kPipelineDepth];
};

CudaExecutor::CudaExecutor(const CudaExecutorOptions& options)
    : device_(options.device),
      name_(absl::StrCat("cuda:", options.device)),
      options_(options),
      memory_(options.memory) {}

absl::StatusOr<std::unique_ptr<CudaExecutor>> CudaExecutor::Create(
    const CudaExecutorOptions& options) {
  std::unique_ptr<CudaExecutor> executor(new CudaExecutor(options));
  const std::string& name = executor->name_;
  auto unusable = [&name](const absl::Status& why) {
    return absl::FailedPreconditionError(
        absl::StrCat("backend.devices: ", name, " cannot be used: ", why.message()));
  };
  for (const kernels::CudaDeviceInfo& info : kernels::CudaDevices()) {
    if (info.ordinal == options.device) {
      executor->model_ = info.name;
      executor->total_bytes_ = info.total_memory_bytes;
    }
  }
  if (executor->model_.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("backend.devices: ", name,
                                                      " is not a visible CUDA device (",
                                                      kernels::CudaDeviceCount(), " visible)"));
  }
  if (absl::Status s = UseDevice(options.device); !s.ok()) return unusable(s);

  const int64_t limit = PoolLimitBytes(options.memory, executor->total_bytes_);
  absl::StatusOr<std::unique_ptr<DevicePool>> pool = DevicePool::Create(options.device, limit);
  if (!pool.ok()) return unusable(pool.status());
  executor->pool_ = *std::move(pool);
  executor->staging_ =
      std::make_unique<StagingPool>(options.staging_slab_bytes, options.staging_cap_bytes);

  const int lanes = std::max(1, options.workers);
  for (int i = 0; i < lanes; ++i) {
    auto lane = std::make_unique<Lane>();
    if (absl::Status s = kernels::cuda::CreateCudaContext(options.device, &lane->context);
        !s.ok()) {
      return unusable(s);
    }
    // Blocking sync: a worker waiting for a long request sleeps instead of spinning a core.
    for (cudaEvent_t& event : lane->events) {
      if (absl::Status s = ATTND_CUDA_STATUS(
              cudaEventCreateWithFlags(&event, cudaEventDisableTiming | cudaEventBlockingSync));
          !s.ok()) {
        return unusable(s);
      }
    }
    for (cudaStream_t* stream : {&lane->copy_in, &lane->copy_out}) {
      if (absl::Status s =
              ATTND_CUDA_STATUS(cudaStreamCreateWithFlags(stream, cudaStreamNonBlocking));
          !s.ok()) {
        return unusable(s);
      }
    }
    for (PipelineEvents& slot : lane->slots) {
      if (absl::Status s = CreatePipelineEvents(&slot); !s.ok()) return unusable(s);
    }
    executor->lanes_.push_back(std::move(lane));
  }
  {
    absl::MutexLock lock(&executor->lanes_mu_);
    for (const auto& lane : executor->lanes_) executor->free_lanes_.push_back(lane.get());
  }
  executor->capabilities_.is_cuda = true;
  executor->capabilities_.variants = kernels::cuda::CudaVariants();
  executor->capabilities_.threads = kernels::cuda::kCudaLanes;  // streams per sliced/chunked run

  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
  executor->ReadDeviceMemory(&free_bytes, &total_bytes);
  logging::Log(logging::Level::kInfo, "cuda_device",
               {F("device", name), F("model", executor->model_), F("total_bytes", total_bytes),
                F("free_bytes", free_bytes), F("pool_limit_bytes", limit),
                F("safety_margin_bytes", options.memory.safety_margin_bytes), F("contexts", lanes),
                F("budget_bytes", executor->MemoryBudgetBytes())});
  return executor;
}

CudaExecutor::~CudaExecutor() {
  if (broken_.load()) {
    // The context is poisoned and the process is about to exit: CUDA calls would only fail.
    // Leave the handles and the pool to the process teardown.
    (void)pool_.release();
    (void)staging_.release();
    return;
  }
  cudaSetDevice(device_);
  for (const auto& lane : lanes_) {
    for (cudaEvent_t event : lane->events) {
      if (event != nullptr) cudaEventDestroy(event);
    }
    for (PipelineEvents& slot : lane->slots) DestroyPipelineEvents(&slot);
    for (cudaStream_t stream : {lane->copy_in, lane->copy_out}) {
      if (stream != nullptr) cudaStreamDestroy(stream);
    }
    kernels::cuda::DestroyCudaContext(&lane->context);
  }
  staging_.reset();
  pool_.reset();
  cudaGetLastError();
}

CudaExecutor::Lane* CudaExecutor::AcquireLane() const {
  absl::MutexLock lock(&lanes_mu_);
  lanes_mu_.Await(absl::Condition(
      +[](std::vector<Lane*>* free_lanes) { return !free_lanes->empty(); }, &free_lanes_));
  Lane* lane = free_lanes_.back();
  free_lanes_.pop_back();
  return lane;
}

void CudaExecutor::ReleaseLane(Lane* lane) const {
  absl::MutexLock lock(&lanes_mu_);
  free_lanes_.push_back(lane);
}

kernels::Capabilities CudaExecutor::CapabilitiesFor(
    const kernels::AttentionProblem& problem) const {
  kernels::Capabilities caps = capabilities_;
  // Head dims above 256 run fused on sm_90 only (the wide kernel); elsewhere the planner picks
  // among the others.
  if (std::max(problem.head_dim, problem.v_head_dim) > kernels::kFusedMaxHeadDim &&
      (!UseDevice(device_).ok() || !kernels::cuda::FusedDeviceRefusal(problem).empty())) {
    caps.variants.erase(
        std::remove(caps.variants.begin(), caps.variants.end(), kernels::Variant::kFused),
        caps.variants.end());
  }
#ifdef ATTND_WITH_CUDNN
  std::vector<kernels::Variant>& variants = caps.variants;
  if (std::find(variants.begin(), variants.end(), kernels::Variant::kCudnn) == variants.end()) {
    return caps;
  }
  // cuDNN answers per shape (and caches the graph on the handle it was asked with: one of the
  // lanes' handles, so that a run on that lane finds it built).
  bool supported = false;
  std::string reason;
  if (!broken_.load() && UseDevice(device_).ok()) {
    Lane* lane = AcquireLane();
    absl::StatusOr<bool> answer =
        kernels::cuda::CudnnSupports(problem, lane->context.cudnn, &reason);
    ReleaseLane(lane);
    supported = answer.ok() && *answer;
    if (!answer.ok()) reason = std::string(answer.status().message());
  }
  if (!supported) {
    variants.erase(std::remove(variants.begin(), variants.end(), kernels::Variant::kCudnn),
                   variants.end());
    if (logging::Enabled(logging::Level::kDebug)) {
      logging::Log(logging::Level::kDebug, "cudnn_unsupported",
                   {F("device", name_), F("problem", problem.DebugString()), F("reason", reason)});
    }
  }
#else
  (void)problem;
#endif
  return caps;
}

absl::StatusOr<int64_t> CudaExecutor::DeviceWorkspaceBytes(
    const kernels::Plan& plan, const kernels::AttentionProblem& problem) const {
#ifdef ATTND_WITH_CUDNN
  if (plan.variant == kernels::Variant::kCudnn) {
    if (broken_.load()) return Broken();
    if (absl::Status s = UseDevice(device_); !s.ok()) return s;
    Lane* lane = AcquireLane();
    absl::StatusOr<int64_t> bytes =
        kernels::cuda::CudnnWorkspaceBytes(problem, lane->context.cudnn);
    ReleaseLane(lane);
    return bytes;
  }
#else
  (void)problem;
#endif
  return plan.workspace_bytes;
}

int64_t CudaExecutor::TensorBytes(const kernels::AttentionProblem& problem) const {
  return DeviceTensorBytes(problem);
}

absl::Status CudaExecutor::Health() const { return broken_.load() ? Broken() : absl::OkStatus(); }

bool CudaExecutor::ReadDeviceMemory(int64_t* free_bytes, int64_t* total_bytes) const {
  if (broken_.load()) return false;
  int previous = -1;
  if (cudaGetDevice(&previous) != cudaSuccess) previous = -1;
  cudaError_t error = cudaSuccess;
  for (int attempt = 0; attempt < 2; ++attempt) {
    size_t free_now = 0;
    size_t total = 0;
    error = cudaSetDevice(device_);
    if (error == cudaSuccess) error = cudaMemGetInfo(&free_now, &total);
    if (error == cudaSuccess) {
      *free_bytes = static_cast<int64_t>(free_now);
      *total_bytes = static_cast<int64_t>(total);
      break;
    }
    cudaGetLastError();  // a non-sticky error clears here; a sticky one comes straight back
  }
  if (previous >= 0 && previous != device_) cudaSetDevice(previous);
  if (error == cudaSuccess) return true;
  if (error != cudaErrorMemoryAllocation) {
    MarkBroken(
        absl::InternalError(absl::StrCat("cudaMemGetInfo keeps failing: ", cudaGetErrorName(error),
                                         " (", cudaGetErrorString(error), ")")));
  }
  return false;
}

int64_t CudaExecutor::MemoryBudgetBytes() const {
  DeviceMemoryReadings readings;
  int64_t total = 0;
  if (!ReadDeviceMemory(&readings.device_free_bytes, &total)) return 0;
  readings.pool_limit_bytes = pool_->limit_bytes();
  readings.pool_used_bytes = pool_->used_bytes();
  readings.pool_reserved_bytes = pool_->reserved_bytes();
  return DeviceBudgetBytes(readings, memory_.safety_margin_bytes);
}

MemoryStats CudaExecutor::Memory() const {
  MemoryStats stats;
  stats.total_bytes = total_bytes_;
  int64_t total = 0;
  if (ReadDeviceMemory(&stats.free_bytes, &total)) stats.total_bytes = total;
  const PoolStats pool = pool_->Stats();
  stats.reserved_bytes = pool.reserved_bytes;
  stats.used_bytes = pool.used_bytes;
  stats.limit_bytes = pool.limit_bytes;
  stats.peak_used_bytes = pool.peak_used_bytes;
  stats.allocation_failures = pool.failures;
  return stats;
}

absl::Status CudaExecutor::Broken() const {
  return absl::UnavailableError(absl::StrCat(
      name_, " failed with a CUDA error that poisons the device (",
      FirstFatalDeviceError().message(), "); attnd is restarting, retry on another replica"));
}

absl::Status CudaExecutor::Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                               const kernels::AttentionTensors& tensors) {
  if (broken_.load()) return Broken();
  if (!IsCudaVariant(plan.variant)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "variant ", std::string(kernels::VariantName(plan.variant)), " cannot run on ", name_));
  }
  if (absl::Status s = UseDevice(device_); !s.ok()) return CheckDevice(nullptr, s);
  Lane* lane = AcquireLane();
  absl::Status status;
  absl::StatusOr<std::vector<void*>> slabs = staging_->Acquire(2);
  if (!slabs.ok()) {
    status = slabs.status();
  } else {
    status = RunOnLaneChecked(lane, *slabs, plan, problem, tensors);
    staging_->Release(*slabs);
  }
  ReleaseLane(lane);
  return status;
}

int CudaExecutor::RequestsInFlight() const { return kPipelineDepth; }

void CudaExecutor::RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) {
  if (absl::Status s = UseDevice(device_); !s.ok()) {
    s = CheckDevice(nullptr, s);
    for (size_t i = 0; i < entries.size(); ++i) {
      if (callbacks->Admit(i).ok()) callbacks->Done(i, s, StageTimes());
    }
    return;
  }
  Lane* lane = AcquireLane();
  // The pipeline's slabs at once (never one at a time: two lanes each holding some and waiting
  // for more would wait forever). Without them (a staging cap below 2 * kPipelineDepth slabs,
  // or no pinned memory to be had) the batch runs request by request through Run's path.
  absl::StatusOr<std::vector<void*>> slabs = staging_->Acquire(2 * kPipelineDepth);
  if (slabs.ok()) {
    RunBatchOnLane(lane, *slabs, entries, callbacks);
    staging_->Release(*slabs);
    ReleaseLane(lane);
    return;
  }
  ReleaseLane(lane);
  Executor::RunBatch(entries, callbacks);
}

void CudaExecutor::RunBatchOnLane(Lane* lane, const std::vector<void*>& slabs,
                                  absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) {
  PipelineResources resources;
  resources.pool = pool_.get();
  resources.compute = &lane->context;
  resources.copy_in = lane->copy_in;
  resources.copy_out = lane->copy_out;
  resources.events = lane->slots;
  resources.slabs = slabs;
  resources.slab_bytes = staging_->slab_bytes();
  RequestPipeline pipeline(resources, callbacks, [this, lane](absl::Status s) {
    return CheckDevice(lane, std::move(s));
  });
  // One admitted entry: through the pipeline, or alone when larger than a slab.
  auto run_one = [&](size_t i) {
    const BatchEntry& entry = entries[i];
    if (broken_.load()) {
      callbacks->Done(i, Broken(), StageTimes());
      return;
    }
    if (!IsCudaVariant(entry.plan->variant)) {
      callbacks->Done(i,
                      absl::InvalidArgumentError(absl::StrCat(
                          "variant ", std::string(kernels::VariantName(entry.plan->variant)),
                          " cannot run on ", name_)),
                      StageTimes());
      return;
    }
    const BlockLayout layout = BlockLayout::For(*entry.problem, entry.plan->workspace_bytes);
    if (layout.FitsSlabs(staging_->slab_bytes())) {
      pipeline.Launch(i, entry).IgnoreError();  // answered by the pipeline either way
      return;
    }
    // Larger than a slab: alone, streamed through two of the pipeline's slabs once it is idle.
    pipeline.Drain();
    const auto start = std::chrono::steady_clock::now();
    absl::Status status =
        RunOnLaneChecked(lane, {slabs[0], slabs[1]}, *entry.plan, *entry.problem, entry.tensors);
    StageTimes times;
    // Copies and compute in one: this path does not time them apart.
    times.compute_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (status.ok()) {
      times.host_copy_in_bytes = layout.input_bytes();
      times.host_copy_out_bytes = layout.output_bytes();
    }
    callbacks->Done(i, std::move(status), times);
  };

  // Ragged launches (scheduler.ragged_launch): each group of compatible entries
  // (ChooseRaggedGroups: a fused plan, BMHK, ...) is packed on the host and runs as one fused
  // launch over the packed sequences, at its first member's place, after the pipeline drains,
  // streamed through two of its slabs as a large request is. The rest go one by one as above.
  std::vector<std::vector<size_t>> groups;
  if (options_.batch.ragged_launch && entries.size() >= 2) {
    RaggedGroupPolicy policy;
    policy.variants = {kernels::Variant::kFused};
    // The packed copies live on the host and then in one pool block: at most the live budget.
    policy.max_packed_bytes = MemoryBudgetBytes();
    policy.max_tokens = options_.batch.max_batch_tokens;
    groups = ChooseRaggedGroups(entries, policy);
  }
  RaggedLaunchSteps steps;
  steps.plan = [&](const kernels::AttentionProblem& problem, int64_t budget) {
    kernels::PlannerConfig config = options_.batch.planner;
    config.forced_variant = kernels::Variant::kFused;  // refused where fused takes no ragged
    // The members' workspaces summed fall short of the launch's: fused keeps an LSE per row of
    // the bounds, B·Hq·q_len, more than Σ B_e·Hq·Mq_e when lengths differ. The launch is one
    // request now: it may also have what the pool can give beside its tensors, as a request
    // planned alone would.
    const int64_t live = MemoryBudgetBytes() - BlockLayout::For(problem, 0).total;
    return kernels::MakePlan(problem, capabilities_, std::max(budget, live), config);
  };
  steps.run = [&](const kernels::Plan& plan, const RaggedLaunch& launch,
                  const kernels::AttentionTensors& packed) {
    if (broken_.load()) return Broken();
    pipeline.Drain();
    return RunOnLaneChecked(lane, {slabs[0], slabs[1]}, plan, launch.problem, packed);
  };
  steps.run_alone = run_one;
  steps.copies_to_device = true;
  RunBatchInGroups(entries, groups, callbacks, steps);
  pipeline.Drain();
}

absl::Status CudaExecutor::RunOnLane(Lane* lane, const std::vector<void*>& slabs,
                                     const kernels::Plan& plan,
                                     const kernels::AttentionProblem& problem,
                                     const kernels::AttentionTensors& tensors) {
  const cudaStream_t stream = StreamOf(lane->context);
  const BlockLayout layout = BlockLayout::For(problem, plan.workspace_bytes);
  absl::StatusOr<void*> block = pool_->Allocate(layout.total, stream);
  if (!block.ok()) return block.status();
  char* base = static_cast<char*>(*block);

  const kernels::AttentionTensors device = layout.TensorsAt(problem, base);
  // Never null (RunCuda checks), even for a plan that needs none: the block's end then.
  void* workspace = base + layout.workspace;

  absl::Status status;
  {
    // ~StagedCopier waits for the slabs before they go back to the caller.
    StagedCopier copier(slabs, staging_->slab_bytes(), lane->events, stream);
    status = StageAndRun(&copier, plan, problem, tensors, device, layout, workspace, lane->context);
  }
  // Everything queued on the stream is done before the block goes back (and any kernel error
  // surfaces here).
  absl::Status synced = ATTND_CUDA_STATUS(cudaStreamSynchronize(stream));
  if (status.ok()) status = synced;
  absl::Status freed = pool_->Free(*block, stream);
  if (status.ok()) status = freed;
  return status;
}

absl::Status CudaExecutor::RunOnLaneChecked(Lane* lane, const std::vector<void*>& slabs,
                                            const kernels::Plan& plan,
                                            const kernels::AttentionProblem& problem,
                                            const kernels::AttentionTensors& tensors) {
  absl::Status status = RunOnLane(lane, slabs, plan, problem, tensors);
  if (!status.ok() && !absl::IsResourceExhausted(status) && !absl::IsInvalidArgument(status)) {
    status = CheckDevice(lane, std::move(status));
  }
  return status;
}

absl::Status CudaExecutor::CheckDevice(Lane* lane, absl::Status status) {
  // A sticky error from server/faults leaves CUDA itself healthy: take its word for it.
  if (faults::IsInjectedStickyError(status)) {
    MarkBroken(status);
    return Broken();
  }
  // A sticky error stays: after clearing the last error, synchronizing (or asking again) still
  // reports it. A non-sticky one (a bad launch configuration, a cuBLAS refusal) clears.
  const cudaError_t last = cudaGetLastError();
  const cudaError_t synced =
      lane != nullptr ? cudaStreamSynchronize(StreamOf(lane->context)) : cudaDeviceSynchronize();
  const cudaError_t again = cudaGetLastError();
  auto poisoned = [](cudaError_t e) {
    return e != cudaSuccess && e != cudaErrorMemoryAllocation && e != cudaErrorNotReady;
  };
  if (!poisoned(synced) && !poisoned(again)) return status;
  const cudaError_t cause = poisoned(synced) ? synced : again;
  const absl::Status fatal = absl::InternalError(
      absl::StrCat(cudaGetErrorName(cause), " (", cudaGetErrorString(cause),
                   ") after: ", status.message(), "; last error ", cudaGetErrorName(last)));
  MarkBroken(fatal);
  return Broken();
}

void CudaExecutor::MarkBroken(const absl::Status& cause) const {
  if (!broken_.exchange(true)) OnFatalDeviceError(name_, cause);
}

}  // namespace attnd::server::executor
