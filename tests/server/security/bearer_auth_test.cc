#include "server/security/bearer_auth.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::security {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";

TEST(BearerTokenTest, TakesBearerInAnyCaseThenSpaces) {
  EXPECT_EQ(BearerToken("Bearer abc"), "abc");
  EXPECT_EQ(BearerToken("bearer abc"), "abc");
  EXPECT_EQ(BearerToken("BEARER   abc"), "abc");
  EXPECT_EQ(BearerToken("Bearer a.b-c_d~e+f/g="), "a.b-c_d~e+f/g=");
}

TEST(BearerTokenTest, RefusesOtherForms) {
  for (const char* value :
       {"", "Bearer", "Bearer ", "Bearer    ", "Bearerabc", "Basic YWxhZGRpbjpvcGVu", "abc",
        "Bearer abc def", " Bearer abc", "Token abc"}) {
    EXPECT_EQ(BearerToken(value), std::nullopt) << "\"" << value << "\"";
  }
}

class CheckBearerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char name[] = "/tmp/attnd_bearer_XXXXXX";
    close(mkstemp(name));
    path_ = name;
    std::ofstream(path_) << kToken << "\n";
    absl::StatusOr<std::unique_ptr<TokenFile>> tokens =
        TokenFile::Open(path_, absl::ZeroDuration());
    ASSERT_TRUE(tokens.ok()) << tokens.status();
    tokens_ = *std::move(tokens);
  }
  void TearDown() override { std::remove(path_.c_str()); }

  absl::Status Check(std::vector<absl::string_view> values) {
    return CheckBearer(values, tokens_.get(), absl::Now());
  }

  std::string path_;
  std::unique_ptr<TokenFile> tokens_;
};

TEST_F(CheckBearerTest, AcceptsTheToken) {
  const std::string header = absl::StrCat("Bearer ", kToken);
  EXPECT_TRUE(Check({header}).ok());
}

TEST_F(CheckBearerTest, EachWayToBeRefusedIsUnauthenticatedAndSaysWhy) {
  const absl::Status missing = Check({});
  EXPECT_EQ(missing.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.message(), HasSubstr("missing authorization"));

  const std::string good = absl::StrCat("Bearer ", kToken);
  for (std::vector<absl::string_view> values :
       {std::vector<absl::string_view>{kToken}, {"Basic abc"}, {"Bearer "}, {good, good}}) {
    const absl::Status malformed = Check(values);
    EXPECT_EQ(malformed.code(), absl::StatusCode::kUnauthenticated);
    EXPECT_THAT(malformed.message(), HasSubstr("malformed authorization"));
    EXPECT_THAT(malformed.message(), Not(HasSubstr(kToken)));  // never echoed
  }

  const absl::Status wrong = Check({"Bearer not-the-token"});
  EXPECT_EQ(wrong.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(wrong.message(), HasSubstr("invalid bearer token"));
  EXPECT_THAT(wrong.message(), Not(HasSubstr("not-the-token")));
}

}  // namespace
}  // namespace attnd::server::security
