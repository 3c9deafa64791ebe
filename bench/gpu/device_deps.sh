#!/usr/bin/env bash
# For building attnd's kernels ON the GPU machine, which has CUDA, cmake and ninja but neither
# abseil nor OpenBLAS (nor, possibly, pkg-config or GoogleTest's libraries next to its headers):
# unpacks Debian 12's packages of them,
# fetched here and carried along, into PREFIX (never into /), and prints the environment and the
# cmake flags to use.
#
#   here:  mkdir -p .device/gk/debs && (cd .device/gk/debs && apt-get download libabsl-dev \
#            libabsl20220623 libopenblas-dev libopenblas0-pthread libopenblas-pthread-dev \
#            libgfortran5 pkgconf-bin libpkgconf3 libgtest-dev)
#   there: eval "$(bench/gpu/device_deps.sh .device/gk/debs /tmp/attnd-deps)"
#          cmake -S . -B build-gpu -G Ninja -DATTND_SERVER=OFF -DATTND_CUDA=ON \
#            -DCMAKE_CUDA_ARCHITECTURES=90a $ATTND_DEPS_CMAKE_FLAGS
set -euo pipefail
debs=${1:?usage: $0 DEB_FOLDER PREFIX}
prefix=${2:?usage: $0 DEB_FOLDER PREFIX}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
for deb in "$debs"/*.deb; do dpkg -x "$deb" "$prefix"; done
lib=$prefix/usr/lib/x86_64-linux-gnu
mkdir -p "$prefix/pkgconfig"
# Debian's openblas.pc names /usr paths: point them into the prefix.
sed "s|/usr/|$prefix/usr/|g" "$lib/openblas-pthread/pkgconfig/openblas.pc" >"$prefix/pkgconfig/openblas.pc"
flags="-DCMAKE_PREFIX_PATH=$prefix/usr"
if ! command -v pkg-config >/dev/null; then
  flags="$flags -DPKG_CONFIG_EXECUTABLE=$prefix/usr/bin/pkgconf"
fi
echo "export PKG_CONFIG_PATH=$prefix/pkgconfig"
echo "export LD_LIBRARY_PATH=$lib:$lib/openblas-pthread\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
# abseil 20220623's headers predate GCC 13's leaner <string>: give them <cstdint>.
echo "export ATTND_DEPS_CMAKE_FLAGS='$flags -DCMAKE_CXX_FLAGS=-includecstdint'"
