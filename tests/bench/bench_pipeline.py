#!/usr/bin/env python3
"""Standard-mode benchmarks (issue 3). Prints figures; asserts nothing. Needs a built tree; starts its own PostgreSQL,
the Gemini stand-in and uses the fake yt-dlp.
    tests/bench/bench_pipeline.py [build-dir]
1. stand-ins at zero latency: insert -> COMPLETED p50/p99 and jobs/s over N jobs
2. Gemini stand-in delaying every call 2 s, 200 jobs in flight in one process: GET /health p99 and peak RSS"""
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
SRC = os.path.join(HERE, "..")
os.environ["GW_TEST_BIN"] = BUILD
tmp = tempfile.mkdtemp(prefix="glint-bench-")
state = os.path.join(tmp, "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state], check=True)
from harness import Database, Worker, migrate, pct, rss_kb, wait_for  # noqa: E402

N = int(os.environ.get("BENCH_JOBS", "200"))
KEY = "AIzaBenchKey-0123456789"
pf = os.path.join(tmp, "port")
gem = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "standins", "fake_gemini.py"), "--port", "0", "--port-file", pf,
                        "--api-key", KEY, "--control"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 10)
gbase = "http://127.0.0.1:%s" % open(pf).read().strip()
# the fake yt-dlp under Debian's python directly (a pyenv shim would add ~0.5 s per run to every job)
fake = os.path.join(tmp, "yt-dlp")
with open(fake, "w") as f:
    f.write("#!/bin/sh\nexec /usr/bin/python3 %s \"$@\"\n" % os.path.join(SRC, "standins", "fake-yt-dlp"))
os.chmod(fake, 0o755)


def control(body):
    urllib.request.urlopen(urllib.request.Request(gbase + "/_control", data=json.dumps(body).encode(), method="POST"),
                           timeout=10).read()




db = Database("benchpipe")
try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=fake, GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY, WORK_DIR=tmp,
               MAX_CONCURRENT_JOBS=200, LOG_LEVEL="warn")
    time.sleep(0.5)
    # 1. zero latency
    t0 = time.perf_counter()
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'https://youtu.be/ok000000000'"
         " FROM generate_series(1, %s)", N)
    wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED','FAILED')") == N, 300, 0.02)
    wall = time.perf_counter() - t0
    lat = [float(r[0]) for r in db.q("SELECT extract(epoch FROM finished_at - created_at) FROM analysis_jobs"
                                     " WHERE status = 'COMPLETED'")]
    failed = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'")
    # 2. 2 s per Gemini call, 200 in flight
    db.q("TRUNCATE analysis_jobs CASCADE")
    control({"latency_ms": 2000})
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'https://youtu.be/ok000000000'"
         " FROM generate_series(1, 200)")
    # in flight = claimed: with the subprocess pool most of them wait for a yt-dlp slot or for Gemini, not all in analyze
    wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") >= 150, 60, 0.05)
    health, peak, stop = [], [0], [False]

    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], rss_kb(w.proc.pid))
            time.sleep(0.05)
    th = threading.Thread(target=sample)
    th.start()
    inflight_max = 0
    deadline = time.time() + 60
    while time.time() < deadline and db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'") < 200:
        for _ in range(50):
            t = time.perf_counter()
            st, body, _ = w.http("GET", "/health")
            health.append((time.perf_counter() - t) * 1000)
            inflight_max = max(inflight_max, json.loads(body)["active_jobs"])
    stop[0] = True
    th.join()
    done2 = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'")
    w.stop()
finally:
    gem.terminate()
    db.close()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)

print("zero-latency stand-ins, %d standard jobs inserted at once (MAX_CONCURRENT_JOBS=200): insert->COMPLETED p50 %.0f ms,"
      " p99 %.0f ms; %.1f jobs/s; %d failed" % (N, statistics.median(lat) * 1000, pct(lat, 99) * 1000, N / wall, failed))
print("Gemini stand-in at 2 s per call, up to %d jobs in flight: GET /health p50 %.2f ms, p99 %.2f ms over %d requests;"
      " peak RSS %.1f MB; %d/200 completed" % (inflight_max, statistics.median(health), pct(health, 99), len(health),
                                              peak[0] / 1024, done2))
