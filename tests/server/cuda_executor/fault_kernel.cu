#include <cuda_runtime.h>

#include <cstdint>

#include "tests/server/cuda_executor/fault_kernel.h"

namespace attnd::testing {
namespace {

__global__ void WriteThrough(int* pointer) { *pointer = 42; }

}  // namespace

void PoisonCudaContext() {
  cudaSetDevice(0);
  // An address no allocation can have: the store faults (cudaErrorIllegalAddress).
  WriteThrough<<<1, 1>>>(reinterpret_cast<int*>(uintptr_t{0x10}));
  cudaDeviceSynchronize();
}

}  // namespace attnd::testing
