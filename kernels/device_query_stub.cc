// device_query.h for builds without CUDA: no devices.
#include <cstdint>
#include <vector>

#include "kernels/device_query.h"

namespace attnd::kernels {

bool CudaBuilt() { return false; }
int CudaDeviceCount() { return 0; }
std::vector<CudaDeviceInfo> CudaDevices() { return {}; }
bool CudaMemoryInfo(int, int64_t*, int64_t*) { return false; }

}  // namespace attnd::kernels
