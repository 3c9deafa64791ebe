// Injected faults for the device path: tests make an allocation fail at its Nth call, a kernel
// slow, a copy-out slow, or a device error sticky, and watch attnd recover (or exit) as it
// promises (docs/reliability.md). The executors ask the process's injector at each step; none is
// installed in production, so each question is one atomic load of a null pointer.
//
//   ScriptedFaults faults(*ParseFaultSpec("alloc_fail_at=2,slow_kernel_ms=500,slow_kernels=1"));
//   ScopedFaultInjector scoped(&faults);        // in-process tests
//   ATTND_TEST_FAULTS="sticky_at=3" attnd ...   // a live attnd built with ATTND_TEST_HOOKS
//
// Decisions are counted per kind of step, over the whole process (all devices and workers), in
// the order the steps ask: "the 2nd allocation" is the 2nd Allocate after installation.
#ifndef ATTND_SERVER_FAULTS_FAULT_INJECTOR_H_
#define ATTND_SERVER_FAULTS_FAULT_INJECTOR_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace attnd::server::faults {

// What the executors ask. Implementations must be thread-safe: workers ask concurrently.
class FaultInjector {
 public:
  virtual ~FaultInjector() = default;
  // Before each workspace allocation on a device: true fails it as the device refusing memory
  // (RESOURCE_EXHAUSTED; the runner re-plans smaller).
  virtual bool FailAllocation() = 0;
  // Before each launch: time to stall the launching thread (a slow kernel; zero: none).
  virtual absl::Duration KernelDelay() = 0;
  // After each launch, before its output is copied back: time to stall (a slow copy-out).
  virtual absl::Duration CopyOutDelay() = 0;
  // After each launch: true makes the device meet a sticky error there (it is marked broken,
  // reports OnFatalDeviceError and answers UNAVAILABLE from then on).
  virtual bool StickyError() = 0;
  // Per request run: host bytes to allocate, touch and never free (a deliberate leak, to show
  // that the soak test catches one). 0 in every real fault scenario.
  virtual int64_t LeakBytesPerRequest() = 0;
};

// The injector installed for this process, or null (production: always null).
inline std::atomic<FaultInjector*>& ActiveSlot() {
  static std::atomic<FaultInjector*> slot{nullptr};
  return slot;
}
inline FaultInjector* Active() { return ActiveSlot().load(std::memory_order_acquire); }
// Installs `injector` (null: none); it must outlive its installation. Returns the previous one.
FaultInjector* Install(FaultInjector* injector);

// Installs an injector for a scope (tests), restoring the previous one after.
class ScopedFaultInjector {
 public:
  explicit ScopedFaultInjector(FaultInjector* injector) : previous_(Install(injector)) {}
  ~ScopedFaultInjector() { Install(previous_); }
  ScopedFaultInjector(const ScopedFaultInjector&) = delete;
  ScopedFaultInjector& operator=(const ScopedFaultInjector&) = delete;

 private:
  FaultInjector* const previous_;
};

// A fault scenario. Call numbers are 1-based; 0 turns the fault off.
struct FaultSpec {
  int64_t alloc_fail_at = 0;     // allocation number N fails ...
  int64_t alloc_fail_count = 1;  // ... and the (count - 1) after it (-1: every one from N)
  int64_t slow_kernel_ms = 0;    // launches stall this long ...
  int64_t slow_kernels = -1;     // ... the first this many (-1: all)
  int64_t slow_copy_out_ms = 0;  // copy-outs stall this long ...
  int64_t slow_copy_outs = -1;   // ... the first this many (-1: all)
  int64_t sticky_at = 0;         // launch number N meets a sticky device error
  int64_t leak_bytes_per_request = 0;
};

// "key=value,key=value" with the FaultSpec field names; INVALID_ARGUMENT naming the key or value
// that is not one. "" is no faults.
absl::StatusOr<FaultSpec> ParseFaultSpec(const std::string& text);

// A FaultSpec played back with atomic counters.
class ScriptedFaults final : public FaultInjector {
 public:
  explicit ScriptedFaults(const FaultSpec& spec) : spec_(spec) {}

  bool FailAllocation() override;
  absl::Duration KernelDelay() override;
  absl::Duration CopyOutDelay() override;
  bool StickyError() override;
  int64_t LeakBytesPerRequest() override { return spec_.leak_bytes_per_request; }

  // Steps seen so far (tests).
  int64_t allocations() const { return allocations_.load(); }
  int64_t launches() const { return launches_.load(); }

 private:
  const FaultSpec spec_;  // constant after construction
  std::atomic<int64_t> allocations_{0};
  std::atomic<int64_t> launches_{0};  // counted by KernelDelay (once per launch)
  std::atomic<int64_t> sticky_checks_{0};
  std::atomic<int64_t> copy_outs_{0};
};

// The status a launch answers when the injector makes its device error sticky, and the test the
// executors use to tell it from a real CUDA error (which they detect by asking CUDA again).
absl::Status InjectedStickyError();
bool IsInjectedStickyError(const absl::Status& status);

// The scenario a live attnd reads at start (only a build with ATTND_TEST_HOOKS asks):
// ATTND_TEST_FAULTS (a spec as above) and ATTND_TEST_LEAK_BYTES_PER_REQUEST (bytes). nullopt when
// neither is set.
absl::StatusOr<std::optional<FaultSpec>> FaultSpecFromEnvironment();

// Whether the call numbered `n` (1-based) falls in [first, first + count) (count -1: no end).
bool InWindow(int64_t n, int64_t first, int64_t count);

}  // namespace attnd::server::faults

#endif  // ATTND_SERVER_FAULTS_FAULT_INJECTOR_H_
