#!/usr/bin/env python3
"""Stage-aware concurrency (issue 17). Prints figures; asserts nothing. Needs a built tree; starts its own PostgreSQL,
the Gemini stand-in (every call answers after BENCH_GEMINI_MS, default 5000) and a loopback site of caption pages that
Debian's real yt-dlp reads (as tests/integration/test_ytdlp_real.py does). The worker runs on 2 CPUs (affinity) when
this machine has more.
    tests/bench/bench_pool.py [build-dir]
Table: 50 standard jobs under the old settings (MAX_CONCURRENT_JOBS 4, 8, 50, no pool: MAX_SUBPROCESSES=-1) and the new
ones (50 job slots, default pool): wall time, most yt-dlp processes at once and their peak summed RSS (sampled from
/proc every 20 ms). BENCH_POOL_LONG=1 adds 200 jobs at 30 s per Gemini call: jobs per container-minute (8 slots, no
pool, vs 200 slots + default pool). BENCH_JOBS overrides 50; BENCH_OLD_SLOTS
(default 4,8,50) the old settings run."""
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
SRC = os.path.join(HERE, "..")
os.environ["GW_TEST_BIN"] = BUILD
tmp = tempfile.mkdtemp(prefix="glint-benchpool-")
state = os.path.join(tmp, "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state], check=True)
from harness import Database, Worker, migrate, wait_for  # noqa: E402
from standins import GEMINI_KEY as KEY  # noqa: E402
from standins import fake_gemini  # noqa: E402

N = int(os.environ.get("BENCH_JOBS", "50"))
YTDLP = shutil.which("yt-dlp") or "/usr/bin/yt-dlp"
site = os.path.join(tmp, "site")
os.mkdir(site)
subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "12",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", os.path.join(site, "talk.mp4")], check=True)
open(os.path.join(site, "talk.vtt"), "w").write(
    "WEBVTT\n\n00:00:00.000 --> 00:00:04.000\nWelcome to the quarterly review.\n\n"
    "00:00:04.000 --> 00:00:09.000\nRevenue grew in every region.\n")
for i in range(200):  # one page per job: nothing is shared or reused between jobs
    open(os.path.join(site, "p%d.html" % i), "w").write(
        '<!DOCTYPE html><html><head><title>Review %d</title></head><body><video controls src="talk.mp4">'
        '<track kind="captions" src="talk.vtt" srclang="en" label="English"></video></body></html>' % i)


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=site, **kw)

    def log_message(self, fmt, *args):
        pass


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
base = "http://127.0.0.1:%d" % httpd.server_address[1]
gem = fake_gemini()

cpus = sorted(os.sched_getaffinity(0))
if len(cpus) > 2:
    os.sched_setaffinity(0, cpus[:2])  # the worker and its children inherit it: "2 cores"


def descendants(root):
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            out.append(k)
            todo.append(k)
    return out


def ytdlp_sample(root):
    """(count, summed RSS in kB) of the yt-dlp processes under root."""
    n, rss = 0, 0
    for pid in descendants(root):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"yt-dlp" not in f.read():
                    continue
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            n += 1
        except OSError:
            pass
    return n, rss


def run(label, jobs, gemini_ms, **env):
    gem.call("/_control", {"latency_ms": gemini_ms})
    db = Database("benchpool")
    w = None
    try:
        migrate(db)
        w = Worker(db, binary="glint-worker", YTDLP_PATH=YTDLP, GEMINI_BASE_URL=gem.base, GEMINI_API_KEY=KEY,
                   WORK_DIR=tmp, ALLOWED_VIDEO_HOSTS="127.0.0.1", LOG_LEVEL="warn", LEASE_SECONDS=30,
                   YTDLP_TIMEOUT_MS=600000, GEMINI_TIMEOUT_MS=120000, **env)
        w.wait_ready()
        peak_n, peak_rss, stop = [0], [0], [False]

        def sample():
            while not stop[0]:
                n, rss = ytdlp_sample(w.proc.pid)
                peak_n[0] = max(peak_n[0], n)
                peak_rss[0] = max(peak_rss[0], rss)
                time.sleep(0.02)
        th = threading.Thread(target=sample)
        th.start()
        t0 = time.perf_counter()
        db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), %s || '/p' || (i %% 200) || '.html'"
             " FROM generate_series(0, %s - 1) AS i", base, jobs)
        wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED','FAILED')") == jobs,
                 3600, 0.05)
        wall = time.perf_counter() - t0
        stop[0] = True
        th.join()
        failed = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'")
        w.stop()
        w = None
        return {"label": label, "wall": wall, "procs": peak_n[0], "rss_mb": peak_rss[0] / 1024.0, "failed": failed,
                "jobs": jobs}
    finally:
        if w:
            w.stop()
        db.close()


rows = []
try:
    print("real yt-dlp %s, %d jobs, Gemini stand-in %d ms, worker on CPUs %s" % (
        subprocess.run([YTDLP, "--version"], capture_output=True, text=True).stdout.strip(), N,
        int(os.environ.get("BENCH_GEMINI_MS", "5000")), sorted(os.sched_getaffinity(0))), flush=True)
    gms = int(os.environ.get("BENCH_GEMINI_MS", "5000"))
    for slots in [int(x) for x in os.environ.get("BENCH_OLD_SLOTS", "4,8,50").split(",") if x]:
        rows.append(run("MAX_CONCURRENT_JOBS=%d, no pool" % slots, N, gms, MAX_CONCURRENT_JOBS=slots, MAX_SUBPROCESSES=-1,
                        MAX_MEDIA_SUBPROCESSES=-1))
        print(rows[-1], flush=True)
    rows.append(run("MAX_CONCURRENT_JOBS=50, default pool", N, gms, MAX_CONCURRENT_JOBS=50))
    print(rows[-1], flush=True)
    long_rows = []
    if os.environ.get("BENCH_POOL_LONG"):
        long_rows.append(run("MAX_CONCURRENT_JOBS=8, no pool", 200, 30000, MAX_CONCURRENT_JOBS=8, MAX_SUBPROCESSES=-1))
        print(long_rows[-1], flush=True)
        long_rows.append(run("MAX_CONCURRENT_JOBS=200, default pool", 200, 30000, MAX_CONCURRENT_JOBS=200))
        print(long_rows[-1], flush=True)
finally:
    gem.stop()
    httpd.shutdown()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)

print("\n| settings | wall time | yt-dlp processes at once | their peak RSS | failed |\n|---|---|---|---|---|")
for r in rows:
    print("| %s | %.1f s | %d | %.0f MB | %d |" % (r["label"], r["wall"], r["procs"], r["rss_mb"], r["failed"]))
eight = next((r for r in rows if r["label"].startswith("MAX_CONCURRENT_JOBS=8,")), None)
new = rows[-1]
if eight:
    print("new / 8-slot wall time: %.2f (target <= 0.75); yt-dlp at once %d (target <= 4); RSS %.0f MB (target <= 600)" % (
        new["wall"] / eight["wall"], new["procs"], new["rss_mb"]))
for r in long_rows:
    print("200 jobs, Gemini 30 s, %s: %.1f s wall, %.1f jobs per container-minute, %d yt-dlp at once, %.0f MB, %d failed"
          % (r["label"], r["wall"], r["jobs"] / (r["wall"] / 60.0), r["procs"], r["rss_mb"], r["failed"]))
