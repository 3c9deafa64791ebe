#include "server/executor/devices.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/device_query.h"
#include "server/executor/cpu_executor.h"
#include "server/logging/logging.h"
#ifdef ATTND_CUDA_EXECUTOR
#include "server/executor/cuda_executor.h"
#endif

namespace attnd::server::executor {

bool CudaExecutorBuilt() {
#ifdef ATTND_CUDA_EXECUTOR
  return true;
#else
  return false;  // built without CUDA (or without the CUDA variants' library)
#endif
}

absl::StatusOr<std::vector<int>> SelectCudaDevices(const std::vector<int>& configured,
                                                   int cuda_devices) {
  std::vector<int> ordinals;
  if (configured.empty()) {
    for (int i = 0; i < cuda_devices; ++i) ordinals.push_back(i);
    return ordinals;
  }
  for (int ordinal : configured) {
    if (ordinal < 0 || ordinal >= cuda_devices) {
      return absl::InvalidArgumentError(
          absl::StrCat("backend.devices: CUDA device ", ordinal, " does not exist (", cuda_devices,
                       " visible: ordinals 0 to ", cuda_devices - 1, ")"));
    }
    if (std::find(ordinals.begin(), ordinals.end(), ordinal) != ordinals.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("backend.devices: CUDA device ", ordinal, " is listed twice"));
    }
    ordinals.push_back(ordinal);
  }
  return ordinals;
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
  if (selection.backend == "cuda") {
#ifdef ATTND_CUDA_EXECUTOR
    absl::StatusOr<std::vector<int>> ordinals =
        SelectCudaDevices(config.backend.devices, cuda_devices);
    if (!ordinals.ok()) return ordinals.status();
    for (int ordinal : *ordinals) {
      CudaExecutorOptions options;
      options.device = ordinal;
      options.workers = config.scheduler.workers;
      options.memory = config.memory;
      options.batch = RaggedLaunchOptionsFor(config);
      absl::StatusOr<std::unique_ptr<CudaExecutor>> device = CudaExecutor::Create(options);
      if (!device.ok()) return device.status();
      selection.executors.push_back(*std::move(device));
    }
    logging::Log(logging::Level::kInfo, "backend_selected",
                 {logging::F("backend", selection.backend), logging::F("reason", selection.reason),
                  logging::F("cuda_devices", static_cast<int64_t>(cuda_devices)),
                  logging::F("serving_devices", static_cast<int64_t>(ordinals->size()))});
    return selection;
#else
    return absl::FailedPreconditionError("backend.kind: no CUDA executor in this build");
#endif
  }
  const int threads = CpuThreads(config.backend);
  selection.executors.push_back(std::make_unique<CpuExecutor>(
      config.memory, threads, ReadProcMemInfo, RaggedLaunchOptionsFor(config)));
  logging::Log(logging::Level::kInfo, "backend_selected",
               {logging::F("backend", selection.backend), logging::F("reason", selection.reason),
                logging::F("cpu_threads", threads),
                logging::F("cuda_devices", static_cast<int64_t>(cuda_devices))});
  return selection;
}

}  // namespace attnd::server::executor
