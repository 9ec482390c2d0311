#!/usr/bin/env bash
# The one list of Debian packages the project needs; .ci/run, docker/Dockerfile and tests/demo.sh call this script.
#   deps.sh build     compilers and -dev packages
#   deps.sh runtime   shared libraries and the external tools the worker runs
#   deps.sh test      what the test suite adds (PostgreSQL server, psycopg2, sample media tools, promtool, Chromium + Node.js for
#                     the dashboard test, clang + libFuzzer, valgrind, yamllint for deploy/, tini for the zombie test)
#   deps.sh demo      what tests/demo.sh adds to build + runtime (PostgreSQL server, sample media tools)
#   deps.sh check GROUP...   installs nothing; exits 1 and names what is missing
set -euo pipefail
build="build-essential cmake pkg-config libh2o-dev libuv1-dev libssl-dev libpq-dev libcurl4-openssl-dev libjansson-dev"
# yt-dlp: Debian's is years behind YouTube; the Dockerfile adds a pinned release (its zipapp runs on python3), tests use
# a stand-in. tini is the image's PID 1: it reaps the orphans of killed yt-dlp/ffmpeg process groups.
runtime="libh2o0.13 libuv1 libpq5 libcurl4 libjansson4 libssl3 ffmpeg ca-certificates python3 tini"
media="espeak-ng fonts-dejavu-core"
test="postgresql postgresql-contrib python3 python3-psycopg2 yt-dlp ffmpeg clang-format chromium nodejs $media clang libclang-rt-14-dev valgrind prometheus yamllint python3-yaml tini util-linux"
# NodeSource's nodejs ships npm and conflicts with Debian's npm package: ask for it only when the command is missing
command -v npm >/dev/null 2>&1 || test="$test npm"
demo="postgresql util-linux curl $media"
check=0
pkgs=""
for what in "$@"; do
    case "$what" in
    check) check=1 ;;
    build) pkgs="$pkgs $build" ;;
    runtime) pkgs="$pkgs $runtime" ;;
    test) pkgs="$pkgs $test" ;;
    demo) pkgs="$pkgs $demo" ;;
    *) echo "usage: $0 [check] build|runtime|test|demo ..." >&2; exit 2 ;;
    esac
done
export DEBIAN_FRONTEND=noninteractive
# one dpkg-query for all packages (the demo's second run should take seconds)
installed=" $(dpkg-query -W -f='${Package}:${db:Status-Status} ' $pkgs 2>/dev/null || true) "
missing=$(for p in $pkgs; do case "$installed" in *" $p:installed "*) ;; *) echo "$p" ;; esac; done | sort -u)
if [ "$check" = 1 ]; then
    [ -z "$missing" ] && exit 0
    echo $missing
    exit 1
fi
if [ -n "$missing" ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing
fi
