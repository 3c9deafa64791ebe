// The queue under pressure, through a real attnd: a full queue answers RESOURCE_EXHAUSTED at
// once, a request whose deadline passes while queued is answered DEADLINE_EXCEEDED and never
// computed, and the request counters add up exactly.
#include <atomic>
#include <memory>
#include <thread>

#include "client/client.h"
#include "client/tensor_gen.h"
#include "gtest/gtest.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

// A request that keeps one worker busy for a while: the float64 reference over 1024² scores
// for 8 heads, forced.
v1::AttendRequest SlowRequest(const std::string& id) {
  client::RequestSpec s;
  s.q_len = 1024;
  s.kv_len = 1024;
  s.heads = 8;
  s.head_dim = 64;
  s.variant = v1::VARIANT_REFERENCE;
  s.request_id = id;
  return *client::GenerateRequest(s);
}

v1::AttendRequest SmallRequest(const std::string& id) {
  client::RequestSpec s;
  s.q_len = 8;
  s.kv_len = 8;
  s.heads = 1;
  s.head_dim = 8;
  s.request_id = id;
  return *client::GenerateRequest(s);
}

std::string Metrics(const ServerProcess& server) {
  absl::StatusOr<std::string> text = HttpGet(server.metrics_address(), "/metrics");
  return text.ok() ? *text : "";
}

TEST(QueueTest, FullQueueRefusesAtOnceAndCountersAddUp) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start("scheduler:\n  max_queue_requests: 2\n  workers: 1\n");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = *client::Client::Create((*server)->target(), client::ClientOptions());
  ASSERT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());

  constexpr int kRequests = 8;
  std::vector<absl::StatusCode> codes(kRequests);
  std::vector<absl::Duration> latencies(kRequests);
  std::vector<std::thread> threads;
  const v1::AttendRequest slow = SlowRequest("slow");
  for (int i = 0; i < kRequests; ++i) {
    threads.emplace_back([&, i] {
      const absl::Time start = absl::Now();
      codes[i] = client->Attend(slow, absl::Seconds(120)).status().code();
      latencies[i] = absl::Now() - start;
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0, exhausted = 0;
  for (int i = 0; i < kRequests; ++i) {
    if (codes[i] == absl::StatusCode::kOk) ++ok;
    if (codes[i] == absl::StatusCode::kResourceExhausted) {
      ++exhausted;
      // Refused without waiting for the queue to drain (the slow request takes far longer).
      EXPECT_LT(latencies[i], absl::Seconds(1));
    }
  }
  // One running plus two queued at most; the rest refused.
  EXPECT_GE(ok, 1);
  EXPECT_LE(ok, 3 + 1);  // +1: a worker may pick one up between two arrivals
  EXPECT_GE(exhausted, kRequests - 4);
  EXPECT_EQ(ok + exhausted, kRequests);

  const std::string metrics = Metrics(**server);
  EXPECT_EQ(MetricValue(metrics, "attnd_requests_total",
                        {"method=\"Attend\"", "code=\"RESOURCE_EXHAUSTED\""}),
            exhausted);
  EXPECT_EQ(MetricValue(metrics, "attnd_requests_total", {"method=\"Attend\"", "code=\"OK\""}), ok);
  // The server goes on serving.
  EXPECT_TRUE(client->Attend(SmallRequest("after"), absl::Seconds(30)).ok());
}

TEST(QueueTest, ExpiredDeadlineIsNeverComputed) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start("scheduler:\n  workers: 1\n");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = *client::Client::Create((*server)->target(), client::ClientOptions());
  ASSERT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());

  const double plans_before = MetricValue(Metrics(**server), "attnd_plans_total");
  const v1::AttendRequest slow_request = SlowRequest("slow");
  std::thread slow([&] { EXPECT_TRUE(client->Attend(slow_request, absl::Seconds(120)).ok()); });
  // The slow request holds the only worker once it is in flight.
  EXPECT_TRUE(WaitForMetric(**server, "attnd_inflight_requests", 1));
  absl::StatusOr<v1::AttendResponse> late =
      client->Attend(SmallRequest("late"), absl::Milliseconds(100));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  slow.join();
  absl::SleepFor(absl::Milliseconds(300));  // the scheduler drops the expired entry
  // Exactly one plan: the slow request's. The late one was dropped before planning.
  const std::string metrics = Metrics(**server);
  EXPECT_EQ(MetricValue(metrics, "attnd_plans_total") - plans_before, 1) << metrics;
  EXPECT_TRUE(client->Attend(SmallRequest("after"), absl::Seconds(30)).ok());
}

}  // namespace
}  // namespace attnd::testing
