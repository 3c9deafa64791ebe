// attnctl info [--json]: what the server is and what it can do.
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/attnctl/commands.h"
#include "google/protobuf/util/json_util.h"

namespace attnd::attnctl {
namespace {

std::string Bytes(int64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrCat(bytes, " B") : absl::StrFormat("%.1f %s", value, units[unit]);
}

std::string FormatInfo(const v1::ServerInfo& info) {
  std::string out = absl::StrFormat("attnd %s, backend %s, build %s\n", info.version(),
                                    info.backend(), info.build().empty() ? "?" : info.build());
  absl::StrAppend(&out, "devices\n");
  if (info.devices().empty()) absl::StrAppend(&out, "  (none)\n");
  for (const v1::DeviceInfo& device : info.devices()) {
    absl::StrAppend(&out, absl::StrFormat("  %-24s %-5s memory %s, budget %s\n", device.name(),
                                          device.kind(), Bytes(device.memory_total_bytes()),
                                          Bytes(device.memory_budget_bytes())));
  }
  std::vector<std::string> dtypes, variants;
  for (int d : info.dtypes()) dtypes.push_back(DTypeName(static_cast<v1::DType>(d)));
  for (int v : info.variants()) variants.push_back(VariantName(static_cast<v1::Variant>(v)));
  absl::StrAppend(&out, "dtypes        ", absl::StrJoin(dtypes, " "), "\n");
  absl::StrAppend(&out, "variants      ", absl::StrJoin(variants, " "), "\n");
  absl::StrAppend(&out, "max head dim  ", info.max_head_dim(), "\n");
  const v1::Limits& l = info.limits();
  absl::StrAppend(&out, "limits\n");
  absl::StrAppend(&out, "  max message bytes    ", Bytes(l.max_message_bytes()), "\n");
  absl::StrAppend(&out, "  max tensor elements  ", l.max_tensor_elements(), "\n");
  absl::StrAppend(&out, "  max batch            ", l.max_batch(), "\n");
  absl::StrAppend(&out, "  max seq len          ", l.max_seq_len(), "\n");
  absl::StrAppend(&out, "  max heads            ", l.max_heads(), "\n");
  absl::StrAppend(&out, "  max head dim         ", l.max_head_dim(), "\n");
  absl::StrAppend(&out, "  max tokens           ", l.max_tokens(), "\n");
  absl::StrAppend(&out, "  max queue requests   ", l.max_queue_requests(), "\n");
  absl::StrAppend(&out, "  max streams per conn ", l.max_concurrent_streams(), "\n");
  return out;
}

}  // namespace

int RunInfo(const CommandLine& command_line, std::ostream& out, std::ostream& err) {
  absl::StatusOr<std::unique_ptr<client::Client>> client = MakeClient(command_line.global);
  if (!client.ok()) {
    PrintError(err, "client", client.status());
    return kExitError;
  }
  absl::StatusOr<v1::ServerInfo> info = (*client)->GetServerInfo(command_line.global.timeout);
  if (!info.ok()) {
    PrintError(err, "GetServerInfo", info.status());
    return kExitError;
  }
  if (!command_line.info_json) {
    out << FormatInfo(*info);
    return kExitOk;
  }
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  if (auto status = google::protobuf::util::MessageToJsonString(*info, &json, options);
      !status.ok()) {
    err << "attnctl: ServerInfo to JSON: " << status.ToString() << "\n";
    return kExitError;
  }
  out << json;
  if (json.empty() || json.back() != '\n') out << "\n";
  return kExitOk;
}

}  // namespace attnd::attnctl
