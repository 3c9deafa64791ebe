#include "server/executor/fatal_device_error.h"

#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "server/logging/logging.h"

namespace attnd::server::executor {
namespace {

struct FatalState {
  absl::Mutex mu;
  FatalDeviceErrorHandler handler ABSL_GUARDED_BY(mu);
  bool happened ABSL_GUARDED_BY(mu) = false;
  absl::Status first ABSL_GUARDED_BY(mu);
};

FatalState& State() {
  static FatalState* state = new FatalState();  // never destroyed: workers may outlive main
  return *state;
}

}  // namespace

void SetFatalDeviceErrorHandler(FatalDeviceErrorHandler handler) {
  FatalState& state = State();
  absl::MutexLock lock(&state.mu);
  state.handler = std::move(handler);
}

void OnFatalDeviceError(const std::string& device, const absl::Status& error) {
  using logging::F;
  FatalState& state = State();
  FatalDeviceErrorHandler handler;
  {
    absl::MutexLock lock(&state.mu);
    if (state.happened) {
      logging::Log(logging::Level::kDebug, "fatal_device_error_again",
                   {F("device", device), F("message", std::string(error.message()))});
      return;
    }
    state.happened = true;
    state.first = error;
    handler = state.handler;
  }
  logging::Log(logging::Level::kError, "fatal_device_error",
               {F("device", device), F("message", std::string(error.message())),
                F("action", "health NOT_SERVING, failing requests UNAVAILABLE, exiting")});
  // Outside the lock: the handler may read FirstFatalDeviceError.
  if (handler) handler(device, error);
}

bool FatalDeviceErrorHappened() {
  FatalState& state = State();
  absl::MutexLock lock(&state.mu);
  return state.happened;
}

absl::Status FirstFatalDeviceError() {
  FatalState& state = State();
  absl::MutexLock lock(&state.mu);
  return state.first;
}

void ResetFatalDeviceErrorForTesting() {
  FatalState& state = State();
  absl::MutexLock lock(&state.mu);
  state.happened = false;
  state.first = absl::OkStatus();
}

}  // namespace attnd::server::executor
