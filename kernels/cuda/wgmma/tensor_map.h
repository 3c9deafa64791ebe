// The driver's cuTensorMapEncodeTiled for the TMA kernels' host code (fused/, score_gemm/),
// reached through the runtime so that nothing links libcuda.
#ifndef ATTND_KERNELS_CUDA_WGMMA_TENSOR_MAP_H_
#define ATTND_KERNELS_CUDA_WGMMA_TENSOR_MAP_H_

#include <cudaTypedefs.h>  // PFN_cuTensorMapEncodeTiled

namespace attnd::kernels::cuda::wgmma {

// cuTensorMapEncodeTiled, or null where the driver does not give it (looked up once).
PFN_cuTensorMapEncodeTiled_v12000 TensorMapEncoder();

}  // namespace attnd::kernels::cuda::wgmma

#endif  // ATTND_KERNELS_CUDA_WGMMA_TENSOR_MAP_H_
