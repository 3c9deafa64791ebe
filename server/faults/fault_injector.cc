#include "server/faults/fault_injector.h"

#include <cstdlib>
#include <map>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace attnd::server::faults {

FaultInjector* Install(FaultInjector* injector) {
  return ActiveSlot().exchange(injector, std::memory_order_acq_rel);
}

bool InWindow(int64_t n, int64_t first, int64_t count) {
  if (first <= 0 || n < first) return false;
  return count < 0 || n < first + count;
}

absl::StatusOr<FaultSpec> ParseFaultSpec(const std::string& text) {
  FaultSpec spec;
  const std::map<std::string, int64_t*> fields = {
      {"alloc_fail_at", &spec.alloc_fail_at},
      {"alloc_fail_count", &spec.alloc_fail_count},
      {"slow_kernel_ms", &spec.slow_kernel_ms},
      {"slow_kernels", &spec.slow_kernels},
      {"slow_copy_out_ms", &spec.slow_copy_out_ms},
      {"slow_copy_outs", &spec.slow_copy_outs},
      {"sticky_at", &spec.sticky_at},
      {"leak_bytes_per_request", &spec.leak_bytes_per_request},
  };
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<std::string> kv = absl::StrSplit(part, absl::MaxSplits('=', 1));
    auto field = fields.find(kv[0]);
    if (field == fields.end()) {
      return absl::InvalidArgumentError(absl::StrCat("fault spec: unknown key '", kv[0], "'"));
    }
    int64_t value = 0;
    if (kv.size() != 2 || !absl::SimpleAtoi(kv[1], &value) || value < -1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "fault spec: ", kv[0], " = '", kv.size() == 2 ? kv[1] : "", "' is not an integer >= -1"));
    }
    *field->second = value;
  }
  return spec;
}

namespace {
constexpr char kStickyMessage[] = "injected sticky device error";
}  // namespace

absl::Status InjectedStickyError() {
  return absl::InternalError(absl::StrCat(kStickyMessage, " (fault injection) after a launch"));
}

bool IsInjectedStickyError(const absl::Status& status) {
  return absl::IsInternal(status) && absl::StartsWith(status.message(), kStickyMessage);
}

absl::StatusOr<std::optional<FaultSpec>> FaultSpecFromEnvironment() {
  const char* spec_text = std::getenv("ATTND_TEST_FAULTS");
  const char* leak_text = std::getenv("ATTND_TEST_LEAK_BYTES_PER_REQUEST");
  if ((spec_text == nullptr || *spec_text == '\0') &&
      (leak_text == nullptr || *leak_text == '\0')) {
    return std::nullopt;
  }
  absl::StatusOr<FaultSpec> spec = ParseFaultSpec(spec_text == nullptr ? "" : spec_text);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("ATTND_TEST_FAULTS: ", spec.status().message()));
  }
  if (leak_text != nullptr && *leak_text != '\0' &&
      (!absl::SimpleAtoi(leak_text, &spec->leak_bytes_per_request) ||
       spec->leak_bytes_per_request < 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ATTND_TEST_LEAK_BYTES_PER_REQUEST = '", leak_text, "' is not a byte count"));
  }
  return std::optional<FaultSpec>(*spec);
}

bool ScriptedFaults::FailAllocation() {
  const int64_t n = allocations_.fetch_add(1) + 1;
  return InWindow(n, spec_.alloc_fail_at, spec_.alloc_fail_count);
}

absl::Duration ScriptedFaults::KernelDelay() {
  const int64_t n = launches_.fetch_add(1) + 1;
  if (spec_.slow_kernel_ms <= 0 || !InWindow(n, 1, spec_.slow_kernels)) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(spec_.slow_kernel_ms);
}

absl::Duration ScriptedFaults::CopyOutDelay() {
  const int64_t n = copy_outs_.fetch_add(1) + 1;
  if (spec_.slow_copy_out_ms <= 0 || !InWindow(n, 1, spec_.slow_copy_outs)) {
    return absl::ZeroDuration();
  }
  return absl::Milliseconds(spec_.slow_copy_out_ms);
}

bool ScriptedFaults::StickyError() {
  const int64_t n = sticky_checks_.fetch_add(1) + 1;
  return spec_.sticky_at > 0 && n >= spec_.sticky_at;
}

}  // namespace attnd::server::faults
