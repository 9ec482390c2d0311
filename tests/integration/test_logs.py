"""Logs: with LOG_FORMAT=json every line (stdout and stderr) is one JSON object with severity, message and time, job
lines carry job_id (and stage where there is one); LOG_FORMAT=text is readable lines. Secrets never appear: the Gemini
key, the worker API key, the database password (a real role with a password on the test cluster), the Sentry key and
Files API upload URLs — across successful, failed and retried jobs, API calls with right and wrong keys, a dropped
database connection and an unreachable database."""
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.parse
import uuid

from harness import BIN, Database, Worker, check, free_port, report, wait_for, worker_env
from standins import GEMINI_KEY, fake_gemini, fake_sentry, pipeline_env

WORKER_KEY = "wk-Very-Secret-Worker-Key-42"
DB_PASSWORD = "pw-Db-Secret-%s" % uuid.uuid4().hex[:12]
SENTRY_KEY = "feedfacecafebeef0123456789abcdef"
SECRETS = [GEMINI_KEY, WORKER_KEY, DB_PASSWORD, SENTRY_KEY]
ROLE = "glint_logs_%s" % uuid.uuid4().hex[:6]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")

db = Database("logs")
workers = []
gem = fake_gemini()
sentry = fake_sentry(SENTRY_KEY)
work = tempfile.mkdtemp(prefix="glint-logs-")


def leaks(text):
    found = [s for s in SECRETS if s in text or urllib.parse.quote(s) in text]
    if re.search(r"upload_id=|AHxI1n|x-goog-upload-url", text, re.I):
        found.append("a Files API upload URL")
    return found


def check_json_lines(text, where):
    lines = [l for l in text.splitlines() if l.strip()]
    bad = []
    for l in lines:
        try:
            o = json.loads(l)
        except ValueError:
            bad.append(l)
            continue
        if not (isinstance(o, dict) and o.get("severity") in ("DEBUG", "INFO", "WARNING", "ERROR")
                and isinstance(o.get("message"), str) and TS.match(o.get("time", ""))):
            bad.append(l)
    check(lines and not bad, "%s: every line is a JSON log object (%d lines): %r" % (where, len(lines), bad[:3]))
    return [json.loads(l) for l in lines if l not in bad]


try:
    st = db.q("SELECT 1")
    db.q("CREATE ROLE %s LOGIN SUPERUSER PASSWORD '%s'" % (ROLE, DB_PASSWORD))
    url = "postgresql://%s:%s@127.0.0.1:%s/%s" % (ROLE, DB_PASSWORD, db.port, db.name)
    base = pipeline_env(gem, work, LOG_FORMAT="json", LOG_LEVEL="debug", WORKER_API_KEY=WORKER_KEY,
                        SENTRY_DSN=sentry.dsn, GEMINI_MAX_RETRIES=1)
    env = worker_env(db, **base)
    env["DATABASE_URL"] = url
    p = subprocess.run([os.path.join(BIN, "glint-worker"), "migrate"], env=env, capture_output=True, text=True, cwd="/tmp")
    check(p.returncode == 0, "migrate with the password role: %s" % p.stderr[-300:])
    check_json_lines(p.stdout + p.stderr, "migrate")
    check(not leaks(p.stdout + p.stderr), "migrate output has no secret")

    class PwDb:
        pass

    pw = PwDb()
    pw.url, pw.name = url, db.name
    w = Worker(pw, binary="glint-worker", **dict(base, DATABASE_URL=url, WORKER_API_KEY=WORKER_KEY))
    workers.append(w)
    check(w.wait_ready(), "worker ready")
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    jobs = {}
    jobs["ok"] = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://www.youtube.com/watch?v=ok000000000")
    jobs["private"] = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/private0000")
    gem.call("/_control", {"faults": ["503"], "fault_count": 1})
    jobs["retry"] = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok000000001")
    jobs["deep"] = db.one("SELECT glint_enqueue_job(%s, %s, 'deep')::text", user, "https://youtu.be/ok000000002")
    done = wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED', 'FAILED')") == 4, 60)
    check(done, "all jobs ended: %r" % db.q("SELECT video_url, status, error_code FROM analysis_jobs"))
    # the API with the right key, a wrong key, Bearer
    w.http("GET", "/worker/jobs/" + jobs["ok"], headers={"X-API-Key": WORKER_KEY})
    w.http("GET", "/worker/jobs", headers={"X-API-Key": WORKER_KEY + "x"})
    w.http("GET", "/worker/jobs?limit=5", headers={"Authorization": "Bearer " + WORKER_KEY})
    w.http("GET", "/worker/jobs/nope", headers={"X-API-Key": GEMINI_KEY})
    # the database connection drops: reconnect lines
    db.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s", ROLE)
    wait_for(lambda: "LISTEN" in w.read_log().split("terminat")[-1] or w.metric("glint_listen_reconnects_total"), 10)
    time.sleep(1.0)
    w.stop()
    log = w.read_log()
    recs = check_json_lines(log, "worker")
    check(not leaks(log), "worker log has no secret: %s" % leaks(log))
    by_job = {j: [r for r in recs if r.get("job_id") == j] for j in jobs.values()}
    check(all(by_job[j] for j in jobs.values()), "every job has log lines with its job_id")
    staged = [r for r in recs if r.get("stage")]
    check(any(r["stage"] == "metadata" and "duration_ms" in r for r in staged), "stage lines carry stage and duration_ms")
    check(any(r["severity"] == "WARNING" and r.get("job_id") == jobs["private"] and "private" in r["message"] for r in recs),
          "the failed job's line: WARNING with its job_id")
    check(any("ready" in r["message"] for r in recs), "start-up line")
    check(any(r.get("job_id") == jobs["ok"] and r["message"] == "completed" and r.get("duration_ms", 0) > 0 for r in recs),
          "the completion line carries the job's duration")
    stats = gem.call("/_control/stats")
    uploads = stats.get("requests", {}).get("upload.start", 0)
    print("deep job uploads seen by the stand-in: %d" % uploads)

    # an unreachable database (password in the URL): connection errors are logged without it
    dead_url = "postgresql://%s:%s@127.0.0.1:%d/%s?connect_timeout=1" % (ROLE, DB_PASSWORD, free_port(), db.name)
    pw2 = PwDb()
    pw2.url, pw2.name = dead_url, db.name + "_dead"
    d = Worker(pw2, binary="glint-worker", **dict(base, DATABASE_URL=dead_url))
    workers.append(d)
    time.sleep(1.5)
    d.stop()
    dlog = d.read_log()
    check_json_lines(dlog, "worker without database")
    check("connect" in dlog.lower() and not leaks(dlog), "connection errors logged without secrets: %s" % leaks(dlog))
    p = subprocess.run([os.path.join(BIN, "glint-worker"), "status", jobs["ok"]], env=dict(env, DATABASE_URL=dead_url),
                       capture_output=True, text=True, cwd="/tmp")
    check(p.returncode == 1 and not leaks(p.stderr), "status against a dead database: no secret in %r" % p.stderr)

    # text format: readable lines, same redaction
    t = Worker(pw, binary="glint-worker", **dict(base, DATABASE_URL=url, LOG_FORMAT="text"))
    workers.append(t)
    check(t.wait_ready(), "text-format worker ready")
    jid = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok000000003")
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "COMPLETED", 30)
    t.stop()
    tlog = t.read_log()
    lines = [l for l in tlog.splitlines() if l.strip()]
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z (DEBUG|INFO|WARNING|ERROR)\s+\S")
    check(lines and all(pat.match(l) for l in lines), "text lines: time, level, message: %r" %
          [l for l in lines if not pat.match(l)][:3])
    check(any(("job=%s" % jid) in l and "stage=metadata" in l for l in lines), "text lines carry job= and stage=")
    check(not leaks(tlog), "text log has no secret")
finally:
    for x in workers:
        x.stop()
    db.q("DROP ROLE IF EXISTS %s" % ROLE) if False else None
    db.close()
    admin = db.connect("postgres")
    admin.autocommit = True
    admin.cursor().execute("DROP ROLE IF EXISTS %s" % ROLE)
    admin.close()
report()
