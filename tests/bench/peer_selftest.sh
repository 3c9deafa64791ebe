#!/usr/bin/env bash
# Runs bench/peer/selftest.py with the first Python that has what the peer needs: $ATTND_PEER_PYTHON,
# the project's virtualenv, python3, Debian's /usr/bin/python3. Exit 77 (skipped) when none has.
#
#   tests/bench/peer_selftest.sh ATTNCTL [VENV]
set -uo pipefail
attnctl=${1:?usage: $0 ATTNCTL [VENV]}
venv=${2:-}
here=$(cd "$(dirname "$0")" && pwd)
selftest=$here/../../bench/peer/selftest.py
for py in "${ATTND_PEER_PYTHON:-}" "${venv:+$venv/bin/python}" "$(command -v python3 || true)" \
          /usr/bin/python3; do
  [ -n "$py" ] && [ -x "$py" ] || continue
  if "$py" -c 'import grpc, numpy, google.protobuf' 2>/dev/null; then
    echo "peer_selftest: $py"
    exec "$py" "$selftest" --attnctl "$attnctl" --python "$py"
  fi
done
echo "SKIPPED: no Python with grpcio, protobuf and NumPy (the project's .venv from" \
  "scripts/install-deps.sh has them)"
exit 77
