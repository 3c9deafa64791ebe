// The queue under pressure, through a real attnd: a full queue answers RESOURCE_EXHAUSTED at
// once (with the queue capped at Q and Q + k sent at once, exactly k are refused, each within
// 5 ms), a request whose deadline passes while queued is answered DEADLINE_EXCEEDED and never
// computed, and the request counters add up exactly.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/barrier.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/create_channel.h"

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

// Q + k requests at once against a queue capped at Q whose only worker is held (its first launch
// stalls 2 s through ATTND_TEST_FAULTS): exactly k are refused RESOURCE_EXHAUSTED, each answered
// within 5 ms of being sent (measured at the client, so an upper bound on the server's part),
// the Q queued ones and the holder succeed, and attnd_requests_total adds up exactly by code.
TEST(QueueTest, QPlusKAtOnceShedsExactlyKWithin5msAndCountersAddUp) {
#ifndef ATTND_TEST_HOOKS
  GTEST_SKIP() << "attnd built without ATTND_TEST_HOOKS: the worker cannot be held";
#endif
  constexpr int kQ = 6;
  constexpr int kK = 4;
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(
      absl::StrCat("scheduler:\n  max_queue_requests: ", kQ, "\n  workers: 1\n"), {},
      {"ATTND_TEST_FAULTS=slow_kernel_ms=2000,slow_kernels=1"});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = grpc::CreateChannel((*server)->target(), grpc::InsecureChannelCredentials());
  ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + absl::Seconds(10))));
  auto stub = v1::Attention::NewStub(channel);

  std::thread holder([&] {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::AttendResponse response;
    EXPECT_TRUE(stub->Attend(&context, SmallRequest("holder"), &response).ok());
  });
  ASSERT_TRUE(WaitForMetric(**server, "attnd_inflight_requests", 1));

  // Every request serialized and every thread waiting at the barrier before any is sent.
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < kQ + kK; ++i) requests.push_back(SmallRequest(absl::StrCat("burst", i)));
  std::vector<grpc::StatusCode> codes(kQ + kK);
  std::vector<double> latency_ms(kQ + kK);
  absl::Barrier* start = new absl::Barrier(kQ + kK);  // deleted by the last thread through it
  std::vector<std::thread> threads;
  for (int i = 0; i < kQ + kK; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext context;
      context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
      v1::AttendResponse response;
      if (start->Block()) delete start;
      const absl::Time sent = absl::Now();
      codes[i] = stub->Attend(&context, requests[i], &response).error_code();
      latency_ms[i] = absl::ToDoubleMilliseconds(absl::Now() - sent);
    });
  }
  for (std::thread& t : threads) t.join();
  holder.join();

  int ok = 0;
  std::vector<double> refused_ms;
  for (int i = 0; i < kQ + kK; ++i) {
    if (codes[i] == grpc::StatusCode::OK) ++ok;
    if (codes[i] == grpc::StatusCode::RESOURCE_EXHAUSTED) refused_ms.push_back(latency_ms[i]);
  }
  std::sort(refused_ms.begin(), refused_ms.end());
  std::string measured;
  for (double ms : refused_ms) absl::StrAppend(&measured, measured.empty() ? "" : ", ", ms);
  std::printf("Q=%d k=%d: %zu refused, in ms: %s\n", kQ, kK, refused_ms.size(), measured.c_str());
  RecordProperty("refused_latency_ms", measured);
  EXPECT_EQ(ok, kQ);
  ASSERT_EQ(static_cast<int>(refused_ms.size()), kK);
  EXPECT_LT(refused_ms.back(), 5.0) << "slowest refusal";

  // Counted as each call ends on the server, which may be just after the client has its answer.
  EXPECT_TRUE(WaitForMetric(**server, "attnd_requests_total", 1 + kQ + kK, absl::Seconds(5)));
  const std::string metrics = Metrics(**server);
  const double total = MetricValue(metrics, "attnd_requests_total", {"method=\"Attend\""});
  const double ok_count =
      MetricValue(metrics, "attnd_requests_total", {"method=\"Attend\"", "code=\"OK\""});
  const double shed = MetricValue(metrics, "attnd_requests_total",
                                  {"method=\"Attend\"", "code=\"RESOURCE_EXHAUSTED\""});
  EXPECT_EQ(total, 1 + kQ + kK) << metrics;
  EXPECT_EQ(ok_count, 1 + kQ);
  EXPECT_EQ(shed, kK);
  EXPECT_EQ(total, ok_count + shed);  // no other code
  EXPECT_EQ(MetricValue(metrics, "attnd_queue_depth"), 0);
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
