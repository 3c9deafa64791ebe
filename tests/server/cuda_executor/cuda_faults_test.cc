// The CUDA executor under injected faults (server/faults), on a real GPU (each test skips,
// visibly, without one): an allocation failing at its Nth call re-plans smaller and succeeds,
// one that persists is RESOURCE_EXHAUSTED and the next 100 requests succeed; an injected sticky
// error turns into UNAVAILABLE and the fatal hook (the real illegal-address path is
// CudaExecutorDeathTest); a request cancelled in its batch while an earlier one's kernel stalls
// is never launched; a slow copy-out holds the block only until it is done; and NaN/Inf inputs
// batched with clean requests leave the clean outputs bit-identical to running them alone.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/device_query.h"
#include "server/executor/cuda_executor.h"
#include "server/executor/device_pool.h"
#include "server/executor/fatal_device_error.h"
#include "server/executor/request_runner.h"
#include "server/faults/fault_injector.h"
#include "server/metrics/metrics.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"
#include "tests/server/cuda_executor/skip_without_gpu.h"

namespace attnd::server::executor {
namespace {

using faults::FaultSpec;
using faults::ScopedFaultInjector;
using faults::ScriptedFaults;
using testing::DecodeOrFail;
using ::testing::HasSubstr;
using testing::MakeRequest;
using testing::SmallSpec;

constexpr int64_t kMiB = int64_t{1} << 20;

std::unique_ptr<CudaExecutor> Gpu(int64_t pool_bytes, int64_t slab_bytes = 1 * kMiB) {
  CudaExecutorOptions options;
  options.device = 0;
  options.workers = 1;
  options.memory.device_bytes = pool_bytes;
  options.memory.safety_margin_bytes = 16 * kMiB;
  options.staging_slab_bytes = slab_bytes;
  options.staging_cap_bytes = 16 * kMiB;
  absl::StatusOr<std::unique_ptr<CudaExecutor>> gpu = CudaExecutor::Create(options);
  EXPECT_TRUE(gpu.ok()) << gpu.status();
  return gpu.ok() ? *std::move(gpu) : nullptr;
}

// f32 B=1 H=2 Mq=Mk=2048 D=64 forced `chunked` with chunks up to the whole problem, in a 32 MiB
// pool: the budget decides the chunks (as CudaExecutorTest.AnInjectedAllocationFailure...).
v1::AttendRequest BudgetBound(uint32_t seed) {
  client::RequestSpec spec = SmallSpec();
  spec.batch = 1;
  spec.q_len = spec.kv_len = 2048;
  spec.heads = spec.kv_heads = 2;
  spec.head_dim = spec.v_head_dim = 64;
  spec.return_lse = false;
  v1::AttendRequest request = MakeRequest(spec, seed);
  request.set_variant(v1::VARIANT_CHUNKED);
  return request;
}

kernels::PlannerConfig WholeChunks() {
  kernels::PlannerConfig planner;
  planner.max_q_chunk = 2048;
  planner.max_kv_chunk = 2048;
  return planner;
}

TEST(CudaFaultsTest, OomAtTheNthAllocationReplansSmallerThenPersistsThenTheNext100Succeed) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(32 * kMiB, 64 * 1024);
  ASSERT_NE(gpu, nullptr);
  metrics::Registry registry;
  RequestRunner runner(gpu.get(), WholeChunks(), &registry);
  const v1::AttendRequest request = BudgetBound(7);
  absl::StatusOr<v1::AttendResponse> clean = runner.Run(DecodeOrFail(request), "a", RunContext{});
  ASSERT_TRUE(clean.ok()) << clean.status();

  {
    FaultSpec spec;
    spec.alloc_fail_at = 1;  // the next allocation, once
    ScriptedFaults faults(spec);
    ScopedFaultInjector scoped(&faults);
    absl::StatusOr<v1::AttendResponse> replanned =
        runner.Run(DecodeOrFail(request), "b", RunContext{});
    ASSERT_TRUE(replanned.ok()) << replanned.status();
    EXPECT_LT(replanned->execution().workspace_bytes(), clean->execution().workspace_bytes());
    EXPECT_TRUE(testing::MatchesReference(request, *replanned));
    EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 1"));
  }
  {
    FaultSpec spec;
    spec.alloc_fail_at = 1;
    spec.alloc_fail_count = 3;  // the try and both re-plans
    ScriptedFaults faults(spec);
    ScopedFaultInjector scoped(&faults);
    absl::StatusOr<v1::AttendResponse> refused =
        runner.Run(DecodeOrFail(request), "c", RunContext{});
    EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
    const v1::AttendRequest small = MakeRequest(SmallSpec(), 8);
    const wire::DecodedRequest decoded = DecodeOrFail(small);
    int ok = 0;
    for (int i = 0; i < 100; ++i) ok += runner.Run(decoded, "after", RunContext{}).ok();
    EXPECT_EQ(ok, 100);
  }
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
  EXPECT_FALSE(gpu->broken());
}

TEST(CudaFaultsTest, InjectedStickyErrorIsUnavailableAndReportedOnce) {
  SKIP_WITHOUT_GPU();
  ResetFatalDeviceErrorForTesting();
  int reports = 0;
  SetFatalDeviceErrorHandler([&reports](const std::string&, const absl::Status&) { ++reports; });
  {
    auto gpu = Gpu(256 * kMiB);
    ASSERT_NE(gpu, nullptr);
    RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
    FaultSpec spec;
    spec.sticky_at = 2;
    ScriptedFaults faults(spec);
    ScopedFaultInjector scoped(&faults);
    const v1::AttendRequest request = MakeRequest(SmallSpec(), 9);
    EXPECT_TRUE(runner.Run(DecodeOrFail(request), "ok", RunContext{}).ok());
    for (const char* id : {"x", "y"}) {
      absl::StatusOr<v1::AttendResponse> r = runner.Run(DecodeOrFail(request), id, RunContext{});
      EXPECT_TRUE(absl::IsUnavailable(r.status())) << id << ": " << r.status();
    }
    EXPECT_TRUE(gpu->broken());
    EXPECT_TRUE(absl::IsUnavailable(gpu->Health()));
    EXPECT_EQ(reports, 1);
    EXPECT_EQ(gpu->pool()->used_bytes(), 0);
  }
  SetFatalDeviceErrorHandler(nullptr);
  ResetFatalDeviceErrorForTesting();
}

// A batch of three on the pipeline: entry 0's launch stalls 500 ms; entry 1 is cancelled
// meanwhile (its admit check refuses it), so it is answered CANCELLED and never launched;
// entry 2 runs. The pool is back at 0 after.
TEST(CudaFaultsTest, CancelledInABatchBeforeLaunchIsNeverLaunched) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(256 * kMiB);
  ASSERT_NE(gpu, nullptr);
  RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
  FaultSpec spec;
  spec.slow_kernel_ms = 500;
  spec.slow_kernels = 1;
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);

  std::vector<v1::AttendRequest> requests;
  std::vector<wire::DecodedRequest> decoded;
  for (int i = 0; i < 3; ++i) requests.push_back(MakeRequest(SmallSpec(), 20 + i));
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
  std::vector<RunRequest> batch;
  for (size_t i = 0; i < 3; ++i) batch.push_back(RunRequest{&decoded[i], "r", RunContext{3, 0}});
  std::atomic<bool> cancelled{false};
  std::thread canceller([&] {
    while (faults.launches() < 1) std::this_thread::yield();
    cancelled = true;  // during entry 0's stalled launch
  });
  std::vector<absl::StatusOr<v1::AttendResponse>> results(3, absl::UnknownError("unanswered"));
  runner.RunBatch(
      batch,
      [&](size_t i) {
        if (i == 1 && cancelled.load()) return absl::CancelledError("client cancelled");
        return absl::OkStatus();
      },
      [&](size_t i, absl::StatusOr<v1::AttendResponse> r) { results[i] = std::move(r); });
  canceller.join();
  EXPECT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_TRUE(absl::IsCancelled(results[1].status())) << results[1].status();
  EXPECT_TRUE(results[2].ok()) << results[2].status();
  EXPECT_EQ(faults.launches(), 2);  // entries 0 and 2
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
}

// A copy-out stalled 400 ms for a request larger than a staging slab (streamed alone, whose
// block goes back to the pool only after its stream is synchronized): the block is held while it
// stalls and given back once it is through. (On the pipeline's path the block is freed in stream
// order right after the launch is queued, so the ledger shows it free before the copy ends.)
TEST(CudaFaultsTest, ASlowCopyOutHoldsTheBlockOnlyUntilItIsDone) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(256 * kMiB, /*slab_bytes=*/64 * 1024);
  ASSERT_NE(gpu, nullptr);
  RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
  FaultSpec spec;
  spec.slow_copy_out_ms = 400;
  ScriptedFaults faults(spec);
  ScopedFaultInjector scoped(&faults);
  client::RequestSpec big = SmallSpec();  // q alone is 512 KiB: larger than a slab
  big.q_len = big.kv_len = 256;
  big.head_dim = big.v_head_dim = 64;
  const v1::AttendRequest request = MakeRequest(big, 30);
  std::atomic<bool> done{false};
  std::atomic<int64_t> most_used{0};
  std::thread sampler([&] {
    while (!done.load()) {
      most_used = std::max(most_used.load(), gpu->pool()->used_bytes());
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  absl::StatusOr<v1::AttendResponse> r = runner.Run(DecodeOrFail(request), "slow", RunContext{});
  done = true;
  sampler.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(testing::MatchesReference(request, *r));
  EXPECT_GT(most_used.load(), 0);
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
}

TEST(CudaExecutorTest, NonFiniteRequestsInABatchLeaveCleanOnesBitIdentical) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(1024 * kMiB);
  ASSERT_NE(gpu, nullptr);
  RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
  for (const v1::DType dtype : {v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16}) {
    // Even: clean; odd: NaN and Inf in q, k and v. One shape family, so one batch.
    std::vector<v1::AttendRequest> requests;
    for (int i = 0; i < 8; ++i) {
      client::RequestSpec spec = SmallSpec();
      spec.dtype = dtype;
      spec.q_len = 33 + 7 * i;
      spec.kv_len = 65 + 5 * i;
      spec.head_dim = spec.v_head_dim = 64;
      v1::AttendRequest r = MakeRequest(spec, 40 + i, "r" + std::to_string(i));
      if (i % 2 == 1) testing::PoisonWithNonFinite(&r, 50 + i);
      requests.push_back(std::move(r));
    }
    std::vector<wire::DecodedRequest> decoded;
    for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
    std::vector<RunRequest> batch;
    for (size_t i = 0; i < requests.size(); ++i) {
      batch.push_back(RunRequest{&decoded[i], requests[i].request_id(), RunContext{8, 0}});
    }
    std::vector<absl::StatusOr<v1::AttendResponse>> batched(requests.size(),
                                                            absl::UnknownError("unanswered"));
    runner.RunBatch(
        batch, [](size_t) { return absl::OkStatus(); },
        [&](size_t i, absl::StatusOr<v1::AttendResponse> r) { batched[i] = std::move(r); });
    for (size_t i = 0; i < requests.size(); i += 2) {
      ASSERT_TRUE(batched[i].ok()) << i << ": " << batched[i].status();
      absl::StatusOr<v1::AttendResponse> alone =
          runner.Run(decoded[i], requests[i].request_id(), RunContext{});
      ASSERT_TRUE(alone.ok()) << alone.status();
      EXPECT_EQ(batched[i]->execution().variant(), alone->execution().variant());
      EXPECT_EQ(batched[i]->out().data(), alone->out().data())
          << v1::DType_Name(dtype) << " clean request " << i;
      EXPECT_EQ(batched[i]->lse().data(), alone->lse().data())
          << v1::DType_Name(dtype) << " clean request " << i;
      EXPECT_TRUE(testing::MatchesReference(requests[i], *batched[i]));
    }
  }
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
}

}  // namespace
}  // namespace attnd::server::executor
