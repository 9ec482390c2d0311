#!/usr/bin/env bash
# The one way the project is configured and built: tests/run.sh (and so .ci/run) and docker/Dockerfile all call this.
#   docker/build.sh DIR [--sanitize] [--target NAME]
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
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DGW_SANITIZE="$sanitize" >/dev/null
cmake --build "$dir" -j"$(nproc)" ${target[@]+"${target[@]}"}
