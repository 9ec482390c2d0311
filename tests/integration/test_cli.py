"""The operator commands: enqueue, status (human and --json), analyze (pipeline without a database), migrate,
--version, --help — the production binary against real PostgreSQL and the stand-ins."""
import json
import os
import re
import subprocess
import tempfile
import uuid

from harness import BIN, Database, check, report, worker_env
from standins import fake_gemini, pipeline_env

GW = os.path.join(BIN, "glint-worker")


def run(env, *args, timeout=60):
    p = subprocess.run([GW] + list(args), env=env, capture_output=True, text=True, timeout=timeout, cwd="/tmp")
    return p.returncode, p.stdout, p.stderr


db = Database("cli")
try:
    env = worker_env(db, DATABASE_URL=db.url)  # operator commands (migrate, enqueue) run as the schema owner
    rc, out, err = run(env, "--version")
    check(rc == 0 and re.match(r"^glint-worker \d+\.\d+\.\d+\n$", out), "--version: %r" % out)
    rc, out, err = run(env, "--help")
    check(rc == 0 and all(c in out for c in ("enqueue URL", "status ID", "analyze URL", "migrate", "DATABASE_URL")),
          "--help lists the commands and the configuration")
    rc, out, err = run(env, "frobnicate")
    check(rc == 2 and "unknown command" in err, "unknown command -> 2: %r" % err)

    # migrate: applies, then is idempotent
    rc, out, err = run(env, "migrate")
    check(rc == 0, "migrate: %s" % err)
    n = db.one("SELECT count(*) FROM glint_migrations")
    rc, out, err = run(env, "migrate")
    check(rc == 0 and db.one("SELECT count(*) FROM glint_migrations") == n and n >= 4, "migrate again is a no-op")

    # enqueue: charges the user, prints the id, the job is PENDING
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 16)", user)
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000000", "--user", user)
    jid = out.strip()
    check(rc == 0 and re.match(r"^[0-9a-f-]{36}$", jid), "enqueue prints the id: %r %r" % (out, err))
    row = db.q("SELECT status, mode, user_id::text, credits_charged, video_url FROM analysis_jobs WHERE id = %s", jid)
    check(row == [("PENDING", "standard", user, 1, "https://youtu.be/ok000000000")], "job row: %r" % row)
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 15, "1 credit charged")
    rc, out, err = run(env, "enqueue", "https://www.youtube.com/watch?v=ok000000001", "--mode", "deep", "--user", user)
    deep_id = out.strip()
    check(rc == 0 and db.one("SELECT mode FROM analysis_jobs WHERE id = %s", deep_id) == "deep", "deep job enqueued")
    check(db.one("SELECT balance FROM user_credits WHERE user_id = %s", user) == 0, "15 credits charged for deep")
    # insufficient credits: clear message, nothing written
    before = db.one("SELECT count(*) FROM analysis_jobs")
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000002", "--user", user)
    check(rc == 1 and "insufficient credits" in err and user in err and out == "", "insufficient credits: %r" % err)
    check(db.one("SELECT count(*) FROM analysis_jobs") == before, "no job written when credits are short")
    rc, out, err = run(env, "enqueue", "https://example.com/video", "--user", user)
    check(rc == 2 and "invalid_url" in err, "a non-video URL is refused up front: %r" % err)
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000002", "--user", "nope")
    check(rc == 2 and "UUID" in err, "bad --user: %r" % err)
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000002", "--mode", "fast")
    check(rc == 2 and "--mode" in err, "bad --mode: %r" % err)
    rc, out, err = run(env, "enqueue")
    check(rc == 2 and "missing URL" in err, "missing URL: %r" % err)

    # status: human and JSON, for a pending and a completed job
    rc, out, err = run(env, "status", jid)
    check(rc == 0 and re.search(r"^status\s+PENDING", out, re.M) and jid in out and "youtu.be/ok000000000" in out,
          "status (human, pending): %r" % out)
    result = {"title": "T", "summary": "S sum", "keyTakeaways": ["k"], "keywords": ["w"],
              "timeline": [{"timestamp": "00:05", "description": "intro bit", "details": []}]}
    db.q("UPDATE analysis_jobs SET status = 'COMPLETED', stage = 'done', started_at = now(), finished_at = now() WHERE id = %s",
         jid)
    db.q("INSERT INTO analysis_results (job_id, result, model) VALUES (%s, %s, 'gemini-test')", jid, json.dumps(result))
    rc, out, err = run(env, "status", jid, "--json")
    j = json.loads(out) if rc == 0 else {}
    check(j.get("status") == "COMPLETED" and j.get("result") == result and j.get("model") == "gemini-test",
          "status --json: %r" % out)
    rc, out, err = run(env, "status", jid)
    check(rc == 0 and "S sum" in out and "00:05" in out and "intro bit" in out and "COMPLETED" in out,
          "status (human, completed) shows summary and timeline: %r" % out)
    db.q("UPDATE analysis_jobs SET status = 'FAILED', error_code = 'private_video', error_message = 'This video is private'"
         " WHERE id = %s", deep_id)
    rc, out, err = run(env, "status", deep_id)
    check(rc == 0 and "private_video: This video is private" in out, "status shows the error: %r" % out)
    rc, out, err = run(env, "status", str(uuid.uuid4()))
    check(rc == 1 and "no job" in err, "status of an unknown id: %r" % err)
    rc, out, err = run(env, "status", "xyz")
    check(rc == 2 and "UUID" in err, "status of a malformed id: %r" % err)
    bad = dict(env, DATABASE_URL="postgresql:///nope?host=/nonexistent&connect_timeout=2")
    rc, out, err = run(bad, "status", jid)
    check(rc == 1 and "cannot connect" in err, "status without a database: %r" % err)

    # analyze: the production pipeline, no database at all (DATABASE_URL unset), stand-ins for yt-dlp and Gemini
    gem = fake_gemini()
    work = tempfile.mkdtemp(prefix="glint-cli-")
    aenv = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    aenv.update({k: str(v) for k, v in pipeline_env(gem, work).items()})
    rc, out, err = run(aenv, "analyze", "https://www.youtube.com/watch?v=ok000000000")
    res = json.loads(out) if rc == 0 else {}
    check(rc == 0 and res.get("title") and res.get("summary") and res.get("timeline") and "visualAudit" not in res,
          "analyze prints the result JSON: rc=%d %r" % (rc, err[-500:]))
    check(gem.call("/_control/stats").get("generate_bodies"), "analyze called the Gemini stand-in")
    check(os.listdir(work) == [], "analyze cleaned its scratch directory: %r" % os.listdir(work))
    rc, out, err = run(aenv, "analyze", "--mode", "deep", "https://www.youtube.com/watch?v=ok000000001")
    res = json.loads(out) if rc == 0 else {}
    check(rc == 0 and res.get("visualAudit") is not None and res.get("timeline"),
          "analyze --mode deep uploads without a database and prints the visual audit: rc=%d %r" % (rc, err[-500:]))
    check(gem.call("/_control/stats")["requests"].get("upload.start", 0) >= 1 and gem.call("/_control/files")["files"] == [],
          "analyze deleted its remote file: %r" % gem.call("/_control/files"))
    check(os.listdir(work) == [], "deep analyze cleaned its scratch directory: %r" % os.listdir(work))
    rc, out, err = run(aenv, "analyze", "https://www.youtube.com/watch?v=private0000")
    check(rc == 1 and out == "" and "private_video" in err, "analyze of a private video fails clearly: %r" % err[-300:])
    gem.call("/_control", {"faults": ["500"], "fault_count": 100})
    rc, out, err = run(aenv, "analyze", "https://www.youtube.com/watch?v=ok000000003")
    check(rc == 1 and out == "" and "glint-worker analyze:" in err, "analyze when Gemini keeps failing: %r" % err[-300:])
    gem.call("/_control/reset", {})
finally:
    db.close()
report()
