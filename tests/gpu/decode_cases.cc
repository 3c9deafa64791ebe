#include "tests/gpu/decode_cases.h"

#include <cstdint>
#include <vector>

#include "kernels/problem.h"
#include "tests/gpu/gpu_cases.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels::testing {
namespace {

constexpr auto Base = BaseCase<GpuCase>;

// B 2, Hq 8, Hkv 2 (group 4), D = Dv = 128 unless a case says otherwise.
GpuCase Gqa(DType dtype, int64_t q_len, int64_t kv_len) {
  return Base(dtype, 2, q_len, kv_len, 8, 2, 128, 128);
}

// Every option of the API on the split path (and a few on the one-pass kernel), for one dtype.
void AddOptionCases(DType dtype, std::vector<GpuCase>* cases) {
  // MQA: the group (8 heads) times Mq spans 1, 2 and 8 row tiles; a tile boundary falls inside
  // a head's rows at Mq 3.
  for (int64_t mq : {1, 3, 16}) cases->push_back(Base(dtype, 2, mq, 1031, 8, 1, 128, 128));
  cases->push_back(Base(dtype, 1, 16, 8193, 8, 1, 64, 64));
  // A large group: Hq 32 / Hkv 2, 256 rows per kv head (16 row tiles).
  cases->push_back(Base(dtype, 1, 16, 2048, 32, 2, 64, 64));
  // Dv != D (padded dim from the larger), one without the LSE.
  cases->push_back(Base(dtype, 2, 3, 1031, 8, 2, 64, 128));
  cases->push_back(Base(dtype, 2, 1, 8193, 8, 2, 256, 64));
  {
    GpuCase c = Base(dtype, 2, 16, 1024, 8, 2, 40, 96);
    c.problem.return_lse = false;
    cases->push_back(c);
  }
  // BHMK (PyTorch's layout), with GQA and with MQA.
  for (int64_t mq : {1, 16}) {
    GpuCase c = Gqa(dtype, mq, 1031);
    c.problem.layout = Layout::kBHMK;
    cases->push_back(c);
  }
  {
    GpuCase c = Base(dtype, 2, 3, 8193, 8, 1, 80, 80);
    c.problem.layout = Layout::kBHMK;
    cases->push_back(c);
  }
  // Causal, both alignments: top-left rows see only keys <= i (a few keys: one split works, the
  // others see nothing), bottom-right rows see nearly all.
  for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
    for (int64_t mq : {1, 3, 16}) {
      for (int64_t mk : {1031, 8193}) {
        GpuCase c = Gqa(dtype, mq, mk);
        c.problem.causal = causal;
        cases->push_back(c);
      }
    }
  }
  // Sliding windows: causal with a left bound, two-sided without causal, one-sided, top-left.
  const int64_t windows[][3] = {{300, 0, 2}, {100, 50, 0}, {-1, 0, 0}, {2000, -1, 1}, {0, 0, 2}};
  for (const auto& w : windows) {
    for (int64_t mq : {3, 16}) {
      GpuCase c = Gqa(dtype, mq, 8193);
      c.problem.window_left = w[0];
      c.problem.window_right = w[1];
      c.problem.causal = static_cast<Causal>(w[2]);
      cases->push_back(c);
    }
  }
  // kv_lengths: an empty batch element and a partial one; both empty; full and partial with
  // causal bottom-right (aligned to kv_lengths[b]); one key and a window; top-left.
  {
    GpuCase c = Gqa(dtype, 3, 1031);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, 700};
    cases->push_back(c);
    c = Gqa(dtype, 16, 1024);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, 0};
    cases->push_back(c);
    c = Gqa(dtype, 16, 8193);
    c.problem.has_kv_lengths = true;
    c.problem.causal = Causal::kBottomRight;
    c.kv_lengths = {8193, 5000};
    cases->push_back(c);
    c = Gqa(dtype, 1, 1031);
    c.problem.has_kv_lengths = true;
    c.problem.window_left = 100;
    c.kv_lengths = {1, 1024};
    cases->push_back(c);
    c = Gqa(dtype, 16, 1031);
    c.problem.has_kv_lengths = true;
    c.problem.causal = Causal::kTopLeft;
    c.kv_lengths = {10, 1031};
    cases->push_back(c);
  }
  // Every bias broadcast, in every bias dtype (Mk odd: the pair loads fall back on odd offsets).
  const int64_t mq = 3;
  const int64_t mk = 1031;
  const int64_t bias_shapes[][4] = {{2, 8, mq, mk}, {1, 8, mq, mk}, {2, 1, mq, mk},
                                    {1, 1, 1, mk},  {2, 8, 1, 1},   {1, 1, mq, 1}};
  for (const auto& shape : bias_shapes) {
    for (DType bias_dtype : {DType::kF32, DType::kF16, DType::kBF16}) {
      GpuCase c = Gqa(dtype, mq, mk);
      SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
      cases->push_back(c);
    }
  }
  // Everything at once: BHMK, bias, causal bottom-right, kv_lengths, a window.
  {
    GpuCase c = Gqa(dtype, 16, 8193);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kBottomRight;
    c.problem.window_left = 3000;
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {7000, 8193};
    SetBias(&c, DType::kBF16, 2, 1, 16, 8193);
    cases->push_back(c);
  }
  // A query row whose bias is -inf everywhere sees no key: output 0, LSE -inf.
  {
    GpuCase c = Gqa(dtype, 16, 1031);
    SetBias(&c, dtype, 1, 1, 16, 1031);
    c.neg_inf_bias_row = 5;
    cases->push_back(c);
  }
  // A sharp softmax (scale 1: scores ~ N(0, D)): the splits' maxima differ widely.
  {
    GpuCase c = Gqa(dtype, 1, 8193);
    c.problem.scale = 1.0;
    cases->push_back(c);
  }
  // One (b, kv head, tile): the split rule takes 61 splits, more than a warp's lanes.
  cases->push_back(Base(dtype, 1, 1, 16384, 4, 1, 128, 128));
  // The benchmark's decode shape (Hq 32, Hkv 8, Mq 1, D 128) at B 4 and Mk 8192.
  cases->push_back(Base(dtype, 4, 1, 8192, 32, 8, 128, 128));
  // Mq 17 is not decode: the one-pass kernel, as before.
  cases->push_back(Gqa(dtype, 17, 1031));
  // Dense 16-bit biases with Mk a multiple of 8: the warp-specialised kernel copies them as TMA
  // tiles (kernels/cuda/fused/ws_bias_tiles.h). One CTA a head with rows past Mq; then two, a
  // window (blocks that start off a multiple of 8 keys) and the other 16-bit bias dtype. Here
  // because device_check.sh's racecheck runs this suite, which launches only the fused kernels.
  {
    GpuCase c = Gqa(dtype, 17, 1024);
    SetBias(&c, dtype, 2, 8, 17, 1024);
    cases->push_back(c);
    c = Gqa(dtype, 200, 1024);
    c.problem.causal = Causal::kBottomRight;
    c.problem.window_left = 37;
    SetBias(&c, dtype == DType::kF16 ? DType::kBF16 : DType::kF16, 1, 8, 200, 1024);
    cases->push_back(c);
  }
}

}  // namespace

std::vector<GpuCase> DecodeMatrix() {
  std::vector<GpuCase> cases;
  for (DType dtype : {DType::kF16, DType::kBF16}) {
    // Sizes: each query count against each key count at each padded dim tested.
    for (int64_t d : {64, 80, 128, 256}) {
      for (int64_t mq : {1, 3, 16}) {
        for (int64_t mk : {1, 77, 1024, 1031, 8193}) {
          cases.push_back(Base(dtype, 2, mq, mk, 8, 2, d, d));
        }
      }
    }
    AddOptionCases(dtype, &cases);
  }
  return cases;
}

}  // namespace attnd::kernels::testing
