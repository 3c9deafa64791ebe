#include "server/executor/device_budget.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace attnd::server::executor {

int64_t PoolLimitBytes(const MemorySection& memory, int64_t device_total_bytes) {
  const int64_t total = std::max<int64_t>(device_total_bytes, 0);
  if (memory.device_bytes > 0) return std::min(memory.device_bytes, total);
  const double fraction = std::clamp(memory.device_fraction, 0.0, 1.0);
  return static_cast<int64_t>(std::floor(fraction * static_cast<double>(total)));
}

int64_t DeviceBudgetBytes(const DeviceMemoryReadings& r, int64_t safety_margin_bytes) {
  const int64_t used = std::max<int64_t>(r.pool_used_bytes, 0);
  const int64_t by_limit = r.pool_limit_bytes - used;
  const int64_t idle_in_pool = std::max<int64_t>(r.pool_reserved_bytes - used, 0);
  const int64_t by_device = std::max<int64_t>(r.device_free_bytes, 0) + idle_in_pool;
  return std::max<int64_t>(std::min(by_limit, by_device) - safety_margin_bytes, 0);
}

int64_t DeviceTensorBytes(const kernels::AttentionProblem& p) {
  const int64_t element = static_cast<int64_t>(kernels::DTypeSize(p.dtype));
  int64_t bytes =
      AlignDeviceBytes(p.q_elements() * element) + AlignDeviceBytes(p.k_elements() * element) +
      AlignDeviceBytes(p.v_elements() * element) + AlignDeviceBytes(p.out_elements() * element);
  if (p.has_bias) {
    bytes += AlignDeviceBytes(p.bias_elements() *
                              static_cast<int64_t>(kernels::DTypeSize(p.bias_dtype)));
  }
  if (p.has_kv_lengths) bytes += AlignDeviceBytes(p.batch * static_cast<int64_t>(sizeof(int64_t)));
  if (p.return_lse)
    bytes += AlignDeviceBytes(p.lse_elements() * static_cast<int64_t>(sizeof(float)));
  return bytes;
}

absl::Status PoolLedger::Take(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  if (bytes < 0 || bytes > limit_bytes_ - used_) {
    ++failures_;
    return absl::ResourceExhaustedError(absl::StrCat("the device pool cannot hand out ", bytes,
                                                     " bytes: ", used_, " of its limit of ",
                                                     limit_bytes_, " bytes are in use"));
  }
  used_ += bytes;
  peak_ = std::max(peak_, used_);
  return absl::OkStatus();
}

void PoolLedger::Give(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  used_ = std::max<int64_t>(used_ - bytes, 0);
}

void PoolLedger::CountFailure() {
  absl::MutexLock lock(&mu_);
  ++failures_;
}

int64_t PoolLedger::used_bytes() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

int64_t PoolLedger::peak_used_bytes() const {
  absl::MutexLock lock(&mu_);
  return peak_;
}

int64_t PoolLedger::failures() const {
  absl::MutexLock lock(&mu_);
  return failures_;
}

void PoolLedger::ResetPeak() {
  absl::MutexLock lock(&mu_);
  peak_ = used_;
}

}  // namespace attnd::server::executor
