#include "client/attnctl/load_runner.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace attnd::attnctl {
namespace {

using SteadyClock = std::chrono::steady_clock;

double Seconds(SteadyClock::duration d) { return std::chrono::duration<double>(d).count(); }

// Shared with the calls in flight, so that a callback still unlocking mu_ never outlives it.
class Runner : public std::enable_shared_from_this<Runner> {
 public:
  Runner(client::Client& client, absl::Span<const v1::AttendRequest> requests,
         const LoadOptions& options)
      : client_(client), requests_(requests), options_(options), slots_(options.concurrency) {
    for (int i = options.concurrency - 1; i >= 0; --i) free_.push_back(i);
  }

  LoadReport Run() {
    start_ = SteadyClock::now();
    std::thread progress([this] { ReportProgress(); });
    Dispatch();
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &Runner::AllReturned));
      finished_ = true;
    }
    progress.join();
    return Collect();
  }

 private:
  struct Slot {
    v1::AttendResponse response;
    SteadyClock::time_point sent;
    // Only the call that holds the slot touches these; returning the slot to free_ under mu_
    // publishes them to whoever takes it next (and to Collect).
    std::vector<double> latencies_ms;
    std::map<std::string, int64_t> errors;
  };

  bool AllReturned() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<int>(free_.size()) == options_.concurrency;
  }
  bool HasFreeSlot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !free_.empty(); }
  bool Finished() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return finished_; }

  void Dispatch() {
    const bool open_loop = options_.rps > 0;
    // Without a duration, `end` never comes.
    const SteadyClock::time_point end = options_.duration.has_value()
                                            ? start_ + absl::ToChronoNanoseconds(*options_.duration)
                                            : SteadyClock::time_point::max();
    for (int64_t ticket = 0;; ++ticket) {
      if (options_.requests > 0 && ticket >= options_.requests) break;
      SteadyClock::time_point due;
      if (open_loop) {
        due = start_ + std::chrono::duration_cast<SteadyClock::duration>(
                           std::chrono::duration<double>(ticket / options_.rps));
        if (due >= end) break;
        std::this_thread::sleep_until(due);
      }
      int slot;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Runner::HasFreeSlot));
        slot = free_.back();
        free_.pop_back();
      }
      const SteadyClock::time_point now = SteadyClock::now();
      if (!open_loop && now >= end) {
        absl::MutexLock lock(&mu_);
        free_.push_back(slot);
        break;
      }
      Slot& s = slots_[slot];
      s.sent = open_loop ? due : now;
      s.response.Clear();
      const v1::AttendRequest* request = &requests_[static_cast<size_t>(ticket) % requests_.size()];
      auto done = [self = shared_from_this(), slot](absl::Status status) {
        self->OnDone(slot, status);
      };
      if (options_.echo) {
        client_.EchoAsync(request, &s.response, options_.timeout, std::move(done));
      } else {
        client_.AttendAsync(request, &s.response, options_.timeout, std::move(done));
      }
    }
  }

  // On a gRPC callback thread: must not block.
  void OnDone(int slot, const absl::Status& status) {
    const SteadyClock::time_point now = SteadyClock::now();
    Slot& s = slots_[slot];
    if (status.ok()) {
      s.latencies_ms.push_back(Seconds(now - s.sent) * 1e3);
    } else {
      ++s.errors[absl::StatusCodeToString(status.code())];
      errors_.fetch_add(1, std::memory_order_relaxed);
    }
    done_.fetch_add(1, std::memory_order_relaxed);
    absl::MutexLock lock(&mu_);
    if (now > last_answer_) last_answer_ = now;
    free_.push_back(slot);
  }

  void ReportProgress() {
    int64_t last_done = 0;
    SteadyClock::time_point last = start_;
    absl::MutexLock lock(&mu_);
    while (!mu_.AwaitWithTimeout(absl::Condition(this, &Runner::Finished),
                                 options_.progress_interval)) {
      if (!options_.on_progress) continue;
      const SteadyClock::time_point now = SteadyClock::now();
      LoadProgress progress;
      progress.elapsed_s = Seconds(now - start_);
      progress.done = done_.load(std::memory_order_relaxed);
      progress.errors = errors_.load(std::memory_order_relaxed);
      const double interval = Seconds(now - last);
      progress.rate_rps = interval > 0 ? (progress.done - last_done) / interval : 0;
      last_done = progress.done;
      last = now;
      mu_.Unlock();  // never call out with the lock held
      options_.on_progress(progress);
      mu_.Lock();
    }
  }

  LoadReport Collect() {
    LoadReport report;
    std::vector<double> latencies;
    for (Slot& s : slots_) {
      latencies.insert(latencies.end(), s.latencies_ms.begin(), s.latencies_ms.end());
      for (const auto& [code, n] : s.errors) report.errors[code] += n;
    }
    report.ok = static_cast<int64_t>(latencies.size());
    report.requests = done_.load();
    report.concurrency = options_.concurrency;
    report.target_rps = options_.rps;
    absl::MutexLock lock(&mu_);
    report.duration_s = report.requests > 0 ? Seconds(last_answer_ - start_) : 0;
    report.latency = SummarizeLatencies(std::move(latencies));
    FinishReport(&report);
    return report;
  }

  // Constant after construction (start_ once Run begins).
  client::Client& client_;
  const absl::Span<const v1::AttendRequest> requests_;
  const LoadOptions options_;
  SteadyClock::time_point start_;
  std::vector<Slot> slots_;  // [concurrency]; see Slot for who may touch one

  std::atomic<int64_t> done_{0};
  std::atomic<int64_t> errors_{0};

  absl::Mutex mu_;
  std::vector<int> free_ ABSL_GUARDED_BY(mu_);  // slots with no call in flight
  SteadyClock::time_point last_answer_ ABSL_GUARDED_BY(mu_);
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace

LoadReport RunLoadTest(client::Client& client, absl::Span<const v1::AttendRequest> requests,
                       const LoadOptions& options) {
  auto runner = std::make_shared<Runner>(client, requests, options);
  return runner->Run();
}

LoadReport RunLoadTest(client::Client& client, const v1::AttendRequest& request,
                       const LoadOptions& options) {
  return RunLoadTest(client, absl::MakeConstSpan(&request, 1), options);
}

}  // namespace attnd::attnctl
