// The load generator against the in-process fake server. Counts only: no timing assertions.
#include "client/attnctl/load_runner.h"

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"

namespace attnd::attnctl {
namespace {

v1::AttendRequest SmallRequest() {
  client::RequestSpec spec;
  spec.batch = 1;
  spec.q_len = 4;
  spec.kv_len = 4;
  spec.heads = 2;
  spec.head_dim = 8;
  spec.seed = 1;
  return *client::GenerateRequest(spec);
}

std::unique_ptr<client::Client> Connect(const testing::FakeServer& server) {
  std::unique_ptr<client::Client> client = *client::Client::Create(server.address(), {});
  EXPECT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());
  return client;
}

TEST(LoadRunner, ClosedLoopCountsEveryRequest) {
  testing::FakeServer server;
  std::unique_ptr<client::Client> client = Connect(server);
  const v1::AttendRequest request = SmallRequest();
  LoadOptions options;
  options.concurrency = 16;
  options.requests = 400;
  LoadReport report = RunLoadTest(*client, request, options);
  EXPECT_EQ(report.requests, 400);
  EXPECT_EQ(report.ok, 400);
  EXPECT_TRUE(report.errors.empty());
  EXPECT_EQ(report.latency.count, 400);
  EXPECT_EQ(report.concurrency, 16);
  EXPECT_GT(report.duration_s, 0);
  EXPECT_GT(report.throughput_rps, 0);
  EXPECT_LE(report.latency.p50, report.latency.p99);
  EXPECT_LE(report.latency.p99, report.latency.max);
  EXPECT_EQ(server.service().attend_calls(), 400);
}

TEST(LoadRunner, ErrorsByCode) {
  testing::FakeServer server;
  server.service().set_fail_every(4);
  std::unique_ptr<client::Client> client = Connect(server);
  const v1::AttendRequest request = SmallRequest();
  LoadOptions options;
  options.concurrency = 64;
  options.requests = 200;
  LoadReport report = RunLoadTest(*client, request, options);
  EXPECT_EQ(report.requests, 200);
  EXPECT_EQ(report.ok, 150);
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors["RESOURCE_EXHAUSTED"], 50);
  EXPECT_EQ(report.latency.count, 150);  // latency of successful calls only
}

TEST(LoadRunner, OpenLoopSendsExactlyTheRequests) {
  testing::FakeServer server;
  std::unique_ptr<client::Client> client = Connect(server);
  const v1::AttendRequest request = SmallRequest();
  LoadOptions options;
  options.concurrency = 4;
  options.requests = 30;
  options.rps = 2000;
  LoadReport report = RunLoadTest(*client, request, options);
  EXPECT_EQ(report.requests, 30);
  EXPECT_EQ(report.ok, 30);
  EXPECT_EQ(report.target_rps, 2000);
}

TEST(LoadRunner, DurationStopsAndReportsProgress) {
  testing::FakeServer server;
  std::unique_ptr<client::Client> client = Connect(server);
  const v1::AttendRequest request = SmallRequest();
  LoadOptions options;
  options.concurrency = 8;
  options.duration = absl::Milliseconds(300);
  options.progress_interval = absl::Milliseconds(20);
  std::mutex mu;
  std::vector<LoadProgress> progress;
  options.on_progress = [&](const LoadProgress& p) {
    std::lock_guard<std::mutex> lock(mu);
    progress.push_back(p);
  };
  LoadReport report = RunLoadTest(*client, request, options);
  EXPECT_GT(report.requests, 0);
  EXPECT_EQ(report.ok, report.requests);
  EXPECT_EQ(server.service().attend_calls(), report.requests);
  std::lock_guard<std::mutex> lock(mu);
  for (size_t i = 1; i < progress.size(); ++i) {
    EXPECT_GE(progress[i].done, progress[i - 1].done);
    EXPECT_GE(progress[i].elapsed_s, progress[i - 1].elapsed_s);
  }
}

TEST(LoadRunner, EveryRequestFailingIsReported) {
  // Nothing listens on port 1: every call fails UNAVAILABLE (quickly, without WaitForReady).
  std::unique_ptr<client::Client> client = *client::Client::Create("127.0.0.1:1", {});
  const v1::AttendRequest request = SmallRequest();
  LoadOptions options;
  options.concurrency = 2;
  options.requests = 6;
  options.timeout = absl::Seconds(10);
  LoadReport report = RunLoadTest(*client, request, options);
  EXPECT_EQ(report.requests, 6);
  EXPECT_EQ(report.ok, 0);
  EXPECT_EQ(report.errors["UNAVAILABLE"], 6);
  EXPECT_EQ(report.throughput_rps, 0);
}

TEST(LoadRunner, SeveralRequestsAreSentInTurn) {
  testing::FakeServer server;
  std::mutex mu;
  std::map<std::string, int> seen;
  server.service().set_answer([&](const v1::AttendRequest& request, v1::AttendResponse* response) {
    testing::FakeAttention::Answer(request, response);
    std::lock_guard<std::mutex> lock(mu);
    ++seen[request.request_id()];
  });
  std::unique_ptr<client::Client> client = Connect(server);
  std::vector<v1::AttendRequest> requests(3, SmallRequest());
  for (int i = 0; i < 3; ++i) requests[i].set_request_id("m" + std::to_string(i));
  LoadOptions options;
  options.concurrency = 4;
  options.requests = 30;
  LoadReport report = RunLoadTest(*client, requests, options);
  EXPECT_EQ(report.ok, 30);
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_EQ(seen, (std::map<std::string, int>{{"m0", 10}, {"m1", 10}, {"m2", 10}}));
}

TEST(LoadRunner, EchoCallsEchoNotAttend) {
  testing::FakeServer server;  // implements no Echo: every call is UNIMPLEMENTED
  std::unique_ptr<client::Client> client = Connect(server);
  LoadOptions options;
  options.concurrency = 2;
  options.requests = 6;
  options.echo = true;
  LoadReport report = RunLoadTest(*client, SmallRequest(), options);
  EXPECT_EQ(report.requests, 6);
  EXPECT_EQ(report.ok, 0);
  EXPECT_EQ(report.errors["UNIMPLEMENTED"], 6);
  EXPECT_EQ(server.service().attend_calls(), 0);
}

}  // namespace
}  // namespace attnd::attnctl
