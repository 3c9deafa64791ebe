#include "kernels/cpu_rows.h"

#include <atomic>

#if defined(ATTND_HAVE_AVX2_ROWS)
#include <cpuid.h>
#endif

namespace attnd::kernels {

const CpuRowKernels& CpuRowsBaselineImpl();
#if defined(ATTND_HAVE_AVX2_ROWS)
const CpuRowKernels& CpuRowsAvx2Impl();
#endif

namespace {
std::atomic<const CpuRowKernels*> forced_rows{nullptr};

#if defined(ATTND_HAVE_AVX2_ROWS)
// CPUID leaf 1, ECX bit 29. Asked directly: clang 14's __builtin_cpu_supports has no "f16c"
// (gcc's has), and the fuzz build (scripts/fuzz.sh) compiles this file with clang.
bool HasF16c() {
  unsigned int eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
}
#endif
}  // namespace

const CpuRowKernels& CpuRowsBaseline() { return CpuRowsBaselineImpl(); }

const CpuRowKernels* CpuRowsAvx2() {
#if defined(ATTND_HAVE_AVX2_ROWS)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                                HasF16c();
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
