#!/usr/bin/python3
"""The Gemini quota governor (issue 15). Prints figures; asserts nothing. Needs a built tree; starts its own
PostgreSQL, the Gemini stand-in enforcing a requests-per-window quota, and uses the fake yt-dlp.
    tests/bench/bench_governor.py [build-dir]
Three worker processes (MAX_CONCURRENT_JOBS=8 each) share one stand-in quota of BENCH_RPM requests per BENCH_WINDOW_MS
(default 20 per 6 s: the issue's 20 per minute, ten times faster) and analyse BENCH_JOBS (30) jobs inserted at once,
in the same run:
  1. without the budget: GEMINI_RPM=0 (only the shared 429 pause is active)
  2. with the budget: GEMINI_RPM = the stand-in's limit
  0. BENCH_BASELINE_BIN=path/to/glint-worker: a binary built before the governor (each call backs off on its own)
For each: 429 answers, wall time (insert -> last job finished), ratio to the ideal time (jobs / RPM windows),
jobs completed / failed."""
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
SRC = os.path.join(HERE, "..")
os.environ["GW_TEST_BIN"] = BUILD
tmp = tempfile.mkdtemp(prefix="glint-bench-gov-")
state = os.path.join(tmp, "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state], check=True)
from harness import Database, Worker, migrate, wait_for  # noqa: E402

RPM = int(os.environ.get("BENCH_RPM", "20"))
WINDOW_MS = int(os.environ.get("BENCH_WINDOW_MS", "6000"))
JOBS = int(os.environ.get("BENCH_JOBS", "30"))
WORKERS = int(os.environ.get("BENCH_WORKERS", "3"))
BASELINE = os.environ.get("BENCH_BASELINE_BIN")
IDEAL = JOBS / RPM * WINDOW_MS / 1000.0
KEY = "AIzaBenchKey-0123456789"
pf = os.path.join(tmp, "port")
gem = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "standins", "fake_gemini.py"), "--port", "0", "--port-file", pf,
                        "--api-key", KEY, "--control", "--rpm-limit", str(RPM), "--rpm-window-ms", str(WINDOW_MS)],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 10)
gbase = "http://127.0.0.1:%s" % open(pf).read().strip()
fake = os.path.join(tmp, "yt-dlp")
with open(fake, "w") as f:
    f.write("#!/bin/sh\nexec /usr/bin/python3 %s \"$@\"\n" % os.path.join(SRC, "standins", "fake-yt-dlp"))
os.chmod(fake, 0o755)


def control(path, body=None):
    req = urllib.request.Request(gbase + path, data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def run(label, **env):
    db = Database("benchgov")
    workers = []
    try:
        migrate(db)
        control("/_control/reset", {})
        time.sleep(WINDOW_MS / 1000.0)  # the previous run's calls leave the stand-in's window
        for i in range(WORKERS):
            w = Worker(db, binary="glint-worker", YTDLP_PATH=fake, GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY, WORK_DIR=tmp,
                       MAX_CONCURRENT_JOBS=8, LOG_LEVEL="warn", WORKER_ID="bench-%d" % i, GEMINI_RPM_WINDOW_MS=WINDOW_MS,
                       LEASE_SECONDS=30, **env)
            workers.append(w)
        for w in workers:
            w.wait_ready()
        t0 = db.one("SELECT clock_timestamp()")
        db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'https://youtu.be/ok' ||"
             " lpad(g::text, 9, '0') FROM generate_series(1, %s) g", JOBS)
        wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED', 'FAILED')") == JOBS,
                 30 * IDEAL + 120, 0.05)
        wall = float(db.one("SELECT extract(epoch FROM max(finished_at) - %s) FROM analysis_jobs", t0) or 0)
        done = dict(db.q("SELECT status, count(*) FROM analysis_jobs GROUP BY status"))
        stats = control("/_control/stats")["rpm"]
        for w in workers:
            w.stop()
        workers = []
        print("%-44s %3d x 429  wall %6.2f s  ideal %5.2f s  ratio %.2f  completed %d  failed %d"
              % (label, stats["rejected"], wall, IDEAL, wall / IDEAL, done.get("COMPLETED", 0), done.get("FAILED", 0)),
              flush=True)
    finally:
        for w in workers:
            w.stop()
        db.close()


try:
    print("%d jobs, %d workers x 8 slots, stand-in limit %d requests per %d ms (ideal %.2f s)"
          % (JOBS, WORKERS, RPM, WINDOW_MS, IDEAL), flush=True)
    if BASELINE:
        import harness  # noqa: E402
        saved = harness.BIN
        harness.BIN = os.path.dirname(os.path.abspath(BASELINE))
        run("before the governor (BENCH_BASELINE_BIN)")
        harness.BIN = saved
    run("without the budget (GEMINI_RPM=0)", GEMINI_RPM=0)
    run("with the budget (GEMINI_RPM=%d)" % RPM, GEMINI_RPM=RPM)
finally:
    gem.terminate()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)
