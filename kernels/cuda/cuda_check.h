// Status-returning checks for CUDA runtime and cuBLAS calls (host code only). Each failure becomes
// an absl INTERNAL status naming the call, the error, the file and the line:
//
//   CUDA_RETURN_IF_ERROR(cudaMemsetAsync(ptr, 0, bytes, stream));
//   my_kernel<<<grid, block, 0, stream>>>(args);
//   CUDA_RETURN_IF_ERROR(cudaGetLastError());  // every launch
//   CUBLAS_RETURN_IF_ERROR(cublasSetStream(handle, stream));
//
// A sticky error (illegal address, launch failure) is reported the same way; the status message
// starts with the CUDA error's name (e.g. "cudaErrorIllegalAddress") so that the executor can
// tell it apart (IsStickyCudaError).
#ifndef ATTND_KERNELS_CUDA_CUDA_CHECK_H_
#define ATTND_KERNELS_CUDA_CUDA_CHECK_H_

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnd::kernels::cuda {

inline absl::Status CudaError(cudaError_t error, const char* call, const char* file, int line) {
  return absl::InternalError(absl::StrCat(cudaGetErrorName(error), " (", cudaGetErrorString(error),
                                          ") from ", call, " at ", file, ":", line));
}

inline absl::Status CublasError(cublasStatus_t status, const char* call, const char* file,
                                int line) {
  return absl::InternalError(absl::StrCat(cublasGetStatusName(status), " (",
                                          cublasGetStatusString(status), ") from ", call, " at ",
                                          file, ":", line));
}

// True for the errors after which the CUDA context is unusable (the process must restart).
inline bool IsStickyCudaError(cudaError_t error) {
  switch (error) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
    case cudaErrorECCUncorrectable:
      return true;
    default:
      return false;
  }
}

}  // namespace attnd::kernels::cuda

#define CUDA_RETURN_IF_ERROR(call)                                                            \
  do {                                                                                        \
    const cudaError_t attnd_cuda_error_ = (call);                                             \
    if (attnd_cuda_error_ != cudaSuccess) {                                                   \
      return ::attnd::kernels::cuda::CudaError(attnd_cuda_error_, #call, __FILE__, __LINE__); \
    }                                                                                         \
  } while (false)

#define CUBLAS_RETURN_IF_ERROR(call)                                                               \
  do {                                                                                             \
    const cublasStatus_t attnd_cublas_status_ = (call);                                            \
    if (attnd_cublas_status_ != CUBLAS_STATUS_SUCCESS) {                                           \
      return ::attnd::kernels::cuda::CublasError(attnd_cublas_status_, #call, __FILE__, __LINE__); \
    }                                                                                              \
  } while (false)

#endif  // ATTND_KERNELS_CUDA_CUDA_CHECK_H_
