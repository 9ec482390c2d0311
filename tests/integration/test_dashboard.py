"""The dashboard end to end in headless Chromium (Debian's /usr/bin/chromium driven by playwright-core from npm)
against a running worker on real PostgreSQL: health, job list and filter, a completed job's page (timeline links to the
video at each timestamp, data rendered as text, its stage waterfall drawn from the stored timings), the last hour's charts
(jobs finished per minute by outcome, queue depth: GET /worker/history drawn as SVG, matching what the worker really
ran), cancelling a pending job through the UI and retrying it. Screenshots go to <build>/tests/output/ (docs/img/ holds
a copy)."""
import json
import os
import subprocess
import uuid

from harness import API_KEY, BIN, SRC, Database, Worker, check, insert_jobs, migrate, report, wait_for

BROWSER_DIR = os.path.join(SRC, "browser")
OUT = os.path.join(BIN, "tests", "output")
XSS = '<img src=x onerror="window.__xss=true"><script>window.__xss=true</script>'
VIDEO = "https://www.youtube.com/watch?v=dQw4w9WgXcQ"


def ensure_playwright():
    if os.path.isdir(os.path.join(BROWSER_DIR, "node_modules", "playwright-core")):
        return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, check=True, timeout=240)


os.makedirs(OUT, exist_ok=True)
ensure_playwright()
db = Database("dashboard")
w = None
try:
    migrate(db)
    # the jobs exist before the worker starts, so it never claims them (the UI is what acts on them)
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    done = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, VIDEO)
    result = {"title": "Rick's talk", "summary": "Summary with " + XSS, "keyTakeaways": ["first point", "second point"],
              "timeline": [{"timestamp": "00:00", "description": "Opening", "details": ["a detail"]},
                           {"timestamp": "01:30", "description": "Middle", "details": []},
                           {"timestamp": "1:02:03", "description": "End", "details": []}],
              "keywords": ["alpha", "beta"],
              "visualAudit": [{"timestamp": "01:30", "detail": "revenue chart", "type": "Chart"}]}
    db.q("UPDATE analysis_jobs SET status = 'COMPLETED', stage = 'done', attempts = 1, started_at = created_at + interval"
         " '2 seconds', finished_at = created_at + interval '14 seconds', run_after = now(), mode = 'deep' WHERE id = %s", done)
    # what the job machine stores (handlers/job.c): seconds per stage, the total, and non-numeric extras
    timings = {"metadata": 1.4, "download": 3.2, "upload": 1.1, "file_processing": 2.3, "analyze": 5.6, "total": 14.0,
               "chunks": 1, "video_source": "upload", "transcript_source": "captions"}
    db.q("INSERT INTO analysis_results (job_id, result, model, timings) VALUES (%s, %s, 'gemini-test', %s)", done,
         json.dumps(result), json.dumps(timings))
    # pending and not yet due: the worker leaves it alone, so the UI can cancel it
    pending = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok000000000")
    db.q("UPDATE analysis_jobs SET run_after = now() + interval '1 hour' WHERE id = %s", pending)
    w = Worker(db)
    check(w.wait_ready(), "worker ready")
    # jobs the worker really runs (the test pipeline): the charts of the last hour must show exactly these
    ran = insert_jobs(db, ["test://noop"] * 3 + ["test://fail/permanent"], user=user)
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status IN"
                                  " ('COMPLETED', 'FAILED')", [str(i) for i in ran]) == 4, 20), "the worker ran 4 jobs")
    st, _ = w.json("GET", "/worker/history", key=None)
    check(st == 401, "history needs the API key: %s" % st)

    def history():
        st, h = w.json("GET", "/worker/history")
        mins = h.get("minutes", []) if st == 200 else []
        done_ = sum(m["completed"] for m in mins) == 3 and sum(m["failed"] for m in mins) == 1
        return h if done_ and any(m["queue_depth"] is not None for m in mins) else None
    hist = wait_for(history, 15)  # the queue depth is sampled every 5 s
    check(hist and len(hist["minutes"]) == 60, "history: 60 minutes with 3 completed, 1 failed, a queue sample: %s" % (
        hist and [m for m in hist["minutes"] if m["completed"] or m["failed"] or m["queue_depth"] is not None]))

    env = dict(os.environ, BASE="http://127.0.0.1:%d" % w.port, KEY=API_KEY, DONE_ID=done, PENDING_ID=pending,
               VIDEO_URL=VIDEO, XSS=XSS, OUT=OUT, HIST_COMPLETED="3", HIST_FAILED="1", TIMINGS=json.dumps(timings))
    p = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs")], env=env, capture_output=True, text=True,
                       timeout=180, cwd=BROWSER_DIR)
    lines = [l for l in p.stdout.splitlines() if l.startswith('{"checks"')]
    check(p.returncode == 0 and lines, "browser script ran: rc=%d %s" % (p.returncode, p.stderr[-2000:]))
    for ok, what in (json.loads(lines[-1])["checks"] if lines else []):
        check(ok, "browser: " + what)
    # cancelled, refunded, then retried from the UI: charged again (the worker may have run it since)
    reasons = [r[0] for r in db.q("SELECT reason FROM credit_ledger WHERE job_id = %s ORDER BY id", pending)]
    check(reasons[:3] == ["charge", "refund", "charge"], "the UI cancelled (refund) and retried (charge) the job: %s" % reasons)
    check(db.one("SELECT status FROM analysis_jobs WHERE id = %s", pending) != "CANCELLED", "no longer CANCELLED")
    for name in ("dashboard-list.png", "dashboard-job.png", "dashboard-cancelled.png", "docs-list.png", "docs-job.png"):
        path = os.path.join(OUT, name)
        check(os.path.exists(path) and os.path.getsize(path) > 5000, "screenshot %s saved" % path)
    for name in ("docs-list.png", "docs-job.png"):  # the copies in docs/img/ must stay small
        path = os.path.join(OUT, name)
        check(os.path.exists(path) and os.path.getsize(path) <= 150 * 1024, "%s is at most 150 KB" % path)
finally:
    if w:
        w.stop()
    db.close()
report()
