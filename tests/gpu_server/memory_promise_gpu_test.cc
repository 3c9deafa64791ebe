// The memory promise on a GPU, through a real attnd (skipped, visibly, without one):
//   B = 1, H = 8, Mq = Mk = 65536, D = 128, bf16, causal (PyTorch's math path needs 128 GiB)
// 1. with the pool limited to 4 GiB it completes, the pool's peak stays within the budget, and
//    the output matches the float64 reference on sampled rows;
// 2. with a second process holding all but 3 GiB of the card, the same request still completes,
//    with smaller chunks, seen in the response and in the metrics.
// Each phase sends the request as the planner likes it (auto: the fastest variant that fits)
// and forced to `chunked`, whose chunks are sized from the live budget; the planner's chunk
// maxima are raised to the whole sequence so that the budget, not the cap, decides them.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "kernels/cuda/workspace_layout.h"
#include "kernels/device_query.h"
#include "kernels/planner.h"
#include "tests/common/reference_check.h"
#include "tests/integration/server_process.h"
#include "wire/request_codec.h"

namespace attnd::testing {
namespace {

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;
constexpr int64_t kPoolBytes = 4 * kGiB;
// memory.safety_margin_bytes. 512 MiB rather than the default 64 MiB so that the comparison of
// the two phases does not hang on attnd's own context size: the budget the planner sees is
//   pool 4 GiB:     4 GiB - 512 MiB - 512 MiB of tensors = 3 GiB
//   3 GiB free:  <= 3 GiB - 512 MiB - 512 MiB of tensors = 2 GiB (less attnd's context),
// and `chunked` at 8192 x 8192 needs 2 GiB + 34 MiB: it fits the first and not the second.
constexpr int64_t kMarginBytes = 512 * kMiB;
constexpr int64_t kSeq = 65536;

const char kConfig[] =
    "server:\n"
    "  listen: 127.0.0.1:0\n"
    "  max_message_bytes: 1GiB\n"
    "backend:\n"
    "  kind: cuda\n"
    "memory:\n"
    "  device_bytes: 4GiB\n"
    "  safety_margin_bytes: 512MiB\n"
    "planner:\n"
    "  max_q_chunk: 65536\n"
    "  max_kv_chunk: 65536\n";

std::string HoldMemoryBinary() {
  const char* env = std::getenv("HOLD_MEMORY_BINARY");
  return env != nullptr && *env != '\0' ? env : HOLD_MEMORY_BINARY;
}

// hold_memory in a child process, holding all but `leave_bytes` of device 0 until destroyed.
class HeldMemory {
 public:
  static absl::StatusOr<std::unique_ptr<HeldMemory>> Start(int64_t leave_bytes) {
    int fds[2];
    if (pipe(fds) != 0) return absl::InternalError("pipe failed");
    const std::string binary = HoldMemoryBinary();
    const std::string leave = std::to_string(leave_bytes);
    const pid_t pid = fork();
    if (pid < 0) return absl::InternalError("fork failed");
    if (pid == 0) {
      dup2(fds[1], STDOUT_FILENO);
      dup2(fds[1], STDERR_FILENO);
      close(fds[0]);
      close(fds[1]);
      execl(binary.c_str(), binary.c_str(), leave.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[1]);
    auto held = std::unique_ptr<HeldMemory>(new HeldMemory());
    held->pid_ = pid;
    FILE* out = fdopen(fds[0], "r");
    char line[512] = {0};
    if (out == nullptr || std::fgets(line, sizeof(line), out) == nullptr) {
      if (out != nullptr) fclose(out);
      return absl::InternalError(absl::StrCat(binary, " said nothing"));
    }
    fclose(out);
    held->line_ = line;
    if (held->line_.rfind("holding", 0) != 0) {
      return absl::InternalError(absl::StrCat(binary, ": ", held->line_));
    }
    return held;
  }
  ~HeldMemory() {
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  const std::string& line() const { return line_; }

 private:
  HeldMemory() = default;
  pid_t pid_ = -1;
  std::string line_;
};

v1::AttendRequest PromiseRequest() {
  client::RequestSpec s;
  s.batch = 1;
  s.q_len = kSeq;
  s.kv_len = kSeq;
  s.heads = 8;
  s.head_dim = 128;
  s.dtype = v1::DTYPE_BF16;
  s.causal = v1::CAUSAL_TOP_LEFT;
  s.seed = 65536;
  s.request_id = "promise";
  absl::StatusOr<v1::AttendRequest> request = client::GenerateRequest(s);
  EXPECT_TRUE(request.ok()) << request.status();
  return *request;
}

const v1::AttendRequest& Request() {
  static const v1::AttendRequest* request = new v1::AttendRequest(PromiseRequest());
  return *request;
}

// The chunks `chunked` gets with the whole 4 GiB pool (the planner is pure: same inputs, same
// plan), for phase 2 to compare with.
kernels::Plan ChunkedPlanAtFullPool(const v1::AttendRequest& request) {
  absl::StatusOr<wire::DecodedRequest> decoded =
      wire::DecodeRequest(request, kernels::UnlimitedProblemLimits());
  EXPECT_TRUE(decoded.ok()) << decoded.status();
  const kernels::AttentionProblem& p = decoded->problem;
  const int64_t element = 2;  // bf16
  const int64_t tensors =
      (p.q_elements() + p.k_elements() + p.v_elements() + p.out_elements()) * element;
  kernels::Capabilities caps;
  caps.is_cuda = true;
  caps.variants = {kernels::Variant::kChunked};
  caps.threads = kernels::cuda::kCudaLanes;  // as the CUDA executor offers
  kernels::PlannerConfig config;
  config.max_q_chunk = kSeq;
  config.max_kv_chunk = kSeq;
  config.forced_variant = kernels::Variant::kChunked;
  absl::StatusOr<kernels::Plan> plan =
      kernels::MakePlan(p, caps, kPoolBytes - kMarginBytes - tensors, config);
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : kernels::Plan();
}

struct Outcome {
  v1::Execution execution;
  double seconds = 0;
};

// Sends the request (with `variant`), checks it against the reference on sampled rows.
Outcome AttendAndCheck(client::Client* client, v1::Variant variant) {
  v1::AttendRequest request = Request();
  request.set_variant(variant);
  request.set_request_id(v1::Variant_Name(variant));
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::AttendResponse> response = client->Attend(request, absl::Seconds(300));
  Outcome outcome;
  outcome.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_TRUE(response.ok()) << v1::Variant_Name(variant) << ": " << response.status();
  if (!response.ok()) return outcome;
  outcome.execution = response->execution();
  // First rows, a middle one, and the last rows (which see every key).
  for (auto [begin, end] : std::vector<std::pair<int64_t, int64_t>>{
           {0, 2}, {12345, 12346}, {40000, 40001}, {kSeq - 3, kSeq}}) {
    EXPECT_TRUE(MatchesReference(request, *response, begin, end))
        << v1::Variant_Name(variant) << " rows [" << begin << ", " << end << ")";
  }
  return outcome;
}

std::string Describe(const Outcome& o) {
  const v1::Execution& e = o.execution;
  return absl::StrCat(v1::Variant_Name(e.variant()), " q_chunk ", e.q_chunk(), " kv_chunk ",
                      e.kv_chunk(), " workspace ", e.workspace_bytes(), " compute ",
                      e.compute_seconds(), " s, round trip ", o.seconds, " s; ", e.plan_reason());
}

double Metric(const ServerProcess& server, const std::string& name,
              const std::vector<std::string>& labels = {}) {
  absl::StatusOr<std::string> text = HttpGet(server.metrics_address(), "/metrics");
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? MetricValue(*text, name, labels) : -1;
}

class GpuMemoryPromiseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (kernels::CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
  }

  std::unique_ptr<client::Client> Connect(const ServerProcess& server) {
    client::ClientOptions options;
    options.max_message_bytes = kGiB;
    absl::StatusOr<std::unique_ptr<client::Client>> client =
        client::Client::Create(server.target(), options);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }
};

TEST_F(GpuMemoryPromiseTest, CompletesWithThePoolLimitedTo4GiB) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(kConfig);
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = Connect(**server);
  ASSERT_NE(client, nullptr);

  const Outcome automatic = AttendAndCheck(client.get(), v1::VARIANT_AUTO);
  const Outcome chunked = AttendAndCheck(client.get(), v1::VARIANT_CHUNKED);
  for (const Outcome* o : {&automatic, &chunked}) {
    EXPECT_EQ(o->execution.device(), "cuda:0");
    EXPECT_LE(o->execution.workspace_bytes(), kPoolBytes - kMarginBytes);
  }
  EXPECT_EQ(chunked.execution.variant(), v1::VARIANT_CHUNKED);
  // The full 65536² f32 scores of 8 heads are 128 GiB: chunked on at least one axis.
  EXPECT_LT(chunked.execution.q_chunk() * chunked.execution.kv_chunk(), kSeq * kSeq);
  const kernels::Plan expected = ChunkedPlanAtFullPool(Request());
  EXPECT_EQ(chunked.execution.q_chunk(), expected.q_chunk);
  EXPECT_EQ(chunked.execution.kv_chunk(), expected.kv_chunk);

  const double peak = Metric(**server, "attnd_pool_peak_used_bytes", {"device=\"cuda:0\""});
  const double limit = Metric(**server, "attnd_pool_limit_bytes", {"device=\"cuda:0\""});
  EXPECT_EQ(limit, static_cast<double>(kPoolBytes));
  EXPECT_GT(peak, 0);
  EXPECT_LE(peak, static_cast<double>(kPoolBytes - kMarginBytes)) << "peak pool use " << peak;
  EXPECT_EQ(Metric(**server, "attnd_pool_used_bytes", {"device=\"cuda:0\""}), 0);
  EXPECT_LE(Metric(**server, "attnd_pool_reserved_bytes", {"device=\"cuda:0\""}),
            static_cast<double>(kPoolBytes));
  EXPECT_EQ(Metric(**server, "attnd_oom_retries_total"), 0);

  std::printf(
      "[ pool 4 GiB ] auto: %s\n[ pool 4 GiB ] chunked: %s\n[ pool 4 GiB ] peak pool "
      "use %.0f bytes (%.2f GiB) of the %.2f GiB budget\n",
      Describe(automatic).c_str(), Describe(chunked).c_str(), peak,
      peak / static_cast<double>(kGiB),
      static_cast<double>(kPoolBytes - kMarginBytes) / static_cast<double>(kGiB));
  RecordProperty("auto", Describe(automatic));
  RecordProperty("chunked", Describe(chunked));
  RecordProperty("peak_pool_used_bytes", std::to_string(static_cast<int64_t>(peak)));
}

TEST_F(GpuMemoryPromiseTest, CompletesWithSmallerChunksWhenAnotherProcessHoldsTheCard) {
  // The request first (generating it takes host memory and time, not device memory).
  const v1::AttendRequest& request = Request();
  absl::StatusOr<std::unique_ptr<HeldMemory>> held = HeldMemory::Start(3 * kGiB);
  ASSERT_TRUE(held.ok()) << held.status();
  std::printf("[ shared card ] hold_memory: %s", (*held)->line().c_str());
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(kConfig);
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = Connect(**server);
  ASSERT_NE(client, nullptr);
  const double free_before =
      Metric(**server, "attnd_device_memory_free_bytes", {"device=\"cuda:0\""});
  EXPECT_LE(free_before, static_cast<double>(3 * kGiB)) << "hold_memory left more than 3 GiB";

  const Outcome automatic = AttendAndCheck(client.get(), v1::VARIANT_AUTO);
  const Outcome chunked = AttendAndCheck(client.get(), v1::VARIANT_CHUNKED);
  const kernels::Plan full_pool = ChunkedPlanAtFullPool(request);
  const v1::Execution& e = chunked.execution;
  EXPECT_EQ(e.variant(), v1::VARIANT_CHUNKED);
  EXPECT_GT(e.q_chunk() * e.kv_chunk(), 0);
  EXPECT_LT(e.q_chunk() * e.kv_chunk(), full_pool.q_chunk * full_pool.kv_chunk)
      << "with 3 GiB free the chunks should be smaller than with the 4 GiB pool ("
      << full_pool.q_chunk << " x " << full_pool.kv_chunk << ")";
  EXPECT_LT(e.workspace_bytes(), full_pool.workspace_bytes);

  // The metrics saw the same chunks: the histogram of chunk sizes sums the plans that ran
  // (auto's and chunked's; OOM retries would add theirs and show in the retry counter).
  const double retries = Metric(**server, "attnd_oom_retries_total");
  const double q_sum = Metric(**server, "attnd_chunk_tokens_sum", {"axis=\"q\""});
  const double kv_sum = Metric(**server, "attnd_chunk_tokens_sum", {"axis=\"kv\""});
  if (retries == 0) {
    EXPECT_EQ(q_sum, static_cast<double>(automatic.execution.q_chunk() + e.q_chunk()));
    EXPECT_EQ(kv_sum, static_cast<double>(automatic.execution.kv_chunk() + e.kv_chunk()));
  }
  const double peak = Metric(**server, "attnd_pool_peak_used_bytes", {"device=\"cuda:0\""});
  EXPECT_LE(peak, free_before) << "the pool took more than the card had free";
  EXPECT_EQ(Metric(**server, "attnd_pool_used_bytes", {"device=\"cuda:0\""}), 0);

  std::printf(
      "[ shared card ] attnd saw %.2f GiB free\n[ shared card ] auto: %s\n"
      "[ shared card ] chunked: %s\n[ shared card ] full-pool chunked plan: q_chunk "
      "%lld kv_chunk %lld\n[ shared card ] peak pool use %.0f bytes, oom retries %.0f, "
      "chunk sums q %.0f kv %.0f\n",
      free_before / static_cast<double>(kGiB), Describe(automatic).c_str(),
      Describe(chunked).c_str(), static_cast<long long>(full_pool.q_chunk),
      static_cast<long long>(full_pool.kv_chunk), peak, retries, q_sum, kv_sum);
  RecordProperty("hold_memory", (*held)->line());
  RecordProperty("auto", Describe(automatic));
  RecordProperty("chunked", Describe(chunked));
  RecordProperty("peak_pool_used_bytes", std::to_string(static_cast<int64_t>(peak)));
}

}  // namespace
}  // namespace attnd::testing
