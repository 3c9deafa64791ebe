// attnd.v1.Attention on gRPC's callback API: Attend (one reactor per call), AttendStream
// (AttendStreamReactor), GetServerInfo, Echo.
#ifndef ATTND_SERVER_SERVICE_ATTENTION_SERVICE_H_
#define ATTND_SERVER_SERVICE_ATTENTION_SERVICE_H_

#include "attnd/v1/attention.grpc.pb.h"
#include "server/service/service_context.h"

namespace attnd::server::service {

class AttentionService final : public v1::Attention::CallbackService {
 public:
  // `service` must outlive every call (the Server shuts gRPC down before destroying it).
  explicit AttentionService(ServiceContext* service) : service_(service) {}

  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* context,
                                   const v1::AttendRequest* request,
                                   v1::AttendResponse* response) override;
  grpc::ServerBidiReactor<v1::AttendRequest, v1::AttendResponse>* AttendStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* GetServerInfo(grpc::CallbackServerContext* context,
                                          const v1::GetServerInfoRequest* request,
                                          v1::ServerInfo* response) override;
  // Validates like Attend, then answers outputs of the right size at once (no queue, no device).
  grpc::ServerUnaryReactor* Echo(grpc::CallbackServerContext* context,
                                 const v1::AttendRequest* request,
                                 v1::AttendResponse* response) override;

 private:
  ServiceContext* const service_;
};

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_ATTENTION_SERVICE_H_
