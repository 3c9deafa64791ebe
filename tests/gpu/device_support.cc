#include "tests/gpu/device_support.h"

#include <cuda_runtime.h>

#include <cstddef>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/device_query.h"

namespace attnd::kernels::testing {

DeviceBuffer::~DeviceBuffer() {
  if (data_ != nullptr) cudaFree(data_);
}

cudaError_t DeviceBuffer::Allocate(size_t bytes) {
  bytes_ = bytes;
  return bytes == 0 ? cudaSuccess : cudaMalloc(&data_, bytes);
}

cudaError_t DeviceBuffer::Upload(const void* host, size_t bytes) {
  if (cudaError_t e = Allocate(bytes); e != cudaSuccess) return e;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = cudaMemcpy(data_, host, bytes, cudaMemcpyHostToDevice); e != cudaSuccess) {
    return e;
  }
  return cudaDeviceSynchronize();
}

cudaError_t DeviceBuffer::Fill(int byte) {
  if (bytes_ == 0) return cudaSuccess;
  if (cudaError_t e = cudaMemset(data_, byte, bytes_); e != cudaSuccess) return e;
  return cudaDeviceSynchronize();
}

cudaError_t DeviceBuffer::Download(void* host) const {
  return bytes_ == 0 ? cudaSuccess : cudaMemcpy(host, data_, bytes_, cudaMemcpyDeviceToHost);
}

bool HaveDevice() { return CudaDeviceCount() > 0; }

cuda::CudaContext* SharedContext() {
  static cuda::CudaContext* context = [] {
    auto* c = new cuda::CudaContext();
    const absl::Status s = cuda::CreateCudaContext(0, c);
    if (!s.ok()) {
      ADD_FAILURE() << "CreateCudaContext: " << s;
      return static_cast<cuda::CudaContext*>(nullptr);
    }
    return c;
  }();
  return context;
}

}  // namespace attnd::kernels::testing
