// Device discovery answers in every build, GPU or not, and agrees with itself.
#include "kernels/device_query.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace attnd::kernels {
namespace {

TEST(DeviceQueryTest, ConsistentInEveryBuild) {
#if defined(ATTND_WITH_CUDA)
  EXPECT_TRUE(CudaBuilt());
#else
  EXPECT_FALSE(CudaBuilt());
  EXPECT_EQ(CudaDeviceCount(), 0);
#endif
  const int count = CudaDeviceCount();
  EXPECT_GE(count, 0);
  EXPECT_EQ(static_cast<int>(CudaDevices().size()), count);
  for (const CudaDeviceInfo& device : CudaDevices()) {
    EXPECT_FALSE(device.name.empty());
    EXPECT_GT(device.total_memory_bytes, 0);
    int64_t free_bytes = 0;
    int64_t total_bytes = 0;
    ASSERT_TRUE(CudaMemoryInfo(device.ordinal, &free_bytes, &total_bytes));
    EXPECT_GT(total_bytes, 0);
    EXPECT_LE(free_bytes, total_bytes);
  }
  int64_t free_bytes = 0;
  int64_t total_bytes = 0;
  EXPECT_FALSE(CudaMemoryInfo(count, &free_bytes, &total_bytes));  // no such device
}

}  // namespace
}  // namespace attnd::kernels
