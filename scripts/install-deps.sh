#!/usr/bin/env bash
# Installs what attnd's build and tests need and this machine lacks, from Debian 12's packages.
# Idempotent: installs nothing (and runs no apt-get update) when everything is present.
# CUDA is optional: with /usr/local/cuda (nvcc, cuBLAS, cuDNN) the GPU variants are built too.
set -euo pipefail

apt_packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libyaml-cpp-dev libcivetweb-dev libopenblas-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus  # promtool and a real Prometheus server for the metrics tests
  procps      # ps/pkill used by tests
)

missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Debian's prometheus package would start a system Prometheus on :9090 where systemd runs;
  # attnd's tests start their own on a free loopback port, so keep the packaged one from starting.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod +x /usr/sbin/policy-rc.d
    trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "install-deps: all ${#apt_packages[@]} Debian packages present"
fi
