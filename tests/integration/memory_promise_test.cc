// The memory promise on the CPU, through a real attnd: Mq = Mk = 32768, H = 1, D = 64, f32 with
// the budget at 256 MiB. The full score matrix alone would need 4 GiB; attnd must run it in
// chunks, match the reference on sampled rows, and keep the process under 1 GiB resident.
#include <memory>

#include "client/client.h"
#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "tests/common/reference_check.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

TEST(MemoryPromiseTest, LongSequenceRunsInChunksUnderBudget) {
  constexpr int64_t kBudget = int64_t{256} << 20;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      "memory:\n  host_budget_bytes: 256MiB\n  host_fraction: 1.0\n  safety_margin_bytes: 0\n");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = *client::Client::Create((*server)->target(), client::ClientOptions());

  client::RequestSpec s;
  s.q_len = 32768;
  s.kv_len = 32768;
  s.heads = 1;
  s.head_dim = 64;
  s.causal = v1::CAUSAL_NONE;
  s.seed = 32768;
  s.request_id = "long";
  const v1::AttendRequest request = *client::GenerateRequest(s);
  absl::StatusOr<v1::AttendResponse> response = client->Attend(request, absl::Seconds(600));
  ASSERT_TRUE(response.ok()) << response.status();

  const v1::Execution& e = response->execution();
  EXPECT_EQ(e.variant(), v1::VARIANT_CPU_CHUNKED);
  EXPECT_LE(e.workspace_bytes(), kBudget);
  EXPECT_GT(e.workspace_bytes(), 0);
  // Chunked on at least one axis: the full 32768² f32 scores are 4 GiB.
  EXPECT_LT(e.q_chunk() * e.kv_chunk() * 4, int64_t{4} << 30);
  RecordProperty("q_chunk", static_cast<int>(e.q_chunk()));
  RecordProperty("kv_chunk", static_cast<int>(e.kv_chunk()));
  RecordProperty("compute_seconds", std::to_string(e.compute_seconds()));

  // Sampled rows: the first, some in the middle, the last.
  for (int64_t row : {int64_t{0}, int64_t{1}, int64_t{12345}, int64_t{32767}}) {
    EXPECT_TRUE(MatchesReference(request, *response, row, row + 1)) << "row " << row;
  }
  absl::StatusOr<int64_t> peak = (*server)->PeakRssBytes();
  ASSERT_TRUE(peak.ok()) << peak.status();
  EXPECT_LT(*peak, int64_t{1} << 30) << "peak RSS " << *peak;
  RecordProperty("server_peak_rss_bytes", std::to_string(*peak));
}

}  // namespace
}  // namespace attnd::testing
