// Batching through the real Server on the CPU backend: requests that queue behind a busy worker
// run as batches and answer exactly the bytes an unbatched server answers; the batch metrics
// and the host-copy counter move; Echo answers Attend's sizes without computing.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"
#include "tests/server/service/test_server.h"

namespace attnd::testing {
namespace {

using ::testing::HasSubstr;

// A request that keeps the only worker busy for a while: the float64 reference over 1024²
// scores for 8 heads, forced.
v1::AttendRequest Blocker() {
  client::RequestSpec spec = SmallSpec();
  spec.batch = 1;
  spec.q_len = 1024;
  spec.kv_len = 1024;
  spec.heads = 8;
  spec.kv_heads = 8;
  spec.head_dim = 64;
  spec.v_head_dim = 64;
  spec.return_lse = false;
  spec.variant = v1::VARIANT_REFERENCE;
  return MakeRequest(spec, 1, "blocker");
}

// Requests of two batch keys (f32 and f16), lengths all different; two of the f32 ones carry a
// bias (padded in a ragged launch).
std::vector<v1::AttendRequest> Waiting() {
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < 8; ++i) {
    client::RequestSpec spec = SmallSpec();
    spec.q_len = 3 + 5 * i;
    spec.kv_len = 50 - 4 * i;
    if (i % 3 == 2) spec.dtype = v1::DTYPE_F16;
    if (i == 3 || i == 7) {  // f32 both, with an f32 bias per query and key: a launch of their own
      spec.bias = true;
      spec.bias_shape = {1, 1, spec.q_len, spec.kv_len};
    }
    requests.push_back(MakeRequest(spec, 100 + i, "w" + std::to_string(i)));
  }
  return requests;
}

double Metric(TestServer& test, const std::string& line_prefix) {
  const std::string text = test.registry.Render();
  const size_t at = text.find("\n" + line_prefix + " ");
  if (at == std::string::npos) return -1;
  return std::stod(text.substr(at + line_prefix.size() + 2));
}

grpc::Status Call(TestServer& test, const v1::AttendRequest& request, v1::AttendResponse* response,
                  bool echo = false) {
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(120)));
  return echo ? test.stub->Echo(&context, request, response)
              : test.stub->Attend(&context, request, response);
}

// What a set of concurrent calls got back.
struct Answers {
  std::vector<grpc::Status> statuses;
  std::vector<v1::AttendResponse> responses;
};

// Keeps `test` busy with one slow request, sends `requests` at once behind it (so that the queue
// hands them over in batches) and returns what they got once every call is answered.
Answers SendBehindABlocker(TestServer& test, const std::vector<v1::AttendRequest>& requests) {
  std::thread blocker([&] {
    v1::AttendResponse response;
    EXPECT_TRUE(Call(test, Blocker(), &response).ok());
  });
  for (int i = 0; i < 2000 && Metric(test, "attnd_inflight_requests") < 1; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(Metric(test, "attnd_inflight_requests"), 1);
  Answers answers;
  answers.statuses.resize(requests.size());
  answers.responses.resize(requests.size());
  std::vector<std::thread> callers;
  for (size_t i = 0; i < requests.size(); ++i) {
    callers.emplace_back(
        [&, i] { answers.statuses[i] = Call(test, requests[i], &answers.responses[i]); });
  }
  for (std::thread& t : callers) t.join();
  blocker.join();
  return answers;
}

TEST(BatchingTest, QueuedRequestsRunInBatchesWithTheBytesOfUnbatchedRuns) {
  server::Config on = TestConfig();
  on.scheduler.max_batch_requests = 16;
  on.scheduler.ragged_launch = true;
  auto batched = StartTestServer(on);
  server::Config off = TestConfig();
  off.scheduler.max_batch_requests = 1;
  auto unbatched = StartTestServer(off);
  ASSERT_NE(batched, nullptr);
  ASSERT_NE(unbatched, nullptr);

  const std::vector<v1::AttendRequest> requests = Waiting();
  const Answers answers = SendBehindABlocker(*batched, requests);
  const std::vector<grpc::Status>& statuses = answers.statuses;
  const std::vector<v1::AttendResponse>& responses = answers.responses;

  int largest_batch = 0;
  int in_launches = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_TRUE(MatchesReference(requests[i], responses[i])) << i;
    const v1::Execution& execution = responses[i].execution();
    largest_batch = std::max(largest_batch, execution.batch_size());
    // A request of a ragged launch says so, and reports the launch's plan.
    ASSERT_GE(execution.launch_requests(), 1);
    if (execution.launch_requests() > 1) {
      ++in_launches;
      EXPECT_LE(execution.launch_requests(), execution.batch_size());
      EXPECT_THAT(execution.plan_reason(),
                  ::testing::StartsWith(absl::StrCat(
                      "ragged launch of ", execution.launch_requests(), " requests: ")));
    }
    v1::AttendResponse alone;
    ASSERT_TRUE(Call(*unbatched, requests[i], &alone).ok());
    EXPECT_EQ(alone.execution().batch_size(), 1);
    EXPECT_EQ(alone.execution().launch_requests(), 1);
    EXPECT_EQ(responses[i].out().data(), alone.out().data()) << "request " << i;
    EXPECT_EQ(responses[i].lse().data(), alone.lse().data()) << "request " << i;
  }
  // Most of what waited behind the blocker ran together (two keys: two batches at least).
  EXPECT_GE(largest_batch, 2);
  const double batches = Metric(*batched, "attnd_batch_size_count");
  EXPECT_EQ(Metric(*batched, "attnd_batch_size_sum"), 1 + requests.size());
  EXPECT_LT(batches, 1 + requests.size());
  EXPECT_EQ(Metric(*batched, "attnd_batch_tokens_count"), batches);
  EXPECT_EQ(Metric(*batched, "attnd_queue_duration_seconds_count"), 1 + requests.size());
  EXPECT_EQ(Metric(*batched, "attnd_stage_duration_seconds_count{stage=\"compute\"}"),
            1 + requests.size());
  // Unbatched: one batch per request.
  EXPECT_EQ(Metric(*unbatched, "attnd_batch_size_sum"),
            Metric(*unbatched, "attnd_batch_size_count"));
  // The batches' compatible requests ran as ragged launches (scheduler.ragged_launch), and
  // answered the bytes of their unbatched runs above.
  EXPECT_GE(Metric(*batched, "attnd_ragged_launches_total"), 1);
  EXPECT_EQ(Metric(*batched, "attnd_ragged_launch_requests_total"), in_launches);
  EXPECT_GE(Metric(*batched, "attnd_ragged_launch_requests_total"),
            2 * Metric(*batched, "attnd_ragged_launches_total"));
  EXPECT_EQ(Metric(*unbatched, "attnd_ragged_launches_total"), 0);
}

// scheduler.ragged_launch: false: the same batches run request by request, with the same bytes.
TEST(BatchingTest, RaggedLaunchOffRunsBatchesRequestByRequest) {
  server::Config config = TestConfig();
  config.scheduler.max_batch_requests = 16;
  config.scheduler.ragged_launch = false;
  auto test = StartTestServer(config);
  ASSERT_NE(test, nullptr);
  const std::vector<v1::AttendRequest> requests = Waiting();
  const Answers answers = SendBehindABlocker(*test, requests);
  const std::vector<grpc::Status>& statuses = answers.statuses;
  const std::vector<v1::AttendResponse>& responses = answers.responses;
  int largest_batch = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(statuses[i].ok()) << statuses[i].error_message();
    EXPECT_TRUE(MatchesReference(requests[i], responses[i])) << i;
    largest_batch = std::max(largest_batch, responses[i].execution().batch_size());
  }
  EXPECT_GE(largest_batch, 2);  // batched, but no launch shared
  EXPECT_EQ(Metric(*test, "attnd_ragged_launches_total"), 0);
  EXPECT_EQ(Metric(*test, "attnd_ragged_launch_requests_total"), 0);
}

// The host copies of a request's bytes on the CPU backend, measured: gRPC's parse of each request
// and serialization of each response, nothing in between (the kernels read and write the
// messages in place). On a GPU staging_in / staging_out add one copy each way (bench/RESULTS.md).
TEST(BatchingTest, HostCopiesOnTheCpuAreOneEachWay) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  for (const v1::AttendRequest& request : Waiting()) {
    v1::AttendResponse response;
    ASSERT_TRUE(Call(*test, request, &response).ok());
  }
  const double received = Metric(*test, "attnd_bytes_received_total");
  const double sent = Metric(*test, "attnd_bytes_sent_total");
  EXPECT_GT(received, 0);
  const double in = Metric(*test, "attnd_host_copy_bytes_total{stage=\"grpc_parse\"}") +
                    Metric(*test, "attnd_host_copy_bytes_total{stage=\"staging_in\"}");
  const double out = Metric(*test, "attnd_host_copy_bytes_total{stage=\"staging_out\"}") +
                     Metric(*test, "attnd_host_copy_bytes_total{stage=\"grpc_serialize\"}");
  EXPECT_DOUBLE_EQ(in / received, 1.0);
  EXPECT_DOUBLE_EQ(out / sent, 1.0);
  EXPECT_EQ(Metric(*test, "attnd_host_copy_bytes_total{stage=\"staging_in\"}"), 0);
}

TEST(BatchingTest, EchoAnswersAttendsSizesWithoutComputing) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.v_head_dim = 24;  // out differs from q in size
  const v1::AttendRequest request = MakeRequest(spec, 9, "echo");
  v1::AttendResponse echo;
  ASSERT_TRUE(Call(*test, request, &echo, /*echo=*/true).ok());
  v1::AttendResponse attend;
  ASSERT_TRUE(Call(*test, request, &attend).ok());
  EXPECT_EQ(echo.request_id(), "echo");
  EXPECT_EQ(echo.execution().device(), "echo");
  EXPECT_EQ(echo.out().dtype(), attend.out().dtype());
  EXPECT_THAT(echo.out().shape(), ::testing::ElementsAreArray(attend.out().shape()));
  EXPECT_EQ(echo.out().data().size(), attend.out().data().size());
  EXPECT_EQ(echo.lse().data().size(), attend.lse().data().size());
  const std::string text = test->registry.Render();
  EXPECT_THAT(text, HasSubstr("attnd_requests_total{method=\"Echo\",code=\"OK\"} 1"));
  EXPECT_THAT(text, HasSubstr("attnd_plans_total{variant=\"cpu_chunked\"} 1"));  // Attend's only

  v1::AttendRequest bad = request;
  bad.mutable_q()->mutable_data()->pop_back();
  grpc::Status status = Call(*test, bad, &echo, /*echo=*/true);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

}  // namespace
}  // namespace attnd::testing
