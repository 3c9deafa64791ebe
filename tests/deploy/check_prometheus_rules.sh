#!/usr/bin/env bash
# deploy/prometheus: the scrape config and rule files are valid, and the rules' unit tests pass.
#   check_prometheus_rules.sh PROMTOOL   (run in deploy/prometheus)
set -euo pipefail
promtool=${1:?usage: check_prometheus_rules.sh PROMTOOL}
if [ ! -x "$promtool" ]; then
  echo "promtool not found ($promtool): scripts/install-deps.sh installs Debian's prometheus" >&2
  exit 1
fi
"$promtool" check config prometheus.yml
"$promtool" check rules rules/*.yml
"$promtool" test rules tests/*.test.yml
