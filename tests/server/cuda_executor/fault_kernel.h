// A deliberate sticky CUDA error, for the tests of the fatal-error path.
#ifndef ATTND_TESTS_SERVER_CUDA_EXECUTOR_FAULT_KERNEL_H_
#define ATTND_TESTS_SERVER_CUDA_EXECUTOR_FAULT_KERNEL_H_

namespace attnd::testing {

// Launches a kernel that writes through an invalid device pointer on device 0 and waits for it:
// the process's CUDA context is poisoned (cudaErrorIllegalAddress) from then on.
void PoisonCudaContext();

}  // namespace attnd::testing

#endif  // ATTND_TESTS_SERVER_CUDA_EXECUTOR_FAULT_KERNEL_H_
