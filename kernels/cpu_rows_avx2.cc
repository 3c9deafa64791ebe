// The row kernels for x86-64 CPUs with AVX2, FMA and F16C (x86-64-v3 has all three); CMake
// compiles this file with -mavx2 -mfma -mf16c -ffp-contract=fast and CpuRows() calls it only
// when the CPU reports all three.
// bench/RESULTS.md compares the two builds (attnd_cpu_bench --baseline-rows).
#define ATTND_ROWS_NAME "avx2"
#define ATTND_ROWS_ENTRY CpuRowsAvx2Impl
#define ATTND_ROWS_VEC_BYTES 32
#include "kernels/cpu_rows_impl.inc"
