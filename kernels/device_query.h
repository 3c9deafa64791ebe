// Which CUDA devices this process can use. Works in every build: without ATTND_WITH_CUDA (or
// without a driver or a GPU) there are no devices. Never aborts; errors read as "no device".
#ifndef ATTND_KERNELS_DEVICE_QUERY_H_
#define ATTND_KERNELS_DEVICE_QUERY_H_

#include <cstdint>
#include <string>
#include <vector>

namespace attnd::kernels {

struct CudaDeviceInfo {
  int ordinal = 0;
  std::string name;  // e.g. "NVIDIA H100 80GB HBM3"
  int64_t total_memory_bytes = 0;
  int compute_major = 0;  // compute capability, e.g. 9.0
  int compute_minor = 0;
  int multiprocessors = 0;
};

// True when this build has the CUDA variants compiled in (ATTND_WITH_CUDA).
bool CudaBuilt();
// cudaGetDeviceCount; 0 without CUDA, driver or device, and on any error.
int CudaDeviceCount();
// Properties of every device (empty when CudaDeviceCount() is 0). Creates no context.
std::vector<CudaDeviceInfo> CudaDevices();
// Free and total bytes of one device (cudaMemGetInfo). Creates that device's primary context
// (hundreds of MiB, once per process), so the server calls it per device it serves. False on
// any error or without CUDA.
bool CudaMemoryInfo(int ordinal, int64_t* free_bytes, int64_t* total_bytes);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_DEVICE_QUERY_H_
