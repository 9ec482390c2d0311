"""Jobs queued for the subprocess pool (MAX_SUBPROCESSES=1): FIFO, a cancelled queued job leaves the queue at once and
is refunded, the heartbeat keeps waiting jobs' leases (no rescue, one attempt), SIGTERM releases queued jobs and leaves
no slot taken. The production binary with the fake yt-dlp (every run takes FAKE_YTDLP_DELAY_MS) and the Gemini
stand-in, real PostgreSQL."""
import os
import signal
import tempfile
import time
import uuid

from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

tmp = tempfile.mkdtemp(prefix="glint-poolc-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
gem = fake_gemini()
db = Database("poolcancel")
w = None


def enqueue(n, prefix):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    ids = []
    for i in range(n):
        vid = ("%s%d" % (prefix, i)).ljust(11, "0")[:11]
        ids.append(db.one("SELECT glint_enqueue_job(%s, %s)", user, "https://www.youtube.com/watch?v=" + vid))
    return user, ids


def status(jid):
    return db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)


def pool(name):
    v = w.metric("glint_subprocess_pool_" + name)
    return int(v) if v is not None else None


try:
    migrate(db)
    # every yt-dlp run takes 1.5 s and the pool has one slot: the jobs queue for it, in claim order
    env = pipeline_env(gem, work_dir, MAX_SUBPROCESSES=1, MAX_CONCURRENT_JOBS=10, LEASE_SECONDS=2, SHUTDOWN_GRACE_MS=300,
                       YTDLP_TIMEOUT_MS=20000)
    os.environ["FAKE_YTDLP_DELAY_MS"] = "1500"
    w = Worker(db, binary="glint-worker", **env)
    check(w.wait_ready(), "worker ready")
    check(pool("size") == 1 + 1, "pool sizes shown (main 1, media half of it rounded up to 1): %s" % pool("size"))

    user, ids = enqueue(4, "ok")
    check(wait_for(lambda: pool("busy") == 1 and pool("queued") == 3, 10),
          "one yt-dlp runs, three jobs wait for the pool: busy %s queued %s" % (pool("busy"), pool("queued")))
    check(all(status(j) == "PROCESSING" for j in ids), "all four claimed and holding their lease")

    # cancel the last queued job: it leaves the queue at once, before the running one ends
    t0 = time.time()
    st, _ = w.json("POST", "/worker/jobs/%s/cancel" % ids[3], body=b"")
    check(st == 200, "cancel accepted")
    check(wait_for(lambda: status(ids[3]) == "CANCELLED", 1.0), "queued job cancelled within a second: %s" % status(ids[3]))
    check(wait_for(lambda: pool("queued") == 2, 1.0), "it left the pool queue: queued %s" % pool("queued"))
    print("cancel of a queued job took %.3f s" % (time.time() - t0))
    refunds = db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", ids[3])
    check(refunds == 1, "cancelled job refunded once")

    # the rest complete, in claim order, each with one attempt: the heartbeat kept the waiting jobs' leases (2 s lease,
    # the third job waits ~3 s for its slot)
    check(wait_for(lambda: all(status(j) == "COMPLETED" for j in ids[:3]), 30), "the others complete: %s"
          % [status(j) for j in ids[:3]])
    attempts = [db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", j) for j in ids[:3]]
    check(attempts == [1, 1, 1], "no lease rescue while waiting for the pool: attempts %s" % attempts)
    done = [db.one("SELECT finished_at FROM analysis_jobs WHERE id = %s", j) for j in ids[:3]]
    check(done == sorted(done), "FIFO: finished in claim order: %s" % done)
    check(wait_for(lambda: pool("busy") == 0 and pool("queued") == 0, 5), "every slot back")
    waits = w.metric("glint_subprocess_pool_wait_seconds_count")
    check(waits is not None and waits >= 3, "wait-time histogram counts the grants: %s" % waits)

    # SIGTERM with jobs queued for the pool: the grace passes, running and queued jobs are released PENDING
    _, ids2 = enqueue(3, "ok9")
    check(wait_for(lambda: pool("queued") == 2, 10), "two jobs queued again: %s" % pool("queued"))
    w.send(signal.SIGTERM)
    rc = w.proc.wait(20)
    check(rc == 0, "clean exit with jobs queued for the pool: %s" % rc)
    rows = [db.q("SELECT status, locked_by FROM analysis_jobs WHERE id = %s", j)[0] for j in ids2]
    check(all(r == ("PENDING", None) for r in rows), "running and queued jobs released: %s" % rows)
    w.stop()
    w = None
    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "scratch dirs removed: %s" % os.listdir(work_dir))
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
