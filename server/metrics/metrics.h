// A small Prometheus registry: counters, gauges and histograms with labels, rendered in the
// text exposition format (checked by `promtool check metrics` in the tests), plus the standard
// process_* metrics, served over HTTP by HttpExporter (a small server of our own: see
// http_exporter.cc for why not civetweb).
#ifndef ATTND_SERVER_METRICS_METRICS_H_
#define ATTND_SERVER_METRICS_METRICS_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"

namespace attnd::server::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;  // in declaration order

class Counter {
 public:
  void Increment(double by = 1.0);
  double Value() const;
 private:
  std::atomic<double> value_{0.0};
};

class Gauge {
 public:
  void Set(double value);
  void Add(double by);
  double Value() const;
 private:
  std::atomic<double> value_{0.0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void Observe(double value);
  // Snapshot: cumulative bucket counts (one per bound, then +Inf), sum, count.
  void Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const;
  const std::vector<double>& bounds() const { return bounds_; }
 private:
  const std::vector<double> bounds_;
  mutable absl::Mutex mu_;
  std::vector<uint64_t> counts_ ABSL_GUARDED_BY(mu_);
  double sum_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

// A family: one metric name, help text, type, fixed label names; children by label values.
// Children live as long as the registry; pointers to them stay valid.
template <typename T>
class Family;

class Registry {
 public:
  Registry();
  ~Registry();
  // Get-or-create a child. Label names of one family must be the same on every call.
  Counter* GetCounter(const std::string& name, const std::string& help, const Labels& labels = {});
  Gauge* GetGauge(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram* GetHistogram(const std::string& name, const std::string& help,
                          const std::vector<double>& bounds, const Labels& labels = {});
  // Called at every render (for values read live: pool bytes, free memory, queue depth).
  void AddCollectHook(std::function<void()> hook);
  // The whole registry plus process_* metrics, text exposition format 0.0.4.
  std::string Render() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Bucket helpers.
std::vector<double> ExponentialBuckets(double start, double factor, int count);

// Serves registry->Render() at GET /metrics on `listen` ("host:port"). Stops on destruction.
class HttpExporter {
 public:
  static absl::StatusOr<std::unique_ptr<HttpExporter>> Start(const std::string& listen,
                                                             const Registry* registry);
  ~HttpExporter();
  int port() const;  // the bound port (useful with port 0)
 private:
  HttpExporter() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace attnd::server::metrics

#endif  // ATTND_SERVER_METRICS_METRICS_H_
