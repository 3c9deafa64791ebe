// Shared by the CUDA executor's tests: skip, visibly, where no CUDA device is usable.
#ifndef ATTND_TESTS_SERVER_CUDA_EXECUTOR_SKIP_WITHOUT_GPU_H_
#define ATTND_TESTS_SERVER_CUDA_EXECUTOR_SKIP_WITHOUT_GPU_H_

#include <gtest/gtest.h>

#include "kernels/device_query.h"

#define SKIP_WITHOUT_GPU()                                                          \
  do {                                                                              \
    if (::attnd::kernels::CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device"; \
  } while (false)

#endif  // ATTND_TESTS_SERVER_CUDA_EXECUTOR_SKIP_WITHOUT_GPU_H_
