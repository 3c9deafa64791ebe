// The vectorised inner loops of cpu_chunked: the online-softmax update of one query row against
// one key/value tile, and a fast exp. Built twice from cpu_rows_impl.inc (baseline x86-64 and
// AVX2+FMA); CpuRows() picks the best the running CPU supports, once.
#ifndef ATTND_KERNELS_CPU_ROWS_H_
#define ATTND_KERNELS_CPU_ROWS_H_

#include <cstdint>

namespace attnd::kernels {

struct SoftmaxRowArgs {
  float* scores = nullptr;  // [n] scale·q·kᵀ of one query row against the tile; P on return
  int64_t n = 0;            // keys in the tile
  int64_t lo = 0;           // visible keys of the row, tile-relative: 0 <= lo < hi <= n
  int64_t hi = 0;
  const float* bias = nullptr;  // [n] added to the scores, or null
  float bias_scalar = 0.0f;     // added to every score (a bias broadcast over keys)
  float* row_max = nullptr;     // running max m of the row (-inf before its first key)
  float* row_sum = nullptr;     // running sum l
  float* acc = nullptr;         // [dv] running output row, rescaled by exp(m_old - m_new)
  int64_t dv = 0;
};

struct CpuRowKernels {
  const char* name;  // "avx2" or "baseline"
  // One online-softmax step: adds the bias, takes the new max over [lo, hi), writes
  // P = exp(s - m_new) there and 0 outside, updates m and l and rescales acc. A row whose max
  // stays -inf (every visible score -inf) gets P = 0 and keeps m = -inf, l = 0.
  void (*online_softmax_row)(const SoftmaxRowArgs& args);
  // x[i] = exp(x[i]) for i < n; relative error < 2e-7, exp(-inf) = 0. For x <= 88.
  void (*exp_inplace)(float* x, int64_t n);
  // dst[i] = f16 element i of src (any alignment): F16C in the AVX2 build; exactly HalfToFloat.
  void (*half_to_float)(const void* src, int64_t n, float* dst);
};

// The kernels for this CPU (AVX2+FMA+F16C when present).
const CpuRowKernels& CpuRows();
// Both builds, for tests that hold them against each other: null when the CPU lacks
// AVX2/FMA/F16C.
const CpuRowKernels& CpuRowsBaseline();
const CpuRowKernels* CpuRowsAvx2();
// Tests only: makes CpuRows() return `kernels` (null restores the automatic choice), so the
// baseline build can be held against the reference on a CPU that has AVX2.
void SetCpuRowsForTesting(const CpuRowKernels* kernels);

}  // namespace attnd::kernels

#endif  // ATTND_KERNELS_CPU_ROWS_H_
