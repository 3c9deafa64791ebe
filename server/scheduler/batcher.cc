#include "server/scheduler/batcher.h"

namespace attnd::server::scheduler {

BatchChoice ChooseBatch(absl::Span<const QueuedView> queue, absl::Time /*now*/,
                        const BatchPolicy& /*policy*/) {
  BatchChoice choice;
  // Batch size 1: the head runs at once, whatever the policy allows (see the header).
  if (!queue.empty()) choice.indices.push_back(0);
  return choice;
}

}  // namespace attnd::server::scheduler
