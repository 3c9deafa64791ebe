// One GPU as a device: the CUDA variants (kernels/cuda/cuda_attention.h) on buffers from the
// device's own pool, inputs and outputs through pinned staging, one lane (a CUDA context:
// compute stream, cuBLAS and cuDNN handles; plus a copy-in and a copy-out stream) per executor
// of the device (scheduler.workers): lanes run batches at the same time.
//
// Per batch (RunBatch): the requests one by one, overlapped on the lane's three streams
// (cuda_pipeline.h: copy-in of the next and copy-out of the previous behind each compute), each
// request's inputs and outputs through one pinned slab each way. A request whose tensors do not
// fit a slab drains the pipeline and runs as below, through the same slabs. With
// scheduler.ragged_launch, the batch's compatible fused requests (ragged_group.h) are packed on
// the host into one ragged problem and run as one fused launch, as a request larger than a slab
// is (ragged_runner.h).
//
// Per request (Run, and a batch's requests larger than a slab):
//   pool: one block for q, k, v, bias, kv_lengths, out, lse and the plan's workspace
//         (RESOURCE_EXHAUSTED when the pool or the device cannot give it: the runner re-plans
//         with half the budget)
//   copy in through two pinned slabs → RunCuda → copy out → synchronize → free to the pool
// A sticky CUDA error (the context is poisoned: illegal address, launch failure, ...) marks the
// executor broken, calls OnFatalDeviceError once and answers UNAVAILABLE from then on.
//
// Plain C++ header (no CUDA headers): devices.cc includes it.
#ifndef ATTND_SERVER_EXECUTOR_CUDA_EXECUTOR_H_
#define ATTND_SERVER_EXECUTOR_CUDA_EXECUTOR_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/config/config.h"
#include "server/executor/executor.h"
#include "server/executor/ragged_runner.h"

namespace attnd::server::executor {

class DevicePool;
class StagingPool;

struct CudaExecutorOptions {
  int device = 0;
  int workers = 1;  // contexts: requests computed at once (scheduler.workers)
  MemorySection memory;
  // Pinned staging: slabs of this size, two per request in flight, at most `staging_cap_bytes`
  // pinned in all. 32 MiB pieces keep the copies near PCIe speed while the host memcpy of the
  // other slab overlaps them.
  int64_t staging_slab_bytes = int64_t{32} << 20;
  int64_t staging_cap_bytes = int64_t{512} << 20;
  // scheduler.ragged_launch and the bounds of a launch (ragged_runner.h).
  RaggedLaunchOptions batch;
};

class CudaExecutor final : public Executor {
 public:
  // Creates the pool (limit from options.memory and the card), the staging pool and the
  // contexts. FAILED_PRECONDITION naming the device when it cannot be used.
  static absl::StatusOr<std::unique_ptr<CudaExecutor>> Create(const CudaExecutorOptions& options);
  ~CudaExecutor() override;

  CudaExecutor(const CudaExecutor&) = delete;
  CudaExecutor& operator=(const CudaExecutor&) = delete;

  const std::string& name() const override { return name_; }
  const std::string& kind() const override { return kind_; }
  const kernels::Capabilities& capabilities() const override { return capabilities_; }
  // capabilities() less cudnn when cuDNN does not support the problem.
  kernels::Capabilities CapabilitiesFor(const kernels::AttentionProblem& problem) const override;
  // For a cudnn plan, what cuDNN says its plan needs.
  absl::StatusOr<int64_t> DeviceWorkspaceBytes(
      const kernels::Plan& plan, const kernels::AttentionProblem& problem) const override;
  int64_t TensorBytes(const kernels::AttentionProblem& problem) const override;
  // UNAVAILABLE once the device met a sticky error.
  absl::Status Health() const override;
  // DeviceBudgetBytes (device_budget.h) of the pool's figures and cudaMemGetInfo, read now.
  int64_t MemoryBudgetBytes() const override;
  MemoryStats Memory() const override;
  absl::Status Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                   const kernels::AttentionTensors& tensors) override;
  // The batch overlapped on one lane's streams (see above).
  void RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) override;
  int RequestsInFlight() const override;

  int device() const { return device_; }
  const std::string& model() const { return model_; }  // "NVIDIA H100 80GB HBM3"
  DevicePool* pool() const { return pool_.get(); }
  bool broken() const { return broken_.load(); }

 private:
  struct Lane;  // one CUDA context, its copy streams and the events of its copies

  explicit CudaExecutor(const CudaExecutorOptions& options);

  Lane* AcquireLane() const;
  void ReleaseLane(Lane* lane) const;
  // One request alone on `lane`, streamed through two pinned `slabs` of the staging pool's size.
  absl::Status RunOnLane(Lane* lane, const std::vector<void*>& slabs, const kernels::Plan& plan,
                         const kernels::AttentionProblem& problem,
                         const kernels::AttentionTensors& tensors);
  // RunOnLane, then CheckDevice on a failure that may have come from the device (a
  // RESOURCE_EXHAUSTED or INVALID_ARGUMENT is the request's own and leaves the device alone).
  absl::Status RunOnLaneChecked(Lane* lane, const std::vector<void*>& slabs,
                                const kernels::Plan& plan,
                                const kernels::AttentionProblem& problem,
                                const kernels::AttentionTensors& tensors);
  // RunBatch's work once the lane and the pipeline's slabs are held.
  void RunBatchOnLane(Lane* lane, const std::vector<void*>& slabs,
                      absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks);
  // After a failed step: when the context is poisoned (the error does not clear), marks the
  // executor broken, reports it once and returns UNAVAILABLE; otherwise returns `status`.
  absl::Status CheckDevice(Lane* lane, absl::Status status);
  // Marks the executor broken and reports `cause` to OnFatalDeviceError, once.
  void MarkBroken(const absl::Status& cause) const;
  absl::Status Broken() const;
  // cudaMemGetInfo of this device. An error that persists after clearing is a sticky one:
  // MarkBroken, and false.
  bool ReadDeviceMemory(int64_t* free_bytes, int64_t* total_bytes) const;

  // Constant after construction.
  const int device_;
  const std::string name_;
  const std::string kind_ = "cuda";
  const CudaExecutorOptions options_;
  const MemorySection memory_;
  std::string model_;
  int64_t total_bytes_ = 0;
  kernels::Capabilities capabilities_;
  std::unique_ptr<DevicePool> pool_;
  std::unique_ptr<StagingPool> staging_;
  std::vector<std::unique_ptr<Lane>> lanes_;

  mutable std::atomic<bool> broken_{false};
  mutable absl::Mutex lanes_mu_;
  mutable std::vector<Lane*> free_lanes_ ABSL_GUARDED_BY(lanes_mu_);
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_CUDA_EXECUTOR_H_
