#include "client/attnctl/flags.h"

#include <functional>
#include <limits>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace attnd::attnctl {
namespace {

absl::Status Bad(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(flag, " = \"", value, "\": ", why));
}

absl::StatusOr<int64_t> ParseInt(absl::string_view flag, absl::string_view value, int64_t min,
                                 int64_t max) {
  int64_t parsed;
  if (!absl::SimpleAtoi(value, &parsed)) return Bad(flag, value, "not an integer");
  if (parsed < min || parsed > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " = ", parsed, " must be in [", min, ", ", max, "]"));
  }
  return parsed;
}

absl::StatusOr<std::vector<int64_t>> ParseIntList(absl::string_view flag, absl::string_view value,
                                                  size_t count, int64_t min) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(value, ',')) {
    absl::StatusOr<int64_t> v =
        ParseInt(flag, absl::StripAsciiWhitespace(part), min, std::numeric_limits<int64_t>::max());
    if (!v.ok()) return v.status();
    out.push_back(*v);
  }
  if (count != 0 && out.size() != count) {
    return Bad(flag, value, absl::StrCat("want ", count, " comma-separated integers"));
  }
  return out;
}

// "30s", "1.5m", "500ms", or a plain number of seconds.
absl::StatusOr<absl::Duration> ParseDurationFlag(absl::string_view flag, absl::string_view value) {
  absl::Duration duration;
  double seconds;
  if (absl::SimpleAtod(value, &seconds)) {
    duration = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(value, &duration)) {
    return Bad(flag, value, "not a duration (e.g. 30s, 500ms, 2m)");
  }
  if (duration <= absl::ZeroDuration() || duration == absl::InfiniteDuration()) {
    return Bad(flag, value, "must be positive and finite");
  }
  return duration;
}

// One flag: whether it takes a value, and what to do with it.
struct FlagDef {
  bool takes_value = true;
  std::function<absl::Status(absl::string_view flag, absl::string_view value)> set;
};
using FlagTable = std::map<std::string, FlagDef, std::less<>>;

// Sets *field from an integer flag in [min, max].
template <typename T>
FlagDef IntFlag(T* field, int64_t min, int64_t max) {
  return {true, [field, min, max](absl::string_view flag, absl::string_view value) {
            absl::StatusOr<int64_t> v = ParseInt(flag, value, min, max);
            if (!v.ok()) return v.status();
            *field = static_cast<T>(*v);
            return absl::OkStatus();
          }};
}
FlagDef OptionalIntFlag(std::optional<int64_t>* field, int64_t min) {
  return {true, [field, min](absl::string_view flag, absl::string_view value) {
            absl::StatusOr<int64_t> v =
                ParseInt(flag, value, min, std::numeric_limits<int64_t>::max());
            if (!v.ok()) return v.status();
            *field = *v;
            return absl::OkStatus();
          }};
}
FlagDef StringFlag(std::string* field) {
  return {true, [field](absl::string_view flag, absl::string_view value) {
            if (value.empty()) return Bad(flag, value, "must not be empty");
            *field = std::string(value);
            return absl::OkStatus();
          }};
}
FlagDef BoolFlag(bool* field) {
  return {false, [field](absl::string_view, absl::string_view) {
            *field = true;
            return absl::OkStatus();
          }};
}

void AddGlobalFlags(GlobalFlags* g, FlagTable* table) {
  (*table)["--target"] = StringFlag(&g->target);
  (*table)["--timeout"] = {true, [g](absl::string_view flag, absl::string_view value) {
                             absl::StatusOr<absl::Duration> d = ParseDurationFlag(flag, value);
                             if (!d.ok()) return d.status();
                             g->timeout = *d;
                             return absl::OkStatus();
                           }};
  (*table)["--lb"] = {true, [g](absl::string_view flag, absl::string_view value) {
                        if (value != "round_robin" && value != "pick_first") {
                          return Bad(flag, value, "want round_robin or pick_first");
                        }
                        g->load_balancing = std::string(value);
                        return absl::OkStatus();
                      }};
  (*table)["--max-message-bytes"] = IntFlag(&g->max_message_bytes, 1, INT32_MAX);
  (*table)["--tls"] = BoolFlag(&g->tls);
  // Each of these turns TLS on too.
  const std::pair<const char*, std::string*> tls_files[] = {
      {"--tls-ca", &g->tls_ca},
      {"--tls-cert", &g->tls_cert},
      {"--tls-key", &g->tls_key},
      {"--tls-server-name", &g->tls_server_name}};
  for (const auto& [name, field] : tls_files) {
    FlagDef string_flag = StringFlag(field);
    (*table)[name] = {true,
                      [g, set = string_flag.set](absl::string_view flag, absl::string_view value) {
                        g->tls = true;
                        return set(flag, value);
                      }};
  }
  (*table)["--token-file"] = StringFlag(&g->token_file);
}

void AddProblemFlags(ProblemFlags* p, FlagTable* table) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  (*table)["--batch"] = OptionalIntFlag(&p->batch, 1);
  (*table)["--q-len"] = OptionalIntFlag(&p->q_len, 1);
  (*table)["--kv-len"] = OptionalIntFlag(&p->kv_len, 1);
  (*table)["--heads"] = OptionalIntFlag(&p->heads, 1);
  (*table)["--kv-heads"] = OptionalIntFlag(&p->kv_heads, 1);
  (*table)["--head-dim"] = OptionalIntFlag(&p->head_dim, 1);
  (*table)["--v-head-dim"] = OptionalIntFlag(&p->v_head_dim, 1);
  (*table)["--dtype"] = {true, [p](absl::string_view flag, absl::string_view value) {
                           if (!ParseDTypeName(value, &p->dtype)) {
                             return Bad(flag, value, "want f32, f16 or bf16");
                           }
                           p->dtype_given = true;
                           return absl::OkStatus();
                         }};
  (*table)["--layout"] = {true, [p](absl::string_view flag, absl::string_view value) {
                            std::string v = absl::AsciiStrToLower(value);
                            if (v == "bmhk") {
                              p->layout = v1::LAYOUT_BMHK;
                            } else if (v == "bhmk") {
                              p->layout = v1::LAYOUT_BHMK;
                            } else {
                              return Bad(flag, value, "want bmhk or bhmk");
                            }
                            return absl::OkStatus();
                          }};
  (*table)["--causal"] = {true, [p](absl::string_view flag, absl::string_view value) {
                            if (value == "top-left") {
                              p->causal = v1::CAUSAL_TOP_LEFT;
                            } else if (value == "bottom-right") {
                              p->causal = v1::CAUSAL_BOTTOM_RIGHT;
                            } else if (value == "none") {
                              p->causal = v1::CAUSAL_NONE;
                            } else {
                              return Bad(flag, value, "want top-left, bottom-right or none");
                            }
                            return absl::OkStatus();
                          }};
  (*table)["--window"] = {true, [p](absl::string_view flag, absl::string_view value) {
                            absl::StatusOr<std::vector<int64_t>> lr =
                                ParseIntList(flag, value, 2, -1);
                            if (!lr.ok()) return lr.status();
                            p->window = std::make_pair((*lr)[0], (*lr)[1]);
                            return absl::OkStatus();
                          }};
  (*table)["--bias"] = BoolFlag(&p->bias);
  (*table)["--bias-shape"] = {true, [p](absl::string_view flag, absl::string_view value) {
                                absl::StatusOr<std::vector<int64_t>> s =
                                    ParseIntList(flag, value, 0, 1);
                                if (!s.ok()) return s.status();
                                if (s->size() < 2 || s->size() > 4) {
                                  return Bad(flag, value, "want 2 to 4 dimensions");
                                }
                                p->bias_shape = *s;
                                p->bias = true;
                                return absl::OkStatus();
                              }};
  (*table)["--kv-lengths"] = {true, [p](absl::string_view flag, absl::string_view value) {
                                if (value == "random") {
                                  p->random_kv_lengths = true;
                                  p->kv_lengths.clear();
                                  return absl::OkStatus();
                                }
                                absl::StatusOr<std::vector<int64_t>> l =
                                    ParseIntList(flag, value, 0, 0);
                                if (!l.ok()) return l.status();
                                p->kv_lengths = *l;
                                p->random_kv_lengths = false;
                                return absl::OkStatus();
                              }};
  (*table)["--lse"] = BoolFlag(&p->lse);
  (*table)["--scale"] = {true, [p](absl::string_view flag, absl::string_view value) {
                           double scale;
                           if (!absl::SimpleAtod(value, &scale) || !(scale > 0) ||
                               scale == std::numeric_limits<double>::infinity()) {
                             return Bad(flag, value, "want a positive finite number");
                           }
                           p->scale = scale;
                           return absl::OkStatus();
                         }};
  (*table)["--variant"] = {true, [p](absl::string_view flag, absl::string_view value) {
                             std::string name =
                                 absl::StrCat("VARIANT_", absl::AsciiStrToUpper(value));
                             v1::Variant variant;
                             if (!v1::Variant_Parse(name, &variant)) {
                               return Bad(flag, value,
                                          "want auto, reference, cpu_chunked, naive, sliced, "
                                          "chunked, cudnn or fused");
                             }
                             p->variant = variant;
                             return absl::OkStatus();
                           }};
  (*table)["--q-chunk"] = IntFlag(&p->q_chunk, 0, kMax);
  (*table)["--kv-chunk"] = IntFlag(&p->kv_chunk, 0, kMax);
  (*table)["--priority"] = IntFlag(&p->priority, INT32_MIN, INT32_MAX);
  (*table)["--seed"] = {true, [p](absl::string_view flag, absl::string_view value) {
                          if (!absl::SimpleAtoi(value, &p->seed)) {
                            return Bad(flag, value, "want a non-negative integer");
                          }
                          return absl::OkStatus();
                        }};
  (*table)["--q"] = StringFlag(&p->q_file);
  (*table)["--k"] = StringFlag(&p->k_file);
  (*table)["--v"] = StringFlag(&p->v_file);
  (*table)["--bias-file"] = StringFlag(&p->bias_file);
}

// Required shape flags when no .npy files give the shapes; q, k and v files come together.
absl::Status CheckProblemFlags(absl::string_view command, ProblemFlags* p) {
  const bool any_file = !p->q_file.empty() || !p->k_file.empty() || !p->v_file.empty();
  if (any_file) {
    if (p->q_file.empty() || p->k_file.empty() || p->v_file.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(command, ": --q, --k and --v come together"));
    }
  } else {
    const std::pair<const char*, const std::optional<int64_t>*> required[] = {
        {"--batch", &p->batch},
        {"--q-len", &p->q_len},
        {"--kv-len", &p->kv_len},
        {"--heads", &p->heads},
        {"--head-dim", &p->head_dim}};
    for (const auto& [flag, value] : required) {
      if (!value->has_value()) {
        return absl::InvalidArgumentError(absl::StrCat(
            command, ": ", flag, " is required (or give .npy inputs with --q --k --v)"));
      }
    }
    if (!p->bias_file.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(command, ": --bias-file needs --q, --k and --v files"));
    }
  }
  if (!p->bias_file.empty()) p->bias = true;
  return absl::OkStatus();
}

absl::Status CheckLoadFlags(LoadFlags* load) {
  if (load->duration.has_value() == (load->requests > 0)) {
    return absl::InvalidArgumentError("load: give exactly one of --duration and --requests");
  }
  if (load->mixed_lengths.has_value()) {
    ProblemFlags& p = load->problem;
    if (!p.q_file.empty()) {
      return absl::InvalidArgumentError(
          "load: --mixed-lengths generates its inputs; no --q/--k/--v");
    }
    if (p.q_len.has_value() || p.kv_len.has_value()) {
      return absl::InvalidArgumentError(
          "load: --mixed-lengths sets --q-len and --kv-len (per request); give neither");
    }
    if (!p.kv_lengths.empty() || (p.bias && !p.bias_shape.empty())) {
      return absl::InvalidArgumentError(
          "load: --mixed-lengths cannot take --kv-lengths lists or --bias-shape (they depend on "
          "the lengths); --kv-lengths random and --bias can");
    }
    // The largest, for checking the rest of the flags and describing the load.
    p.q_len = load->mixed_lengths->second;
    p.kv_len = load->mixed_lengths->second;
  }
  return CheckProblemFlags("load", &load->problem);
}

}  // namespace

bool ParseDTypeName(absl::string_view name, v1::DType* dtype) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "f32" || lower == "float32") {
    *dtype = v1::DTYPE_F32;
  } else if (lower == "f16" || lower == "float16") {
    *dtype = v1::DTYPE_F16;
  } else if (lower == "bf16" || lower == "bfloat16") {
    *dtype = v1::DTYPE_BF16;
  } else {
    return false;
  }
  return true;
}

std::string DTypeName(v1::DType dtype) {
  switch (dtype) {
    case v1::DTYPE_F32:
      return "f32";
    case v1::DTYPE_F16:
      return "f16";
    case v1::DTYPE_BF16:
      return "bf16";
    default:
      return "unspecified";
  }
}

std::string VariantName(v1::Variant variant) {
  std::string name = v1::Variant_Name(variant);
  if (absl::StartsWith(name, "VARIANT_")) name = name.substr(8);
  return name.empty() ? absl::StrCat("variant_", static_cast<int>(variant))
                      : absl::AsciiStrToLower(name);
}

std::string CausalName(v1::Causal causal) {
  switch (causal) {
    case v1::CAUSAL_TOP_LEFT:
      return "top-left";
    case v1::CAUSAL_BOTTOM_RIGHT:
      return "bottom-right";
    default:
      return "none";
  }
}

std::string LayoutName(v1::Layout layout) { return layout == v1::LAYOUT_BHMK ? "bhmk" : "bmhk"; }

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& args) {
  CommandLine cl;
  FlagTable global;
  AddGlobalFlags(&cl.global, &global);
  bool help = false;
  global["--help"] = BoolFlag(&help);
  global["-h"] = BoolFlag(&help);

  FlagTable command_flags;
  bool have_command = false;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::StartsWith(arg, "-")) {
      if (have_command) {
        return absl::InvalidArgumentError(absl::StrCat("unexpected argument \"", arg, "\""));
      }
      have_command = true;
      if (arg == "info") {
        cl.command = Command::kInfo;
        command_flags["--json"] = BoolFlag(&cl.info_json);
      } else if (arg == "health") {
        cl.command = Command::kHealth;
        command_flags["--service"] = StringFlag(&cl.health_service);
      } else if (arg == "attend") {
        cl.command = Command::kAttend;
        AddProblemFlags(&cl.attend.problem, &command_flags);
        command_flags["--out"] = StringFlag(&cl.attend.out_file);
        command_flags["--lse-out"] = StringFlag(&cl.attend.lse_file);
        command_flags["--check"] = BoolFlag(&cl.attend.check);
      } else if (arg == "load") {
        cl.command = Command::kLoad;
        LoadFlags* load = &cl.load;
        AddProblemFlags(&load->problem, &command_flags);
        command_flags["--concurrency"] = IntFlag(&load->concurrency, 1, 4096);
        command_flags["--requests"] = IntFlag(&load->requests, 1, int64_t{1} << 40);
        command_flags["--duration"] = {true, [load](absl::string_view f, absl::string_view v) {
                                         absl::StatusOr<absl::Duration> d = ParseDurationFlag(f, v);
                                         if (!d.ok()) return d.status();
                                         load->duration = *d;
                                         return absl::OkStatus();
                                       }};
        command_flags["--rps"] = {
            true, [load](absl::string_view f, absl::string_view v) {
              if (!absl::SimpleAtod(v, &load->rps) || !(load->rps >= 0) || load->rps > 1e9) {
                return Bad(f, v, "want a rate in [0, 1e9] (0: closed loop)");
              }
              return absl::OkStatus();
            }};
        command_flags["--channels"] = IntFlag(&load->channels, 1, 256);
        command_flags["--json"] = StringFlag(&load->json_file);
        command_flags["--echo"] = BoolFlag(&load->echo);
        command_flags["--mix-requests"] = IntFlag(&load->mix_requests, 1, 4096);
        command_flags["--mixed-lengths"] = {
            true, [load](absl::string_view f, absl::string_view v) {
              std::vector<std::string> parts = absl::StrSplit(v, absl::ByAnyChar("-,"));
              int64_t lo = 0, hi = 0;
              if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &lo) ||
                  !absl::SimpleAtoi(parts[1], &hi) || lo < 1 || hi < lo) {
                return Bad(f, v, "want MIN-MAX with 1 <= MIN <= MAX, e.g. 64-2048");
              }
              load->mixed_lengths = std::make_pair(lo, hi);
              return absl::OkStatus();
            }};
      } else if (arg == "help") {
        help = true;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("unknown command \"", arg, "\" (want info, health, attend or load)"));
      }
      continue;
    }

    // --name=value or --name value.
    absl::string_view name = arg, value;
    bool inline_value = false;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    const FlagDef* def = nullptr;
    if (auto it = global.find(name); it != global.end()) {
      def = &it->second;
    } else if (auto it2 = command_flags.find(name); it2 != command_flags.end()) {
      def = &it2->second;
    } else {
      return absl::InvalidArgumentError(
          have_command
              ? absl::StrCat("unknown flag ", name, " for this command (see attnctl --help)")
              : absl::StrCat("unknown flag ", name,
                             " (command flags go after the command: info, health, attend, load)"));
    }
    if (def->takes_value && !inline_value) {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(absl::StrCat(name, " needs a value"));
      value = args[++i];
    } else if (!def->takes_value && inline_value) {
      return absl::InvalidArgumentError(absl::StrCat(name, " takes no value"));
    }
    if (absl::Status s = def->set(name, value); !s.ok()) return s;
  }

  if (help) {
    cl.command = Command::kHelp;
    return cl;
  }
  if (cl.global.tls_cert.empty() != cl.global.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key come together (mutual TLS)");
  }
  if (!have_command) {
    return absl::InvalidArgumentError("no command given (want info, health, attend or load)");
  }
  if (cl.command == Command::kAttend) {
    if (!cl.attend.lse_file.empty()) cl.attend.problem.lse = true;
    if (absl::Status s = CheckProblemFlags("attend", &cl.attend.problem); !s.ok()) return s;
  } else if (cl.command == Command::kLoad) {
    if (absl::Status s = CheckLoadFlags(&cl.load); !s.ok()) return s;
  }
  return cl;
}

}  // namespace attnd::attnctl
