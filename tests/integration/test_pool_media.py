"""Media runs (deep downloads) count within MAX_SUBPROCESSES and never take all of it: with a pool of 2 the worker never
has more than 2 subprocesses, at most 1 of them a download (MAX_MEDIA_SUBPROCESSES=-1 is clamped to 2 - 1), and
standard jobs finish while the downloads queue one behind the other. The production binary with the fake yt-dlp
(every download takes FAKE_YTDLP_DOWNLOAD_MS) and the Gemini stand-in, real PostgreSQL."""
import os
import tempfile
import threading
import time
import uuid

from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

tmp = tempfile.mkdtemp(prefix="glint-poolm-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
gem = fake_gemini("--processing-polls", "1")
db = Database("poolmedia")
w = None


def children(pid):
    """The worker's direct children: every subprocess it started and has not reaped."""
    n = 0
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        n += 1
            except (OSError, IndexError, ValueError):
                pass
    return n


def pool_metric(name, pool):
    _, text, _ = w.http("GET", "/metrics")
    for line in text.splitlines():
        if line.startswith('glint_subprocess_pool_%s{pool="%s"}' % (name, pool)):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def enqueue(video, mode):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    return db.one("SELECT glint_enqueue_job(%s, %s, %s)", user, "https://youtu.be/" + video, mode)


def finished(jid):
    return db.one("SELECT finished_at FROM analysis_jobs WHERE id = %s", jid)


try:
    migrate(db)
    env = pipeline_env(gem, work_dir, MAX_SUBPROCESSES=2, MAX_MEDIA_SUBPROCESSES=-1, MAX_CONCURRENT_JOBS=10,
                       MAX_CONCURRENT_DEEP_JOBS=3, YTDLP_TIMEOUT_MS=20000, GEMINI_TIMEOUT_MS=20000,
                       DOWNLOAD_TIMEOUT_MS=30000, FILE_ACTIVE_TIMEOUT_MS=5000, DOWNLOAD_MAX_BYTES=33554432,
                       FAKE_YTDLP_DOWNLOAD_MS=2000, FAKE_YTDLP_CACHE=tmp, POLL_INTERVAL_MS=500)
    w = Worker(db, binary="glint-worker", **env)
    check(w.wait_ready(), "worker ready")
    check((pool_metric("size", "main"), pool_metric("size", "media")) == (2, 1),
          "pool 2, media runs clamped to 1: %s/%s" % (pool_metric("size", "main"), pool_metric("size", "media")))

    peak = {"children": 0, "main": 0, "media": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["children"] = max(peak["children"], children(w.proc.pid))
            peak["main"] = max(peak["main"], pool_metric("busy", "main") or 0)
            peak["media"] = max(peak["media"], pool_metric("busy", "media") or 0)
            stop.wait(0.05)
    th = threading.Thread(target=sample)
    th.start()
    t0 = time.time()
    deep = [enqueue("ok00000000%d" % i, "deep") for i in range(3)]
    std = [enqueue("ok00000001%d" % i, "standard") for i in range(3)]
    done = wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED', 'FAILED')") == 6, 90)
    stop.set()
    th.join()
    rows = db.q("SELECT mode, status, error_code FROM analysis_jobs ORDER BY mode")
    check(done and all(r[1] == "COMPLETED" for r in rows), "all six complete: %s" % rows)
    print("took %.1f s; peaks: %s" % (time.time() - t0, peak))
    check(peak["children"] <= 2, "never more than MAX_SUBPROCESSES=2 subprocesses at once: %d" % peak["children"])
    check(peak["main"] <= 2 and peak["media"] <= 1, "pool accounting: main %d <= 2, media %d <= 1" % (peak["main"], peak["media"]))
    check(peak["media"] == 1 and peak["children"] == 2, "a download and a short run did run side by side: %s" % peak)
    # three 2 s downloads one behind the other; the standard jobs' fetches took the other slot meanwhile
    last_deep = max(finished(j) for j in deep)
    check(all(finished(j) < last_deep for j in std), "standard jobs finished while downloads still queued")
    check(wait_for(lambda: pool_metric("busy", "main") == 0 and pool_metric("busy", "media") == 0
                   and pool_metric("queued", "main") == 0 and pool_metric("queued", "media") == 0, 5), "every slot back")
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
