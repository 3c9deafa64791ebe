// The batcher's decision, exactly: a pure function of the queue view, the time, the policy and
// the memory budget, so every case below is a table of arrivals and the batches they make.
#include "server/scheduler/batcher.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::scheduler {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

absl::Time At(double ms) { return kT0 + absl::Microseconds(static_cast<int64_t>(ms * 1000)); }

// Keys by name: requests with the same letter batch together.
BatchKey Key(char name) {
  BatchKey key;
  key.q_heads = 8;
  key.kv_heads = 8;
  key.head_dim = 64;
  key.v_head_dim = 64;
  key.dtype = name == 'x' ? kernels::DType::kF16 : kernels::DType::kBF16;
  if (name == 'z') key.causal = kernels::Causal::kTopLeft;
  return key;
}

QueuedView View(double arrival_ms, char key = 'x', int64_t tokens = 256, int priority = 0,
                int64_t cost = 0, absl::Time deadline = absl::InfiniteFuture()) {
  QueuedView v;
  v.priority = priority;
  v.enqueue_time = At(arrival_ms);
  v.deadline = deadline;
  v.key = Key(key);
  v.tokens = tokens;
  v.memory_cost_bytes = cost;
  return v;
}

BatchPolicy Policy(int64_t requests, int64_t tokens = int64_t{1} << 20, double delay_ms = 0) {
  BatchPolicy p;
  p.max_batch_requests = requests;
  p.max_batch_tokens = tokens;
  p.max_queue_delay = absl::Microseconds(static_cast<int64_t>(delay_ms * 1000));
  return p;
}

TEST(BatcherTest, EmptyQueueRunsNothingAndWaitsForNews) {
  BatchChoice choice = ChooseBatch({}, kT0, Policy(8));
  EXPECT_THAT(choice.indices, IsEmpty());
  EXPECT_EQ(choice.retry_at, absl::InfiniteFuture());
}

TEST(BatcherTest, BatchSizeOneTakesTheHeadOnly) {
  std::vector<QueuedView> q = {View(0), View(1), View(2)};
  EXPECT_THAT(ChooseBatch(q, At(3), Policy(1)).indices, ElementsAre(0u));
}

TEST(BatcherTest, WithoutDelayTakesWhatWaitsUpToMaxRequests) {
  std::vector<QueuedView> q = {View(0), View(0.1), View(0.2), View(0.3), View(0.4)};
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(3)).indices, ElementsAre(0u, 1u, 2u));
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(8)).indices, ElementsAre(0u, 1u, 2u, 3u, 4u));
}

TEST(BatcherTest, HoldsAnUnfilledBatchUntilTheHeadsDelayEnds) {
  std::vector<QueuedView> q = {View(0), View(0.5)};
  const BatchPolicy policy = Policy(4, 1 << 20, /*delay_ms=*/2);
  BatchChoice held = ChooseBatch(q, At(1.999), policy);
  EXPECT_THAT(held.indices, IsEmpty());
  EXPECT_EQ(held.retry_at, At(2));
  EXPECT_THAT(ChooseBatch(q, At(2), policy).indices, ElementsAre(0u, 1u));
}

TEST(BatcherTest, FullBatchRunsBeforeTheDelayEnds) {
  std::vector<QueuedView> q = {View(0), View(0.1), View(0.2), View(0.3)};
  EXPECT_THAT(ChooseBatch(q, At(0.3), Policy(4, 1 << 20, 10)).indices, ElementsAre(0u, 1u, 2u, 3u));
  EXPECT_THAT(ChooseBatch(q, At(0.3), Policy(2, 1 << 20, 10)).indices, ElementsAre(0u, 1u));
}

TEST(BatcherTest, TokenCapLeavesOutWhatDoesNotFitAndClosesTheBatch) {
  // 600 + 300 = 900; +200 > 1000: the third waits, and holding cannot help, so run now.
  std::vector<QueuedView> q = {View(0, 'x', 600), View(0.1, 'x', 300), View(0.2, 'x', 200)};
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8, 1000, 10)).indices, ElementsAre(0u, 1u));
}

TEST(BatcherTest, TokenCapSkipsALargeRequestForASmallerLaterOne) {
  std::vector<QueuedView> q = {View(0, 'x', 600), View(0.1, 'x', 500), View(0.2, 'x', 300)};
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8, 1000)).indices, ElementsAre(0u, 2u));
}

TEST(BatcherTest, BatchAtTheTokenCapIsClosed) {
  std::vector<QueuedView> q = {View(0, 'x', 512), View(0.1, 'x', 512)};
  EXPECT_THAT(ChooseBatch(q, At(0.1), Policy(8, 1024, 10)).indices, ElementsAre(0u, 1u));
}

TEST(BatcherTest, HeadLargerThanTheTokenCapRunsAloneAtOnce) {
  std::vector<QueuedView> q = {View(0, 'x', 5000), View(0.1, 'x', 10)};
  EXPECT_THAT(ChooseBatch(q, At(0.1), Policy(8, 1000, 10)).indices, ElementsAre(0u));
}

TEST(BatcherTest, MemoryCostStaysWithinTheLiveBudget) {
  std::vector<QueuedView> q = {View(0, 'x', 1, 0, 400), View(0.1, 'x', 1, 0, 400),
                               View(0.2, 'x', 1, 0, 400)};
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8), /*memory_budget_bytes=*/1000).indices,
              ElementsAre(0u, 1u));
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8), 1200).indices, ElementsAre(0u, 1u, 2u));
  // Closed by memory even with a delay left: the third does not fit, waiting cannot change it.
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8, 1 << 20, 10), 1000).indices, ElementsAre(0u, 1u));
  // A budget that shrank (another process took the card's memory) batches less.
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(8), 500).indices, ElementsAre(0u));
}

TEST(BatcherTest, HeadCostlierThanTheBudgetStillRunsAlone) {
  std::vector<QueuedView> q = {View(0, 'x', 1, 0, 5000), View(0.1, 'x', 1, 0, 1)};
  EXPECT_THAT(ChooseBatch(q, At(0.1), Policy(8, 1 << 20, 10), 1000).indices, ElementsAre(0u));
}

TEST(BatcherTest, IncompatibleRequestsNeverShareABatch) {
  std::vector<QueuedView> q = {View(0, 'x'), View(0.1, 'y'), View(0.2, 'x'), View(0.3, 'z'),
                               View(0.4, 'x')};
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(8)).indices, ElementsAre(0u, 2u, 4u));
  // With the x's gone, the y heads the next batch.
  std::vector<QueuedView> rest = {q[1], q[3]};
  EXPECT_THAT(ChooseBatch(rest, At(1), Policy(8)).indices, ElementsAre(0u));
}

TEST(BatcherTest, LowerPriorityLevelsFillWhatTheHigherOnesLeave) {
  // Service order: level 2, then 1, then 0.
  std::vector<QueuedView> q = {View(0.3, 'x', 256, 2), View(0.0, 'x', 256, 1),
                               View(0.1, 'y', 256, 1), View(0.2, 'x', 256, 0)};
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(8)).indices, ElementsAre(0u, 1u, 3u));
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(2)).indices, ElementsAre(0u, 1u));
}

TEST(BatcherTest, AHeldGroupKeepsLowerPriorityGroupsWaiting) {
  // The level-1 head is held (delay 10 ms); the level-0 y's are full but may not jump it.
  std::vector<QueuedView> q = {View(0, 'x', 256, 1), View(0.1, 'y', 256, 0),
                               View(0.2, 'y', 256, 0)};
  BatchChoice choice = ChooseBatch(q, At(1), Policy(2, 1 << 20, 10));
  EXPECT_THAT(choice.indices, IsEmpty());
  EXPECT_EQ(choice.retry_at, At(10));
}

TEST(BatcherTest, AReadyGroupOfTheSameLevelRunsWhileAnotherIsHeld) {
  std::vector<QueuedView> q = {View(0, 'x'), View(0.1, 'y'), View(0.2, 'y')};
  EXPECT_THAT(ChooseBatch(q, At(1), Policy(2, 1 << 20, 10)).indices, ElementsAre(1u, 2u));
}

TEST(BatcherTest, HeldGroupsAskAgainAtTheEarliestHoldEnd) {
  std::vector<QueuedView> q = {View(0.5, 'x'), View(0.2, 'y')};  // in service order as given
  BatchChoice choice = ChooseBatch(q, At(1), Policy(4, 1 << 20, 2));
  EXPECT_THAT(choice.indices, IsEmpty());
  EXPECT_EQ(choice.retry_at, At(2.2));
}

TEST(BatcherTest, ADeadlineBeforeTheHoldEndsRunsTheBatchNow) {
  std::vector<QueuedView> q = {View(0), View(0.1, 'x', 256, 0, 0, At(1.5))};
  EXPECT_THAT(ChooseBatch(q, At(0.2), Policy(4, 1 << 20, 2)).indices, ElementsAre(0u, 1u));
}

// Replays scripted arrivals through the batcher as the scheduler would (one worker that is
// always free): at each event time, run every batch the batcher lets go.
class Replay {
 public:
  explicit Replay(BatchPolicy policy) : policy_(policy) {}

  void Arrive(const std::string& id, double ms, char key, int64_t tokens) {
    queue_.push_back(View(ms, key, tokens));
    ids_.push_back(id);
  }
  // Decisions at `ms`: the batches that ran, as "A+C".
  std::vector<std::string> RunAt(double ms) {
    std::vector<std::string> ran;
    for (;;) {
      BatchChoice choice = ChooseBatch(queue_, At(ms), policy_);
      retry_at_ = choice.retry_at;
      if (choice.indices.empty()) return ran;
      std::string names;
      for (size_t k = choice.indices.size(); k-- > 0;) {
        const size_t i = choice.indices[k];
        names = ids_[i] + (names.empty() ? "" : "+") + names;
        queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
        ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(i));
      }
      ran.push_back(names);
    }
  }
  absl::Time retry_at() const { return retry_at_; }

 private:
  const BatchPolicy policy_;
  std::vector<QueuedView> queue_;
  std::vector<std::string> ids_;
  absl::Time retry_at_ = absl::InfiniteFuture();
};

TEST(BatcherTest, WorkedExampleFromTheHeader) {
  Replay r(Policy(4, 1024, 2));
  r.Arrive("A", 0, 'x', 256);
  EXPECT_THAT(r.RunAt(0), IsEmpty());
  r.Arrive("B", 0.5, 'y', 256);
  EXPECT_THAT(r.RunAt(0.5), IsEmpty());
  r.Arrive("C", 1, 'x', 512);
  EXPECT_THAT(r.RunAt(1), IsEmpty());
  EXPECT_EQ(r.retry_at(), At(2));
  r.Arrive("D", 1.2, 'x', 512);
  EXPECT_THAT(r.RunAt(1.2), ElementsAre("A+C"));
  EXPECT_EQ(r.retry_at(), At(2.5));
  r.Arrive("E", 1.5, 'y', 128);
  EXPECT_THAT(r.RunAt(1.5), IsEmpty());
  EXPECT_THAT(r.RunAt(2.4), IsEmpty());
  EXPECT_THAT(r.RunAt(2.5), ElementsAre("B+E"));
  EXPECT_EQ(r.retry_at(), At(3.2));
  EXPECT_THAT(r.RunAt(3.2), ElementsAre("D"));
}

TEST(BatcherTest, ScriptedBurstWithoutDelayBatchesByArrivalAndCaps) {
  // A burst of 7 compatible requests and 2 of another key at once; 3 per batch at most.
  Replay r(Policy(3, 1 << 20, 0));
  for (int i = 0; i < 7; ++i) r.Arrive("x" + std::to_string(i), 0, 'x', 100);
  r.Arrive("y0", 0, 'y', 100);
  r.Arrive("y1", 0, 'y', 100);
  EXPECT_THAT(r.RunAt(0), ElementsAre("x0+x1+x2", "x3+x4+x5", "x6", "y0+y1"));
}

TEST(BatchKeyTest, LengthsAndBatchMayDifferEverythingElseMustMatch) {
  kernels::AttentionProblem a;
  a.dtype = kernels::DType::kF16;
  a.batch = 1;
  a.q_len = 256;
  a.kv_len = 256;
  a.q_heads = 8;
  a.kv_heads = 8;
  a.head_dim = 64;
  a.v_head_dim = 64;
  a.scale = 0.125;
  kernels::AttentionProblem b = a;
  b.batch = 3;
  b.q_len = 97;
  b.kv_len = 2048;
  const kernels::Variant kAuto = kernels::Variant::kAuto;
  EXPECT_EQ(BatchKeyOf(a, kAuto, 0, 0), BatchKeyOf(b, kAuto, 0, 0));

  auto differs = [&](auto change) {
    kernels::AttentionProblem c = a;
    change(&c);
    return BatchKeyOf(a, kAuto, 0, 0) != BatchKeyOf(c, kAuto, 0, 0);
  };
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->dtype = kernels::DType::kBF16; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->head_dim = 128; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->v_head_dim = 32; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->kv_heads = 2; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->layout = kernels::Layout::kBHMK; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->causal = kernels::Causal::kTopLeft; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->window_left = 16; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->scale = 0.1; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->return_lse = true; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->has_kv_lengths = true; }));
  EXPECT_TRUE(differs([](kernels::AttentionProblem* p) { p->has_bias = true; }));
  EXPECT_NE(BatchKeyOf(a, kAuto, 0, 0), BatchKeyOf(a, kernels::Variant::kNaive, 0, 0));
  EXPECT_NE(BatchKeyOf(a, kAuto, 0, 0), BatchKeyOf(a, kAuto, 64, 0));

  // Bias: the same broadcast pattern and dtype batch together, whatever the full sizes.
  kernels::AttentionProblem bias_a = a;
  bias_a.has_bias = true;
  bias_a.bias_shape[0] = 1;
  bias_a.bias_shape[1] = 8;
  bias_a.bias_shape[2] = 256;
  bias_a.bias_shape[3] = 256;
  kernels::AttentionProblem bias_b = b;
  bias_b.has_bias = true;
  bias_b.bias_shape[0] = 3;  // full B: not broadcast, unlike bias_a's
  bias_b.bias_shape[1] = 8;
  bias_b.bias_shape[2] = 97;
  bias_b.bias_shape[3] = 2048;
  EXPECT_NE(BatchKeyOf(bias_a, kAuto, 0, 0), BatchKeyOf(bias_b, kAuto, 0, 0));
  bias_b.batch = 1;
  bias_b.bias_shape[0] = 1;
  EXPECT_EQ(BatchKeyOf(bias_a, kAuto, 0, 0), BatchKeyOf(bias_b, kAuto, 0, 0));
  bias_b.bias_dtype = kernels::DType::kF16;
  EXPECT_NE(BatchKeyOf(bias_a, kAuto, 0, 0), BatchKeyOf(bias_b, kAuto, 0, 0));
}

TEST(BatchKeyTest, TokensAreBatchTimesTheLongerSide) {
  kernels::AttentionProblem p;
  p.batch = 2;
  p.q_len = 4096;
  p.kv_len = 4096;
  EXPECT_EQ(RequestTokens(p), 8192);
  p.q_len = 1;
  EXPECT_EQ(RequestTokens(p), 8192);
  p.batch = 1;
  p.kv_len = 77;
  EXPECT_EQ(RequestTokens(p), 77);
}

}  // namespace
}  // namespace attnd::server::scheduler
