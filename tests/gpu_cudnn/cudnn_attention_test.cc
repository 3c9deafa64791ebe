// The `cudnn` variant against the float64 reference: f16/bf16, head dims 64/80/96/128/160 (and
// 59, 111 and f32, which cuDNN must refuse rather than get wrong), lengths 1, 97, 161 and 1025,
// both layouts, GQA/MQA, causal both alignments with Mq != Mk both ways, windows, kv_lengths
// (0, partial, full), bias broadcasts and dtypes, a bias row of -inf, LSE on and off. For each case
// cuDNN is asked first: where it says yes the answer must match the reference; where it says no,
// RunCudnn must refuse too. Every case prints one "[cudnn]" line (errors or cuDNN's reason).
// Without a CUDA device every test here skips, visibly.
#include "kernels/cuda/cudnn/cudnn_attention.h"

#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <iostream>
#include <limits>
#include <ostream>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "kernels/cpu_attention.h"
#include "kernels/cuda/cuda_attention.h"
#include "kernels/device_query.h"
#include "kernels/dtype_convert.h"
#include "kernels/planner.h"
#include "kernels/problem.h"
#include "kernels/tensor_index.h"
#include "tests/kernels/test_util.h"

namespace attnd::kernels::cuda {
namespace {

using kernels::testing::CaseName;
using kernels::testing::MakeTensors;
using kernels::testing::OwnedTensors;
using kernels::testing::SetBias;
using kernels::testing::Tolerance;
using kernels::testing::ToleranceFor;

// One stream and one cuDNN handle for the whole binary (never destroyed: no cuDNN call at exit).
// Null without a device.
const CudaContext* SharedContext() {
  static const CudaContext* context = []() -> const CudaContext* {
    if (CudaDeviceCount() == 0) return nullptr;
    auto* c = new CudaContext;
    cudaStream_t stream = nullptr;
    if (cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) != cudaSuccess) return nullptr;
    c->stream = stream;
    if (!CreateCudnnHandle(c->stream, &c->cudnn).ok()) return nullptr;
    return c;
  }();
  return context;
}

#define SKIP_WITHOUT_GPU()                                                       \
  do {                                                                           \
    if (SharedContext() == nullptr) {                                            \
      GTEST_SKIP() << "no CUDA device (or no cuDNN on it): cuDNN tests not run"; \
    }                                                                            \
  } while (false)

// A device allocation, freed on destruction.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(int64_t bytes) {
    if (bytes > 0 && cudaMalloc(&ptr_, static_cast<size_t>(bytes)) != cudaSuccess) ptr_ = nullptr;
  }
  ~DeviceBuffer() {
    if (ptr_ != nullptr) cudaFree(ptr_);
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
};

// Returns once the bytes are on the device: a pageable cudaMemcpy runs on the legacy stream,
// which the context's non-blocking stream does not wait for.
template <typename T>
bool Upload(const std::vector<T>& host, const DeviceBuffer& device) {
  return host.empty() || (cudaMemcpy(device.get(), host.data(), host.size() * sizeof(T),
                                     cudaMemcpyHostToDevice) == cudaSuccess &&
                          cudaDeviceSynchronize() == cudaSuccess);
}
template <typename T>
bool Download(const DeviceBuffer& device, std::vector<T>* host) {
  return host->empty() || cudaMemcpy(host->data(), device.get(), host->size() * sizeof(T),
                                     cudaMemcpyDeviceToHost) == cudaSuccess;
}
template <typename T>
int64_t Bytes(const std::vector<T>& v) {
  return static_cast<int64_t>(v.size() * sizeof(T));
}

enum class Expect { kAsk, kSupported, kRefused };

// The shared fields (problem, kv_lengths, -inf bias row; no chunk overrides here) and what cuDNN
// is expected to answer.
struct Case : kernels::testing::ProblemCase {
  Expect expect = Expect::kAsk;  // kAsk: cuDNN decides; the answer is checked either way
};

// gtest prints a failing parameter with this instead of its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << CaseName(c); }

constexpr auto Base = kernels::testing::BaseCase<Case>;

std::vector<Case> AllCases() {
  constexpr DType kDTypes[] = {DType::kF16, DType::kBF16};
  std::vector<Case> cases;
  // Head dims. cuDNN on Hopper takes multiples of 8 up to 256: 64 and 128 must run, the others
  // are asked; 59 and 111 (not multiples of 8) and f32 must be refused, never answered wrongly.
  for (DType dtype : kDTypes) {
    for (int64_t d : {64, 80, 96, 128, 160}) {
      Case c = Base(dtype, 2, 97, 97, 2, 2, d, d);
      if (d == 64 || d == 128) c.expect = Expect::kSupported;
      cases.push_back(c);
    }
    for (int64_t d : {59, 111}) {
      Case c = Base(dtype, 2, 97, 97, 2, 2, d, d);
      c.expect = Expect::kRefused;
      cases.push_back(c);
    }
    for (int64_t d : {256, 512}) cases.push_back(Base(dtype, 1, 97, 97, 1, 1, d, d));
  }
  {
    Case c = Base(DType::kF32, 2, 97, 97, 2, 2, 64, 64);
    c.expect = Expect::kRefused;
    cases.push_back(c);
  }
  // Odd lengths, both ways round, and one long causal case.
  for (DType dtype : kDTypes) {
    const int64_t lengths[][2] = {{1, 1}, {1, 97}, {97, 1}, {1, 1025}, {97, 1025}, {1025, 97}};
    for (const auto& len : lengths) {
      Case c = Base(dtype, 2, len[0], len[1], 2, 2, 64, 64);
      c.expect = Expect::kSupported;
      cases.push_back(c);
    }
  }
  {
    Case c = Base(DType::kBF16, 1, 1025, 1025, 2, 2, 128, 128);
    c.problem.causal = Causal::kTopLeft;
    c.expect = Expect::kSupported;
    cases.push_back(c);
  }
  // Causal, both alignments, Mq < Mk, Mq > Mk (bottom-right: the first Mq - Mk rows see nothing)
  // and Mq == Mk.
  for (DType dtype : kDTypes) {
    for (Causal causal : {Causal::kTopLeft, Causal::kBottomRight}) {
      for (auto [mq, mk] : {std::pair<int64_t, int64_t>{97, 161}, {161, 97}, {97, 97}}) {
        Case c = Base(dtype, 2, mq, mk, 2, 2, 64, 64);
        c.problem.causal = causal;
        cases.push_back(c);
      }
    }
  }
  // Sliding windows: two-sided without causal (bottom-right aligned), one-sided, with causal.
  const int64_t windows[][3] = {{16, 8, 0}, {-1, 4, 0}, {16, -1, 1}, {0, 0, 2}, {5, 3, 1}};
  for (const auto& w : windows) {
    for (auto [mq, mk] : {std::pair<int64_t, int64_t>{97, 161}, {161, 97}}) {
      Case c = Base(DType::kF16, 2, mq, mk, 2, 2, 64, 64);
      c.problem.window_left = w[0];
      c.problem.window_right = w[1];
      c.problem.causal = static_cast<Causal>(w[2]);
      cases.push_back(c);
    }
  }
  // kv_lengths: an empty batch element and a partial one; full and 1 with causal bottom-right
  // (aligned to kv_lengths[b]); a window; top-left with Mq > Mk; three batch elements.
  for (DType dtype : kDTypes) {
    Case c = Base(dtype, 2, 97, 161, 2, 2, 64, 64);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {0, 50};
    cases.push_back(c);
    c.problem.causal = Causal::kBottomRight;
    c.kv_lengths = {161, 1};
    cases.push_back(c);
    c.kv_lengths = {130, 70};
    c.problem.window_left = 10;
    cases.push_back(c);
    c = Base(dtype, 2, 161, 97, 2, 2, 64, 64);
    c.problem.has_kv_lengths = true;
    c.problem.causal = Causal::kTopLeft;
    c.kv_lengths = {40, 97};
    cases.push_back(c);
    c = Base(dtype, 3, 97, 1025, 4, 2, 128, 128);
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {1025, 513, 7};
    cases.push_back(c);
  }
  // Bias broadcasts in both bias dtypes that make sense next to f16 (f32 and f16), and bf16.
  // The last ones are refused before cuDNN is asked: cuDNN 9.19 took [B, H, 1, 1] and got it
  // wrong (errors up to 0.34 on the H200), so only the broadcasts above them are trusted.
  const int64_t bias_shapes[][5] = {{2, 2, 97, 161, 0}, {1, 2, 97, 161, 0}, {2, 1, 97, 161, 0},
                                    {1, 1, 97, 161, 0}, {1, 1, 1, 161, 0},  {2, 1, 1, 161, 0},
                                    {1, 1, 97, 1, 0},   {2, 2, 1, 1, 1},    {1, 1, 1, 1, 1},
                                    {1, 2, 1, 161, 1},  {2, 2, 97, 1, 1}};
  for (const auto& shape : bias_shapes) {
    for (DType bias_dtype : {DType::kF16, DType::kF32}) {
      Case c = Base(DType::kF16, 2, 97, 161, 2, 2, 64, 64);
      SetBias(&c, bias_dtype, shape[0], shape[1], shape[2], shape[3]);
      if (shape[4] == 1) c.expect = Expect::kRefused;
      cases.push_back(c);
    }
  }
  {
    Case c = Base(DType::kBF16, 2, 97, 161, 2, 2, 128, 128);
    SetBias(&c, DType::kBF16, 2, 2, 97, 161);
    cases.push_back(c);
    c.problem.causal = Causal::kTopLeft;
    cases.push_back(c);
    c.problem.causal = Causal::kBottomRight;  // cuDNN 9.19 refuses bias with bottom-right
    cases.push_back(c);
  }
  // A query row whose bias is -inf everywhere sees no key: output 0 (and LSE -inf), with and
  // without the LSE asked for.
  for (bool lse : {true, false}) {
    Case c = Base(DType::kF16, 2, 97, 161, 2, 2, 64, 64);
    SetBias(&c, DType::kF16, 1, 1, 97, 161);
    c.neg_inf_bias_row = 5;
    c.problem.return_lse = lse;
    cases.push_back(c);
  }
  // GQA and MQA, both layouts.
  for (Layout layout : {Layout::kBMHK, Layout::kBHMK}) {
    Case c = Base(DType::kF16, 2, 97, 161, 6, 2, 64, 64);
    c.problem.layout = layout;
    c.problem.causal = Causal::kBottomRight;
    c.expect = Expect::kSupported;
    cases.push_back(c);
    c = Base(DType::kBF16, 1, 161, 97, 4, 1, 128, 128);
    c.problem.layout = layout;
    SetBias(&c, DType::kF32, 1, 4, 161, 97);
    cases.push_back(c);
    c = Base(DType::kBF16, 2, 97, 161, 8, 1, 128, 128);
    c.problem.layout = layout;
    c.problem.causal = Causal::kTopLeft;
    c.problem.has_kv_lengths = true;
    c.kv_lengths = {120, 161};
    cases.push_back(c);
  }
  // Dv != D, and no LSE.
  for (auto [d, dv] : {std::pair<int64_t, int64_t>{64, 128}, {128, 64}}) {
    Case c = Base(DType::kBF16, 2, 97, 161, 2, 2, d, dv);
    c.problem.return_lse = false;
    cases.push_back(c);
  }
  {
    Case c = Base(DType::kF16, 2, 97, 161, 2, 2, 64, 64);
    c.problem.return_lse = false;
    c.expect = Expect::kSupported;
    cases.push_back(c);
  }
  // A sharp softmax: scale 1 at D = 64 (scores ~ N(0, 64)).
  {
    Case c = Base(DType::kF16, 1, 97, 1025, 2, 2, 64, 64);
    c.problem.scale = 1.0;
    c.expect = Expect::kSupported;
    cases.push_back(c);
  }
  return cases;
}

// Compares the device answer with the reference. cuDNN rounds the probabilities to the input
// dtype before P·V (as FlashAttention does), a second rounding of the size of the output's, so the
// output is allowed twice the CPU kernels' tolerance (tests/kernels/test_util.h); the LSE is f32
// arithmetic on f32 scores.
struct Errors {
  double out_worst = 0;
  double lse_worst = 0;
  int64_t mismatches = 0;
  std::string first;
};

Errors Compare(const AttentionProblem& p, const std::vector<unsigned char>& out,
               const std::vector<float>& lse, const ReferenceResult& ref) {
  const Tolerance base = ToleranceFor(p.dtype);
  const Tolerance tol{2 * base.atol, 2 * base.rtol};
  const SeqHeadStrides s = SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.v_head_dim);
  Errors e;
  std::ostringstream first;
  auto check = [&](double got, double want, double allowed, double* worst, auto where) {
    const bool both_neg_inf = std::isinf(got) && std::isinf(want) && got < 0 && want < 0;
    const double error = both_neg_inf ? 0 : std::fabs(got - want);
    if (!(error <= *worst)) *worst = error;  // NaN sticks
    if (both_neg_inf || error <= allowed) return;
    if (++e.mismatches <= 5)
      first << "  " << where() << ": got " << got << ", want " << want << "\n";
  };
  for (int64_t b = 0; b < p.batch; ++b) {
    for (int64_t h = 0; h < p.q_heads; ++h) {
      for (int64_t i = 0; i < p.q_len; ++i) {
        for (int64_t x = 0; x < p.v_head_dim; ++x) {
          const int64_t at = s.Row(b, i, h) + x;
          const double want = ref.out[at];
          check(LoadAsFloat(out.data(), p.dtype, at), want, tol.atol + tol.rtol * std::fabs(want),
                &e.out_worst,
                [&] { return absl::StrCat("out[b=", b, ",i=", i, ",h=", h, ",x=", x, "]"); });
        }
        if (p.return_lse) {
          const int64_t at = (b * p.q_heads + h) * p.q_len + i;
          const double want = ref.lse[at];
          check(lse[at], want, 1e-4 * std::fmax(1.0, std::fabs(want)), &e.lse_worst,
                [&] { return absl::StrCat("lse[b=", b, ",h=", h, ",i=", i, "]"); });
        }
      }
    }
  }
  e.first = first.str();
  return e;
}

Plan CudnnPlan(int64_t workspace_bytes) {
  Plan plan;
  plan.variant = Variant::kCudnn;
  plan.workspace_bytes = workspace_bytes;
  return plan;
}

class CudnnMatrixTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { SKIP_WITHOUT_GPU(); }
};

TEST_P(CudnnMatrixTest, MatchesReferenceOrIsRefused) {
  const Case& c = GetParam();
  const AttentionProblem& p = c.problem;
  const CudaContext& context = *SharedContext();
  ASSERT_TRUE(ValidateProblem(p, ProblemLimits()).ok()) << p.DebugString();
  const std::string name = CaseName(c);

  std::string reason;
  const absl::StatusOr<bool> supported = CudnnSupports(p, context.cudnn, &reason);
  ASSERT_TRUE(supported.ok()) << supported.status();
  if (c.expect == Expect::kSupported) {
    ASSERT_TRUE(*supported) << "cuDNN refused: " << reason;
  }
  if (c.expect == Expect::kRefused) {
    ASSERT_FALSE(*supported) << "cuDNN should refuse " << name;
  }

  std::mt19937 rng(static_cast<uint32_t>(std::hash<std::string>()(name)));
  OwnedTensors t = MakeTensors(p, &rng);
  t.kv_lengths = c.kv_lengths;
  if (c.neg_inf_bias_row >= 0) {
    ASSERT_EQ(p.bias_shape[0] * p.bias_shape[1], 1);
    for (int64_t j = 0; j < p.bias_shape[3]; ++j) {
      StoreFromFloat(t.bias.data(), p.bias_dtype, c.neg_inf_bias_row * p.bias_shape[3] + j,
                     -std::numeric_limits<float>::infinity());
    }
  }
  DeviceBuffer q(Bytes(t.q)), k(Bytes(t.k)), v(Bytes(t.v)), bias(Bytes(t.bias));
  DeviceBuffer kv_lengths(Bytes(t.kv_lengths)), out(Bytes(t.out)), lse(Bytes(t.lse));
  ASSERT_TRUE(Upload(t.q, q) && Upload(t.k, k) && Upload(t.v, v) && Upload(t.bias, bias) &&
              Upload(t.kv_lengths, kv_lengths));
  // NaN everywhere (0xFFFF is a NaN in f16 and bf16, 0xFFFFFFFF in f32): unwritten values fail.
  ASSERT_EQ(cudaMemset(out.get(), 0xFF, t.out.size()), cudaSuccess);
  if (!t.lse.empty()) {
    ASSERT_EQ(cudaMemset(lse.get(), 0xFF, Bytes(t.lse)), cudaSuccess);
  }
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);  // the legacy stream's memsets first
  AttentionTensors device;
  device.q = q.get();
  device.k = k.get();
  device.v = v.get();
  device.bias = bias.get();
  device.kv_lengths = static_cast<const int64_t*>(kv_lengths.get());
  device.out = out.get();
  device.lse = static_cast<float*>(lse.get());

  if (!*supported) {
    const absl::Status run = RunCudnn(CudnnPlan(0), p, device, nullptr, 0, context);
    EXPECT_EQ(run.code(), absl::StatusCode::kInvalidArgument) << run;
    const absl::StatusOr<int64_t> ws = CudnnWorkspaceBytes(p, context.cudnn);
    EXPECT_EQ(ws.status().code(), absl::StatusCode::kInvalidArgument) << ws.status();
    std::cout << "[cudnn] " << name << ": refused: " << reason << std::endl;
    return;
  }

  const absl::StatusOr<int64_t> ws = CudnnWorkspaceBytes(p, context.cudnn);
  ASSERT_TRUE(ws.ok()) << ws.status();
  DeviceBuffer workspace(*ws);
  const absl::Status run = RunCudnn(CudnnPlan(*ws), p, device, workspace.get(), *ws, context);
  ASSERT_TRUE(run.ok()) << run;
  ASSERT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)), cudaSuccess);
  ASSERT_TRUE(Download(out, &t.out) && Download(lse, &t.lse));

  ReferenceResult reference;
  const absl::Status ref = ReferenceAttention(p, t.View(), &reference);
  ASSERT_TRUE(ref.ok()) << ref;
  const Errors e = Compare(p, t.out, t.lse, reference);
  std::cout << "[cudnn] " << name << ": workspace " << *ws << " B, out worst error " << e.out_worst
            << ", lse worst error " << e.lse_worst << std::endl;
  EXPECT_EQ(e.mismatches, 0) << p.DebugString() << "\n" << e.first;

  if (c.neg_inf_bias_row >= 0) {
    // The row that sees nothing is exactly 0 (and its LSE -inf) in every (b, h).
    const SeqHeadStrides s = SeqHeadStrides::For(p.layout, p.q_len, p.q_heads, p.v_head_dim);
    for (int64_t b = 0; b < p.batch; ++b) {
      for (int64_t h = 0; h < p.q_heads; ++h) {
        for (int64_t x = 0; x < p.v_head_dim; ++x) {
          EXPECT_EQ(LoadAsFloat(t.out.data(), p.dtype, s.Row(b, c.neg_inf_bias_row, h) + x), 0.0f);
        }
        if (p.return_lse) {
          EXPECT_EQ(t.lse[(b * p.q_heads + h) * p.q_len + c.neg_inf_bias_row],
                    -std::numeric_limits<float>::infinity());
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Matrix, CudnnMatrixTest, ::testing::ValuesIn(AllCases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return CaseName(info.param);
                         });

// Device tensors of one problem, random inputs, for the tests below.
struct DeviceProblem {
  explicit DeviceProblem(const AttentionProblem& p)
      : problem(p),
        q(p.q_elements() * 2),
        k(p.k_elements() * 2),
        v(p.v_elements() * 2),
        out(p.out_elements() * 2),
        lse(p.lse_elements() * 4),
        kv_lengths(p.batch * 8) {
    std::mt19937 rng(7);
    OwnedTensors t = MakeTensors(p, &rng);
    t.kv_lengths.assign(static_cast<size_t>(p.batch), p.kv_len);
    ok = Upload(t.q, q) && Upload(t.k, k) && Upload(t.v, v) && Upload(t.kv_lengths, kv_lengths);
    tensors.q = q.get();
    tensors.k = k.get();
    tensors.v = v.get();
    tensors.out = out.get();
    tensors.lse = static_cast<float*>(lse.get());
    tensors.kv_lengths = static_cast<const int64_t*>(kv_lengths.get());
  }
  AttentionProblem problem;
  DeviceBuffer q, k, v, out, lse, kv_lengths;
  AttentionTensors tensors;
  bool ok = false;
};

AttentionProblem SmallProblem() { return Base(DType::kBF16, 1, 33, 65, 2, 1, 64, 64).problem; }

TEST(CudnnGraphCache, BuildsOncePerShapeAndHandle) {
  SKIP_WITHOUT_GPU();
  const CudaContext& context = *SharedContext();
  AttentionProblem p = SmallProblem();
  p.scale = 0.3;  // a shape no other test uses
  DeviceProblem d(p);
  ASSERT_TRUE(d.ok);

  const CudnnGraphCacheStats before = GetCudnnGraphCacheStats();
  ASSERT_TRUE(CudnnSupports(p, context.cudnn).value_or(false));
  const absl::StatusOr<int64_t> ws = CudnnWorkspaceBytes(p, context.cudnn);
  ASSERT_TRUE(ws.ok()) << ws.status();
  DeviceBuffer workspace(*ws);
  for (int run = 0; run < 3; ++run) {
    ASSERT_TRUE(RunCudnn(CudnnPlan(*ws), p, d.tensors, workspace.get(), *ws, context).ok());
  }
  ASSERT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)), cudaSuccess);
  const CudnnGraphCacheStats after = GetCudnnGraphCacheStats();
  EXPECT_EQ(after.builds - before.builds, 1);  // CudnnSupports built it
  EXPECT_EQ(after.hits - before.hits, 4);      // workspace query and three runs reused it
  EXPECT_EQ(after.entries - before.entries, 1);

  // Another scale is another graph; a second handle builds its own and drops it on destroy.
  p.scale = 0.31;
  ASSERT_TRUE(CudnnSupports(p, context.cudnn).value_or(false));
  EXPECT_EQ(GetCudnnGraphCacheStats().builds - before.builds, 2);
  void* other = nullptr;
  ASSERT_TRUE(CreateCudnnHandle(context.stream, &other).ok());
  ASSERT_TRUE(CudnnSupports(p, other).value_or(false));
  EXPECT_EQ(GetCudnnGraphCacheStats().builds - before.builds, 3);
  const int64_t entries = GetCudnnGraphCacheStats().entries;
  DestroyCudnnHandle(other);
  EXPECT_EQ(GetCudnnGraphCacheStats().entries, entries - 1);
}

TEST(CudnnRun, RefusesWhatItCannotRun) {
  SKIP_WITHOUT_GPU();
  const CudaContext& context = *SharedContext();
  AttentionProblem p = SmallProblem();
  p.has_kv_lengths = true;  // the sequence lengths need workspace even if cuDNN's plan needs none
  DeviceProblem d(p);
  ASSERT_TRUE(d.ok);
  const absl::StatusOr<int64_t> ws = CudnnWorkspaceBytes(p, context.cudnn);
  ASSERT_TRUE(ws.ok()) << ws.status();
  ASSERT_GT(*ws, 0);
  DeviceBuffer workspace(*ws);

  Plan naive = CudnnPlan(*ws);
  naive.variant = Variant::kNaive;
  EXPECT_EQ(RunCudnn(naive, p, d.tensors, workspace.get(), *ws, context).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunCudnn(CudnnPlan(*ws), p, d.tensors, workspace.get(), *ws - 1, context).code(),
            absl::StatusCode::kInvalidArgument);
  AttentionTensors misaligned = d.tensors;
  misaligned.q = static_cast<const char*>(d.tensors.q) + 2;
  EXPECT_EQ(RunCudnn(CudnnPlan(*ws), p, misaligned, workspace.get(), *ws, context).code(),
            absl::StatusCode::kInvalidArgument);
  AttentionTensors no_lengths = d.tensors;
  no_lengths.kv_lengths = nullptr;
  EXPECT_EQ(RunCudnn(CudnnPlan(*ws), p, no_lengths, workspace.get(), *ws, context).code(),
            absl::StatusCode::kInvalidArgument);
  CudaContext no_handle = context;
  no_handle.cudnn = nullptr;
  EXPECT_EQ(RunCudnn(CudnnPlan(*ws), p, d.tensors, workspace.get(), *ws, no_handle).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(CudnnSupports(p, nullptr).status().code(), absl::StatusCode::kInvalidArgument);
  AttentionProblem bad = p;
  bad.kv_heads = 3;  // does not divide Hq
  EXPECT_EQ(CudnnSupports(bad, context.cudnn).status().code(), absl::StatusCode::kInvalidArgument);
  // Nothing above launched work or left an error behind.
  EXPECT_EQ(cudaStreamSynchronize(static_cast<cudaStream_t>(context.stream)), cudaSuccess);
}

}  // namespace
}  // namespace attnd::kernels::cuda
