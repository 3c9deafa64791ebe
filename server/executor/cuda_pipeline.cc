#include "server/executor/cuda_pipeline.h"

#include <chrono>
#include <cstring>
#include <thread>
#include <utility>

#include "server/executor/cuda_status.h"
#include "server/executor/device_pool.h"
#include "server/faults/fault_injector.h"

namespace attnd::server::executor {
namespace {

using SteadyClock = std::chrono::steady_clock;

double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

// Milliseconds between two completed events, as seconds (0 when CUDA cannot say).
double EventSeconds(cudaEvent_t start, cudaEvent_t end) {
  float ms = 0;
  if (cudaEventElapsedTime(&ms, start, end) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return static_cast<double>(ms) * 1e-3;
}

// A stall injected by server/faults (a slow kernel or copy-out), on the launching thread.
void Stall(absl::Duration d) {
  if (d > absl::ZeroDuration()) std::this_thread::sleep_for(absl::ToChronoNanoseconds(d));
}

}  // namespace

absl::Status CreatePipelineEvents(PipelineEvents* e) {
  for (cudaEvent_t* event :
       {&e->in_start, &e->in_done, &e->compute_start, &e->compute_done, &e->out_start}) {
    CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(event, cudaEventDefault));
  }
  CUDA_RETURN_IF_ERROR(cudaEventCreateWithFlags(&e->out_done, cudaEventBlockingSync));
  return absl::OkStatus();
}

void DestroyPipelineEvents(PipelineEvents* e) {
  for (cudaEvent_t* event : {&e->in_start, &e->in_done, &e->compute_start, &e->compute_done,
                             &e->out_start, &e->out_done}) {
    if (*event != nullptr) cudaEventDestroy(*event);
    *event = nullptr;
  }
}

RequestPipeline::RequestPipeline(const PipelineResources& resources, BatchCallbacks* callbacks,
                                 std::function<absl::Status(absl::Status)> check_device)
    : resources_(resources), callbacks_(callbacks), check_device_(std::move(check_device)) {
  for (int i = 0; i < kPipelineDepth; ++i) {
    slots_[i].slab_in = resources_.slabs[2 * i];
    slots_[i].slab_out = resources_.slabs[2 * i + 1];
    slots_[i].events = &resources_.events[i];
  }
}

RequestPipeline::~RequestPipeline() { Drain(); }

void RequestPipeline::SynchronizeAll() {
  cudaStreamSynchronize(resources_.copy_in);
  cudaStreamSynchronize(static_cast<cudaStream_t>(resources_.compute->stream));
  cudaStreamSynchronize(resources_.copy_out);
}

absl::Status RequestPipeline::Launch(size_t index, const BatchEntry& entry) {
  Slot* slot = &slots_[next_];
  if (slot->busy) Retire(slot);
  const BlockLayout layout = BlockLayout::For(*entry.problem, entry.plan->workspace_bytes);
  absl::StatusOr<void*> block = resources_.pool->Allocate(layout.total, resources_.copy_in);
  if (!block.ok() && absl::IsResourceExhausted(block.status())) {
    // The requests still in flight may hold what this one needs: let them finish first.
    Drain();
    block = resources_.pool->Allocate(layout.total, resources_.copy_in);
  }
  if (!block.ok()) {
    callbacks_->Done(index, block.status(), StageTimes());
    return block.status();
  }
  slot->index = index;
  slot->layout = layout;
  absl::Status status = Enqueue(slot, entry, static_cast<char*>(*block));
  if (!status.ok()) SynchronizeAll();  // nothing may still use the block or the slabs
  // Back to the pool once the copy-out stream is past this request's D2H.
  absl::Status freed = resources_.pool->Free(*block, resources_.copy_out);
  if (status.ok()) status = std::move(freed);
  if (!status.ok()) {
    SynchronizeAll();
    status = check_device_(std::move(status));
    callbacks_->Done(index, status, StageTimes());
    return status;
  }
  slot->busy = true;
  next_ = (next_ + 1) % kPipelineDepth;
  return absl::OkStatus();
}

absl::Status RequestPipeline::Enqueue(Slot* slot, const BatchEntry& entry, char* base) {
  const BlockLayout& l = slot->layout;
  const kernels::AttentionProblem& problem = *entry.problem;
  const kernels::AttentionTensors& host = entry.tensors;
  const PipelineEvents& e = *slot->events;
  const cudaStream_t copy_in = resources_.copy_in;
  const cudaStream_t compute = static_cast<cudaStream_t>(resources_.compute->stream);
  const cudaStream_t copy_out = resources_.copy_out;

  // The request's inputs into the slab at the block's own offsets: the one host copy on the
  // way in (the slot's previous request has retired, so its copy-in is long done).
  const SteadyClock::time_point staging = SteadyClock::now();
  char* in = static_cast<char*>(slot->slab_in);
  std::memcpy(in + l.q, host.q, static_cast<size_t>(l.q_bytes));
  std::memcpy(in + l.k, host.k, static_cast<size_t>(l.k_bytes));
  std::memcpy(in + l.v, host.v, static_cast<size_t>(l.v_bytes));
  if (problem.has_bias) std::memcpy(in + l.bias, host.bias, static_cast<size_t>(l.bias_bytes));
  if (problem.has_kv_lengths) {
    std::memcpy(in + l.kv_lengths, host.kv_lengths, static_cast<size_t>(l.kv_lengths_bytes));
  }
  if (problem.ragged) {
    std::memcpy(in + l.q_offsets, host.q_offsets, static_cast<size_t>(l.offsets_bytes));
    std::memcpy(in + l.kv_offsets, host.kv_offsets, static_cast<size_t>(l.offsets_bytes));
  }
  slot->host_seconds = SecondsSince(staging);

  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.in_start, copy_in));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(base, in, static_cast<size_t>(l.input_span()),
                                       cudaMemcpyHostToDevice, copy_in));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.in_done, copy_in));

  const kernels::AttentionTensors device = l.TensorsAt(problem, base);
  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(compute, e.in_done, 0));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.compute_start, compute));
  faults::FaultInjector* const injector = faults::Active();  // null in production
  if (injector != nullptr) Stall(injector->KernelDelay());
  // Never a null workspace (RunCuda checks), even for a plan that needs none: the block's end.
  if (absl::Status s = kernels::cuda::RunCuda(*entry.plan, problem, device, base + l.workspace,
                                              entry.plan->workspace_bytes, *resources_.compute);
      !s.ok()) {
    return s;
  }
  // check_device_ turns it into the executor's broken state (CudaExecutor::CheckDevice).
  if (injector != nullptr && injector->StickyError()) return faults::InjectedStickyError();
  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.compute_done, compute));

  CUDA_RETURN_IF_ERROR(cudaStreamWaitEvent(copy_out, e.compute_done, 0));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.out_start, copy_out));
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(slot->slab_out, base + l.out,
                                       static_cast<size_t>(l.output_span()), cudaMemcpyDeviceToHost,
                                       copy_out));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(e.out_done, copy_out));
  slot->host_out = host.out;
  slot->host_lse = host.lse;
  return absl::OkStatus();
}

void RequestPipeline::Retire(Slot* slot) {
  slot->busy = false;
  StageTimes times;
  if (faults::FaultInjector* injector = faults::Active(); injector != nullptr) {
    Stall(injector->CopyOutDelay());  // the request is in its copy-out stage meanwhile
  }
  absl::Status status = ATTND_CUDA_STATUS(cudaEventSynchronize(slot->events->out_done));
  if (status.ok()) {
    // The one host copy on the way out: the slab into the response message's bytes.
    const BlockLayout& l = slot->layout;
    const SteadyClock::time_point staging = SteadyClock::now();
    const char* out = static_cast<const char*>(slot->slab_out);
    std::memcpy(slot->host_out, out, static_cast<size_t>(l.out_bytes));
    if (l.lse_bytes > 0) {
      std::memcpy(slot->host_lse, out + (l.lse - l.out), static_cast<size_t>(l.lse_bytes));
    }
    const PipelineEvents& e = *slot->events;
    times.host_staging_seconds = slot->host_seconds + SecondsSince(staging);
    times.copy_in_seconds = EventSeconds(e.in_start, e.in_done);
    times.compute_seconds = EventSeconds(e.compute_start, e.compute_done);
    times.copy_out_seconds = EventSeconds(e.out_start, e.out_done);
    times.host_copy_in_bytes = l.input_bytes();
    times.host_copy_out_bytes = l.output_bytes();
  } else {
    SynchronizeAll();
    status = check_device_(std::move(status));
  }
  callbacks_->Done(slot->index, std::move(status), times);
}

void RequestPipeline::Drain() {
  for (int k = 0; k < kPipelineDepth; ++k) {
    Slot* slot = &slots_[(next_ + k) % kPipelineDepth];
    if (slot->busy) Retire(slot);
  }
}

}  // namespace attnd::server::executor
