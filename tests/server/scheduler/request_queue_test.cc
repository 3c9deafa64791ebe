// RequestQueue and the batcher's decision: exact, single-threaded, with a fake clock.
#include "server/scheduler/request_queue.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/scheduler/batcher.h"
#include "server/scheduler/clock.h"
#include "tests/server/scheduler/test_items.h"

namespace attnd::server::scheduler {
namespace {

using ::testing::ElementsAre;
using testing::IdOf;
using testing::MakeItem;
using testing::Outcome;

class RequestQueueTest : public ::testing::Test {
 protected:
  // Pushes an item that must be admitted.
  void PushOk(RequestQueue& queue, const std::string& id, int priority,
              absl::Time deadline = absl::InfiniteFuture()) {
    auto outcome = std::make_shared<Outcome>();
    outcomes_.push_back(outcome);
    auto item = MakeItem(id, priority, outcome, deadline);
    ASSERT_TRUE(queue.Push(&item, clock_.Now()).ok()) << id;
    EXPECT_EQ(item, nullptr);
  }

  // Pops until empty, returning the ids in the order they would run.
  std::vector<std::string> DrainOrder(RequestQueue& queue) {
    std::vector<std::string> order;
    std::vector<Dropped> dropped;
    while (!queue.empty()) {
      auto batch = queue.PopNext(clock_.Now(), BatchPolicy{}, &dropped);
      EXPECT_LE(batch.size(), 1u);
      for (auto& item : batch) order.push_back(IdOf(*item));
      if (batch.empty()) break;
    }
    EXPECT_TRUE(dropped.empty());
    return order;
  }

  FakeClock clock_;
  std::vector<std::shared_ptr<Outcome>> outcomes_;
};

TEST_F(RequestQueueTest, HigherPriorityFirstThenFifoWithinALevel) {
  RequestQueue queue(/*max_requests=*/16, /*priority_levels=*/3);
  PushOk(queue, "low-1", 0);
  PushOk(queue, "high-1", 2);
  PushOk(queue, "mid-1", 1);
  PushOk(queue, "low-2", 0);
  PushOk(queue, "high-2", 2);
  PushOk(queue, "mid-2", 1);
  EXPECT_EQ(queue.size(), 6);
  EXPECT_THAT(DrainOrder(queue),
              ElementsAre("high-1", "high-2", "mid-1", "mid-2", "low-1", "low-2"));
  EXPECT_TRUE(queue.empty());
}

TEST_F(RequestQueueTest, FifoWithinOneLevel) {
  RequestQueue queue(64, 1);
  std::vector<std::string> expected;
  for (int i = 0; i < 40; ++i) {
    expected.push_back("r" + std::to_string(i));
    PushOk(queue, expected.back(), 0);
  }
  EXPECT_EQ(DrainOrder(queue), expected);
}

TEST_F(RequestQueueTest, PrioritiesAreClampedToTheLevels) {
  RequestQueue queue(8, 2);
  EXPECT_EQ(queue.ClampPriority(-5), 0);
  EXPECT_EQ(queue.ClampPriority(0), 0);
  EXPECT_EQ(queue.ClampPriority(1), 1);
  EXPECT_EQ(queue.ClampPriority(99), 1);
  PushOk(queue, "normal", 0);
  PushOk(queue, "huge", 99);  // same level as 1
  PushOk(queue, "one", 1);
  PushOk(queue, "negative", -3);  // same level as 0
  EXPECT_THAT(DrainOrder(queue), ElementsAre("huge", "one", "normal", "negative"));
}

TEST_F(RequestQueueTest, FullQueueRefusesWithResourceExhaustedAndKeepsTheItem) {
  RequestQueue queue(/*max_requests=*/3, 2);
  PushOk(queue, "a", 0);
  PushOk(queue, "b", 1);
  PushOk(queue, "c", 0);
  EXPECT_TRUE(queue.full());
  auto outcome = std::make_shared<Outcome>();
  auto item = MakeItem("d", 1, outcome);
  absl::Status status = queue.Push(&item, clock_.Now());
  EXPECT_TRUE(absl::IsResourceExhausted(status)) << status;
  EXPECT_THAT(std::string(status.message()), ::testing::HasSubstr("max_queue_requests"));
  ASSERT_NE(item, nullptr);  // still the caller's to complete
  EXPECT_EQ(IdOf(*item), "d");
  EXPECT_EQ(outcome->completions.load(), 0);
  EXPECT_EQ(queue.size(), 3);

  // One leaves, one more fits.
  std::vector<Dropped> dropped;
  EXPECT_EQ(queue.PopNext(clock_.Now(), BatchPolicy{}, &dropped).size(), 1u);
  EXPECT_TRUE(queue.Push(&item, clock_.Now()).ok());
}

TEST_F(RequestQueueTest, ExpiredAndCancelledAreDroppedNeverChosen) {
  RequestQueue queue(16, 2);
  PushOk(queue, "short-deadline", 1, clock_.Now() + absl::Seconds(1));
  PushOk(queue, "long-deadline", 0, clock_.Now() + absl::Seconds(100));
  auto cancelled_outcome = std::make_shared<Outcome>();
  auto cancelled = MakeItem("cancelled", 1, cancelled_outcome);
  CancelFlag flag = cancelled->cancelled;
  ASSERT_TRUE(queue.Push(&cancelled, clock_.Now()).ok());
  flag->store(true);

  clock_.Advance(absl::Seconds(2));
  std::vector<Dropped> dropped;
  auto batch = queue.PopNext(clock_.Now(), BatchPolicy{}, &dropped);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(IdOf(*batch[0]), "long-deadline");
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(IdOf(*dropped[0].item), "short-deadline");
  EXPECT_TRUE(absl::IsDeadlineExceeded(dropped[0].status)) << dropped[0].status;
  EXPECT_EQ(IdOf(*dropped[1].item), "cancelled");
  EXPECT_TRUE(absl::IsCancelled(dropped[1].status)) << dropped[1].status;
  EXPECT_TRUE(queue.empty());

  // CompleteDropped calls each completion once with its status.
  CompleteDropped(&dropped);
  EXPECT_TRUE(dropped.empty());
  EXPECT_EQ(outcomes_[0]->completions.load(), 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(outcomes_[0]->Status()));
  EXPECT_EQ(cancelled_outcome->completions.load(), 1);
  EXPECT_TRUE(absl::IsCancelled(cancelled_outcome->Status()));
  EXPECT_EQ(outcomes_[1]->completions.load(), 0);  // popped, not completed by the queue
}

TEST_F(RequestQueueTest, DeadlineExactlyNowCountsAsExpired) {
  RequestQueue queue(4, 1);
  PushOk(queue, "x", 0, clock_.Now() + absl::Milliseconds(5));
  clock_.Advance(absl::Milliseconds(5));
  std::vector<Dropped> dropped;
  EXPECT_TRUE(queue.PopNext(clock_.Now(), BatchPolicy{}, &dropped).empty());
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_TRUE(absl::IsDeadlineExceeded(dropped[0].status));
  CompleteDropped(&dropped);
}

TEST_F(RequestQueueTest, PushRefusesWhatIsAlreadyExpiredOrCancelled) {
  RequestQueue queue(4, 1);
  auto outcome = std::make_shared<Outcome>();
  auto late = MakeItem("late", 0, outcome, clock_.Now() - absl::Seconds(1));
  EXPECT_TRUE(absl::IsDeadlineExceeded(queue.Push(&late, clock_.Now())));
  ASSERT_NE(late, nullptr);
  auto gone = MakeItem("gone", 0, outcome);
  gone->cancelled->store(true);
  EXPECT_TRUE(absl::IsCancelled(queue.Push(&gone, clock_.Now())));
  ASSERT_NE(gone, nullptr);
  EXPECT_TRUE(queue.empty());
}

TEST_F(RequestQueueTest, DropExpiredFreesPlacesInAFullQueue) {
  RequestQueue queue(2, 1);
  PushOk(queue, "a", 0, clock_.Now() + absl::Seconds(1));
  PushOk(queue, "b", 0);
  EXPECT_TRUE(queue.full());
  clock_.Advance(absl::Seconds(1));
  std::vector<Dropped> dropped;
  queue.DropExpired(clock_.Now(), &dropped);
  ASSERT_EQ(dropped.size(), 1u);
  EXPECT_EQ(IdOf(*dropped[0].item), "a");
  EXPECT_EQ(queue.size(), 1);
  EXPECT_FALSE(queue.full());
  CompleteDropped(&dropped);
}

TEST_F(RequestQueueTest, TakeAllEmptiesInServiceOrder) {
  RequestQueue queue(8, 2);
  PushOk(queue, "a0", 0);
  PushOk(queue, "b1", 1);
  PushOk(queue, "c0", 0);
  auto all = queue.TakeAll();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(IdOf(*all[0]), "b1");
  EXPECT_EQ(IdOf(*all[1]), "a0");
  EXPECT_EQ(IdOf(*all[2]), "c0");
  EXPECT_TRUE(queue.empty());
}

TEST_F(RequestQueueTest, PopNextBatchesWhatIsLeftAfterDroppingExpiredAndCancelled) {
  RequestQueue queue(16, 2);
  BatchPolicy policy;
  policy.max_batch_requests = 8;
  PushOk(queue, "a", 0);
  PushOk(queue, "late", 1, clock_.Now() + absl::Seconds(1));
  PushOk(queue, "b", 1);
  auto outcome = std::make_shared<Outcome>();
  auto gone = MakeItem("gone", 0, outcome);
  CancelFlag flag = gone->cancelled;
  ASSERT_TRUE(queue.Push(&gone, clock_.Now()).ok());
  PushOk(queue, "c", 0);
  flag->store(true);
  clock_.Advance(absl::Seconds(2));

  std::vector<Dropped> dropped;
  auto batch = queue.PopNext(clock_.Now(), policy, &dropped);
  std::vector<std::string> ids;
  for (auto& item : batch) ids.push_back(IdOf(*item));
  EXPECT_THAT(ids, ElementsAre("b", "a", "c"));  // service order: level 1, then level 0
  ASSERT_EQ(dropped.size(), 2u);
  for (const Dropped& d : dropped) {
    if (IdOf(*d.item) == "late") {
      EXPECT_TRUE(absl::IsDeadlineExceeded(d.status)) << d.status;
    } else {
      EXPECT_EQ(IdOf(*d.item), "gone");
      EXPECT_TRUE(absl::IsCancelled(d.status)) << d.status;
    }
  }
  EXPECT_TRUE(queue.empty());
  CompleteDropped(&dropped);
}

TEST_F(RequestQueueTest, PopNextHoldsUnderADelayAndSaysUntilWhen) {
  RequestQueue queue(16, 1);
  BatchPolicy policy;
  policy.max_batch_requests = 4;
  policy.max_queue_delay = absl::Milliseconds(2);
  auto outcome = std::make_shared<Outcome>();
  auto item = MakeItem("a", 0, outcome);
  item->enqueue_time = clock_.Now();
  ASSERT_TRUE(queue.Push(&item, clock_.Now()).ok());
  std::vector<Dropped> dropped;
  absl::Time retry_at;
  EXPECT_TRUE(queue.PopNext(clock_.Now(), policy, &dropped, kUnlimitedBudget, &retry_at).empty());
  EXPECT_EQ(retry_at, clock_.Now() + absl::Milliseconds(2));
  EXPECT_EQ(queue.size(), 1);
  clock_.Advance(absl::Milliseconds(2));
  EXPECT_EQ(queue.PopNext(clock_.Now(), policy, &dropped, kUnlimitedBudget, &retry_at).size(), 1u);
  EXPECT_TRUE(dropped.empty());
}

}  // namespace
}  // namespace attnd::server::scheduler
