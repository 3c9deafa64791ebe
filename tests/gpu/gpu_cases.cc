#include "tests/gpu/gpu_cases.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels::testing {
namespace {

constexpr DType kDTypes[] = {DType::kF32, DType::kF16, DType::kBF16};

constexpr auto Base = BaseCase<GpuCase>;

// Every option on one dtype, on small_q × small_kv (a < b) shapes and swapped.
void AddOptionCases(DType dtype, const MatrixSizes& s, std::vector<GpuCase>* cases) {
  const int64_t a = s.small_q;
  const int64_t b = s.small_kv;
  const int64_t d = s.option_dim;
  const auto small = [&](int64_t q_len, int64_t kv_len) {
    return Base(dtype, 2, q_len, kv_len, 2, 2, d, d);
  };
  const std::pair<int64_t, int64_t> both_ways[] = {{a, b}, {b, a}};
  // Causal, both alignments, Mq < Mk and Mq > Mk.
  for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
    for (auto [mq, mk] : both_ways) {
      GpuCase c = small(mq, mk);
      c.problem.causal = causal;
      cases->push_back(c);
    }
  }
  // Sliding windows: two-sided without causal, one-sided, with causal.
  const int64_t windows[][3] = {{16, 8, 0}, {-1, 4, 0}, {16, -1, 2}, {0, 0, 1}, {5, 3, 1}};
  for (const auto& w : windows) {
    for (auto [mq, mk] : both_ways) {
      GpuCase c = small(mq, mk);
      c.problem.window_left = w[0];
      c.problem.window_right = w[1];
      c.problem.causal = static_cast<Causal>(w[2]);
      cases->push_back(c);
    }
  }
  // kv_lengths: an empty batch element and a partial one, full and 1, with causal bottom-right
  // (aligned to kv_lengths[b]) and a window; top-left with Mq > Mk.
  {
    GpuCase c = small(a, b);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, b / 3};
    cases->push_back(c);
    c.problem.causal = Causal::kBottomRight;
    c.kv_lengths = {b, 1};
    cases->push_back(c);
    c.kv_lengths = {b * 4 / 5, b / 2};
    c.problem.window_left = 10;
    cases->push_back(c);
    c = small(b, a);
    c.problem.has_kv_lengths = true;
    c.problem.causal = Causal::kTopLeft;
    c.kv_lengths = {a / 2, a};
    cases->push_back(c);
  }
  // Every bias broadcast, in every bias dtype.
  const int64_t bias_shapes[][4] = {{2, 2, a, b}, {1, 2, a, b}, {2, 1, a, b}, {1, 1, a, b},
                                    {1, 1, 1, b}, {1, 1, a, 1}, {2, 2, 1, 1}};
  for (const auto& shape : bias_shapes) {
    for (DType bias_dtype : kDTypes) {
      GpuCase c = small(a, b);
      SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
      cases->push_back(c);
    }
  }
  // A query row whose bias is -inf everywhere sees no key: output 0, LSE -inf.
  {
    GpuCase c = small(a, b);
    SetBias(&c, dtype, 1, 1, a, b);
    c.neg_inf_bias_row = 5;
    cases->push_back(c);
  }
  // GQA and MQA, both layouts.
  for (Layout layout : {Layout::kBMHK, Layout::kBHMK}) {
    GpuCase c = Base(dtype, 2, a, b, 6, 2, s.odd_dim, s.odd_dim);
    c.problem.layout = layout;
    c.problem.causal = Causal::kBottomRight;
    cases->push_back(c);
    c = Base(dtype, 1, b, a, 4, 1, d, s.dim_pairs[0].second);
    c.problem.layout = layout;
    SetBias(&c, DType::kF32, 1, 4, b, a);
    cases->push_back(c);
  }
  // BHMK with everything at once.
  {
    GpuCase c = small(a, b);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kTopLeft;
    c.problem.window_left = 30;
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {b * 3 / 4, b};
    SetBias(&c, dtype, 2, 1, a, b);
    c.q_chunk = 32;
    c.kv_chunk = 40;
    cases->push_back(c);
  }
  // Dv != D, without the LSE.
  for (auto [dq, dv] : s.dim_pairs) {
    GpuCase c = Base(dtype, 2, a, b, 2, 2, dq, dv);
    c.problem.return_lse = false;
    cases->push_back(c);
  }
  // A sharp softmax (scale 1: scores ~ N(0, D)) exercises the running-max rescale.
  {
    GpuCase c = small(a, s.large ? 1025 : b);
    c.problem.scale = 1.0;
    c.kv_chunk = s.large ? 100 : 5;
    cases->push_back(c);
  }
  // Chunk overrides: many tiles with ragged tails, one row or one key per tile.
  const int64_t chunks[][2] = {{16, 32}, {7, 13}, {a, 1}, {1, b}, {33, b - 1}};
  for (const auto& ch : chunks) {
    GpuCase c = small(a, b);
    c.problem.causal = Causal::kBottomRight;
    c.problem.window_left = 40;
    c.q_chunk = ch[0];
    c.kv_chunk = ch[1];
    cases->push_back(c);
  }
}

}  // namespace

MatrixSizes GpuSizes() {
  MatrixSizes s;
  s.head_dims = {59, 111, 64, 128, 256, 512};
  s.lengths = {{1, 97}, {97, 1}, {97, 97}, {97, 1025}, {1025, 97}};
  s.dim_pairs = {{64, 111}, {59, 64}, {128, 512}, {512, 256}};
  s.small_q = 97;
  s.small_kv = 161;
  s.option_dim = 64;
  s.odd_dim = 59;
  s.tile_q = 40;
  s.tile_kv = 72;
  s.large = true;
  return s;
}

MatrixSizes FusedSizes() {
  MatrixSizes s;
  s.head_dims = {8, 40, 72, 80, 96, 160, 200, 256};
  s.lengths = {{1, 97}, {97, 1}, {129, 129}, {130, 1025}, {1025, 67}};
  s.dim_pairs = {{64, 96}, {160, 32}};
  s.small_q = 97;
  s.small_kv = 161;
  s.option_dim = 96;
  s.odd_dim = 40;
  s.tile_q = 40;
  s.tile_kv = 72;
  s.large = false;
  return s;
}

// The wide kernel's head dims (kernels/cuda/fused/wgmma_wide_kernel.cuh: 16-bit, 264-512, padded
// to 512): odd lengths over several CTAs and blocks, every option of the API at D 512, D != Dv
// both ways. 16-bit only: f32 at D 512 is the cuBLAS variants' (the Matrix suite's), and with
// scale 1 there its scores (~±30) carry f32 rounding of ~5e-4 beyond the comparison's tolerance
// (H100, 2026-12-07).
MatrixSizes WideSizes() {
  MatrixSizes s;
  s.head_dims = {264, 392, 512};
  s.lengths = {{1, 97}, {97, 1}, {129, 129}, {130, 1025}, {1025, 67}};
  s.dim_pairs = {{512, 264}, {136, 512}};
  s.small_q = 97;
  s.small_kv = 161;
  s.option_dim = 512;
  s.odd_dim = 264;
  s.tile_q = 40;
  s.tile_kv = 72;
  s.large = false;
  s.sixteen_bit_only = true;
  return s;
}

MatrixSizes EmulationSizes() {
  MatrixSizes s;
  s.head_dims = {5, 8};
  s.lengths = {{1, 13}, {13, 1}, {13, 13}, {9, 29}, {29, 9}};
  s.dim_pairs = {{8, 11}, {5, 8}};
  s.small_q = 13;
  s.small_kv = 21;
  s.option_dim = 8;
  s.odd_dim = 5;
  s.tile_q = 4;
  s.tile_kv = 6;
  s.large = false;
  return s;
}

std::vector<GpuCase> MakeMatrix(const MatrixSizes& s) {
  std::vector<GpuCase> cases;
  for (DType dtype : kDTypes) {
    if (s.sixteen_bit_only && dtype == DType::kF32) continue;
    for (int64_t d : s.head_dims) {
      for (auto [mq, mk] : s.lengths) cases.push_back(Base(dtype, 2, mq, mk, 2, 2, d, d));
    }
    cases.push_back(Base(dtype, 1, 1, 1, 1, 1, s.option_dim, s.option_dim));
    AddOptionCases(dtype, s, &cases);
  }
  if (s.large) {
    GpuCase c = Base(DType::kF32, 1, 1025, 1025, 1, 1, 64, 64);
    c.problem.causal = Causal::kBottomRight;
    cases.push_back(c);
    c = Base(DType::kBF16, 1, 1025, 1025, 2, 2, 128, 128);
    cases.push_back(c);
    c = Base(DType::kF16, 1, 1025, 1025, 4, 2, 111, 64);
    c.problem.layout = Layout::kBHMK;
    c.problem.causal = Causal::kTopLeft;
    cases.push_back(c);
    // Rows longer than a warp's share (block-per-row kernels) in every variant, causal pruning.
    c = Base(DType::kBF16, 1, 2048, 2048, 8, 8, 128, 128);
    c.problem.causal = Causal::kTopLeft;
    c.q_chunk = 512;
    c.kv_chunk = 1536;
    cases.push_back(c);
    // Rows of 4097-8192 columns (the 32-register cached row kernels): naive, sliced and the
    // kv_chunk-5000 chunked run; the planner's 4096 tiles leave a ragged tail.
    c = Base(DType::kF16, 1, 64, 4500, 2, 1, 64, 64);
    c.problem.causal = Causal::kBottomRight;
    SetBias(&c, DType::kBF16, 1, 2, 64, 4500);
    c.q_chunk = 24;
    c.kv_chunk = 4500;
    cases.push_back(c);
    c = Base(DType::kF32, 2, 33, 5000, 2, 2, 59, 59);
    c.problem.layout = Layout::kBHMK;
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {4999, 3000};
    c.problem.window_left = 4000;
    c.q_chunk = 16;
    c.kv_chunk = 5000;
    cases.push_back(c);
    // Rows longer than a block holds in registers (8192 columns): the streamed two-pass row
    // kernels, with a bias and a mask cutting into the row.
    c = Base(DType::kBF16, 1, 24, 8300, 2, 1, 40, 40);
    c.problem.causal = Causal::kBottomRight;
    SetBias(&c, DType::kF16, 1, 2, 24, 8300);
    c.q_chunk = 8;
    c.kv_chunk = 8300;
    cases.push_back(c);
  }
  return cases;
}

std::vector<GpuCase> BiasTileCases() {
  std::vector<GpuCase> cases;
  const DType k16[] = {DType::kF16, DType::kBF16};
  for (DType dtype : k16) {
    // Every broadcast at each tile shape (D 64: 64-key blocks; 128: 32 keys, two m-tiles; 256:
    // one m-tile), on rows whose bytes are multiples of 16 (Mk 160).
    for (int64_t d : {64, 128, 256}) {
      const int64_t shapes[][4] = {
          {2, 2, 130, 160}, {1, 2, 130, 160}, {2, 1, 1, 160}, {1, 1, 130, 1}};
      const DType bias_dtypes[] = {DType::kF32, DType::kBF16, DType::kF16, DType::kBF16};
      for (int i = 0; i < 4; ++i) {
        GpuCase c = Base(dtype, 2, 130, 160, 2, 2, d, d);
        SetBias(&c, bias_dtypes[i], shapes[i][0], shapes[i][1], shapes[i][2], shapes[i][3]);
        cases.push_back(c);
      }
    }
    // Rows that start anywhere in a 16-byte piece: an odd Mk, in every bias dtype, over several
    // blocks and CTAs; the tensor's last piece is partial.
    for (DType bias_dtype : kDTypes) {
      GpuCase c = Base(dtype, 2, 200, 157, 2, 2, 128, 128);
      SetBias(&c, bias_dtype, 2, 2, 200, 157);
      cases.push_back(c);
    }
    // A window moves each CTA's first key off a multiple of 8; with causal bottom-right.
    {
      GpuCase c = Base(dtype, 1, 300, 300, 2, 2, 128, 128);
      c.problem.window_left = 37;
      c.problem.causal = Causal::kBottomRight;
      SetBias(&c, DType::kF32, 1, 2, 300, 300);
      cases.push_back(c);
    }
    // kv_lengths (an element of 45 keys) with causal top-left.
    {
      GpuCase c = Base(dtype, 2, 130, 160, 2, 2, 128, 128);
      c.problem.has_kv_lengths = true;
      c.kv_lengths = {160, 45};
      c.problem.causal = Causal::kTopLeft;
      SetBias(&c, dtype, 2, 2, 130, 160);
      cases.push_back(c);
    }
    // A row whose bias is -inf everywhere; a negative and a sharp scale (the accumulator starts
    // at bias / scale); GQA in BHMK.
    {
      GpuCase c = Base(dtype, 2, 130, 160, 2, 2, 128, 128);
      SetBias(&c, DType::kBF16, 1, 1, 130, 160);
      c.neg_inf_bias_row = 5;
      cases.push_back(c);
      c = Base(dtype, 2, 130, 160, 2, 2, 64, 64);
      SetBias(&c, DType::kF32, 2, 2, 130, 160);
      c.problem.scale = -0.25;
      cases.push_back(c);
      c.problem.scale = 1.0;
      cases.push_back(c);
      c = Base(dtype, 1, 130, 160, 4, 2, 96, 96);
      c.problem.layout = Layout::kBHMK;
      SetBias(&c, DType::kF16, 1, 4, 130, 160);
      cases.push_back(c);
    }
    // Many blocks and CTAs: a dense bias at D 128, 1000 × 1003.
    {
      GpuCase c = Base(dtype, 1, 1000, 1003, 2, 2, 128, 128);
      SetBias(&c, dtype, 1, 2, 1000, 1003);
      cases.push_back(c);
    }
    // The same with Mk 1000 (rows 16-byte aligned): the warp-specialised kernel's TMA bias tiles
    // (kernels/cuda/fused/ws_bias_tiles.h), in both 16-bit dtypes, at D 64 and 256 too, a last
    // CTA with rows past Mq; and with a window and causal bottom-right, so that blocks start off
    // a multiple of 8 keys.
    for (int64_t d : {64, 128, 256}) {
      GpuCase c = Base(dtype, 2, 1000, 1000, 2, 2, d, d);
      SetBias(&c, d == 128 ? dtype : (dtype == DType::kF16 ? DType::kBF16 : DType::kF16), 2, 2,
              1000, 1000);
      cases.push_back(c);
    }
    {
      GpuCase c = Base(dtype, 1, 300, 304, 2, 2, 128, 128);
      c.problem.window_left = 37;
      c.problem.causal = Causal::kBottomRight;
      SetBias(&c, dtype, 1, 2, 300, 304);
      cases.push_back(c);
    }
  }
  return cases;
}

std::vector<VariantRun> RunsFor(const GpuCase& c, const MatrixSizes& s) {
  const int64_t tile_q = c.q_chunk > 0 ? c.q_chunk : s.tile_q;
  const int64_t tile_kv = c.kv_chunk > 0 ? c.kv_chunk : s.tile_kv;
  return {
      {Variant::kNaive, 0, 0, "naive"},
      {Variant::kSliced, tile_q, 0, absl::StrCat("sliced q", tile_q)},
      {Variant::kChunked, 0, 0, "chunked (planner's chunks)"},
      {Variant::kChunked, tile_q, tile_kv, absl::StrCat("chunked q", tile_q, " kv", tile_kv)},
  };
}

absl::StatusOr<Plan> PlanFor(const AttentionProblem& p, const VariantRun& run) {
  Capabilities caps;
  caps.is_cuda = true;
  caps.variants = {Variant::kNaive, Variant::kSliced, Variant::kChunked, Variant::kFused};
  caps.threads = cuda::kCudaLanes;  // as the CUDA executor offers: slices spread over two lanes
  PlannerConfig config;
  config.forced_variant = run.variant;
  config.q_chunk_override = run.q_chunk;
  config.kv_chunk_override = run.kv_chunk;
  return MakePlan(p, caps, int64_t{16} << 30, config);
}

OwnedTensors MakeCaseTensors(const GpuCase& c) {
  const AttentionProblem& p = c.problem;
  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(CaseName(c))));
  OwnedTensors t = MakeTensors(p, &rng);
  t.kv_lengths = c.kv_lengths;
  t.q_offsets = c.q_offsets;
  t.kv_offsets = c.kv_offsets;
  if (c.neg_inf_bias_row >= 0) {
    // The bias is [1, 1, Mq, Mk] in these cases.
    for (int64_t j = 0; j < p.bias_shape[3]; ++j) {
      StoreFromFloat(t.bias.data(), p.bias_dtype, c.neg_inf_bias_row * p.bias_shape[3] + j,
                     -std::numeric_limits<float>::infinity());
    }
  }
  return t;
}

ReferenceResult ParallelReference(const AttentionProblem& p, const AttentionTensors& t) {
  const int64_t threads = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 16);
  const int64_t parts = std::min(threads, p.q_len);
  const int64_t per = (p.q_len + parts - 1) / parts;
  std::vector<ReferenceResult> partial(static_cast<size_t>(parts));
  std::vector<std::thread> workers;
  for (int64_t i = 0; i < parts; ++i) {
    const int64_t begin = std::min(p.q_len, i * per);
    const int64_t end = std::min(p.q_len, begin + per);
    workers.emplace_back([&, i, begin, end] {
      (void)ReferenceAttention(p, t, &partial[static_cast<size_t>(i)], begin, end);
    });
  }
  for (std::thread& w : workers) w.join();
  // Rows outside a part's range are 0 in it (out and LSE), so the parts add up to the whole.
  ReferenceResult result = partial[0];
  for (size_t i = 1; i < partial.size(); ++i) {
    for (size_t x = 0; x < result.out.size(); ++x) result.out[x] += partial[i].out[x];
    for (size_t x = 0; x < result.lse.size(); ++x) result.lse[x] += partial[i].lse[x];
  }
  return result;
}

std::string CheckNegInfRow(const GpuCase& c, const OwnedTensors& got) {
  if (c.neg_inf_bias_row < 0) return "";
  const AttentionProblem& p = c.problem;
  const SeqHeadStrides out = SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.v_head_dim);
  std::ostringstream errors;
  const int64_t i = c.neg_inf_bias_row;
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t x = 0; x < p.v_head_dim; ++x) {
        const float v = LoadAsFloat(got.out.data(), p.dtype, out.Row(b, i, h) + x);
        if (v != 0.0f)
          errors << "out[b=" << b << ", i=" << i << ", h=" << h << ", x=" << x << "] = " << v
                 << " (want exactly 0)\n";
      }
      const float lse = got.lse[static_cast<size_t>((b * p.q_heads + h) * p.q_len + i)];
      if (!(std::isinf(lse) && lse < 0)) {
        errors << "lse[b=" << b << ", h=" << h << ", i=" << i << "] = " << lse << " (want -inf)\n";
      }
    }
  }
  return errors.str();
}

}  // namespace attnd::kernels::testing
