"""Migrations, defaults a minimal backend insert relies on, credits functions and the exactly-once refund."""
import select
import subprocess
import time
import os
import uuid

import psycopg2

from harness import Database, check, migrate, report, worker_env, BIN

CHECK_VIOLATION, NOT_NULL_VIOLATION, RAISE_EXCEPTION = "23514", "23502", "P0001"


def sqlstate(sql, *args):
    """The SQLSTATE a statement is refused with, or None when it was accepted."""
    try:
        db.q(sql, *args)
        return None
    except psycopg2.Error as e:
        return e.pgcode


def wait_notifies(conn, want, timeout=3.0):
    """Collects notifications until `want` arrived or the timeout passed."""
    deadline = time.time() + timeout
    while len(conn.notifies) < want and time.time() < deadline:
        select.select([conn], [], [], max(0.0, deadline - time.time()))
        conn.poll()
    return len(conn.notifies) >= want


db = Database("schema")
try:
    # Two instances migrating at once: both succeed, everything applied once.
    env = worker_env(db, DATABASE_URL=db.url)  # migrations run as the owner
    procs = [subprocess.Popen([os.path.join(BIN, "glint-worker"), "migrate"], env=env, cwd="/tmp",
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
    outs = [p.communicate(timeout=60)[0].decode() for p in procs]
    check(all(p.returncode == 0 for p in procs), "concurrent migrate exit codes: %s" % outs)
    n = db.one("SELECT count(*) FROM glint_migrations")
    check(n >= 4, "migrations recorded: %s" % n)
    migrate(db)  # idempotent
    check(db.one("SELECT count(*) FROM glint_migrations") == n, "re-running migrate applies nothing")

    # A backend inserting only user_id, video_url, mode gets a valid PENDING job.
    user = str(uuid.uuid4())
    row = db.q("INSERT INTO analysis_jobs (user_id, video_url, mode) VALUES (%s, 'https://youtu.be/dQw4w9WgXcQ', 'standard')"
               " RETURNING status, credits_charged, attempts, max_attempts, run_after <= now(), created_at IS NOT NULL,"
               " locked_by IS NULL", user)[0]
    check(row == ("PENDING", 0, 0, 3, True, True, True), "defaults: %r" % (row,))
    # A buggy backend: unknown mode, negative credits, missing user are refused by the constraint meant for them
    # (the exact SQLSTATE: a syntax error or a missing column would be refused too, and prove nothing).
    for bad, want in [("INSERT INTO analysis_jobs (user_id, video_url, mode) VALUES (gen_random_uuid(), 'x', 'turbo')",
                       CHECK_VIOLATION),
                      ("INSERT INTO analysis_jobs (user_id, video_url, credits_charged) VALUES (gen_random_uuid(), 'x', -1)",
                       CHECK_VIOLATION),
                      ("INSERT INTO analysis_jobs (video_url) VALUES ('x')", NOT_NULL_VIOLATION)]:
        got = sqlstate(bad)
        check(got == want, "refused with SQLSTATE %s (got %s): %s" % (want, got, bad))

    # Charge and enqueue in one call.
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 40)", user)
    job = db.one("SELECT glint_enqueue_job(%s, 'https://youtu.be/dQw4w9WgXcQ', 'standard')", user)
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 39, "standard costs 1")
    check(db.one("SELECT credits_charged FROM analysis_jobs WHERE id = %s", job) == 1, "credits_charged recorded")
    deep = db.one("SELECT glint_enqueue_job(%s, 'https://youtu.be/dQw4w9WgXcQ', 'deep', 301)", user)
    check(db.one("SELECT credits_charged FROM analysis_jobs WHERE id = %s", deep) == 15 * 2, "deep: 15 per started 5 min")
    check(db.one("SELECT glint_credit_cost('deep', 300)") == 15, "deep 300 s = one block")
    try:
        db.q("SELECT glint_enqueue_job(%s, 'https://youtu.be/dQw4w9WgXcQ', 'deep', 3600)", user)
        check(False, "insufficient credits accepted")
    except psycopg2.Error as e:
        check(e.pgcode == RAISE_EXCEPTION and e.diag.message_primary == "insufficient_credits",
              "insufficient_credits raised (P0001): %s %s" % (e.pgcode, e))
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE user_id = %s", user) == 3, "refused enqueue wrote nothing")

    # Refund: exactly once, even when called repeatedly; creates the balance row if missing.
    bal = db.one("SELECT balance FROM user_credits WHERE user_id = %s", user)
    check(db.one("SELECT glint_refund(%s)", job) == 1, "first refund returns the credits")
    check(db.one("SELECT glint_refund(%s)", job) == 0, "second refund is a no-op")
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == bal + 1, "balance refunded once")
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", job) == 1, "one ledger row")
    orphan_user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1)", orphan_user)
    oj = db.one("SELECT glint_enqueue_job(%s, 'x')", orphan_user)
    db.q("DELETE FROM user_credits WHERE user_id = %s", orphan_user)
    db.q("SELECT glint_refund(%s)", oj)
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", orphan_user) == 1, "refund creates the balance row")
    # A refund gives back what the ledger charged, not what credits_charged claims (sql/006).
    uncharged = db.one("INSERT INTO analysis_jobs (user_id, video_url, credits_charged) VALUES (%s, 'x', 5) RETURNING id",
                       orphan_user)
    check(db.one("SELECT glint_refund(%s)", uncharged) == 0, "uncharged job: refund of 0")
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", orphan_user) == 1, "no credits minted")
    check(db.one("SELECT delta FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", uncharged) == 0,
          "one refund row, delta 0")

    # Cancel: PENDING -> CANCELLED + refund + notify; a second cancel is refused (changed = false).
    listener = db.connect(db.name)
    listener.autocommit = True
    listener.cursor().execute("LISTEN glint_cancel")
    r = db.q("SELECT status, changed FROM glint_cancel_job(%s)", deep)
    check(r == [("CANCELLED", True)], "cancel: %r" % r)
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund' AND delta = 30", deep) == 1,
          "cancel refunded")
    check(wait_notifies(listener, 1) and any(n.payload == str(deep) for n in listener.notifies),
          "glint_cancel notified with the id")
    check(db.q("SELECT status, changed FROM glint_cancel_job(%s)", deep) == [("CANCELLED", False)], "second cancel")
    check(db.q("SELECT * FROM glint_cancel_job(%s)", str(uuid.uuid4())) == [], "unknown job: no row")
    listener.close()

    # Bulk insert of 10,000 rows: one notification, not 10,000.
    listener = db.connect(db.name)
    listener.autocommit = True
    listener.cursor().execute("LISTEN glint_jobs")
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'x' FROM generate_series(1, 10000)")
    wait_notifies(listener, 2, timeout=1.0)
    check(len(listener.notifies) == 1, "10,000-row insert sent %d notification(s)" % len(listener.notifies))
    listener.close()
finally:
    db.close()
report()
