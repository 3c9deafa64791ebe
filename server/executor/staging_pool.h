// Pinned host memory for the copies between a request's bytes (pageable, inside the protobuf
// message) and the device: page-locked slabs allocated with cudaHostAlloc on first need, reused
// by every request after, up to a cap; and a copier that streams a tensor through two of them
// so that the host memcpy of one piece overlaps the DMA of the other (cudaMemcpyAsync from
// pageable memory would be synchronous and half as fast).
#ifndef ATTND_SERVER_EXECUTOR_STAGING_POOL_H_
#define ATTND_SERVER_EXECUTOR_STAGING_POOL_H_

#include <cuda_runtime_api.h>

#include <cstdint>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace attnd::server::executor {

class StagingPool {
 public:
  // Slabs of `slab_bytes`, at most `cap_bytes` of them together (at least two slabs).
  StagingPool(int64_t slab_bytes, int64_t cap_bytes);
  ~StagingPool();  // frees every slab; all must have been released

  StagingPool(const StagingPool&) = delete;
  StagingPool& operator=(const StagingPool&) = delete;

  // `count` slabs at once (so that two callers can never each hold one and wait for a second):
  // free ones first, new ones while under the cap, else waits for releases. RESOURCE_EXHAUSTED
  // when the host cannot pin more memory and none is free; INVALID_ARGUMENT when `count` slabs
  // exceed the cap.
  absl::StatusOr<std::vector<void*>> Acquire(int count);
  void Release(const std::vector<void*>& slabs);

  int64_t slab_bytes() const { return slab_bytes_; }
  int64_t pinned_bytes() const;  // slabs allocated so far

 private:
  // Constant after construction.
  const int64_t slab_bytes_;
  const int max_slabs_;

  mutable absl::Mutex mu_;
  std::vector<void*> all_ ABSL_GUARDED_BY(mu_);
  std::vector<void*> free_ ABSL_GUARDED_BY(mu_);
};

// Streams tensors between pageable host memory and the device through two pinned slabs on one
// stream. `events` are two events of the caller's (reused across requests). Copies to the host
// land once Finish returns OK.
class StagedCopier {
 public:
  StagedCopier(const std::vector<void*>& slabs, int64_t slab_bytes, const cudaEvent_t events[2],
               cudaStream_t stream);
  ~StagedCopier();  // waits for the slabs to be idle (they go back to the pool after)

  absl::Status ToDevice(void* device_dst, const void* host_src, int64_t bytes);
  absl::Status ToHost(void* host_dst, const void* device_src, int64_t bytes);
  // Waits for every piece and completes the host side of the copies to the host.
  absl::Status Finish();

 private:
  struct Slot {
    void* slab = nullptr;
    cudaEvent_t event = nullptr;
    bool in_flight = false;    // the event was recorded after the slot's last copy
    void* host_dst = nullptr;  // a copy to the host waiting for its host half
    int64_t host_bytes = 0;
  };

  // Waits for `slot`'s last copy and finishes its host half.
  absl::Status Settle(Slot* slot);
  // The slot for the next piece, settled.
  absl::StatusOr<Slot*> NextSlot();

  const int64_t slab_bytes_;
  const cudaStream_t stream_;
  Slot slots_[2];
  int next_ = 0;
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_STAGING_POOL_H_
