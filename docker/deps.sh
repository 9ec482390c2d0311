#!/usr/bin/env bash
# The one list of Debian packages the project needs; .ci/run and docker/Dockerfile both call this script.
#   deps.sh build     compilers and -dev packages
#   deps.sh runtime   shared libraries and the external tools the worker runs
#   deps.sh test      what the test suite adds (PostgreSQL server, psycopg2, sanitizer runtime, clang + libFuzzer, valgrind)
set -euo pipefail
build="build-essential cmake pkg-config libh2o-dev libuv1-dev libssl-dev libpq-dev libcurl4-openssl-dev libjansson-dev"
runtime="libh2o0.13 libuv1 libpq5 libcurl4 libjansson4 libssl3 ffmpeg yt-dlp ca-certificates"
test="postgresql postgresql-contrib python3 python3-psycopg2 yt-dlp ffmpeg clang-format clang libclang-rt-14-dev valgrind"
pkgs=""
for what in "$@"; do
    case "$what" in
    build) pkgs="$pkgs $build" ;;
    runtime) pkgs="$pkgs $runtime" ;;
    test) pkgs="$pkgs $test" ;;
    *) echo "usage: $0 build|runtime|test ..." >&2; exit 2 ;;
    esac
done
export DEBIAN_FRONTEND=noninteractive
missing=$(for p in $pkgs; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
fi
