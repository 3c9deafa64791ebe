// ThreadSanitizer build only (scripts/test-sanitized.sh tsan): tells TSan about Abseil's
// synchronization, which it cannot see on its own.
//
// Why: Debian's libabsl_synchronization.so is not built with -fsanitize=thread, so absl::Mutex,
// CondVar and Notification synchronise through atomics and futexes TSan never observes, and
// every access guarded by an absl::Mutex is reported as a race (a two-thread counter under
// absl::MutexLock reproduces it). Upstream Abseil annotates these for TSan only when Abseil
// itself is compiled with TSan. Here each entry point is interposed: this definition, in the
// executable (exported with -Wl,--export-dynamic, so calls from libabsl and libgrpc reach it
// too), calls the library's own through dlsym(RTLD_NEXT) and adds the happens-before edge the
// real implementation provides: release before unlocking or waiting, acquire after locking or
// waking. Mutual exclusion itself is untouched: the real functions still do all the work.
//
// Not covered: the inline Notification::HasBeenNotified() fast path (attnd waits with
// WaitForNotification*), and Abseil's internal uses that do not go through these entry points.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" {
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}

namespace {

// The library's definition of the function whose mangled name is `name`.
template <typename Fn>
Fn Real(const char* name) {
  void* fn = dlsym(RTLD_NEXT, name);
  if (fn == nullptr) {
    std::fprintf(stderr, "tsan_absl_sync: %s not found in the libraries\n", name);
    std::abort();
  }
  return reinterpret_cast<Fn>(fn);
}

// `static` in each function: looked up once, on first use (thread-safe initialisation).
#define ATTND_REAL(type, mangled) static const auto real = Real<type>(mangled)

void Acquire(const void* mu) { __tsan_acquire(const_cast<void*>(mu)); }
void Release(const void* mu) { __tsan_release(const_cast<void*>(mu)); }

// A Condition is evaluated inside the library, by the waiter or by whichever thread unlocks,
// always with the mutex held: acquire before reading what it guards, release after, so the
// evaluation is ordered with the lock's other holders (and the waiter's stack-held Condition
// with the thread that evaluated it).
struct GuardedCondition {
  const absl::Condition* cond;
  absl::Mutex* mu;
};
bool EvalGuarded(GuardedCondition* g) {
  Acquire(g->mu);
  const bool met = g->cond->Eval();
  Release(g->mu);
  return met;
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

using MuFn = void (*)(Mutex*);
using MuTryFn = bool (*)(Mutex*);
using MuCondFn = void (*)(Mutex*, const Condition&);
using MuCondDurFn = bool (*)(Mutex*, const Condition&, Duration);
using MuCondTimeFn = bool (*)(Mutex*, const Condition&, Time);

void Mutex::Lock() {
  ATTND_REAL(MuFn, "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  Acquire(this);
}
void Mutex::ReaderLock() {
  ATTND_REAL(MuFn, "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  Acquire(this);
}
bool Mutex::TryLock() {
  ATTND_REAL(MuTryFn, "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
bool Mutex::ReaderTryLock() {
  ATTND_REAL(MuTryFn, "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) Acquire(this);
  return locked;
}
void Mutex::Unlock() {
  ATTND_REAL(MuFn, "_ZN4absl7debian35Mutex6UnlockEv");
  Release(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  ATTND_REAL(MuFn, "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  Release(this);
  real(this);
}
void Mutex::LockWhen(const Condition& cond) {
  ATTND_REAL(MuCondFn, "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  real(this, wrapped);
  Acquire(this);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  ATTND_REAL(MuCondFn, "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  real(this, wrapped);
  Acquire(this);
}
// The timed LockWhen variants hold the mutex on return whatever they return.
bool Mutex::LockWhenWithTimeout(const Condition& cond, Duration timeout) {
  ATTND_REAL(MuCondDurFn, "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  const bool met = real(this, wrapped, timeout);
  Acquire(this);
  return met;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, Time deadline) {
  ATTND_REAL(MuCondTimeFn, "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  const bool met = real(this, wrapped, deadline);
  Acquire(this);
  return met;
}
bool Mutex::ReaderLockWhenWithTimeout(const Condition& cond, Duration timeout) {
  ATTND_REAL(MuCondDurFn,
             "_ZN4absl7debian35Mutex25ReaderLockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  const bool met = real(this, wrapped, timeout);
  Acquire(this);
  return met;
}
bool Mutex::ReaderLockWhenWithDeadline(const Condition& cond, Time deadline) {
  ATTND_REAL(MuCondTimeFn,
             "_ZN4absl7debian35Mutex26ReaderLockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  const bool met = real(this, wrapped, deadline);
  Acquire(this);
  return met;
}
// Await releases the mutex while it waits and holds it again on return.
void Mutex::Await(const Condition& cond) {
  ATTND_REAL(MuCondFn, "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  Release(this);
  real(this, wrapped);
  Acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, Duration timeout) {
  ATTND_REAL(MuCondDurFn, "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  Release(this);
  const bool met = real(this, wrapped, timeout);
  Acquire(this);
  return met;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, Time deadline) {
  ATTND_REAL(MuCondTimeFn, "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  GuardedCondition guarded{&cond, this};
  const Condition wrapped(&EvalGuarded, &guarded);
  Release(this);
  const bool met = real(this, wrapped, deadline);
  Acquire(this);
  return met;
}

using CvWaitFn = void (*)(CondVar*, Mutex*);
using CvWaitDurFn = bool (*)(CondVar*, Mutex*, Duration);
using CvWaitTimeFn = bool (*)(CondVar*, Mutex*, Time);

void CondVar::Wait(Mutex* mu) {
  ATTND_REAL(CvWaitFn, "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  Release(mu);
  real(this, mu);
  Acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, Duration timeout) {
  ATTND_REAL(CvWaitDurFn, "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  Release(mu);
  const bool timed_out = real(this, mu, timeout);
  Acquire(mu);
  return timed_out;
}
bool CondVar::WaitWithDeadline(Mutex* mu, Time deadline) {
  ATTND_REAL(CvWaitTimeFn, "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  Release(mu);
  const bool timed_out = real(this, mu, deadline);
  Acquire(mu);
  return timed_out;
}

using NotifyFn = void (*)(Notification*);
using WaitFn = void (*)(const Notification*);
using WaitDurFn = bool (*)(const Notification*, Duration);
using WaitTimeFn = bool (*)(const Notification*, Time);

void Notification::Notify() {
  ATTND_REAL(NotifyFn, "_ZN4absl7debian312Notification6NotifyEv");
  Release(this);
  real(this);
}
void Notification::WaitForNotification() const {
  ATTND_REAL(WaitFn, "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(this);
  Acquire(this);
}
bool Notification::WaitForNotificationWithTimeout(Duration timeout) const {
  ATTND_REAL(WaitDurFn, "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool notified = real(this, timeout);
  if (notified) Acquire(this);
  return notified;
}
bool Notification::WaitForNotificationWithDeadline(Time deadline) const {
  ATTND_REAL(WaitTimeFn,
             "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool notified = real(this, deadline);
  if (notified) Acquire(this);
  return notified;
}

ABSL_NAMESPACE_END
}  // namespace absl
