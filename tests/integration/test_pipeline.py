"""Standard mode end to end: the production binary with the fake yt-dlp and the Gemini stand-in, real PostgreSQL."""
import json
import os
import tempfile
import time
import uuid

from harness import SRC, Database, Worker, check, migrate, report, wait_for
from standins import GEMINI_KEY as KEY
from standins import fake_gemini
tmp = tempfile.mkdtemp(prefix="glint-pipe-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
ytlog = os.path.join(tmp, "ytdlp.log")
gem = fake_gemini()
gbase = gem.base
control = gem.call


db = Database("pipeline")
w = None


def run_job(url, max_attempts=3, timeout=30, user=None):
    user = user or str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 10) ON CONFLICT DO NOTHING", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, url)
    db.q("UPDATE analysis_jobs SET max_attempts = %s WHERE id = %s", max_attempts, jid)
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) in ("COMPLETED", "FAILED"), timeout)
    return jid, db.q("SELECT status, error_code, attempts FROM analysis_jobs WHERE id = %s", jid)[0]


def run_job_watched(url, max_attempts, timeout=40):
    """run_job, also recording every (status, error_code) the row passes through (a retry's PENDING included)."""
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 10)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, url)
    db.q("UPDATE analysis_jobs SET max_attempts = %s WHERE id = %s", max_attempts, jid)
    seen = []

    def done():
        row = db.q("SELECT status, error_code FROM analysis_jobs WHERE id = %s", jid)[0]
        if not seen or seen[-1] != row:
            seen.append(row)
        return row[0] in ("COMPLETED", "FAILED")
    wait_for(done, timeout, interval=0.01)
    return jid, db.q("SELECT status, error_code, attempts FROM analysis_jobs WHERE id = %s", jid)[0], seen


def fetch_runs(vid):
    """The fake yt-dlp's -J runs and -f (download) runs for one video id."""
    runs = [json.loads(l)["argv"] for l in open(ytlog)]
    mine = [a for a in runs if a[-1].endswith(vid)]
    return sum("-J" in a for a in mine), sum("-f" in a for a in mine)


def refunds(jid):
    return db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", jid)


try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"),
               GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY, WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog,
               YTDLP_TIMEOUT_MS=4000, GEMINI_TIMEOUT_MS=5000, GEMINI_MAX_RETRIES=2, LEASE_SECONDS=10)
    check(w.wait_ready(), "worker ready")

    # the happy path
    jid, row = run_job("https://www.youtube.com/watch?v=ok000000000&list=PL123&t=42s")
    check(row == ("COMPLETED", None, 1), "ok -> COMPLETED: %r" % (row,))
    res, model, pt, ot, timings = db.q("SELECT result, model, prompt_tokens, output_tokens, timings FROM analysis_results"
                                       " WHERE job_id = %s", jid)[0]
    check(all(k in res for k in ("title", "summary", "keyTakeaways", "timeline", "keywords")), "result fields: %s" % res.keys())
    check("visualAudit" not in res, "no visualAudit in standard mode")
    check(len(res["timeline"]) > 0 and all(":" in e["timestamp"] for e in res["timeline"]), "timeline timestamps")
    check(model and pt and pt > 0 and ot and ot > 0, "model and token counts stored: %s %s %s" % (model, pt, ot))
    check("metadata" in timings and "analyze" in timings, "per-stage timings: %s" % timings)
    stats = control("/_control/stats")
    body = stats["generate_bodies"][-1] if stats.get("generate_bodies") else {}
    text = json.dumps(body)
    check("[00:" in text and "responseSchema" in text, "transcript markers and schema sent")
    check("temperature" not in text and "thinkingBudget" not in text, "no deprecated sampling params")
    check(not stats.get("violations"), "no protocol violations: %s" % stats.get("violations"))
    runs = [json.loads(l) for l in open(ytlog)]
    argv = runs[-1]["argv"]
    check("--" in argv and argv[argv.index("--") + 1] == "https://www.youtube.com/watch?v=ok000000000", "-- before the URL")
    check(runs[-1].get("parent") != "sh", "no shell between worker and yt-dlp: %s" % runs[-1].get("parent"))
    st, body = w.json("GET", "/worker/jobs/%s" % jid)
    check(st == 200 and body["result"]["summary"] and body["stage"] == "done", "API shows the result")

    # VTT-only and rolling auto captions, and unknown duration
    for vid in ("vtt_only000", "auto_only00", "no_duration"):
        _, row = run_job("https://youtu.be/" + vid)
        check(row[0] == "COMPLETED", "%s -> COMPLETED: %r" % (vid, row))

    # permanent yt-dlp failures: FAILED + one refund, no retry
    for vid, code in (("private0000", "private_video"), ("unavailable", "video_unavailable"), ("age00000000", "age_restricted"),
                      ("members0000", "members_only"), ("live0000000", "live_stream")):
        jid, row = run_job("https://youtu.be/" + vid)
        check(row == ("FAILED", code, 1) and refunds(jid) == 1, "%s -> %s once, refunded: %r" % (vid, code, row))

    # no captions: the audio track is extracted and analysed instead (tests/integration/test_deep.py checks the details)
    jid, row = run_job("https://youtu.be/no_subs0000")
    check(row == ("COMPLETED", None, 1), "no_subs -> COMPLETED from the audio: %r" % (row,))
    check(db.one("SELECT timings->>'transcript_source' FROM analysis_results WHERE job_id = %s", jid) == "audio", "source audio")

    # transient: bot check, hang (timeout), crash -> retried, then FAILED + one refund
    for vid, code in (("bot_check00", "bot_check"), ("hang0000000", "ytdlp_timeout")):
        jid, row = run_job("https://youtu.be/" + vid, max_attempts=2, timeout=40)
        check(row == ("FAILED", code, 2) and refunds(jid) == 1, "%s -> retried then %s: %r" % (vid, code, row))
        # the final failure says what happened, never that the job will be retried (docs/errors.md)
        msg = db.one("SELECT error_message FROM analysis_jobs WHERE id = %s", jid)
        check("retried" not in msg and msg.endswith("Gave up after 2 attempts."),
              "final message for %s: %r" % (code, msg))

    # captions offered but not written (yt-dlp chose them in requested_subtitles, the download failed, yt-dlp only
    # warned): subtitles_unavailable, transient -> retried; the last attempt falls back to the audio track
    jid, row, seen = run_job_watched("https://youtu.be/subs_fail00", max_attempts=2)
    check(("PENDING", "subtitles_unavailable") in seen, "captions not written -> retried as subtitles_unavailable: %r" % seen)
    check(row == ("COMPLETED", None, 2) and refunds(jid) == 0, "last attempt -> COMPLETED from the audio: %r" % (row,))
    check(db.one("SELECT timings->>'transcript_source' FROM analysis_results WHERE job_id = %s", jid) == "audio",
          "last attempt's source is the audio")
    check(fetch_runs("subs_fail00") == (2, 1), "two -J runs, then one audio download: %r" % (fetch_runs("subs_fail00"),))
    check("subtitles_unavailable" in w.read_log(), "the retry is logged with its code")

    # hostile URLs never reach yt-dlp
    before = len(open(ytlog).readlines())
    for url in ("--exec=id", "-o /tmp/x https://youtu.be/ok000000000", "file:///etc/passwd", "http://169.254.169.254/latest",
                "https://youtube.com.evil.com/watch?v=ok000000000", "https://www.youtube.com/playlist?list=PL123"):
        jid, row = run_job(url)
        check(row == ("FAILED", "invalid_url", 1) and refunds(jid) == 1, "%r -> invalid_url: %r" % (url, row))
    check(len(open(ytlog).readlines()) == before, "yt-dlp never ran for hostile URLs")

    # Gemini faults
    cases = [({"faults": ["429_retry"], "fault_count": 1}, "COMPLETED", None),
             ({"faults": ["503"], "fault_count": 1}, "COMPLETED", None),
             ({"faults": ["max_tokens"], "fault_count": 1}, "COMPLETED", None),
             ({"faults": ["truncated_json"], "fault_count": 1}, "COMPLETED", None),
             ({"faults": ["bad_timestamps"], "fault_count": 1}, "COMPLETED", None),
             ({"faults": ["429_day"]}, "FAILED", "gemini_quota_exhausted"),
             ({"faults": ["blocked"]}, "FAILED", "content_blocked")]
    for fault, want, code in cases:
        control("/_control/reset", {})
        control("/_control", fault)
        jid, row = run_job("https://youtu.be/ok000000000", max_attempts=1)
        check(row[0] == want and row[1] == code, "gemini %s -> %s/%s: %r" % (fault["faults"], want, code, row))
        if want == "FAILED":
            check(refunds(jid) == 1, "refunded once")
        else:
            r = db.one("SELECT result FROM analysis_results WHERE job_id = %s", jid)
            check(r and len(r["timeline"]) > 0, "valid result after %s" % fault["faults"])
    control("/_control/reset", {})

    # cancel mid-analysis aborts the Gemini transfer
    control("/_control", {"latency_ms": 20000})
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, 'https://youtu.be/ok000000000')", user)
    check(wait_for(lambda: db.one("SELECT stage FROM analysis_jobs WHERE id = %s", jid) == "analyze", 10), "analyzing")
    st, _ = w.json("POST", "/worker/jobs/%s/cancel" % jid, body=b"")
    t0 = time.time()
    check(st == 200, "cancel accepted")
    check(wait_for(lambda: w.json("GET", "/health", key=None)[1]["active_jobs"] == 0, 5), "aborted within 5 s")
    print("cancel -> aborted in %.3f s" % (time.time() - t0))
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 1, "credit refunded")
    control("/_control/reset", {})

    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "every scratch dir removed: %s" % os.listdir(work_dir))
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") == 0, "nothing stuck in PROCESSING")
    log = w.read_log()
    check(KEY not in log, "the API key never appears in the log")
    check(w.stop() == 0, "clean exit")
    w = None

    # the same with the local analyzer, which cannot listen: retried until the attempts are spent, then FAILED
    # subtitles_unavailable (not no_transcript: the captions exist) with one refund
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), ANALYZER="local",
               WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog, YTDLP_TIMEOUT_MS=4000, LEASE_SECONDS=10)
    check(w.wait_ready(), "local-analyzer worker ready")
    db.q("UPDATE analysis_jobs SET run_after = 'infinity' WHERE status = 'PENDING'")  # nothing left over runs here
    jid, row, seen = run_job_watched("https://youtu.be/subs_fail01", max_attempts=2)
    check(("PENDING", "subtitles_unavailable") in seen, "local: retried as subtitles_unavailable: %r" % seen)
    check(row == ("FAILED", "subtitles_unavailable", 2) and refunds(jid) == 1, "local: FAILED after 2 attempts: %r" % (row,))
    msg = db.one("SELECT error_message FROM analysis_jobs WHERE id = %s", jid)
    print("local analyzer, captions not written: %s" % msg)
    check(fetch_runs("subs_fail01") == (2, 0), "local: two -J runs, no download: %r" % (fetch_runs("subs_fail01"),))
    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "local: scratch dirs removed")
    check(w.stop() == 0, "local-analyzer worker: clean exit")
    w = None
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
