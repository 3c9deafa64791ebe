#!/usr/bin/env bash
# Runs Python client tests with the project's virtualenv against an attnd binary (CTest does,
# see CMakeLists.txt beside this file):
#   tests/python/run_tests.sh VENV ATTND_BINARY [pytest arguments: files, -k ...]
set -euo pipefail
venv=$1
attnd=$2
shift 2
if [ ! -x "$venv/bin/python" ]; then
  echo "run_tests: no virtualenv at $venv; scripts/install-deps.sh makes it" >&2
  exit 1
fi
venv=$(cd "$venv" && pwd)
[[ "$attnd" == /* ]] || attnd="$PWD/$attnd"
cd "$(dirname "$0")"
exec "$venv/bin/python" -m pytest --attnd-binary "$attnd" "$@"
