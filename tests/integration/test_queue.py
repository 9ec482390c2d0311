"""The queue end to end with the real binary and the test pipeline: pickup, outcomes, retries, racing workers."""
import time
import uuid

from harness import Database, Worker, check, insert_jobs, migrate, report, wait_for

db = Database("queue")
workers = []
try:
    migrate(db)
    w = Worker(db)
    workers.append(w)
    check(w.wait_ready(), "worker ready")

    # insert -> claimed and completed through the notification
    [jid] = insert_jobs(db, ["test://noop"])
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "COMPLETED", 10), "completed")
    row = db.q("SELECT attempts, locked_by IS NOT NULL, started_at >= created_at, finished_at >= started_at FROM analysis_jobs"
               " WHERE id = %s", jid)[0]
    check(row == (1, True, True, True), "claim bookkeeping: %r" % (row,))
    check(db.one("SELECT result->>'title' FROM analysis_results WHERE job_id = %s", jid) == "test", "result stored")

    # permanent failure: FAILED + exactly one refund
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 10)", user)
    perm = db.one("SELECT glint_enqueue_job(%s, 'test://fail/permanent')", user)
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", perm) == "FAILED"), "permanent -> FAILED")
    check(db.one("SELECT error_code FROM analysis_jobs WHERE id = %s", perm) == "test_permanent", "error_code kept")
    check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", perm) == 1, "permanent: no retry")

    # transient failure: retried until max_attempts, then FAILED + one refund
    trans = db.one("SELECT glint_enqueue_job(%s, 'test://fail/transient')", user)
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", trans) == "FAILED", 20),
          "transient -> FAILED after retries")
    check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", trans) == 3, "3 attempts")
    refunds = db.q("SELECT job_id, delta FROM credit_ledger WHERE reason = 'refund' AND user_id = %s ORDER BY job_id", user)
    check(sorted(refunds) == sorted([(perm, 1), (trans, 1)]), "one refund per failed job: %r" % refunds)
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 10, "balance restored")

    # retry then success
    [flaky] = insert_jobs(db, ["test://flaky"])
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", flaky) == "COMPLETED", 20),
          "flaky -> COMPLETED on attempt 2")
    check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", flaky) == 2, "two attempts")
    w.stop()
    workers.clear()

    # 4 workers racing over 5,000 jobs: every job claimed exactly once
    db.q("TRUNCATE analysis_jobs CASCADE")
    workers = [Worker(db, MAX_CONCURRENT_JOBS=32) for _ in range(4)]
    for x in workers:
        x.wait_ready()
    for _ in range(10):
        insert_jobs(db, ["test://noop"] * 500)
    done = wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'") == 5000, 60)
    check(done, "5000 completed (got %s)" % db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'"))
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE attempts <> 1") == 0, "every job claimed exactly once")
    check(db.one("SELECT count(*) FROM analysis_results") == 5000, "one result per job")
    claimed = sum(x.metric("glint_jobs_claimed_total") for x in workers)
    check(claimed == 5000, "claims across workers sum to 5000 (%s)" % claimed)
    spread = [x.metric("glint_jobs_claimed_total") for x in workers]
    print("claims per worker:", spread)
    for x in workers:
        check(x.stop() == 0, "clean exit")
    workers.clear()
finally:
    for x in workers:
        x.stop()
    db.close()
report()
