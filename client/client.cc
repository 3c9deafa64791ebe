#include "client/client.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/wire_format_lite.h"
#include "grpc/grpc.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/sync_stream.h"

namespace attnd::client {
namespace {

// Sets the call's deadline; an infinite timeout leaves the call without one.
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return;
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

// The TLS and token options are consistent: INVALID_ARGUMENT naming the option otherwise.
absl::Status CheckSecurityOptions(const ClientOptions& options) {
  const bool any_tls = !options.tls_root_certs_pem.empty() || !options.tls_cert_chain_pem.empty() ||
                       !options.tls_private_key_pem.empty() || !options.tls_server_name.empty();
  if (any_tls && !options.use_tls) {
    return absl::InvalidArgumentError("tls_* options are set but use_tls is false");
  }
  if (options.tls_cert_chain_pem.empty() != options.tls_private_key_pem.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert_chain_pem and tls_private_key_pem come together (mutual TLS needs both)");
  }
  for (char c : options.bearer_token) {
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(
          "bearer_token must be visible ASCII without spaces (it travels in an HTTP/2 header)");
    }
  }
  return absl::OkStatus();
}

std::vector<std::unique_ptr<v1::Attention::Stub>> MakeStubs(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<std::unique_ptr<v1::Attention::Stub>> stubs;
  stubs.reserve(channels.size());
  for (const auto& channel : channels) stubs.push_back(v1::Attention::NewStub(channel));
  return stubs;
}

// grpc.health.v1 by hand: Debian's gRPC packages ship neither health.proto nor public generated
// messages for it, and its two messages are one field each. HealthCheckRequest is
// {string service = 1}; HealthCheckResponse is {ServingStatus status = 1} (an enum, a varint).
using google::protobuf::internal::WireFormatLite;

std::string EncodeHealthCheckRequest(const std::string& service) {
  std::string bytes;
  google::protobuf::io::StringOutputStream stream(&bytes);
  google::protobuf::io::CodedOutputStream out(&stream);
  if (!service.empty()) WireFormatLite::WriteString(1, service, &out);
  out.Trim();
  return bytes;
}

absl::StatusOr<HealthStatus> DecodeHealthCheckResponse(const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()),
                                            static_cast<int>(bytes.size()));
  uint32_t status = 0;  // proto3: an absent field is 0 (UNKNOWN)
  bool ok = true;
  while (uint32_t tag = in.ReadTag()) {
    if (tag == WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_VARINT)) {
      ok = in.ReadVarint32(&status);
    } else {
      ok = WireFormatLite::SkipField(&in, tag);
    }
    if (!ok) break;
  }
  if (!ok || !in.ConsumedEntireMessage()) {
    return absl::InternalError("grpc.health.v1.HealthCheckResponse: malformed message");
  }
  if (status > 3) return HealthStatus::kUnknown;  // a status newer than this client knows
  return static_cast<HealthStatus>(status);
}

}  // namespace

const char* HealthStatusName(HealthStatus status) {
  switch (status) {
    case HealthStatus::kServing:
      return "SERVING";
    case HealthStatus::kNotServing:
      return "NOT_SERVING";
    case HealthStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case HealthStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode both follow google.rpc.Code.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

absl::StatusOr<std::string> ReadCredentialFile(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " = \"", path, "\": cannot read: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  if (text.str().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " = \"", path, "\": the file is empty"));
  }
  return text.str();
}

absl::StatusOr<std::string> ReadTokenFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadCredentialFile("token file", path);
  if (!text.ok()) return text.status();
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty() && line.front() != '#') return std::string(line);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "token file = \"", path, "\": no token in it (blank and '#' lines are skipped)"));
}

absl::StatusOr<std::unique_ptr<Client>> Client::Create(const std::string& target,
                                                       const ClientOptions& options) {
  if (target.empty()) return absl::InvalidArgumentError("target is empty");
  if (options.max_message_bytes <= 0 || options.max_message_bytes > INT32_MAX) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_message_bytes = ", options.max_message_bytes, " is outside [1, 2^31 - 1]"));
  }
  if (options.channels < 1 || options.channels > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("channels = ", options.channels, " is outside [1, 1024]"));
  }
  if (!options.load_balancing.empty() && options.load_balancing != "round_robin" &&
      options.load_balancing != "pick_first") {
    return absl::InvalidArgumentError(absl::StrCat("load_balancing = \"", options.load_balancing,
                                                   "\": want round_robin or pick_first"));
  }
  if (options.default_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("default_timeout must be positive");
  }

  if (absl::Status status = CheckSecurityOptions(options); !status.ok()) return status;
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs_pem;
    ssl.pem_cert_chain = options.tls_cert_chain_pem;
    ssl.pem_private_key = options.tls_private_key_pem;
    credentials = grpc::SslCredentials(ssl);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }

  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < options.channels; ++i) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(static_cast<int>(options.max_message_bytes));
    args.SetMaxSendMessageSize(static_cast<int>(options.max_message_bytes));
    if (!options.load_balancing.empty()) {
      args.SetLoadBalancingPolicyName(options.load_balancing);
    }
    if (!options.tls_server_name.empty()) {
      args.SetSslTargetNameOverride(options.tls_server_name);
    }
    if (options.channels > 1) {
      // Without these, channels with equal arguments share subchannels, i.e. one connection.
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
      args.SetInt("attnd.client.channel_index", i);
    }
    channels.push_back(grpc::CreateCustomChannel(target, credentials, args));
  }
  return std::unique_ptr<Client>(new Client(target, options, std::move(channels)));
}

Client::Client(std::string target, ClientOptions options,
               std::vector<std::shared_ptr<grpc::Channel>> channels)
    : target_(std::move(target)),
      options_(std::move(options)),
      channels_(std::move(channels)),
      stubs_(MakeStubs(channels_)) {}

void Client::Prepare(grpc::ClientContext* context, absl::Duration timeout) const {
  SetDeadline(context, timeout);
  if (!options_.bearer_token.empty()) {
    context->AddMetadata("authorization", absl::StrCat("Bearer ", options_.bearer_token));
  }
}

v1::Attention::Stub& Client::NextStub() {
  if (stubs_.size() == 1) return *stubs_[0];
  uint64_t i = next_stub_.fetch_add(1, std::memory_order_relaxed);
  return *stubs_[i % stubs_.size()];
}

absl::StatusOr<v1::AttendResponse> Client::Attend(const v1::AttendRequest& request,
                                                  absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(&context, timeout);
  v1::AttendResponse response;
  grpc::Status status = NextStub().Attend(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<v1::AttendResponse> Client::Attend(const v1::AttendRequest& request) {
  return Attend(request, options_.default_timeout);
}

void Client::AttendAsync(const v1::AttendRequest* request, v1::AttendResponse* response,
                         absl::Duration timeout, std::function<void(absl::Status)> done) {
  // The context must outlive the call: it is owned by the completion callback.
  auto context = std::make_shared<grpc::ClientContext>();
  Prepare(context.get(), timeout);
  NextStub().async()->Attend(
      context.get(), request, response,
      [context, done = std::move(done)](grpc::Status status) { done(FromGrpcStatus(status)); });
}

absl::StatusOr<v1::AttendResponse> Client::Echo(const v1::AttendRequest& request,
                                                absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  v1::AttendResponse response;
  grpc::Status status = NextStub().Echo(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

void Client::EchoAsync(const v1::AttendRequest* request, v1::AttendResponse* response,
                       absl::Duration timeout, std::function<void(absl::Status)> done) {
  auto context = std::make_shared<grpc::ClientContext>();
  SetDeadline(context.get(), timeout);
  NextStub().async()->Echo(
      context.get(), request, response,
      [context, done = std::move(done)](grpc::Status status) { done(FromGrpcStatus(status)); });
}

absl::StatusOr<std::vector<v1::AttendResponse>> Client::AttendStream(
    const std::vector<v1::AttendRequest>& requests, absl::Duration timeout) {
  absl::flat_hash_map<std::string, size_t> index_of;
  for (size_t i = 0; i < requests.size(); ++i) {
    const std::string& id = requests[i].request_id();
    if (id.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("requests[", i, "].request_id is empty"));
    }
    if (!index_of.emplace(id, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("requests[", i, "].request_id \"", id, "\" is not unique"));
    }
  }

  grpc::ClientContext context;
  Prepare(&context, timeout);
  std::unique_ptr<grpc::ClientReaderWriter<v1::AttendRequest, v1::AttendResponse>> stream =
      NextStub().AttendStream(&context);

  // Write from a second thread while this one reads, so neither side's flow-control window can
  // fill up and stall the other.
  std::thread writer([&stream, &requests] {
    for (const v1::AttendRequest& request : requests) {
      if (!stream->Write(request)) break;  // the stream broke; Finish says why
    }
    stream->WritesDone();
  });

  std::vector<v1::AttendResponse> responses(requests.size());
  std::vector<bool> answered(requests.size(), false);
  size_t answers = 0;
  absl::Status protocol_error;
  v1::AttendResponse response;
  while (stream->Read(&response)) {
    auto it = index_of.find(response.request_id());
    if (it == index_of.end() || answered[it->second]) {
      if (protocol_error.ok()) {
        protocol_error = absl::InternalError(
            absl::StrCat("AttendStream answered unknown or repeated request_id \"",
                         response.request_id(), "\""));
      }
      continue;
    }
    answered[it->second] = true;
    ++answers;
    responses[it->second] = std::move(response);
    response.Clear();
  }
  writer.join();
  grpc::Status status = stream->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  if (!protocol_error.ok()) return protocol_error;
  if (answers != requests.size()) {
    return absl::InternalError(
        absl::StrCat("AttendStream ended after ", answers, " of ", requests.size(), " answers"));
  }
  return responses;
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo(absl::Duration timeout) {
  grpc::ClientContext context;
  Prepare(&context, timeout);
  v1::ServerInfo info;
  grpc::Status status = NextStub().GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
  if (!status.ok()) return FromGrpcStatus(status);
  return info;
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  return GetServerInfo(options_.default_timeout);
}

absl::StatusOr<HealthStatus> Client::CheckHealth(const std::string& service,
                                                 absl::Duration timeout) {
  const std::string request_bytes = EncodeHealthCheckRequest(service);
  grpc::Slice slice(request_bytes);
  grpc::ByteBuffer request(&slice, 1);
  grpc::ByteBuffer response;
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
  grpc::GenericStub stub(channels_[0]);
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request, &response,
                 [&status, &done](grpc::Status s) {
                   status = std::move(s);
                   done.Notify();
                 });
  done.WaitForNotification();
  if (!status.ok()) return FromGrpcStatus(status);
  grpc::Slice single;
  if (grpc::Status dumped = response.DumpToSingleSlice(&single); !dumped.ok()) {
    return FromGrpcStatus(dumped);
  }
  return DecodeHealthCheckResponse(
      std::string(reinterpret_cast<const char*>(single.begin()), single.size()));
}

absl::Status Client::WaitForReady(absl::Duration timeout) {
  const auto deadline = absl::ToChronoTime(absl::Now() + timeout);
  for (size_t i = 0; i < channels_.size(); ++i) {
    if (!channels_[i]->WaitForConnected(deadline)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no connection to ", target_, " within ", absl::FormatDuration(timeout)));
    }
  }
  return absl::OkStatus();
}

}  // namespace attnd::client
