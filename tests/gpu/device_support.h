// What the GPU tests share: device buffers, the one CUDA context of the test binary, and the
// macros that skip visibly without a device. Built with CUDA only (attnd_gpu_test).
#ifndef ATTND_TESTS_GPU_DEVICE_SUPPORT_H_
#define ATTND_TESTS_GPU_DEVICE_SUPPORT_H_

#include <cuda_runtime.h>

#include <cstddef>

#include "gtest/gtest.h"
#include "kernels/cuda/cuda_attention.h"

namespace attnd::kernels::testing {

#define ASSERT_CUDA_OK(call)                                                       \
  do {                                                                             \
    const cudaError_t error_ = (call);                                             \
    ASSERT_EQ(error_, cudaSuccess) << #call << ": " << cudaGetErrorString(error_); \
  } while (false)

// A device buffer freed on scope exit. Upload and Fill return once the bytes are on the device:
// cudaMemcpy from pageable memory and cudaMemset run on the legacy default stream, which the
// context's non-blocking streams do not wait for, so a kernel launched next could otherwise read
// the buffer (or a Fill land on it) while that work is still in flight. Seen: a workspace Fill
// landing after the pipeline wrote its GEMM pointer arrays there, a "misaligned address" fault.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  cudaError_t Allocate(size_t bytes);
  cudaError_t Upload(const void* host, size_t bytes);
  cudaError_t Fill(int byte);  // every byte
  cudaError_t Download(void* host) const;  // all of its bytes
  void* get() const { return data_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
};

bool HaveDevice();

// One context for the whole binary (a context per test would be slow and is not what the
// server does either); null (with a test failure) when it cannot be made.
cuda::CudaContext* SharedContext();

#define SKIP_WITHOUT_DEVICE()                                                            \
  do {                                                                                   \
    if (!::attnd::kernels::testing::HaveDevice()) GTEST_SKIP() << "no CUDA device";      \
    ASSERT_NE(::attnd::kernels::testing::SharedContext(), nullptr) << "no CUDA context"; \
  } while (false)

}  // namespace attnd::kernels::testing

#endif  // ATTND_TESTS_GPU_DEVICE_SUPPORT_H_
