#!/usr/bin/env bash
# libFuzzer over attnd's parsers of untrusted input (tests/fuzz): request decoding and
# validation (request_fuzzer) and the config parser (config_fuzzer), under AddressSanitizer and
# UndefinedBehaviorSanitizer. The main build's compiler is gcc, which has no libFuzzer, so this
# is its own clang build in build-fuzz/ (ATTND_FUZZ=ON: only the libraries the fuzzers link).
#
#   scripts/fuzz.sh                  build, then run each fuzzer for ATTND_FUZZ_SECONDS (60)
#   scripts/fuzz.sh build            configure and build only
#   scripts/fuzz.sh run request|config [libFuzzer flags]   one fuzzer (CTest's fuzz.* entries)
#   scripts/fuzz.sh seeds            regenerate tests/fuzz/corpus/request/ (binary protos)
#
# Seeds: tests/fuzz/corpus/<fuzzer>/ (read only); what a run discovers goes to
# build-fuzz/corpus/<fuzzer>/ and is kept for the next run. A finding (crash, sanitizer report,
# broken invariant, leak, an input slower than 10 s or over 2 GB) fails the run, and the input
# is printed (hex and base64) with the command that reproduces it; add it to the seeds as a
# regression seed once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${ATTND_FUZZ_BUILD_DIR:-build-fuzz}
seconds=${ATTND_FUZZ_SECONDS:-60}

build() {
  # A separate compiler from the main build: CC/CXX are this build's own.
  CC=clang CXX=clang++ cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DATTND_FUZZ=ON -DATTND_CUDA=OFF -DATTND_TESTS=OFF -DATTND_BENCH=OFF >/dev/null
  cmake --build "$build_dir" -j "$(nproc)"
}

run() {
  local name=$1
  shift
  local fuzzer="$build_dir/tests/fuzz/${name}_fuzzer"
  [ -x "$fuzzer" ] || { echo "fuzz: $fuzzer not built (scripts/fuzz.sh build)" >&2; exit 2; }
  local work="$build_dir/corpus/$name" artifacts="$build_dir/artifacts/$name"
  mkdir -p "$work" "$artifacts"
  rm -f "$artifacts"/*
  # Requests carry tensor bytes; a config file is a few KB (larger YAML only slows the search).
  local max_len=65536
  [ "$name" = config ] && max_len=8192
  local status=0
  # -use_value_profile: comparisons against limits guide the search. First corpus folder is
  # written to; the checked-in seeds are only read.
  "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len="$max_len" \
    -use_value_profile=1 -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$@" "$work" "tests/fuzz/corpus/$name" || status=$?
  local found
  found=$(find "$artifacts" -type f | sort)
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    echo "fuzz: $name: FINDING (exit $status)" >&2
    for f in $found; do
      echo "--- $f ($(stat -c %s "$f") bytes); reproduce: $fuzzer $f" >&2
      od -A d -t x1 "$f" | head -64 >&2
      echo "base64: $(base64 -w0 "$f")" >&2
    done
    exit 1
  fi
  echo "fuzz: $name: no findings in ${seconds} s"
}

case "${1:-all}" in
  build) build ;;
  run) shift; run "$@" ;;
  seeds)
    build
    rm -f tests/fuzz/corpus/request/*
    mkdir -p tests/fuzz/corpus/request
    "$build_dir/tests/fuzz/make_request_seeds" tests/fuzz/corpus/request
    ;;
  all)
    build
    run request
    run config
    ;;
  *) echo "usage: $0 [build | run request|config [flags] | seeds]" >&2; exit 2 ;;
esac
