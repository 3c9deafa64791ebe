#include "client/client.h"

#include <thread>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "grpc/grpc.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/sync_stream.h"

namespace attnd::client {
namespace {

// Sets the call's deadline; an infinite timeout leaves the call without one.
void SetDeadline(grpc::ClientContext* context, absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return;
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
}

std::vector<std::unique_ptr<v1::Attention::Stub>> MakeStubs(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  std::vector<std::unique_ptr<v1::Attention::Stub>> stubs;
  stubs.reserve(channels.size());
  for (const auto& channel : channels) stubs.push_back(v1::Attention::NewStub(channel));
  return stubs;
}

}  // namespace

absl::Status FromGrpcStatus(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  // grpc::StatusCode and absl::StatusCode both follow google.rpc.Code.
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
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

  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (options.use_tls) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs_pem;
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

v1::Attention::Stub& Client::NextStub() {
  if (stubs_.size() == 1) return *stubs_[0];
  uint64_t i = next_stub_.fetch_add(1, std::memory_order_relaxed);
  return *stubs_[i % stubs_.size()];
}

absl::StatusOr<v1::AttendResponse> Client::Attend(const v1::AttendRequest& request,
                                                  absl::Duration timeout) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout);
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
  SetDeadline(context.get(), timeout);
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
  SetDeadline(&context, timeout);
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
  SetDeadline(&context, timeout);
  v1::ServerInfo info;
  grpc::Status status = NextStub().GetServerInfo(&context, v1::GetServerInfoRequest(), &info);
  if (!status.ok()) return FromGrpcStatus(status);
  return info;
}

absl::StatusOr<v1::ServerInfo> Client::GetServerInfo() {
  return GetServerInfo(options_.default_timeout);
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
