// MakeServerCredentials: every bad file stops start-up with a message naming its key; good ones
// give the mode the start-up log reports. Certificates from make_test_certs.sh.
#include "server/security/tls.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/test_certs.h"

namespace attnd::server::security {
namespace {

using ::attnd::testing::TestCerts;
using ::testing::AllOf;
using ::testing::HasSubstr;

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<const TestCerts*> certs = TestCerts::Get();
    ASSERT_TRUE(certs.ok()) << certs.status();
    certs_ = *certs;
    server_.tls_cert_file = certs_->Path("server.crt");
    server_.tls_key_file = certs_->Path("server.key");
  }
  std::string Error() {
    TlsSummary summary;
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
        MakeServerCredentials(server_, &summary);
    EXPECT_FALSE(credentials.ok());
    if (credentials.ok()) return "";
    EXPECT_EQ(credentials.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(credentials.status().message());
  }
  std::string Write(const std::string& name, const std::string& text) {
    return ::attnd::testing::WriteFile(certs_->dir(), name, text);
  }

  const TestCerts* certs_ = nullptr;
  ServerSection server_;
};

TEST_F(TlsTest, OffWithoutFiles) {
  TlsSummary summary;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      MakeServerCredentials(ServerSection(), &summary);
  ASSERT_TRUE(credentials.ok());
  EXPECT_EQ(summary.mode, "off");
}

TEST_F(TlsTest, TlsAndMutualTls) {
  TlsSummary summary;
  ASSERT_TRUE(MakeServerCredentials(server_, &summary).ok());
  EXPECT_EQ(summary.mode, "tls");
  EXPECT_THAT(summary.subject, HasSubstr("attnd.test"));
  EXPECT_GT(summary.not_after, absl::Now());

  server_.tls_client_ca_file = certs_->Path("ca.crt");
  ASSERT_TRUE(MakeServerCredentials(server_, &summary).ok());
  EXPECT_EQ(summary.mode, "mutual");
  EXPECT_EQ(summary.client_cas, 1);

  // A bundle of two CAs, and a chain file with the CA after the leaf.
  server_.tls_client_ca_file =
      Write("bundle.crt", certs_->Read("ca.crt") + certs_->Read("other-ca.crt"));
  server_.tls_cert_file = Write("chain.crt", certs_->Read("server.crt") + certs_->Read("ca.crt"));
  ASSERT_TRUE(MakeServerCredentials(server_, &summary).ok());
  EXPECT_EQ(summary.client_cas, 2);
}

TEST_F(TlsTest, MissingFilesNamed) {
  server_.tls_cert_file = "/nonexistent/tls.crt";
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_cert_file = \"/nonexistent/tls.crt\""),
                             HasSubstr("cannot read")));
  server_.tls_cert_file = certs_->Path("server.crt");
  server_.tls_key_file = "/nonexistent/tls.key";
  EXPECT_THAT(Error(), HasSubstr("server.tls_key_file = \"/nonexistent/tls.key\""));
  server_.tls_key_file = certs_->Path("server.key");
  server_.tls_client_ca_file = "/nonexistent/ca.crt";
  EXPECT_THAT(Error(), HasSubstr("server.tls_client_ca_file = \"/nonexistent/ca.crt\""));
}

TEST_F(TlsTest, NotPemNamed) {
  server_.tls_cert_file = Write("garbage.crt", "not a certificate\n");
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_cert_file"), HasSubstr("no PEM certificate")));
  // The key where the certificate should be.
  server_.tls_cert_file = certs_->Path("server.key");
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_cert_file"), HasSubstr("no PEM certificate")));
  server_.tls_cert_file = certs_->Path("server.crt");
  server_.tls_key_file = certs_->Path("server.crt");
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_key_file"), HasSubstr("no readable PEM")));
  server_.tls_key_file = certs_->Path("server.key");
  server_.tls_client_ca_file = Write("empty-ca.crt", "");
  EXPECT_THAT(Error(),
              AllOf(HasSubstr("server.tls_client_ca_file"), HasSubstr("no PEM certificate")));
}

TEST_F(TlsTest, CorruptCertificateNamed) {
  // A line of base64 cut out of the middle: the DER inside is truncated.
  std::string pem = certs_->Read("server.crt");
  const size_t line = pem.find('\n', pem.size() / 2) + 1;
  pem.erase(line, pem.find('\n', line) + 1 - line);
  server_.tls_cert_file = Write("corrupt.crt", pem);
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_cert_file"), HasSubstr("does not parse")));
}

TEST_F(TlsTest, KeyOfAnotherCertificateNamed) {
  server_.tls_key_file = certs_->Path("client.key");
  EXPECT_THAT(Error(), AllOf(HasSubstr("server.tls_key_file"),
                             HasSubstr("is not the private key of the certificate in "
                                       "server.tls_cert_file")));
}

}  // namespace
}  // namespace attnd::server::security
