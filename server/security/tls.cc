#include "server/security/tls.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "grpcpp/security/server_credentials.h"

namespace attnd::server::security {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Certificate = std::unique_ptr<X509, X509Free>;

// `server.tls_cert_file = "/etc/attnd/tls.crt"`, the start of every message.
std::string Named(const char* key, const std::string& path) {
  return absl::StrCat("server.", key, " = \"", path, "\"");
}

// OpenSSL's first queued error, for messages; clears the queue.
std::string OpenSslError() {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return absl::StrCat(" (", text, ")");
}

absl::StatusOr<std::string> ReadFile(const char* key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(Named(key, path), ": cannot read: ", std::strerror(errno)));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Every certificate in `pem`, in order; an error when there is none or one does not parse.
absl::StatusOr<std::vector<Certificate>> ParseCertificates(const char* key, const std::string& path,
                                                           const std::string& pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<Certificate> certificates;
  for (;;) {
    Certificate certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (certificate == nullptr) break;
    certificates.push_back(std::move(certificate));
  }
  // Reading stops at the end (PEM_R_NO_START_LINE) or at a block that does not parse.
  const unsigned long last = ERR_peek_last_error();
  const bool clean_end =
      ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE;
  if (!certificates.empty() && (last == 0 || clean_end)) {
    ERR_clear_error();
    return certificates;
  }
  if (certificates.empty() && (last == 0 || clean_end)) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat(Named(key, path), ": no PEM certificate (-----BEGIN CERTIFICATE-----) in it"));
  }
  return absl::InvalidArgumentError(absl::StrCat(Named(key, path), ": certificate ",
                                                 certificates.size() + 1, " does not parse",
                                                 OpenSslError()));
}

// Checks that `key_pem` is an unencrypted private key belonging to `leaf`.
absl::Status CheckKey(const ServerSection& server, const std::string& key_pem, X509* leaf) {
  std::unique_ptr<BIO, BioFree> bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())));
  // An empty passphrase callback: an encrypted key fails here instead of prompting on a tty.
  pem_password_cb* no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, KeyFree> key(
      PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        Named("tls_key_file", server.tls_key_file),
        ": no readable PEM private key in it (encrypted keys are not supported)", OpenSslError()));
  }
  if (X509_check_private_key(leaf, key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(Named("tls_key_file", server.tls_key_file),
                                                   " is not the private key of the certificate in ",
                                                   Named("tls_cert_file", server.tls_cert_file)));
  }
  return absl::OkStatus();
}

std::string Subject(X509* certificate) {
  char text[512];
  X509_NAME_oneline(X509_get_subject_name(certificate), text, sizeof(text));
  return text;
}

absl::Time NotAfter(X509* certificate) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(certificate), &tm) != 1) return absl::InfinitePast();
  return absl::FromTM(tm, absl::UTCTimeZone());
}

}  // namespace

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSection& server, TlsSummary* summary) {
  *summary = TlsSummary();
  if (server.tls_cert_file.empty()) return grpc::InsecureServerCredentials();

  absl::StatusOr<std::string> cert_pem = ReadFile("tls_cert_file", server.tls_cert_file);
  if (!cert_pem.ok()) return cert_pem.status();
  absl::StatusOr<std::string> key_pem = ReadFile("tls_key_file", server.tls_key_file);
  if (!key_pem.ok()) return key_pem.status();
  absl::StatusOr<std::vector<Certificate>> chain =
      ParseCertificates("tls_cert_file", server.tls_cert_file, *cert_pem);
  if (!chain.ok()) return chain.status();
  X509* leaf = chain->front().get();
  if (absl::Status status = CheckKey(server, *key_pem, leaf); !status.ok()) return status;
  summary->mode = "tls";
  summary->subject = Subject(leaf);
  summary->not_after = NotAfter(leaf);

  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({*key_pem, *cert_pem});
  if (!server.tls_client_ca_file.empty()) {
    absl::StatusOr<std::string> ca_pem = ReadFile("tls_client_ca_file", server.tls_client_ca_file);
    if (!ca_pem.ok()) return ca_pem.status();
    absl::StatusOr<std::vector<Certificate>> cas =
        ParseCertificates("tls_client_ca_file", server.tls_client_ca_file, *ca_pem);
    if (!cas.ok()) return cas.status();
    options.pem_root_certs = *ca_pem;
    // The handshake fails unless the client presents a certificate that one of the CAs signed.
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
    summary->mode = "mutual";
    summary->client_cas = static_cast<int>(cas->size());
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace attnd::server::security
