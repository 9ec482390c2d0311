#!/usr/bin/python3
"""GET /health latency while the local analyzer digests a 20,000-cue sidecar transcript, through the real daemon
(LOCAL_MEDIA_DIR + ANALYZER=local). Prints figures; asserts nothing. Starts its own PostgreSQL.
    tests/bench/bench_health_latency.py [build-dir]
The idle baseline is measured in the same run, on the same keep-alive connection, before any job exists. Target
(issue 13): p99 <= 2 ms and max <= 20 ms while the jobs run. BENCH_JOBS (default 5) jobs run one after the other."""
import http.client
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
SRC = os.path.join(HERE, "..")
os.environ["GW_TEST_BIN"] = BUILD
tmp = tempfile.mkdtemp(prefix="glint-bench-health-")
state = os.path.join(tmp, "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state], check=True)
from harness import Database, Worker, migrate, pct, wait_for  # noqa: E402

JOBS = int(os.environ.get("BENCH_JOBS", "5"))
# On a shared machine the scheduler, not the loop, decides the tail: as root, the bench, PostgreSQL and the worker run
# at a higher priority (BENCH_NICE=0 turns that off). The idle baseline shows what is left of the noise.
if os.geteuid() == 0 and os.environ.get("BENCH_NICE", "-15") != "0":
    os.nice(int(os.environ.get("BENCH_NICE", "-15")))
CUES = 20000
WORDS = ("market growth revenue customers platform analysis quarter strategy product engineering latency database "
         "worker transcript summary chapter keyword pipeline budget forecast team").split()


def stamp(ms):
    return "%02d:%02d:%02d.%03d" % (ms // 3600000, ms // 60000 % 60, ms // 1000 % 60, ms % 1000)


def write_vtt(path):
    lines = ["WEBVTT", ""]
    for i in range(CUES):
        words = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(9))
        lines += ["%s --> %s" % (stamp(i * 2000), stamp(i * 2000 + 1900)), "Cue %d: the %s." % (i, words), ""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def sample(conn, out, stop=None, n=None):
    while (stop is None or not stop[0]) and (n is None or len(out) < n):
        t = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        out.append((time.perf_counter() - t) * 1000)


def line(name, v):
    return "%-28s p50 %6.3f ms  p99 %6.3f ms  max %7.3f ms  (%d requests)" % (
        name, statistics.median(v), pct(v, 99), max(v), len(v))


media = os.path.join(tmp, "media")
work = os.path.join(tmp, "work")
os.mkdir(media)
os.mkdir(work)
mp4 = subprocess.run([os.path.join(SRC, "media", "make_sample.sh"), os.path.join(BUILD, "tests", "media")], check=True,
                     capture_output=True, text=True).stdout.strip().splitlines()[-1]
shutil.copy(mp4, os.path.join(media, "long.mp4"))
write_vtt(os.path.join(media, "long.vtt"))
db = Database("benchhealth")
try:
    migrate(db)
    w = Worker(db, binary="glint-worker", LOCAL_MEDIA_DIR=media, WORK_DIR=work, ANALYZER="local", LOG_LEVEL="warn")
    wait_for(lambda: w.http("GET", "/health")[0] == 200, 10)
    conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
    warm = []
    sample(conn, warm, n=200)
    idle = []
    sample(conn, idle, n=3000)
    busy, stop, per_job = [], [False], []
    th = threading.Thread(target=sample, args=(conn, busy, stop))
    th.start()
    done = 0
    for i in range(JOBS):
        t0 = time.perf_counter()
        jid = db.one("INSERT INTO analysis_jobs (user_id, video_url) VALUES (gen_random_uuid(), %s)"
                     " RETURNING id", os.path.join(media, "long.mp4"))
        st = wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s AND status IN ('COMPLETED','FAILED')",
                                     jid), 120, 0.05)
        per_job.append(time.perf_counter() - t0)
        done += st == "COMPLETED"
        analyze = db.one("SELECT timings->>'analyze' FROM analysis_results WHERE job_id = %s", jid)
        if analyze is not None:
            per_job[-1] = (per_job[-1], float(analyze))
    stop[0] = True
    th.join()
    w.stop()
finally:
    db.close()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)

print("GET /health latency, local analyzer on a %d-cue sidecar transcript, %d jobs (%d COMPLETED)" % (CUES, JOBS, done))
print(line("idle (baseline)", idle))
print(line("while jobs are analysed", busy))
for j in per_job:
    if isinstance(j, tuple):
        print("  job: insert->COMPLETED %.0f ms, analyze stage %.0f ms" % (j[0] * 1000, j[1] * 1000))
    else:
        print("  job: insert->end %.0f ms (not completed)" % (j * 1000))
