#!/usr/bin/env bash
# Builds and runs the whole test suite (unit + integration against a throwaway PostgreSQL).
#   tests/run.sh                  normal build in build/
#   GW_SANITIZE=1 tests/run.sh    ASan+UBSan build in build-asan/
#   GW_VALGRIND=1 tests/run.sh -L integration
#                                 normal build; the integration tests start every worker under valgrind memcheck
#                                 (tests/integration/harness.py; suppressions in tests/valgrind.supp)
# First it installs the Debian packages the suite needs when any is missing (docker/deps.sh build runtime test, through
# sudo when not root), as tests/demo.sh does; the check costs about a second when everything is there.
# GW_SKIP_DEPS=1 skips that step (a machine whose packages are managed otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
groups=(build runtime test)
if [ "${GW_SKIP_DEPS:-0}" != 1 ]; then
    if ! command -v dpkg-query >/dev/null; then
        echo "run.sh: not a Debian system (no dpkg-query): install the packages of docker/deps.sh ${groups[*]} yourself" >&2
    elif ! missing=$(bash docker/deps.sh check "${groups[@]}"); then
        echo "run.sh: installing missing packages: $missing" >&2
        if [ "$(id -u)" = 0 ]; then
            bash docker/deps.sh "${groups[@]}"
        elif command -v sudo >/dev/null; then
            sudo bash docker/deps.sh "${groups[@]}"
        else
            echo "run.sh: missing packages ($missing) and no sudo: run docker/deps.sh ${groups[*]} as root" >&2
            exit 1
        fi
    fi
fi
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
