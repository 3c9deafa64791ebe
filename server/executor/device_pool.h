// One GPU's memory pool on CUDA's stream-ordered allocator: a cudaMemPool_t of its own, whose
// release threshold is its limit (memory once reserved stays reserved, so a second request
// does not pay for cudaMalloc again) and whose maximum size is its limit, booked by a
// PoolLedger that refuses past the limit before any CUDA call. Nothing on the request path
// calls cudaMalloc: buffers come from here.
//
//   auto pool = DevicePool::Create(/*device=*/0, /*limit_bytes=*/4 << 30);
//   absl::StatusOr<void*> p = (*pool)->Allocate(bytes, stream);  // RESOURCE_EXHAUSTED: re-plan
//   ...
//   (*pool)->Free(*p, stream);
#ifndef ATTND_SERVER_EXECUTOR_DEVICE_POOL_H_
#define ATTND_SERVER_EXECUTOR_DEVICE_POOL_H_

#include <cuda_runtime_api.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "server/executor/device_budget.h"

namespace attnd::server::executor {

struct PoolStats {
  int64_t limit_bytes = 0;
  int64_t reserved_bytes = 0;   // held from the driver (cudaMemPoolAttrReservedMemCurrent)
  int64_t used_bytes = 0;       // handed out now
  int64_t peak_used_bytes = 0;  // most handed out at once (since creation or ResetPeak)
  int64_t failures = 0;         // refusals by the limit plus allocations the device refused
};

class DevicePool {
 public:
  // Creates the pool on `device` (the calling thread's current device is left as it was).
  static absl::StatusOr<std::unique_ptr<DevicePool>> Create(int device, int64_t limit_bytes);
  ~DevicePool();  // trims and destroys the pool; every allocation must have been freed

  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;

  // `bytes` (rounded up to kDeviceAlignment) on `stream`, usable by work ordered after it on
  // that stream. RESOURCE_EXHAUSTED, with no CUDA call, past the limit; RESOURCE_EXHAUSTED too
  // when the device cannot give it (the CUDA error is cleared so it does not leak into the
  // next call). Any other CUDA error is INTERNAL.
  absl::StatusOr<void*> Allocate(int64_t bytes, cudaStream_t stream);
  // Returns `ptr` to the pool once `stream` reaches this point. INTERNAL on a CUDA error (the
  // ledger is credited either way).
  absl::Status Free(void* ptr, cudaStream_t stream);

  PoolStats Stats() const;
  int64_t limit_bytes() const { return ledger_.limit_bytes(); }
  int64_t used_bytes() const { return ledger_.used_bytes(); }
  int64_t reserved_bytes() const;
  void ResetPeak() { ledger_.ResetPeak(); }
  int device() const { return device_; }

  // The next `count` allocations within the limit fail as if the device had refused them
  // (tests of the re-plan path).
  void InjectAllocationFailuresForTesting(int count) { injected_failures_.store(count); }

 private:
  DevicePool(int device, cudaMemPool_t pool, int64_t limit_bytes)
      : device_(device), pool_(pool), ledger_(limit_bytes) {}

  // Constant after construction.
  const int device_;
  const cudaMemPool_t pool_;

  PoolLedger ledger_;
  std::atomic<int> injected_failures_{0};
  mutable absl::Mutex mu_;
  absl::flat_hash_map<void*, int64_t> sizes_ ABSL_GUARDED_BY(mu_);  // live allocations
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_DEVICE_POOL_H_
