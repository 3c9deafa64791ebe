// The row kernels for any x86-64 (or other) CPU: compiled with the project's default flags.
#define ATTND_ROWS_NAME "baseline"
#define ATTND_ROWS_ENTRY CpuRowsBaselineImpl
#define ATTND_ROWS_VEC_BYTES 16  // SSE2, in every x86-64 CPU
#include "kernels/cpu_rows_impl.inc"
