// The CUDA executor on a real GPU (each test skips, visibly, without one): every response
// through RequestRunner against the float64 reference, the pool back to its baseline after
// requests, the live budget following the pool, an injected allocation failure re-planned
// smaller, and a sticky CUDA error turned into UNAVAILABLE and the fatal hook.
#include "server/executor/cuda_executor.h"

#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/device_query.h"
#include "kernels/fused_support.h"
#include "server/executor/device_budget.h"
#include "server/executor/device_pool.h"
#include "server/executor/fatal_device_error.h"
#include "server/executor/request_runner.h"
#include "server/metrics/metrics.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"
#include "tests/server/cuda_executor/fault_kernel.h"
#include "tests/server/cuda_executor/skip_without_gpu.h"

namespace attnd::server::executor {
namespace {

using testing::DecodeOrFail;
using ::testing::HasSubstr;
using testing::MakeRequest;
using testing::SmallSpec;

constexpr int64_t kMiB = int64_t{1} << 20;

std::unique_ptr<CudaExecutor> Gpu(int64_t pool_bytes = 1024 * kMiB, int workers = 1) {
  CudaExecutorOptions options;
  options.device = 0;
  options.workers = workers;
  options.memory.device_bytes = pool_bytes;
  options.memory.safety_margin_bytes = 16 * kMiB;
  // Small slabs so that the tests' tensors take several pieces through both slabs.
  options.staging_slab_bytes = 64 * 1024;
  options.staging_cap_bytes = 1 * kMiB;
  absl::StatusOr<std::unique_ptr<CudaExecutor>> gpu = CudaExecutor::Create(options);
  EXPECT_TRUE(gpu.ok()) << gpu.status();
  return gpu.ok() ? *std::move(gpu) : nullptr;
}

struct Case {
  std::string name;
  client::RequestSpec spec = SmallSpec();
  v1::Variant variant = v1::VARIANT_AUTO;
};

class CudaExecutorMatchesReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(CudaExecutorMatchesReferenceTest, OutputAndLse) {
  SKIP_WITHOUT_GPU();
  const Case& c = GetParam();
  auto gpu = Gpu();
  ASSERT_NE(gpu, nullptr);
  RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
  v1::AttendRequest request = MakeRequest(c.spec, /*seed=*/0xC0DA + c.spec.q_len);
  request.set_variant(c.variant);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), request.request_id(), RunContext{});
  if (c.variant == v1::VARIANT_CUDNN && !response.ok() &&
      absl::IsInvalidArgument(response.status())) {
    GTEST_SKIP() << "cudnn does not run this case here: " << response.status();
  }
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->execution().device(), "cuda:0");
  if (c.variant != v1::VARIANT_AUTO) {
    EXPECT_EQ(response->execution().variant(), c.variant);
  }
  RecordProperty("variant", v1::Variant_Name(response->execution().variant()));
  EXPECT_TRUE(testing::MatchesReference(request, *response));
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  const std::vector<std::pair<std::string, v1::DType>> dtypes = {
      {"F32", v1::DTYPE_F32}, {"F16", v1::DTYPE_F16}, {"Bf16", v1::DTYPE_BF16}};
  const std::vector<std::pair<std::string, v1::Variant>> variants = {
      {"Auto", v1::VARIANT_AUTO},
      {"Naive", v1::VARIANT_NAIVE},
      {"Sliced", v1::VARIANT_SLICED},
      {"Chunked", v1::VARIANT_CHUNKED},
      {"Cudnn", v1::VARIANT_CUDNN}};
  for (const auto& [dtype_name, dtype] : dtypes) {
    for (const auto& [variant_name, variant] : variants) {
      if (variant == v1::VARIANT_CUDNN && dtype == v1::DTYPE_F32) continue;
      client::RequestSpec s = SmallSpec();  // B 2, Mq 7, Mk 13, Hq 4, Hkv 2 (GQA), D 16, LSE
      s.dtype = dtype;
      cases.push_back({dtype_name + variant_name + "Plain", s, variant});
      client::RequestSpec masked = s;
      masked.layout = v1::LAYOUT_BHMK;
      masked.q_len = 97;
      masked.kv_len = 1025;
      masked.causal = v1::CAUSAL_BOTTOM_RIGHT;
      masked.random_kv_lengths = true;
      masked.head_dim = masked.v_head_dim = 64;
      cases.push_back({dtype_name + variant_name + "BhmkCausalKvLengths", masked, variant});
      client::RequestSpec biased = s;
      biased.q_len = 130;
      biased.kv_len = 257;
      biased.bias = true;  // f32 [1, Hq, Mq, Mk], broadcast over the batch
      biased.bias_dtype = v1::DTYPE_F32;
      biased.bias_shape = {1, biased.heads, biased.q_len, biased.kv_len};
      biased.causal = v1::CAUSAL_TOP_LEFT;
      biased.head_dim = biased.v_head_dim = 128;
      cases.push_back({dtype_name + variant_name + "BiasTopLeftD128", biased, variant});
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaExecutorMatchesReferenceTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(CudaExecutorTest, DescribesTheDevice) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(512 * kMiB);
  ASSERT_NE(gpu, nullptr);
  EXPECT_EQ(gpu->name(), "cuda:0");
  EXPECT_EQ(gpu->kind(), "cuda");
  EXPECT_TRUE(gpu->capabilities().is_cuda);
  EXPECT_FALSE(gpu->model().empty());
  const MemoryStats stats = gpu->Memory();
  EXPECT_GT(stats.total_bytes, 0);
  EXPECT_GT(stats.free_bytes, 0);
  EXPECT_EQ(stats.limit_bytes, 512 * kMiB);
  EXPECT_EQ(stats.used_bytes, 0);
  // An idle pool: the budget is the limit less the margin (the card has more free).
  EXPECT_EQ(gpu->MemoryBudgetBytes(), 512 * kMiB - 16 * kMiB);
  RecordProperty("model", gpu->model());
}

TEST(CudaExecutorTest, TheBudgetFollowsThePoolLive) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(512 * kMiB);
  ASSERT_NE(gpu, nullptr);
  const int64_t before = gpu->MemoryBudgetBytes();
  absl::StatusOr<void*> held = gpu->pool()->Allocate(100 * kMiB, nullptr);
  ASSERT_TRUE(held.ok()) << held.status();
  EXPECT_EQ(gpu->MemoryBudgetBytes(), before - 100 * kMiB);
  EXPECT_EQ(gpu->Memory().used_bytes, 100 * kMiB);
  // Past the limit: refused by the ledger, no CUDA call, counted.
  absl::StatusOr<void*> refused = gpu->pool()->Allocate(500 * kMiB, nullptr);
  EXPECT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_EQ(gpu->Memory().allocation_failures, 1);
  ASSERT_TRUE(gpu->pool()->Free(*held, nullptr).ok());
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  EXPECT_EQ(gpu->MemoryBudgetBytes(), before);
  // Reserved memory stays reserved (release threshold = limit).
  EXPECT_GE(gpu->Memory().reserved_bytes, 100 * kMiB);
  EXPECT_LE(gpu->Memory().reserved_bytes, 512 * kMiB);
}

TEST(CudaExecutorTest, PoolStatisticsReturnToBaselineAfterRequests) {
  SKIP_WITHOUT_GPU();
  auto gpu = Gpu(256 * kMiB, /*workers=*/2);
  ASSERT_NE(gpu, nullptr);
  metrics::Registry registry;
  RequestRunner runner(gpu.get(), kernels::PlannerConfig(), &registry);
  client::RequestSpec spec = SmallSpec();
  spec.dtype = v1::DTYPE_BF16;
  spec.q_len = 300;
  spec.kv_len = 700;
  spec.head_dim = spec.v_head_dim = 64;
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    const v1::AttendRequest request = MakeRequest(spec, seed);
    absl::StatusOr<v1::AttendResponse> response =
        runner.Run(DecodeOrFail(request), "baseline", RunContext{});
    ASSERT_TRUE(response.ok()) << response.status();
    EXPECT_TRUE(testing::MatchesReference(request, *response));
  }
  const MemoryStats stats = gpu->Memory();
  EXPECT_EQ(stats.used_bytes, 0);
  EXPECT_GT(stats.peak_used_bytes, 0);
  EXPECT_LE(stats.peak_used_bytes, 256 * kMiB);
  EXPECT_LE(stats.reserved_bytes, 256 * kMiB);
  EXPECT_EQ(stats.allocation_failures, 0);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("attnd_pool_used_bytes{device=\"cuda:0\"} 0"));
  EXPECT_THAT(text, HasSubstr("attnd_pool_limit_bytes{device=\"cuda:0\"} 268435456"));
  EXPECT_THAT(text, HasSubstr("attnd_device_memory_free_bytes{device=\"cuda:0\"}"));
  RecordProperty("peak_used_bytes", std::to_string(stats.peak_used_bytes));
}

// A batch through RunBatch: the requests that fit a staging slab overlap on the lane's copy and
// compute streams, the one that does not drains the pipeline and streams alone; every answer
// matches the reference, comes in order, and the stage metrics and host copies are counted.
TEST(CudaExecutorTest, BatchesOverlapOnTheLanesStreamsAndMatchTheReference) {
  SKIP_WITHOUT_GPU();
  CudaExecutorOptions options;
  options.device = 0;
  options.workers = 2;
  options.memory.device_bytes = 1024 * kMiB;
  options.memory.safety_margin_bytes = 16 * kMiB;
  options.staging_slab_bytes = 1 * kMiB;
  options.staging_cap_bytes = 16 * kMiB;
  absl::StatusOr<std::unique_ptr<CudaExecutor>> gpu = CudaExecutor::Create(options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ((*gpu)->RequestsInFlight(), 2);
  metrics::Registry registry;
  RequestRunner runner(gpu->get(), kernels::PlannerConfig(), &registry);

  // B1 H8 D64 f16 of several lengths; the 1024 one (3 MiB of inputs) is larger than a slab.
  const std::vector<int64_t> lengths = {64, 256, 1024, 97, 200, 128, 33};
  std::vector<v1::AttendRequest> requests;
  for (size_t i = 0; i < lengths.size(); ++i) {
    client::RequestSpec spec = SmallSpec();
    spec.batch = 1;
    spec.heads = spec.kv_heads = 8;
    spec.head_dim = spec.v_head_dim = 64;
    spec.dtype = v1::DTYPE_F16;
    spec.q_len = spec.kv_len = lengths[i];
    spec.return_lse = i % 2 == 0;
    requests.push_back(MakeRequest(spec, 900 + static_cast<uint32_t>(i), "b" + std::to_string(i)));
  }
  std::vector<wire::DecodedRequest> decoded;
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));

  // Two batches at once, on the two lanes.
  auto run_batch = [&](std::vector<absl::StatusOr<v1::AttendResponse>>* results,
                       std::vector<size_t>* order) {
    std::vector<RunRequest> batch;
    for (size_t i = 0; i < requests.size(); ++i) {
      batch.push_back(RunRequest{&decoded[i], requests[i].request_id(),
                                 RunContext{static_cast<int>(requests.size()), 0}});
    }
    results->assign(requests.size(), absl::UnknownError("not answered"));
    runner.RunBatch(
        batch, [](size_t) { return absl::OkStatus(); },
        [results, order](size_t i, absl::StatusOr<v1::AttendResponse> r) {
          order->push_back(i);
          (*results)[i] = std::move(r);
        });
  };
  std::vector<absl::StatusOr<v1::AttendResponse>> first, second;
  std::vector<size_t> first_order, second_order;
  std::thread other([&] { run_batch(&second, &second_order); });
  run_batch(&first, &first_order);
  other.join();
  for (const auto* results : {&first, &second}) {
    for (size_t i = 0; i < requests.size(); ++i) {
      ASSERT_TRUE((*results)[i].ok()) << i << ": " << (*results)[i].status();
      EXPECT_TRUE(testing::MatchesReference(requests[i], *(*results)[i])) << i;
    }
  }
  const std::vector<size_t> in_order = {0, 1, 2, 3, 4, 5, 6};
  EXPECT_EQ(first_order, in_order);
  EXPECT_EQ(second_order, in_order);
  EXPECT_EQ((*gpu)->pool()->used_bytes(), 0);

  const std::string text = registry.Render();
  // Six requests a batch fit the slabs and were timed by events; all seven were computed.
  EXPECT_THAT(text, HasSubstr("attnd_stage_duration_seconds_count{stage=\"copy_in\"} 12"));
  EXPECT_THAT(text, HasSubstr("attnd_stage_duration_seconds_count{stage=\"copy_out\"} 12"));
  EXPECT_THAT(text, HasSubstr("attnd_stage_duration_seconds_count{stage=\"compute\"} 14"));
  int64_t in_bytes = 0;
  for (const auto& r : requests) {
    in_bytes +=
        static_cast<int64_t>(r.q().data().size() + r.k().data().size() + r.v().data().size());
  }
  EXPECT_THAT(text, HasSubstr("attnd_host_copy_bytes_total{stage=\"staging_in\"} " +
                              std::to_string(2 * in_bytes)));
}

// scheduler.ragged_launch on a GPU: a batch of fused requests of different lengths (some with
// a bias of their own broadcast, padded in the launch) is packed into one ragged fused launch
// where the fused kernel takes sequence offsets (kFusedTakesRagged), else each runs alone;
// either way every answer matches the reference and the pool returns to its baseline.
TEST(CudaExecutorTest, RaggedLaunchesMatchTheReference) {
  SKIP_WITHOUT_GPU();
  CudaExecutorOptions options;
  options.device = 0;
  options.memory.device_bytes = 1024 * kMiB;
  options.memory.safety_margin_bytes = 16 * kMiB;
  options.staging_slab_bytes = 1 * kMiB;
  options.staging_cap_bytes = 16 * kMiB;
  options.batch.ragged_launch = true;
  absl::StatusOr<std::unique_ptr<CudaExecutor>> gpu = CudaExecutor::Create(options);
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  metrics::Registry registry;
  RequestRunner runner(gpu->get(), kernels::PlannerConfig(), &registry);

  // bf16, Hq 8, Hkv 2, D 64, bottom-right causal; requests 4..6 with an f32 bias (per head and
  // query-key; per key only; one value), and a 1-query request.
  const std::vector<int64_t> q_lens = {64, 257, 97, 1, 130, 120, 111};
  const std::vector<int64_t> kv_lens = {64, 300, 97, 513, 140, 133, 150};
  std::vector<v1::AttendRequest> requests;
  for (size_t i = 0; i < q_lens.size(); ++i) {
    client::RequestSpec spec = SmallSpec();
    spec.batch = i == 2 ? 2 : 1;
    spec.heads = 8;
    spec.kv_heads = 2;
    spec.head_dim = spec.v_head_dim = 64;
    spec.dtype = v1::DTYPE_BF16;
    spec.q_len = q_lens[i];
    spec.kv_len = kv_lens[i];
    spec.causal = v1::CAUSAL_BOTTOM_RIGHT;
    spec.return_lse = true;
    spec.variant = v1::VARIANT_FUSED;
    if (i >= 4) {
      spec.bias = true;
      spec.bias_dtype = v1::DTYPE_F32;
      if (i == 4) spec.bias_shape = {1, 8, q_lens[i], kv_lens[i]};
      if (i == 5) spec.bias_shape = {1, 1, 1, kv_lens[i]};
      if (i == 6) spec.bias_shape = {1, 1, 1, 1};
    }
    requests.push_back(MakeRequest(spec, 700 + static_cast<uint32_t>(i), "r" + std::to_string(i)));
  }
  std::vector<wire::DecodedRequest> decoded;
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
  std::vector<RunRequest> batch;
  for (size_t i = 0; i < requests.size(); ++i) {
    batch.push_back(RunRequest{&decoded[i], requests[i].request_id(),
                               RunContext{static_cast<int>(requests.size()), 0}});
  }
  std::vector<absl::StatusOr<v1::AttendResponse>> results(requests.size(),
                                                          absl::UnknownError("not answered"));
  runner.RunBatch(
      batch, [](size_t) { return absl::OkStatus(); },
      [&results](size_t i, absl::StatusOr<v1::AttendResponse> r) { results[i] = std::move(r); });
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(results[i].ok()) << i << ": " << results[i].status();
    EXPECT_TRUE(testing::MatchesReference(requests[i], *results[i])) << i;
  }
  EXPECT_EQ((*gpu)->pool()->used_bytes(), 0);
  // Two launches where fused takes offsets: the four without a bias, the three with one.
  const std::string text = registry.Render();
  if (kernels::kFusedTakesRagged) {
    EXPECT_THAT(text, HasSubstr("attnd_ragged_launches_total 2"));
    EXPECT_THAT(text, HasSubstr("attnd_ragged_launch_requests_total 7"));
  } else {
    EXPECT_THAT(text, HasSubstr("attnd_ragged_launches_total 0"));
  }
}

TEST(CudaExecutorTest, AnInjectedAllocationFailureReplansSmaller) {
  SKIP_WITHOUT_GPU();
  // 32 MiB of pool (16 MiB budget after the margin, 12 MiB after the 4 MiB of tensors), f32
  // B=1 H=2 Mq=Mk=2048 D=64 forced `chunked` with chunks up to the whole problem: the full
  // score matrix needs 32 MiB, so the budget decides the chunks.
  auto gpu = Gpu(32 * kMiB);
  ASSERT_NE(gpu, nullptr);
  metrics::Registry registry;
  kernels::PlannerConfig planner;
  planner.max_q_chunk = 2048;
  planner.max_kv_chunk = 2048;
  RequestRunner runner(gpu.get(), planner, &registry);
  client::RequestSpec spec = SmallSpec();
  spec.batch = 1;
  spec.q_len = 2048;
  spec.kv_len = 2048;
  spec.heads = spec.kv_heads = 2;
  spec.head_dim = spec.v_head_dim = 64;
  spec.return_lse = false;
  v1::AttendRequest request = MakeRequest(spec, 91);
  request.set_variant(v1::VARIANT_CHUNKED);

  absl::StatusOr<v1::AttendResponse> first = runner.Run(DecodeOrFail(request), "a", RunContext{});
  ASSERT_TRUE(first.ok()) << first.status();
  gpu->pool()->InjectAllocationFailuresForTesting(1);
  absl::StatusOr<v1::AttendResponse> second = runner.Run(DecodeOrFail(request), "b", RunContext{});
  ASSERT_TRUE(second.ok()) << second.status();
  const v1::Execution& a = first->execution();
  const v1::Execution& b = second->execution();
  EXPECT_LT(b.q_chunk() * b.kv_chunk(), a.q_chunk() * a.kv_chunk());
  EXPECT_LT(b.workspace_bytes(), a.workspace_bytes());
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 1"));
  EXPECT_EQ(gpu->Memory().allocation_failures, 1);
  EXPECT_EQ(gpu->pool()->used_bytes(), 0);
  EXPECT_TRUE(testing::MatchesReference(request, *second));
  RecordProperty("chunks_before", std::to_string(a.q_chunk()) + "x" + std::to_string(a.kv_chunk()));
  RecordProperty("chunks_after", std::to_string(b.q_chunk()) + "x" + std::to_string(b.kv_chunk()));

  // Failing every time: RESOURCE_EXHAUSTED after the retries, and the executor still serves.
  gpu->pool()->InjectAllocationFailuresForTesting(100);
  absl::StatusOr<v1::AttendResponse> failed = runner.Run(DecodeOrFail(request), "c", RunContext{});
  EXPECT_TRUE(absl::IsResourceExhausted(failed.status())) << failed.status();
  gpu->pool()->InjectAllocationFailuresForTesting(0);
  EXPECT_TRUE(runner.Run(DecodeOrFail(request), "d", RunContext{}).ok());
  EXPECT_FALSE(gpu->broken());
}

// A sticky error poisons the process's CUDA context for good, so this runs in a child process
// (the threadsafe death-test style re-executes the binary): the executor answers UNAVAILABLE,
// reports the error once, and answers UNAVAILABLE without touching the device after.
TEST(CudaExecutorDeathTest, AStickyErrorIsUnavailableAndFatal) {
  SKIP_WITHOUT_GPU();
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        auto gpu = Gpu(256 * kMiB);
        if (gpu == nullptr) std::_Exit(10);
        int calls = 0;
        SetFatalDeviceErrorHandler([&calls](const std::string&, const absl::Status&) { ++calls; });
        RequestRunner runner(gpu.get(), kernels::PlannerConfig(), nullptr);
        const v1::AttendRequest request = MakeRequest(SmallSpec(), 5);
        if (!runner.Run(DecodeOrFail(request), "ok", RunContext{}).ok()) std::_Exit(11);
        testing::PoisonCudaContext();  // an illegal address on the device
        absl::StatusOr<v1::AttendResponse> r1 =
            runner.Run(DecodeOrFail(request), "x", RunContext{});
        absl::StatusOr<v1::AttendResponse> r2 =
            runner.Run(DecodeOrFail(request), "y", RunContext{});
        if (!absl::IsUnavailable(r1.status()) || !absl::IsUnavailable(r2.status())) {
          std::fprintf(stderr, "r1 %s, r2 %s\n", r1.status().ToString().c_str(),
                       r2.status().ToString().c_str());
          std::_Exit(12);
        }
        if (calls != 1 || !gpu->broken() || !FatalDeviceErrorHappened()) std::_Exit(13);
        if (!absl::IsUnavailable(gpu->Health()) || gpu->MemoryBudgetBytes() != 0) std::_Exit(14);
        std::fprintf(stderr, "unavailable: %s\n", std::string(r1.status().message()).c_str());
        std::fflush(stderr);
        // The poisoned context makes teardown pointless: leave at once, as attnd does.
        std::_Exit(3);
      },
      ::testing::ExitedWithCode(3), "unavailable: cuda:0 failed");
}

}  // namespace
}  // namespace attnd::server::executor
