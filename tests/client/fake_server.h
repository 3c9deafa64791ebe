// An in-process attnd.v1.Attention server for the client's unit tests: answers Attend with an
// output of the right shape (no attention computed), fails every Nth call with
// RESOURCE_EXHAUSTED when asked, echoes AttendStream, and serves a fixed ServerInfo. It listens
// on a loopback port of its own.
#ifndef ATTND_TESTS_CLIENT_FAKE_SERVER_H_
#define ATTND_TESTS_CLIENT_FAKE_SERVER_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "attnd/v1/attention.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace attnd::testing {

class FakeAttention final : public v1::Attention::CallbackService {
 public:
  using AnswerFn = std::function<void(const v1::AttendRequest&, v1::AttendResponse*)>;
  // Replaces the default answer (Answer below); set before the first call.
  void set_answer(AnswerFn answer) { answer_ = std::move(answer); }

  // Every `n`th Attend (1-based) fails with RESOURCE_EXHAUSTED; 0 = never.
  void set_fail_every(int n) { fail_every_ = n; }
  int64_t attend_calls() const { return attend_calls_.load(); }

  // Waits for the delayed answers of "slow" requests.
  void JoinSlowCalls() {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::thread& t : slow_calls_) t.join();
    slow_calls_.clear();
  }

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const v1::AttendRequest* request,
                                   v1::AttendResponse* response) override {
    const int64_t n = ++attend_calls_;
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (request->request_id() == "invalid") {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                                   "q.shape[2] (Hq) = 8 is not a multiple of 3"));
      return reactor;
    }
    if (fail_every_ > 0 && n % fail_every_ == 0) {
      reactor->Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue is full"));
      return reactor;
    }
    if (request->request_id() == "slow") {
      // Answers after the test's deadline; joined before the server shuts down.
      std::lock_guard<std::mutex> lock(mu_);
      slow_calls_.emplace_back([reactor, response] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        response->set_request_id("slow");
        reactor->Finish(grpc::Status::OK);
      });
      return reactor;
    }
    if (answer_) {
      answer_(*request, response);
    } else {
      Answer(*request, response);
    }
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse>* AttendStream(
      grpc::CallbackServerContext*) override {
    return new EchoStream(this);
  }

  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest*,
                                          v1::ServerInfo* info) override {
    info->set_version("fake-1.0");
    info->set_backend("cpu");
    info->add_dtypes(v1::DTYPE_F32);
    info->add_variants(v1::VARIANT_CPU_CHUNKED);
    info->set_max_head_dim(256);
    v1::DeviceInfo* device = info->add_devices();
    device->set_name("cpu:0");
    device->set_kind("cpu");
    device->set_memory_total_bytes(int64_t{8} << 30);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

  // An output shaped like q (Dv = D in these tests), filled with ones.
  static void Answer(const v1::AttendRequest& request, v1::AttendResponse* response) {
    response->set_request_id(request.request_id());
    *response->mutable_out() = request.q();
    v1::Execution* e = response->mutable_execution();
    e->set_variant(v1::VARIANT_CPU_CHUNKED);
    e->set_device("fake:0");
    e->set_batch_size(1);
    e->set_plan_reason("fake");
  }

 private:
  // Reads a request, writes its answer, repeats; the answer to request_id "fail" carries a
  // per-request status instead.
  class EchoStream : public grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse> {
   public:
    explicit EchoStream(FakeAttention* service) : service_(service) { StartRead(&request_); }
    void OnReadDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status::OK);
        return;
      }
      response_.Clear();
      if (request_.request_id() == "fail") {
        response_.set_request_id("fail");
        response_.mutable_status()->set_code(3);
        response_.mutable_status()->set_message("bad request");
      } else {
        service_->Answer(request_, &response_);
      }
      StartWrite(&response_);
    }
    void OnWriteDone(bool ok) override {
      if (!ok) {
        Finish(grpc::Status(grpc::StatusCode::UNKNOWN, "write failed"));
        return;
      }
      StartRead(&request_);
    }
    void OnDone() override { delete this; }

   private:
    FakeAttention* service_;
    v1::AttendRequest request_;
    v1::AttendResponse response_;
  };

  std::mutex mu_;
  std::vector<std::thread> slow_calls_;  // guarded by mu_

  AnswerFn answer_;
  std::atomic<int> fail_every_{0};
  std::atomic<int64_t> attend_calls_{0};
};

// The fake, listening on 127.0.0.1 at a free port.
class FakeServer {
 public:
  FakeServer() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
  }
  ~FakeServer() {
    service_.JoinSlowCalls();
    server_->Shutdown(std::chrono::system_clock::now());
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  FakeAttention& service() { return service_; }

 private:
  FakeAttention service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace attnd::testing

#endif  // ATTND_TESTS_CLIENT_FAKE_SERVER_H_
