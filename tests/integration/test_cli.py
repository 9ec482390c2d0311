"""The operator commands: enqueue, status (human and --json), analyze (pipeline without a database), cancel, migrate,
--version (and the build identity behind it), --help and each command's --help, stray arguments refused — the
production binary against real PostgreSQL and the stand-ins."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import uuid

from harness import BIN, SRC, Database, check, report, worker_env
from standins import fake_gemini, pipeline_env

GW = os.path.join(BIN, "glint-worker")


ROOT = os.path.abspath(os.path.join(SRC, ".."))
COMMANDS = ("serve", "migrate", "enqueue", "status", "analyze", "cancel", "retry")


def run(env, *args, timeout=60):
    p = subprocess.run([GW] + list(args), env=env, capture_output=True, text=True, timeout=timeout, cwd="/tmp")
    return p.returncode, p.stdout, p.stderr


def git(cwd, *args):
    p = subprocess.run(["git", "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@example.com"] + list(args),
                       cwd=cwd, capture_output=True, text=True)
    return p.stdout.strip() if p.returncode == 0 else None


def build_id(src, out, **env):
    """cmake/build_id.cmake as the build runs it; returns the generated header (text, mtime)."""
    e = {k: v for k, v in os.environ.items() if k != "GW_COMMIT"}
    e.update(env)
    subprocess.run(["cmake", "-DSRC=" + src, "-DOUT=" + out, "-DVERSION=9.8.7", "-P", os.path.join(ROOT, "cmake", "build_id.cmake")],
                   env=e, check=True, capture_output=True)
    with open(out) as f:
        text = f.read()
    return re.search(r'#define GW_COMMIT "([^"]*)"', text).group(1), os.stat(out).st_mtime_ns


def check_build_id():
    """The commit in gw_build.h follows git: a new commit rewrites it, an unchanged tree leaves the file (and so the
    objects that include it) untouched, outside a checkout it is "unknown", and $GW_COMMIT (the image build) wins."""
    tmp = tempfile.mkdtemp(prefix="glint-buildid-")
    try:
        repo, out = os.path.join(tmp, "repo"), os.path.join(tmp, "gw_build.h")
        os.mkdir(repo)
        git(repo, "init", "-q")
        with open(os.path.join(repo, "f"), "w") as f:
            f.write("1")
        git(repo, "add", "f")
        git(repo, "commit", "-qm", "one")
        first = git(repo, "rev-parse", "--short=12", "HEAD")
        commit, mtime = build_id(repo, out)
        check(first and commit == first, "build id = HEAD: %r vs %r" % (commit, first))
        again, mtime2 = build_id(repo, out)
        check(again == first and mtime2 == mtime, "an unchanged tree leaves gw_build.h untouched")
        with open(os.path.join(repo, "f"), "w") as f:
            f.write("2")
        commit, _ = build_id(repo, out)
        check(commit == first + "-dirty", "uncommitted changes: %r" % commit)
        git(repo, "commit", "-qam", "two")
        second = git(repo, "rev-parse", "--short=12", "HEAD")
        commit, _ = build_id(repo, out)
        check(second != first and commit == second, "a new commit is picked up by the next build: %r vs %r" % (commit, second))
        plain = os.path.join(tmp, "plain")
        os.mkdir(plain)
        commit, _ = build_id(plain, out)
        check(commit == "unknown", "outside a git checkout: %r" % commit)
        commit, _ = build_id(plain, out, GW_COMMIT="0123abcdef45")
        check(commit == "0123abcdef45", "$GW_COMMIT wins: %r" % commit)
    finally:
        shutil.rmtree(tmp)


db = Database("cli")
try:
    env = worker_env(db, DATABASE_URL=db.url)  # operator commands (migrate, enqueue) run as the schema owner
    rc, out, err = run(env, "--version")
    m = re.match(r"^glint-worker \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}(-dirty)?|unknown)\)\n$", out)
    check(rc == 0 and m, "--version names version and commit: %r" % out)
    head = git(ROOT, "rev-parse", "--short=12", "HEAD") if shutil.which("git") else None
    if m and head and not os.environ.get("GW_COMMIT"):
        check(m.group(1).split("-")[0] == head, "--version's commit is the checkout's HEAD: %r vs %s" % (out, head))
    if shutil.which("git") and shutil.which("cmake"):
        check_build_id()
    else:
        print("SKIP build id script: git or cmake missing")
    rc, out, err = run(env, "--help")
    check(rc == 0 and all(c in out for c in ("enqueue URL", "status ID", "analyze URL", "migrate", "DATABASE_URL")),
          "--help lists the commands and the configuration")
    rc, out, err = run(env, "frobnicate")
    check(rc == 2 and "unknown command" in err, "unknown command -> 2: %r" % err)

    # every command's --help: its usage on stdout, exit 0, before (and without) any configuration or database
    bare = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    for cmd in COMMANDS:
        for flag in ("--help", "-h"):
            rc, out, err = run(bare, cmd, flag)
            check(rc == 0 and out.startswith("usage: glint-worker %s" % cmd) and "Exit status" in out and err == "",
                  "%s %s: rc=%d %r %r" % (cmd, flag, rc, out[:80], err))
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000000", "--mode", "deep", "--help")
    check(rc == 0 and "--user UUID" in out, "--help wins anywhere on the line: %r" % out[:80])
    rc, out, err = run(env, "migrate", "--help")
    check(rc == 0 and db.one("SELECT to_regclass('glint_migrations')") is None, "migrate --help migrates nothing")
    # stray arguments: exit 2 with one line naming the argument, nothing done
    for args, word in ((["migrate", "extra"], "extra"), (["serve", "extra"], "extra"), (["extra-cmd"], "extra-cmd"),
                       (["status", str(uuid.uuid4()), "more"], "more"), (["cancel", str(uuid.uuid4()), "more"], "more"),
                       (["enqueue", "https://youtu.be/ok000000000", "--json"], "--json"),
                       (["status", str(uuid.uuid4()), "--mode", "deep"], "--mode"), (["migrate", "--force"], "--force"),
                       (["--version", "extra"], "--version"), (["cancel"], "missing job id")):
        rc, out, err = run(env, *args)
        check(rc == 2 and out == "" and err.count("\n") == 1 and word in err, "%s -> 2: rc=%d %r" % (args, rc, err))
    check(db.one("SELECT to_regclass('glint_migrations')") is None, "migrate extra migrated nothing")

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

    # cancel: PENDING -> CANCELLED with the refund, once; a finished or unknown job is left alone
    cuser = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1)", cuser)
    rc, out, err = run(env, "enqueue", "https://youtu.be/ok000000009", "--user", cuser)
    cid = out.strip()
    check(rc == 0 and db.one("SELECT balance FROM user_credits WHERE user_id = %s", cuser) == 0, "enqueued for cancel: %r" % err)
    rc, out, err = run(env, "cancel", cid)
    check(rc == 0 and cid in out and "CANCELLED" in out, "cancel: rc=%d %r %r" % (rc, out, err))
    check(db.one("SELECT status FROM analysis_jobs WHERE id = %s", cid) == "CANCELLED"
          and db.one("SELECT balance FROM user_credits WHERE user_id = %s", cuser) == 1, "cancelled and refunded")
    rc, out, err = run(env, "cancel", cid)
    check(rc == 1 and "already CANCELLED" in err and db.one("SELECT balance FROM user_credits WHERE user_id = %s", cuser) == 1,
          "cancel twice: refunded once: %r" % err)
    rc, out, err = run(env, "cancel", str(uuid.uuid4()))
    check(rc == 1 and "no job" in err, "cancel of an unknown id: %r" % err)
    rc, out, err = run(env, "cancel", "xyz")
    check(rc == 2 and "UUID" in err, "cancel of a malformed id: %r" % err)

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
