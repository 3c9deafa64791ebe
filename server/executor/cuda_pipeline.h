// The CUDA executor's per-request loop over a batch, overlapped: while request i computes,
// request i+1's inputs are staged and copied in, and request i-1's outputs are copied out. One
// lane (one executor of a GPU) owns three streams and kPipelineDepth slots:
//
//   host       stage in(i) ─┐                stage in(i+1) ─┐         wait out(i-1), stage out
//   copy_in    ───────────── H2D(i) ─▶ in_done ─────────────── H2D(i+1) ─▶ ...
//   compute    ── wait in_done(i) ─── RunCuda(i) ─▶ compute_done ── wait ── RunCuda(i+1) ...
//   copy_out   ── wait compute_done(i) ── D2H(i) ─▶ out_done ─ free block(i)
//
// Each slot has two pinned slabs (inputs and outputs) and its events; a request's device block
// comes from the pool on the copy_in stream and goes back on the copy_out stream after its D2H
// (stream-ordered, so nothing waits for it on the host). The host waits only for the oldest
// slot's out_done, when it needs the slot again or at the end of the batch, and answers that
// request at once.
//
// Host copies per request: one memcpy of its inputs into the pinned slab (from the request
// message's bytes) and one of its outputs out of it (into the response message's bytes); the
// device copies are one DMA each way (BlockLayout keeps inputs and outputs contiguous).
//
// Included only by the CUDA executor's sources (it needs the CUDA headers).
#ifndef ATTND_SERVER_EXECUTOR_CUDA_PIPELINE_H_
#define ATTND_SERVER_EXECUTOR_CUDA_PIPELINE_H_

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "absl/status/status.h"
#include "kernels/cuda/cuda_attention.h"
#include "server/executor/block_layout.h"
#include "server/executor/executor.h"

namespace attnd::server::executor {

class DevicePool;

// Requests of one lane in flight at once. Two hide the copies of one request behind the
// compute of the other; a third would only hold more memory (each slot holds a request's
// tensors and workspace, and the planner gives each 1/kPipelineDepth of the budget).
inline constexpr int kPipelineDepth = 2;

// One slot's events, made once per lane. Timing is on (stage times come from them); out_done
// also blocks the host thread that waits for it instead of spinning a core.
struct PipelineEvents {
  cudaEvent_t in_start = nullptr, in_done = nullptr;
  cudaEvent_t compute_start = nullptr, compute_done = nullptr;
  cudaEvent_t out_start = nullptr, out_done = nullptr;
};
absl::Status CreatePipelineEvents(PipelineEvents* events);
void DestroyPipelineEvents(PipelineEvents* events);

struct PipelineResources {
  DevicePool* pool = nullptr;
  const kernels::cuda::CudaContext* compute = nullptr;  // its stream runs the kernels
  cudaStream_t copy_in = nullptr;
  cudaStream_t copy_out = nullptr;
  PipelineEvents* events = nullptr;  // [kPipelineDepth]
  std::vector<void*> slabs;          // 2 * kPipelineDepth pinned slabs: in, out per slot
  int64_t slab_bytes = 0;
};

class RequestPipeline {
 public:
  // `check_device` turns a failed step's status into the answer (UNAVAILABLE once the device is
  // poisoned). Answers go to `callbacks`->Done.
  RequestPipeline(const PipelineResources& resources, BatchCallbacks* callbacks,
                  std::function<absl::Status(absl::Status)> check_device);
  ~RequestPipeline();  // Drain()

  RequestPipeline(const RequestPipeline&) = delete;
  RequestPipeline& operator=(const RequestPipeline&) = delete;

  // Queues entry `index` (whose layout must fit the slabs), first answering the oldest request
  // when every slot is busy. On an error the entry is answered here with it, after whatever was
  // queued for it finished; returns the error too.
  absl::Status Launch(size_t index, const BatchEntry& entry);
  // Waits for and answers every request in flight, oldest first.
  void Drain();

 private:
  struct Slot {
    bool busy = false;
    size_t index = 0;
    void* slab_in = nullptr;
    void* slab_out = nullptr;
    PipelineEvents* events = nullptr;
    BlockLayout layout;
    void* host_out = nullptr;  // the response's output bytes
    float* host_lse = nullptr;
    double host_seconds = 0;  // staging memcpy so far
  };

  // Waits for `slot`'s copy-out, copies its outputs to the response and answers it.
  void Retire(Slot* slot);
  // Queues the copies and the kernels of `entry` into `slot` on its block at `base`.
  absl::Status Enqueue(Slot* slot, const BatchEntry& entry, char* base);
  // Waits for all three streams (after an error, before a block may be freed).
  void SynchronizeAll();

  const PipelineResources resources_;
  BatchCallbacks* const callbacks_;
  const std::function<absl::Status(absl::Status)> check_device_;
  Slot slots_[kPipelineDepth];
  int next_ = 0;  // the slot the next request takes; the oldest busy one when all are
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_CUDA_PIPELINE_H_
