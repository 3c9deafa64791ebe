// The Scheduler: worker threads around the RequestQueue. A fake clock decides expiry; blocking
// run functions hold workers busy so that what waits behind them is exact.
#include "server/scheduler/scheduler.h"

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/metrics/metrics.h"
#include "tests/server/scheduler/test_items.h"

namespace attnd::server::scheduler {
namespace {

using ::testing::ElementsAre;
using testing::IdOf;
using testing::MakeItem;
using testing::Outcome;

// A device that records what it ran and can hold the item whose id is "block".
class RecordingDevice {
 public:
  RunBatchFn Fn() {
    return RunEachItem([this](const WorkItem& item, const BatchInfo& info) -> AttendResult {
      {
        absl::MutexLock lock(&mu_);
        ran_.push_back(IdOf(item));
        batch_sizes_.push_back(info.batch_size);
      }
      if (IdOf(item) == "block") {
        started_.Notify();
        release_.WaitForNotification();
      }
      v1::AttendResponse response;
      response.set_request_id(IdOf(item));
      return response;
    });
  }
  void WaitBlocked() { started_.WaitForNotification(); }
  void Release() { release_.Notify(); }
  std::vector<std::string> ran() {
    absl::MutexLock lock(&mu_);
    return ran_;
  }
  std::vector<int> batch_sizes() {
    absl::MutexLock lock(&mu_);
    return batch_sizes_;
  }

 private:
  absl::Notification started_;
  absl::Notification release_;
  absl::Mutex mu_;
  std::vector<std::string> ran_ ABSL_GUARDED_BY(mu_);
  std::vector<int> batch_sizes_ ABSL_GUARDED_BY(mu_);
};

SchedulerOptions Options(int64_t max_queue, int levels, int workers) {
  SchedulerOptions options;
  options.max_queue_requests = max_queue;
  options.priority_levels = levels;
  options.workers_per_device = workers;
  return options;
}

const absl::Time kForever = absl::InfiniteFuture();

TEST(SchedulerTest, RunsItemsAndCompletesEachOnceWithItsResponse) {
  FakeClock clock;
  metrics::Registry registry;
  Scheduler scheduler(Options(16, 2, 1), &clock, &registry);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 5; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    scheduler.Submit(MakeItem("r" + std::to_string(i), 0, outcomes.back()));
  }
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(outcomes[i]->completions.load(), 1);
    EXPECT_TRUE(outcomes[i]->Status().ok()) << outcomes[i]->Status();
    absl::MutexLock lock(&outcomes[i]->mu);
    EXPECT_EQ(outcomes[i]->response_id, "r" + std::to_string(i));
  }
  EXPECT_EQ(device.ran().size(), 5u);
  for (int size : device.batch_sizes()) EXPECT_EQ(size, 1);
  EXPECT_EQ(scheduler.queue_depth(), 0);
  EXPECT_EQ(scheduler.inflight(), 0);
  const std::string text = registry.Render();
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_queue_depth 0"));
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_batch_size_count 5"));
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_queue_duration_seconds_count 5"));
}

TEST(SchedulerTest, WaitingItemsRunByPriorityThenArrival) {
  FakeClock clock;
  Scheduler scheduler(Options(16, 3, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();  // the only worker is busy: everything below waits in the queue

  std::vector<std::shared_ptr<Outcome>> outcomes;
  auto submit = [&](const std::string& id, int priority) {
    outcomes.push_back(std::make_shared<Outcome>());
    scheduler.Submit(MakeItem(id, priority, outcomes.back()));
  };
  submit("p0-a", 0);
  submit("p2-a", 2);
  submit("p1-a", 1);
  submit("p2-b", 2);
  submit("p0-b", 0);
  EXPECT_EQ(scheduler.queue_depth(), 5);
  EXPECT_EQ(scheduler.inflight(), 1);
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_THAT(device.ran(), ElementsAre("block", "p2-a", "p2-b", "p1-a", "p0-a", "p0-b"));
  for (auto& outcome : outcomes) EXPECT_EQ(outcome->completions.load(), 1);
}

TEST(SchedulerTest, FullQueueAnswersResourceExhaustedAtOnce) {
  FakeClock clock;
  Scheduler scheduler(Options(/*max_queue=*/2, 1, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();
  auto a = std::make_shared<Outcome>();
  auto b = std::make_shared<Outcome>();
  auto c = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("a", 0, a));
  scheduler.Submit(MakeItem("b", 0, b));
  scheduler.Submit(MakeItem("c", 0, c));  // two wait already
  // Refused synchronously, before anything else ran.
  EXPECT_EQ(c->completions.load(), 1);
  EXPECT_TRUE(absl::IsResourceExhausted(c->Status())) << c->Status();
  EXPECT_EQ(a->completions.load(), 0);
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_THAT(device.ran(), ElementsAre("block", "a", "b"));
  EXPECT_TRUE(a->Status().ok());
  EXPECT_EQ(c->completions.load(), 1);
}

TEST(SchedulerTest, ExpiredDeadlineIsNeverComputedAndAnsweredDeadlineExceeded) {
  FakeClock clock;
  Scheduler scheduler(Options(8, 2, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();

  auto late = std::make_shared<Outcome>();
  auto in_time = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("late", 1, late, clock.Now() + absl::Seconds(1)));
  scheduler.Submit(MakeItem("in-time", 0, in_time, clock.Now() + absl::Seconds(10)));
  clock.Advance(absl::Seconds(2));  // "late" expires while the worker is busy
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));

  EXPECT_THAT(device.ran(), ElementsAre("block", "in-time"));
  EXPECT_EQ(late->completions.load(), 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(late->Status())) << late->Status();
  EXPECT_TRUE(in_time->Status().ok());
}

TEST(SchedulerTest, AlreadyExpiredIsRefusedAtSubmit) {
  FakeClock clock;
  Scheduler scheduler(Options(8, 2, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto late = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("late", 0, late, clock.Now()));
  EXPECT_EQ(late->completions.load(), 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(late->Status()));
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_TRUE(device.ran().empty());
}

TEST(SchedulerTest, CancelledWhileQueuedIsNeverComputed) {
  FakeClock clock;
  Scheduler scheduler(Options(8, 2, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();

  auto gone = std::make_shared<Outcome>();
  auto kept = std::make_shared<Outcome>();
  auto gone_item = MakeItem("gone", 1, gone);
  CancelFlag flag = gone_item->cancelled;
  scheduler.Submit(std::move(gone_item));
  scheduler.Submit(MakeItem("kept", 0, kept));
  flag->store(true);  // what the reactor's OnCancel does
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));

  EXPECT_THAT(device.ran(), ElementsAre("block", "kept"));
  EXPECT_EQ(gone->completions.load(), 1);
  EXPECT_TRUE(absl::IsCancelled(gone->Status())) << gone->Status();
  EXPECT_TRUE(kept->Status().ok());
}

TEST(SchedulerTest, ExpiredItemsDoNotHoldPlacesInAFullQueue) {
  FakeClock clock;
  Scheduler scheduler(Options(/*max_queue=*/1, 1, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();
  auto late = std::make_shared<Outcome>();
  auto next = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("late", 0, late, clock.Now() + absl::Seconds(1)));
  clock.Advance(absl::Seconds(5));
  scheduler.Submit(MakeItem("next", 0, next));  // takes the expired one's place
  EXPECT_EQ(late->completions.load(), 1);
  EXPECT_TRUE(absl::IsDeadlineExceeded(late->Status()));
  EXPECT_EQ(next->completions.load(), 0);
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_THAT(device.ran(), ElementsAre("block", "next"));
  EXPECT_TRUE(next->Status().ok());
}

TEST(SchedulerTest, ShutdownAnswersQueuedUnavailableAndRefusesNewItems) {
  FakeClock clock;
  Scheduler scheduler(Options(8, 1, 1), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();
  auto queued = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("queued", 0, queued));

  std::thread releaser([&] {
    // Shutdown waits for the running item; let it finish once shutdown has begun.
    while (queued->completions.load() == 0) absl::SleepFor(absl::Milliseconds(1));
    device.Release();
  });
  scheduler.Shutdown();
  releaser.join();
  EXPECT_EQ(queued->completions.load(), 1);
  EXPECT_TRUE(absl::IsUnavailable(queued->Status())) << queued->Status();
  EXPECT_EQ(blocker->completions.load(), 1);
  EXPECT_TRUE(blocker->Status().ok());  // what was running finished

  auto after = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("after", 0, after));
  EXPECT_EQ(after->completions.load(), 1);
  EXPECT_TRUE(absl::IsUnavailable(after->Status()));
  scheduler.Shutdown();  // idempotent
  EXPECT_THAT(device.ran(), ElementsAre("block"));
}

TEST(SchedulerTest, DeadlineForTakesTheEarlierOfRpcDeadlineAndDefaultTimeout) {
  FakeClock clock;
  SchedulerOptions options = Options(8, 1, 1);
  options.default_timeout = absl::Seconds(30);
  Scheduler scheduler(options, &clock, nullptr);
  EXPECT_EQ(scheduler.DeadlineFor(absl::InfiniteFuture()), clock.Now() + absl::Seconds(30));
  EXPECT_EQ(scheduler.DeadlineFor(clock.Now() + absl::Seconds(2)), clock.Now() + absl::Seconds(2));
}

TEST(SchedulerTest, FromConfigCopiesTheSchedulerSection) {
  SchedulerSection section;
  section.max_queue_requests = 7;
  section.priority_levels = 4;
  section.workers = 3;
  section.default_timeout_seconds = 1.5;
  section.max_queue_delay_us = 250;
  SchedulerOptions options = SchedulerOptions::FromConfig(section);
  EXPECT_EQ(options.max_queue_requests, 7);
  EXPECT_EQ(options.priority_levels, 4);
  EXPECT_EQ(options.workers_per_device, 3);
  EXPECT_EQ(options.default_timeout, absl::Milliseconds(1500));
  EXPECT_EQ(options.batch.max_queue_delay, absl::Microseconds(250));
}

SchedulerOptions Batching(int64_t max_requests, absl::Duration delay = absl::ZeroDuration()) {
  SchedulerOptions options = Options(64, 2, 1);
  options.batch.max_batch_requests = max_requests;
  options.batch.max_queue_delay = delay;
  return options;
}

TEST(SchedulerBatchingTest, WhatWaitsBehindABusyWorkerRunsAsOneBatch) {
  FakeClock clock;
  metrics::Registry registry;
  Scheduler scheduler(Batching(8), &clock, &registry);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 5; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    scheduler.Submit(MakeItem("r" + std::to_string(i), i % 2, outcomes.back()));
  }
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  // Priority 1 first (r1, r3), then 0, all in one batch of 5.
  EXPECT_THAT(device.ran(), ElementsAre("block", "r1", "r3", "r0", "r2", "r4"));
  EXPECT_THAT(device.batch_sizes(), ElementsAre(1, 5, 5, 5, 5, 5));
  for (auto& outcome : outcomes) EXPECT_TRUE(outcome->Status().ok());
  const std::string text = registry.Render();
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_batch_size_count 2"));
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_batch_size_sum 6"));
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_batch_tokens_count 2"));
  EXPECT_THAT(text, ::testing::HasSubstr("attnd_queue_duration_seconds_count 6"));
}

TEST(SchedulerBatchingTest, HoldsForTheDelayOnTheInjectedClock) {
  FakeClock clock;
  Scheduler scheduler(Batching(4, absl::Milliseconds(5)), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  auto a = std::make_shared<Outcome>();
  auto b = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("a", 0, a));
  clock.Advance(absl::Milliseconds(1));
  scheduler.Submit(MakeItem("b", 0, b));
  // Real time passes, the scheduler's clock does not: the batch stays held.
  absl::SleepFor(absl::Milliseconds(30));
  EXPECT_TRUE(device.ran().empty());
  EXPECT_EQ(scheduler.queue_depth(), 2);
  clock.Advance(absl::Milliseconds(4));  // a has waited max_queue_delay
  ASSERT_TRUE(scheduler.WaitIdle(absl::Now() + absl::Seconds(30)));
  EXPECT_THAT(device.ran(), ElementsAre("a", "b"));
  EXPECT_THAT(device.batch_sizes(), ElementsAre(2, 2));
}

TEST(SchedulerBatchingTest, AFullBatchDoesNotWaitForTheDelay) {
  FakeClock clock;
  Scheduler scheduler(Batching(3, absl::Seconds(10)), &clock, nullptr);
  RecordingDevice device;
  scheduler.AddDevice("cpu", device.Fn());
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 3; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    scheduler.Submit(MakeItem("r" + std::to_string(i), 0, outcomes.back()));
  }
  ASSERT_TRUE(scheduler.WaitIdle(absl::Now() + absl::Seconds(30)));
  EXPECT_THAT(device.ran(), ElementsAre("r0", "r1", "r2"));
  EXPECT_THAT(device.batch_sizes(), ElementsAre(3, 3, 3));
}

TEST(SchedulerBatchingTest, MemoryCostSplitsBatchesUnderTheDevicesBudget) {
  FakeClock clock;
  Scheduler scheduler(Batching(8), &clock, nullptr, [](const WorkItem&) -> int64_t { return 400; });
  RecordingDevice device;
  std::atomic<int> budget_reads{0};
  scheduler.AddDevice("gpu", device.Fn(), [&budget_reads]() -> int64_t {
    budget_reads.fetch_add(1);
    return 1000;
  });
  auto blocker = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("block", 0, blocker));
  device.WaitBlocked();
  std::vector<std::shared_ptr<Outcome>> outcomes;
  for (int i = 0; i < 5; ++i) {
    outcomes.push_back(std::make_shared<Outcome>());
    scheduler.Submit(MakeItem("r" + std::to_string(i), 0, outcomes.back()));
  }
  device.Release();
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_THAT(device.ran(), ElementsAre("block", "r0", "r1", "r2", "r3", "r4"));
  EXPECT_THAT(device.batch_sizes(), ElementsAre(1, 2, 2, 2, 2, 1));
  EXPECT_GE(budget_reads.load(), 4);  // read before every decision
}

TEST(SchedulerBatchingTest, EachItemIsAnsweredAsSoonAsTheDeviceAnswersIt) {
  FakeClock clock;
  Scheduler scheduler(Batching(8), &clock, nullptr);
  absl::Notification first_answered_seen;
  std::shared_ptr<Outcome> first;
  RunBatchFn run = [&](absl::Span<WorkItem* const> batch, const BatchInfo&, const ItemDone& done) {
    v1::AttendResponse response;
    response.set_request_id(IdOf(*batch[0]));
    done(0, response);
    // The first is complete before the batch is through.
    EXPECT_EQ(first->completions.load(), 1);
    first_answered_seen.Notify();
    done(0, response);  // a second answer is ignored
    // batch[1] is left unanswered: the scheduler answers it INTERNAL.
  };
  first = std::make_shared<Outcome>();
  auto second = std::make_shared<Outcome>();
  scheduler.Submit(MakeItem("first", 0, first));
  scheduler.Submit(MakeItem("second", 0, second));
  scheduler.AddDevice("dev", run);  // both wait already: one batch of two
  ASSERT_TRUE(scheduler.WaitIdle(kForever));
  EXPECT_TRUE(first_answered_seen.HasBeenNotified());
  EXPECT_EQ(first->completions.load(), 1);
  EXPECT_TRUE(first->Status().ok());
  EXPECT_EQ(second->completions.load(), 1);
  EXPECT_TRUE(absl::IsInternal(second->Status())) << second->Status();
  EXPECT_EQ(scheduler.inflight(), 0);
}

// Many threads submit while two devices with two workers each pop; some items are cancelled
// and some expire. Every item completes exactly once, nothing cancelled before submission or
// expired runs, and the whole thing finishes (bounded by WaitIdle's deadline, not by timing).
TEST(SchedulerTest, ConcurrentSubmitAndRunStress) {
  FakeClock clock;
  Scheduler scheduler(Options(/*max_queue=*/64, 3, 2), &clock, nullptr);
  std::atomic<int> runs{0};
  absl::Mutex mu;
  std::set<std::string> ran;
  auto run = [&](const WorkItem& item, const BatchInfo&) -> AttendResult {
    runs.fetch_add(1);
    {
      absl::MutexLock lock(&mu);
      EXPECT_TRUE(ran.insert(IdOf(item)).second) << "ran twice: " << IdOf(item);
    }
    EXPECT_FALSE(item.IsCancelled() && IdOf(item).rfind("pre-cancelled", 0) == 0);
    v1::AttendResponse response;
    response.set_request_id(IdOf(item));
    return response;
  };
  scheduler.AddDevice("dev0", RunEachItem(run));
  scheduler.AddDevice("dev1", RunEachItem(run));

  constexpr int kThreads = 4;
  constexpr int kPerThread = 400;
  std::vector<std::vector<std::shared_ptr<Outcome>>> outcomes(kThreads);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      std::mt19937 rng(1234 + t);
      for (int i = 0; i < kPerThread; ++i) {
        auto outcome = std::make_shared<Outcome>();
        outcomes[t].push_back(outcome);
        const int kind = static_cast<int>(rng() % 10);
        std::string id = std::to_string(t) + "-" + std::to_string(i);
        absl::Time deadline = kForever;
        if (kind == 0) deadline = clock.Now() - absl::Seconds(1);  // already expired
        if (kind == 1) id = "pre-cancelled-" + id;
        auto item = MakeItem(id, static_cast<int>(rng() % 4), outcome, deadline);
        if (kind == 1) item->cancelled->store(true);
        CancelFlag flag = item->cancelled;
        scheduler.Submit(std::move(item));
        if (kind == 2) flag->store(true);  // may or may not be in time: either answer is fine
        if (i % 50 == 0) std::this_thread::yield();
      }
    });
  }
  for (std::thread& s : submitters) s.join();
  ASSERT_TRUE(scheduler.WaitIdle(absl::Now() + absl::Seconds(60)));

  int ok = 0;
  for (int t = 0; t < kThreads; ++t) {
    for (auto& outcome : outcomes[t]) {
      ASSERT_EQ(outcome->completions.load(), 1);
      absl::Status status = outcome->Status();
      EXPECT_TRUE(status.ok() || absl::IsResourceExhausted(status) ||
                  absl::IsDeadlineExceeded(status) || absl::IsCancelled(status))
          << status;
      if (status.ok()) ++ok;
    }
  }
  EXPECT_EQ(ok, runs.load());  // every run answered OK, every OK was run
  EXPECT_GT(ok, 0);
  for (const std::string& id : ran) EXPECT_NE(id.rfind("pre-cancelled", 0), 0u) << id;
  scheduler.Shutdown();
}

}  // namespace
}  // namespace attnd::server::scheduler
