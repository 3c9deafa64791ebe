#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"

namespace attnd::server::scheduler {

struct Scheduler::Metrics {
  metrics::Gauge* queue_depth;
  metrics::Gauge* inflight;
  metrics::Histogram* queue_seconds;
  metrics::Histogram* batch_size;

  explicit Metrics(metrics::Registry* registry)
      : queue_depth(registry->GetGauge("attnd_queue_depth", "Requests waiting in the queue.")),
        inflight(
            registry->GetGauge("attnd_inflight_requests", "Requests being computed on a device.")),
        queue_seconds(registry->GetHistogram(
            "attnd_queue_duration_seconds", "Time requests waited in the queue before they ran.",
            metrics::ExponentialBuckets(0.0001, 2.0, 20))),  // 100us .. 52s
        batch_size(registry->GetHistogram("attnd_batch_size", "Requests run together per batch.",
                                          metrics::ExponentialBuckets(1, 2, 8))) {}  // 1 .. 128
};

SchedulerOptions SchedulerOptions::FromConfig(const SchedulerSection& section) {
  SchedulerOptions options;
  options.max_queue_requests = section.max_queue_requests;
  options.priority_levels = section.priority_levels;
  options.workers_per_device = std::max(section.workers, 1);
  options.default_timeout = absl::Seconds(section.default_timeout_seconds);
  options.batch.max_batch_requests = section.max_batch_requests;
  options.batch.max_batch_tokens = section.max_batch_tokens;
  options.batch.max_queue_delay = absl::Microseconds(section.max_queue_delay_us);
  return options;
}

Scheduler::Scheduler(const SchedulerOptions& options, const Clock* clock,
                     metrics::Registry* registry)
    : options_(options),
      clock_(clock),
      queue_(options.max_queue_requests, options.priority_levels) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  metrics_ = std::make_unique<Metrics>(registry);
}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::AddDevice(const std::string& /*name*/, RunFn run) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  devices_.push_back(std::make_unique<RunFn>(std::move(run)));
  const RunFn* device = devices_.back().get();
  for (int i = 0; i < std::max(options_.workers_per_device, 1); ++i) {
    workers_.emplace_back([this, device] { WorkerLoop(device); });
  }
}

void Scheduler::Submit(std::unique_ptr<WorkItem> item) {
  const absl::Time now = clock_->Now();
  item->enqueue_time = now;
  absl::Status status;
  std::vector<Dropped> dropped;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      status = absl::UnavailableError("the server is shutting down; retry on another replica");
    } else {
      // Expired requests must not hold places a live one could take.
      if (queue_.full()) queue_.DropExpired(now, &dropped);
      status = queue_.Push(&item, now);
      if (status.ok()) work_cv_.Signal();
      completing_ += static_cast<int64_t>(dropped.size());
      UpdateGaugesLocked();
    }
  }
  if (!dropped.empty()) {
    const int64_t n = static_cast<int64_t>(dropped.size());
    CompleteDropped(&dropped);
    absl::MutexLock lock(&mu_);
    completing_ -= n;
    idle_cv_.SignalAll();
  }
  if (!status.ok()) Complete(item.get(), std::move(status));
}

absl::Time Scheduler::DeadlineFor(absl::Time rpc_deadline) const {
  return std::min(rpc_deadline, clock_->Now() + options_.default_timeout);
}

void Scheduler::WorkerLoop(const RunFn* run) {
  for (;;) {
    std::vector<std::unique_ptr<WorkItem>> batch;
    std::vector<Dropped> dropped;
    bool exit = false;
    absl::Time start;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (!queue_.empty()) {
          batch = queue_.PopNext(clock_->Now(), options_.batch, &dropped);
          if (!batch.empty() || !dropped.empty()) break;
          // The batcher holds what waits (a later batcher may wait to fill a batch).
          work_cv_.WaitWithTimeout(&mu_, absl::Milliseconds(1));
          continue;
        }
        if (stopping_) {
          exit = true;
          break;
        }
        work_cv_.Wait(&mu_);
      }
      start = clock_->Now();
      running_ += static_cast<int64_t>(batch.size());
      completing_ += static_cast<int64_t>(dropped.size());
      UpdateGaugesLocked();
    }

    if (!dropped.empty()) {
      const int64_t n = static_cast<int64_t>(dropped.size());
      CompleteDropped(&dropped);
      absl::MutexLock lock(&mu_);
      completing_ -= n;
      idle_cv_.SignalAll();
    }
    if (exit) return;
    if (batch.empty()) continue;

    metrics_->batch_size->Observe(static_cast<double>(batch.size()));
    for (std::unique_ptr<WorkItem>& item : batch) {
      BatchInfo info;
      info.batch_size = static_cast<int>(batch.size());
      info.queue_time = start - item->enqueue_time;
      metrics_->queue_seconds->Observe(absl::ToDoubleSeconds(info.queue_time));
      AttendResult result = (*run)(*item, info);
      Complete(item.get(), std::move(result));
      item.reset();
    }
    absl::MutexLock lock(&mu_);
    running_ -= static_cast<int64_t>(batch.size());
    UpdateGaugesLocked();
    idle_cv_.SignalAll();
  }
}

bool Scheduler::WaitIdle(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  for (;;) {
    if (queue_.empty() && running_ == 0 && completing_ == 0) return true;
    if (idle_cv_.WaitWithDeadline(&mu_, deadline)) {
      return queue_.empty() && running_ == 0 && completing_ == 0;
    }
  }
}

void Scheduler::Shutdown() {
  std::vector<std::unique_ptr<WorkItem>> left;
  std::vector<std::thread> workers;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    left = queue_.TakeAll();
    completing_ += static_cast<int64_t>(left.size());
    UpdateGaugesLocked();
    workers.swap(workers_);
    work_cv_.SignalAll();
  }
  for (std::unique_ptr<WorkItem>& item : left) {
    Complete(item.get(), absl::UnavailableError(
                             "the server shut down before this request ran; retry elsewhere"));
  }
  {
    absl::MutexLock lock(&mu_);
    completing_ -= static_cast<int64_t>(left.size());
    idle_cv_.SignalAll();
  }
  for (std::thread& worker : workers) worker.join();
}

int64_t Scheduler::queue_depth() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int64_t Scheduler::inflight() const {
  absl::MutexLock lock(&mu_);
  return running_;
}

void Scheduler::UpdateGaugesLocked() {
  metrics_->queue_depth->Set(static_cast<double>(queue_.size()));
  metrics_->inflight->Set(static_cast<double>(running_));
}

}  // namespace attnd::server::scheduler
