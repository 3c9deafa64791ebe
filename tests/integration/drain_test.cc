// SIGTERM with a request in flight: health stops reporting SERVING, the request still finishes
// with its result, and attnd exits 0 within its drain timeout.
#include <signal.h>

#include <memory>
#include <thread>

#include "client/client.h"
#include "client/tensor_gen.h"
#include "grpcpp/create_channel.h"
#include "gtest/gtest.h"
#include "tests/common/probes.h"
#include "tests/common/reference_check.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

TEST(DrainTest, SigtermFinishesInFlightRequestAndExitsZero) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start("server:\n  listen: 127.0.0.1:0\n  drain_timeout_seconds: 30\n");
  ASSERT_TRUE(server.ok()) << server.status();
  auto client = *client::Client::Create((*server)->target(), client::ClientOptions());
  ASSERT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());
  auto channel = grpc::CreateChannel((*server)->target(), grpc::InsecureChannelCredentials());

  // A request that takes about a second: the float64 reference, forced.
  client::RequestSpec s;
  s.q_len = 1024;
  s.kv_len = 1024;
  s.heads = 8;
  s.head_dim = 64;
  s.variant = v1::VARIANT_REFERENCE;
  s.request_id = "in-flight";
  const v1::AttendRequest request = *client::GenerateRequest(s);
  absl::StatusOr<v1::AttendResponse> response;
  std::thread in_flight([&] { response = client->Attend(request, absl::Seconds(60)); });
  // SIGTERM only once the request is computing, however slow the machine.
  EXPECT_TRUE(WaitForMetric(**server, "attnd_inflight_requests", 1));

  const absl::Time sent = absl::Now();
  (*server)->Signal(SIGTERM);
  // While draining, health no longer says SERVING (NOT_SERVING, or the port already closed).
  bool saw_not_serving = false;
  for (int i = 0; i < 50 && !saw_not_serving; ++i) {
    absl::StatusOr<int> health = HealthCheck(channel, "", absl::Seconds(1));
    saw_not_serving = !health.ok() || *health == kHealthNotServing;
    if (!saw_not_serving) absl::SleepFor(absl::Milliseconds(20));
  }
  EXPECT_TRUE(saw_not_serving);

  in_flight.join();
  ASSERT_TRUE(response.ok()) << response.status() << "\nserver log:\n" << (*server)->Log();
  EXPECT_TRUE(MatchesReference(request, *response));
  absl::StatusOr<int> exit_code = (*server)->WaitForExit(absl::Seconds(30) * kSanitizerSlowdown);
  ASSERT_TRUE(exit_code.ok()) << (*server)->Log();
  EXPECT_EQ(*exit_code, 0) << (*server)->Log();
  EXPECT_LT(absl::Now() - sent, absl::Seconds(30) * kSanitizerSlowdown);
  EXPECT_NE((*server)->Log().find("drain"), std::string::npos) << (*server)->Log();
}

TEST(DrainTest, BadConfigKeyFailsStartupNamingTheKey) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server =
      ServerProcess::Start("scheduler:\n  max_queue_requets: 3\n");
  ASSERT_FALSE(server.ok());
  EXPECT_NE(server.status().message().find("scheduler.max_queue_requets"), std::string::npos)
      << server.status();
}

}  // namespace
}  // namespace attnd::testing
