"""The default subprocess pool adapts (MAX_SUBPROCESSES=0): it starts at the CPUs the worker may use and, while runs
wait and CPU stays idle (here every yt-dlp run sleeps FAKE_YTDLP_DELAY_MS, as a run waiting on YouTube would), grows
one slot per 250 ms tick up to twice that, never beyond; when the queue is gone it steps back to the floor. Media runs
stay capped at the main limit - 1. /metrics shows the limit next to the size. The production binary with the fake
yt-dlp and the Gemini stand-in, real PostgreSQL. (The CPU-bound case, where it stays at the floor, is measured by tests/bench/bench_pool.py.)"""
import os
import tempfile
import threading
import time
import uuid

from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

tmp = tempfile.mkdtemp(prefix="glint-poola-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
gem = fake_gemini()
db = Database("pooladapt")
w = None
JOBS = 16


def pool_metric(name, pool="main"):
    v = w.metric('glint_subprocess_pool_%s{pool="%s"}' % (name, pool))
    return int(v) if v is not None else None


try:
    migrate(db)
    env = pipeline_env(gem, work_dir, MAX_CONCURRENT_JOBS=JOBS, YTDLP_TIMEOUT_MS=20000, GEMINI_TIMEOUT_MS=20000,
                       LEASE_SECONDS=5, FAKE_YTDLP_DELAY_MS=1500)
    w = Worker(db, binary="glint-worker", **env)
    check(w.wait_ready(), "worker ready")
    floor, size = pool_metric("limit"), pool_metric("size")
    if size == 2 and len(os.sched_getaffinity(w.proc.pid)) < 2:  # one usable CPU: floor and size are both 2
        check(floor == 2, "one CPU: a fixed pool of 2 (limit %s)" % floor)
        print("one usable CPU: nothing adapts; the growth checks need two")
        report()  # exits; the finally below stops the worker
    check(floor is not None and floor >= 2 and size == 2 * floor,
          "adaptive by default: limit %s starts at the usable CPUs, size %s twice that" % (floor, size))
    check(pool_metric("limit", "media") == max(1, floor - 1) and pool_metric("size", "media") == max(1, floor),
          "media runs capped at the main limit - 1 (%s of %s)" % (pool_metric("limit", "media"), pool_metric("size", "media")))
    with open(w.log_path) as f:
        check("adapting to idle CPU" in f.read(), "the startup log says the pool adapts")

    peak = {"busy": 0, "limit": 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["busy"] = max(peak["busy"], pool_metric("busy") or 0)
            peak["limit"] = max(peak["limit"], pool_metric("limit") or 0)
            stop.wait(0.05)
    th = threading.Thread(target=sample)
    th.start()
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    t0 = time.time()
    ids = [db.one("SELECT glint_enqueue_job(%s, %s)", user, "https://youtu.be/" + ("ok%d" % i).ljust(11, "0"))
           for i in range(JOBS)]
    done = wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'") == JOBS, 60)
    took = time.time() - t0
    stop.set()
    th.join()
    check(done, "all %d jobs complete" % JOBS)
    print("took %.1f s; floor %d, size %d, peaks %s" % (took, floor, size, peak))
    check(peak["limit"] > floor, "the limit grew above the floor while runs waited on idle CPU: %s" % peak)
    check(peak["busy"] > floor, "more runs than CPUs at once: %s" % peak)
    check(peak["limit"] <= size and peak["busy"] <= size, "never beyond the size: %s" % peak)
    # a fixed pool of `floor` slots would need JOBS / floor rounds of 1.5 s
    print("fixed pool of %d: >= %.1f s of yt-dlp runs; took %.1f s" % (floor, JOBS / floor * 1.5, took))
    check(wait_for(lambda: pool_metric("limit") == floor and pool_metric("busy") == 0 and pool_metric("queued") == 0, 10),
          "queue gone: back to the floor, every slot free (limit %s)" % pool_metric("limit"))
    check(pool_metric("limit", "media") == max(1, floor - 1), "the media cap followed it back")
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
