"""Failures the queue must survive: kill -9 mid-job, connections terminated, SIGTERM mid-job, DB unreachable."""
import signal
import time
import uuid

from harness import WORKER_SCALE, Database, Worker, check, insert_jobs, migrate, report, wait_for, free_port

db = Database("resilience")
workers = []


def status(jid):
    return db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)


try:
    migrate(db)

    # kill -9 of a worker mid-job: another worker finishes it after the lease expires; no double refund.
    a = Worker(db, LEASE_SECONDS=2)
    workers.append(a)
    a.wait_ready()
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    job = db.one("SELECT glint_enqueue_job(%s, 'test://sleep/1500')", user)
    check(wait_for(lambda: status(job) == "PROCESSING", 10), "claimed by A")
    a.stop(signal.SIGKILL)
    workers.remove(a)
    b = Worker(db, LEASE_SECONDS=2)
    workers.append(b)
    b.wait_ready()
    check(wait_for(lambda: status(job) == "COMPLETED", 30), "B finished the job after A's lease expired (%s)" % status(job))
    check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", job) == 2, "second attempt")
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", job) == 0, "no refund")
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 4, "charged once, not refunded")

    # pg_terminate_backend on the worker's connection: it reconnects; jobs inserted meanwhile are processed.
    before = b.metric("glint_listen_reconnects_total")
    db.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'glint-worker' AND datname = %s",
         db.name)
    ids = insert_jobs(db, ["test://noop"] * 20)  # likely while it is reconnecting: notifications lost
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'COMPLETED'",
                                  ids) == 20, 20), "jobs inserted across the reconnect all completed")
    check(wait_for(lambda: (b.metric("glint_listen_reconnects_total") or 0) > (before or 0), 10), "reconnect counted")
    # repeatedly
    for _ in range(3):
        db.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'glint-worker'"
             " AND datname = %s", db.name)
        time.sleep(0.3)
    ids = insert_jobs(db, ["test://noop"] * 10)
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'COMPLETED'",
                                  ids) == 10, 20), "still processing after repeated terminations")

    # SIGTERM mid-job: short jobs finish within the grace period, long ones are released (attempt not counted).
    short = insert_jobs(db, ["test://sleep/300"] * 3)
    long_ = insert_jobs(db, ["test://sleep/60000"] * 2)
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'PROCESSING'",
                                  short + long_) == 5, 10), "all five running")
    t0 = time.time()
    rc = b.stop(signal.SIGTERM)
    workers.remove(b)
    took = time.time() - t0
    check(rc == 0, "exit 0 after SIGTERM (rc=%s)" % rc)
    check(took < 6 * WORKER_SCALE, "shutdown within grace + release (%.1fs)" % took)  # valgrind: leak check at exit
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") == 0, "nothing left PROCESSING")
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'COMPLETED'", short) == 3,
          "short jobs finished in the grace period")
    rel = db.q("SELECT status, attempts, locked_by FROM analysis_jobs WHERE id = ANY(%s::uuid[])", long_)
    check(all(r == ("PENDING", 0, None) for r in rel), "long jobs released without counting an attempt: %r" % rel)

    # A second signal exits at once.
    c = Worker(db, SHUTDOWN_GRACE_MS=60000)
    c.wait_ready()
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'PROCESSING'",
                                  long_) == 2, 10), "released jobs picked up again")
    c.send(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.time()
    rc = c.stop(signal.SIGTERM)
    check(time.time() - t0 < 2 and rc != 0, "second SIGTERM exits at once (rc=%s)" % rc)
    db.q("UPDATE analysis_jobs SET status = 'CANCELLED' WHERE id = ANY(%s::uuid[])", long_)

    # Database unreachable: /health says unhealthy (503), the process stays up and keeps retrying.
    d = Worker(db, DATABASE_URL="postgresql://postgres@127.0.0.1:%d/none?connect_timeout=1" % free_port())
    workers.append(d)
    time.sleep(0.5)
    st, body = d.json("GET", "/health", key=None)
    check(st == 503 and body.get("status") == "unhealthy", "health 503 when the DB is down: %s %s" % (st, body))
    st, body = d.json("GET", "/worker/jobs/%s" % uuid.uuid4())
    check(st == 503 and body["error"]["code"] == "database_unavailable", "API 503 when the DB is down")
    check(d.proc.poll() is None, "still running")
    check(d.stop() == 0, "clean exit while disconnected")
    workers.remove(d)
finally:
    for x in workers:
        x.stop()
    db.close()
report()
