// Helpers for the service tests: an in-process Server on 127.0.0.1:0, and a small blocking
// wrapper over gRPC's generic stub for streaming calls by method path.
#ifndef ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_
#define ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
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

// One streaming call by method path, driven step by step on its own completion queue. Each
// step blocks until gRPC reports it; steps return gRPC's ok.
template <typename Request, typename Response>
class BlockingStream {
 public:
  BlockingStream(const std::shared_ptr<grpc::Channel>& channel, const std::string& method)
      : stub_(channel) {
    context_.set_deadline(In(std::chrono::seconds(60)));
    call_ = stub_.PrepareCall(&context_, method, &cq_);
    call_->StartCall(Tag());
    started_ = Await();
  }
  ~BlockingStream() {
    if (!finished_) {
      context_.TryCancel();
      grpc::Status ignored;
      call_->Finish(&ignored, Tag());
      Await();
    }
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) {
    }
  }

  bool started() const { return started_; }
  bool Write(const Request& request) {
    call_->Write(request, Tag());
    return Await();
  }
  bool WritesDone() {
    call_->WritesDone(Tag());
    return Await();
  }
  bool Read(Response* response) {
    call_->Read(response, Tag());
    return Await();
  }
  grpc::Status Finish() {
    grpc::Status status;
    call_->Finish(&status, Tag());
    Await();
    finished_ = true;
    return status;
  }

 private:
  void* Tag() { return reinterpret_cast<void*>(++next_tag_); }
  bool Await() {
    void* tag = nullptr;
    bool ok = false;
    if (!cq_.Next(&tag, &ok)) return false;
    EXPECT_EQ(tag, reinterpret_cast<void*>(next_tag_));
    return ok;
  }

  grpc::TemplatedGenericStub<Request, Response> stub_;
  grpc::ClientContext context_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::ClientAsyncReaderWriter<Request, Response>> call_;
  intptr_t next_tag_ = 0;
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace attnd::testing

#endif  // ATTND_TESTS_SERVER_SERVICE_TEST_SERVER_H_
