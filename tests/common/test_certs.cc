#include "tests/common/test_certs.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace attnd::testing {
namespace {

// Removes the directory when the process exits.
struct RemoveAtExit {
  std::string dir;
  ~RemoveAtExit() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

absl::StatusOr<std::string> Make() {
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/attnd-certs-XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  static RemoveAtExit cleanup{dir};
  const std::string log = dir + "/make.log";
  const std::string command =
      absl::StrCat(ATTND_MAKE_TEST_CERTS, " '", dir, "' > '", log, "' 2>&1");
  if (std::system(command.c_str()) != 0) {
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return absl::InternalError(absl::StrCat(command, " failed:\n", text.str()));
  }
  return dir;
}

}  // namespace

absl::StatusOr<const TestCerts*> TestCerts::Get() {
  static const absl::StatusOr<std::string>* const dir = new absl::StatusOr<std::string>(Make());
  if (!dir->ok()) return dir->status();
  static const TestCerts* const certs = new TestCerts(**dir);
  return certs;
}

std::string TestCerts::Read(const std::string& name) const {
  std::ifstream in(Path(name), std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string WriteFile(const std::string& dir, const std::string& name,
                      const std::string& contents) {
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  return path;
}

}  // namespace attnd::testing
