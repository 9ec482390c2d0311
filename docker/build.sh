#!/usr/bin/env bash
# The one way the project is configured and built: tests/run.sh (and so .ci/run) and docker/Dockerfile all call this.
#   docker/build.sh DIR [--sanitize] [--target NAME]
# GW_COMMIT=SHA (environment): the commit --version names, passed to CMake as -DGW_COMMIT. Only where there is no .git
# to ask (the Docker build); unset, CMake reads it from git at configure time ("unknown" outside a checkout).
set -euo pipefail
dir=${1:?usage: build.sh DIR [--sanitize] [--target NAME]}
shift
type=RelWithDebInfo sanitize=OFF target=()
while [ $# -gt 0 ]; do
    case "$1" in
    --sanitize) type=Debug sanitize=ON ;;
    --target) target=(--target "$2"); shift ;;
    *) echo "build.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
commit=()
if [ -n "${GW_COMMIT:-}" ]; then
    case "$GW_COMMIT" in *[!0-9A-Za-z._-]*) echo "build.sh: GW_COMMIT must be a commit id, got '$GW_COMMIT'" >&2; exit 2 ;; esac
    # the cache variable for CMake, the environment (inherited) for a build step that reads $ENV{GW_COMMIT};
    # --no-warn-unused-cli: a CMakeLists that reads only one of the two does not warn about the other
    commit=(-DGW_COMMIT="$GW_COMMIT" --no-warn-unused-cli)
    export GW_COMMIT
fi
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DGW_SANITIZE="$sanitize" ${commit[@]+"${commit[@]}"} >/dev/null
cmake --build "$dir" -j"$(nproc)" ${target[@]+"${target[@]}"}
