#include "kernels/cpu_rows.h"

namespace attnd::kernels {

const CpuRowKernels& CpuRowsBaselineImpl();
#if defined(ATTND_HAVE_AVX2_ROWS)
const CpuRowKernels& CpuRowsAvx2Impl();
#endif

const CpuRowKernels& CpuRowsBaseline() { return CpuRowsBaselineImpl(); }

const CpuRowKernels* CpuRowsAvx2() {
#if defined(ATTND_HAVE_AVX2_ROWS)
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (supported) return &CpuRowsAvx2Impl();
#endif
  return nullptr;
}

const CpuRowKernels& CpuRows() {
  static const CpuRowKernels& chosen =
      CpuRowsAvx2() != nullptr ? *CpuRowsAvx2() : CpuRowsBaseline();
  return chosen;
}

}  // namespace attnd::kernels
