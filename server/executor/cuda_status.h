// CUDA runtime errors as absl::Status, naming the call, the file and the line. Included only by
// the CUDA executor's sources (it needs the CUDA headers).
//
//   CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, stream));
#ifndef ATTND_SERVER_EXECUTOR_CUDA_STATUS_H_
#define ATTND_SERVER_EXECUTOR_CUDA_STATUS_H_

#include <cuda_runtime_api.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnd::server::executor {

// RESOURCE_EXHAUSTED for an allocation failure (recoverable: re-plan smaller), INTERNAL for
// everything else. The message names the call and the CUDA error.
inline absl::Status CudaStatus(cudaError_t error, const char* call, const char* file, int line) {
  if (error == cudaSuccess) return absl::OkStatus();
  const std::string message =
      absl::StrCat(call, " failed at ", file, ":", line, ": ", cudaGetErrorName(error), " (",
                   cudaGetErrorString(error), ")");
  if (error == cudaErrorMemoryAllocation) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

}  // namespace attnd::server::executor

#define ATTND_CUDA_STATUS(call) \
  ::attnd::server::executor::CudaStatus((call), #call, __FILE__, __LINE__)

#define CUDA_RETURN_IF_ERROR(call)                               \
  do {                                                           \
    ::absl::Status attnd_cuda_status_ = ATTND_CUDA_STATUS(call); \
    if (!attnd_cuda_status_.ok()) return attnd_cuda_status_;     \
  } while (false)

#endif  // ATTND_SERVER_EXECUTOR_CUDA_STATUS_H_
