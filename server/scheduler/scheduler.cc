#include "server/scheduler/scheduler.h"

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnd::server::scheduler {

namespace {

// Longest real-time wait while the batcher holds a batch: the clock may be a fake one, whose
// hold end never comes by waiting, so a held worker looks again at least this often.
constexpr absl::Duration kMaxHoldWait = absl::Milliseconds(1);

}  // namespace

RunBatchFn RunEachItem(RunFn run) {
  return [run = std::move(run)](absl::Span<WorkItem* const> batch, const BatchInfo& info,
                                const ItemDone& done) {
    for (size_t i = 0; i < batch.size(); ++i) done(i, run(*batch[i], info));
  };
}

struct Scheduler::Metrics {
  metrics::Gauge* queue_depth;
  metrics::Gauge* inflight;
  metrics::Histogram* queue_seconds;
  metrics::Histogram* batch_size;
  metrics::Histogram* batch_tokens;

  explicit Metrics(metrics::Registry* registry)
      : queue_depth(registry->GetGauge("attnd_queue_depth", "Requests waiting in the queue.")),
        inflight(
            registry->GetGauge("attnd_inflight_requests", "Requests being computed on a device.")),
        queue_seconds(registry->GetHistogram(
            "attnd_queue_duration_seconds", "Time requests waited in the queue before they ran.",
            metrics::ExponentialBuckets(0.0001, 2.0, 20))),  // 100us .. 52s
        batch_size(registry->GetHistogram("attnd_batch_size", "Requests run together per batch.",
                                          metrics::ExponentialBuckets(1, 2, 10))),  // 1 .. 512
        batch_tokens(registry->GetHistogram(
            "attnd_batch_tokens", "Tokens (B x max(Mq, Mk), summed) run together per batch.",
            metrics::ExponentialBuckets(64, 2, 16))) {}  // 64 .. 2M
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
                     metrics::Registry* registry, MemoryCostFn memory_cost)
    : options_(options),
      clock_(clock),
      memory_cost_(std::move(memory_cost)),
      queue_(options.max_queue_requests, options.priority_levels) {
  if (registry == nullptr) {
    own_registry_ = std::make_unique<metrics::Registry>();
    registry = own_registry_.get();
  }
  metrics_ = std::make_unique<Metrics>(registry);
}

Scheduler::~Scheduler() { Shutdown(); }

void Scheduler::AddDevice(const std::string& name, RunBatchFn run, BudgetFn budget) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return;
  devices_.push_back(std::make_unique<Device>(Device{name, std::move(run), std::move(budget)}));
  const Device* device = devices_.back().get();
  for (int i = 0; i < std::max(options_.workers_per_device, 1); ++i) {
    workers_.emplace_back([this, device] { WorkerLoop(device); });
  }
}

void Scheduler::Submit(std::unique_ptr<WorkItem> item) {
  const wire::DecodedRequest& decoded = item->decoded;
  item->batch_key =
      BatchKeyOf(decoded.problem, decoded.variant_hint, decoded.q_chunk, decoded.kv_chunk);
  item->tokens = RequestTokens(decoded.problem);
  item->memory_cost_bytes = memory_cost_ != nullptr ? memory_cost_(*item) : 0;
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

void Scheduler::WorkerLoop(const Device* device) {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) work_cv_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and Shutdown took what was left
    }
    // Read outside the lock: it may ask the device (cudaMemGetInfo, /proc/meminfo).
    const int64_t budget = device->budget != nullptr ? device->budget() : kUnlimitedBudget;

    std::vector<std::unique_ptr<WorkItem>> batch;
    std::vector<Dropped> dropped;
    BatchInfo info;
    {
      absl::MutexLock lock(&mu_);
      const absl::Time now = clock_->Now();
      absl::Time retry_at = absl::InfiniteFuture();
      batch = queue_.PopNext(now, options_.batch, &dropped, budget, &retry_at);
      if (batch.empty() && dropped.empty()) {
        // The batcher holds what waits: look again when an item arrives or the hold ends.
        if (!queue_.empty()) {
          work_cv_.WaitWithTimeout(&mu_,
                                   std::clamp(retry_at - now, absl::ZeroDuration(), kMaxHoldWait));
        }
        continue;
      }
      info.start = now;
      info.batch_size = static_cast<int>(batch.size());
      for (const auto& item : batch) info.tokens += item->tokens;
      running_ += static_cast<int64_t>(batch.size());
      completing_ += static_cast<int64_t>(dropped.size());
      UpdateGaugesLocked();
      // Others may be able to take what this batch left (another group, another worker).
      if (!queue_.empty()) work_cv_.Signal();
    }

    if (!dropped.empty()) {
      const int64_t n = static_cast<int64_t>(dropped.size());
      CompleteDropped(&dropped);
      absl::MutexLock lock(&mu_);
      completing_ -= n;
      idle_cv_.SignalAll();
    }
    if (!batch.empty()) RunBatch(*device, std::move(batch), info);
  }
}

void Scheduler::RunBatch(const Device& device, std::vector<std::unique_ptr<WorkItem>> batch,
                         const BatchInfo& info) {
  metrics_->batch_size->Observe(static_cast<double>(batch.size()));
  metrics_->batch_tokens->Observe(static_cast<double>(info.tokens));
  std::vector<WorkItem*> items;
  items.reserve(batch.size());
  for (const auto& item : batch) {
    metrics_->queue_seconds->Observe(absl::ToDoubleSeconds(QueueTime(*item, info)));
    items.push_back(item.get());
  }
  std::vector<bool> answered(items.size(), false);
  const ItemDone done = [this, &items, &answered](size_t i, AttendResult result) {
    if (i >= items.size() || answered[i]) return;  // a second answer is ignored
    answered[i] = true;
    Complete(items[i], std::move(result));
    FinishRunning(1);
  };
  device.run(items, info, done);
  for (size_t i = 0; i < items.size(); ++i) {
    if (!answered[i]) {
      done(i, absl::InternalError(
                  absl::StrCat("device ", device.name, " returned without answering")));
    }
  }
}

void Scheduler::FinishRunning(int64_t items) {
  absl::MutexLock lock(&mu_);
  running_ -= items;
  UpdateGaugesLocked();
  idle_cv_.SignalAll();
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
