// CpuExecutor::RunBatch's ragged launch: a batch of requests of different lengths (odd sizes,
// B_e > 1, causal, LSE on) runs as one cpu_chunked launch, and each request's output equals the
// float64 reference and what Run gives for it alone; refused requests are neither launched nor
// written; incompatible requests and the switch turned off run one by one.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "server/executor/cpu_executor.h"
#include "tests/kernels/test_util.h"

namespace attnd::server::executor {
namespace {

using kernels::AttentionProblem;
using kernels::Causal;
using kernels::DType;
using kernels::testing::OwnedTensors;

constexpr int64_t kMiB = int64_t{1} << 20;

// A CPU executor on a host that reports 64 GiB available: the 256 MiB config cap decides.
std::unique_ptr<CpuExecutor> Cpu(bool ragged_launch) {
  MemorySection memory;
  memory.host_budget_bytes = 256 * kMiB;
  memory.safety_margin_bytes = 0;
  RaggedLaunchOptions batch;
  batch.ragged_launch = ragged_launch;
  return std::make_unique<CpuExecutor>(
      memory, /*threads=*/2,
      []() -> absl::StatusOr<MemInfo> {
        return MemInfo{int64_t{128} << 30, int64_t{64} << 30};
      },
      batch);
}

struct Answer {
  absl::Status status;
  StageTimes times;  // launch_plan cleared: it is valid only during Done
  bool had_launch_plan = false;
  kernels::Variant launch_variant = kernels::Variant::kAuto;
};

// Admits every entry but those in `refuse`; records each Done.
class RecordingCallbacks final : public BatchCallbacks {
 public:
  explicit RecordingCallbacks(std::set<size_t> refuse = {}) : refuse_(std::move(refuse)) {}
  absl::Status Admit(size_t index) override {
    admitted.push_back(index);
    if (refuse_.count(index) > 0) return absl::CancelledError("client left");
    return absl::OkStatus();
  }
  void Done(size_t index, absl::Status status, const StageTimes& times) override {
    done.push_back(index);
    Answer answer{std::move(status), times};
    answer.times.launch_plan = nullptr;
    answer.had_launch_plan = times.launch_plan != nullptr;
    if (answer.had_launch_plan) answer.launch_variant = times.launch_plan->variant;
    answers[index] = std::move(answer);
  }

  std::vector<size_t> admitted;
  std::vector<size_t> done;  // in the order answered
  std::map<size_t, Answer> answers;

 private:
  const std::set<size_t> refuse_;
};

// A batch of requests with their own random tensors and plans (as RequestRunner makes them:
// the planner's choice under an equal share of the budget).
class Batch {
 public:
  explicit Batch(const Executor& executor) : executor_(executor) {}

  void Add(const AttentionProblem& problem) {
    problems_.push_back(problem);
    tensors_.push_back(kernels::testing::MakeTensors(problem, &rng_));
    absl::StatusOr<kernels::Plan> plan =
        kernels::MakePlan(problem, executor_.capabilities(), 16 * kMiB, kernels::PlannerConfig());
    ASSERT_TRUE(plan.ok()) << plan.status();
    plans_.push_back(*plan);
    BatchEntry entry;
    entry.problem = &problems_.back();
    entry.plan = &plans_.back();
    entry.tensors = tensors_.back().View();
    entries_.push_back(entry);
  }

  absl::Span<const BatchEntry> entries() const { return entries_; }
  OwnedTensors& tensors(size_t i) { return tensors_[i]; }
  const AttentionProblem& problem(size_t i) const { return problems_[i]; }
  const kernels::Plan& plan(size_t i) const { return plans_[i]; }

  // "" when entry i's output (and LSE) matches the float64 reference.
  std::string CompareWithReference(size_t i) {
    kernels::ReferenceResult reference;
    absl::Status s = kernels::ReferenceAttention(problems_[i], tensors_[i].View(), &reference);
    if (!s.ok()) return s.ToString();
    return kernels::testing::CompareWithReference(problems_[i], tensors_[i], reference);
  }

  // Entry i's outputs from Run alone, in fresh buffers.
  OwnedTensors RunAlone(Executor& executor, size_t i) {
    OwnedTensors alone = tensors_[i];
    std::fill(alone.out.begin(), alone.out.end(), 0);
    std::fill(alone.lse.begin(), alone.lse.end(), 0.0f);
    EXPECT_TRUE(executor.Run(plans_[i], problems_[i], alone.View()).ok());
    return alone;
  }

 private:
  const Executor& executor_;
  std::mt19937 rng_{20240611};
  std::deque<AttentionProblem> problems_;  // deque: stable addresses
  std::deque<OwnedTensors> tensors_;
  std::deque<kernels::Plan> plans_;
  std::vector<BatchEntry> entries_;
};

AttentionProblem Problem(DType dtype, Causal causal, int64_t batch, int64_t q_len, int64_t kv_len) {
  AttentionProblem p = kernels::testing::BaseProblem(dtype, batch, q_len, kv_len, /*q_heads=*/4,
                                                     /*kv_heads=*/2, /*d=*/59, /*dv=*/37);
  p.causal = causal;
  return p;
}

// Max |a - b| over out (as floats) and lse; inf where one is NaN and the other is not.
double MaxDifference(const AttentionProblem& p, const OwnedTensors& a, const OwnedTensors& b) {
  std::vector<float> fa(static_cast<size_t>(p.out_elements()));
  std::vector<float> fb(fa.size());
  kernels::ConvertToFloat(a.out.data(), p.dtype, p.out_elements(), fa.data());
  kernels::ConvertToFloat(b.out.data(), p.dtype, p.out_elements(), fb.data());
  fa.insert(fa.end(), a.lse.begin(), a.lse.end());
  fb.insert(fb.end(), b.lse.begin(), b.lse.end());
  double worst = 0;
  for (size_t i = 0; i < fa.size(); ++i) {
    if (fa[i] == fb[i]) continue;  // equal, -inf included
    const double d = std::fabs(static_cast<double>(fa[i]) - fb[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  return worst;
}

struct LaunchCase {
  std::string name;
  DType dtype;
  Causal causal;
};

class RaggedLaunchMatchesTest : public ::testing::TestWithParam<LaunchCase> {};

TEST_P(RaggedLaunchMatchesTest, EachRequestMatchesTheReferenceAndItsRunAlone) {
  const LaunchCase& c = GetParam();
  auto cpu = Cpu(/*ragged_launch=*/true);
  Batch batch(*cpu);
  // Odd lengths, B_e > 1, a query-longer-than-keys request (bottom-right: its first rows see
  // no key), one query row.
  batch.Add(Problem(c.dtype, c.causal, 1, 97, 161));
  batch.Add(Problem(c.dtype, c.causal, 3, 1, 33));
  batch.Add(Problem(c.dtype, c.causal, 2, 17, 17));
  batch.Add(Problem(c.dtype, c.causal, 1, 130, 61));
  batch.Add(Problem(c.dtype, c.causal, 2, 45, 300));
  RecordingCallbacks callbacks;
  cpu->RunBatch(batch.entries(), &callbacks);

  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(0, 1, 2, 3, 4));
  for (size_t i = 0; i < 5; ++i) {
    SCOPED_TRACE(i);
    const Answer& answer = callbacks.answers[i];
    ASSERT_TRUE(answer.status.ok()) << answer.status;
    EXPECT_EQ(answer.times.launch_requests, 5);
    EXPECT_EQ(answer.times.first_in_launch, i == 0);
    EXPECT_TRUE(answer.had_launch_plan);  // what ran: the launch's plan
    EXPECT_EQ(answer.launch_variant, kernels::Variant::kCpuChunked);
    EXPECT_GT(answer.times.compute_seconds, 0);
    EXPECT_EQ(batch.CompareWithReference(i), "");
    const OwnedTensors alone = batch.RunAlone(*cpu, i);
    // Same kernel, same per-row arithmetic; only the chunking of the launch may differ.
    const double tolerance = c.dtype == DType::kF32 ? 1e-6 : 2e-3;
    EXPECT_LE(MaxDifference(batch.problem(i), batch.tensors(i), alone), tolerance);
  }
  EXPECT_EQ(cpu->Memory().used_bytes, 0);  // the launch's packed bytes were given back
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RaggedLaunchMatchesTest,
    ::testing::Values(LaunchCase{"f32_none", DType::kF32, Causal::kNone},
                      LaunchCase{"f32_bottom_right", DType::kF32, Causal::kBottomRight},
                      LaunchCase{"f16_top_left", DType::kF16, Causal::kTopLeft},
                      LaunchCase{"bf16_bottom_right", DType::kBF16, Causal::kBottomRight}),
    [](const ::testing::TestParamInfo<LaunchCase>& info) { return info.param.name; });

// Requests with biases of different broadcasts and lengths (all in one bias dtype) make one
// launch whose padded bias gives each its own: every output equals the reference.
struct BiasCase {
  std::string name;
  DType dtype;
  DType bias_dtype;
  Causal causal;
};

class RaggedLaunchBiasTest : public ::testing::TestWithParam<BiasCase> {};

TEST_P(RaggedLaunchBiasTest, EachBiasedRequestMatchesTheReference) {
  const BiasCase& c = GetParam();
  auto cpu = Cpu(/*ragged_launch=*/true);
  Batch batch(*cpu);
  // Lengths close enough that the padded bias stays within twice the unpadded one.
  auto with_bias = [&](int64_t batch_size, int64_t q_len, int64_t kv_len, int64_t bb, int64_t bh,
                       int64_t bq, int64_t bk) {
    AttentionProblem p = Problem(c.dtype, c.causal, batch_size, q_len, kv_len);
    p.has_bias = true;
    p.bias_dtype = c.bias_dtype;
    p.bias_shape[0] = bb;
    p.bias_shape[1] = bh;
    p.bias_shape[2] = bq;
    p.bias_shape[3] = bk;
    return p;
  };
  batch.Add(with_bias(1, 41, 53, 1, 4, 41, 53));  // full
  batch.Add(with_bias(2, 37, 50, 2, 1, 37, 50));  // broadcast over heads
  batch.Add(with_bias(1, 40, 47, 1, 1, 1, 47));   // one row per key
  batch.Add(with_bias(2, 33, 52, 1, 4, 1, 1));    // one value per head
  RecordingCallbacks callbacks;
  cpu->RunBatch(batch.entries(), &callbacks);
  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(0, 1, 2, 3));
  for (size_t i = 0; i < 4; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(callbacks.answers[i].status.ok()) << callbacks.answers[i].status;
    EXPECT_EQ(callbacks.answers[i].times.launch_requests, 4);
    EXPECT_EQ(batch.CompareWithReference(i), "");
    const OwnedTensors alone = batch.RunAlone(*cpu, i);
    const double tolerance = c.dtype == DType::kF32 ? 1e-6 : 2e-3;
    EXPECT_LE(MaxDifference(batch.problem(i), batch.tensors(i), alone), tolerance);
  }
  EXPECT_EQ(cpu->Memory().used_bytes, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, RaggedLaunchBiasTest,
    ::testing::Values(BiasCase{"f32_biasf32_none", DType::kF32, DType::kF32, Causal::kNone},
                      BiasCase{"f16_biasf16_bottom_right", DType::kF16, DType::kF16,
                               Causal::kBottomRight},
                      BiasCase{"bf16_biasf32_top_left", DType::kBF16, DType::kF32,
                               Causal::kTopLeft},
                      BiasCase{"f32_biasbf16_bottom_right", DType::kF32, DType::kBF16,
                               Causal::kBottomRight}),
    [](const ::testing::TestParamInfo<BiasCase>& info) { return info.param.name; });

// Refused entries are dropped before packing: no Done, their outputs untouched (still NaN).
TEST(RaggedLaunchTest, RefusedMembersAreNotLaunchedNorWritten) {
  auto cpu = Cpu(/*ragged_launch=*/true);
  Batch batch(*cpu);
  for (int64_t len : {19, 23, 29, 31}) {
    batch.Add(Problem(DType::kF32, Causal::kBottomRight, 2, len, len + 8));
  }
  RecordingCallbacks callbacks(/*refuse=*/{0, 2});
  cpu->RunBatch(batch.entries(), &callbacks);
  EXPECT_THAT(callbacks.admitted, ::testing::ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(1, 3));
  for (size_t i : {1, 3}) {
    EXPECT_TRUE(callbacks.answers[i].status.ok());
    EXPECT_EQ(callbacks.answers[i].times.launch_requests, 2);
    EXPECT_EQ(batch.CompareWithReference(i), "");
  }
  for (size_t i : {0, 2}) {
    const OwnedTensors& t = batch.tensors(i);
    std::vector<float> out(static_cast<size_t>(batch.problem(i).out_elements()));
    kernels::ConvertToFloat(t.out.data(), DType::kF32, batch.problem(i).out_elements(), out.data());
    EXPECT_THAT(out, ::testing::Each(::testing::IsNan())) << i;
    EXPECT_THAT(t.lse, ::testing::Each(::testing::IsNan())) << i;
  }
}

// One admitted member of a group is not worth a launch: it runs alone, as planned.
TEST(RaggedLaunchTest, ALoneSurvivorRunsAlone) {
  auto cpu = Cpu(/*ragged_launch=*/true);
  Batch batch(*cpu);
  batch.Add(Problem(DType::kF32, Causal::kNone, 1, 40, 50));
  batch.Add(Problem(DType::kF32, Causal::kNone, 1, 41, 51));
  RecordingCallbacks callbacks(/*refuse=*/{1});
  cpu->RunBatch(batch.entries(), &callbacks);
  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(0));
  EXPECT_EQ(callbacks.answers[0].times.launch_requests, 1);
  EXPECT_FALSE(callbacks.answers[0].had_launch_plan);  // its own plan ran
  EXPECT_EQ(batch.CompareWithReference(0), "");
}

// Incompatible entries run alone at their place; each group at its first member's.
TEST(RaggedLaunchTest, MixedBatchGroupsOnlyCompatibleEntries) {
  auto cpu = Cpu(/*ragged_launch=*/true);
  Batch batch(*cpu);
  AttentionProblem bias = Problem(DType::kF32, Causal::kNone, 1, 12, 14);
  bias.has_bias = true;
  batch.Add(Problem(DType::kF32, Causal::kNone, 1, 20, 30));   // 0: f32 launch
  batch.Add(Problem(DType::kF16, Causal::kNone, 2, 21, 31));   // 1: f16 launch
  batch.Add(bias);                                             // 2: alone (the only bias)
  batch.Add(Problem(DType::kF32, Causal::kNone, 3, 7, 9));     // 3: f32 launch
  batch.Add(Problem(DType::kF16, Causal::kNone, 1, 5, 3));     // 4: f16 launch
  batch.Add(Problem(DType::kF32, Causal::kTopLeft, 1, 8, 8));  // 5: alone
  RecordingCallbacks callbacks;
  cpu->RunBatch(batch.entries(), &callbacks);
  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(0, 3, 1, 4, 2, 5));
  const int expected_launch[] = {2, 2, 1, 2, 2, 1};
  for (size_t i = 0; i < 6; ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(callbacks.answers[i].status.ok()) << callbacks.answers[i].status;
    EXPECT_EQ(callbacks.answers[i].times.launch_requests, expected_launch[i]);
    EXPECT_EQ(batch.CompareWithReference(i), "");
  }
}

// scheduler.ragged_launch: false runs the same batch one entry at a time.
TEST(RaggedLaunchTest, SwitchedOffRunsOneByOne) {
  auto cpu = Cpu(/*ragged_launch=*/false);
  Batch batch(*cpu);
  for (int64_t len : {9, 33, 65}) batch.Add(Problem(DType::kF32, Causal::kNone, 2, len, len));
  RecordingCallbacks callbacks;
  cpu->RunBatch(batch.entries(), &callbacks);
  EXPECT_THAT(callbacks.done, ::testing::ElementsAre(0, 1, 2));
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_TRUE(callbacks.answers[i].status.ok());
    EXPECT_EQ(callbacks.answers[i].times.launch_requests, 1);
    EXPECT_EQ(batch.CompareWithReference(i), "");
  }
}

}  // namespace
}  // namespace attnd::server::executor
