#!/usr/bin/env bash
# The one-command demo: installs what is missing, builds, starts a throwaway PostgreSQL (in .demo/, as a non-root
# user), migrates, starts the worker, renders a sample video, enqueues it, follows the job and prints the analysis.
# With GEMINI_API_KEY set the analysis comes from Gemini, otherwise from the local analyzer (and it says so).
#
#   tests/demo.sh              interactive: leaves the worker running for the dashboard until Ctrl-C
#   tests/demo.sh --ci         non-interactive: stops everything, exits 0 only for a COMPLETED job with a valid result
#   options: --standard (default mode is deep), --no-wait (exit after printing), --no-setup (skip packages and build),
#            --build-dir DIR (default build), --state-dir DIR (default .demo), --media-dir DIR (default STATE/media)
# A second run reuses the packages, the build, the database cluster and the sample, and takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
ci=0 wait=1 setup=1 mode=deep build=build state=.demo media=""
while [ $# -gt 0 ]; do
    case "$1" in
    --ci) ci=1 wait=0 ;;
    --no-wait) wait=0 ;;
    --no-setup) setup=0 ;;
    --standard) mode=standard ;;
    --build-dir) build=$2; shift ;;
    --state-dir) state=$2; shift ;;
    --media-dir) media=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0" | cut -c3-; exit 0 ;;
    *) echo "demo: unknown option $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done
mkdir -p "$state"
state=$(cd "$state" && pwd)
build=$(mkdir -p "$build" && cd "$build" && pwd)
exec 8>"$state/.lock"
flock -n 8 || { echo "demo: another demo is running with $state" >&2; exit 1; } # it would stop our cluster
media=${media:-$state/media}
started=$(date +%s.%N)
bold=$'\e[1m' dim=$'\e[2m' green=$'\e[32m' red=$'\e[31m' off=$'\e[0m'
[ -t 1 ] || bold="" dim="" green="" red="" off=""
elapsed() { awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1fs", b - a }'; }
step() { printf '%s[%s]%s %s%s%s\n' "$dim" "$(elapsed)" "$off" "$bold" "$*" "$off"; }
info() { printf '        %s\n' "$*"; }
die() { printf '%sdemo: %s%s\n' "$red" "$*" "$off" >&2; exit 1; }

# ---- cleanup: the worker and the cluster stop on any exit, Ctrl-C included ----
worker_pid="" pg_up=0 as_pg=() bindir="" pgdata=""
cleanup() {
    trap - EXIT INT TERM
    if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
        kill -TERM "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    if [ "$pg_up" = 1 ]; then
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true
    fi
}
trap cleanup EXIT
trap 'echo; step "interrupted: stopping the worker and the database"; exit 130' INT TERM

# ---- setup: packages and build ----
if [ "$setup" = 1 ]; then
    step "setup: packages (docker/deps.sh build runtime demo)"
    if ! missing=$(bash docker/deps.sh check build runtime demo); then
        info "installing: $missing"
        if [ "$(id -u)" = 0 ]; then
            bash docker/deps.sh build runtime demo
        else
            command -v sudo >/dev/null || die "missing packages ($missing) and no sudo: run docker/deps.sh build runtime demo as root"
            sudo bash docker/deps.sh build runtime demo
        fi
    else
        info "all present"
    fi
    step "setup: build ($build)"
    if [ ! -f "$build/CMakeCache.txt" ]; then # later builds re-run cmake themselves when a CMakeLists.txt changed
        cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$state/cmake.log" 2>&1 || { cat "$state/cmake.log"; die "cmake failed"; }
    fi
    cmake --build "$build" -j"$(nproc)" --target glint-worker >"$state/build.log" 2>&1 || { tail -30 "$state/build.log"; die "build failed"; }
fi
bin=$build/glint-worker
[ -x "$bin" ] || die "$bin is missing (run without --no-setup)"
info "$("$bin" --version)"

# ---- database: a private cluster, unix socket only, run by a non-root user ----
step "database: throwaway PostgreSQL"
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$bindir/initdb" ] || die "PostgreSQL server binaries not found"
pgdir=$state/pg
# The cluster lives in /tmp instead (remembered in $state/pg.path so later runs find it) when the postgres user could
# not enter this checkout (e.g. under /root), or the path is too long for a unix socket or holds characters pg_ctl -o
# would split on.
tmp_cluster=0
[ ${#pgdir} -le 80 ] || tmp_cluster=1
case "$pgdir" in *[!A-Za-z0-9/._-]*) tmp_cluster=1 ;; esac
if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --) # initdb refuses root
    runuser -u postgres -- test -x "$state" 2>/dev/null || tmp_cluster=1
fi
if [ "$tmp_cluster" = 1 ]; then
    [ -f "$state/pg.path" ] && pgdir=$(cat "$state/pg.path")
    [ -d "$pgdir" ] && [ "$pgdir" != "$state/pg" ] || pgdir=$(mktemp -d /tmp/glint-demo-pg.XXXXXX)
    echo "$pgdir" >"$state/pg.path"
fi
mkdir -p "$pgdir"
if [ "$(id -u)" = 0 ]; then
    chown postgres: "$pgdir"
    chmod 700 "$pgdir"
fi
pgdata=$pgdir/data
port=54329
if [ ! -f "$pgdata/PG_VERSION" ]; then
    "${as_pg[@]}" "$bindir/initdb" -D "$pgdata" -U postgres -A trust -E UTF8 --no-sync >"$state/initdb.log" 2>&1 ||
        { cat "$state/initdb.log"; die "initdb failed"; }
    info "cluster created in $pgdata"
else
    info "reusing the cluster in $pgdata"
fi
"${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -m fast -w stop >/dev/null 2>&1 || true # a leftover from a killed run
"${as_pg[@]}" "$bindir/pg_ctl" -D "$pgdata" -l "$pgdir/server.log" -w -t 60 \
    -o "-k $pgdir -p $port -c listen_addresses= -c fsync=off -c synchronous_commit=off" start >/dev/null 8>&- ||
    die "PostgreSQL did not start (see $pgdir/server.log)"
pg_up=1
psql_() { "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$pgdir" -p "$port" -U postgres "$@"; }
[ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'glint'")" = 1 ] || psql_ -d postgres -c "CREATE DATABASE glint"
export DATABASE_URL="postgresql:///glint?host=$pgdir&port=$port&user=postgres"
info "DATABASE_URL=$DATABASE_URL"
"$bin" migrate >"$state/migrate.log" 2>&1 || { cat "$state/migrate.log"; die "migration failed"; }
info "migrated ($(psql_ -d glint -tAc "SELECT count(*) FROM pg_proc WHERE proname LIKE 'glint_%'") glint_* functions)"
user=00000000-0000-4000-8000-00000000de70
psql_ -d glint -c "INSERT INTO user_credits (user_id, balance) VALUES ('$user', 100)
                   ON CONFLICT (user_id) DO UPDATE SET balance = greatest(user_credits.balance, 100)"
info "demo user $user has $(psql_ -d glint -tAc "SELECT balance FROM user_credits WHERE user_id = '$user'") credits"

# ---- sample video ----
step "media: sample video (ffmpeg + espeak-ng, rendered here)"
sample=$(tests/media/make_sample.sh "$media" | tail -n 1)
info "$sample ($(du -h "$sample" | cut -f1), $(ffprobe -v error -show_entries format=duration -of csv=p=0 "$sample" | cut -d. -f1) s)"

# ---- worker ----
[ "${ANALYZER:-auto}" != gemini ] || [ -n "${GEMINI_API_KEY:-}" ] || die "ANALYZER=gemini needs GEMINI_API_KEY"
if [ -n "${GEMINI_API_KEY:-}" ] && [ "${ANALYZER:-auto}" != local ]; then
    analyzer="Gemini (GEMINI_API_KEY is set)"
else
    analyzer="the local analyzer (local-extractive: no key, no network)"
fi
step "worker: starting; analysis by $analyzer"
mkdir -p "$state/work"
export LOCAL_MEDIA_DIR=$media WORK_DIR=$state/work PORT=${DEMO_PORT:-0} HOST=127.0.0.1 WORKER_API_KEY=${WORKER_API_KEY:-demo-key} \
    LOG_FORMAT=text
(cd "$state" && exec "$bin") >"$state/worker.log" 2>&1 8>&- & # the lock stays with this script only
worker_pid=$!
for _ in $(seq 1 200); do
    grep -q "LISTEN active" "$state/worker.log" 2>/dev/null && break
    kill -0 "$worker_pid" 2>/dev/null || { cat "$state/worker.log"; die "the worker exited"; }
    sleep 0.05
done
grep -q "LISTEN active" "$state/worker.log" || die "the worker did not become ready (see $state/worker.log)"
http_port=$(sed -n 's/.*listening on [^ ]*:\([0-9][0-9]*\).*/\1/p' "$state/worker.log" | head -n 1)
info "pid $worker_pid, http://127.0.0.1:$http_port, log $state/worker.log"

# ---- the job ----
step "job: enqueue ($mode mode) with glint_enqueue_job"
url="file://$sample"
case "$sample" in *[%?#]*) url=$sample ;; esac # characters a file:// URI would need escaped: the plain path then
# the path goes in as a psql variable (:'url' is quoted by psql), never spliced into the SQL text
job=$(echo "SELECT glint_enqueue_job(:'user', :'url', :'mode')" | psql_ -d glint -tA -v user="$user" -v url="$url" -v mode="$mode")
info "video_url $url"
info "job $job"
last="" status=""
deadline=$(($(date +%s) + 300))
while :; do
    row=$(psql_ -d glint -tAF '|' -c "SELECT status, coalesce(stage, ''), attempts FROM analysis_jobs WHERE id = '$job'")
    status=${row%%|*}
    if [ "$row" != "$last" ]; then
        IFS='|' read -r s st at <<<"$row"
        info "$(printf '%s%-10s%s stage %-10s attempt %s  %s' "$bold" "$s" "$off" "${st:--}" "$at" "$dim$(elapsed)$off")"
        last=$row
    fi
    case "$status" in COMPLETED | FAILED | CANCELLED) break ;; esac
    [ "$(date +%s)" -lt "$deadline" ] || { status=TIMEOUT; break; }
    sleep 0.1
done

# ---- the analysis, rendered by PostgreSQL's own JSON functions ----
if [ "$status" = COMPLETED ]; then
    step "result"
    psql_ -d glint -tA <<SQL
WITH r AS (SELECT result AS j, model, timings FROM analysis_results WHERE job_id = '$job')
SELECT E'\n  ${bold}' || (j->>'title') || E'${off}\n  model: ' || model || E'\n\n  ${bold}Summary${off}\n  ' || (j->>'summary') ||
       E'\n\n  ${bold}Key takeaways${off}\n' ||
       (SELECT string_agg('  - ' || t, E'\n') FROM jsonb_array_elements_text(j->'keyTakeaways') t) ||
       E'\n\n  ${bold}Timeline${off}\n' ||
       (SELECT string_agg('  ' || lpad(e->>'timestamp', 7) || '  ' || (e->>'description') ||
               coalesce((SELECT string_agg(E'\n             · ' || d, '') FROM jsonb_array_elements_text(e->'details') d), ''), E'\n')
          FROM jsonb_array_elements(j->'timeline') e) ||
       E'\n\n  ${bold}Keywords${off}\n  ' ||
       (SELECT string_agg(k, ', ') FROM jsonb_array_elements_text(j->'keywords') k) ||
       CASE WHEN j ? 'visualAudit' THEN E'\n\n  ${bold}Visual audit${off}\n' ||
            coalesce((SELECT string_agg('  ' || lpad(e->>'timestamp', 7) || '  [' || (e->>'type') || '] ' || (e->>'detail'), E'\n')
                        FROM jsonb_array_elements(j->'visualAudit') e), '  (none)')
            ELSE '' END ||
       E'\n\n  ${dim}stage seconds: ' || (SELECT string_agg(key || ' ' || round(value::numeric, 2), ', ') FROM jsonb_each_text(timings)
                                          WHERE jsonb_typeof(timings->key) = 'number' AND key <> 'scene_changes') || E'${off}\n'
FROM r;
SQL
else
    step "job ended $status"
    psql_ -d glint -tAc "SELECT coalesce(error_code, '') || ': ' || coalesce(error_message, '') FROM analysis_jobs WHERE id = '$job'" | sed 's/^/        /'
    tail -n 20 "$state/worker.log" | sed 's/^/        /'
fi

# ---- where to look ----
dash=""
for path in $(command -v curl >/dev/null && echo /dashboard /); do
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$http_port$path" 2>/dev/null || true)
    [ "$code" = 200 ] && { dash="http://127.0.0.1:$http_port$path"; break; }
done
info "dashboard: ${dash:-(this build serves none; the job API below)}"
info "job API:   curl -H 'X-API-Key: $WORKER_API_KEY' http://127.0.0.1:$http_port/worker/jobs/$job"
info "health:    http://127.0.0.1:$http_port/health   metrics: http://127.0.0.1:$http_port/metrics"

# ---- CI verdict / interactive wait ----
valid=$(psql_ -d glint -tAc "SELECT count(*) FROM analysis_jobs j JOIN analysis_results r ON r.job_id = j.id
    WHERE j.id = '$job' AND j.status = 'COMPLETED' AND r.model IS NOT NULL AND length(r.result->>'summary') > 0
      AND jsonb_array_length(r.result->'keyTakeaways') > 0 AND jsonb_array_length(r.result->'timeline') > 0
      AND jsonb_typeof(r.result->'keywords') = 'array'
      AND ('$mode' = 'standard' OR jsonb_typeof(r.result->'visualAudit') = 'array')")
if [ "$wait" = 1 ] && [ "$status" = COMPLETED ]; then
    step "${green}done${off}: the worker keeps running for the dashboard; Ctrl-C stops it and the database"
    wait "$worker_pid" || true
    worker_pid=""
    exit 0
fi
kill -TERM "$worker_pid"
rc=0
wait "$worker_pid" || rc=$?
worker_pid=""
[ "$rc" = 0 ] || { tail -n 30 "$state/worker.log"; die "the worker exited with status $rc on SIGTERM"; }
if [ "$status" = COMPLETED ] && [ "$valid" = 1 ]; then
    step "${green}done${off}: job COMPLETED with a valid result; worker and database stopped"
    exit 0
fi
die "job ended $status (valid result: $valid)"
