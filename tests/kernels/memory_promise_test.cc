// The memory promise on the CPU: Mq = Mk = 32768, H = 1, D = 64, f32 with a 256 MiB budget (the
// full score matrix alone would need 4 GiB) is planned into chunks, completes, matches the
// float64 reference on sampled rows, and the process's peak RSS stays under 1 GiB.
//
// Its own executable so that the peak RSS it measures is this problem's alone.
#include <sys/resource.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels {
namespace {

int64_t PeakRssBytes() {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

TEST(MemoryPromiseTest, LongSequenceUnder256MiBBudget) {
  AttentionProblem p;
  p.batch = 1;
  p.q_len = 32768;
  p.kv_len = 32768;
  p.q_heads = 1;
  p.kv_heads = 1;
  p.head_dim = 64;
  p.v_head_dim = 64;
  p.scale = 0.125;
  p.return_lse = true;
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok());

  constexpr int64_t kBudget = int64_t{256} << 20;
  Capabilities caps;
  caps.variants = {Variant::kCpuChunked, Variant::kReference};
  caps.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const absl::StatusOr<Plan> plan = MakePlan(p, caps, kBudget, PlannerConfig());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->variant, Variant::kCpuChunked);
  EXPECT_LE(plan->workspace_bytes, kBudget);
  EXPECT_LT(plan->kv_chunk * plan->q_chunk, p.q_len * p.kv_len);  // really chunked
  RecordProperty("plan", plan->reason);

  std::mt19937 rng(2026);
  testing::OwnedTensors t = testing::MakeTensors(p, &rng);  // 4 × 8 MiB
  const absl::Status run = RunCpuChunked(*plan, p, t.View());
  ASSERT_TRUE(run.ok()) << run;

  // 16 sampled rows: the first, the last, and in between (4 ranges of 4 rows).
  for (int64_t begin : {int64_t{0}, int64_t{9001}, int64_t{20000}, p.q_len - 4}) {
    ReferenceResult reference;
    ASSERT_TRUE(ReferenceAttention(p, t.View(), &reference, begin, begin + 4).ok());
    EXPECT_EQ(testing::CompareWithReference(p, t, reference, begin, begin + 4), "")
        << "rows [" << begin << ", " << begin + 4 << ")";
  }

  const int64_t peak = PeakRssBytes();
  RecordProperty("peak_rss_bytes", std::to_string(peak));
  std::printf("plan: %s\npeak RSS: %.1f MiB\n", plan->reason.c_str(),
              static_cast<double>(peak) / (1 << 20));
  EXPECT_LT(peak, int64_t{1} << 30) << "peak RSS " << peak << " bytes";
}

}  // namespace
}  // namespace attnd::kernels
