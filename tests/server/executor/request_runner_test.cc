// The execution step: plan with the live budget, run on the CPU, fill the response. Every
// response is held against the float64 reference on fresh random data.
#include "server/executor/request_runner.h"

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/cpu_executor.h"
#include "server/metrics/metrics.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"

namespace attnd::server::executor {
namespace {

using testing::DecodeOrFail;
using ::testing::HasSubstr;
using testing::MakeRequest;
using testing::MatchesReference;
using testing::SmallSpec;

constexpr int64_t kMiB = int64_t{1} << 20;

MemorySection Memory(int64_t host_budget) {
  MemorySection memory;
  memory.host_budget_bytes = host_budget;
  memory.host_fraction = 0.5;
  memory.safety_margin_bytes = 0;
  return memory;
}

// A CPU executor whose host reports 64 GiB available, so the config cap decides the budget.
std::unique_ptr<CpuExecutor> Cpu(int64_t host_budget = 256 * kMiB, int threads = 2,
                                 bool ragged_launch = false) {
  RaggedLaunchOptions batch;
  batch.ragged_launch = ragged_launch;
  return std::make_unique<CpuExecutor>(
      Memory(host_budget), threads,
      []() -> absl::StatusOr<MemInfo> {
        return MemInfo{int64_t{128} << 30, int64_t{64} << 30};
      },
      batch);
}

struct Case {
  std::string name;
  client::RequestSpec spec = SmallSpec();
};

class RunnerMatchesReferenceTest : public ::testing::TestWithParam<Case> {};

TEST_P(RunnerMatchesReferenceTest, OutputAndLse) {
  const client::RequestSpec& spec = GetParam().spec;
  const v1::AttendRequest request = MakeRequest(spec, /*seed=*/0xA77E + spec.q_len);
  auto cpu = Cpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), request.request_id(), RunContext{});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(MatchesReference(request, *response));
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  for (v1::DType dtype : {v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16}) {
    for (v1::Layout layout : {v1::LAYOUT_BMHK, v1::LAYOUT_BHMK}) {
      client::RequestSpec s = SmallSpec();
      s.dtype = dtype;
      s.layout = layout;
      const std::string base = std::string(dtype == v1::DTYPE_F32   ? "F32"
                                           : dtype == v1::DTYPE_F16 ? "F16"
                                                                    : "Bf16") +
                               (layout == v1::LAYOUT_BMHK ? "Bmhk" : "Bhmk");
      cases.push_back({base + "Plain", s});
      client::RequestSpec masked = s;
      masked.causal = v1::CAUSAL_BOTTOM_RIGHT;
      masked.random_kv_lengths = true;
      masked.q_len = 11;
      masked.kv_len = 9;
      masked.head_dim = 59;
      masked.v_head_dim = 24;
      masked.bias = true;  // f32 [1, Hq, Mq, Mk], broadcast over the batch
      masked.bias_dtype = v1::DTYPE_F32;
      masked.bias_shape = {1, masked.heads, masked.q_len, masked.kv_len};
      cases.push_back({base + "CausalBiasKvLengthsOddDims", masked});
    }
  }
  client::RequestSpec gqa = SmallSpec();
  gqa.heads = 8;
  gqa.kv_heads = 1;
  gqa.q_len = 97;
  gqa.kv_len = 130;
  gqa.causal = v1::CAUSAL_TOP_LEFT;
  gqa.return_lse = false;
  cases.push_back({"F32MqaTopLeftNoLse", gqa});
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Shapes, RunnerMatchesReferenceTest, ::testing::ValuesIn(Cases()),
                         [](const auto& info) { return info.param.name; });

TEST(RequestRunnerTest, FillsExecutionFields) {
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 11, "fields-1");
  auto cpu = Cpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  RunContext context;
  context.batch_size = 1;
  context.queue_seconds = 0.25;
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), request.request_id(), context);
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), "fields-1");
  const v1::Execution& e = response->execution();
  EXPECT_EQ(e.variant(), v1::VARIANT_CPU_CHUNKED);
  EXPECT_GE(e.q_chunk(), 1);
  EXPECT_LE(e.q_chunk(), 7);
  EXPECT_GE(e.kv_chunk(), 1);
  EXPECT_LE(e.kv_chunk(), 13);
  EXPECT_GT(e.workspace_bytes(), 0);
  EXPECT_EQ(e.device(), "cpu");
  EXPECT_EQ(e.batch_size(), 1);
  EXPECT_DOUBLE_EQ(e.queue_seconds(), 0.25);
  EXPECT_GE(e.compute_seconds(), 0.0);
  EXPECT_THAT(e.plan_reason(), HasSubstr("cpu_chunked"));
  EXPECT_FALSE(response->has_status());
}

TEST(RequestRunnerTest, HonoursVariantHintAndChunkOverrides) {
  auto cpu = Cpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.q_len = 33;
  spec.kv_len = 41;

  v1::AttendRequest reference = MakeRequest(spec, 21);
  reference.set_variant(v1::VARIANT_REFERENCE);
  absl::StatusOr<v1::AttendResponse> r1 = runner.Run(DecodeOrFail(reference), "ref", RunContext{});
  ASSERT_TRUE(r1.ok()) << r1.status();
  EXPECT_EQ(r1->execution().variant(), v1::VARIANT_REFERENCE);
  EXPECT_TRUE(MatchesReference(reference, *r1));

  v1::AttendRequest chunked = MakeRequest(spec, 22);
  chunked.set_q_chunk(5);
  chunked.set_kv_chunk(8);
  absl::StatusOr<v1::AttendResponse> r2 = runner.Run(DecodeOrFail(chunked), "chunks", RunContext{});
  ASSERT_TRUE(r2.ok()) << r2.status();
  EXPECT_EQ(r2->execution().q_chunk(), 5);
  EXPECT_EQ(r2->execution().kv_chunk(), 8);
  EXPECT_TRUE(MatchesReference(chunked, *r2));
}

TEST(RequestRunnerTest, VariantTheCpuCannotRunIsInvalidArgument) {
  auto cpu = Cpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  v1::AttendRequest request = MakeRequest(SmallSpec(), 31);
  request.set_variant(v1::VARIANT_FUSED);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), "x", RunContext{});
  EXPECT_TRUE(absl::IsInvalidArgument(response.status())) << response.status();
}

TEST(RequestRunnerTest, NoBudgetIsResourceExhausted) {
  auto cpu = Cpu(/*host_budget=*/0);
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.q_len = 64;
  spec.kv_len = 64;
  const v1::AttendRequest request = MakeRequest(spec, 41);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), "x", RunContext{});
  EXPECT_TRUE(absl::IsResourceExhausted(response.status())) << response.status();
}

TEST(RequestRunnerTest, SmallBudgetStillRunsInChunks) {
  // 1 MiB cannot hold the full 2×4×300×500 f32 score matrix (4.6 MiB): the plan chunks.
  auto cpu = Cpu(/*host_budget=*/1 * kMiB, /*threads=*/1);
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.q_len = 300;
  spec.kv_len = 500;
  const v1::AttendRequest request = MakeRequest(spec, 43);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), "x", RunContext{});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_LE(response->execution().workspace_bytes(), 1 * kMiB);
  EXPECT_TRUE(response->execution().q_chunk() < 300 || response->execution().kv_chunk() < 500);
  EXPECT_TRUE(MatchesReference(request, *response));
}

// Fails its first Run with RESOURCE_EXHAUSTED (an allocation that did not fit), then runs on the
// CPU: the runner re-plans with half the budget and counts the retry.
class FlakyExecutor final : public Executor {
 public:
  explicit FlakyExecutor(Executor* inner) : inner_(inner) {}
  const std::string& name() const override { return inner_->name(); }
  const std::string& kind() const override { return inner_->kind(); }
  const kernels::Capabilities& capabilities() const override { return inner_->capabilities(); }
  int64_t MemoryBudgetBytes() const override { return inner_->MemoryBudgetBytes(); }
  MemoryStats Memory() const override { return inner_->Memory(); }
  absl::Status Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                   const kernels::AttentionTensors& tensors) override {
    if (failures_left_.fetch_sub(1) > 0) return absl::ResourceExhaustedError("out of memory");
    return inner_->Run(plan, problem, tensors);
  }
  std::atomic<int> failures_left_{1};

 private:
  Executor* inner_;
};

TEST(RequestRunnerTest, AllocationFailureReplansAndCountsTheRetry) {
  auto cpu = Cpu();
  FlakyExecutor flaky(cpu.get());
  metrics::Registry registry;
  RequestRunner runner(&flaky, kernels::PlannerConfig(), &registry);
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 0"));
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 51);
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(DecodeOrFail(request), "x", RunContext{});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_TRUE(MatchesReference(request, *response));
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 1"));

  flaky.failures_left_ = 100;  // never fits: gives up after the retries
  absl::StatusOr<v1::AttendResponse> failed = runner.Run(DecodeOrFail(request), "y", RunContext{});
  EXPECT_TRUE(absl::IsResourceExhausted(failed.status())) << failed.status();
}

TEST(RequestRunnerTest, RecordsPlanComputeChunkAndDeviceMetrics) {
  auto cpu = Cpu(256 * kMiB);
  metrics::Registry registry;
  {
    RequestRunner runner(cpu.get(), kernels::PlannerConfig(), &registry);
    for (uint32_t seed : {61u, 62u}) {
      const v1::AttendRequest request = MakeRequest(SmallSpec(), seed);
      ASSERT_TRUE(runner.Run(DecodeOrFail(request), "m", RunContext{}).ok());
    }
    const std::string text = registry.Render();
    EXPECT_THAT(text, HasSubstr("attnd_plans_total{variant=\"cpu_chunked\"} 2"));
    EXPECT_THAT(text, HasSubstr("attnd_compute_duration_seconds_count{variant=\"cpu_chunked\"} 2"));
    EXPECT_THAT(text, HasSubstr("attnd_chunk_tokens_count{axis=\"q\"} 2"));
    EXPECT_THAT(text, HasSubstr("attnd_chunk_tokens_count{axis=\"kv\"} 2"));
    // The CPU's pool figures: the budget (no workspace in use between requests).
    EXPECT_THAT(text, HasSubstr("attnd_pool_reserved_bytes{device=\"cpu\"} 268435456"));
    EXPECT_THAT(text, HasSubstr("attnd_pool_used_bytes{device=\"cpu\"} 0"));
    EXPECT_THAT(text, HasSubstr("attnd_device_memory_free_bytes{device=\"cpu\"} 68719476736"));
  }
  // The runner is gone: rendering must not touch its executor any more.
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_pool_used_bytes{device=\"cpu\"}"));
}

// A batch through RunBatch: the answers, in the order they came, by index.
struct BatchAnswers {
  std::vector<size_t> order;
  std::vector<absl::StatusOr<v1::AttendResponse>> results;

  explicit BatchAnswers(size_t n) : results(n, absl::UnknownError("not answered")) {}
  AnswerFn Fn() {
    return [this](size_t i, absl::StatusOr<v1::AttendResponse> result) {
      order.push_back(i);
      results[i] = std::move(result);
    };
  }
};

std::vector<v1::AttendRequest> MixedRequests() {
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < 4; ++i) {
    client::RequestSpec spec = SmallSpec();
    spec.q_len = 5 + 7 * i;
    spec.kv_len = 40 - 9 * i;
    requests.push_back(MakeRequest(spec, 700 + i, "b" + std::to_string(i)));
  }
  return requests;
}

TEST(RequestRunnerBatchTest, AnswersEachInOrderWithTheBytesOfAnUnbatchedRun) {
  auto cpu = Cpu();
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  const std::vector<v1::AttendRequest> requests = MixedRequests();
  std::vector<wire::DecodedRequest> decoded;
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
  std::vector<RunRequest> batch;
  for (size_t i = 0; i < requests.size(); ++i) {
    batch.push_back(RunRequest{&decoded[i], requests[i].request_id(), RunContext{4, 0.25}});
  }
  BatchAnswers answers(batch.size());
  runner.RunBatch(
      batch, [](size_t) { return absl::OkStatus(); }, answers.Fn());
  EXPECT_THAT(answers.order, ::testing::ElementsAre(0u, 1u, 2u, 3u));
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(answers.results[i].ok()) << answers.results[i].status();
    const v1::AttendResponse& batched = *answers.results[i];
    EXPECT_EQ(batched.request_id(), requests[i].request_id());
    EXPECT_EQ(batched.execution().batch_size(), 4);
    EXPECT_DOUBLE_EQ(batched.execution().queue_seconds(), 0.25);
    EXPECT_TRUE(MatchesReference(requests[i], batched));
    absl::StatusOr<v1::AttendResponse> alone =
        runner.Run(decoded[i], requests[i].request_id(), RunContext{});
    ASSERT_TRUE(alone.ok()) << alone.status();
    EXPECT_EQ(batched.out().data(), alone->out().data()) << "request " << i;
    EXPECT_EQ(batched.lse().data(), alone->lse().data()) << "request " << i;
  }
}

TEST(RequestRunnerBatchTest, ARequestAdmitRefusesIsAnsweredWithItsStatusAndNeverComputed) {
  auto cpu = Cpu(256 * kMiB, 2, /*ragged_launch=*/true);
  metrics::Registry registry;
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), &registry);
  const std::vector<v1::AttendRequest> requests = MixedRequests();
  std::vector<wire::DecodedRequest> decoded;
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
  std::vector<RunRequest> batch;
  for (size_t i = 0; i < 3; ++i) batch.push_back(RunRequest{&decoded[i], "r", RunContext{}});
  std::vector<size_t> asked;
  BatchAnswers answers(batch.size());
  runner.RunBatch(
      batch,
      [&asked](size_t i) {
        asked.push_back(i);
        return i == 1 ? absl::DeadlineExceededError("deadline passed while the batch ran")
                      : absl::OkStatus();
      },
      answers.Fn());
  EXPECT_THAT(asked, ::testing::ElementsAre(0u, 1u, 2u));  // each right before its launch
  // 0 and 2 share one ragged launch (scheduler.ragged_launch), admitted together before it:
  // the refusal is answered first, then the launch's members.
  EXPECT_THAT(answers.order, ::testing::ElementsAre(1u, 0u, 2u));
  EXPECT_TRUE(answers.results[0].ok());
  EXPECT_TRUE(absl::IsDeadlineExceeded(answers.results[1].status()));
  EXPECT_TRUE(answers.results[2].ok());
  EXPECT_THAT(registry.Render(),
              HasSubstr("attnd_compute_duration_seconds_count{variant=\"cpu_chunked\"} 2"));
  EXPECT_THAT(registry.Render(),
              HasSubstr("attnd_stage_duration_seconds_count{stage=\"compute\"} 2"));
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_ragged_launches_total 1"));
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_ragged_launch_requests_total 2"));
}

TEST(RequestRunnerBatchTest, ResourceExhaustedInABatchRunsThatRequestAloneAfterTheRest) {
  auto cpu = Cpu();
  FlakyExecutor flaky(cpu.get());  // the first Run fails RESOURCE_EXHAUSTED
  metrics::Registry registry;
  RequestRunner runner(&flaky, kernels::PlannerConfig(), &registry);
  const std::vector<v1::AttendRequest> requests = MixedRequests();
  std::vector<wire::DecodedRequest> decoded;
  for (const auto& r : requests) decoded.push_back(DecodeOrFail(r));
  std::vector<RunRequest> batch;
  for (size_t i = 0; i < 3; ++i) batch.push_back(RunRequest{&decoded[i], "r", RunContext{}});
  BatchAnswers answers(batch.size());
  runner.RunBatch(
      batch, [](size_t) { return absl::OkStatus(); }, answers.Fn());
  EXPECT_THAT(answers.order, ::testing::ElementsAre(1u, 2u, 0u));
  for (size_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(answers.results[i].ok()) << answers.results[i].status();
    EXPECT_TRUE(MatchesReference(requests[i], *answers.results[i]));
  }
  EXPECT_THAT(registry.Render(), HasSubstr("attnd_oom_retries_total 1"));
}

TEST(RequestRunnerBatchTest, MemoryCostIsTheWorkspaceThePlannerChoosesUnderTheLiveBudget) {
  auto cpu = Cpu(256 * kMiB);
  RequestRunner runner(cpu.get(), kernels::PlannerConfig(), nullptr);
  const v1::AttendRequest request = MakeRequest(SmallSpec(), 71);
  const wire::DecodedRequest decoded = DecodeOrFail(request);
  const int64_t budget = cpu->MemoryBudgetBytes();
  absl::StatusOr<kernels::Plan> plan =
      kernels::MakePlan(decoded.problem, cpu->capabilities(), budget, kernels::PlannerConfig());
  ASSERT_TRUE(plan.ok());
  // The CPU reads the request's bytes in place: its cost is the workspace alone.
  EXPECT_EQ(runner.MemoryCost(decoded), plan->workspace_bytes);
  EXPECT_GT(runner.MemoryCost(decoded), 0);

  auto tiny = Cpu(/*host_budget=*/1024);  // fits nothing: costlier than the budget, runs alone
  RequestRunner tiny_runner(tiny.get(), kernels::PlannerConfig(), nullptr);
  EXPECT_GT(tiny_runner.MemoryCost(decoded), tiny->MemoryBudgetBytes());
}

}  // namespace
}  // namespace attnd::server::executor
