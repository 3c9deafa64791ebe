// The scheduler: the RequestQueue under a mutex, and worker threads per device that take what
// the batcher chooses, run it and complete it. Callbacks (completions) never run under the lock.
//
//   service ──Submit──▶ [ RequestQueue ] ──PopNext──▶ worker ──run──▶ item.done(result)
//                            │ full / expired / cancelled
//                            └──────────────────────────────▶ item.done(error), never run
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

// What a device run learns about the batch its item ran in.
struct BatchInfo {
  int batch_size = 1;
  absl::Duration queue_time;  // enqueue to start, by the scheduler's clock
};

// Computes one item on one device (the executor step). Called on a worker thread, never under
// the scheduler's lock; its result goes to the item's completion.
using RunFn = std::function<AttendResult(const WorkItem& item, const BatchInfo& info)>;

class Scheduler {
 public:
  // `clock` and `registry` must outlive the scheduler; `registry` may be null (no metrics).
  Scheduler(const SchedulerOptions& options, const Clock* clock, metrics::Registry* registry);
  ~Scheduler();  // Shutdown()

  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Starts options.workers_per_device threads that run items with `run`.
  void AddDevice(const std::string& name, RunFn run);

  // Takes the item: queues it, or completes it at once with RESOURCE_EXHAUSTED (queue full),
  // UNAVAILABLE (shutting down), DEADLINE_EXCEEDED or CANCELLED. Either way item->done is
  // called exactly once, here or on a worker thread. Stamps enqueue_time.
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

  void WorkerLoop(const RunFn* run);
  void UpdateGaugesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Constant after construction.
  const SchedulerOptions options_;
  const Clock* const clock_;
  std::unique_ptr<metrics::Registry> own_registry_;  // when none was given
  std::unique_ptr<Metrics> metrics_;

  mutable absl::Mutex mu_;
  absl::CondVar work_cv_;  // signalled when an item is queued or shutdown begins
  absl::CondVar idle_cv_;  // signalled when an item leaves the queue or finishes running
  RequestQueue queue_ ABSL_GUARDED_BY(mu_);
  int64_t running_ ABSL_GUARDED_BY(mu_) = 0;     // items being computed
  int64_t completing_ ABSL_GUARDED_BY(mu_) = 0;  // dropped items whose completion is running
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::unique_ptr<RunFn>> devices_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> workers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_SCHEDULER_H_
