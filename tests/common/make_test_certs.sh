#!/usr/bin/env bash
# Makes the TLS material the security tests use, fresh in OUT_DIR (never committed):
#   ca.crt/.key            the test CA
#   server.crt/.key        signed by ca, for localhost, 127.0.0.1 and attnd.test
#   client.crt/.key        signed by ca, a client certificate (mutual TLS)
#   other-ca.crt/.key      an unrelated CA
#   other-client.crt/.key  a client certificate signed by other-ca
# EC P-256 keys (fast to make), valid for two days.
#
#   tests/common/make_test_certs.sh OUT_DIR
set -euo pipefail
out=${1:?usage: make_test_certs.sh OUT_DIR}
mkdir -p "$out"
cd "$out"

cat > openssl.cnf <<'CNF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, DNS:attnd.test
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
CNF

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; }

# make_ca NAME CN
make_ca() {
  new_key "$1"
  openssl req -new -x509 -config openssl.cnf -extensions ca -key "$1.key" -subj "/CN=$2" \
    -days 2 -out "$1.crt"
}

# make_leaf NAME CN CA EXTENSIONS
make_leaf() {
  new_key "$1"
  openssl req -new -config openssl.cnf -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA "$3.crt" -CAkey "$3.key" -CAcreateserial -days 2 \
    -extfile openssl.cnf -extensions "$4" -out "$1.crt" 2>/dev/null
  rm "$1.csr"
}

make_ca ca "attnd test CA"
make_ca other-ca "attnd other CA"
make_leaf server "attnd.test" ca server
make_leaf client "attnd test client" ca client
make_leaf other-client "attnd other client" other-ca client
chmod 600 ./*.key
