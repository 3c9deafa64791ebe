#include "server/scheduler/request_queue.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace attnd::server::scheduler {

absl::Status ExpiryStatus(const WorkItem& item, absl::Time now) {
  if (item.deadline <= now) {
    return absl::DeadlineExceededError(absl::StrCat("deadline passed after ",
                                                    absl::FormatDuration(now - item.enqueue_time),
                                                    " in the queue; the request was not computed"));
  }
  if (item.IsCancelled()) {
    return absl::CancelledError("cancelled by the client while queued; not computed");
  }
  return absl::OkStatus();
}

void CompleteDropped(std::vector<Dropped>* dropped) {
  for (Dropped& d : *dropped) Complete(d.item.get(), std::move(d.status));
  dropped->clear();
}

RequestQueue::RequestQueue(int64_t max_requests, int priority_levels)
    : max_requests_(std::max<int64_t>(max_requests, 1)),
      levels_(static_cast<size_t>(std::max(priority_levels, 1))) {}

int RequestQueue::ClampPriority(int priority) const {
  return std::clamp(priority, 0, static_cast<int>(levels_.size()) - 1);
}

absl::Status RequestQueue::Push(std::unique_ptr<WorkItem>* item, absl::Time now) {
  if (absl::Status expired = ExpiryStatus(**item, now); !expired.ok()) {
    if (absl::IsDeadlineExceeded(expired)) {
      return absl::DeadlineExceededError("deadline passed before the request was queued");
    }
    return expired;
  }
  if (full()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "queue full: ", size_, " requests waiting (scheduler.max_queue_requests); retry later"));
  }
  (*item)->priority = ClampPriority((*item)->priority);
  levels_[(*item)->priority].push_back(std::move(*item));
  ++size_;
  return absl::OkStatus();
}

void RequestQueue::DropExpired(absl::Time now, std::vector<Dropped>* dropped) {
  for (auto& level : levels_) {
    auto keep = level.begin();
    for (auto it = level.begin(); it != level.end(); ++it) {
      absl::Status status = ExpiryStatus(**it, now);
      if (status.ok()) {
        if (keep != it) *keep = std::move(*it);
        ++keep;
      } else {
        dropped->push_back(Dropped{std::move(*it), std::move(status)});
        --size_;
      }
    }
    level.erase(keep, level.end());
  }
}

std::vector<std::unique_ptr<WorkItem>> RequestQueue::PopNext(absl::Time now,
                                                             const BatchPolicy& policy,
                                                             std::vector<Dropped>* dropped,
                                                             int64_t memory_budget_bytes,
                                                             absl::Time* retry_at) {
  DropExpired(now, dropped);
  if (retry_at != nullptr) *retry_at = absl::InfiniteFuture();
  std::vector<std::unique_ptr<WorkItem>> batch;
  if (size_ == 0) return batch;

  // The batcher's view, in service order, with where each entry lives.
  std::vector<QueuedView> view;
  std::vector<std::pair<size_t, size_t>> where;  // (level, position)
  view.reserve(size_);
  where.reserve(size_);
  for (size_t p = levels_.size(); p-- > 0;) {
    for (size_t i = 0; i < levels_[p].size(); ++i) {
      const WorkItem& item = *levels_[p][i];
      view.push_back(QueuedView{item.priority, item.enqueue_time, item.deadline, item.batch_key,
                                item.tokens, item.memory_cost_bytes});
      where.emplace_back(p, i);
    }
  }
  BatchChoice choice = ChooseBatch(view, now, policy, memory_budget_bytes);
  if (retry_at != nullptr) *retry_at = choice.retry_at;
  for (size_t index : choice.indices) {
    auto [p, i] = where[index];
    batch.push_back(std::move(levels_[p][i]));
  }
  // Close the holes left behind (moved-from entries are null).
  for (auto& level : levels_) {
    level.erase(std::remove(level.begin(), level.end(), nullptr), level.end());
  }
  size_ -= static_cast<int64_t>(batch.size());
  return batch;
}

std::vector<std::unique_ptr<WorkItem>> RequestQueue::TakeAll() {
  std::vector<std::unique_ptr<WorkItem>> all;
  all.reserve(size_);
  for (size_t p = levels_.size(); p-- > 0;) {
    for (auto& item : levels_[p]) all.push_back(std::move(item));
    levels_[p].clear();
  }
  size_ = 0;
  return all;
}

}  // namespace attnd::server::scheduler
