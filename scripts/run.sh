#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a serving attnd: installs what is missing,
# builds, and starts the server with the default config (config/attnd.yaml) on the GPU if there
# is one, else on the CPU backend. Extra arguments go to attnd (e.g. --listen 127.0.0.1:50051).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
exec "${ATTND_BUILD_DIR:-build}/server/attnd" --config config/attnd.yaml "$@"
