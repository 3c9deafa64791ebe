// The CPU executor and RequestRunner under injected faults (server/faults): an allocation that
// fails re-plans with smaller chunks and succeeds; one that keeps failing is RESOURCE_EXHAUSTED
// and the next 100 requests all succeed; a sticky error marks the device broken, reports the
// fatal hook once and answers UNAVAILABLE after; every path leaves the workspace in use at 0.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/cpu_executor.h"
#include "server/executor/fatal_device_error.h"
#include "server/executor/request_runner.h"
#include "server/faults/fault_injector.h"
#include "server/metrics/metrics.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"

namespace attnd::server::executor {
namespace {

using faults::FaultSpec;
using faults::ScopedFaultInjector;
using faults::ScriptedFaults;
using testing::DecodeOrFail;
using ::testing::HasSubstr;
using testing::MakeRequest;
using testing::MatchesReference;
using testing::SmallSpec;

constexpr int64_t kMiB = int64_t{1} << 20;

// 400 KiB of budget (the host reports 64 GiB available, so the config cap decides), 1 thread.
std::unique_ptr<CpuExecutor> SmallCpu() {
  MemorySection memory;
  memory.host_budget_bytes = 400 * 1024;
  memory.host_fraction = 0.5;
  memory.safety_margin_bytes = 0;
  return std::make_unique<CpuExecutor>(memory, 1, []() -> absl::StatusOr<MemInfo> {
    return MemInfo{int64_t{128} << 30, int64_t{64} << 30};
  });
}

// f32 B 2, Hq 4, Mq 300, Mk 500: cpu_chunked takes 306 KiB at most (150 × 500 tiles); half of
// 400 KiB does not hold that, so the re-plan after a failure chooses smaller chunks.
v1::AttendRequest BudgetBound(uint32_t seed) {
  client::RequestSpec spec = SmallSpec();
  spec.q_len = 300;
  spec.kv_len = 500;
  return MakeRequest(spec, seed);
}

TEST(CpuFaultsTest, InjectedOomReplansWithSmallerChunksAndSucceeds) {
  auto cpu = SmallCpu();
  metrics::Registry registry;
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), &registry);
  const v1::AttendRequest request = BudgetBound(1);
  absl::StatusOr<v1::AttendResponse> clean = runner.Run(DecodeOrFail(request), "a", RunContext{});
  ASSERT_TRUE(clean.ok()) << clean.status();

  FaultSpec spec;
  spec.alloc_fail_at = 1;  // the next allocation, once
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);
  absl::StatusOr<v1::AttendResponse> replanned =
      runner.Run(DecodeOrFail(request), "b", RunContext{});
  ASSERT_TRUE(replanned.ok()) << replanned.status();
  EXPECT_TRUE(MatchesReference(request, *replanned));
  const v1::Execution& a = clean->execution();
  const v1::Execution& b = replanned->execution();
  EXPECT_LT(b.workspace_bytes(), a.workspace_bytes());
  EXPECT_LT(b.q_chunk() * b.kv_chunk(), a.q_chunk() * a.kv_chunk());
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 1"));
  EXPECT_EQ(cpu->Memory().allocation_failures, 1);
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
  RecordProperty("chunks", absl::StrCat(a.q_chunk(), "x", a.kv_chunk(), " -> ", b.q_chunk(), "x",
                                        b.kv_chunk()));
}

TEST(CpuFaultsTest, OomThatPersistsIsResourceExhaustedThenTheNext100Succeed) {
  auto cpu = SmallCpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);  // 2 re-plans at most
  FaultSpec spec;
  spec.alloc_fail_at = 1;
  spec.alloc_fail_count = 3;  // the first try and both re-plans
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);
  const v1::AttendRequest request = BudgetBound(2);
  absl::StatusOr<v1::AttendResponse> refused = runner.Run(DecodeOrFail(request), "x", RunContext{});
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("injected allocation failure"));
  EXPECT_EQ(faults.allocations(), 3);
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
  EXPECT_TRUE(cpu->Health().ok());

  const v1::AttendRequest small = MakeRequest(SmallSpec(), 3);
  const wire::DecodedRequest decoded = DecodeOrFail(small);
  int ok = 0;
  for (int i = 0; i < 100; ++i) {
    absl::StatusOr<v1::AttendResponse> r = runner.Run(decoded, "after", RunContext{});
    if (r.ok()) ++ok;
    if (i == 0) {
      EXPECT_TRUE(r.ok() && MatchesReference(small, *r)) << r.status();
    }
  }
  EXPECT_EQ(ok, 100);
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
}

TEST(CpuFaultsTest, StickyErrorBreaksTheDeviceReportsOnceAndAnswersUnavailable) {
  ResetFatalDeviceErrorForTesting();
  int reports = 0;
  SetFatalDeviceErrorHandler([&reports](const std::string& device, const absl::Status& error) {
    EXPECT_EQ(device, "cpu");
    EXPECT_TRUE(faults::IsInjectedStickyError(error)) << error;
    ++reports;
  });
  auto cpu = SmallCpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  FaultSpec spec;
  spec.sticky_at = 2;
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 4);
  EXPECT_TRUE(runner.Run(DecodeOrFail(request), "first", RunContext{}).ok());
  for (const char* id : {"second", "third"}) {
    absl::StatusOr<v1::AttendResponse> r = runner.Run(DecodeOrFail(request), id, RunContext{});
    EXPECT_TRUE(absl::IsUnavailable(r.status())) << id << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr("injected sticky device error"));
  }
  EXPECT_EQ(reports, 1);
  EXPECT_TRUE(FatalDeviceErrorHappened());
  EXPECT_TRUE(absl::IsUnavailable(cpu->Health()));
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
  SetFatalDeviceErrorHandler(nullptr);
  ResetFatalDeviceErrorForTesting();
}

TEST(CpuFaultsTest, SlowKernelAndCopyOutHoldTheWorkspaceOnlyWhileTheyRun) {
  auto cpu = SmallCpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  FaultSpec spec;
  spec.slow_kernel_ms = 30;
  spec.slow_copy_out_ms = 30;
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 5);
  absl::StatusOr<v1::AttendResponse> r = runner.Run(DecodeOrFail(request), "slow", RunContext{});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(MatchesReference(request, *r));
  EXPECT_EQ(faults.launches(), 1);
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
}

}  // namespace
}  // namespace attnd::server::executor
