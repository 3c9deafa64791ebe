// The decode matrix of the fused variant's split-KV path (kernels/cuda/fused/split_kv.cuh): few
// query rows (Mq 1, 3, 16) against short and long key sequences (Mk 1, 77: the one-pass kernel;
// 1024, 1031, 8193 and longer: the split path), GQA (Hq 8 / Hkv 2, and 32 / 2) and MQA (Hkv 1),
// f16 and bf16, head dims 64, 80, 128, 256 and Dv != D, both layouts, causal either alignment,
// sliding windows, kv_lengths (0, partial, full), bias in every dtype and broadcast, a row biased
// to -inf everywhere, a sharp softmax, more splits than a warp has lanes, and the benchmark's
// decode shape scaled down. Plain C++: its CPU test (names unique, both routes present) runs
// everywhere.
#ifndef ATTND_TESTS_GPU_DECODE_CASES_H_
#define ATTND_TESTS_GPU_DECODE_CASES_H_

#include <vector>

#include "tests/gpu/gpu_cases.h"

namespace attnd::kernels::testing {

std::vector<GpuCase> DecodeMatrix();

}  // namespace attnd::kernels::testing

#endif  // ATTND_TESTS_GPU_DECODE_CASES_H_
