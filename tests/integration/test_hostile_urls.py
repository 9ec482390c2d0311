"""The hostile video_url corpus end to end: the production binary, real PostgreSQL, tests/standins/fake-yt-dlp logging
every run. Refused URLs end FAILED with the exact error_code after one attempt, refunded once, and yt-dlp never starts;
accepted ones reach yt-dlp as their canonical form, after "--"."""
import json
import os
import tempfile
import uuid

from harness import SRC, Database, Worker, check, migrate, report, wait_for
from hostile import video_urls

from standins import GEMINI_KEY as KEY
from standins import fake_gemini
tmp = tempfile.mkdtemp(prefix="glint-hostile-")
ytlog = os.path.join(tmp, "ytdlp.log")
gem = fake_gemini()
gbase = gem.base

# PostgreSQL text holds no NUL; per-case allow-lists are unit-level only
rows = [r for r in video_urls() if r[2] == "-" and b"\x00" not in r[3]]
refused = [r for r in rows if "://" not in r[1]]
accepted = [r for r in rows if "://" in r[1]]
db = Database("hostile_urls")
w = None


def enqueue(user, raw):
    return db.one("SELECT glint_enqueue_job(%s, %s)", user, raw.decode("utf-8"))


def ytdlp_runs():
    if not os.path.exists(ytlog):
        return []
    with open(ytlog) as f:
        return [json.loads(line) for line in f if line.strip()]


try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gbase,
               GEMINI_API_KEY=KEY, WORK_DIR=tmp, FAKE_YTDLP_LOG=ytlog, LEASE_SECONDS=10, YTDLP_TIMEOUT_MS=20000)
    check(w.wait_ready(), "worker ready")
    check(len(refused) > 100 and len(accepted) > 15, "corpus: %d refused, %d accepted" % (len(refused), len(accepted)))

    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, %s)", user, len(rows))
    jobs = [(enqueue(user, raw), line, code) for line, code, _, raw in refused]
    ids = [j for j, _, _ in jobs]
    done = wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status IN"
                                   " ('FAILED', 'COMPLETED')", ids) == len(ids), 60)
    check(done, "every refused URL's job finished")
    for jid, line, code in jobs:
        row = db.q("SELECT status, error_code, attempts, (SELECT count(*) FROM credit_ledger l WHERE l.job_id = j.id AND"
                   " l.reason = 'refund' AND l.delta = 1) FROM analysis_jobs j WHERE id = %s", jid)[0]
        check(row == ("FAILED", code, 1, 1), "video_urls.tsv:%d: %r, expected FAILED %s after 1 attempt, refunded"
              % (line, row, code))
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == len(rows), "every refused job refunded")
    check(ytdlp_runs() == [], "yt-dlp never started for a refused URL: %r" % ytdlp_runs()[:3])
    check(db.one("SELECT max(length(error_message)) FROM analysis_jobs WHERE id = ANY(%s::uuid[])", ids) < 200,
          "error messages are short and never echo the URL")
    st, body = w.json("GET", "/worker/jobs/%s" % ids[0])
    check(st == 200 and body["status"] == "FAILED" and body["error"]["code"] == "invalid_url", "API shows the error")

    jobs = [(enqueue(user, raw), line, canon) for line, canon, _, raw in accepted]
    ids = [j for j, _, _ in jobs]
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status ="
                                  " 'COMPLETED'", ids) == len(ids), 120), "accepted URLs complete")
    urls = sorted(r["argv"][r["argv"].index("--") + 1] for r in ytdlp_runs() if "--" in r["argv"])
    check(urls == sorted(c for _, _, c in jobs), "yt-dlp got exactly the canonical URLs: %r" % urls)
    check(all(r["argv"][-2] == "--" for r in ytdlp_runs()), "the URL is the last argument, right after --")
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
