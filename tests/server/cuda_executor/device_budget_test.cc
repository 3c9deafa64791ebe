// The GPU device's host-side logic, without a GPU: the pool's limit and ledger, the live budget
// from fake readings, a request's device tensor bytes, CUDA device selection, the fatal-error
// hook, and the runner's per-device planning steps (tensor bytes off the budget, per-problem
// capabilities, the device's own workspace figure) through a fake device.
#include "server/executor/device_budget.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/cpu_executor.h"
#include "server/executor/devices.h"
#include "server/executor/fatal_device_error.h"
#include "server/executor/request_runner.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"

namespace attnd::server::executor {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

TEST(PoolLimitTest, BytesOrFractionOfTheCard) {
  MemorySection memory;
  memory.device_fraction = 0.9;
  memory.device_bytes = 0;
  // An H100 80GB reports 79.1 GiB (85'031'714'816 bytes): 0.9 of it.
  EXPECT_EQ(PoolLimitBytes(memory, int64_t{85031714816}), int64_t{76528543334});
  memory.device_bytes = 4 * kGiB;  // non-zero bytes override the fraction
  EXPECT_EQ(PoolLimitBytes(memory, int64_t{85031714816}), 4 * kGiB);
  EXPECT_EQ(PoolLimitBytes(memory, 2 * kGiB), 2 * kGiB);  // never more than the card
  memory.device_bytes = 0;
  memory.device_fraction = 1.0;
  EXPECT_EQ(PoolLimitBytes(memory, 16 * kGiB), 16 * kGiB);
  EXPECT_EQ(PoolLimitBytes(memory, 0), 0);
}

TEST(DeviceBudgetTest, WorkedExamples) {
  DeviceMemoryReadings r;
  r.pool_limit_bytes = 4 * kGiB;
  r.pool_used_bytes = 0;
  r.pool_reserved_bytes = 0;
  r.device_free_bytes = 78 * kGiB;
  // An idle card: the pool's limit binds. 4 GiB - 64 MiB.
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 4 * kGiB - 64 * kMiB);

  // Another process holds all but 3 GiB: the driver's free bytes bind.
  r.device_free_bytes = 3 * kGiB;
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 3 * kGiB - 64 * kMiB);

  // 1 GiB handed out by the pool to another request, 2.5 GiB reserved from earlier requests
  // (1.5 GiB of it idle, which the pool hands out again without the driver), 1 GiB free on the
  // card: min(4 - 1, 1 + 1.5) GiB - 64 MiB.
  r.pool_used_bytes = 1 * kGiB;
  r.pool_reserved_bytes = 2 * kGiB + kGiB / 2;
  r.device_free_bytes = 1 * kGiB;
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 2 * kGiB + kGiB / 2 - 64 * kMiB);

  // The pool reserved up to its limit and is idle; the rest of the card is taken: the pool's
  // own reserve is still the budget.
  r.pool_used_bytes = 0;
  r.pool_reserved_bytes = 4 * kGiB;
  r.device_free_bytes = 0;
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 4 * kGiB - 64 * kMiB);

  // Everything in use: never below 0.
  r.pool_used_bytes = 4 * kGiB;
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 0);
  r.pool_used_bytes = 0;
  r.pool_reserved_bytes = 0;
  r.device_free_bytes = 32 * kMiB;
  EXPECT_EQ(DeviceBudgetBytes(r, 64 * kMiB), 0);
}

TEST(DeviceTensorBytesTest, EveryTensorAligned) {
  kernels::AttentionProblem p;
  p.dtype = kernels::DType::kBF16;
  p.batch = 1;
  p.q_len = 65536;
  p.kv_len = 65536;
  p.q_heads = 8;
  p.kv_heads = 8;
  p.head_dim = 128;
  p.v_head_dim = 128;
  // q, k, v, out: 65536 × 8 × 128 × 2 bytes = 128 MiB each.
  EXPECT_EQ(DeviceTensorBytes(p), 4 * 128 * kMiB);
  p.return_lse = true;  // + 8 × 65536 f32 = 2 MiB
  EXPECT_EQ(DeviceTensorBytes(p), 4 * 128 * kMiB + 2 * kMiB);

  kernels::AttentionProblem small;
  small.dtype = kernels::DType::kF16;
  small.batch = 3;
  small.q_len = 5;
  small.kv_len = 7;
  small.q_heads = 2;
  small.kv_heads = 1;
  small.head_dim = 3;
  small.v_head_dim = 5;
  small.has_kv_lengths = true;
  small.has_bias = true;
  small.bias_dtype = kernels::DType::kF32;
  small.bias_shape[1] = 2;  // [1, 2, 1, 1]
  // q 90×2=180 → 256, k 63×2=126 → 256, v 105×2=210 → 256, out 150×2=300 → 512,
  // bias 2×4=8 → 256, kv_lengths 3×8=24 → 256.
  EXPECT_EQ(DeviceTensorBytes(small), 256 + 256 + 256 + 512 + 256 + 256);
  EXPECT_EQ(AlignDeviceBytes(0), 0);
  EXPECT_EQ(AlignDeviceBytes(1), 256);
  EXPECT_EQ(AlignDeviceBytes(256), 256);
  EXPECT_EQ(AlignDeviceBytes(257), 512);
}

TEST(PoolLedgerTest, RefusesPastTheLimitAndKeepsThePeak) {
  PoolLedger ledger(100 * kMiB);
  EXPECT_TRUE(ledger.Take(60 * kMiB).ok());
  EXPECT_TRUE(ledger.Take(40 * kMiB).ok());  // exactly at the limit
  absl::Status refused = ledger.Take(1);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_THAT(std::string(refused.message()), HasSubstr("104857600"));  // names the limit
  EXPECT_EQ(ledger.used_bytes(), 100 * kMiB);
  EXPECT_EQ(ledger.failures(), 1);

  ledger.Give(60 * kMiB);
  EXPECT_EQ(ledger.used_bytes(), 40 * kMiB);
  EXPECT_EQ(ledger.peak_used_bytes(), 100 * kMiB);
  EXPECT_TRUE(ledger.Take(50 * kMiB).ok());
  EXPECT_FALSE(ledger.Take(11 * kMiB).ok());
  EXPECT_EQ(ledger.failures(), 2);
  ledger.CountFailure();  // the device refused one the ledger allowed
  EXPECT_EQ(ledger.failures(), 3);
  EXPECT_FALSE(ledger.Take(-1).ok());

  ledger.Give(90 * kMiB);
  EXPECT_EQ(ledger.used_bytes(), 0);
  ledger.ResetPeak();
  EXPECT_EQ(ledger.peak_used_bytes(), 0);
}

TEST(PoolLedgerTest, ConcurrentTakersNeverPassTheLimit) {
  PoolLedger ledger(10 * kMiB);
  std::vector<std::thread> threads;
  std::atomic<int> granted{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        if (ledger.Take(3 * kMiB).ok()) {
          granted.fetch_add(1);
          EXPECT_LE(ledger.used_bytes(), 10 * kMiB);
          ledger.Give(3 * kMiB);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_GT(granted.load(), 0);
  EXPECT_EQ(ledger.used_bytes(), 0);
  EXPECT_LE(ledger.peak_used_bytes(), 9 * kMiB);  // at most 3 of 3 MiB fit under 10 MiB
}

TEST(SelectCudaDevicesTest, AllOrTheConfiguredOrdinals) {
  EXPECT_EQ(*SelectCudaDevices({}, 2), (std::vector<int>{0, 1}));
  EXPECT_EQ(*SelectCudaDevices({1}, 2), (std::vector<int>{1}));
  EXPECT_EQ(*SelectCudaDevices({1, 0}, 2), (std::vector<int>{1, 0}));
  EXPECT_TRUE(SelectCudaDevices({}, 0)->empty());
  absl::StatusOr<std::vector<int>> missing = SelectCudaDevices({2}, 2);
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("backend.devices"));
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("2 visible"));
  EXPECT_FALSE(SelectCudaDevices({-1}, 2).ok());
  absl::StatusOr<std::vector<int>> twice = SelectCudaDevices({0, 0}, 2);
  ASSERT_FALSE(twice.ok());
  EXPECT_THAT(std::string(twice.status().message()), HasSubstr("twice"));
}

TEST(ChooseBackendTest, AutoPicksCudaOnlyWithAGpuAndTheExecutor) {
  auto gpu = ChooseBackend("auto", 1, /*cuda_executor_built=*/true);
  ASSERT_TRUE(gpu.ok());
  EXPECT_EQ(gpu->first, "cuda");
  auto none = ChooseBackend("auto", 0, true);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none->first, "cpu");
  auto cuda = ChooseBackend("cuda", 1, true);
  ASSERT_TRUE(cuda.ok());
  EXPECT_EQ(cuda->first, "cuda");
  // This build's answer to "is there a CUDA executor" follows the CUDA switch.
#ifdef ATTND_CUDA_EXECUTOR
  EXPECT_TRUE(CudaExecutorBuilt());
#else
  EXPECT_FALSE(CudaExecutorBuilt());
#endif
}

TEST(FatalDeviceErrorTest, TheHandlerRunsOnceWithTheFirstError) {
  ResetFatalDeviceErrorForTesting();
  std::vector<std::string> calls;
  SetFatalDeviceErrorHandler([&calls](const std::string& device, const absl::Status& error) {
    calls.push_back(device + ": " + std::string(error.message()));
  });
  EXPECT_FALSE(FatalDeviceErrorHappened());
  OnFatalDeviceError("cuda:1", absl::InternalError("cudaErrorIllegalAddress"));
  OnFatalDeviceError("cuda:1", absl::InternalError("cudaErrorLaunchFailure"));
  OnFatalDeviceError("cuda:0", absl::InternalError("cudaErrorIllegalAddress"));
  ASSERT_EQ(calls.size(), 1u);
  EXPECT_EQ(calls[0], "cuda:1: cudaErrorIllegalAddress");
  EXPECT_TRUE(FatalDeviceErrorHappened());
  EXPECT_THAT(std::string(FirstFatalDeviceError().message()), HasSubstr("IllegalAddress"));
  SetFatalDeviceErrorHandler(nullptr);
  ResetFatalDeviceErrorForTesting();
  EXPECT_FALSE(FatalDeviceErrorHappened());
  EXPECT_TRUE(FirstFatalDeviceError().ok());
}

// A device as the runner sees it: the CPU computes, but the device reports its own budget,
// tensor bytes, per-problem variants and workspace figure, as the CUDA executor does.
class FakeDevice final : public Executor {
 public:
  explicit FakeDevice(Executor* inner) : inner_(inner) {}
  const std::string& name() const override { return name_; }
  const std::string& kind() const override { return inner_->kind(); }
  const kernels::Capabilities& capabilities() const override { return inner_->capabilities(); }
  kernels::Capabilities CapabilitiesFor(const kernels::AttentionProblem&) const override {
    kernels::Capabilities caps = inner_->capabilities();
    if (!offer_cpu_chunked) caps.variants = {kernels::Variant::kReference};
    return caps;
  }
  absl::StatusOr<int64_t> DeviceWorkspaceBytes(const kernels::Plan& plan,
                                               const kernels::AttentionProblem&) const override {
    return plan.workspace_bytes + extra_workspace_bytes;
  }
  int64_t TensorBytes(const kernels::AttentionProblem&) const override { return tensor_bytes; }
  int64_t MemoryBudgetBytes() const override { return budget_bytes; }
  MemoryStats Memory() const override { return inner_->Memory(); }
  absl::Status Run(const kernels::Plan& plan, const kernels::AttentionProblem& problem,
                   const kernels::AttentionTensors& tensors) override {
    last_workspace_bytes = plan.workspace_bytes;
    return inner_->Run(plan, problem, tensors);
  }

  int64_t budget_bytes = 64 * kMiB;
  int64_t tensor_bytes = 0;
  int64_t extra_workspace_bytes = 0;
  bool offer_cpu_chunked = true;
  int64_t last_workspace_bytes = -1;

 private:
  Executor* inner_;
  const std::string name_ = "fake:0";
};

std::unique_ptr<CpuExecutor> Cpu() {
  MemorySection memory;
  memory.host_budget_bytes = 256 * kMiB;
  memory.safety_margin_bytes = 0;
  return std::make_unique<CpuExecutor>(memory, 2, []() -> absl::StatusOr<MemInfo> {
    return MemInfo{int64_t{128} << 30, int64_t{64} << 30};
  });
}

client::RequestSpec Long() {
  client::RequestSpec spec = testing::SmallSpec();
  spec.q_len = 300;
  spec.kv_len = 500;
  return spec;
}

TEST(DevicePlanningTest, TheRequestsTensorsComeOffTheBudget) {
  auto cpu = Cpu();
  FakeDevice device(cpu.get());
  RequestRunner runner(&device, kernels::PlannerConfig(), nullptr);
  const v1::AttendRequest request = testing::MakeRequest(Long(), 71);

  // 64 MiB live, 63 MiB of it the tensors: the plan must fit 1 MiB.
  device.tensor_bytes = 63 * kMiB;
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(testing::DecodeOrFail(request), "t", RunContext{});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_LE(response->execution().workspace_bytes(), 1 * kMiB);
  EXPECT_TRUE(testing::MatchesReference(request, *response));

  // The tensors alone do not fit: RESOURCE_EXHAUSTED naming the device and both sizes.
  device.tensor_bytes = 65 * kMiB;
  absl::StatusOr<v1::AttendResponse> refused =
      runner.Run(testing::DecodeOrFail(request), "t", RunContext{});
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("fake:0"));
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("68157440"));
}

TEST(DevicePlanningTest, PerProblemCapabilitiesReachThePlanner) {
  auto cpu = Cpu();
  FakeDevice device(cpu.get());
  RequestRunner runner(&device, kernels::PlannerConfig(), nullptr);
  device.offer_cpu_chunked = false;
  v1::AttendRequest request = testing::MakeRequest(testing::SmallSpec(), 72);
  absl::StatusOr<v1::AttendResponse> refused =
      runner.Run(testing::DecodeOrFail(request), "c", RunContext{});
  ASSERT_TRUE(absl::IsInvalidArgument(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("reference"));
  request.set_variant(v1::VARIANT_REFERENCE);  // what the device still offers
  absl::StatusOr<v1::AttendResponse> ran =
      runner.Run(testing::DecodeOrFail(request), "c", RunContext{});
  ASSERT_TRUE(ran.ok()) << ran.status();
  EXPECT_TRUE(testing::MatchesReference(request, *ran));
}

TEST(DevicePlanningTest, TheDevicesWorkspaceFigureIsWhatRunsAndWhatMustFit) {
  auto cpu = Cpu();
  FakeDevice device(cpu.get());
  RequestRunner runner(&device, kernels::PlannerConfig(), nullptr);
  const v1::AttendRequest request = testing::MakeRequest(testing::SmallSpec(), 73);

  device.extra_workspace_bytes = 4096;  // fits the 64 MiB budget: the plan carries it
  absl::StatusOr<v1::AttendResponse> response =
      runner.Run(testing::DecodeOrFail(request), "w", RunContext{});
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(device.last_workspace_bytes, response->execution().workspace_bytes());
  EXPECT_GE(response->execution().workspace_bytes(), 4096);
  EXPECT_THAT(response->execution().plan_reason(), HasSubstr("workspace"));

  // The only variant needs more than the budget on this device: it is dropped and nothing is
  // left to plan (the CPU offers no other auto variant).
  device.extra_workspace_bytes = 128 * kMiB;
  absl::StatusOr<v1::AttendResponse> dropped =
      runner.Run(testing::DecodeOrFail(request), "w", RunContext{});
  EXPECT_FALSE(dropped.ok());
  // Forced, it is RESOURCE_EXHAUSTED naming the variant.
  v1::AttendRequest forced = request;
  forced.set_variant(v1::VARIANT_CPU_CHUNKED);
  absl::StatusOr<v1::AttendResponse> refused =
      runner.Run(testing::DecodeOrFail(forced), "w", RunContext{});
  ASSERT_TRUE(absl::IsResourceExhausted(refused.status())) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("cpu_chunked"));
}

}  // namespace
}  // namespace attnd::server::executor
