#include "kernels/cpu_rows.h"

#include <atomic>

namespace attnd::kernels {

const CpuRowKernels& CpuRowsBaselineImpl();
#if defined(ATTND_HAVE_AVX2_ROWS)
const CpuRowKernels& CpuRowsAvx2Impl();
#endif

namespace {
std::atomic<const CpuRowKernels*> forced_rows{nullptr};
}  // namespace

const CpuRowKernels& CpuRowsBaseline() { return CpuRowsBaselineImpl(); }

const CpuRowKernels* CpuRowsAvx2() {
#if defined(ATTND_HAVE_AVX2_ROWS)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                __builtin_cpu_supports("f16c");
  if (supported) return &CpuRowsAvx2Impl();
#endif
  return nullptr;
}

const CpuRowKernels& CpuRows() {
  static const CpuRowKernels& chosen =
      CpuRowsAvx2() != nullptr ? *CpuRowsAvx2() : CpuRowsBaseline();
  const CpuRowKernels* forced = forced_rows.load(std::memory_order_relaxed);
  return forced != nullptr ? *forced : chosen;
}

void SetCpuRowsForTesting(const CpuRowKernels* kernels) {
  forced_rows.store(kernels, std::memory_order_relaxed);
}

}  // namespace attnd::kernels
