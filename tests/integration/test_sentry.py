"""Sentry reporting against a local ingestion stand-in that checks the envelope format and the X-Sentry-Auth header:
a failed job (tags job_id, mode, stage, release, error_code; fingerprint = the code alone), an ERROR-level unexpected
state, the bounded queue (events dropped and counted while Sentry hangs, the loop never blocked), Sentry's rate limits
(429 + Retry-After, X-Sentry-Rate-Limits by category: nothing sent while limited, drops counted by reason), users' own
input never reported (a private video, an invalid link) while the operator's trouble is, a malformed DSN refused."""
import os
import re
import signal
import subprocess
import tempfile
import time

from harness import SCALE, BIN, Database, Worker, check, insert_jobs, migrate, report, wait_for, worker_env
from standins import fake_gemini, fake_sentry, pipeline_env

KEY = "0123456789abcdef0123456789abcdef"
db = Database("sentry")
w = None
try:
    migrate(db)
    sentry = fake_sentry(KEY)
    w = Worker(db, SENTRY_DSN=sentry.dsn, MAX_CONCURRENT_JOBS=100, SENTRY_ENVIRONMENT="staging")
    check(w.wait_ready(), "worker ready")

    # a permanently failed job -> one event; a transient failure that is retried -> none until it finally fails
    [fail_id] = insert_jobs(db, ["test://fail/permanent"])
    [flaky_id] = insert_jobs(db, ["test://flaky"])
    events = lambda: sentry.call("/_control/events")
    wait_for(lambda: events()["events"], 10)
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", flaky_id) == "COMPLETED", 10)
    time.sleep(0.3)
    got = events()
    check(not got["violations"], "envelopes and auth header well-formed: %s" % got["violations"][:3])
    evs = [e for e in got["events"] if e.get("tags", {}).get("job_id") == str(fail_id)]
    check(len(got["events"]) == 1 and len(evs) == 1, "exactly one event, for the failed job: %r" % got["events"])
    if evs:
        t = evs[0]["tags"]
        check(t.get("mode") == "standard" and t.get("stage") == "claimed" and t.get("error_code") == "test_permanent"
              and t.get("release") and evs[0]["release"].startswith("glint-worker@"), "tags: %r" % t)
        check(evs[0]["level"] == "error" and "test_permanent" in evs[0]["message"]["formatted"], "level and message")
        check(evs[0].get("fingerprint") == ["test_permanent"], "grouped by the error code alone: %r" % evs[0].get("fingerprint"))
        check(re.match(r"^glint-worker@\d+\.\d+\.\d+\+\S+$", evs[0]["release"]) and evs[0]["tags"].get("commit"),
              "release names version and commit: %r" % evs[0]["release"])
        check(evs[0].get("server_name"), "server_name = worker id")
        check(evs[0].get("environment") == "staging", "SENTRY_ENVIRONMENT: %r" % evs[0].get("environment"))

    # an unexpected state: storing results fails (ERROR log line) -> an event without a job tag
    db.q("ALTER FUNCTION glint_complete_jobs(text, jsonb) RENAME TO glint_complete_jobs_away")
    insert_jobs(db, ["test://noop"])
    ok = wait_for(lambda: any("storing" in e["message"]["formatted"] for e in events()["events"]), 10)
    db.q("ALTER FUNCTION glint_complete_jobs_away(text, jsonb) RENAME TO glint_complete_jobs")
    check(ok, "an ERROR log line became an event")

    # Sentry hangs: the queue fills, events are dropped and counted, the worker stays responsive
    sentry.call("/_control", {"hang_ms": 4000})
    before = w.metric('glint_sentry_events_total{result="dropped"}') or 0
    insert_jobs(db, ["test://fail/permanent"] * 90)
    wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'") >= 91, 20)
    t0 = time.monotonic()
    st, _, _ = w.http("GET", "/health")
    took = time.monotonic() - t0
    check(st == 200 and took < 0.5, "health answers at once while Sentry hangs (%.3f s)" % took)
    dropped = w.metric('glint_sentry_events_total{result="dropped"}')
    check(dropped is not None and dropped - before >= 90 - 64 - 2, "events dropped and counted: %s" % dropped)
    sentry.call("/_control", {"hang_ms": 0})
    check(not events()["violations"], "no violations at all: %s" % events()["violations"][:3])
    drop = lambda reason: w.metric('glint_sentry_dropped_total{reason="%s"}' % reason) or 0
    check(drop("queue_overflow") == dropped, "dropped_total{queue_overflow} = the drops above: %s" % drop("queue_overflow"))

    def settled():  # nothing queued or in flight any more: the request count stands still
        n = events()["requests"]
        time.sleep(0.5)
        return events()["requests"] == n

    def fail_jobs(n):
        before = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'")
        insert_jobs(db, ["test://fail/permanent"] * n)
        wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'FAILED'") >= before + n, 10)

    time.sleep(4.5 * SCALE)  # the requests still hanging in the stand-in end
    check(wait_for(settled, 15), "the backlog drained")

    # 429 + Retry-After: the answer counts as a rate-limit drop; nothing is sent until the time is up
    sentry.call("/_control", {"status": 429, "retry_after": "3"})
    r0, d0 = events()["requests"], drop("ratelimit_backoff")
    t429 = time.monotonic()
    fail_jobs(1)
    check(wait_for(lambda: events()["requests"] == r0 + 1, 5), "the event met a 429")
    time.sleep(0.3)  # the 429 reaches the worker
    fail_jobs(5)
    time.sleep(0.3)
    check(events()["requests"] == r0 + 1, "no request while limited: %d" % (events()["requests"] - r0))
    check(drop("ratelimit_backoff") == d0 + 6, "6 drops counted as ratelimit_backoff: %s" % (drop("ratelimit_backoff") - d0))
    sentry.call("/_control", {"status": 200, "retry_after": None})
    time.sleep(max(0, 3.2 - (time.monotonic() - t429)))
    n0 = len(events()["events"])
    fail_jobs(1)
    check(wait_for(lambda: len(events()["events"]) == n0 + 1, 5), "sending resumes after Retry-After")

    # X-Sentry-Rate-Limits on a 200: categories decide (transaction/session do not stop error events; error;default does)
    sentry.call("/_control", {"rate_limits": "60:transaction;session:organization, 2:error;default:project:quota_exceeded",
                              "limit_count": 1})
    r0, d0 = events()["requests"], drop("ratelimit_backoff")
    t_limit = time.monotonic()
    fail_jobs(1)
    check(wait_for(lambda: events()["requests"] == r0 + 1, 5), "accepted with a rate-limit header")
    time.sleep(0.3)  # its answer (and header) reaches the worker
    fail_jobs(3)
    time.sleep(0.3)
    check(events()["requests"] == r0 + 1 and drop("ratelimit_backoff") == d0 + 3,
          "error category limited: 3 dropped, none sent (%d sent)" % (events()["requests"] - r0 - 1))
    time.sleep(max(0, 2.2 - (time.monotonic() - t_limit)))
    n0 = len(events()["events"])
    fail_jobs(1)
    check(wait_for(lambda: len(events()["events"]) == n0 + 1, 5), "the 60 s transaction limit did not stop error events")
    check(not events()["violations"], "still well-formed: %s" % events()["violations"][:3])
    rc = w.stop()
    check(rc == 0, "clean exit with Sentry events in flight: %s" % rc)
    check(KEY not in w.read_log(), "the DSN key never appears in the log")
    w = None

    # a crash: the signal handler leaves a pre-built "fatal" envelope in WORK_DIR; the next start sends it
    crash_dir = tempfile.mkdtemp(prefix="glint-crash-")
    c = Worker(db, SENTRY_DSN=sentry.dsn, WORK_DIR=crash_dir)
    check(c.wait_ready(), "crash worker ready")
    c.send(signal.SIGSEGV)
    c.proc.wait(10 * SCALE)  # under valgrind the crash report itself takes seconds
    c.stop()
    files = os.listdir(crash_dir)
    check(c.proc.returncode == -signal.SIGSEGV and len(files) == 1 and files[0].startswith("glint-crash-"),
          "SIGSEGV: process died by the signal and left a crash report: rc=%s %r" % (c.proc.returncode, files))
    w = Worker(db, SENTRY_DSN=sentry.dsn, WORK_DIR=crash_dir)
    crashes = lambda: [e for e in events()["events"] if e["level"] == "fatal"]
    check(wait_for(lambda: crashes(), 10), "the next start sent the crash")
    if crashes():
        e = crashes()[0]
        check("SIGSEGV" in e["message"]["formatted"] and e["tags"].get("signal") == "SIGSEGV" and e["release"],
              "crash event: %r" % e)
    check(os.listdir(crash_dir) == [] and not events()["violations"], "crash report removed once sent; well-formed")
    check(w.stop() == 0, "clean exit")
    w = None

    # users' own input is not reported; the operator's trouble is (production binary, stand-ins)
    gem = fake_gemini()
    work = tempfile.mkdtemp(prefix="glint-sentry-")
    w = Worker(db, binary="glint-worker", SENTRY_DSN=sentry.dsn, **pipeline_env(gem, work, GEMINI_MAX_RETRIES=0))
    check(w.wait_ready(), "production worker ready")
    user_jobs = insert_jobs(db, ["https://youtu.be/private0000", "https://example.com/not-a-video"])
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'FAILED'",
                                  [str(j) for j in user_jobs]) == 2, 20), "the users' jobs failed")
    codes = sorted(r[0] for r in db.q("SELECT error_code FROM analysis_jobs WHERE id = ANY(%s::uuid[])",
                                      [str(j) for j in user_jobs]))
    gem.call("/_control", {"faults": ["500"]})
    [op_job] = insert_jobs(db, ["https://youtu.be/ok000000003"])
    db.q("UPDATE analysis_jobs SET max_attempts = 1 WHERE id = %s", op_job)
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", op_job) == "FAILED", 20),
          "the operator's job failed")
    op_code = db.one("SELECT error_code FROM analysis_jobs WHERE id = %s", op_job)
    check(wait_for(lambda: [e for e in events()["events"] if e.get("tags", {}).get("job_id") == str(op_job)], 5),
          "the operator's trouble (%s) is reported" % op_code)
    mine = [e for e in events()["events"] if e.get("tags", {}).get("job_id") in [str(j) for j in user_jobs]]
    check(codes == ["invalid_url", "private_video"] and not mine, "users' input (%s) never reported: %r" % (codes, mine))
    check(w.stop() == 0, "clean exit")
    w = None

    # a malformed DSN: one clear line, no key, non-zero exit
    env = worker_env(db, SENTRY_DSN="https://%s@sentry.example.com/not-a-project" % KEY)
    p = subprocess.run([os.path.join(BIN, "tests", "glint-worker-test")], env=env, capture_output=True, text=True,
                       timeout=20, cwd="/tmp")
    check(p.returncode != 0 and "SENTRY_DSN" in p.stderr and KEY not in p.stderr, "bad DSN refused: %r" % p.stderr[-300:])
finally:
    if w:
        w.stop()
    db.close()
report()
