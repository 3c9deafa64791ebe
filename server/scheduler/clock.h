// The scheduler's notion of time, injected so that queueing decisions (deadlines, batch delay)
// are exact in tests, as LevelDB's Env does for the file system.
#ifndef ATTND_SERVER_SCHEDULER_CLOCK_H_
#define ATTND_SERVER_SCHEDULER_CLOCK_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace attnd::server::scheduler {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

// The wall clock (absl::Now()). The returned clock lives forever.
const Clock* RealClock();

// A clock that moves only when told to. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(absl::Time start = absl::FromUnixSeconds(1'700'000'000));
  absl::Time Now() const override;
  void Set(absl::Time now);
  void Advance(absl::Duration by);

 private:
  mutable absl::Mutex mu_;
  absl::Time now_ ABSL_GUARDED_BY(mu_);
};

}  // namespace attnd::server::scheduler

#endif  // ATTND_SERVER_SCHEDULER_CLOCK_H_
