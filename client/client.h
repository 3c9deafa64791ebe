// attnd's C++ client: a thin, thread-safe wrapper over the generated attnd.v1.Attention stub that
// speaks absl::Status. One Client holds one or more gRPC channels to one target; share it across
// threads (gRPC channels and stubs are thread-safe).
//
//   auto client = attnd::client::Client::Create("127.0.0.1:50051", {});
//   if (!client.ok()) ...
//   absl::StatusOr<v1::AttendResponse> response = (*client)->Attend(request, absl::Seconds(10));
//
// The target is any gRPC target string: "host:port", "dns:///attnd.ns.svc:50051" (headless
// Service), or a fixed list "ipv4:127.0.0.1:50051,127.0.0.1:50052"; set
// `load_balancing = "round_robin"` to spread calls over every address the name resolves to.
#ifndef ATTND_CLIENT_CLIENT_H_
#define ATTND_CLIENT_CLIENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "attnd/v1/attention.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace attnd::client {

struct ClientOptions {
  // Used by the overloads that take no timeout.
  absl::Duration default_timeout = absl::Seconds(60);
  // gRPC send and receive limits; must cover the largest request and response (the server's
  // `server.max_message_bytes` bounds what it accepts).
  int64_t max_message_bytes = int64_t{256} << 20;
  // gRPC load-balancing policy: "" (gRPC's default, pick_first) or "round_robin".
  std::string load_balancing;
  // Independent channels (separate HTTP/2 connections) that calls rotate over; more than one
  // helps a load generator past the throughput of a single connection.
  int channels = 1;
  // TLS (server.tls_cert_file set on the server). The tls_* fields need use_tls.
  bool use_tls = false;
  // PEM CA certificates to verify the server against; empty: the system's roots.
  std::string tls_root_certs_pem;
  // Mutual TLS (server.tls_client_ca_file set): the client's PEM certificate chain and its
  // private key, both or neither.
  std::string tls_cert_chain_pem;
  std::string tls_private_key_pem;
  // The name the server's certificate must carry, when it is not the target's host (e.g. an IP
  // target and a certificate for "attnd.ns.svc"); also sent as SNI.
  std::string tls_server_name;
  // Bearer token (server.auth_token_file set): sent with every call as
  // "authorization: Bearer <token>". Visible ASCII without spaces.
  std::string bearer_token;
};

// grpc.health.v1.HealthCheckResponse.ServingStatus, by the same numbers.
enum class HealthStatus { kUnknown = 0, kServing = 1, kNotServing = 2, kServiceUnknown = 3 };
// "SERVING", "NOT_SERVING", ... as grpc.health.v1 spells them.
const char* HealthStatusName(HealthStatus status);
// Reads a file whole (a PEM file for the tls_* options); INVALID_ARGUMENT naming `what` and the
// path when it cannot be read or is empty.
absl::StatusOr<std::string> ReadCredentialFile(const std::string& what, const std::string& path);
// The token of a token file: its first line that is neither blank nor a '#' comment, trimmed
// (the format the server's auth_token_file takes, so one file can serve both sides).
absl::StatusOr<std::string> ReadTokenFile(const std::string& path);

// grpc::Status → absl::Status, keeping the code (the two enums share values) and the message.
absl::Status FromGrpcStatus(const grpc::Status& status);

class Client {
 public:
  // INVALID_ARGUMENT for an empty target or out-of-range options. Does not connect: the first
  // call (or WaitForReady) does.
  static absl::StatusOr<std::unique_ptr<Client>> Create(const std::string& target,
                                                        const ClientOptions& options);

  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // One attention problem. A failed RPC returns its gRPC code and message.
  absl::StatusOr<v1::AttendResponse> Attend(const v1::AttendRequest& request,
                                            absl::Duration timeout);
  absl::StatusOr<v1::AttendResponse> Attend(const v1::AttendRequest& request);

  // Asynchronous Attend on gRPC's callback API: `done` runs on a gRPC thread once the call ends
  // (it must not block). `request` and `response` must stay alive until then; `response` is
  // filled only on success.
  void AttendAsync(const v1::AttendRequest* request, v1::AttendResponse* response,
                   absl::Duration timeout, std::function<void(absl::Status)> done);

  // Echo (the wire alone: the same request as Attend, an answer of the same size, nothing
  // computed), synchronously and on the callback API as AttendAsync.
  absl::StatusOr<v1::AttendResponse> Echo(const v1::AttendRequest& request, absl::Duration timeout);
  void EchoAsync(const v1::AttendRequest* request, v1::AttendResponse* response,
                 absl::Duration timeout, std::function<void(absl::Status)> done);

  // Sends every request over one AttendStream and returns the answers in the order of
  // `requests` (matched by request_id, which must be unique and non-empty). A request that
  // failed on the server comes back with its `status` field set; the call fails only when the
  // stream itself does. `timeout` covers the whole stream.
  absl::StatusOr<std::vector<v1::AttendResponse>> AttendStream(
      const std::vector<v1::AttendRequest>& requests, absl::Duration timeout);

  absl::StatusOr<v1::ServerInfo> GetServerInfo(absl::Duration timeout);
  absl::StatusOr<v1::ServerInfo> GetServerInfo();

  // grpc.health.v1.Health/Check for `service` ("" = the server as a whole; attnd also answers
  // for "attnd.v1.Attention"): the ServingStatus the server reports. A service the server does
  // not know fails NOT_FOUND, as gRPC's health service answers.
  absl::StatusOr<HealthStatus> CheckHealth(const std::string& service, absl::Duration timeout);

  // Connects the channels; DEADLINE_EXCEEDED when any is not ready within `timeout`.
  absl::Status WaitForReady(absl::Duration timeout);

  const std::string& target() const { return target_; }
  const ClientOptions& options() const { return options_; }

 private:
  Client(std::string target, ClientOptions options,
         std::vector<std::shared_ptr<grpc::Channel>> channels);

  // The stub for the next call (round robin over channels_).
  v1::Attention::Stub& NextStub();
  // A call's deadline and its bearer token.
  void Prepare(grpc::ClientContext* context, absl::Duration timeout) const;

  // Constant after construction.
  const std::string target_;
  const ClientOptions options_;
  const std::vector<std::shared_ptr<grpc::Channel>> channels_;
  const std::vector<std::unique_ptr<v1::Attention::Stub>> stubs_;

  std::atomic<uint64_t> next_stub_{0};
};

}  // namespace attnd::client

#endif  // ATTND_CLIENT_CLIENT_H_
