"""Rows a buggy backend inserts straight into analysis_jobs (tests/hostile/job_rows.jsonl): each is either refused by
a constraint (exact SQLSTATE) or ended cleanly by the production worker with the exact status, error_code, attempts,
refund and balance; rows the worker must not touch stay as inserted. Throughout: the worker never crashes or loops,
nothing is left PROCESSING, and its JSON log cannot be forged through a video_url."""
import json
import os
import re
import tempfile
import time
import uuid

import psycopg2

from harness import SRC, Database, Worker, check, migrate, report, wait_for

from standins import GEMINI_KEY as KEY
from standins import fake_gemini
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
tmp = tempfile.mkdtemp(prefix="glint-rows-")
gem = fake_gemini()
gbase = gem.base
db = Database("hostile_rows")
w = None


def insert(case, user):
    """Runs the case's statements in one transaction; returns (job id, None) or (None, SQLSTATE)."""
    conn = db.connect(db.name)
    job = None
    try:
        cur = conn.cursor()
        for sql in case["sql"]:
            cur.execute(sql.replace("{USER}", "'%s'::uuid" % user))
            if job is None and cur.description:
                v = cur.fetchone()[0]
                job = v if isinstance(v, str) and UUID.match(v) else job
        conn.commit()
        return job, None
    except psycopg2.Error as e:
        conn.rollback()
        return None, e.pgcode
    finally:
        conn.close()


try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gbase,
               GEMINI_API_KEY=KEY, WORK_DIR=tmp, LEASE_SECONDS=10, YTDLP_TIMEOUT_MS=20000, LOG_FORMAT="json")
    check(w.wait_ready(), "worker ready")
    with open(os.path.join(SRC, "hostile", "job_rows.jsonl")) as f:
        cases = [json.loads(line) for line in f if line.strip()]
    runs = []
    for c in cases:
        user = str(uuid.uuid4())
        job, state = insert(c, user)
        exp = c["expect"]
        if "rejected" in exp:
            check(state == exp["rejected"], "%s: SQLSTATE %s, expected %s" % (c["case"], state, exp["rejected"]))
        else:
            check(job is not None and state is None, "%s: accepted (%s)" % (c["case"], state))
            runs.append((c, job, user))
    ended = [j for c, j, _ in runs if "status" in c["expect"]]
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status IN"
                                  " ('COMPLETED', 'FAILED')", ended) == len(ended), 90), "every accepted row ended")
    time.sleep(1.0)  # one more claim round for the rows that must stay untouched
    for c, job, user in runs:
        exp = c["expect"]
        status, code, attempts, locked = db.q("SELECT status, error_code, attempts, locked_by FROM analysis_jobs"
                                              " WHERE id = %s", job)[0]
        if "untouched" in exp:
            check((status, attempts, locked) == (exp["untouched"], 0, None), "%s: untouched: %s %s %s"
                  % (c["case"], status, attempts, locked))
            continue
        check(status == exp["status"] and attempts == exp["attempts"], "%s: %s after %d attempts, expected %s after %d"
              % (c["case"], status, attempts, exp["status"], exp["attempts"]))
        if "error_code" in exp:
            check(code == exp["error_code"], "%s: error_code %s, expected %s" % (c["case"], code, exp["error_code"]))
        if "refund" in exp:
            refunds = db.q("SELECT delta FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", job)
            check(refunds == [(exp["refund"],)], "%s: refunds %r, expected one of %d" % (c["case"], refunds, exp["refund"]))
            bal = db.one("SELECT balance FROM user_credits WHERE user_id = %s", user)
            check(bal == exp["balance"], "%s: balance %r, expected %r" % (c["case"], bal, exp["balance"]))
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") == 0, "nothing left PROCESSING")
    check(w.proc.poll() is None, "the worker is still running")
    st, body = w.json("GET", "/health", key=None)
    check(st == 200 and body["status"] == "healthy", "still healthy: %s" % body)
    lines = [l for l in w.read_log().splitlines() if l.strip() and not l.startswith("==")]
    bad = [l for l in lines if not l.startswith("{")]
    check(not bad, "every log line is one JSON object (no forged lines): %r" % bad[:2])
    check(not any('"forged"' in l and l.startswith('{"severity":"ERROR","message":"forged"') for l in lines),
          "no forged log line")
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
