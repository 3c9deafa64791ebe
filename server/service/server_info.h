// What GetServerInfo answers, and the version/build strings the binary reports.
#ifndef ATTND_SERVER_SERVICE_SERVER_INFO_H_
#define ATTND_SERVER_SERVICE_SERVER_INFO_H_

#include <string>
#include <vector>

#include "attnd/v1/attention.pb.h"
#include "server/config/config.h"
#include "server/executor/executor.h"

namespace attnd::server::service {

// The project's version (CMake's PROJECT_VERSION), e.g. "0.1.0".
const char* Version();
// Compiler, CUDA ("none" without it), gRPC and protobuf versions, in one line.
std::string BuildString();
// The CUDA version this build targets, or "none" (the attnd_build_info `cuda` label).
std::string CudaBuildVersion();

// Reads each executor's memory live.
v1::ServerInfo BuildServerInfo(const Config& config, const std::string& backend,
                               const std::vector<executor::Executor*>& executors);

}  // namespace attnd::server::service

#endif  // ATTND_SERVER_SERVICE_SERVER_INFO_H_
