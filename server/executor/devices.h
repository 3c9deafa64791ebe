// Choosing the devices to serve on from backend.kind:
//   cpu   the CPU executor.
//   cuda  CUDA executors; a start-up error naming backend.kind when there is no GPU or the build
//         has no CUDA executor.
//   auto  CUDA when a GPU is visible and a CUDA executor is built, else the CPU, with a log line
//         saying why.
#ifndef ATTND_SERVER_EXECUTOR_DEVICES_H_
#define ATTND_SERVER_EXECUTOR_DEVICES_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/config/config.h"
#include "server/executor/executor.h"

namespace attnd::server::executor {

struct DeviceSelection {
  std::string backend;  // "cpu" or "cuda": what serves
  std::string reason;   // one line: why
  std::vector<std::unique_ptr<Executor>> executors;
};

// The decision alone, for a given visible GPU count: the backend and why, or the start-up
// error. Pure.
absl::StatusOr<std::pair<std::string, std::string>> ChooseBackend(const std::string& kind,
                                                                  int cuda_devices,
                                                                  bool cuda_executor_built);

// Decides (with kernels::CudaDeviceCount()), logs the choice and builds the executors.
absl::StatusOr<DeviceSelection> CreateExecutors(const Config& config);

// Whether this build contains a CUDA executor.
bool CudaExecutorBuilt();

// The CUDA ordinals to serve on: every visible one when `configured` (backend.devices) is empty,
// else `configured` in its order. INVALID_ARGUMENT naming backend.devices for an ordinal that is
// not visible or is listed twice. Pure.
absl::StatusOr<std::vector<int>> SelectCudaDevices(const std::vector<int>& configured,
                                                   int cuda_devices);

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_DEVICES_H_
