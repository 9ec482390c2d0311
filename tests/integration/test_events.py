"""Issue 14, items 3-6, against real PostgreSQL and the real binaries: job events seen by a LISTENing client (claim,
stages, COMPLETED, FAILED, CANCELLED), retry through the API and the CLI with its ledger (charge, refund, charge; one
refund per charge), priorities in the claim, retention with its advisory lock and the ledger kept."""
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
import uuid

import psycopg2

from harness import BIN, SRC, Database, Worker, check, insert_jobs, migrate, report, wait_for, worker_env

tmp = tempfile.mkdtemp(prefix="glint-events-")
media, work_dir = os.path.join(tmp, "media"), os.path.join(tmp, "work")
for d in (media, work_dir):
    os.mkdir(d)
sample_dir = os.path.join(BIN, "tests", "media")
sample = subprocess.run([os.path.join(SRC, "media", "make_sample.sh"), sample_dir], check=True, capture_output=True,
                        text=True).stdout.strip().splitlines()[-1]
shutil.copy(sample, os.path.join(media, "talk.mp4"))
shutil.copy(sample[:-4] + ".vtt", os.path.join(media, "talk.vtt"))

db = Database("events")
workers = []


class Listener:
    """A backend's LISTEN connection: collects glint_job_events payloads."""

    def __init__(self):
        self.conn = psycopg2.connect(host=db.host, port=db.port, user="postgres", dbname=db.name)
        self.conn.autocommit = True
        self.conn.cursor().execute("LISTEN glint_job_events")
        self.events = []

    def poll(self, timeout=0.05):
        if select.select([self.conn], [], [], timeout) != ([], [], []):
            self.conn.poll()
            while self.conn.notifies:
                n = self.conn.notifies.pop(0)
                self.events.append(json.loads(n.payload))

    def of(self, jid):
        self.poll(0)
        return [e for e in self.events if e["id"] == jid]

    def wait(self, jid, status, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.poll()
            if any(e["status"] == status for e in self.of(jid)):
                return True
        return False


def status_of(jid):
    return db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)


def ledger(jid):
    return [r[0] for r in db.q("SELECT reason FROM credit_ledger WHERE job_id = %s ORDER BY id", jid)]


def balance(user):
    return db.one("SELECT balance FROM user_credits WHERE user_id = %s", user)


def cli(*args):
    env = worker_env(db, DATABASE_URL=db.url)
    return subprocess.run([os.path.join(BIN, "glint-worker")] + list(args), env=env, capture_output=True, text=True,
                          cwd="/tmp")


try:
    migrate(db)
    listener = Listener()
    w = Worker(db, binary="glint-worker", LOCAL_MEDIA_DIR=media, WORK_DIR=work_dir, LEASE_SECONDS=10)
    workers.append(w)
    check(w.wait_ready(), "worker ready")

    # ---- events: insert, claim, stages, COMPLETED ----
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 10)", user)
    ok = db.one("SELECT glint_enqueue_job(%s, %s)", user, os.path.join(media, "talk.mp4"))
    check(listener.wait(ok, "COMPLETED"), "COMPLETED event seen")
    ev = listener.of(ok)
    check(ev[0] == {"id": ok, "user_id": user, "status": "PENDING", "stage": None}, "first event: the insert: %r" % ev[0])
    check(ev[1]["status"] == "PROCESSING" and ev[1]["stage"] == "claimed", "then the claim: %r" % ev[1])
    stages = [e["stage"] for e in ev if e["status"] == "PROCESSING"]
    check(len(stages) >= 3 and stages[0] == "claimed", "stage events while processing: %r" % stages)
    check(ev[-1]["status"] == "COMPLETED" and "error_code" not in ev[-1], "last event COMPLETED: %r" % ev[-1])
    check(all(set(e) <= {"id", "user_id", "status", "stage", "error_code"} for e in ev), "small payload")

    # ---- FAILED with its error code ----
    late = os.path.join(media, "late.mp4")
    failed = db.one("SELECT glint_enqueue_job(%s, %s)", user, late)
    check(listener.wait(failed, "FAILED"), "FAILED event seen")
    last = listener.of(failed)[-1]
    check(last["status"] == "FAILED" and last["error_code"] == "file_not_found", "FAILED event with error_code: %r" % last)

    # ---- CANCELLED through the API (the database sends the event, not the worker) ----
    [waiting] = db.q("INSERT INTO analysis_jobs (user_id, video_url, run_after) VALUES (%s, %s, now() + interval '1 hour')"
                     " RETURNING id", user, os.path.join(media, "talk.mp4"))[0]
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % waiting)
    check(st == 200, "cancel: %s %r" % (st, body))
    check(listener.wait(waiting, "CANCELLED", 5), "CANCELLED event seen")
    check(listener.of(waiting)[-1].get("error_code") == "cancelled", "CANCELLED event: %r" % listener.of(waiting)[-1])

    # ---- retry: a FAILED job completes the second time; ledger charge, refund, charge ----
    check(ledger(failed) == ["charge", "refund"], "failed job: charge, refund: %r" % ledger(failed))
    before = balance(user)
    shutil.copy(sample, late)
    shutil.copy(sample[:-4] + ".vtt", late[:-4] + ".vtt")
    st, body = w.json("POST", "/worker/jobs/%s/retry" % failed)
    check(st == 200 and body == {"id": failed, "status": "PENDING", "credits_charged": 1}, "retry: %s %r" % (st, body))
    check(listener.wait(failed, "COMPLETED"), "retried job COMPLETED")
    check(ledger(failed) == ["charge", "refund", "charge"], "ledger charge, refund, charge: %r" % ledger(failed))
    check(balance(user) == before - 1, "charged once more")
    row = db.q("SELECT attempts, error_code, error_message, charge_seq FROM analysis_jobs WHERE id = %s", failed)[0]
    check(row == (1, None, None, 1), "attempts reset, error cleared, second charge: %r" % (row,))
    ev = listener.of(failed)
    check([e["status"] for e in ev].count("PENDING") == 2 and ev[-1]["status"] == "COMPLETED", "retry events: %r" % ev)

    # a retried job that fails again is refunded again: exactly one refund per charge
    gone = os.path.join(media, "gone.mp4")
    twice = db.one("SELECT glint_enqueue_job(%s, %s)", user, gone)
    check(wait_for(lambda: status_of(twice) == "FAILED", 30), "gone.mp4 FAILED")
    before = balance(user)
    r = cli("retry", twice)
    check(r.returncode == 0 and "PENDING" in r.stdout, "CLI retry: %s %s" % (r.returncode, r.stdout + r.stderr))
    check(wait_for(lambda: status_of(twice) == "FAILED", 30), "gone.mp4 FAILED again")
    check(ledger(twice) == ["charge", "refund", "charge", "refund"], "two charges, two refunds: %r" % ledger(twice))
    check(balance(user) == before, "second refund given back")
    check(db.one("SELECT glint_refund(%s)", twice) == 0 and len(ledger(twice)) == 4, "no third refund for two charges")
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund' GROUP BY charge_seq"
                 " ORDER BY 1 DESC LIMIT 1", twice) == 1, "one refund per charge_seq")

    # 402: the balance does not cover the retry; nothing changes
    db.q("UPDATE user_credits SET balance = 0 WHERE user_id = %s", user)
    st, body = w.json("POST", "/worker/jobs/%s/retry" % twice)
    check(st == 402 and body["error"]["code"] == "insufficient_credits", "402 insufficient_credits: %s %r" % (st, body))
    check(status_of(twice) == "FAILED" and len(ledger(twice)) == 4 and balance(user) == 0, "nothing changed on 402")
    r = cli("retry", twice)
    check(r.returncode == 1 and "insufficient credits" in r.stderr, "CLI 402: %r" % r.stderr)
    # 409 for any other status, 404 unknown, 400 not a UUID, 401 without the key
    st, body = w.json("POST", "/worker/jobs/%s/retry" % ok)
    check(st == 409 and body["error"]["code"] == "not_retryable", "409 COMPLETED: %s %r" % (st, body))
    st, body = w.json("POST", "/worker/jobs/%s/retry" % uuid.uuid4())
    check(st == 404 and body["error"]["code"] == "not_found", "404 unknown: %s %r" % (st, body))
    check(w.json("POST", "/worker/jobs/nope/retry")[0] == 400, "400 not a UUID")
    check(w.json("POST", "/worker/jobs/%s/retry" % ok, key=None)[0] == 401, "401 without key")
    r = cli("retry", ok)
    check(r.returncode == 1 and "COMPLETED" in r.stderr, "CLI 409: %r" % r.stderr)
    # a CANCELLED job may be retried too; a directly inserted (unmetered) one is not charged
    st, body = w.json("POST", "/worker/jobs/%s/retry" % waiting)
    check(st == 200 and body["credits_charged"] == 0 and ledger(waiting) == ["refund"], "unmetered retry: %r" % body)
    check(listener.wait(waiting, "COMPLETED"), "retried CANCELLED job COMPLETED")
    w.stop()
    workers.clear()

    # ---- priority: a priority-10 job inserted behind 30 priority-0 jobs is claimed first ----
    db.q("TRUNCATE analysis_jobs CASCADE")
    low = insert_jobs(db, ["test://noop"] * 30)
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5) ON CONFLICT (user_id) DO UPDATE SET balance = 5", user)
    r = cli("enqueue", "--user", user, "--priority", "10", "https://youtu.be/dQw4w9WgXcQ")
    check(r.returncode == 0, "CLI enqueue --priority: %r" % (r.stdout + r.stderr))
    high = r.stdout.strip()
    db.q("UPDATE analysis_jobs SET video_url = 'test://noop' WHERE id = %s", high)  # the test pipeline runs it
    check(db.one("SELECT priority FROM analysis_jobs WHERE id = %s", high) == 10, "priority stored")
    check(cli("enqueue", "--priority", "x", "https://youtu.be/dQw4w9WgXcQ").returncode == 2, "bad --priority: usage error")
    plan = "\n".join(r[0] for r in db.q(
        "EXPLAIN SELECT a.id FROM analysis_jobs a WHERE a.status = 'PENDING' AND a.run_after <= now()"
        " ORDER BY a.priority DESC, a.run_after LIMIT 8 FOR UPDATE SKIP LOCKED"))
    check("analysis_jobs_claim_idx" in plan and "Sort" not in plan, "claim: an index scan, no sort:\n%s" % plan)
    w = Worker(db, MAX_CONCURRENT_JOBS=1)
    workers.append(w)
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'") == 31, 30), "all 31 done")
    first = db.one("SELECT id FROM analysis_jobs ORDER BY started_at LIMIT 1")
    check(first == high, "priority-10 job claimed first (first: %s)" % ("high" if first == high else "a low one"))
    order = [r[0] for r in db.q("SELECT id FROM analysis_jobs WHERE id <> %s ORDER BY started_at", high)]
    check(order == low, "equal priorities: in insertion order")
    w.stop()
    workers.clear()

    # ---- the deep-capped claim (sql/019, 020): reads about a batch of rows whatever the queue's length, keeps the cap ----
    db.q("TRUNCATE analysis_jobs CASCADE")
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'test://noop'"
         " FROM generate_series(1, 20000)")
    db.q("ANALYZE analysis_jobs")

    def claim_reads(limit, deep):
        """(claimed, deep claimed, rows read by sequential scans, rows fetched through indexes) of one claim."""
        cur = db.conn.cursor()
        cur.execute("BEGIN")  # pg_stat_xact_user_tables counts this transaction's reads
        cur.execute("SELECT count(*), count(*) FILTER (WHERE job_mode = 'deep') FROM glint_claim_jobs('cap', 30, %s, %s)",
                    (limit, deep))
        n, d = cur.fetchone()
        cur.execute("SELECT seq_tup_read, idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'analysis_jobs'")
        seq, idx = cur.fetchone()
        cur.execute("COMMIT")
        return n, d, seq, idx
    n, d, seq, idx = claim_reads(256, 2)
    check(n == 256 and d == 0 and seq + idx < 2000, "capped claim, no deep job queued: 256 claimed reading %d + %d "
          "rows of a 20,000-job queue" % (seq, idx))
    db.q("INSERT INTO analysis_jobs (user_id, video_url, mode, run_after) SELECT gen_random_uuid(), 'test://noop', 'deep',"
         " now() - interval '1 hour' FROM generate_series(1, 50)")  # at the front of the queue
    n, d, seq, idx = claim_reads(256, 2)
    check(n == 256 and d == 2 and seq + idx < 2000, "capped claim with 50 deep jobs queued first: 256 claimed, 2 deep "
          "(%d), reading %d + %d rows" % (d, seq, idx))
    n, d, seq, idx = claim_reads(100, 0)
    check(n == 100 and d == 0, "deep cap 0: standard jobs only (%d deep of %d)" % (d, n))
    n, d, _, _ = claim_reads(10, 10)
    check(n == 10 and d == 10, "no cap in the batch: the oldest jobs, deep ones included (%d deep of %d)" % (d, n))
    db.q("TRUNCATE analysis_jobs CASCADE")

    # ---- retention: old finished jobs and their results go, in batches, one worker at a time; ledger rows stay ----
    db.q("TRUNCATE analysis_jobs CASCADE")
    old = [db.one("INSERT INTO analysis_jobs (user_id, video_url, status, created_at, finished_at)"
                  " VALUES (%s, 'test://noop', %s, now() - interval '3 days', now() - interval '3 days') RETURNING id",
                  user, s) for s in ("COMPLETED", "FAILED", "CANCELLED")]
    db.q("INSERT INTO analysis_results (job_id, result) VALUES (%s, '{}')", old[0])
    db.q("INSERT INTO credit_ledger (user_id, job_id, delta, reason) VALUES (%s, %s, -1, 'charge'), (%s, %s, 1, 'refund')",
         user, old[1], user, old[1])
    recent = db.one("INSERT INTO analysis_jobs (user_id, video_url, status, finished_at) VALUES (%s, 'test://noop',"
                    " 'COMPLETED', now()) RETURNING id", user)
    pending = db.one("INSERT INTO analysis_jobs (user_id, video_url, created_at, run_after) VALUES (%s, 'test://noop',"
                     " now() - interval '3 days', now() + interval '1 hour') RETURNING id", user)
    # another session holding the lock: nothing is deleted
    holder = psycopg2.connect(host=db.host, port=db.port, user="postgres", dbname=db.name)
    holder.autocommit = True
    holder.cursor().execute("SELECT pg_advisory_lock(hashtext('glint_purge_jobs'))")
    check(db.one("SELECT glint_purge_jobs(1, 10)") == 0, "lock held elsewhere: purge deletes nothing")
    holder.cursor().execute("SELECT pg_advisory_unlock(hashtext('glint_purge_jobs'))")  # close() alone releases later
    holder.close()
    check(db.one("SELECT glint_purge_jobs(1, 1)") == 1, "batch of 1 deletes 1")
    w = Worker(db, JOB_RETENTION_DAYS=1)
    workers.append(w)
    check(wait_for(lambda: w.metric("glint_jobs_deleted_total") == 2, 15), "worker deleted the other 2: %s"
          % w.metric("glint_jobs_deleted_total"))
    left = {r[0] for r in db.q("SELECT id FROM analysis_jobs")}
    check(left == {recent, pending}, "recent and unfinished jobs kept")
    check(db.one("SELECT count(*) FROM analysis_results WHERE job_id = ANY(%s::uuid[])", old) == 0, "results deleted")
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s", old[1]) == 2, "ledger rows kept")
    check(db.one("SELECT count(*) FROM pg_constraint WHERE conrelid = 'credit_ledger'::regclass AND contype = 'f'"
                 " AND confdeltype <> 'n'") == 0, "no cascading foreign key from the ledger")
    check("retention: deleted 2" in w.read_log(), "deletion logged")
    w.stop()
    workers.clear()
    listener.conn.close()

    # ---- Supabase Realtime: where the supabase_realtime publication exists, the migration adds analysis_jobs ----
    rt = Database("events_rt")
    try:
        rt.q("CREATE PUBLICATION supabase_realtime")
        migrate(rt)
        check(rt.q("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'supabase_realtime'")
              == [("public", "analysis_jobs")], "analysis_jobs in the supabase_realtime publication")
    finally:
        rt.close()
finally:
    for x in workers:
        x.stop()
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
report()
