#include "server/security/token_file.h"

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::security {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kToken[] = "0123456789abcdef0123456789abcdef";
constexpr char kOther[] = "fedcba9876543210fedcba9876543210";

// A token file in /tmp, rewritten by Write, removed on destruction.
class TokenFileOnDisk {
 public:
  TokenFileOnDisk() {
    char name[] = "/tmp/attnd_tokens_XXXXXX";
    close(mkstemp(name));
    path_ = name;
  }
  ~TokenFileOnDisk() { std::remove(path_.c_str()); }
  void Write(const std::string& text) const { std::ofstream(path_, std::ios::trunc) << text; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ParseTokensTest, OnePerLineSkippingBlanksAndComments) {
  absl::StatusOr<std::vector<std::string>> tokens =
      ParseTokens("# team a\n  alpha-token  \n\n\tbeta.token_2\r\n# old: gamma\n");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_THAT(*tokens, ElementsAre("alpha-token", "beta.token_2"));
}

TEST(ParseTokensTest, KubernetesSecretWithoutNewline) {
  absl::StatusOr<std::vector<std::string>> tokens = ParseTokens(kToken);
  ASSERT_TRUE(tokens.ok());
  EXPECT_THAT(*tokens, ElementsAre(kToken));
}

TEST(ParseTokensTest, RefusesNoTokenAndInnerSpaceNamingTheLineNotTheToken) {
  absl::StatusOr<std::vector<std::string>> empty = ParseTokens("\n# nothing\n  \n");
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("no token"));

  absl::StatusOr<std::vector<std::string>> spaced = ParseTokens("good\nsecret part\n");
  ASSERT_FALSE(spaced.ok());
  EXPECT_THAT(spaced.status().message(), AllOf(HasSubstr("line 2"), Not(HasSubstr("secret"))));
}

TEST(TokenFileTest, AcceptsOnlyItsTokens) {
  TokenFileOnDisk file;
  file.Write(absl::StrCat(kToken, "\n", kOther, "\n"));
  absl::StatusOr<std::unique_ptr<TokenFile>> tokens =
      TokenFile::Open(file.path(), absl::ZeroDuration());
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ((*tokens)->size(), 2);
  const absl::Time now = absl::Now();
  EXPECT_TRUE((*tokens)->Accepts(kToken, now));
  EXPECT_TRUE((*tokens)->Accepts(kOther, now));
  EXPECT_FALSE((*tokens)->Accepts("", now));
  EXPECT_FALSE((*tokens)->Accepts(std::string(kToken).substr(1), now));  // a prefix
  EXPECT_FALSE((*tokens)->Accepts(absl::StrCat(kToken, "x"), now));      // longer
}

TEST(TokenFileTest, OpenErrorsNameTheKeyAndPath) {
  absl::StatusOr<std::unique_ptr<TokenFile>> missing =
      TokenFile::Open("/nonexistent/tokens", absl::ZeroDuration());
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(),
              AllOf(HasSubstr("server.auth_token_file = \"/nonexistent/tokens\""),
                    HasSubstr("cannot read")));

  TokenFileOnDisk file;
  file.Write("# nothing yet\n");
  absl::StatusOr<std::unique_ptr<TokenFile>> empty =
      TokenFile::Open(file.path(), absl::ZeroDuration());
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(),
              AllOf(HasSubstr("server.auth_token_file"), HasSubstr("no token")));
}

TEST(TokenFileTest, ReloadsAfterTheIntervalAndKeepsTokensWhenTheFileBreaks) {
  TokenFileOnDisk file;
  file.Write(kToken);
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  absl::StatusOr<std::unique_ptr<TokenFile>> opened =
      TokenFile::Open(file.path(), absl::Seconds(10), t0);
  ASSERT_TRUE(opened.ok());
  TokenFile& tokens = **opened;

  file.Write(kOther);  // rotated
  // Within the interval the old token still works, the new one not yet.
  EXPECT_TRUE(tokens.Accepts(kToken, t0 + absl::Seconds(9)));
  EXPECT_FALSE(tokens.Accepts(kOther, t0 + absl::Seconds(9)));
  // After it the file is read again.
  EXPECT_TRUE(tokens.Accepts(kOther, t0 + absl::Seconds(10)));
  EXPECT_FALSE(tokens.Accepts(kToken, t0 + absl::Seconds(10)));

  // A broken file (mid-rotation, emptied) keeps the tokens last read.
  file.Write("");
  EXPECT_TRUE(tokens.Accepts(kOther, t0 + absl::Seconds(21)));
  std::remove(file.path().c_str());
  EXPECT_TRUE(tokens.Accepts(kOther, t0 + absl::Seconds(32)));
  file.Write(kToken);
  EXPECT_TRUE(tokens.Accepts(kToken, t0 + absl::Seconds(43)));
  EXPECT_EQ(tokens.size(), 1);
}

TEST(TokenFileTest, ZeroIntervalNeverReloads) {
  TokenFileOnDisk file;
  file.Write(kToken);
  absl::StatusOr<std::unique_ptr<TokenFile>> tokens =
      TokenFile::Open(file.path(), absl::ZeroDuration());
  ASSERT_TRUE(tokens.ok());
  file.Write(kOther);
  EXPECT_TRUE((*tokens)->Accepts(kToken, absl::Now() + absl::Hours(1000)));
  EXPECT_FALSE((*tokens)->Accepts(kOther, absl::Now() + absl::Hours(1000)));
}

}  // namespace
}  // namespace attnd::server::security
