#!/usr/bin/env bash
# Static checks that keep docker/ honest without a Docker engine: the image installs packages with docker/deps.sh and
# builds with docker/build.sh, the same scripts .ci/run (through tests/run.sh) uses; the build stage copies every
# source directory CMake needs; the runtime stage is non-root, health-checked, honours PORT; the compose file has
# postgres, a one-shot migrate and the worker.
set -uo pipefail
cd "$(dirname "$0")/.."
fail=0
need() { # need FILE REGEX WHAT
    if grep -Eq -- "$2" "$1"; then echo "ok: $3"; else echo "FAIL: $3 ($1 lacks /$2/)"; fail=1; fi
}
df=docker/Dockerfile compose=docker/docker-compose.worker.yml
need "$df" '^RUN bash /tmp/deps\.sh build( |$)' "build stage installs with deps.sh build"
need "$df" '^RUN bash /tmp/deps\.sh runtime( |$)' "runtime stage installs with deps.sh runtime"
need "$df" '^RUN bash docker/build\.sh build( |$)' "image builds with docker/build.sh"
need .ci/run 'bash docker/deps\.sh build runtime test' ".ci/run installs with deps.sh"
need .ci/run '^tests/run\.sh$' ".ci/run runs tests/run.sh"
need tests/run.sh '^ *docker/build\.sh "\$dir"' "tests/run.sh builds with docker/build.sh"
# no other cmake invocation may drift away from build.sh
if grep -En '^\s*(RUN .*)?cmake ' "$df" tests/run.sh .ci/run; then echo "FAIL: cmake called outside docker/build.sh"; fail=1; else echo "ok: cmake only in docker/build.sh"; fi
# every top-level directory CMake reads is copied into the build stage
for d in $(grep -Eo '(\$\{CMAKE_SOURCE_DIR\}/|add_subdirectory\(|GLOB [A-Z_]+ (CONFIGURE_DEPENDS )?)[a-z]+' CMakeLists.txt | grep -Eo '[a-z]+$' | sort -u); do
    [ -d "$d" ] || continue
    need "$df" "^COPY $d $d\$" "build stage copies $d/"
done
need "$df" '^COPY docker/build\.sh ' "build stage copies build.sh"
# runtime stage: after the second FROM
rt=$(awk '/^FROM /{n++} n==2' "$df")
echo "$rt" | grep -Eq '^USER [a-z]' && ! echo "$rt" | grep -Eq '^USER (root|0)$' && echo "ok: runtime runs as a non-root user" || { echo "FAIL: runtime USER"; fail=1; }
echo "$rt" | grep -Eq '^HEALTHCHECK .*' && echo "$rt" | grep -q '/health' && echo "$rt" | grep -q '\${PORT}' \
    && echo "ok: HEALTHCHECK on /health at \$PORT" || { echo "FAIL: HEALTHCHECK"; fail=1; }
echo "$rt" | grep -Eq 'CMD \["bash", "-c"' && echo "ok: healthcheck uses bash (/dev/tcp)" || { echo "FAIL: healthcheck shell"; fail=1; }
echo "$rt" | grep -Eq 'ffmpeg|deps\.sh runtime' && grep -Eq '^runtime=.*ffmpeg' docker/deps.sh && echo "ok: runtime has ffmpeg" || { echo "FAIL: ffmpeg"; fail=1; }
echo "$rt" | grep -q 'yt-dlp' && echo "ok: runtime has yt-dlp" || { echo "FAIL: yt-dlp"; fail=1; }
# the test packages the dashboard test needs
for p in chromium nodejs postgresql python3-psycopg2; do need docker/deps.sh "^test=.*\b$p\b" "deps.sh test has $p"; done
need docker/deps.sh '\|\| test="\$test npm"' "deps.sh test adds npm unless nodejs ships it"
# compose
need "$compose" '^  db:' "compose has a database"
need "$compose" '^  migrate:' "compose has a migrate service"
need "$compose" 'command: \["migrate"\]' "migrate runs glint-worker migrate"
need "$compose" 'condition: service_completed_successfully' "worker waits for the migration"
need "$compose" '^  worker:' "compose has the worker"
bash -n docker/deps.sh docker/build.sh tests/run.sh .ci/run || fail=1
exit $fail
