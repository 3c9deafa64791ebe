#include "client/attnctl/flags.h"

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::attnctl {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<CommandLine> Parse(const std::string& line) {
  std::vector<std::string> args = absl::StrSplit(line, ' ', absl::SkipEmpty());
  return ParseCommandLine(args);
}

constexpr char kShape[] = " --batch 2 --q-len 97 --kv-len 33 --heads 8 --head-dim 59";

TEST(Flags, InfoWithGlobals) {
  absl::StatusOr<CommandLine> cl = Parse("--target 10.0.0.1:7000 --timeout 2.5 info --json");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->command, Command::kInfo);
  EXPECT_TRUE(cl->info_json);
  EXPECT_EQ(cl->global.target, "10.0.0.1:7000");
  EXPECT_EQ(cl->global.timeout, absl::Milliseconds(2500));
}

TEST(Flags, DefaultsAndGlobalFlagAfterCommand) {
  absl::StatusOr<CommandLine> cl = Parse("info --timeout=500ms --lb=round_robin");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->global.target, "127.0.0.1:50051");
  EXPECT_EQ(cl->global.timeout, absl::Milliseconds(500));
  EXPECT_EQ(cl->global.load_balancing, "round_robin");
  EXPECT_FALSE(cl->info_json);
}

TEST(Flags, HealthWithService) {
  absl::StatusOr<CommandLine> cl = Parse("--timeout 3s health");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->command, Command::kHealth);
  EXPECT_EQ(cl->health_service, "");
  EXPECT_EQ(cl->global.timeout, absl::Seconds(3));
  cl = Parse("health --service attnd.v1.Attention");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->health_service, "attnd.v1.Attention");
  EXPECT_FALSE(Parse("health --json").ok());
}

TEST(Flags, AttendEveryOption) {
  absl::StatusOr<CommandLine> cl =
      Parse(std::string("attend") + kShape +
            " --kv-heads 2 --v-head-dim 17 --dtype bf16 --layout bhmk --causal bottom-right"
            " --window 16,-1 --bias-shape 1,8,1,33 --kv-lengths 33,1 --lse --scale 0.5"
            " --variant cpu_chunked --q-chunk 32 --kv-chunk=64 --priority 1 --seed 123"
            " --out o.npy --check");
  ASSERT_TRUE(cl.ok()) << cl.status();
  const ProblemFlags& p = cl->attend.problem;
  EXPECT_EQ(cl->command, Command::kAttend);
  EXPECT_EQ(*p.batch, 2);
  EXPECT_EQ(*p.q_len, 97);
  EXPECT_EQ(*p.kv_len, 33);
  EXPECT_EQ(*p.heads, 8);
  EXPECT_EQ(*p.kv_heads, 2);
  EXPECT_EQ(*p.head_dim, 59);
  EXPECT_EQ(*p.v_head_dim, 17);
  EXPECT_EQ(p.dtype, v1::DTYPE_BF16);
  EXPECT_EQ(p.layout, v1::LAYOUT_BHMK);
  EXPECT_EQ(p.causal, v1::CAUSAL_BOTTOM_RIGHT);
  EXPECT_EQ(p.window, std::make_pair(int64_t{16}, int64_t{-1}));
  EXPECT_TRUE(p.bias);
  EXPECT_EQ(p.bias_shape, (std::vector<int64_t>{1, 8, 1, 33}));
  EXPECT_EQ(p.kv_lengths, (std::vector<int64_t>{33, 1}));
  EXPECT_TRUE(p.lse);
  EXPECT_DOUBLE_EQ(*p.scale, 0.5);
  EXPECT_EQ(p.variant, v1::VARIANT_CPU_CHUNKED);
  EXPECT_EQ(p.q_chunk, 32);
  EXPECT_EQ(p.kv_chunk, 64);
  EXPECT_EQ(p.priority, 1);
  EXPECT_EQ(p.seed, 123u);
  EXPECT_EQ(cl->attend.out_file, "o.npy");
  EXPECT_TRUE(cl->attend.check);
}

TEST(Flags, AttendFromFilesNeedsNoShape) {
  absl::StatusOr<CommandLine> cl =
      Parse("attend --q q.npy --k k.npy --v v.npy --bias-file b.npy --lse-out l.npy");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_TRUE(cl->attend.problem.bias);
  EXPECT_TRUE(cl->attend.problem.lse);
  EXPECT_EQ(cl->attend.problem.bias_file, "b.npy");
}

TEST(Flags, LoadDurationAndRate) {
  absl::StatusOr<CommandLine> cl = Parse(std::string("load") + kShape +
                                         " --concurrency 64 --duration 30s --rps 250.5"
                                         " --channels 4 --json out.json");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->command, Command::kLoad);
  EXPECT_EQ(cl->load.concurrency, 64);
  EXPECT_EQ(*cl->load.duration, absl::Seconds(30));
  EXPECT_EQ(cl->load.requests, 0);
  EXPECT_DOUBLE_EQ(cl->load.rps, 250.5);
  EXPECT_EQ(cl->load.channels, 4);
  EXPECT_EQ(cl->load.json_file, "out.json");
}

TEST(Flags, LoadEchoAndMixedLengths) {
  absl::StatusOr<CommandLine> cl = Parse(
      "load --batch 1 --heads 8 --head-dim 64 --mixed-lengths 64-2048 --mix-requests 16"
      " --echo --requests 10");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_TRUE(cl->load.echo);
  ASSERT_TRUE(cl->load.mixed_lengths.has_value());
  EXPECT_EQ(cl->load.mixed_lengths->first, 64);
  EXPECT_EQ(cl->load.mixed_lengths->second, 2048);
  EXPECT_EQ(cl->load.mix_requests, 16);
  EXPECT_EQ(*cl->load.problem.q_len, 2048);  // the largest, for describing the load
  EXPECT_EQ(*cl->load.problem.kv_len, 2048);
  cl = Parse("load --batch 1 --heads 8 --head-dim 64 --mixed-lengths 100,100 --requests 1");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_EQ(cl->load.mixed_lengths->first, 100);
}

TEST(Flags, Help) {
  for (const char* line : {"--help", "-h", "attend --help", "help"}) {
    absl::StatusOr<CommandLine> cl = Parse(line);
    ASSERT_TRUE(cl.ok()) << line << ": " << cl.status();
    EXPECT_EQ(cl->command, Command::kHelp) << line;
  }
  EXPECT_THAT(UsageText(), HasSubstr("--check"));
  EXPECT_THAT(UsageText(), HasSubstr("4e-3"));
}

struct BadLine {
  const char* name;
  std::string line;
  const char* message;
};

class FlagErrors : public ::testing::TestWithParam<BadLine> {};

TEST_P(FlagErrors, RefusedNamingTheFlag) {
  absl::StatusOr<CommandLine> cl = Parse(GetParam().line);
  ASSERT_FALSE(cl.ok()) << GetParam().line;
  EXPECT_EQ(cl.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(cl.status().message()), HasSubstr(GetParam().message));
}

const std::string kLoad = std::string("load") + kShape;

INSTANTIATE_TEST_SUITE_P(
    Cases, FlagErrors,
    ::testing::Values(
        BadLine{"NoCommand", "--target x:1", "no command"},
        BadLine{"UnknownCommand", "frobnicate", "unknown command \"frobnicate\""},
        BadLine{"ConcurrencyZero", kLoad + " --concurrency 0 --requests 5",
                "--concurrency = 0 must be in [1, 4096]"},
        BadLine{"ConcurrencyNotNumber", kLoad + " --concurrency many --requests 5",
                "--concurrency = \"many\": not an integer"},
        BadLine{"DTypeF64", std::string("attend") + kShape + " --dtype f64",
                "--dtype = \"f64\": want f32, f16 or bf16"},
        BadLine{"MissingValue", std::string("attend") + kShape + " --dtype",
                "--dtype needs a value"},
        BadLine{"BoolWithValue", std::string("attend") + kShape + " --check=yes",
                "--check takes no value"},
        BadLine{"UnknownFlag", std::string("attend") + kShape + " --frob 1", "unknown flag --frob"},
        BadLine{"LoadFlagOnAttend", std::string("attend") + kShape + " --concurrency 2",
                "unknown flag --concurrency"},
        BadLine{"CommandFlagBeforeCommand", "--batch 2 attend", "go after the command"},
        BadLine{"MissingShape", "attend --batch 2 --q-len 3 --kv-len 3 --heads 1",
                "--head-dim is required"},
        BadLine{"ZeroHeads", "attend --batch 2 --q-len 3 --kv-len 3 --heads 0 --head-dim 8",
                "--heads = 0 must be in [1,"},
        BadLine{"PartialFiles", "attend --q q.npy --k k.npy", "--q, --k and --v come together"},
        BadLine{"BiasFileWithoutFiles", std::string("attend") + kShape + " --bias-file b.npy",
                "--bias-file needs"},
        BadLine{"BadCausal", std::string("attend") + kShape + " --causal upper",
                "want top-left, bottom-right or none"},
        BadLine{"BadLayout", std::string("attend") + kShape + " --layout nchw",
                "want bmhk or bhmk"},
        BadLine{"BadWindow", std::string("attend") + kShape + " --window 3",
                "want 2 comma-separated integers"},
        BadLine{"BadVariant", std::string("attend") + kShape + " --variant turbo",
                "--variant = \"turbo\""},
        BadLine{"BadScale", std::string("attend") + kShape + " --scale -1", "positive finite"},
        BadLine{"BothDurationAndRequests", kLoad + " --duration 5s --requests 10",
                "exactly one of --duration and --requests"},
        BadLine{"NeitherDurationNorRequests", kLoad + " --concurrency 2",
                "exactly one of --duration and --requests"},
        BadLine{"BadDuration", kLoad + " --duration soon", "not a duration"},
        BadLine{"ZeroDuration", kLoad + " --duration 0s", "must be positive"},
        BadLine{"NegativeRps", kLoad + " --requests 5 --rps -3", "--rps"},
        BadLine{"BadTimeout", "--timeout -1s info", "--timeout"},
        BadLine{"BadLb", "--lb random info", "want round_robin or pick_first"},
        BadLine{"MixedLengthsReversed",
                "load --batch 1 --heads 1 --head-dim 8 --requests 1 --mixed-lengths 9-3",
                "want MIN-MAX with 1 <= MIN <= MAX"},
        BadLine{"MixedLengthsWithQLen", kLoad + " --requests 1 --mixed-lengths 3-9",
                "--mixed-lengths sets --q-len and --kv-len"},
        BadLine{"ExtraArgument", "info extra", "unexpected argument \"extra\""}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Flags, EnumNames) {
  v1::DType dtype;
  ASSERT_TRUE(ParseDTypeName("BF16", &dtype));
  EXPECT_EQ(dtype, v1::DTYPE_BF16);
  EXPECT_FALSE(ParseDTypeName("int8", &dtype));
  EXPECT_EQ(DTypeName(v1::DTYPE_F16), "f16");
  EXPECT_EQ(VariantName(v1::VARIANT_CPU_CHUNKED), "cpu_chunked");
  EXPECT_EQ(CausalName(v1::CAUSAL_TOP_LEFT), "top-left");
  EXPECT_EQ(LayoutName(v1::LAYOUT_BHMK), "bhmk");
}

TEST(Flags, TlsAndTokenFlags) {
  absl::StatusOr<CommandLine> cl = Parse("info");
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->global.tls);
  cl = Parse("--tls info");
  ASSERT_TRUE(cl.ok());
  EXPECT_TRUE(cl->global.tls);
  EXPECT_TRUE(cl->global.tls_ca.empty());
  cl = Parse(
      "--tls-ca ca.crt --tls-cert c.crt --tls-key c.key --tls-server-name attnd.test "
      "--token-file tokens info");
  ASSERT_TRUE(cl.ok()) << cl.status();
  EXPECT_TRUE(cl->global.tls);  // any --tls-* turns TLS on
  EXPECT_EQ(cl->global.tls_ca, "ca.crt");
  EXPECT_EQ(cl->global.tls_cert, "c.crt");
  EXPECT_EQ(cl->global.tls_key, "c.key");
  EXPECT_EQ(cl->global.tls_server_name, "attnd.test");
  EXPECT_EQ(cl->global.token_file, "tokens");
  cl = Parse("--token-file tokens info");
  ASSERT_TRUE(cl.ok());
  EXPECT_FALSE(cl->global.tls);  // a token alone does not
  EXPECT_THAT(std::string(Parse("--tls-cert c.crt info").status().message()),
              HasSubstr("--tls-cert and --tls-key come together"));
  EXPECT_THAT(std::string(Parse("--tls-key c.key info").status().message()),
              HasSubstr("come together"));
}

}  // namespace
}  // namespace attnd::attnctl
