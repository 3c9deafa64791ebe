// The fault scenarios: parsing (every key, and errors that name the key), and which call
// numbers each fault hits.
#include "server/faults/fault_injector.h"

#include <cstdlib>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::faults {
namespace {

using ::testing::HasSubstr;

TEST(FaultSpecTest, ParsesEveryKey) {
  absl::StatusOr<FaultSpec> spec = ParseFaultSpec(
      "alloc_fail_at=3,alloc_fail_count=-1,slow_kernel_ms=250,slow_kernels=2,"
      "slow_copy_out_ms=40,slow_copy_outs=1,sticky_at=7,leak_bytes_per_request=4096");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->alloc_fail_at, 3);
  EXPECT_EQ(spec->alloc_fail_count, -1);
  EXPECT_EQ(spec->slow_kernel_ms, 250);
  EXPECT_EQ(spec->slow_kernels, 2);
  EXPECT_EQ(spec->slow_copy_out_ms, 40);
  EXPECT_EQ(spec->slow_copy_outs, 1);
  EXPECT_EQ(spec->sticky_at, 7);
  EXPECT_EQ(spec->leak_bytes_per_request, 4096);
  // Empty: no faults at all.
  absl::StatusOr<FaultSpec> none = ParseFaultSpec("");
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->alloc_fail_at, 0);
  EXPECT_EQ(none->sticky_at, 0);
}

TEST(FaultSpecTest, ErrorsNameTheKeyAndValue) {
  EXPECT_THAT(ParseFaultSpec("alloc_fail_on=2").status().message(), HasSubstr("'alloc_fail_on'"));
  EXPECT_THAT(ParseFaultSpec("sticky_at=soon").status().message(), HasSubstr("sticky_at = 'soon'"));
  EXPECT_THAT(ParseFaultSpec("slow_kernel_ms").status().message(), HasSubstr("slow_kernel_ms"));
  EXPECT_THAT(ParseFaultSpec("slow_kernels=-2").status().message(), HasSubstr("slow_kernels"));
}

TEST(FaultSpecTest, FromEnvironment) {
  unsetenv("ATTND_TEST_FAULTS");
  unsetenv("ATTND_TEST_LEAK_BYTES_PER_REQUEST");
  absl::StatusOr<std::optional<FaultSpec>> none = FaultSpecFromEnvironment();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  setenv("ATTND_TEST_FAULTS", "sticky_at=2", 1);
  setenv("ATTND_TEST_LEAK_BYTES_PER_REQUEST", "65536", 1);
  absl::StatusOr<std::optional<FaultSpec>> both = FaultSpecFromEnvironment();
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_TRUE(both->has_value());
  EXPECT_EQ((*both)->sticky_at, 2);
  EXPECT_EQ((*both)->leak_bytes_per_request, 65536);
  setenv("ATTND_TEST_LEAK_BYTES_PER_REQUEST", "lots", 1);
  EXPECT_THAT(FaultSpecFromEnvironment().status().message(),
              HasSubstr("ATTND_TEST_LEAK_BYTES_PER_REQUEST = 'lots'"));
  unsetenv("ATTND_TEST_FAULTS");
  unsetenv("ATTND_TEST_LEAK_BYTES_PER_REQUEST");
}

TEST(ScriptedFaultsTest, AllocationFailsAtTheNthCallForCountCalls) {
  FaultSpec spec;
  spec.alloc_fail_at = 2;
  spec.alloc_fail_count = 2;
  ScriptedFaults faults(spec);
  // Calls 1..5: only 2 and 3 fail.
  EXPECT_FALSE(faults.FailAllocation());
  EXPECT_TRUE(faults.FailAllocation());
  EXPECT_TRUE(faults.FailAllocation());
  EXPECT_FALSE(faults.FailAllocation());
  EXPECT_FALSE(faults.FailAllocation());
  EXPECT_EQ(faults.allocations(), 5);

  spec.alloc_fail_count = -1;  // from N on, every one
  ScriptedFaults forever(spec);
  EXPECT_FALSE(forever.FailAllocation());
  for (int i = 0; i < 50; ++i) EXPECT_TRUE(forever.FailAllocation());
}

TEST(ScriptedFaultsTest, SlowKernelsAndCopyOutsForTheFirstK) {
  FaultSpec spec;
  spec.slow_kernel_ms = 300;
  spec.slow_kernels = 1;
  spec.slow_copy_out_ms = 20;  // every copy-out (slow_copy_outs -1)
  ScriptedFaults faults(spec);
  EXPECT_EQ(faults.KernelDelay(), absl::Milliseconds(300));
  EXPECT_EQ(faults.KernelDelay(), absl::ZeroDuration());
  for (int i = 0; i < 3; ++i) EXPECT_EQ(faults.CopyOutDelay(), absl::Milliseconds(20));
  EXPECT_EQ(faults.launches(), 2);
}

TEST(ScriptedFaultsTest, StickyFromTheNthLaunchOn) {
  FaultSpec spec;
  spec.sticky_at = 3;
  ScriptedFaults faults(spec);
  EXPECT_FALSE(faults.StickyError());
  EXPECT_FALSE(faults.StickyError());
  EXPECT_TRUE(faults.StickyError());
  EXPECT_TRUE(faults.StickyError());  // a broken device stays broken
  ScriptedFaults none{FaultSpec()};
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(none.StickyError());
}

TEST(ScriptedFaultsTest, InjectedStickyErrorIsRecognisedAndNothingElseIs) {
  EXPECT_TRUE(IsInjectedStickyError(InjectedStickyError()));
  EXPECT_FALSE(IsInjectedStickyError(absl::InternalError("cudaErrorIllegalAddress")));
  EXPECT_FALSE(IsInjectedStickyError(absl::UnavailableError("injected sticky device error")));
}

TEST(FaultInjectorTest, NoneInstalledByDefaultAndScopedInstallRestores) {
  EXPECT_EQ(Active(), nullptr);
  ScriptedFaults outer{FaultSpec()};
  {
    ScopedFaultInjector a(&outer);
    EXPECT_EQ(Active(), &outer);
    ScriptedFaults inner{FaultSpec()};
    {
      ScopedFaultInjector b(&inner);
      EXPECT_EQ(Active(), &inner);
    }
    EXPECT_EQ(Active(), &outer);
  }
  EXPECT_EQ(Active(), nullptr);
}

}  // namespace
}  // namespace attnd::server::faults
