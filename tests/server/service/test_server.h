// Helpers for the service tests: an in-process Server on 127.0.0.1:0 with a channel and stub to
// it. (The health and reflection probes are in tests/common/probes.h.)
#ifndef ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_
#define ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/config/config.h"
#include "server/metrics/metrics.h"
#include "server/service/server.h"

namespace attnd::testing {

inline server::Config TestConfig() {
  server::Config config;
  config.server.listen = "127.0.0.1:0";
  config.server.drain_timeout_seconds = 10;
  config.metrics.enabled = false;
  config.backend.kind = "cpu";
  config.backend.cpu_threads = 2;
  config.scheduler.workers = 1;
  return config;
}

struct TestServer {
  server::metrics::Registry registry;
  std::unique_ptr<server::service::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Attention::Stub> stub;

  std::string target() const { return absl::StrCat("127.0.0.1:", server->port()); }
};

inline std::unique_ptr<TestServer> StartTestServer(const server::Config& config = TestConfig()) {
  auto test = std::make_unique<TestServer>();
  absl::StatusOr<std::unique_ptr<server::service::Server>> server =
      server::service::Server::Start(config, &test->registry);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  test->server = *std::move(server);
  EXPECT_GT(test->server->port(), 0);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(64 << 20);
  test->channel =
      grpc::CreateCustomChannel(test->target(), grpc::InsecureChannelCredentials(), args);
  test->stub = v1::Attention::NewStub(test->channel);
  return test;
}

inline std::chrono::system_clock::time_point In(std::chrono::seconds s) {
  return std::chrono::system_clock::now() + s;
}

}  // namespace attnd::testing

#endif  // ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_
