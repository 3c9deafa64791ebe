#include "server/executor/device_pool.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/executor/cuda_status.h"
#include "server/faults/fault_injector.h"

namespace attnd::server::executor {
namespace {

// Makes `device` current for the scope, restoring the previous device after.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    if (cudaGetDevice(&previous_) != cudaSuccess) previous_ = -1;
    status_ = ATTND_CUDA_STATUS(cudaSetDevice(device));
  }
  ~ScopedDevice() {
    if (previous_ >= 0) cudaSetDevice(previous_);
  }
  const absl::Status& status() const { return status_; }

 private:
  int previous_ = -1;
  absl::Status status_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<DevicePool>> DevicePool::Create(int device, int64_t limit_bytes) {
  if (limit_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("the pool limit of cuda:", device, " is ", limit_bytes,
                     " bytes; set memory.device_bytes or memory.device_fraction above 0"));
  }
  ScopedDevice scoped(device);
  if (!scoped.status().ok()) return scoped.status();
  cudaMemPoolProps props;
  std::memset(&props, 0, sizeof(props));
  props.allocType = cudaMemAllocationTypePinned;
  props.handleTypes = cudaMemHandleTypeNone;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device;
  // The driver reserves in 2 MiB granules; a maximum that is not a multiple is rounded.
  constexpr int64_t kGranule = int64_t{2} << 20;
  props.maxSize = static_cast<size_t>((limit_bytes + kGranule - 1) / kGranule * kGranule);
  cudaMemPool_t pool = nullptr;
  CUDA_RETURN_IF_ERROR(cudaMemPoolCreate(&pool, &props));
  // Reserved memory stays reserved up to the limit: freed blocks go back to the pool, not to
  // the driver, so the next request allocates without a cudaMalloc.
  uint64_t threshold = static_cast<uint64_t>(limit_bytes);
  absl::Status status =
      ATTND_CUDA_STATUS(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold));
  if (!status.ok()) {
    cudaMemPoolDestroy(pool);
    return status;
  }
  return std::unique_ptr<DevicePool>(new DevicePool(device, pool, limit_bytes));
}

DevicePool::~DevicePool() {
  ScopedDevice scoped(device_);
  cudaMemPoolTrimTo(pool_, 0);
  cudaMemPoolDestroy(pool_);
  cudaGetLastError();  // nothing to report from a destructor
}

absl::StatusOr<void*> DevicePool::Allocate(int64_t bytes, cudaStream_t stream) {
  const int64_t size = AlignDeviceBytes(std::max<int64_t>(bytes, 1));
  if (absl::Status booked = ledger_.Take(size); !booked.ok()) return booked;
  void* ptr = nullptr;
  faults::FaultInjector* const injector = faults::Active();  // null in production
  const bool injected = (injected_failures_.load() > 0 && injected_failures_.fetch_sub(1) > 0) ||
                        (injector != nullptr && injector->FailAllocation());
  const cudaError_t error =
      injected ? cudaErrorMemoryAllocation
               : cudaMallocFromPoolAsync(&ptr, static_cast<size_t>(size), pool_, stream);
  if (error != cudaSuccess) {
    ledger_.Give(size);
    if (error == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // not sticky: clear it so the next call does not see it
      ledger_.CountFailure();
      return absl::ResourceExhaustedError(absl::StrCat(
          "cuda:", device_, " could not give ", size,
          " bytes (cudaMallocFromPoolAsync: ", cudaGetErrorName(error), "); the pool had ",
          ledger_.used_bytes(), " of ", ledger_.limit_bytes(), " bytes in use"));
    }
    return CudaStatus(error, "cudaMallocFromPoolAsync", __FILE__, __LINE__);
  }
  absl::MutexLock lock(&mu_);
  sizes_[ptr] = size;
  return ptr;
}

absl::Status DevicePool::Free(void* ptr, cudaStream_t stream) {
  if (ptr == nullptr) return absl::OkStatus();
  int64_t size = 0;
  {
    absl::MutexLock lock(&mu_);
    auto it = sizes_.find(ptr);
    if (it == sizes_.end()) {
      return absl::InvalidArgumentError("DevicePool::Free of a pointer the pool did not give");
    }
    size = it->second;
    sizes_.erase(it);
  }
  ledger_.Give(size);
  return ATTND_CUDA_STATUS(cudaFreeAsync(ptr, stream));
}

int64_t DevicePool::reserved_bytes() const {
  uint64_t reserved = 0;
  if (cudaMemPoolGetAttribute(pool_, cudaMemPoolAttrReservedMemCurrent, &reserved) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return static_cast<int64_t>(reserved);
}

PoolStats DevicePool::Stats() const {
  PoolStats stats;
  stats.limit_bytes = ledger_.limit_bytes();
  stats.reserved_bytes = reserved_bytes();
  stats.used_bytes = ledger_.used_bytes();
  stats.peak_used_bytes = ledger_.peak_used_bytes();
  stats.failures = ledger_.failures();
  return stats;
}

}  // namespace attnd::server::executor
