// The host-side arithmetic of a GPU's memory, apart from CUDA so that it is unit-tested without
// a GPU: the pool's limit, the pool's ledger (what it has handed out, refusing past the limit),
// the live budget the planner gets, and the device bytes a request's own tensors take.
//
// Worked example (the memory promise): an H100 (79.1 GiB) with memory.device_bytes =
// 4 GiB and the default 64 MiB margin. Idle: limit 4 GiB, used 0, reserved 0, cudaMemGetInfo
// free 78 GiB → budget min(4 GiB − 0, 78 GiB + 0) − 64 MiB = 3.94 GiB. A B=1 H=8 M=65536 D=128
// bf16 request brings q, k, v and out of 128 MiB each (512 MiB on the device), so the planner
// sees 3.44 GiB. With a second process holding all but 3 GiB of the card (and attnd's own
// context taking some of those), free falls to ~2.5 GiB and the planner sees ~1.9 GiB.
#ifndef ATTND_SERVER_EXECUTOR_DEVICE_BUDGET_H_
#define ATTND_SERVER_EXECUTOR_DEVICE_BUDGET_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "kernels/problem.h"
#include "server/config/config.h"

namespace attnd::server::executor {

// Every device buffer attnd takes is a multiple of this (cuBLAS and cuDNN want 256-byte
// aligned pointers; RunCuda's workspace contract says so).
inline constexpr int64_t kDeviceAlignment = 256;

inline int64_t AlignDeviceBytes(int64_t bytes) {
  return (bytes + kDeviceAlignment - 1) / kDeviceAlignment * kDeviceAlignment;
}

// The pool's limit on a card of `device_total_bytes`: memory.device_bytes when non-zero
// (capped by the card), else memory.device_fraction of the card.
int64_t PoolLimitBytes(const MemorySection& memory, int64_t device_total_bytes);

// What the live budget is computed from, read at one moment.
struct DeviceMemoryReadings {
  int64_t pool_limit_bytes = 0;  // PoolLimitBytes
  int64_t pool_used_bytes = 0;   // handed out by the pool now (all workers' requests)
  int64_t pool_reserved_bytes =
      0;  // held by the pool from the driver (cudaMemPoolAttrReservedMemCurrent)
  int64_t device_free_bytes = 0;  // cudaMemGetInfo's free: what the driver can still give
};

// The planner's budget, a pure function:
//   min(limit − used, free + (reserved − used)) − safety_margin, never below 0.
// The pool's reserved-but-unused memory is not in the driver's free bytes but the pool can hand
// it out again without asking the driver, so it counts on the device side.
int64_t DeviceBudgetBytes(const DeviceMemoryReadings& readings, int64_t safety_margin_bytes);

// Device bytes a request's own tensors take while it runs (q, k, v, bias, kv_lengths, out, lse;
// each aligned to kDeviceAlignment). The budget the planner sees is the live budget minus this.
int64_t DeviceTensorBytes(const kernels::AttentionProblem& problem);

// The pool's books: bytes handed out, their peak, and refusals. Thread-safe.
class PoolLedger {
 public:
  explicit PoolLedger(int64_t limit_bytes) : limit_bytes_(limit_bytes) {}

  // Books `bytes` when used + bytes stays within the limit; otherwise counts a failure and
  // returns RESOURCE_EXHAUSTED naming the sizes.
  absl::Status Take(int64_t bytes);
  // Returns bytes booked by Take.
  void Give(int64_t bytes);
  // Counts an allocation that the ledger allowed but the device then refused.
  void CountFailure();

  int64_t limit_bytes() const { return limit_bytes_; }
  int64_t used_bytes() const;
  int64_t peak_used_bytes() const;
  int64_t failures() const;
  // The peak starts again from what is used now (tests and benchmarks measure one request).
  void ResetPeak();

 private:
  const int64_t limit_bytes_;  // constant after construction

  mutable absl::Mutex mu_;
  int64_t used_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t peak_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t failures_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_DEVICE_BUDGET_H_
