# syntax=docker/dockerfile:1
# attnd's container image, in two stages:
#   build    Debian 12 with CUDA 13 (nvcc, cuBLAS, cuDNN 9) from NVIDIA's Debian 12 repository,
#            then scripts/install-deps.sh and scripts/build.sh: the README's own commands, on the
#            distribution and compiler the project is built and tested with.
#   runtime  Debian 12 slim with only the shared libraries attnd links (gRPC++, protobuf,
#            yaml-cpp, OpenBLAS, Abseil, cuBLAS, cuDNN), run as a non-root user.
#
#   docker build -t attnd:0.1.0 .
#   docker run --gpus all -p 50051:50051 -p 9464:9464 attnd:0.1.0
#   docker run -p 50051:50051 -p 9464:9464 -e ATTND_BACKEND_KIND=cpu attnd:0.1.0
#   docker run ... -v "$PWD/my-attnd.yaml:/etc/attnd/attnd.yaml:ro" attnd:0.1.0
#
# tests/deploy lints this file with hadolint and checks that the runtime packages below cover
# every shared library of the attnd it builds.

# The CUDA release as NVIDIA's package names spell it (cuda-nvcc-13-0, libcublas-13-0), and the
# cuDNN packages for that CUDA major.
ARG CUDA_PKG=13-0
ARG CUDNN_PKG=libcudnn9-cuda-13
ARG CUDNN_DEV_PKG=libcudnn9-dev-cuda-13

# ---------------------------------------------------------------------------------------------
FROM debian:12-slim AS cuda-repo
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# NVIDIA's apt repository for Debian 12 (x86_64), trusted through its cuda-keyring package.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && curl -fsSLo /tmp/cuda-keyring.deb \
      https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb \
 && dpkg -i /tmp/cuda-keyring.deb \
 && rm -f /tmp/cuda-keyring.deb \
 && apt-get purge -y curl \
 && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*

# ---------------------------------------------------------------------------------------------
FROM cuda-repo AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG CUDA_PKG
ARG CUDNN_DEV_PKG
# GPU architectures to compile for (CMAKE_CUDA_ARCHITECTURES); 90a is Hopper (H100, H200).
ARG CUDA_ARCHITECTURES=90a
# The CUDA compiler and the development files of what attnd links from CUDA. Package versions
# follow from the names (CUDA 13.0, cuDNN 9 for CUDA 13) and NVIDIA's repository.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      "cuda-nvcc-${CUDA_PKG}" "cuda-cudart-dev-${CUDA_PKG}" "cuda-cccl-${CUDA_PKG}" \
      "libcublas-dev-${CUDA_PKG}" "${CUDNN_DEV_PKG}" \
 && rm -rf /var/lib/apt/lists/*
ENV PATH=/usr/local/cuda/bin:${PATH}

WORKDIR /src
# The README's install script first, alone (with the pins it reads), so its layer is reused when
# only the sources change. With nvcc present it also puts cudnn-frontend's headers in .deps/,
# which .dockerignore keeps the COPY below from replacing. The Python client is not in the image.
COPY scripts/install-deps.sh scripts/
COPY tests/deploy/requirements.txt tests/deploy/
RUN ATTND_PYTHON_CLIENT=0 scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
# ATTND_CUDA=ON: a missing nvcc is an error here, not a quiet CPU-only image; likewise the
# build must have found cuDNN (the `cudnn` variant).
RUN ATTND_CUDA=ON ATTND_BUILD_TYPE=Release scripts/build.sh \
      -DATTND_TESTS=OFF -DATTND_BENCH=OFF -DATTND_TEST_HOOKS=OFF "-DCMAKE_CUDA_ARCHITECTURES=${CUDA_ARCHITECTURES}" \
      | tee /tmp/build.log \
 && grep -q 'attnd: cuDNN variant ON' /tmp/build.log \
 && install -D -m 0755 build/server/attnd /out/usr/local/bin/attnd \
 && install -D -m 0755 build/client/attnctl /out/usr/local/bin/attnctl \
 && install -D -m 0644 config/attnd.yaml /out/etc/attnd/attnd.yaml

# ---------------------------------------------------------------------------------------------
FROM cuda-repo AS runtime
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ARG CUDA_PKG
ARG CUDNN_PKG
# Runtime libraries only: Debian 12's gRPC++, protobuf, yaml-cpp, OpenBLAS and Abseil, and
# NVIDIA's cuBLAS, cuDNN and NVRTC (cuDNN compiles some fused kernels at run time). The CUDA
# runtime is linked statically; the driver (libcuda) comes from the host through the NVIDIA
# container toolkit. The final ldd check fails the build if any library attnd needs is missing.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libgrpc++1.51 libgrpc29 libprotobuf32 libyaml-cpp0.7 libopenblas0-pthread \
      libabsl20220623 \
      "libcublas-${CUDA_PKG}" "cuda-nvrtc-${CUDA_PKG}" "${CUDNN_PKG}" \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 attnd \
 && useradd --system --uid 10001 --gid attnd --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin attnd

COPY --from=build /out/ /

# Read by the NVIDIA container toolkit: which GPUs and which driver libraries to mount.
ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    NVIDIA_REQUIRE_CUDA="cuda>=13.0" \
    LD_LIBRARY_PATH=/usr/local/cuda/lib64

# Every shared library resolves (libcuda, the driver, only exists once a GPU container runs),
# and both programs start.
RUN ! ldd /usr/local/bin/attnd /usr/local/bin/attnctl | grep -v 'libcuda\.so' | grep 'not found' \
 && /usr/local/bin/attnd --version && /usr/local/bin/attnctl --help >/dev/null

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
# gRPC (server.listen) and Prometheus metrics (metrics.listen).
EXPOSE 50051 9464
# A health check that needs no shell: gRPC health, exit 0 only on SERVING (NOT_SERVING while
# draining or after a fatal device error). Start-up loads CUDA and cuDNN: give it a minute.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["/usr/local/bin/attnctl", "--target", "127.0.0.1:50051", "--timeout", "3s", "health"]
# SIGTERM drains (health NOT_SERVING, in-flight requests finish) within
# server.drain_timeout_seconds (30 s): `docker stop -t 40` leaves it the time.
STOPSIGNAL SIGTERM
# The config: mount your own over /etc/attnd/attnd.yaml (Kubernetes: the ConfigMap), or override
# keys with ATTND_* environment variables (ATTND_BACKEND_KIND=cpu,
# ATTND_SCHEDULER_MAX_QUEUE_REQUESTS=512, ...), which take precedence over the file.
ENTRYPOINT ["/usr/local/bin/attnd"]
CMD ["--config", "/etc/attnd/attnd.yaml"]
