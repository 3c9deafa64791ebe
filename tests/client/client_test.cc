// The client library against an in-process fake server (no attention computed).
#include "client/client.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <future>

#include "absl/strings/str_cat.h"
#include "client/tensor_gen.h"
#include "gmock/gmock.h"
#include "grpcpp/health_check_service_interface.h"
#include "gtest/gtest.h"
#include "tests/client/fake_server.h"

namespace attnd::client {
namespace {

using ::testing::HasSubstr;

v1::AttendRequest SmallRequest(const std::string& id) {
  RequestSpec spec;
  spec.batch = 1;
  spec.q_len = 3;
  spec.kv_len = 5;
  spec.heads = 2;
  spec.head_dim = 4;
  spec.seed = 9;
  spec.request_id = id;
  absl::StatusOr<v1::AttendRequest> request = GenerateRequest(spec);
  EXPECT_TRUE(request.ok());
  return *request;
}

std::unique_ptr<Client> Connect(const std::string& target, ClientOptions options = {}) {
  absl::StatusOr<std::unique_ptr<Client>> client = Client::Create(target, options);
  EXPECT_TRUE(client.ok()) << client.status();
  return std::move(*client);
}

TEST(Client, StatusConversionKeepsCodeAndMessage) {
  EXPECT_TRUE(FromGrpcStatus(grpc::Status::OK).ok());
  const std::pair<grpc::StatusCode, absl::StatusCode> codes[] = {
      {grpc::StatusCode::INVALID_ARGUMENT, absl::StatusCode::kInvalidArgument},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, absl::StatusCode::kResourceExhausted},
      {grpc::StatusCode::DEADLINE_EXCEEDED, absl::StatusCode::kDeadlineExceeded},
      {grpc::StatusCode::UNAVAILABLE, absl::StatusCode::kUnavailable},
      {grpc::StatusCode::CANCELLED, absl::StatusCode::kCancelled},
      {grpc::StatusCode::UNAUTHENTICATED, absl::StatusCode::kUnauthenticated}};
  for (const auto& [grpc_code, absl_code] : codes) {
    absl::Status s = FromGrpcStatus(grpc::Status(grpc_code, "why"));
    EXPECT_EQ(s.code(), absl_code);
    EXPECT_EQ(s.message(), "why");
  }
}

TEST(Client, CreateRefusesBadOptions) {
  EXPECT_EQ(Client::Create("", {}).status().code(), absl::StatusCode::kInvalidArgument);
  ClientOptions options;
  options.channels = 0;
  EXPECT_THAT(std::string(Client::Create("127.0.0.1:1", options).status().message()),
              HasSubstr("channels = 0"));
  options = {};
  options.load_balancing = "random";
  EXPECT_THAT(std::string(Client::Create("127.0.0.1:1", options).status().message()),
              HasSubstr("load_balancing"));
  options = {};
  options.max_message_bytes = 0;
  EXPECT_FALSE(Client::Create("127.0.0.1:1", options).ok());
}

TEST(Client, CreateRefusesInconsistentSecurityOptions) {
  ClientOptions options;
  options.tls_root_certs_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_THAT(std::string(Client::Create("127.0.0.1:1", options).status().message()),
              HasSubstr("use_tls is false"));
  options = {};
  options.use_tls = true;
  options.tls_cert_chain_pem = "-----BEGIN CERTIFICATE-----";
  EXPECT_THAT(std::string(Client::Create("127.0.0.1:1", options).status().message()),
              HasSubstr("come together"));
  options = {};
  options.bearer_token = "two words";
  EXPECT_THAT(std::string(Client::Create("127.0.0.1:1", options).status().message()),
              HasSubstr("bearer_token"));
  options.bearer_token = "one-token";
  EXPECT_TRUE(Client::Create("127.0.0.1:1", options).ok());
}

TEST(Client, ReadTokenFileTakesTheFirstTokenLine) {
  char name[] = "/tmp/attnd_client_token_XXXXXX";
  close(mkstemp(name));
  std::ofstream(name) << "# comment\n\n  the-token  \nsecond\n";
  absl::StatusOr<std::string> token = ReadTokenFile(name);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_EQ(*token, "the-token");
  std::ofstream(name, std::ios::trunc) << "# only a comment\n";
  EXPECT_THAT(std::string(ReadTokenFile(name).status().message()), HasSubstr("no token"));
  std::remove(name);
  EXPECT_THAT(std::string(ReadTokenFile(name).status().message()), HasSubstr("cannot read"));
}

TEST(Client, AttendAndServerInfo) {
  testing::FakeServer server;
  std::unique_ptr<Client> client = Connect(server.address());
  v1::AttendRequest request = SmallRequest("a1");
  absl::StatusOr<v1::AttendResponse> response = client->Attend(request, absl::Seconds(10));
  ASSERT_TRUE(response.ok()) << response.status();
  EXPECT_EQ(response->request_id(), "a1");
  EXPECT_EQ(response->out().data(), request.q().data());
  EXPECT_EQ(response->execution().device(), "fake:0");

  absl::StatusOr<v1::ServerInfo> info = client->GetServerInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->version(), "fake-1.0");
  ASSERT_EQ(info->devices_size(), 1);
  EXPECT_EQ(info->devices(0).name(), "cpu:0");
}

TEST(Client, ServerErrorsKeepTheirCodeAndMessage) {
  testing::FakeServer server;
  std::unique_ptr<Client> client = Connect(server.address());
  absl::StatusOr<v1::AttendResponse> response = client->Attend(SmallRequest("invalid"));
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(response.status().message()), HasSubstr("q.shape[2] (Hq)"));
}

TEST(Client, DeadlineExceeded) {
  testing::FakeServer server;
  std::unique_ptr<Client> client = Connect(server.address());
  ASSERT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());
  absl::StatusOr<v1::AttendResponse> response =
      client->Attend(SmallRequest("slow"), absl::Milliseconds(20));
  EXPECT_EQ(response.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(Client, NoServerIsUnavailable) {
  // Port 1 on loopback: nothing listens there.
  std::unique_ptr<Client> client = Connect("127.0.0.1:1");
  absl::StatusOr<v1::ServerInfo> info = client->GetServerInfo(absl::Seconds(5));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->WaitForReady(absl::Milliseconds(50)).code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST(Client, CheckHealthReadsEachServingStatus) {
  // gRPC's own health service (as attnd enables it), with one service serving and one not.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  testing::FakeAttention attention;  // a callback service, so the server polls its queue
  builder.RegisterService(&attention);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  grpc::HealthCheckServiceInterface* health = server->GetHealthCheckService();
  ASSERT_NE(health, nullptr);
  health->SetServingStatus("attnd.v1.Attention", true);
  health->SetServingStatus("draining.Service", false);

  std::unique_ptr<Client> client = Connect(absl::StrCat("127.0.0.1:", port));
  absl::StatusOr<HealthStatus> status = client->CheckHealth("", absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, HealthStatus::kServing);
  status = client->CheckHealth("attnd.v1.Attention", absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, HealthStatus::kServing);
  status = client->CheckHealth("draining.Service", absl::Seconds(10));
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, HealthStatus::kNotServing);
  EXPECT_STREQ(HealthStatusName(*status), "NOT_SERVING");
  EXPECT_EQ(client->CheckHealth("no.such.Service", absl::Seconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  server->Shutdown();
}

TEST(Client, AttendAsyncCallsBack) {
  testing::FakeServer server;
  std::unique_ptr<Client> client = Connect(server.address());
  v1::AttendRequest request = SmallRequest("async");
  v1::AttendResponse response;
  std::promise<absl::Status> done;
  client->AttendAsync(&request, &response, absl::Seconds(10),
                      [&done](absl::Status status) { done.set_value(status); });
  absl::Status status = done.get_future().get();
  ASSERT_TRUE(status.ok()) << status;
  EXPECT_EQ(response.request_id(), "async");
}

TEST(Client, StreamAnswersInRequestOrderWithPerRequestStatus) {
  testing::FakeServer server;
  std::unique_ptr<Client> client = Connect(server.address());
  std::vector<v1::AttendRequest> requests;
  for (int i = 0; i < 20; ++i) requests.push_back(SmallRequest(absl::StrCat("s", i)));
  requests.push_back(SmallRequest("fail"));
  absl::StatusOr<std::vector<v1::AttendResponse>> responses =
      client->AttendStream(requests, absl::Seconds(10));
  ASSERT_TRUE(responses.ok()) << responses.status();
  ASSERT_EQ(responses->size(), requests.size());
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ((*responses)[i].request_id(), absl::StrCat("s", i));
    EXPECT_FALSE((*responses)[i].has_status());
  }
  EXPECT_EQ(responses->back().status().code(), 3);

  requests.push_back(SmallRequest("s3"));
  EXPECT_THAT(std::string(client->AttendStream(requests, absl::Seconds(10)).status().message()),
              HasSubstr("not unique"));
}

TEST(Client, RoundRobinReachesEveryAddress) {
  testing::FakeServer a, b;
  ClientOptions options;
  options.load_balancing = "round_robin";
  std::unique_ptr<Client> client =
      Connect(absl::StrCat("ipv4:127.0.0.1:", a.port(), ",127.0.0.1:", b.port()), options);
  v1::AttendRequest request = SmallRequest("rr");
  // round_robin turns READY with the first connected address; keep calling until the second
  // has answered too (bounded).
  for (int i = 0; i < 500 && (a.service().attend_calls() == 0 || b.service().attend_calls() == 0);
       ++i) {
    ASSERT_TRUE(client->Attend(request, absl::Seconds(10)).ok());
  }
  EXPECT_GT(a.service().attend_calls(), 0);
  EXPECT_GT(b.service().attend_calls(), 0);
}

TEST(Client, SeveralChannels) {
  testing::FakeServer server;
  ClientOptions options;
  options.channels = 3;
  std::unique_ptr<Client> client = Connect(server.address(), options);
  ASSERT_TRUE(client->WaitForReady(absl::Seconds(10)).ok());
  for (int i = 0; i < 6; ++i) ASSERT_TRUE(client->Attend(SmallRequest("c")).ok());
  EXPECT_EQ(server.service().attend_calls(), 6);
}

}  // namespace
}  // namespace attnd::client
