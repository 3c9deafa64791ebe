// TLS, mutual TLS and bearer tokens on a real attnd process: every way to be refused gets the
// status a gRPC client expects (a failed handshake UNAVAILABLE, a token problem
// UNAUTHENTICATED), the server keeps serving after each, and health answers without a token.
// Certificates are made at test time (tests/common/make_test_certs.sh).
#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "tests/common/probes.h"
#include "tests/common/requests.h"
#include "tests/common/test_certs.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

constexpr char kToken[] = "attnd-test-token-0123456789abcdef";
constexpr absl::Duration kTimeout = absl::Seconds(10);

const TestCerts& Certs() {
  absl::StatusOr<const TestCerts*> certs = TestCerts::Get();
  EXPECT_TRUE(certs.ok()) << certs.status();
  return **certs;
}

// A server section on loopback port 0 plus `extra` lines ("  key: value\n").
std::string ServerYaml(const std::string& extra) {
  return absl::StrCat("server:\n  listen: 127.0.0.1:0\n  drain_timeout_seconds: 20\n", extra);
}
std::string TlsYaml(bool mutual) {
  const TestCerts& c = Certs();
  std::string yaml = absl::StrCat("  tls_cert_file: \"", c.Path("server.crt"),
                                  "\"\n  tls_key_file: \"", c.Path("server.key"), "\"\n");
  if (mutual) absl::StrAppend(&yaml, "  tls_client_ca_file: \"", c.Path("ca.crt"), "\"\n");
  return yaml;
}

client::ClientOptions TlsOptions(const std::string& ca = "ca.crt") {
  client::ClientOptions options;
  options.use_tls = true;
  options.tls_root_certs_pem = Certs().Read(ca);
  return options;
}
client::ClientOptions MutualOptions(const std::string& client_name = "client") {
  client::ClientOptions options = TlsOptions();
  options.tls_cert_chain_pem = Certs().Read(client_name + ".crt");
  options.tls_private_key_pem = Certs().Read(client_name + ".key");
  return options;
}

// One small Attend through a fresh client (fresh connection) with `options`.
absl::Status Call(const std::string& target, const client::ClientOptions& options) {
  absl::StatusOr<std::unique_ptr<client::Client>> c = client::Client::Create(target, options);
  if (!c.ok()) return c.status();
  absl::StatusOr<v1::AttendResponse> response = (*c)->Attend(MakeRequest(SmallSpec(), 7), kTimeout);
  return response.status();
}

std::unique_ptr<ServerProcess> StartOrDie(const std::string& yaml) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(yaml);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

// --- TLS ------------------------------------------------------------------------------------

TEST(TlsTest, AcceptedWithTheRightCaAndRefusedOtherwiseThenStillServes) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(TlsYaml(false)));
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->Log().find("\"tls\":\"tls\""), std::string::npos) << server->Log();
  const std::string& target = server->target();  // 127.0.0.1:PORT, in the certificate's SANs

  EXPECT_TRUE(Call(target, TlsOptions()).ok());
  // By DNS name, and by IP with the name to check given separately.
  const std::string port = target.substr(target.rfind(':') + 1);
  EXPECT_TRUE(Call("localhost:" + port, TlsOptions()).ok());
  client::ClientOptions by_name = TlsOptions();
  by_name.tls_server_name = "attnd.test";
  EXPECT_TRUE(Call(target, by_name).ok());

  struct Refusal {
    const char* what;
    client::ClientOptions options;
  };
  client::ClientOptions wrong_name = TlsOptions();
  wrong_name.tls_server_name = "not-attnd.test";
  const Refusal refusals[] = {
      {"plaintext client", client::ClientOptions()},
      {"client trusting another CA", TlsOptions("other-ca.crt")},
      {"certificate not for the name", wrong_name},
  };
  for (const Refusal& refusal : refusals) {
    const absl::Status status = Call(target, refusal.options);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << refusal.what << ": " << status;
    EXPECT_TRUE(Call(target, TlsOptions()).ok()) << "after " << refusal.what;
  }

  // Health over TLS, without a client certificate or token.
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = Certs().Read("ca.crt");
  auto channel = grpc::CreateChannel(target, grpc::SslCredentials(ssl));
  absl::StatusOr<int> health = HealthCheck(channel, "", kTimeout);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, kHealthServing);
}

TEST(TlsTest, MutualTlsNeedsAClientCertificateFromTheConfiguredCa) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(TlsYaml(true)));
  ASSERT_NE(server, nullptr);
  EXPECT_NE(server->Log().find("\"tls\":\"mutual\""), std::string::npos) << server->Log();
  const std::string& target = server->target();

  EXPECT_TRUE(Call(target, MutualOptions()).ok());
  struct Refusal {
    const char* what;
    client::ClientOptions options;
  };
  const Refusal refusals[] = {
      {"plaintext client", client::ClientOptions()},
      {"TLS client without a certificate", TlsOptions()},
      {"client certificate from another CA", MutualOptions("other-client")},
      {"client trusting another CA",
       [] {
         client::ClientOptions o = MutualOptions();
         o.tls_root_certs_pem = Certs().Read("other-ca.crt");
         return o;
       }()},
  };
  for (const Refusal& refusal : refusals) {
    const absl::Status status = Call(target, refusal.options);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << refusal.what << ": " << status;
    EXPECT_TRUE(Call(target, MutualOptions()).ok()) << "after " << refusal.what;
  }
}

TEST(TlsTest, PlaintextHealthPortAnswersProbesButNoAttentionCall) {
  std::unique_ptr<ServerProcess> server =
      StartOrDie(ServerYaml(TlsYaml(true) + "  health_listen: 127.0.0.1:0\n"));
  ASSERT_NE(server, nullptr);
  // The serving line names the bound health port.
  const std::string log = server->Log();
  const size_t at = log.find("\"health_listen\":\"127.0.0.1:");
  ASSERT_NE(at, std::string::npos) << log;
  const size_t start = at + std::string("\"health_listen\":\"").size();
  const std::string health_target = log.substr(start, log.find('"', start) - start);

  auto plaintext = grpc::CreateChannel(health_target, grpc::InsecureChannelCredentials());
  absl::StatusOr<int> health = HealthCheck(plaintext, "", kTimeout);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, kHealthServing);
  // attnd.v1 there is refused, with or without a client certificate's worth of trying.
  const absl::Status refused = Call(health_target, client::ClientOptions());
  EXPECT_EQ(refused.code(), absl::StatusCode::kPermissionDenied) << refused;
  EXPECT_NE(refused.message().find("server.health_listen"), std::string::npos) << refused;
  absl::StatusOr<std::unique_ptr<client::Client>> info_client =
      client::Client::Create(health_target, client::ClientOptions());
  ASSERT_TRUE(info_client.ok());
  EXPECT_EQ((*info_client)->GetServerInfo(kTimeout).status().code(),
            absl::StatusCode::kPermissionDenied);
  // The TLS port is unchanged, and health on both follows a drain.
  EXPECT_TRUE(Call(server->target(), MutualOptions()).ok());
  HealthWatch watch(plaintext, "", absl::Seconds(30));
  absl::StatusOr<int> first = watch.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(*first, kHealthServing);
  server->Signal(SIGTERM);
  absl::StatusOr<int> next = watch.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(*next, kHealthNotServing);
}

TEST(TlsTest, AttnctlFlags) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(TlsYaml(true)));
  ASSERT_NE(server, nullptr);
  const TestCerts& c = Certs();
  const std::vector<std::string> base = {ATTNCTL_BINARY, "--target", server->target(), "--timeout",
                                         "10s"};
  std::vector<std::string> ok = base;
  ok.insert(ok.end(), {"--tls-ca", c.Path("ca.crt"), "--tls-cert", c.Path("client.crt"),
                       "--tls-key", c.Path("client.key"), "info"});
  CommandResult result = RunCommand(ok);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  EXPECT_NE(result.output.find("backend cpu"), std::string::npos) << result.output;

  std::vector<std::string> no_cert = base;
  no_cert.insert(no_cert.end(), {"--tls-ca", c.Path("ca.crt"), "info"});
  result = RunCommand(no_cert);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("UNAVAILABLE"), std::string::npos) << result.output;

  std::vector<std::string> half = base;
  half.insert(half.end(), {"--tls-cert", c.Path("client.crt"), "info"});
  result = RunCommand(half);
  EXPECT_EQ(result.exit_code, 2) << result.output;  // --tls-cert without --tls-key
}

// --- Bearer tokens --------------------------------------------------------------------------

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    token_file_ = WriteFile(Certs().dir(), "tokens-" + std::to_string(getpid()),
                            absl::StrCat("# test tokens\n", kToken, "\n"));
  }
  void Start(const std::string& extra = "") {
    server_ =
        StartOrDie(ServerYaml(absl::StrCat("  auth_token_file: \"", token_file_, "\"\n", extra)));
    ASSERT_NE(server_, nullptr);
  }
  static client::ClientOptions WithToken(client::ClientOptions options, const std::string& token) {
    options.bearer_token = token;
    return options;
  }
  // An Attend with raw `authorization` values, as a client outside attnd's library could send.
  absl::Status RawCall(const std::vector<std::string>& authorization) {
    auto stub = v1::Attention::NewStub(
        grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    for (const std::string& value : authorization) context.AddMetadata("authorization", value);
    v1::AttendResponse response;
    return client::FromGrpcStatus(stub->Attend(&context, MakeRequest(SmallSpec(), 3), &response));
  }

  std::string token_file_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(TokenTest, EveryWayToBeRefusedIsUnauthenticatedThenTheServerStillServes) {
  Start();
  EXPECT_NE(server_->Log().find("\"auth\":\"token\""), std::string::npos);
  const std::string& target = server_->target();
  const client::ClientOptions good = WithToken({}, kToken);
  EXPECT_TRUE(Call(target, good).ok());

  struct Refusal {
    const char* what;
    std::vector<std::string> authorization;
    const char* message;
  };
  const Refusal refusals[] = {
      {"no token", {}, "missing authorization"},
      {"wrong token", {"Bearer not-the-token"}, "invalid bearer token"},
      {"token of another length", {absl::StrCat("Bearer ", kToken, "0")}, "invalid bearer token"},
      {"Basic scheme", {"Basic dXNlcjpwYXNz"}, "malformed authorization"},
      {"no scheme", {kToken}, "malformed authorization"},
      {"empty bearer", {"Bearer "}, "malformed authorization"},
      {"two values",
       {absl::StrCat("Bearer ", kToken), absl::StrCat("Bearer ", kToken)},
       "malformed authorization"},
  };
  for (const Refusal& refusal : refusals) {
    const absl::Status status = RawCall(refusal.authorization);
    EXPECT_EQ(status.code(), absl::StatusCode::kUnauthenticated) << refusal.what << ": " << status;
    EXPECT_NE(status.message().find(refusal.message), std::string::npos) << status;
    EXPECT_EQ(status.message().find(kToken), std::string::npos) << "token echoed: " << status;
    EXPECT_TRUE(Call(target, good).ok()) << "after " << refusal.what;
  }
  EXPECT_TRUE(RawCall({absl::StrCat("bearer ", kToken)}).ok());  // the scheme in any case

  // Refusals are counted by code.
  absl::StatusOr<std::string> metrics = HttpGet(server_->metrics_address(), "/metrics");
  ASSERT_TRUE(metrics.ok());
  EXPECT_EQ(MetricValue(*metrics, "attnd_requests_total",
                        {"method=\"Attend\"", "code=\"UNAUTHENTICATED\""}),
            7);
  EXPECT_NE(server_->Log().find("\"auth_refused\""), std::string::npos);
}

TEST_F(TokenTest, EveryMethodNeedsTheTokenButHealthAndReflectionDoNot) {
  Start();
  const std::string& target = server_->target();
  absl::StatusOr<std::unique_ptr<client::Client>> anonymous =
      client::Client::Create(target, client::ClientOptions());
  ASSERT_TRUE(anonymous.ok());
  EXPECT_EQ((*anonymous)->GetServerInfo(kTimeout).status().code(),
            absl::StatusCode::kUnauthenticated);
  absl::StatusOr<std::vector<v1::AttendResponse>> stream =
      (*anonymous)->AttendStream({MakeRequest(SmallSpec(), 1, "s1")}, kTimeout);
  EXPECT_EQ(stream.status().code(), absl::StatusCode::kUnauthenticated) << stream.status();

  absl::StatusOr<std::unique_ptr<client::Client>> authorized =
      client::Client::Create(target, WithToken({}, kToken));
  ASSERT_TRUE(authorized.ok());
  EXPECT_TRUE((*authorized)->GetServerInfo(kTimeout).ok());
  stream =
      (*authorized)
          ->AttendStream({MakeRequest(SmallSpec(), 1, "s1"), MakeRequest(SmallSpec(), 2, "s2")},
                         kTimeout);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_EQ(stream->size(), 2u);

  // Kubernetes probes and grpcurl-style tools send no token.
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  absl::StatusOr<int> health = HealthCheck(channel, "", kTimeout);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, kHealthServing);
  health = HealthCheck(channel, "attnd.v1.Attention", kTimeout);
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, kHealthServing);
  absl::StatusOr<std::vector<std::string>> services = ListServices(channel, kTimeout);
  ASSERT_TRUE(services.ok()) << services.status();
}

TEST_F(TokenTest, RotatedTokenFileIsReadWithoutRestart) {
  Start("  auth_token_reload_seconds: 0.2\n");
  const std::string& target = server_->target();
  const std::string rotated = "attnd-rotated-token-fedcba9876543210";
  std::ofstream(token_file_, std::ios::trunc) << rotated << "\n";
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Call(target, WithToken({}, rotated)).ok() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_TRUE(Call(target, WithToken({}, rotated)).ok());
  EXPECT_EQ(Call(target, WithToken({}, kToken)).code(), absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenTest, TokensOverMutualTlsAndAttnctlTokenFile) {
  Start(TlsYaml(true));
  const std::string& target = server_->target();
  EXPECT_TRUE(Call(target, WithToken(MutualOptions(), kToken)).ok());
  EXPECT_EQ(Call(target, WithToken(MutualOptions(), "wrong-token")).code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(Call(target, MutualOptions()).code(), absl::StatusCode::kUnauthenticated);

  const TestCerts& c = Certs();
  std::vector<std::string> argv = {ATTNCTL_BINARY,
                                   "--target",
                                   target,
                                   "--tls-ca",
                                   c.Path("ca.crt"),
                                   "--tls-cert",
                                   c.Path("client.crt"),
                                   "--tls-key",
                                   c.Path("client.key"),
                                   "--token-file",
                                   token_file_,
                                   "attend",
                                   "--batch",
                                   "1",
                                   "--q-len",
                                   "5",
                                   "--kv-len",
                                   "7",
                                   "--heads",
                                   "2",
                                   "--head-dim",
                                   "8",
                                   "--check"};
  CommandResult result = RunCommand(argv);
  EXPECT_EQ(result.exit_code, 0) << result.output;
  argv.erase(argv.begin() + 9, argv.begin() + 11);  // no --token-file
  result = RunCommand(argv);
  EXPECT_EQ(result.exit_code, 1) << result.output;
  EXPECT_NE(result.output.find("UNAUTHENTICATED"), std::string::npos) << result.output;
}

// --- Start-up errors name the key -----------------------------------------------------------

TEST(SecurityStartupTest, BadFilesStopStartUpNamingTheKey) {
  const TestCerts& c = Certs();
  struct Case {
    std::string extra;
    std::string message;
  };
  const Case cases[] = {
      {"  tls_cert_file: /nonexistent/tls.crt\n  tls_key_file: /nonexistent/tls.key\n",
       "server.tls_cert_file = \"/nonexistent/tls.crt\": cannot read"},
      {absl::StrCat("  tls_cert_file: ", c.Path("server.crt"), "\n"),
       "server.tls_cert_file is set but server.tls_key_file is not"},
      {absl::StrCat("  tls_cert_file: ", c.Path("server.crt"),
                    "\n  tls_key_file: ", c.Path("client.key"), "\n"),
       "is not the private key of the certificate"},
      {absl::StrCat("  tls_client_ca_file: ", c.Path("ca.crt"), "\n"),
       "server.tls_client_ca_file is set but server.tls_cert_file is not"},
      {"  auth_token_file: /nonexistent/tokens\n", "server.auth_token_file"},
      {"  health_listen: 127.0.0.1:0\n", "server.health_listen is set but TLS is off"},
  };
  for (const Case& test : cases) {
    absl::StatusOr<std::unique_ptr<ServerProcess>> server =
        ServerProcess::Start(ServerYaml(test.extra));
    ASSERT_FALSE(server.ok()) << test.extra;
    const std::string message(server.status().message());
    EXPECT_NE(message.find("exited with 2"), std::string::npos) << message;
    EXPECT_NE(message.find(test.message), std::string::npos) << message;
  }
}

}  // namespace
}  // namespace attnd::testing
