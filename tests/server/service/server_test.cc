// The Server in-process: unary Attend against the reference, validation errors, GetServerInfo,
// health (SERVING, then NOT_SERVING on drain), reflection, drain with a request in flight, and
// start-up errors.
#include "server/service/server.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/service/server_info.h"
#include "tests/common/probes.h"
#include "tests/common/reference_check.h"
#include "tests/common/requests.h"
#include "tests/server/service/test_server.h"

namespace attnd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

grpc::Status Attend(TestServer& test, const v1::AttendRequest& request,
                    v1::AttendResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(60)));
  return test.stub->Attend(&context, request, response);
}

// A request that computes for a while (B=1, Mq=Mk=512, H=4, D=64 on the float64 reference,
// forced), so that a test can act while it runs.
v1::AttendRequest SlowRequest(uint64_t seed, const std::string& id) {
  client::RequestSpec spec = SmallSpec();
  spec.batch = 1;
  spec.q_len = 512;
  spec.kv_len = 512;
  spec.heads = 4;
  spec.kv_heads = 4;
  spec.head_dim = 64;
  spec.v_head_dim = 64;
  spec.variant = v1::VARIANT_REFERENCE;
  return MakeRequest(spec, seed, id);
}

// Returns once the one forced-reference request is computing or done, by the scheduler's own
// gauge and the plan counter.
void WaitUntilComputingOrDone(TestServer& test) {
  while (test.registry.Render().find("attnd_inflight_requests 1") == std::string::npos &&
         test.registry.Render().find("attnd_plans_total{variant=\"reference\"} 1") ==
             std::string::npos) {
    absl::SleepFor(absl::Milliseconds(5));
  }
}

TEST(ServerTest, AttendMatchesTheReference) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.causal = v1::CAUSAL_TOP_LEFT;
  spec.q_len = 37;
  spec.kv_len = 53;
  const v1::AttendRequest request = MakeRequest(spec, 7, "unary-1");
  v1::AttendResponse response;
  grpc::Status status = Attend(*test, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.request_id(), "unary-1");
  EXPECT_EQ(response.execution().device(), "cpu");
  EXPECT_EQ(response.execution().batch_size(), 1);
  EXPECT_GE(response.execution().queue_seconds(), 0.0);
  EXPECT_TRUE(MatchesReference(request, response));

  const std::string metrics = test->registry.Render();
  EXPECT_THAT(metrics, HasSubstr("attnd_requests_total{method=\"Attend\",code=\"OK\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("attnd_request_duration_seconds_count{method=\"Attend\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("attnd_build_info{version=\"" +
                                 std::string(server::service::Version()) + "\",backend=\"cpu\""));
  EXPECT_THAT(metrics, HasSubstr("attnd_plans_total{variant=\"cpu_chunked\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("attnd_queue_depth 0"));
  EXPECT_THAT(metrics, Not(HasSubstr("attnd_bytes_received_total 0\n")));
  EXPECT_THAT(metrics, Not(HasSubstr("attnd_bytes_sent_total 0\n")));
}

TEST(ServerTest, InvalidRequestIsInvalidArgumentNamingTheFieldAndServingGoesOn) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  client::RequestSpec spec = SmallSpec();
  spec.heads = 4;
  spec.kv_heads = 3;  // 4 % 3 != 0
  v1::AttendRequest bad = MakeRequest(spec, 9, "bad");
  v1::AttendResponse response;
  grpc::Status status = Attend(*test, bad, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("k.shape"));

  v1::AttendRequest truncated = MakeRequest(SmallSpec(), 10, "short");
  truncated.mutable_q()->mutable_data()->pop_back();
  status = Attend(*test, truncated, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("q"));

  const v1::AttendRequest good = MakeRequest(SmallSpec(), 11, "good");
  status = Attend(*test, good, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(MatchesReference(good, response));
  EXPECT_THAT(test->registry.Render(),
              HasSubstr("attnd_requests_total{method=\"Attend\",code=\"INVALID_ARGUMENT\"} 2"));
}

TEST(ServerTest, AnswerLargerThanTheMessageLimitIsRefusedBeforeComputing) {
  server::Config config = TestConfig();
  config.server.max_message_bytes = 32 << 10;
  auto test = StartTestServer(config);
  ASSERT_NE(test, nullptr);
  client::RequestSpec spec = SmallSpec();  // a small request (~5 KiB) with a large answer (~64 KiB)
  spec.batch = 1;
  spec.q_len = 128;
  spec.kv_len = 4;
  spec.heads = 2;
  spec.kv_heads = 1;
  spec.head_dim = 4;
  spec.v_head_dim = 64;
  const v1::AttendRequest request = MakeRequest(spec, 12, "too-big");
  v1::AttendResponse response;
  grpc::Status status = Attend(*test, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("server.max_message_bytes"));
  EXPECT_THAT(test->registry.Render(), Not(HasSubstr("attnd_plans_total{")));
}

TEST(ServerTest, GetServerInfoDescribesTheCpuServer) {
  server::Config config = TestConfig();
  config.limits.max_head_dim = 512;
  config.scheduler.max_queue_requests = 17;
  config.limits.max_tokens = 4096;
  config.server.max_concurrent_streams = 9;
  auto test = StartTestServer(config);
  ASSERT_NE(test, nullptr);
  grpc::ClientContext context;
  v1::ServerInfo info;
  grpc::Status status = test->stub->GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(info.version(), server::service::Version());
  EXPECT_FALSE(info.version().empty());
  EXPECT_EQ(info.backend(), "cpu");
  ASSERT_EQ(info.devices_size(), 1);
  EXPECT_EQ(info.devices(0).name(), "cpu");
  EXPECT_EQ(info.devices(0).kind(), "cpu");
  EXPECT_GT(info.devices(0).memory_total_bytes(), 0);
  EXPECT_GT(info.devices(0).memory_budget_bytes(), 0);
  EXPECT_THAT(info.dtypes(), ::testing::ElementsAre(v1::DTYPE_F32, v1::DTYPE_F16, v1::DTYPE_BF16));
  EXPECT_THAT(info.variants(), ::testing::Contains(v1::VARIANT_CPU_CHUNKED));
  EXPECT_THAT(info.variants(), ::testing::Contains(v1::VARIANT_REFERENCE));
  EXPECT_EQ(info.max_head_dim(), 512);
  EXPECT_EQ(info.limits().max_head_dim(), 512);
  EXPECT_EQ(info.limits().max_queue_requests(), 17);
  EXPECT_EQ(info.limits().max_message_bytes(), config.server.max_message_bytes);
  EXPECT_EQ(info.limits().max_tokens(), 4096);
  EXPECT_EQ(info.limits().max_concurrent_streams(), 9);
  EXPECT_THAT(info.build(), HasSubstr("grpc"));
}

TEST(ServerTest, ReflectionListsTheAttentionService) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  absl::StatusOr<std::vector<std::string>> names = ListServices(test->channel, absl::Seconds(60));
  ASSERT_TRUE(names.ok()) << names.status();
  EXPECT_THAT(*names, ::testing::Contains("attnd.v1.Attention"));
  EXPECT_THAT(*names, ::testing::Contains("grpc.health.v1.Health"));
}

TEST(ServerTest, HealthIsServingThenNotServingOnDrain) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  absl::StatusOr<int> overall = HealthCheck(test->channel, "", absl::Seconds(60));
  ASSERT_TRUE(overall.ok()) << overall.status();
  EXPECT_EQ(*overall, kHealthServing);
  absl::StatusOr<int> attention =
      HealthCheck(test->channel, "attnd.v1.Attention", absl::Seconds(60));
  ASSERT_TRUE(attention.ok()) << attention.status();
  EXPECT_EQ(*attention, kHealthServing);

  // A watcher (as a load balancer keeps) sees the change when the drain begins.
  auto watch = std::make_unique<HealthWatch>(test->channel, "", absl::Seconds(60));
  absl::StatusOr<int> update = watch->Next();
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(*update, kHealthServing);

  std::thread drain([&] { test->server->Drain(absl::Seconds(5)); });
  update = watch->Next();
  ASSERT_TRUE(update.ok()) << update.status();
  EXPECT_EQ(*update, kHealthNotServing);
  watch.reset();  // ends the watch so the drain can finish
  drain.join();
}

TEST(ServerTest, DrainLetsTheRequestInFlightFinish) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  // Long enough to be running when the drain starts.
  const v1::AttendRequest request = SlowRequest(13, "in-flight");
  v1::AttendResponse response;
  grpc::Status status;
  std::thread call([&] { status = Attend(*test, request, &response); });
  WaitUntilComputingOrDone(*test);
  EXPECT_TRUE(test->server->Drain(absl::Seconds(30)));
  call.join();
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.request_id(), "in-flight");
  EXPECT_EQ(response.execution().variant(), v1::VARIANT_REFERENCE);

  // Drained: new calls are refused.
  v1::AttendResponse refused;
  grpc::ClientContext context;
  context.set_deadline(In(std::chrono::seconds(5)));
  EXPECT_FALSE(test->stub->Attend(&context, MakeRequest(SmallSpec(), 14), &refused).ok());
  EXPECT_TRUE(test->server->Drain(absl::Seconds(1)));  // idempotent
}

TEST(ServerTest, DrainRefusesNewCallsUnavailableWhileTheOpenOneFinishes) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  const v1::AttendRequest request = SlowRequest(17, "in-flight");
  v1::AttendResponse response;
  grpc::Status status;
  std::thread call([&] { status = Attend(*test, request, &response); });
  WaitUntilComputingOrDone(*test);
  bool clean = false;
  std::thread drain([&] { clean = test->server->Drain(absl::Seconds(30)); });
  // Until the drain begins a new call is answered; from then on the server still listens (the
  // open call is being answered) but refuses new work, by name, so a client retries elsewhere.
  grpc::Status refused;
  for (int i = 0; i < 1000 && refused.ok(); ++i) {
    v1::AttendResponse small;
    refused = Attend(*test, MakeRequest(SmallSpec(), 18, "new"), &small);
  }
  drain.join();
  call.join();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_THAT(refused.error_message(), HasSubstr("draining"));
  EXPECT_TRUE(clean);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.request_id(), "in-flight");
  const std::string refused_count =
      "attnd_requests_total{method=\"Attend\",code=\"UNAVAILABLE\"} 1";
  EXPECT_NE(test->registry.Render().find(refused_count), std::string::npos) << refused_count;
}

TEST(ServerTest, ExpiredDeadlineIsDeadlineExceededAndNeverPlanned) {
  auto test = StartTestServer();
  ASSERT_NE(test, nullptr);
  const v1::AttendRequest slow = SlowRequest(15, "slow");
  grpc::Status slow_status;
  v1::AttendResponse slow_response;
  std::thread slow_call([&] { slow_status = Attend(*test, slow, &slow_response); });
  while (test->registry.Render().find("attnd_inflight_requests 1") == std::string::npos) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(50));
  v1::AttendResponse late;
  grpc::Status status = test->stub->Attend(&context, MakeRequest(SmallSpec(), 16, "late"), &late);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  slow_call.join();
  ASSERT_TRUE(slow_status.ok()) << slow_status.error_message();
  // Only the slow request was planned; the late one was dropped from the queue.
  ASSERT_TRUE(test->server->Drain(absl::Seconds(10)));
  const std::string metrics = test->registry.Render();
  EXPECT_THAT(metrics, HasSubstr("attnd_plans_total{variant=\"reference\"} 1"));
  EXPECT_THAT(metrics, Not(HasSubstr("attnd_plans_total{variant=\"cpu_chunked\"}")));
}

TEST(ServerTest, PortInUseIsAStartupErrorNamingServerListen) {
  auto first = StartTestServer();
  ASSERT_NE(first, nullptr);
  server::Config config = TestConfig();
  config.server.listen = first->target();
  server::metrics::Registry registry;
  absl::StatusOr<std::unique_ptr<server::service::Server>> second =
      server::service::Server::Start(config, &registry);
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("server.listen"));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr(first->target()));
}

TEST(ServerTest, CudaBackendWithoutCudaIsAStartupErrorNamingBackendKind) {
  server::Config config = TestConfig();
  config.backend.kind = "cuda";
  absl::StatusOr<std::unique_ptr<server::service::Server>> server =
      server::service::Server::Start(config, nullptr);
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(std::string(server.status().message()), HasSubstr("backend.kind"));
}

}  // namespace
}  // namespace attnd::testing
