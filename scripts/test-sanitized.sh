#!/usr/bin/env bash
# The unit and integration suites under a sanitizer, CPU only:
#
#   scripts/test-sanitized.sh asan   # AddressSanitizer + LeakSanitizer + UndefinedBehaviorSanitizer
#   scripts/test-sanitized.sh tsan   # ThreadSanitizer, on the concurrency-heavy suites
#
# Builds with the main build's compiler (gcc) into build-asan/ or build-tsan/: ATTND_CUDA=OFF,
# no benchmarks, and only the test executables (plus attnd and attnctl, which the integration
# suites start). The Python, deploy and bench tests are not run here (they exercise other
# languages and tools, not attnd's C++ memory or thread safety); GPU tests need a GPU.
# Extra arguments go to ctest. Any sanitizer report fails the test that produced it: every
# sanitizer here aborts or exits non-zero on its first report.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-}
shift || true
repo=$(pwd)

# -O1: a sanitized build is for finding bugs, not speed; -O1 compiles faster than -O2 and keeps
# stacks readable. Frame pointers give the sanitizers' unwinder full stacks cheaply.
# -Wno-maybe-uninitialized: GCC 12 at -O1 with ASan reports std::function inside libstdc++'s
# std::regex (tests/integration's harness) as maybe uninitialised, a known false positive of that
# warning under sanitizers; -Werror would stop the build on it.
common="-O1 -g -fno-omit-frame-pointer -Wno-maybe-uninitialized"
case "$kind" in
  asan)
    san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
    # attnd is built with the same flags, so an integration test's server reports too: a leak
    # or an error in attnd makes its exit code non-zero, which the harness checks.
    test_dirs=""
    extra=""
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1:strict_string_checks=1:${ASAN_OPTIONS:-}"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
    export LSAN_OPTIONS="suppressions=$repo/tests/sanitizers/lsan.supp:${LSAN_OPTIONS:-}"
    ;;
  tsan)
    san="-fsanitize=thread"
    # TSan: the suites where threads meet (the scheduler's queue and workers, the executor, the
    # gRPC service in process, and attnd under the integration tests). See README.
    test_dirs="server/scheduler;server/executor;server/service;integration"
    extra="-DATTND_TSAN_ABSL_SYNC=ON"
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:suppressions=$repo/tests/sanitizers/tsan.supp:${TSAN_OPTIONS:-}"
    ;;
  *)
    echo "usage: $0 asan|tsan [ctest arguments]" >&2
    exit 2
    ;;
esac
build_dir=${ATTND_BUILD_DIR:-build-$kind}
# ATTND_SANITIZER_TEST_DIRS="server/scheduler;wire" narrows a run to those test folders.
test_dirs=${ATTND_SANITIZER_TEST_DIRS:-$test_dirs}
flags="$common $san"

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_C_FLAGS_RELWITHDEBINFO="$flags" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" \
  -DATTND_CUDA=OFF -DATTND_BENCH=OFF -DATTND_SANITIZER_TEST_DIRS="$test_dirs" $extra >/dev/null
cmake --build "$build_dir" -j "$(nproc)" --target attnd_sanitized_tests

# Unit tests carry no label; integration tests the `integration` label. Left out: python, deploy,
# fuzz (its own clang build, scripts/fuzz.sh),
# bench (other tools), gpu (no device), long (memory_promise_test measures peak RSS, which a
# sanitizer's shadow memory and quarantine make meaningless).
# With only some folders built, the others' tests show up as <target>_NOT_BUILT: skip those.
not_built=()
[ -z "$test_dirs" ] || not_built=(-E '_NOT_BUILT$')
ctest --test-dir "$build_dir" --output-on-failure -j "$(nproc)" -LE 'python|deploy|bench|gpu|long|fuzz' \
  "${not_built[@]}" "$@"
