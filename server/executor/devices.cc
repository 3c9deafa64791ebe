#include "server/executor/devices.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/device_query.h"
#include "server/executor/cpu_executor.h"
#include "server/logging/logging.h"

namespace attnd::server::executor {

bool CudaExecutorBuilt() {
  return false;  // the CUDA executor (memory pool, streams) is the next issue
}

absl::StatusOr<std::pair<std::string, std::string>> ChooseBackend(const std::string& kind,
                                                                  int cuda_devices,
                                                                  bool cuda_executor_built) {
  if (kind == "cpu") return std::make_pair(std::string("cpu"), std::string("backend.kind = cpu"));
  if (kind == "cuda") {
    if (!cuda_executor_built) {
      return absl::FailedPreconditionError(
          "backend.kind = \"cuda\" but this attnd has no CUDA executor (it was built without "
          "CUDA support, or CUDA serving is not implemented yet); use backend.kind cpu or auto");
    }
    if (cuda_devices <= 0) {
      return absl::FailedPreconditionError(
          "backend.kind = \"cuda\" but no CUDA device is visible; use backend.kind cpu or auto");
    }
    return std::make_pair(std::string("cuda"),
                          absl::StrCat("backend.kind = cuda, ", cuda_devices, " device(s)"));
  }
  if (kind == "auto") {
    if (cuda_devices > 0 && cuda_executor_built) {
      return std::make_pair(std::string("cuda"),
                            absl::StrCat("auto: ", cuda_devices, " CUDA device(s) visible"));
    }
    if (cuda_devices > 0) {
      return std::make_pair(
          std::string("cpu"),
          absl::StrCat("auto: ", cuda_devices,
                       " CUDA device(s) visible but this build has no CUDA executor; serving on "
                       "the cpu"));
    }
    return std::make_pair(std::string("cpu"),
                          std::string("auto: no CUDA device visible; serving on the cpu"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("backend.kind = \"", kind, "\": must be auto, cpu or cuda"));
}

absl::StatusOr<DeviceSelection> CreateExecutors(const Config& config) {
  const int cuda_devices = config.backend.kind == "cpu" ? 0 : kernels::CudaDeviceCount();
  absl::StatusOr<std::pair<std::string, std::string>> choice =
      ChooseBackend(config.backend.kind, cuda_devices, CudaExecutorBuilt());
  if (!choice.ok()) return choice.status();

  DeviceSelection selection;
  selection.backend = choice->first;
  selection.reason = choice->second;
  // Only the CPU executor exists so far (ChooseBackend never picks cuda without one).
  const int threads = CpuThreads(config.backend);
  selection.executors.push_back(std::make_unique<CpuExecutor>(config.memory, threads));
  logging::Log(logging::Level::kInfo, "backend_selected",
               {logging::F("backend", selection.backend), logging::F("reason", selection.reason),
                logging::F("cpu_threads", threads),
                logging::F("cuda_devices", static_cast<int64_t>(cuda_devices))});
  return selection;
}

}  // namespace attnd::server::executor
