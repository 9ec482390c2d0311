#!/usr/bin/env python3
"""Stage-aware concurrency (issue 17). Prints figures; asserts nothing. Needs a built tree; starts its own PostgreSQL,
the Gemini stand-in (every call answers after BENCH_GEMINI_MS, default 5000) and a loopback site of caption pages that
Debian's real yt-dlp reads (as tests/integration/test_ytdlp_real.py does). The worker runs on 2 CPUs (affinity) when
this machine has more.
    tests/bench/bench_pool.py [build-dir]
Table: 50 standard jobs under the old settings (MAX_CONCURRENT_JOBS 4, 8, 50, no pool: MAX_SUBPROCESSES=-1) and the new
ones (50 job slots, default pool): wall time, most yt-dlp processes at once and their peak summed RSS (sampled from
/proc every 100 ms), the subprocesses' CPU per job and the floor it sets (their CPU seconds / CPUs), how busy the CPUs
were, the worker's own RSS (idle and peak, with the most jobs claimed at once) and GET /health latency sampled every
50 ms during the run. BENCH_POOL_LONG=1 adds 200 jobs at 30 s per Gemini call: jobs per container-minute (8 slots, no
pool, vs 200 slots + default pool; BENCH_POOL_LONG=pool: the pool row alone). BENCH_JOBS overrides 50;
BENCH_OLD_SLOTS (default 4,8,50) the old settings run. The worker inherits the environment: MAX_SUBPROCESSES=4 fixes
the "default" pool, to compare with the adaptive one."""
import http.client
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


def children(pid):
    """pid's children, from each of its threads' /proc children list: reading the tree costs a few reads per process
    in it, not a scan of every process on the machine (the CPUs it would take are the ones measured)."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                out += [int(x) for x in _read("/proc/%d/task/%s/children" % (pid, tid)).split()]
            except OSError:
                pass
    except OSError:
        pass
    return out


def descendants(root):
    out, todo = [], [root]
    while todo:
        for k in children(todo.pop()):
            out.append(k)
            todo.append(k)
    return out


def _read(path, mode="r"):
    with open(path, mode) as f:
        return f.read()


def vmrss_kb(pid):
    for line in _read("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def ytdlp_sample(root):
    """(count, summed RSS in kB) of the yt-dlp runs under root. A run's own children (Python forks, and for an instant
    the fork still carries yt-dlp's command line) belong to that run: only yt-dlp processes whose parent is not one
    count, which is what the pool bounds."""
    procs = {}
    for pid in descendants(root):
        try:
            ppid = int(_read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()[1])
            procs[pid] = (ppid, b"yt-dlp" in _read("/proc/%d/cmdline" % pid, "rb"))
        except (OSError, IndexError, ValueError):
            pass
    n, rss = 0, 0
    for pid, (ppid, is_ytdlp) in procs.items():
        if not is_ytdlp or procs.get(ppid, (0, False))[1]:
            continue
        try:
            rss += vmrss_kb(pid)
            n += 1
        except OSError:
            pass
    return n, rss


def machine_cpu():
    """(busy, total) jiffies of the CPUs this benchmark runs on."""
    mine = set(os.sched_getaffinity(0))
    busy = total = 0
    for line in _read("/proc/stat").splitlines():
        if line.startswith("cpu") and line[3:4].isdigit() and int(line.split()[0][3:]) in mine:
            v = [int(x) for x in line.split()[1:]]
            total += sum(v[:8])
            busy += sum(v[:8]) - v[3] - v[4]  # minus idle and iowait
    return busy, total


def children_cpu_s(pid):
    """CPU seconds of the worker's reaped subprocesses (cutime + cstime): what the jobs' yt-dlp runs cost."""
    f = _read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
    return (int(f[13]) + int(f[14])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s(pid):
    """CPU seconds pid itself has used (utime + stime)."""
    f = _read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu_s():
    """CPU seconds of every PostgreSQL process alive now, plus those its postmasters reaped."""
    total = 0.0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if _read("/proc/%s/comm" % d).strip() != "postgres":
                    continue
                f = _read("/proc/%s/stat" % d).rsplit(")", 1)[1].split()
                total += sum(int(x) for x in f[11:15]) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                pass
    return total


def bench_cpu_s():
    """This script (page server, samplers, probes), the Gemini stand-in and PostgreSQL: the CPU the measured worker and
    its subprocesses did not get."""
    t = os.times()
    return t.user + t.system + own_cpu_s(gem.proc.pid) + postgres_cpu_s()


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


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
        time.sleep(0.5)
        idle_kb = vmrss_kb(w.proc.pid)
        peak_n, peak_rss, peak_self, stop = [0], [0], [idle_kb], [False]
        lat, busy, queued, queued_kb = [], [0], [0], [0]

        def sample():
            while not stop[0]:
                n, rss = ytdlp_sample(w.proc.pid)
                peak_n[0] = max(peak_n[0], n)
                peak_rss[0] = max(peak_rss[0], rss)
                try:
                    peak_self[0] = max(peak_self[0], vmrss_kb(w.proc.pid))
                except OSError:
                    pass
                time.sleep(0.1)  # a yt-dlp run lasts a second or more; a finer scan costs the CPU being measured

        def probe():  # GET /health on one kept-alive connection, every 50 ms
            conn = http.client.HTTPConnection("127.0.0.1", w.port, timeout=10)
            while not stop[0]:
                t = time.perf_counter()
                conn.request("GET", "/health")
                conn.getresponse().read()
                lat.append((time.perf_counter() - t) * 1000.0)
                time.sleep(0.05)
            conn.close()

        def in_flight():  # most jobs claimed at once; the worker's RSS when the most wait for the pool
            while not stop[0]:
                busy[0] = max(busy[0], db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'"))
                try:
                    q = int(w.metric("glint_subprocess_pool_queued") or 0)
                    if q > queued[0]:
                        queued[0], queued_kb[0] = q, vmrss_kb(w.proc.pid)
                except OSError:
                    pass
                time.sleep(0.2)
        side = [threading.Thread(target=probe), threading.Thread(target=in_flight)]
        for t in side:
            t.start()
        th = threading.Thread(target=sample)
        th.start()
        t0 = time.perf_counter()
        cpu0, other0, self0, script0 = machine_cpu(), bench_cpu_s(), own_cpu_s(w.proc.pid), sum(os.times()[:2])
        db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), %s || '/p' || (i %% 200) || '.html'"
             " FROM generate_series(0, %s - 1) AS i", base, jobs)
        wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED','FAILED')") == jobs,
                 3600, 0.05)
        wall = time.perf_counter() - t0
        cpu1, other1, self1, script1 = machine_cpu(), bench_cpu_s(), own_cpu_s(w.proc.pid), sum(os.times()[:2])
        kids_s = children_cpu_s(w.proc.pid)
        stop[0] = True
        th.join()
        for t in side:
            t.join()
        failed = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'")
        w.stop()
        w = None
        return {"label": label, "wall": wall, "procs": peak_n[0], "rss_mb": peak_rss[0] / 1024.0, "failed": failed,
                "jobs": jobs, "idle_kb": idle_kb, "self_kb": peak_self[0], "busy": busy[0],
                "kids_s": kids_s, "worker_s": self1 - self0, "other_s": other1 - other0, "script_s": script1 - script0, "busy_pct": 100.0 * (cpu1[0] - cpu0[0]) / max(1, cpu1[1] - cpu0[1]),
                "queued": queued[0], "queued_kb": queued_kb[0], "p50": percentile(lat, 0.5), "p99": percentile(lat, 0.99), "max": max(lat or [0])}
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
        if os.environ["BENCH_POOL_LONG"] != "pool":
            long_rows.append(run("MAX_CONCURRENT_JOBS=8, no pool", 200, 30000, MAX_CONCURRENT_JOBS=8, MAX_SUBPROCESSES=-1))
            print(long_rows[-1], flush=True)
        long_rows.append(run("MAX_CONCURRENT_JOBS=200, default pool", 200, 30000, MAX_CONCURRENT_JOBS=200))
        print(long_rows[-1], flush=True)
finally:
    gem.stop()
    httpd.shutdown()
    subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", state], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)

ncpu = len(os.sched_getaffinity(0))
print("\n| settings | wall time | yt-dlp processes at once | their peak RSS | subprocess CPU per job; CPU floor | CPUs busy |"
      " worker CPU; bench (its script), stand-in and PostgreSQL CPU | worker RSS idle -> peak (jobs claimed) | /health p50 / p99 / max |"
      " failed |\n|---|---|---|---|---|---|---|---|---|---|")
for r in rows + long_rows:
    print("| %s, %d jobs | %.1f s | %d | %.0f MB | %.2f s; %.1f s | %.0f %% | %.2f s; %.1f s (%.1f s) | %.1f -> %.1f MB (%d) |"
          " %.2f / %.2f / %.1f ms | %d |" % (
              r["label"], r["jobs"], r["wall"], r["procs"], r["rss_mb"], r["kids_s"] / r["jobs"], r["kids_s"] / ncpu,
              r["busy_pct"], r["worker_s"], r["other_s"], r["script_s"], r["idle_kb"] / 1024.0, r["self_kb"] / 1024.0, r["busy"], r["p50"],
              r["p99"], r["max"], r["failed"]))
print("CPU floor = the subprocesses' CPU seconds / %d CPUs: no schedule finishes sooner; a run at ~100 %% busy is CPU-bound."
      " The bench's own CPU (page server, samplers), the Gemini stand-in's and PostgreSQL's share the same CPUs" % ncpu)
eight = next((r for r in rows if r["label"].startswith("MAX_CONCURRENT_JOBS=8,")), None)
new = rows[-1]
if eight:
    print("new / 8-slot wall time: %.2f (target <= 0.75); yt-dlp at once %d (target <= 4); RSS %.0f MB (target <= 600)" % (
        new["wall"] / eight["wall"], new["procs"], new["rss_mb"]))
for r in rows + long_rows:
    if r["busy"] > 8:
        print("%s, %d jobs: worker grew %.1f KB per claimed job at its peak (%d claimed at once)" % (
            r["label"], r["jobs"], (r["self_kb"] - r["idle_kb"]) / r["busy"], r["busy"]))
    if r["queued"] > 8:
        print("%s, %d jobs: %.1f KB per job waiting for the pool (%d waiting, RSS %.1f MB then, %.1f MB idle)" % (
            r["label"], r["jobs"], (r["queued_kb"] - r["idle_kb"]) / r["queued"], r["queued"], r["queued_kb"] / 1024.0,
            r["idle_kb"] / 1024.0))
for r in long_rows:
    print("%d jobs, Gemini 30 s, %s: %.1f s wall, %.1f jobs per container-minute" % (
        r["jobs"], r["label"], r["wall"], r["jobs"] / (r["wall"] / 60.0)))
