// device_query.h on the CUDA runtime. Every call is checked; an error means "no device" (and is
// cleared so it cannot leak into the next CUDA call of this thread).
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/device_query.h"

namespace attnd::kernels {

bool CudaBuilt() { return true; }

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::vector<CudaDeviceInfo> CudaDevices() {
  std::vector<CudaDeviceInfo> devices;
  const int count = CudaDeviceCount();
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, i) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    CudaDeviceInfo info;
    info.ordinal = i;
    info.name = prop.name;
    info.total_memory_bytes = static_cast<int64_t>(prop.totalGlobalMem);
    info.compute_major = prop.major;
    info.compute_minor = prop.minor;
    info.multiprocessors = prop.multiProcessorCount;
    devices.push_back(info);
  }
  return devices;
}

bool CudaMemoryInfo(int ordinal, int64_t* free_bytes, int64_t* total_bytes) {
  int previous = 0;
  if (cudaGetDevice(&previous) != cudaSuccess || cudaSetDevice(ordinal) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  size_t free_now = 0;
  size_t total = 0;
  const bool ok = cudaMemGetInfo(&free_now, &total) == cudaSuccess;
  if (!ok) cudaGetLastError();
  cudaSetDevice(previous);  // the caller's current device is left as it was
  if (ok) {
    *free_bytes = static_cast<int64_t>(free_now);
    *total_bytes = static_cast<int64_t>(total);
  }
  return ok;
}

}  // namespace attnd::kernels
