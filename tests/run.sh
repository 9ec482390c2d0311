#!/usr/bin/env bash
# Builds and runs the whole test suite (unit + integration against a throwaway PostgreSQL).
#   tests/run.sh                  normal build in build/
#   GW_SANITIZE=1 tests/run.sh    ASan+UBSan build in build-asan/
#   GW_VALGRIND=1 tests/run.sh -L integration
#                                 normal build; the integration tests start every worker under valgrind memcheck
#                                 (tests/integration/harness.py; suppressions in tests/valgrind.supp)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${GW_SANITIZE:-0}" = 1 ] && [ "${GW_VALGRIND:-0}" = 1 ]; then
    echo "GW_SANITIZE and GW_VALGRIND do not mix (valgrind cannot run ASan binaries)" >&2
    exit 2
fi
if [ "${GW_SANITIZE:-0}" = 1 ]; then
    dir=build-asan
    docker/build.sh "$dir" --sanitize
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
else
    dir=build
    docker/build.sh "$dir" # the same script the Dockerfile builds with
fi
ctest --test-dir "$dir" --output-on-failure -j2 "$@"
