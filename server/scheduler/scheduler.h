// The scheduler: the RequestQueue under a mutex, and worker threads per device that take the
// batch the batcher chooses, run it and complete each item. Callbacks (completions) never run
// under the lock.
//
//   service ──Submit──▶ [ RequestQueue ] ──PopNext (batcher)──▶ worker ──run──▶ done(i, result)
//     (key, tokens,          │ full / expired / cancelled
//      memory cost)          └──────────────────────────▶ item.done(error), never run
//
// Each device gets options.workers_per_device workers (its executors: on a GPU each has its own
// streams, so one worker's copies overlap another's compute). A worker reads its device's live
// memory budget before each decision; a batch the batcher holds (to fill it, at most
// max_queue_delay) is asked for again when the queue changes or its hold ends.
#ifndef ATTND_SERVER_SCHEDULER_SCHEDULER_H_
#define ATTND_SERVER_SCHEDULER_SCHEDULER_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "server/config/config.h"
#include "server/metrics/metrics.h"
#include "server/scheduler/batcher.h"
#include "server/scheduler/clock.h"
#include "server/scheduler/request_queue.h"
#include "server/scheduler/work_item.h"

namespace attnd::server::scheduler {

struct SchedulerOptions {
  int64_t max_queue_requests = 256;
  int priority_levels = 2;
  int workers_per_device = 1;
  absl::Duration default_timeout = absl::Seconds(60);  // for requests without a deadline
  BatchPolicy batch;

  static SchedulerOptions FromConfig(const SchedulerSection& section);
};

// What a device run learns about the batch it runs.
struct BatchInfo {
  int batch_size = 1;
  int64_t tokens = 0;  // RequestTokens summed over the batch
  absl::Time start;    // when the batch left the queue, by the scheduler's clock
};

// Enqueue to start, by the scheduler's clock.
inline absl::Duration QueueTime(const WorkItem& item, const BatchInfo& info) {
  return info.start - item.enqueue_time;
}

// Answers item `index` of a batch (exactly once per item). Completes it at once, so that a
// request is answered as soon as its output is back, not when the whole batch is.
using ItemDone = std::function<void(size_t index, AttendResult result)>;

// Runs one batch on one device (the executor step), in service order. Called on a worker thread,
// never under the scheduler's lock; must call done(i, ...) for every item before it returns, from
// one thread at a time. An item it leaves unanswered is answered INTERNAL.
using RunBatchFn = std::function<void(absl::Span<WorkItem* const> batch, const BatchInfo& info,
                                      const ItemDone& done)>;

// Computes one item (tests and simple devices): RunEachItem makes a RunBatchFn of it that runs
// the batch's items one after the other.
using RunFn = std::function<AttendResult(const WorkItem& item, const BatchInfo& info)>;
RunBatchFn RunEachItem(RunFn run);

// The device's live memory budget, read before each batching decision (null: unlimited).
using BudgetFn = std::function<int64_t()>;

// A request's memory cost on the device, for the batcher's memory cap: called once per request
// at Submit, outside the lock (null: every request costs 0).
using MemoryCostFn = std::function<int64_t(const WorkItem& item)>;

class Scheduler {
 public:
  // `clock` and `registry` must outlive the scheduler; `registry` may be null (no metrics).
  Scheduler(const SchedulerOptions& options, const Clock* clock, metrics::Registry* registry,
            MemoryCostFn memory_cost = nullptr);
  ~Scheduler();  // Shutdown()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts options.workers_per_device threads that run batches with `run`, each batch chosen
  // under `budget` read just before.
  void AddDevice(const std::string& name, RunBatchFn run, BudgetFn budget = nullptr);

  // Takes the item: queues it, or completes it at once with RESOURCE_EXHAUSTED (queue full),
  // UNAVAILABLE (shutting down), DEADLINE_EXCEEDED or CANCELLED. Either way item->done is
  // called exactly once, here or on a worker thread. Stamps enqueue_time and fills the batcher's
  // figures (batch_key, tokens, memory_cost_bytes).
  void Submit(std::unique_ptr<WorkItem> item);

  // The deadline to give an item whose RPC has `rpc_deadline` (InfiniteFuture when the client
  // set none): the earlier of it and now + default_timeout.
  absl::Time DeadlineFor(absl::Time rpc_deadline) const;

  // Blocks until nothing waits or runs, or until `deadline` passes (real time). True when idle.
  bool WaitIdle(absl::Time deadline);

  // Refuses new items (UNAVAILABLE), answers everything still queued UNAVAILABLE, lets running
  // items finish and joins the workers. Idempotent.
  void Shutdown();

  int64_t queue_depth() const;
  int64_t inflight() const;
  const Clock* clock() const { return clock_; }
  const SchedulerOptions& options() const { return options_; }

 private:
  struct Metrics;
  struct Device {
    std::string name;
    RunBatchFn run;
    BudgetFn budget;
  };

  void WorkerLoop(const Device* device);
  // Runs `batch` on `device` and answers every item; the running count goes down as each is.
  void RunBatch(const Device& device, std::vector<std::unique_ptr<WorkItem>> batch,
                const BatchInfo& info);
  void FinishRunning(int64_t items);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const SchedulerOptions options_;
  const Clock* const clock_;
  const MemoryCostFn memory_cost_;
  std::unique_ptr<metrics::Registry> own_registry_;  // when none was given
  std::unique_ptr<Metrics> metrics_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // signalled when an item is queued or shutdown begins
  absl::CondVar idle_cv_;  // signalled when an item leaves the queue or finishes running
  RequestQueue queue_ ABSL_GUARDED_BY(mu_);
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;     // items being computed
  int64_t completing_ ABSL_GUARDED_BY(mu_) = 0;  // dropped items whose completion is running
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<Device>> devices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_SCHEDULER_H_
