// TLS material for the security tests, made fresh by make_test_certs.sh in a temporary directory
// the first time a test asks for it and removed when the process exits (keys are never committed).
// make_test_certs.sh lists the files: ca, server, client, other-ca, other-client (.crt, .key).
#ifndef ATTND_TESTS_COMMON_TEST_CERTS_H_
#define ATTND_TESTS_COMMON_TEST_CERTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace attnd::testing {

class TestCerts {
 public:
  // Made once per process; the error carries the script's output.
  static absl::StatusOr<const TestCerts*> Get();

  const std::string& dir() const { return dir_; }
  std::string Path(const std::string& name) const { return dir_ + "/" + name; }
  // The file's contents ("" when it cannot be read).
  std::string Read(const std::string& name) const;

 private:
  explicit TestCerts(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

// Writes `contents` to a new file under `dir` named `name`; returns its path.
std::string WriteFile(const std::string& dir, const std::string& name, const std::string& contents);

}  // namespace attnd::testing

#endif  // ATTND_TESTS_COMMON_TEST_CERTS_H_
