// The process-wide hook for a device that can no longer compute: a sticky CUDA error (illegal
// address, launch failure, ...) poisons the whole CUDA context, so the only recovery is a new
// process. The executor that meets one reports it here once; attnd's main wires the handler to
// health NOT_SERVING, UNAVAILABLE for in-flight and queued requests, and a non-zero exit so that
// the orchestrator restarts the pod.
//
//   SetFatalDeviceErrorHandler([](const std::string& device, const absl::Status& error) {...});
//   ...
//   OnFatalDeviceError("cuda:0", status);  // from the executor, on a worker thread
#ifndef ATTND_SERVER_EXECUTOR_FATAL_DEVICE_ERROR_H_
#define ATTND_SERVER_EXECUTOR_FATAL_DEVICE_ERROR_H_

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace attnd::server::executor {

// Runs on the thread that met the error; must return promptly (signal another thread to do the
// shutting down) and must not wait for in-flight requests, which may include the caller's.
using FatalDeviceErrorHandler =
    std::function<void(const std::string& device, const absl::Status& error)>;

// Replaces the handler (null: none; the error is still recorded and logged).
void SetFatalDeviceErrorHandler(FatalDeviceErrorHandler handler);

// Records the first fatal error of the process, logs it, and calls the handler once. Later
// calls (other workers meeting the same broken context) are logged at debug level only.
void OnFatalDeviceError(const std::string& device, const absl::Status& error);

// Whether OnFatalDeviceError was called, and the first error (OK when none).
bool FatalDeviceErrorHappened();
absl::Status FirstFatalDeviceError();

// Forgets the recorded error (tests only; a real process exits instead).
void ResetFatalDeviceErrorForTesting();

}  // namespace attnd::server::executor

#endif  // ATTND_SERVER_EXECUTOR_FATAL_DEVICE_ERROR_H_
