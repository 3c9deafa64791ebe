#include "server/executor/executor.h"

#include <chrono>

namespace attnd::server::executor {

void Executor::RunBatch(absl::Span<const BatchEntry> entries, BatchCallbacks* callbacks) {
  for (size_t i = 0; i < entries.size(); ++i) {
    if (callbacks->Admit(i).ok()) RunEntry(entries, i, callbacks);
  }
}

void Executor::RunEntry(absl::Span<const BatchEntry> entries, size_t index,
                        BatchCallbacks* callbacks) {
  const BatchEntry& entry = entries[index];
  const auto start = std::chrono::steady_clock::now();
  absl::Status status = Run(*entry.plan, *entry.problem, entry.tensors);
  StageTimes times;
  times.compute_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  callbacks->Done(index, std::move(status), times);
}

}  // namespace attnd::server::executor
