// Every limit a client can run into, each at the limit (served) and one step past it (refused
// with a status naming the limit and the value, or the connection closed as HTTP/2 says), and
// the server unharmed afterwards: max message bytes (request and response), max tensor
// elements, max tokens, max concurrent streams, keepalive enforcement and the handshake timeout.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"
#include "gtest/gtest.h"
#include "tests/common/requests.h"
#include "tests/common/test_certs.h"
#include "tests/integration/server_process.h"

namespace attnd::testing {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(20);

std::unique_ptr<ServerProcess> StartOrDie(const std::string& yaml) {
  absl::StatusOr<std::unique_ptr<ServerProcess>> server = ServerProcess::Start(yaml);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? *std::move(server) : nullptr;
}

std::string ServerYaml(const std::string& extra) {
  return absl::StrCat("server:\n  listen: 127.0.0.1:0\n  drain_timeout_seconds: 20\n", extra);
}

std::unique_ptr<client::Client> ClientFor(const ServerProcess& server) {
  absl::StatusOr<std::unique_ptr<client::Client>> c =
      client::Client::Create(server.target(), client::ClientOptions());
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *std::move(c) : nullptr;
}

client::RequestSpec Shape(int64_t batch, int64_t q_len, int64_t kv_len, int64_t heads,
                          int64_t head_dim, int64_t v_head_dim = 0) {
  client::RequestSpec spec;
  spec.batch = batch;
  spec.q_len = q_len;
  spec.kv_len = kv_len;
  spec.heads = heads;
  spec.head_dim = head_dim;
  spec.v_head_dim = v_head_dim;
  return spec;
}

// The refused request's status holds every one of `parts`; then a normal request still works.
void ExpectRefusedThenServing(client::Client& c, const v1::AttendRequest& request,
                              absl::StatusCode code, const std::vector<std::string>& parts) {
  absl::StatusOr<v1::AttendResponse> refused = c.Attend(request, kTimeout);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), code) << refused.status();
  for (const std::string& part : parts) {
    EXPECT_NE(refused.status().message().find(part), std::string::npos)
        << "\"" << part << "\" not in: " << refused.status().message();
  }
  absl::StatusOr<v1::AttendResponse> ok = c.Attend(MakeRequest(SmallSpec(), 9), kTimeout);
  EXPECT_TRUE(ok.ok()) << "after the refusal: " << ok.status();
}

// --- Per-request limits ---------------------------------------------------------------------

// 68 KiB: a request of exactly that many bytes is read; one byte more is not. The response
// check reserves 4096 bytes besides the tensors, so an output of 64 KiB is the most it allows.
constexpr int64_t kMaxMessage = 69632;

// `request` padded through its request_id to exactly `bytes` serialized bytes.
v1::AttendRequest PaddedTo(v1::AttendRequest request, int64_t bytes) {
  request.set_request_id("");
  const int64_t base = static_cast<int64_t>(request.ByteSizeLong());
  for (int64_t length = 0; length < bytes; ++length) {
    request.set_request_id(std::string(length, 'p'));
    if (static_cast<int64_t>(request.ByteSizeLong()) >= bytes) break;
  }
  EXPECT_GT(bytes, base);
  EXPECT_EQ(static_cast<int64_t>(request.ByteSizeLong()), bytes);
  return request;
}

TEST(MessageLimitTest, RequestAtTheLimitServedOneBytePastRefused) {
  std::unique_ptr<ServerProcess> server =
      StartOrDie(ServerYaml(absl::StrCat("  max_message_bytes: ", kMaxMessage, "\n")));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<client::Client> c = ClientFor(*server);
  const v1::AttendRequest base = MakeRequest(Shape(1, 16, 16, 4, 64), 1);  // 48 KiB of tensors

  absl::StatusOr<v1::AttendResponse> at_limit = c->Attend(PaddedTo(base, kMaxMessage), kTimeout);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  // gRPC refuses it before attnd sees it; its message gives the size and the limit.
  ExpectRefusedThenServing(*c, PaddedTo(base, kMaxMessage + 1),
                           absl::StatusCode::kResourceExhausted,
                           {absl::StrCat(kMaxMessage + 1), absl::StrCat(kMaxMessage)});
}

TEST(MessageLimitTest, ResponseAtTheLimitServedOneElementPastRefused) {
  std::unique_ptr<ServerProcess> server =
      StartOrDie(ServerYaml(absl::StrCat("  max_message_bytes: ", kMaxMessage, "\n")));
  ASSERT_NE(server, nullptr);
  std::unique_ptr<client::Client> c = ClientFor(*server);
  // A small request with a large answer: out [1, 64, 1, Dv] f32 from q [1, 64, 1, 1].
  // Dv = 256: 65536 bytes of output + 4096 = the limit.
  absl::StatusOr<v1::AttendResponse> at_limit =
      c->Attend(MakeRequest(Shape(1, 64, 1, 1, 1, 256), 2), kTimeout);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  ExpectRefusedThenServing(*c, MakeRequest(Shape(1, 64, 1, 1, 1, 257), 2),
                           absl::StatusCode::kResourceExhausted,
                           {"69888 bytes", "server.max_message_bytes = 69632"});
}

TEST(TensorElementsTest, AtTheLimitServedOnePastRefused) {
  std::unique_ptr<ServerProcess> server = StartOrDie("limits:\n  max_tensor_elements: 4096\n");
  ASSERT_NE(server, nullptr);
  std::unique_ptr<client::Client> c = ClientFor(*server);
  // q, k, v and out [1, 16, 1, 256]: 4096 elements each.
  absl::StatusOr<v1::AttendResponse> at_limit =
      c->Attend(MakeRequest(Shape(1, 16, 16, 1, 256), 3), kTimeout);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  // q [1, 17, 1, 241]: 4097 = 17 × 241 elements.
  ExpectRefusedThenServing(*c, MakeRequest(Shape(1, 17, 16, 1, 241), 3),
                           absl::StatusCode::kInvalidArgument,
                           {"q.shape", "4097", "limits.max_tensor_elements = 4096"});
}

TEST(TokensTest, AtTheLimitServedOnePastRefusedOnEitherSide) {
  std::unique_ptr<ServerProcess> server = StartOrDie("limits:\n  max_tokens: 64\n");
  ASSERT_NE(server, nullptr);
  std::unique_ptr<client::Client> c = ClientFor(*server);
  // B × Mq = B × Mk = 64.
  absl::StatusOr<v1::AttendResponse> at_limit =
      c->Attend(MakeRequest(Shape(2, 32, 32, 2, 8), 4), kTimeout);
  EXPECT_TRUE(at_limit.ok()) << at_limit.status();
  ExpectRefusedThenServing(*c, MakeRequest(Shape(1, 65, 8, 2, 8), 4),
                           absl::StatusCode::kInvalidArgument,
                           {"(Mq) = 1 × 65 = 65", "limits.max_tokens = 64"});
  ExpectRefusedThenServing(*c, MakeRequest(Shape(5, 8, 13, 2, 8), 4),
                           absl::StatusCode::kInvalidArgument,
                           {"(Mk) = 5 × 13 = 65", "limits.max_tokens = 64"});
}

// --- Connection limits ----------------------------------------------------------------------

TEST(ConcurrentStreamsTest, StreamsUpToTheLimitRunAndOneMoreWaitsForASlot) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml("  max_concurrent_streams: 2\n"));
  ASSERT_NE(server, nullptr);
  using Stream = grpc::ClientReaderWriter<v1::AttendRequest, v1::AttendResponse>;
  // One channel: one connection.
  auto stub = v1::Attention::NewStub(
      grpc::CreateChannel(server->target(), grpc::InsecureChannelCredentials()));

  // Two open streams, each answering: the limit is reached and both work.
  grpc::ClientContext contexts[2];
  std::unique_ptr<Stream> streams[2];
  for (int i = 0; i < 2; ++i) {
    contexts[i].set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    streams[i] = stub->AttendStream(&contexts[i]);
    ASSERT_TRUE(streams[i]->Write(MakeRequest(SmallSpec(), i, absl::StrCat("s", i))));
    v1::AttendResponse answer;
    ASSERT_TRUE(streams[i]->Read(&answer));
    EXPECT_EQ(answer.request_id(), absl::StrCat("s", i));
  }
  // A third call on the same connection waits for a free stream (HTTP/2 queues it on the
  // client; nothing is refused), here until its deadline.
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    v1::AttendResponse response;
    const grpc::Status status = stub->Attend(&context, MakeRequest(SmallSpec(), 5), &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  }
  // Once a stream ends its slot serves the next call.
  streams[0]->WritesDone();
  EXPECT_TRUE(streams[0]->Finish().ok());
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    v1::AttendResponse response;
    const grpc::Status status = stub->Attend(&context, MakeRequest(SmallSpec(), 6), &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  streams[1]->WritesDone();
  EXPECT_TRUE(streams[1]->Finish().ok());
}

// A client channel that sends keepalive pings every `ping_every`, even with no call open.
std::shared_ptr<grpc::Channel> PingingChannel(const std::string& target,
                                              absl::Duration ping_every) {
  grpc::ChannelArguments args;
  const int ms = static_cast<int>(absl::ToInt64Milliseconds(ping_every));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, ms);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);  // no client-side cap
  args.SetInt(GRPC_ARG_HTTP2_MIN_SENT_PING_INTERVAL_WITHOUT_DATA_MS, ms);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// An AttendStream held open without a request for `hold`, then used: OK while pings respect the
// server's minimum interval; once they do not, the server's GOAWAY ends it UNAVAILABLE. A
// thread waits in Read throughout: a sync client's connection is read (ping acks included)
// only while some call waits on it.
grpc::Status HoldStream(const std::shared_ptr<grpc::Channel>& channel, absl::Duration hold) {
  auto stub = v1::Attention::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + hold + kTimeout));
  auto stream = stub->AttendStream(&context);
  int answers = 0;
  std::thread reader([&stream, &answers] {
    v1::AttendResponse answer;
    while (stream->Read(&answer)) ++answers;
  });
  absl::SleepFor(hold);
  if (stream->Write(MakeRequest(SmallSpec(), 8, "held"))) stream->WritesDone();
  reader.join();
  grpc::Status status = stream->Finish();
  if (status.ok() && answers != 1) return grpc::Status(grpc::StatusCode::INTERNAL, "no answer");
  return status;
}

// 2 s: gRPC clients never ping more often than once a second, so a tighter pinger than the
// server allows must stay under 2 s.
constexpr char kKeepaliveYaml[] =
    "  keepalive_min_ping_interval_seconds: 2\n  keepalive_permit_without_calls: false\n";

TEST(KeepaliveTest, PingsAtTheMinimumIntervalKeepTheConnection) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(kKeepaliveYaml));
  ASSERT_NE(server, nullptr);
  // Every 2.5 s (timers fire late, never early: the margin keeps the outcome exact).
  const grpc::Status status =
      HoldStream(PingingChannel(server->target(), absl::Milliseconds(2500)), absl::Seconds(6));
  EXPECT_TRUE(status.ok()) << status.error_code() << ": " << status.error_message();
}

TEST(KeepaliveTest, PingsTooOftenCloseTheConnectionAndTheServerGoesOn) {
  std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(kKeepaliveYaml));
  ASSERT_NE(server, nullptr);
  // Asked for every 100 ms, sent every second (the client's own floor): pings 2, 3 and 4 are
  // strikes, and the server closes the connection at about 3 s.
  const grpc::Status status =
      HoldStream(PingingChannel(server->target(), absl::Milliseconds(100)), absl::Seconds(6));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  std::unique_ptr<client::Client> c = ClientFor(*server);
  EXPECT_TRUE(c->Attend(MakeRequest(SmallSpec(), 9), kTimeout).ok());
}

// Waits up to `timeout` for the channel to leave READY (waiting also reads the connection, so
// pings are answered); false when it stays connected.
bool LeavesReady(const std::shared_ptr<grpc::Channel>& channel, absl::Duration timeout) {
  if (channel->GetState(false) != GRPC_CHANNEL_READY) return true;
  return channel->WaitForStateChange(GRPC_CHANNEL_READY, absl::ToChronoTime(absl::Now() + timeout));
}

TEST(KeepaliveTest, PingsWithoutCallsOnlyWhenPermitted) {
  for (const bool permit : {false, true}) {
    std::unique_ptr<ServerProcess> server = StartOrDie(ServerYaml(
        absl::StrCat("  keepalive_min_ping_interval_seconds: 1\n  keepalive_permit_without_calls: ",
                     permit ? "true" : "false", "\n")));
    ASSERT_NE(server, nullptr);
    auto channel = PingingChannel(server->target(), absl::Milliseconds(1500));
    ASSERT_TRUE(channel->WaitForConnected(absl::ToChronoTime(absl::Now() + kTimeout)));
    // Not permitted: the 2nd, 3rd and 4th pings are strikes; the 4th (~4.5 s) closes it.
    EXPECT_EQ(LeavesReady(channel, absl::Seconds(10)), !permit) << "permit " << permit;
    // Either way the server serves a call (the channel reconnects after a GOAWAY).
    auto stub = v1::Attention::NewStub(channel);
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kTimeout));
    v1::AttendResponse response;
    EXPECT_TRUE(stub->Attend(&context, MakeRequest(SmallSpec(), 10), &response).ok());
  }
}

// A TCP connection to `target` that sends nothing; -1 when it cannot connect.
int SilentConnection(const std::string& target) {
  const size_t colon = target.rfind(':');
  int port = 0;
  if (!absl::SimpleAtoi(target.substr(colon + 1), &port)) return -1;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Seconds until the server closes `fd` (reads EOF or an error), or -1 after `limit`.
double SecondsUntilClosed(int fd, absl::Duration limit) {
  const absl::Time start = absl::Now();
  while (absl::Now() - start < limit) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) > 0) {
      char buffer[4096];
      if (read(fd, buffer, sizeof(buffer)) <= 0) {
        return absl::ToDoubleSeconds(absl::Now() - start);
      }
    }
  }
  return -1;
}

TEST(HandshakeTimeoutTest, SilentConnectionsClosedAtTheTimeoutWithAndWithoutTls) {
  absl::StatusOr<const TestCerts*> certs = TestCerts::Get();
  ASSERT_TRUE(certs.ok()) << certs.status();
  const std::string tls =
      absl::StrCat("  tls_cert_file: \"", (*certs)->Path("server.crt"), "\"\n  tls_key_file: \"",
                   (*certs)->Path("server.key"), "\"\n");
  for (const bool with_tls : {false, true}) {
    std::unique_ptr<ServerProcess> server = StartOrDie(
        ServerYaml(absl::StrCat("  handshake_timeout_seconds: 1.5\n", with_tls ? tls : "")));
    ASSERT_NE(server, nullptr);
    const int fd = SilentConnection(server->target());
    ASSERT_GE(fd, 0);
    // Open within the timeout, closed soon after it.
    const double closed_after = SecondsUntilClosed(fd, absl::Seconds(10));
    close(fd);
    EXPECT_GE(closed_after, 1.0) << "tls " << with_tls;
    EXPECT_LE(closed_after, 5.0) << "tls " << with_tls;
    // A client that completes its handshake is served.
    client::ClientOptions options;
    if (with_tls) {
      options.use_tls = true;
      options.tls_root_certs_pem = (*certs)->Read("ca.crt");
    }
    absl::StatusOr<std::unique_ptr<client::Client>> c =
        client::Client::Create(server->target(), options);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE((*c)->Attend(MakeRequest(SmallSpec(), 11), kTimeout).ok()) << "tls " << with_tls;
  }
}

}  // namespace
}  // namespace attnd::testing
