// The gRPC port's server credentials from the `server` section: plaintext when TLS is off, else
// gRPC's SSL credentials with the certificate chain and key, and for mutual TLS the client CAs,
// each file read and checked with OpenSSL first so that a bad one stops start-up with a message
// naming its key instead of failing every handshake later.
//
// The files are read once, at start: rotate certificates by restarting (a rolling update).
#ifndef ATTND_SERVER_SECURITY_TLS_H_
#define ATTND_SERVER_SECURITY_TLS_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/security/server_credentials.h"
#include "server/config/config.h"

namespace attnd::server::security {

// What the credentials are, for the start-up log.
struct TlsSummary {
  std::string mode = "off";  // "off", "tls" or "mutual"
  std::string subject;       // the leaf certificate's subject, one line
  absl::Time not_after;      // when the leaf certificate expires
  int client_cas = 0;        // CA certificates in tls_client_ca_file
};

// INVALID_ARGUMENT naming the key and path: a file that cannot be read, holds no PEM certificate
// (or private key), a key that does not belong to the certificate, an encrypted key.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const ServerSection& server, TlsSummary* summary);

}  // namespace attnd::server::security

#endif  // ATTND_SERVER_SECURITY_TLS_H_
