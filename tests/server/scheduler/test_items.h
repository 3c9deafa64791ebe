// Helpers for the scheduler tests: work items that record how they were completed.
#ifndef ATTND_TESTS_SERVER_SCHEDULER_TEST_ITEMS_H_
#define ATTND_TESTS_SERVER_SCHEDULER_TEST_ITEMS_H_

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "server/scheduler/work_item.h"

namespace attnd::server::scheduler::testing {

// How one item ended: the number of completions (must end at exactly 1) and the status.
struct Outcome {
  std::atomic<int> completions{0};
  absl::Mutex mu;
  absl::Status status ABSL_GUARDED_BY(mu) = absl::UnknownError("not completed");
  std::string response_id ABSL_GUARDED_BY(mu);

  absl::Status Status() {
    absl::MutexLock lock(&mu);
    return status;
  }
};

inline std::unique_ptr<WorkItem> MakeItem(const std::string& id, int priority,
                                          std::shared_ptr<Outcome> outcome,
                                          absl::Time deadline = absl::InfiniteFuture()) {
  auto request = std::make_shared<v1::AttendRequest>();
  request->set_request_id(id);
  auto item = std::make_unique<WorkItem>();
  item->request = request;
  item->priority = priority;
  item->deadline = deadline;
  item->cancelled = MakeCancelFlag();
  item->done = [outcome](AttendResult result) {
    outcome->completions.fetch_add(1);
    absl::MutexLock lock(&outcome->mu);
    outcome->status = result.status();
    if (result.ok()) outcome->response_id = result->request_id();
  };
  return item;
}

inline std::string IdOf(const WorkItem& item) { return item.request->request_id(); }

}  // namespace attnd::server::scheduler::testing

#endif  // ATTND_TESTS_SERVER_SCHEDULER_TEST_ITEMS_H_
