// The CPU device: /proc/meminfo parsing, the budget formula, live budget reads, and device
// selection from backend.kind.
#include "server/executor/cpu_executor.h"

#include <atomic>
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/executor/devices.h"
#include "server/executor/meminfo.h"

namespace attnd::server::executor {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

TEST(MemInfoTest, ParsesTotalAndAvailable) {
  const std::string text =
      "MemTotal:       16318512 kB\n"
      "MemFree:         1234567 kB\n"
      "MemAvailable:    8159256 kB\n"
      "Buffers:          123456 kB\n";
  absl::StatusOr<MemInfo> info = ParseMemInfo(text);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->total_bytes, int64_t{16318512} * 1024);
  EXPECT_EQ(info->available_bytes, int64_t{8159256} * 1024);
}

TEST(MemInfoTest, RefusesMissingOrMalformedFields) {
  EXPECT_FALSE(ParseMemInfo("MemTotal: 100 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("MemAvailable: 100 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("MemTotal: lots kB\nMemAvailable: 5 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("MemTotal: 100\nMemAvailable: 5 kB\n").ok());
  EXPECT_FALSE(ParseMemInfo("").ok());
}

TEST(MemInfoTest, ReadsThisMachine) {
  absl::StatusOr<MemInfo> info = ReadProcMemInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_GT(info->total_bytes, 0);
  EXPECT_GT(info->available_bytes, 0);
  EXPECT_LE(info->available_bytes, info->total_bytes);
}

MemorySection Memory(int64_t host_budget, double fraction, int64_t margin) {
  MemorySection memory;
  memory.host_budget_bytes = host_budget;
  memory.host_fraction = fraction;
  memory.safety_margin_bytes = margin;
  return memory;
}

TEST(CpuBudgetTest, WorkedExamples) {
  const MemorySection m = Memory(1 * kGiB, 0.5, 64 * kMiB);
  // Plenty of RAM: the configured cap binds. min(1 GiB, 4 GiB) - 64 MiB.
  EXPECT_EQ(CpuBudgetBytes(m, 8 * kGiB, 0), 960 * kMiB);
  // Little RAM: the fraction binds. min(1 GiB, 512 MiB) - 64 MiB.
  EXPECT_EQ(CpuBudgetBytes(m, 1 * kGiB, 0), 448 * kMiB);
  // Workspace already in use counts against the cap: min(1 GiB - 900 MiB, 4 GiB) - 64 MiB.
  EXPECT_EQ(CpuBudgetBytes(m, 8 * kGiB, 900 * kMiB), 60 * kMiB);
  // Never negative.
  EXPECT_EQ(CpuBudgetBytes(m, 64 * kMiB, 0), 0);
  EXPECT_EQ(CpuBudgetBytes(m, 8 * kGiB, 2 * kGiB), 0);
}

TEST(CpuThreadsTest, ConfigOrHardware) {
  BackendSection backend;
  backend.cpu_threads = 3;
  EXPECT_EQ(CpuThreads(backend), 3);
  backend.cpu_threads = 0;
  EXPECT_GE(CpuThreads(backend), 1);
}

TEST(CpuExecutorTest, BudgetIsReadLiveFromMeminfo) {
  auto available = std::make_shared<std::atomic<int64_t>>(8 * kGiB);
  CpuExecutor cpu(Memory(1 * kGiB, 0.5, 64 * kMiB), /*threads=*/2,
                  [available]() -> absl::StatusOr<MemInfo> {
                    return MemInfo{16 * kGiB, available->load()};
                  });
  EXPECT_EQ(cpu.name(), "cpu");
  EXPECT_EQ(cpu.kind(), "cpu");
  EXPECT_FALSE(cpu.capabilities().is_cuda);
  EXPECT_EQ(cpu.capabilities().threads, 2);
  EXPECT_THAT(
      cpu.capabilities().variants,
      ::testing::UnorderedElementsAre(kernels::Variant::kCpuChunked, kernels::Variant::kReference));
  EXPECT_EQ(cpu.MemoryBudgetBytes(), 960 * kMiB);
  available->store(512 * kMiB);  // other processes took memory
  EXPECT_EQ(cpu.MemoryBudgetBytes(), 192 * kMiB);

  const MemoryStats stats = cpu.Memory();
  EXPECT_EQ(stats.total_bytes, 16 * kGiB);
  EXPECT_EQ(stats.free_bytes, 512 * kMiB);
  EXPECT_EQ(stats.reserved_bytes, 192 * kMiB);
  EXPECT_EQ(stats.used_bytes, 0);
}

TEST(CpuExecutorTest, UnreadableMeminfoFallsBackToTheConfiguredCap) {
  CpuExecutor cpu(Memory(256 * kMiB, 0.5, 16 * kMiB), 1,
                  []() -> absl::StatusOr<MemInfo> { return absl::UnavailableError("no /proc"); });
  EXPECT_EQ(cpu.MemoryBudgetBytes(), 240 * kMiB);
}

TEST(CpuExecutorTest, RefusesVariantsItCannotRun) {
  CpuExecutor cpu(Memory(256 * kMiB, 0.5, 16 * kMiB), 1);
  kernels::Plan plan;
  plan.variant = kernels::Variant::kFused;
  kernels::AttentionProblem problem;
  absl::Status status = cpu.Run(plan, problem, kernels::AttentionTensors{});
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("fused"));
}

TEST(ChooseBackendTest, CpuAutoAndCuda) {
  auto cpu = ChooseBackend("cpu", 4, false);
  ASSERT_TRUE(cpu.ok());
  EXPECT_EQ(cpu->first, "cpu");

  auto auto_no_gpu = ChooseBackend("auto", 0, false);
  ASSERT_TRUE(auto_no_gpu.ok());
  EXPECT_EQ(auto_no_gpu->first, "cpu");
  EXPECT_THAT(auto_no_gpu->second, HasSubstr("no CUDA device"));

  // A GPU but no CUDA executor in this build: the CPU, saying why.
  auto auto_gpu = ChooseBackend("auto", 2, false);
  ASSERT_TRUE(auto_gpu.ok());
  EXPECT_EQ(auto_gpu->first, "cpu");
  EXPECT_THAT(auto_gpu->second, HasSubstr("no CUDA executor"));

  auto auto_cuda = ChooseBackend("auto", 2, true);
  ASSERT_TRUE(auto_cuda.ok());
  EXPECT_EQ(auto_cuda->first, "cuda");

  auto cuda_unbuilt = ChooseBackend("cuda", 1, false);
  ASSERT_FALSE(cuda_unbuilt.ok());
  EXPECT_THAT(std::string(cuda_unbuilt.status().message()), HasSubstr("backend.kind"));
  auto cuda_no_gpu = ChooseBackend("cuda", 0, true);
  ASSERT_FALSE(cuda_no_gpu.ok());
  EXPECT_THAT(std::string(cuda_no_gpu.status().message()), HasSubstr("backend.kind"));

  auto bogus = ChooseBackend("tpu", 0, false);
  ASSERT_FALSE(bogus.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(bogus.status()));
  EXPECT_THAT(std::string(bogus.status().message()), HasSubstr("backend.kind"));
}

TEST(CreateExecutorsTest, CpuAndAutoServeOnTheCpuHere) {
  for (const char* kind : {"cpu", "auto"}) {
    Config config;
    config.backend.kind = kind;
    config.backend.cpu_threads = 2;
    absl::StatusOr<DeviceSelection> selection = CreateExecutors(config);
    ASSERT_TRUE(selection.ok()) << kind << ": " << selection.status();
    EXPECT_EQ(selection->backend, "cpu");
    ASSERT_EQ(selection->executors.size(), 1u);
    EXPECT_EQ(selection->executors[0]->name(), "cpu");
    EXPECT_EQ(selection->executors[0]->capabilities().threads, 2);
  }
  Config cuda;
  cuda.backend.kind = "cuda";
  absl::StatusOr<DeviceSelection> refused = CreateExecutors(cuda);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("backend.kind"));
}

}  // namespace
}  // namespace attnd::server::executor
