#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a tested attnd: installs what is missing, builds,
# and runs every test (unit, integration against a real server, metrics with promtool and a real
# Prometheus). Tests that need a GPU skip themselves, visibly, on machines without one.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
ctest --test-dir "${ATTND_BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
