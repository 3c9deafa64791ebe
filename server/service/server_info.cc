#include "server/service/server_info.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "google/protobuf/stubs/common.h"
#include "grpcpp/grpcpp.h"
#include "wire/request_codec.h"

#ifndef ATTND_VERSION
#define ATTND_VERSION "0.0.0"
#endif

namespace attnd::server::service {
namespace {

std::string CompilerString() {
#if defined(__clang__)
  return absl::StrCat("clang ", __clang_major__, ".", __clang_minor__, ".", __clang_patchlevel__);
#elif defined(__GNUC__)
  return absl::StrCat("gcc ", __GNUC__, ".", __GNUC_MINOR__, ".", __GNUC_PATCHLEVEL__);
#else
  return "unknown compiler";
#endif
}

}  // namespace

const char* Version() { return ATTND_VERSION; }

std::string CudaBuildVersion() {
#ifdef ATTND_CUDA_VERSION
  return ATTND_CUDA_VERSION;
#else
  return "none";
#endif
}

std::string BuildString() {
  return absl::StrCat("attnd ", Version(), "; ", CompilerString(), "; cuda ", CudaBuildVersion(),
                      "; grpc ", grpc::Version(), "; protobuf ",
                      google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION));
}

v1::ServerInfo BuildServerInfo(const Config& config, const std::string& backend,
                               const std::vector<executor::Executor*>& executors) {
  v1::ServerInfo info;
  info.set_version(Version());
  info.set_backend(backend);
  std::vector<kernels::Variant> variants;
  for (executor::Executor* device : executors) {
    v1::DeviceInfo* d = info.add_devices();
    d->set_name(device->name());
    d->set_kind(device->kind());
    d->set_memory_total_bytes(device->Memory().total_bytes);
    d->set_memory_budget_bytes(device->MemoryBudgetBytes());
    for (kernels::Variant v : device->capabilities().variants) {
      if (std::find(variants.begin(), variants.end(), v) == variants.end()) variants.push_back(v);
    }
  }
  std::sort(variants.begin(), variants.end());
  for (kernels::Variant v : variants) info.add_variants(wire::ToProto(v));
  info.add_dtypes(v1::DTYPE_F32);
  info.add_dtypes(v1::DTYPE_F16);
  info.add_dtypes(v1::DTYPE_BF16);
  info.set_max_head_dim(config.limits.max_head_dim);
  v1::Limits* limits = info.mutable_limits();
  limits->set_max_message_bytes(config.server.max_message_bytes);
  limits->set_max_tensor_elements(config.limits.max_tensor_elements);
  limits->set_max_batch(config.limits.max_batch);
  limits->set_max_seq_len(config.limits.max_seq_len);
  limits->set_max_heads(config.limits.max_heads);
  limits->set_max_head_dim(config.limits.max_head_dim);
  limits->set_max_queue_requests(config.scheduler.max_queue_requests);
  limits->set_max_tokens(config.limits.max_tokens);
  limits->set_max_concurrent_streams(config.server.max_concurrent_streams);
  info.set_build(BuildString());
  return info;
}

}  // namespace attnd::server::service
