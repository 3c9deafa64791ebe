// The registry and its text exposition (format 0.0.4): families sorted by name, children sorted
// by label values, so two renders of the same state are byte-identical.
#include "server/metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "server/metrics/process_metrics.h"
#include "server/metrics/text_format.h"

namespace attnd::server::metrics {
namespace {

enum class Type { kCounter, kGauge, kHistogram };

const char* TypeName(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void AtomicAdd(std::atomic<double>* value, double by) {
  double old = value->load(std::memory_order_relaxed);
  while (!value->compare_exchange_weak(old, old + by, std::memory_order_relaxed)) {
  }
}

bool ValidMetricName(const std::string& name) {
  if (name.empty() || absl::ascii_isdigit(name[0])) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_' || c == ':'; });
}

bool ValidLabelName(const std::string& name) {
  if (name.empty() || absl::ascii_isdigit(name[0]) || name.rfind("__", 0) == 0) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return absl::ascii_isalnum(c) || c == '_'; });
}

// Sorted, de-duplicated, finite bounds (+Inf is implicit).
std::vector<double> NormalizeBounds(std::vector<double> bounds) {
  bounds.erase(
      std::remove_if(bounds.begin(), bounds.end(), [](double b) { return !std::isfinite(b); }),
      bounds.end());
  std::sort(bounds.begin(), bounds.end());
  bounds.erase(std::unique(bounds.begin(), bounds.end()), bounds.end());
  return bounds;
}

struct Child {
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct FamilyData {
  std::string help;
  Type type = Type::kCounter;
  std::vector<std::string> label_names;
  std::vector<double> bounds;                          // histograms
  std::map<std::vector<std::string>, Child> children;  // by label values
};

// `{a="x",b="y"` without the closing brace, or "" without labels; `extra` is appended last.
std::string LabelText(const std::vector<std::string>& names, const std::vector<std::string>& values,
                      const std::string& extra_name = "", const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", names[i], "=\"",
                    internal::EscapeLabelValue(values[i]), "\"");
  }
  if (!extra_name.empty()) {
    absl::StrAppend(&out, out.empty() ? "{" : ",", extra_name, "=\"", extra_value, "\"");
  }
  if (!out.empty()) out += "}";
  return out;
}

void RenderFamily(const std::string& name, const FamilyData& family, std::string* out) {
  absl::StrAppend(out, "# HELP ", name, " ", internal::EscapeHelp(family.help), "\n");
  absl::StrAppend(out, "# TYPE ", name, " ", TypeName(family.type), "\n");
  for (const auto& [values, child] : family.children) {
    const std::string labels = LabelText(family.label_names, values);
    switch (family.type) {
      case Type::kCounter:
        absl::StrAppend(out, name, labels, " ", internal::FormatValue(child.counter->Value()),
                        "\n");
        break;
      case Type::kGauge:
        absl::StrAppend(out, name, labels, " ", internal::FormatValue(child.gauge->Value()), "\n");
        break;
      case Type::kHistogram: {
        std::vector<uint64_t> cumulative;
        double sum = 0;
        uint64_t count = 0;
        child.histogram->Snapshot(&cumulative, &sum, &count);
        const std::vector<double>& bounds = child.histogram->bounds();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          const std::string le = i < bounds.size() ? internal::FormatValue(bounds[i]) : "+Inf";
          absl::StrAppend(out, name, "_bucket", LabelText(family.label_names, values, "le", le),
                          " ", cumulative[i], "\n");
        }
        absl::StrAppend(out, name, "_sum", labels, " ", internal::FormatValue(sum), "\n");
        absl::StrAppend(out, name, "_count", labels, " ", count, "\n");
        break;
      }
    }
  }
}

}  // namespace

// --- Counter, Gauge, Histogram -------------------------------------------------------------

void Counter::Increment(double by) {
  if (!(by >= 0)) return;  // counters only go up; negative or NaN increments are dropped
  AtomicAdd(&value_, by);
}
double Counter::Value() const { return value_.load(std::memory_order_relaxed); }

void Gauge::Set(double value) { value_.store(value, std::memory_order_relaxed); }
void Gauge::Add(double by) { AtomicAdd(&value_, by); }
double Gauge::Value() const { return value_.load(std::memory_order_relaxed); }

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(NormalizeBounds(std::move(upper_bounds))), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  if (std::isnan(value)) return;
  // Bucket i holds values <= bounds_[i]; the last one (+Inf) the rest.
  const size_t bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  absl::MutexLock lock(&mu_);
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::Snapshot(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const {
  absl::MutexLock lock(&mu_);
  cumulative->resize(counts_.size());
  uint64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) {
    running += counts_[i];
    (*cumulative)[i] = running;
  }
  *sum = sum_;
  *count = count_;
}

std::vector<double> ExponentialBuckets(double start, double factor, int count) {
  std::vector<double> bounds;
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  return bounds;
}

// --- Registry --------------------------------------------------------------------------------

struct Registry::Impl {
  // Serialises renders, so collect hooks never run concurrently with each other.
  absl::Mutex render_mu;
  mutable absl::Mutex mu;
  std::map<std::string, FamilyData> families ABSL_GUARDED_BY(mu);
  std::vector<std::function<void()>> hooks ABSL_GUARDED_BY(mu);
  // Children handed out on misuse (bad name, type or label clash): usable, never rendered.
  std::deque<Child> orphans ABSL_GUARDED_BY(mu);

  Child* Get(const std::string& name, const std::string& help, Type type,
             const std::vector<double>& bounds, const Labels& labels) {
    std::vector<std::string> names;
    std::vector<std::string> values;
    for (const auto& [label, value] : labels) {
      names.push_back(label);
      values.push_back(value);
    }
    std::string problem;
    if (!ValidMetricName(name)) problem = "invalid metric name";
    for (size_t i = 0; i < names.size() && problem.empty(); ++i) {
      if (!ValidLabelName(names[i]) || (type == Type::kHistogram && names[i] == "le")) {
        problem = absl::StrCat("invalid label name \"", names[i], "\"");
      } else if (std::find(names.begin(), names.begin() + i, names[i]) != names.begin() + i) {
        problem = absl::StrCat("repeated label name \"", names[i], "\"");
      }
    }
    const std::vector<double> normalized = NormalizeBounds(bounds);
    absl::MutexLock lock(&mu);
    if (problem.empty()) {
      auto [it, inserted] = families.try_emplace(name);
      FamilyData& family = it->second;
      if (inserted) {
        family.help = help;
        family.type = type;
        family.label_names = names;
        family.bounds = normalized;
      }
      if (family.type != type) {
        problem = absl::StrCat("already registered as a ", TypeName(family.type));
      } else if (family.label_names != names) {
        problem = "label names differ from the first registration";
      } else if (type == Type::kHistogram && family.bounds != normalized) {
        problem = "bucket bounds differ from the first registration";
      } else {
        Child& child = family.children[values];
        MakeChild(type, normalized, &child);
        return &child;
      }
    }
    // A programming error: say so once per call, hand back a working but hidden child.
    std::fprintf(stderr, "attnd metrics: %s: %s; this child is not exported\n", name.c_str(),
                 problem.c_str());
    orphans.emplace_back();
    MakeChild(type, normalized, &orphans.back());
    return &orphans.back();
  }

  static void MakeChild(Type type, const std::vector<double>& bounds, Child* child) {
    switch (type) {
      case Type::kCounter:
        if (!child->counter) child->counter = std::make_unique<Counter>();
        break;
      case Type::kGauge:
        if (!child->gauge) child->gauge = std::make_unique<Gauge>();
        break;
      case Type::kHistogram:
        if (!child->histogram) child->histogram = std::make_unique<Histogram>(bounds);
        break;
    }
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {}
Registry::~Registry() = default;

Counter* Registry::GetCounter(const std::string& name, const std::string& help,
                              const Labels& labels) {
  return impl_->Get(name, help, Type::kCounter, {}, labels)->counter.get();
}

Gauge* Registry::GetGauge(const std::string& name, const std::string& help, const Labels& labels) {
  return impl_->Get(name, help, Type::kGauge, {}, labels)->gauge.get();
}

Histogram* Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  return impl_->Get(name, help, Type::kHistogram, bounds, labels)->histogram.get();
}

void Registry::AddCollectHook(std::function<void()> hook) {
  absl::MutexLock lock(&impl_->mu);
  impl_->hooks.push_back(std::move(hook));
}

std::string Registry::Render() const {
  absl::MutexLock render_lock(&impl_->render_mu);
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&impl_->mu);
    hooks = impl_->hooks;
  }
  for (const auto& hook : hooks) hook();  // hooks may register and set metrics: mu not held

  // Name → rendered family; process_* families join the same sorted order.
  std::map<std::string, std::string> blocks = internal::RenderProcessMetrics();
  absl::MutexLock lock(&impl_->mu);
  for (const auto& [name, family] : impl_->families) {
    std::string& block = blocks[name];  // a registered name wins over a process_* one
    block.clear();
    RenderFamily(name, family, &block);
  }
  std::string out;
  for (const auto& [name, block] : blocks) out += block;
  return out;
}

}  // namespace attnd::server::metrics
