#!/usr/bin/env bash
# Static checks that keep docker/ honest without a Docker engine: the image installs packages with docker/deps.sh and
# builds with docker/build.sh, the same scripts .ci/run (through tests/run.sh) uses; the build stage copies every
# source directory CMake needs; base images are pinned by digest; yt-dlp is a pinned release verified by SHA-256; the
# runtime stage runs as a numeric non-root uid under tini, is health-checked on /livez, honours PORT, carries the OCI
# labels and the commit; the compose file has postgres, a one-shot migrate and the worker.
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
# runtime stage: the last one
rt=$(awk '/^FROM /{rt=""} {rt=rt $0 "\n"} END{printf "%s", rt}' "$df")
# numeric uid:gid (runAsNonRoot can verify only a number), not 0, and the user is created with exactly those ids
user=$(echo "$rt" | sed -n 's/^USER //p')
uid=${user%%:*} gid=${user#*:}
if [[ "$user" =~ ^[0-9]+:[0-9]+$ ]] && [ "$uid" != 0 ] && [ "$gid" != 0 ] \
    && grep -Eq -- "useradd .*--uid $uid( |$)" <<<"$rt" && grep -Eq -- "useradd .*--gid $gid( |$)" <<<"$rt" \
    && grep -Eq -- "groupadd .*--gid $gid( |$)" <<<"$rt"; then
    echo "ok: runtime runs as numeric non-root $user, created with those ids"
else
    echo "FAIL: runtime USER must be numeric uid:gid (not 0) created by useradd/groupadd (got '$user')"; fail=1
fi
grep -Eq '^HEALTHCHECK .*' <<<"$rt" && grep -q 'GET /livez ' <<<"$rt" && grep -q '\${PORT}' <<<"$rt" \
    && ! grep -Eq 'GET /(health|readyz) ' <<<"$rt" \
    && echo "ok: HEALTHCHECK on /livez (liveness, not the database) at \$PORT" || { echo "FAIL: HEALTHCHECK"; fail=1; }
# tini (Debian's) is PID 1 and execs the worker; CMD only names the subcommand
grep -Eq '^ENTRYPOINT \["/usr/bin/tini", "--", "/usr/local/bin/glint-worker"\]$' <<<"$rt" \
    && grep -Eq '^runtime=.*\btini\b' docker/deps.sh \
    && echo "ok: tini from deps.sh runtime is PID 1" || { echo "FAIL: ENTRYPOINT must be tini -- glint-worker (and tini in deps.sh runtime)"; fail=1; }
# every FROM is pinned by digest, directly or through a global ARG whose default is one
digest='@sha256:[0-9a-f]{64}'
while read -r from; do
    img=$(echo "$from" | awk '{print $2}')
    if [[ "$img" =~ ^\$\{([A-Z_]+)\}$ ]]; then
        img=$(sed -n "s/^ARG ${BASH_REMATCH[1]}=//p" "$df" | head -n 1)
    fi
    if [[ "$img" =~ ^[a-z0-9./:-]+$digest$ ]]; then echo "ok: base image pinned: ${img%@*}@sha256:…"
    else echo "FAIL: base image not pinned by digest: $from ($img)"; fail=1; fi
done < <(grep -E '^FROM ' "$df" | grep -Ev '^FROM [a-z]+ AS ')
need "$df" 'docker buildx imagetools inspect' "the Dockerfile says how to bump the digest"
# yt-dlp: a release (version ARG), never releases/latest, checked with sha256sum -c against a non-empty checksum ARG
need "$df" '^ARG YTDLP_VERSION=[0-9]{4}\.[0-9]{2}\.[0-9]{2}$' "yt-dlp pinned to a release (YTDLP_VERSION)"
need "$df" '^ARG YTDLP_SHA256=[0-9a-f]{64}$' "yt-dlp SHA-256 pinned (YTDLP_SHA256)"
need "$df" '^ADD https://github\.com/yt-dlp/yt-dlp/releases/download/\$\{YTDLP_VERSION\}/' "yt-dlp downloaded from the pinned release"
need "$df" 'test -n "\$\{YTDLP_SHA256\}"' "the build refuses an empty checksum"
need "$df" 'echo "\$\{YTDLP_SHA256\}  /out/yt-dlp" \| sha256sum --check' "yt-dlp verified with sha256sum --check"
if grep -Eq 'releases/latest|YTDLP_URL' "$df"; then echo "FAIL: yt-dlp from releases/latest (unpinned)"; fail=1; else echo "ok: no unpinned yt-dlp"; fi
grep -q '^RUN yt-dlp --version$' <<<"$rt" && grep -Eq '^runtime=.*\bpython3\b' docker/deps.sh \
    && echo "ok: the runtime stage runs the pinned yt-dlp (zipapp on python3)" || { echo "FAIL: yt-dlp smoke run / python3"; fail=1; }
# OCI labels, and a version that is the project's
for l in title description source version revision licenses; do
    grep -Eq "org\.opencontainers\.image\.$l=\"[^\"]*\"" <<<"$rt" && echo "ok: label org.opencontainers.image.$l" \
        || { echo "FAIL: label org.opencontainers.image.$l"; fail=1; }
done
pv=$(sed -n 's/^project(glint-worker VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
need "$df" "^ARG GW_VERSION=${pv//./\\.}\$" "image version label = project VERSION ($pv)"
grep -q 'org.opencontainers.image.revision="${GW_COMMIT}"' <<<"$rt" && echo "ok: revision label is GW_COMMIT" || { echo "FAIL: revision label"; fail=1; }
# the commit reaches the binary: the build stage declares GW_COMMIT before build.sh, which hands it to CMake
awk '/^FROM .* AS build$/{b=1} b&&/^ARG GW_COMMIT$/{a=1} b&&a&&/^RUN bash docker\/build\.sh /{ok=1} /^FROM /&&!/ AS build$/{b=0} END{exit !ok}' "$df" \
    && echo "ok: GW_COMMIT declared in the build stage before build.sh" || { echo "FAIL: GW_COMMIT in the build stage"; fail=1; }
need docker/build.sh '-DGW_COMMIT="\$GW_COMMIT"' "build.sh passes GW_COMMIT to CMake"
grep -Eq 'CMD \["bash", "-c"' <<<"$rt" && echo "ok: healthcheck uses bash (/dev/tcp)" || { echo "FAIL: healthcheck shell"; fail=1; }
grep -Eq 'ffmpeg|deps\.sh runtime' <<<"$rt" && grep -Eq '^runtime=.*ffmpeg' docker/deps.sh && echo "ok: runtime has ffmpeg" || { echo "FAIL: ffmpeg"; fail=1; }
grep -q 'yt-dlp' <<<"$rt" && echo "ok: runtime has yt-dlp" || { echo "FAIL: yt-dlp"; fail=1; }
# the test packages the dashboard test, check_deploy.sh and test_zombies.py need
for p in chromium nodejs postgresql python3-psycopg2 yamllint python3-yaml tini; do need docker/deps.sh "^test=.*\b$p\b" "deps.sh test has $p"; done
need docker/deps.sh '\|\| test="\$test npm"' "deps.sh test adds npm unless nodejs ships it"
# compose
need "$compose" '^  db:' "compose has a database"
need "$compose" '^  migrate:' "compose has a migrate service"
need "$compose" 'command: \["migrate"\]' "migrate runs glint-worker migrate"
need "$compose" 'condition: service_completed_successfully' "worker waits for the migration"
need "$compose" '^  worker:' "compose has the worker"
need "$compose" "GET /livez " "compose's worker healthcheck is liveness (/livez)"
bash -n docker/deps.sh docker/build.sh tests/run.sh .ci/run || fail=1
exit $fail
