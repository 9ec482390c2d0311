#!/usr/bin/env python3
"""Deep-mode benchmark (issue 4). Prints figures; asserts nothing. Needs a built tree; starts its own PostgreSQL and
the Gemini stand-in (uploads discarded after hashing, files ACTIVE at the first poll, no generate latency) and uses the
fake yt-dlp, which hard-links one 200 MB media file into each job's scratch dir.
    tests/bench/bench_deep.py [build-dir]        env: BENCH_JOBS (20), BENCH_MB (200), UPLOAD_CHUNK_BYTES (8 MiB)
Reports: peak RSS of the worker (sampled every 0.1 s), upload throughput (aggregate and per job, from the jobs' own
timings), insert -> COMPLETED p50/p99."""
import json
import os
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
tmp = tempfile.mkdtemp(prefix="glint-bench-deep-")
state = os.path.join(tmp, "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state], check=True)
from harness import Database, Worker, migrate, pct, rss_kb, wait_for  # noqa: E402

N = int(os.environ.get("BENCH_JOBS", "20"))
MB = int(os.environ.get("BENCH_MB", "200"))
CHUNK = os.environ.get("UPLOAD_CHUNK_BYTES", str(8 << 20))
KEY = "AIzaBenchKey-0123456789"
work = os.path.join(tmp, "work")
os.mkdir(work)
media = os.path.join(tmp, "media.mp4")  # random bytes: the stand-in does not decode video
with open(media, "wb") as f:
    for _ in range(MB):
        f.write(os.urandom(1 << 20))
pf = os.path.join(tmp, "port")
gem = subprocess.Popen(["/usr/bin/python3", os.path.join(SRC, "standins", "fake_gemini.py"), "--port", "0", "--port-file", pf,
                        "--api-key", KEY, "--control", "--discard-uploads", "--processing-polls", "0"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
wait_for(lambda: os.path.exists(pf) and open(pf).read().strip(), 10)
gbase = "http://127.0.0.1:%s" % open(pf).read().strip()
fake = os.path.join(tmp, "yt-dlp")  # Debian's python directly (a pyenv shim adds ~0.5 s per run)
with open(fake, "w") as f:
    f.write("#!/bin/sh\nexec /usr/bin/python3 %s \"$@\"\n" % os.path.join(SRC, "standins", "fake-yt-dlp"))
os.chmod(fake, 0o755)


def stats():
    with urllib.request.urlopen(gbase + "/_control/stats", timeout=10) as r:
        return json.loads(r.read())


db = Database("benchdeep")
w = None
try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=fake, GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY, WORK_DIR=work,
               FAKE_YTDLP_MEDIA=media, MAX_CONCURRENT_JOBS=N, LOG_LEVEL="warn", LEASE_SECONDS=30,
               DOWNLOAD_MAX_BYTES=2147483648, UPLOAD_CHUNK_BYTES=CHUNK, FILE_ACTIVE_TIMEOUT_MS=600000)
    w.wait_ready()
    base_rss = rss_kb(w.proc.pid)
    peak, stop = [0], [False]

    def sample():
        while not stop[0]:
            peak[0] = max(peak[0], rss_kb(w.proc.pid))
            time.sleep(0.1)
    th = threading.Thread(target=sample)
    th.start()
    db.q("INSERT INTO user_credits (user_id, balance) SELECT gen_random_uuid(), 1000 FROM generate_series(1, %s)", N)
    t0 = time.perf_counter()
    db.q("SELECT glint_enqueue_job(user_id, 'https://youtu.be/ok000000000', 'deep') FROM user_credits")
    wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED','FAILED')") == N, 900, 0.1)
    wall = time.perf_counter() - t0
    stop[0] = True
    th.join()
    lat = [float(r[0]) for r in db.q("SELECT extract(epoch FROM finished_at - created_at) FROM analysis_jobs"
                                     " WHERE status = 'COMPLETED'")]
    failed = db.q("SELECT error_code, count(*) FROM analysis_jobs WHERE status = 'FAILED' GROUP BY 1")
    per_job = [float(r[0]) for r in db.q("SELECT (timings->>'upload_mb_per_s')::float FROM analysis_results")]
    upload_s = [float(r[0]) for r in db.q("SELECT (timings->>'upload')::float FROM analysis_results")]
    total = stats()["bytes_received"]
    left = len(os.listdir(work))
    w.stop()
    w = None
finally:
    if w:
        w.stop()
    gem.terminate()
    db.close()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)
    os.unlink(media)

print("%d deep jobs at once, %d MB media each, UPLOAD_CHUNK_BYTES=%s, stand-in processing delay 0:" % (N, MB, CHUNK))
print("  peak RSS of the worker %.1f MB (idle %.1f MB)" % (peak[0] / 1024, base_rss / 1024))
# the uploads overlap, so all bytes / the longest upload is a lower bound of the aggregate rate
print("  upload: %.0f MB received by the stand-in; aggregate >= %.0f MB/s (all bytes / longest upload, %.1f s);"
      " per job p50 %.1f MB/s" % (total / 1e6, total / 1e6 / max(0.001, max(upload_s or [0])), max(upload_s or [0]),
                                  statistics.median(per_job) if per_job else 0))
print("  insert -> COMPLETED p50 %.1f s, p99 %.1f s; all %d done in %.1f s; failed %s; scratch dirs left %d"
      % (statistics.median(lat) if lat else -1, pct(lat, 99) if lat else -1, N, wall, failed or 0, left))
