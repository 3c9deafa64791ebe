#include "server/logging/logging.h"

#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace attnd::server::logging {
namespace {

using ::testing::MatchesRegex;

// A strict parser for the flat JSON objects the logger writes: string, number, true/false
// values. Returns nullopt on any syntax error (so a bad escape fails the test).
class FlatJson {
 public:
  static std::optional<std::map<std::string, std::string>> Parse(const std::string& text) {
    FlatJson p(text);
    std::map<std::string, std::string> out;
    if (!p.Eat('{')) return std::nullopt;
    while (true) {
      std::string key, value;
      if (!p.String(&key) || !p.Eat(':') || !p.Value(&value)) return std::nullopt;
      if (!out.emplace(key, value).second) return std::nullopt;  // duplicate key
      if (p.Eat('}')) break;
      if (!p.Eat(',')) return std::nullopt;
    }
    if (p.pos_ != text.size()) return std::nullopt;
    return out;
  }

 private:
  explicit FlatJson(const std::string& text) : text_(text) {}
  bool Eat(char c) {
    if (pos_ < text_.size() && text_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool String(std::string* out) {
    if (!Eat('"')) return false;
    while (pos_ < text_.size()) {
      const unsigned char c = text_[pos_++];
      if (c == '"') return true;
      if (c < 0x20) return false;  // raw control characters are not allowed in JSON strings
      if (c != '\\') {
        out->push_back(static_cast<char>(c));
        continue;
      }
      if (pos_ >= text_.size()) return false;
      const char e = text_[pos_++];
      switch (e) {
        case '"':
          out->push_back('"');
          break;
        case '\\':
          out->push_back('\\');
          break;
        case '/':
          out->push_back('/');
          break;
        case 'n':
          out->push_back('\n');
          break;
        case 'r':
          out->push_back('\r');
          break;
        case 't':
          out->push_back('\t');
          break;
        case 'b':
          out->push_back('\b');
          break;
        case 'f':
          out->push_back('\f');
          break;
        case 'u': {
          if (pos_ + 4 > text_.size()) return false;
          const long code = std::strtol(text_.substr(pos_, 4).c_str(), nullptr, 16);
          if (code >= 0x80) return false;  // the logger only escapes ASCII control characters
          out->push_back(static_cast<char>(code));
          pos_ += 4;
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  bool Value(std::string* out) {
    if (pos_ < text_.size() && text_[pos_] == '"') return String(out);
    const size_t start = pos_;
    while (pos_ < text_.size() && text_[pos_] != ',' && text_[pos_] != '}') ++pos_;
    *out = text_.substr(start, pos_ - start);
    if (*out == "true" || *out == "false") return true;
    char* end = nullptr;
    std::strtod(out->c_str(), &end);
    return !out->empty() && end == out->c_str() + out->size() &&
           out->find_first_not_of("0123456789+-.eE") == std::string::npos;
  }
  const std::string& text_;
  size_t pos_ = 0;
};

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream stream(text);
  std::string line;
  while (std::getline(stream, line)) lines.push_back(line);
  return lines;
}

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override { Configure(Level::kInfo, true); }
};

TEST_F(LoggingTest, JsonLinesParseAndEscape) {
  Configure(Level::kDebug, true);
  const std::string tricky = "say \"hi\"\nback\\slash\ttab\x01 ctl and ünïcode";
  ::testing::internal::CaptureStderr();
  Log(Level::kInfo, "request_done",
      {F("message", tricky), F("method", "Attend"), F("bytes", int64_t{123456789012}),
       F("batch", 3), F("seconds", 0.015625), F("ok", true), F("count", size_t{7}),
       F("bad", std::numeric_limits<double>::quiet_NaN()), F("level", "shadowed")});
  Log(Level::kError, "quote\"in\nevent");
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 2u);

  const auto first = FlatJson::Parse(lines[0]);
  ASSERT_TRUE(first.has_value()) << lines[0];
  EXPECT_THAT(first->at("ts"),
              MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"));
  EXPECT_EQ(first->at("level"), "info");
  EXPECT_EQ(first->at("event"), "request_done");
  EXPECT_EQ(first->at("message"), tricky);
  EXPECT_EQ(first->at("method"), "Attend");
  EXPECT_EQ(first->at("bytes"), "123456789012");
  EXPECT_EQ(first->at("batch"), "3");
  EXPECT_EQ(first->at("seconds"), "0.015625");
  EXPECT_EQ(first->at("ok"), "true");
  EXPECT_EQ(first->at("count"), "7");
  EXPECT_EQ(first->at("bad"), "NaN");
  EXPECT_EQ(first->at("_level"), "shadowed");  // reserved keys do not clash
  // Numbers and bools are bare, strings quoted.
  EXPECT_NE(lines[0].find("\"bytes\":123456789012,"), std::string::npos) << lines[0];
  EXPECT_NE(lines[0].find("\"ok\":true"), std::string::npos) << lines[0];

  const auto second = FlatJson::Parse(lines[1]);
  ASSERT_TRUE(second.has_value()) << lines[1];
  EXPECT_EQ(second->at("level"), "error");
  EXPECT_EQ(second->at("event"), "quote\"in\nevent");
}

TEST_F(LoggingTest, RandomStringsRoundTripThroughJson) {
  Configure(Level::kInfo, true);
  std::mt19937 rng(5);
  std::vector<std::string> values;
  for (int i = 0; i < 50; ++i) {
    std::string value;
    const int length = 1 + static_cast<int>(rng() % 40);
    for (int j = 0; j < length; ++j) value.push_back(static_cast<char>(1 + rng() % 127));
    values.push_back(value);
  }
  ::testing::internal::CaptureStderr();
  for (const std::string& value : values) Log(Level::kWarning, "random", {F("v", value)});
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const auto parsed = FlatJson::Parse(lines[i]);
    ASSERT_TRUE(parsed.has_value()) << lines[i];
    EXPECT_EQ(parsed->at("v"), values[i]);
    EXPECT_EQ(parsed->at("level"), "warning");
  }
}

TEST_F(LoggingTest, LevelFiltering) {
  Configure(Level::kWarning, true);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kError));
  ::testing::internal::CaptureStderr();
  Log(Level::kDebug, "d");
  Log(Level::kInfo, "i");
  Log(Level::kWarning, "w");
  Log(Level::kError, "e");
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(FlatJson::Parse(lines[0])->at("event"), "w");
  EXPECT_EQ(FlatJson::Parse(lines[1])->at("event"), "e");

  Configure(Level::kDebug, true);
  ::testing::internal::CaptureStderr();
  Log(Level::kDebug, "d");
  EXPECT_EQ(Lines(::testing::internal::GetCapturedStderr()).size(), 1u);
}

TEST_F(LoggingTest, TextFormat) {
  Configure(Level::kInfo, false);
  ::testing::internal::CaptureStderr();
  Log(Level::kInfo, "server_started", {F("listen", "0.0.0.0:50051"), F("port", 50051)});
  Log(Level::kWarning, "odd", {F("msg", "two words"), F("empty", ""), F("nl", "a\nb")});
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], MatchesRegex("[0-9]{4}-[0-9-]+T[0-9:.]+Z INFO server_started "
                                     "listen=0\\.0\\.0\\.0:50051 port=50051"));
  EXPECT_THAT(lines[1], ::testing::EndsWith(" WARNING odd msg=\"two words\" empty=\"\" "
                                            "nl=\"a\\nb\""));
}

TEST_F(LoggingTest, ParseLevel) {
  Level level = Level::kError;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("INFO", &level));
  EXPECT_EQ(level, Level::kInfo);
  EXPECT_TRUE(ParseLevel("warning", &level));
  EXPECT_EQ(level, Level::kWarning);
  EXPECT_TRUE(ParseLevel("warn", &level));
  EXPECT_TRUE(ParseLevel("error", &level));
  EXPECT_EQ(level, Level::kError);
  EXPECT_FALSE(ParseLevel("loud", &level));
  EXPECT_EQ(level, Level::kError);  // untouched
}

TEST_F(LoggingTest, ConcurrentLinesNeverInterleave) {
  Configure(Level::kInfo, true);
  ::testing::internal::CaptureStderr();
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t] {
      const std::string payload(200 + 37 * t, static_cast<char>('a' + t));
      for (int i = 0; i < 200; ++i) Log(Level::kInfo, "tick", {F("t", t), F("p", payload)});
    });
  }
  for (std::thread& thread : threads) thread.join();
  const std::vector<std::string> lines = Lines(::testing::internal::GetCapturedStderr());
  ASSERT_EQ(lines.size(), 800u);
  for (const std::string& line : lines) {
    const auto parsed = FlatJson::Parse(line);
    ASSERT_TRUE(parsed.has_value()) << line;
    const int t = std::stoi(parsed->at("t"));
    EXPECT_EQ(parsed->at("p"), std::string(200 + 37 * t, static_cast<char>('a' + t)));
  }
}

}  // namespace
}  // namespace attnd::server::logging
