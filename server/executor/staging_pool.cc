#include "server/executor/staging_pool.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/executor/cuda_status.h"

namespace attnd::server::executor {

StagingPool::StagingPool(int64_t slab_bytes, int64_t cap_bytes)
    : slab_bytes_(std::max<int64_t>(slab_bytes, 4096)),
      max_slabs_(static_cast<int>(std::max<int64_t>(cap_bytes / slab_bytes_, 2))) {}

StagingPool::~StagingPool() {
  absl::MutexLock lock(&mu_);
  for (void* slab : all_) cudaFreeHost(slab);
  cudaGetLastError();
}

absl::StatusOr<std::vector<void*>> StagingPool::Acquire(int count) {
  if (count < 1 || count > max_slabs_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot take ", count, " staging slabs at once (at most ", max_slabs_, ")"));
  }
  struct Wait {
    const std::vector<void*>* free_slabs;
    size_t had;
    static bool More(Wait* w) { return w->free_slabs->size() > w->had; }
  };
  absl::MutexLock lock(&mu_);
  for (;;) {
    while (static_cast<int>(free_.size()) < count && static_cast<int>(all_.size()) < max_slabs_) {
      void* slab = nullptr;
      // Portable: the copies may run on any device's stream.
      const cudaError_t error =
          cudaHostAlloc(&slab, static_cast<size_t>(slab_bytes_), cudaHostAllocPortable);
      if (error != cudaSuccess) {
        cudaGetLastError();
        if (all_.size() == free_.size()) {  // nobody holds a slab that could come back
          return absl::ResourceExhaustedError(
              absl::StrCat("cannot pin ", slab_bytes_,
                           " bytes of host memory for staging: ", cudaGetErrorName(error)));
        }
        break;  // the host refused more: wait for slabs others hold
      }
      all_.push_back(slab);
      free_.push_back(slab);
    }
    if (static_cast<int>(free_.size()) >= count) break;
    // Others hold the missing slabs (count <= max_slabs_): wait for a release.
    Wait wait{&free_, free_.size()};
    mu_.Await(absl::Condition(&Wait::More, &wait));
  }
  std::vector<void*> slabs(free_.end() - count, free_.end());
  free_.resize(free_.size() - count);
  return slabs;
}

void StagingPool::Release(const std::vector<void*>& slabs) {
  absl::MutexLock lock(&mu_);
  free_.insert(free_.end(), slabs.begin(), slabs.end());
}

int64_t StagingPool::pinned_bytes() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(all_.size()) * slab_bytes_;
}

StagedCopier::StagedCopier(const std::vector<void*>& slabs, int64_t slab_bytes,
                           const cudaEvent_t events[2], cudaStream_t stream)
    : slab_bytes_(slab_bytes), stream_(stream) {
  for (int i = 0; i < 2; ++i) {
    slots_[i].slab = slabs[i];
    slots_[i].event = events[i];
  }
}

StagedCopier::~StagedCopier() {
  for (Slot& slot : slots_) {
    if (slot.in_flight) cudaEventSynchronize(slot.event);
  }
  cudaGetLastError();
}

absl::Status StagedCopier::Settle(Slot* slot) {
  if (slot->in_flight) {
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(slot->event));
    slot->in_flight = false;
  }
  if (slot->host_dst != nullptr) {
    std::memcpy(slot->host_dst, slot->slab, static_cast<size_t>(slot->host_bytes));
    slot->host_dst = nullptr;
    slot->host_bytes = 0;
  }
  return absl::OkStatus();
}

absl::StatusOr<StagedCopier::Slot*> StagedCopier::NextSlot() {
  Slot* slot = &slots_[next_];
  next_ = 1 - next_;
  if (absl::Status s = Settle(slot); !s.ok()) return s;
  return slot;
}

absl::Status StagedCopier::ToDevice(void* device_dst, const void* host_src, int64_t bytes) {
  const char* src = static_cast<const char*>(host_src);
  char* dst = static_cast<char*>(device_dst);
  for (int64_t offset = 0; offset < bytes; offset += slab_bytes_) {
    const int64_t n = std::min(slab_bytes_, bytes - offset);
    absl::StatusOr<Slot*> slot = NextSlot();
    if (!slot.ok()) return slot.status();
    std::memcpy((*slot)->slab, src + offset, static_cast<size_t>(n));
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst + offset, (*slot)->slab, static_cast<size_t>(n),
                                         cudaMemcpyHostToDevice, stream_));
    CUDA_RETURN_IF_ERROR(cudaEventRecord((*slot)->event, stream_));
    (*slot)->in_flight = true;
  }
  return absl::OkStatus();
}

absl::Status StagedCopier::ToHost(void* host_dst, const void* device_src, int64_t bytes) {
  char* dst = static_cast<char*>(host_dst);
  const char* src = static_cast<const char*>(device_src);
  for (int64_t offset = 0; offset < bytes; offset += slab_bytes_) {
    const int64_t n = std::min(slab_bytes_, bytes - offset);
    absl::StatusOr<Slot*> slot = NextSlot();
    if (!slot.ok()) return slot.status();
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync((*slot)->slab, src + offset, static_cast<size_t>(n),
                                         cudaMemcpyDeviceToHost, stream_));
    CUDA_RETURN_IF_ERROR(cudaEventRecord((*slot)->event, stream_));
    (*slot)->in_flight = true;
    (*slot)->host_dst = dst + offset;
    (*slot)->host_bytes = n;
  }
  return absl::OkStatus();
}

absl::Status StagedCopier::Finish() {
  // Oldest first: the slot that `next_` points at was used before the other.
  for (int i = 0; i < 2; ++i) {
    if (absl::Status s = Settle(&slots_[(next_ + i) % 2]); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace attnd::server::executor
