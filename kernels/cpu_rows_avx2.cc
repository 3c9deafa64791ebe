// The row kernels for x86-64 CPUs with AVX2 and FMA (x86-64-v3); CMake compiles this file with
// -mavx2 -mfma and CpuRows() calls it only when the CPU reports both. Measured at D=64,
// Mq=Mk=4096 f32 on 2 cores (bench/RESULTS.md): about 1.35x the baseline build's throughput.
#define ATTND_ROWS_NAME "avx2"
#define ATTND_ROWS_ENTRY CpuRowsAvx2Impl
#define ATTND_ROWS_VEC_BYTES 32
#include "kernels/cpu_rows_impl.inc"
