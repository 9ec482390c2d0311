"""Result reuse and output language (docs/reuse-and-language.md): the production binary with the fake yt-dlp and the
Gemini stand-in, real PostgreSQL. Counts yt-dlp runs (the fake's log) and generateContent calls (the stand-in's stats)."""
import json
import os
import subprocess
import tempfile
import time
import uuid

import psycopg2

from harness import BIN, SRC, Database, Worker, check, migrate, report, wait_for, worker_env
from standins import GEMINI_KEY as KEY
from standins import fake_gemini

tmp = tempfile.mkdtemp(prefix="glint-reuse-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
ytlog = os.path.join(tmp, "ytdlp.log")
open(ytlog, "w").close()
gem = fake_gemini()
db = Database("reuse")
w = None
FINAL = ("COMPLETED", "FAILED", "CANCELLED")


def fetch_runs(vid):
    """The fake yt-dlp's metadata (-J) runs for one video id."""
    return sum(1 for l in open(ytlog) if "-J" in json.loads(l)["argv"] and json.loads(l)["argv"][-1].endswith(vid))


def gemini_calls():
    return gem.call("/_control/stats")["requests"].get("generateContent", 0)


def user_with(balance):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, %s)", user, balance)
    return user


def enqueue(url, user, language=None):
    if language is None:
        return db.one("SELECT glint_enqueue_job(%s, %s)", user, url)  # the old signature, as existing backends call it
    return db.one("SELECT glint_enqueue_job(%s, %s, p_language => %s)", user, url, language)


def wait_final(ids, timeout=30):
    ok = wait_for(lambda: all(db.one("SELECT status FROM analysis_jobs WHERE id = %s", i) in FINAL for i in ids), timeout)
    return ok, [db.q("SELECT status, error_code FROM analysis_jobs WHERE id = %s", i)[0] for i in ids]


def result_row(jid):
    rows = db.q("SELECT result, reused_from, prompt_tokens, output_tokens, thoughts_tokens FROM analysis_results"
                " WHERE job_id = %s", jid)
    return rows[0] if rows else None


def ledger(jid):
    return [tuple(r) for r in db.q("SELECT reason, delta FROM credit_ledger WHERE job_id = %s ORDER BY id", jid)]


def system_text(body):
    return " ".join(p.get("text", "") for p in body.get("systemInstruction", {}).get("parts", []))


try:
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gem.base,
               GEMINI_API_KEY=KEY, WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog, YTDLP_TIMEOUT_MS=4000, GEMINI_TIMEOUT_MS=5000,
               GEMINI_MAX_RETRIES=2, LEASE_SECONDS=10, RESULT_REUSE_TTL_HOURS=168)
    check(w.wait_ready(), "worker ready")

    # ---- two URL forms of one YouTube video share one analysis ----
    user = user_with(20)
    g0 = gemini_calls()
    first = enqueue("https://www.youtube.com/watch?v=okreuse0001&list=PL123&t=42s", user)
    ok, rows = wait_final([first])
    check(rows == [("COMPLETED", None)], "the first job analyses: %r" % rows)
    check(fetch_runs("okreuse0001") == 1 and gemini_calls() == g0 + 1, "one yt-dlp run, one Gemini call")
    src = result_row(first)
    check(src is not None and src[1] is None and src[2] and src[2] > 0, "an analysis that ran: reused_from NULL, tokens")
    saved = sum(v or 0 for v in src[2:5])

    second = enqueue("https://youtu.be/okreuse0001?si=abcdef", user)
    ok, rows = wait_final([second], timeout=10)
    check(rows == [("COMPLETED", None)], "the second form completes: %r" % rows)
    check(fetch_runs("okreuse0001") == 1, "no yt-dlp run for the copy: %d" % fetch_runs("okreuse0001"))
    check(gemini_calls() == g0 + 1, "no Gemini call for the copy: %d" % (gemini_calls() - g0))
    copy = result_row(second)
    check(copy is not None and copy[0] == src[0] and str(copy[1]) == str(first), "same result, reused_from the first job")
    check(copy is not None and copy[2] is None, "the copy spent no tokens")
    ms = db.one("SELECT extract(epoch FROM finished_at - created_at) * 1000 FROM analysis_jobs WHERE id = %s", second)
    print("insert -> COMPLETED for a reused job: %.1f ms" % ms, flush=True)
    check(ms < 1000, "a reused job completes at once: %.1f ms" % ms)
    check(db.one("SELECT stage FROM analysis_jobs WHERE id = %s", second) == "reused", "stage says reused")
    check(ledger(second) == [("charge", -1)], "credits charged as usual, nothing refunded: %r" % ledger(second))
    check(w.metric("glint_result_reuse_total") == 1, "glint_result_reuse_total counts it")
    check(w.metric("glint_result_reuse_tokens_saved_total") == saved,
          "tokens saved = the source's tokens: %s vs %s" % (w.metric("glint_result_reuse_tokens_saved_total"), saved))
    st, body = w.json("GET", "/worker/jobs/%s" % second)
    check(st == 200 and body.get("reused_from") == str(first) and body["result"] == src[0], "the API shows reused_from")

    # a copy is never the source of another copy: the third one points at the analysis that ran too
    third = enqueue("https://m.youtube.com/shorts/okreuse0001", user)
    wait_final([third], timeout=10)
    check(str(result_row(third)[1]) == str(first), "reused_from is the job that ran, not a copy")

    # ---- three simultaneous jobs for one new video: one yt-dlp run, one Gemini call ----
    gem.call("/_control", {"latency_ms": 700})
    g0 = gemini_calls()
    with psycopg2.connect(db.url) as conn, conn.cursor() as cur:  # one transaction: the three appear at once
        ids = []
        for url in ("https://www.youtube.com/watch?v=okthree0001", "https://youtu.be/okthree0001",
                    "https://music.youtube.com/watch?v=okthree0001&feature=share"):
            cur.execute("SELECT glint_enqueue_job(%s, %s)", (user, url))
            ids.append(cur.fetchone()[0])
    ok, rows = wait_final(ids, timeout=30)
    check(rows == [("COMPLETED", None)] * 3, "all three complete: %r" % rows)
    check(gemini_calls() == g0 + 1, "three simultaneous jobs, one Gemini call: %d" % (gemini_calls() - g0))
    check(fetch_runs("okthree0001") == 1, "and one yt-dlp run: %d" % fetch_runs("okthree0001"))
    origins = [result_row(i)[1] for i in ids]
    check(origins.count(None) == 1, "exactly one analysis ran: %r" % origins)
    leader = ids[origins.index(None)]
    check(all(o is None or str(o) == str(leader) for o in origins), "the others copied it")
    check(db.one("SELECT max(attempts) FROM analysis_jobs WHERE id = ANY(%s::uuid[])", ids) == 1,
          "waiting did not use up attempts")

    # ---- the leader fails: the next one runs ----
    gem.call("/_control", {"faults": ["blocked"], "fault_count": 1, "latency_ms": 700})
    g0 = gemini_calls()
    with psycopg2.connect(db.url) as conn, conn.cursor() as cur:
        ids = []
        for url in ("https://www.youtube.com/watch?v=okfail00001", "https://youtu.be/okfail00001"):
            cur.execute("SELECT glint_enqueue_job(%s, %s)", (user, url))
            ids.append(cur.fetchone()[0])
    ok, rows = wait_final(ids, timeout=30)
    check(sorted(rows) == [("COMPLETED", None), ("FAILED", "content_blocked")], "leader fails, follower runs: %r" % rows)
    failed = ids[[r[0] for r in rows].index("FAILED")]
    done = ids[[r[0] for r in rows].index("COMPLETED")]
    check(result_row(done)[1] is None and gemini_calls() == g0 + 2, "the follower analysed it itself")
    check(ledger(failed) == [("charge", -1), ("refund", 1)], "the failed leader is refunded: %r" % ledger(failed))
    bodies = gem.call("/_control/stats")["generate_bodies"]
    check(bodies and "language of the transcript" in system_text(bodies[-1]) and "German" not in system_text(bodies[-1]),
          "a job without a language keeps the transcript's language")
    gem.call("/_control/reset", {})

    # ---- a `de` job is its own analysis, and its prompt asks for German ----
    g0 = gemini_calls()
    de = enqueue("https://www.youtube.com/watch?v=okreuse0001", user, language="de")
    ok, rows = wait_final([de])
    check(rows == [("COMPLETED", None)], "the de job completes: %r" % rows)
    check(result_row(de)[1] is None and gemini_calls() == g0 + 1 and fetch_runs("okreuse0001") == 2,
          "de is not the undetermined analysis: it ran (yt-dlp and Gemini)")
    bodies = gem.call("/_control/stats")["generate_bodies"]
    text = system_text(bodies[-1]) if bodies else ""
    check("German" in text and '"de"' in text, "the prompt asks for German: %s" % text[:400])
    check(db.one("SELECT language FROM analysis_jobs WHERE id = %s", de) == "de", "language stored")
    de2 = enqueue("https://youtu.be/okreuse0001", user, language="DE")
    wait_final([de2], timeout=10)
    check(str(result_row(de2)[1]) == str(de) and gemini_calls() == g0 + 1, "a second de job (any case) copies the de one")
    st, body = w.json("GET", "/worker/jobs/%s" % de2)
    check(st == 200 and body.get("language") == "DE", "the API shows the language")

    # ---- freshness: an analysis older than RESULT_REUSE_TTL_HOURS (168) is not copied ----
    db.q("UPDATE analysis_jobs SET finished_at = now() - interval '169 hours' WHERE analysis_key LIKE 'youtube:okreuse0001|%%'"
         " AND analysis_key NOT LIKE '%%|de'")
    g0 = gemini_calls()
    stale = enqueue("https://youtu.be/okreuse0001", user)
    wait_final([stale])
    check(result_row(stale)[1] is None and gemini_calls() == g0 + 1, "a stale analysis runs again")

    # ---- the language is validated; the CLI passes --language ----
    for bad in ("german!", "d", "de_DE", "x" * 40, "de--x"):
        try:
            enqueue("https://youtu.be/okreuse0001", user, language=bad)
            check(False, "invalid language %r accepted" % bad)
        except psycopg2.Error as e:
            db.conn.rollback()
            check("invalid_language" in str(e), "invalid language %r refused: %s" % (bad, str(e).splitlines()[0]))
    try:
        db.q("INSERT INTO analysis_jobs (user_id, video_url, language) VALUES (%s, 'https://youtu.be/okreuse0001', 'no way')",
             user)
        check(False, "a direct INSERT with a bad language accepted")
    except psycopg2.Error as e:
        db.conn.rollback()
        check("analysis_jobs_language_check" in str(e), "a direct INSERT is checked too")
    env = worker_env(db, DATABASE_URL=db.url)
    out = subprocess.run([os.path.join(BIN, "glint-worker"), "enqueue", "https://youtu.be/okreuse0001", "--user", user,
                          "--language", "pt-BR"], env=env, capture_output=True, text=True, cwd="/tmp")
    jid = out.stdout.strip()
    check(out.returncode == 0 and db.one("SELECT language FROM analysis_jobs WHERE id = %s", jid) == "pt-BR",
          "glint-worker enqueue --language: %s %s" % (out.stdout, out.stderr))
    wait_final([jid])
    bodies = gem.call("/_control/stats")["generate_bodies"]
    check(bodies and "Portuguese" in system_text(bodies[-1]) and "pt-BR" in system_text(bodies[-1]),
          "pt-BR asks for Portuguese")
    out = subprocess.run([os.path.join(BIN, "glint-worker"), "enqueue", "https://youtu.be/okreuse0001", "--user", user,
                          "--language", "not a tag"], env=env, capture_output=True, text=True, cwd="/tmp")
    check(out.returncode != 0 and "invalid_language" in out.stderr, "the CLI reports a bad tag: %s" % out.stderr.strip())

    # ---- the local analyzer cannot translate: it says so, and the job completes in the transcript's language ----
    w.stop()
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), ANALYZER="local",
               WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog, YTDLP_TIMEOUT_MS=4000, LEASE_SECONDS=10, RESULT_REUSE_TTL_HOURS=168)
    check(w.wait_ready(), "local worker ready")
    fr = enqueue("https://youtu.be/okreuse0001", user, language="fr")
    ok, rows = wait_final([fr])
    timings = db.one("SELECT timings FROM analysis_results WHERE job_id = %s", fr) or {}
    note = timings.get("language") or {}
    check(rows == [("COMPLETED", None)] and note.get("requested") == "fr" and note.get("applied") is False
          and "cannot translate" in note.get("note", ""), "local analyzer: completed with a note: %r %r" % (rows, note))
finally:
    if w is not None:
        w.stop()
    db.close()
report()
