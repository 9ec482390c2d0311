"""YouTube from a datacenter (docs/youtube-datacenter.md), with the production binary, the fake yt-dlp switched by a
control file, the Gemini stand-in and real PostgreSQL:
  - YTDLP_COOKIES_FILE reaches yt-dlp as a private 0600 copy per run; the read-only original is never written;
  - YTDLP_PROXY reaches it, the list used in turn, its password never logged;
  - the bot-check breaker: 10 bot-checked jobs start yt-dlp only a few times, none FAILED, none burns its attempts,
    all complete once YouTube answers again; /metrics and /health show the breaker;
  - BOT_CHECK_FALLBACK=gemini_url: a bot-checked standard job completes from the YouTube URL;
  - Gemini refusing the key (401) during a job: the job goes back PENDING (attempt not counted), claiming pauses."""
import hashlib
import json
import os
import stat
import tempfile
import time
import uuid

from harness import SRC, Database, Worker, check, migrate, report, wait_for
from standins import GEMINI_KEY as KEY
from standins import fake_gemini

tmp = tempfile.mkdtemp(prefix="glint-yt-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
ytlog = os.path.join(tmp, "ytdlp.log")
ctl = os.path.join(tmp, "youtube-says")  # the fake yt-dlp's scenario for every run while it holds one
cookies = os.path.join(tmp, "cookies.txt")
COOKIE_VALUE = "SIDCC-secret-cookie-value-4242"
PROXY_PW = "pr0xy-Pa55word"
PROXIES = ["http://scraper:%s@127.0.0.1:3128" % PROXY_PW, "socks5://127.0.0.2:1080"]
with open(cookies, "w") as f:
    f.write("# Netscape HTTP Cookie File\n"
            ".youtube.com\tTRUE\t/\tTRUE\t1900000000\tSIDCC\t%s\n" % COOKIE_VALUE)
os.chmod(cookies, 0o444)  # a mounted secret is read-only
orig_bytes = open(cookies, "rb").read()
orig_mtime = os.stat(cookies).st_mtime_ns
gem = fake_gemini()
db = Database("youtube")
w = None


def say(scenario):
    with open(ctl, "w") as f:
        f.write(scenario)


def runs():
    if not os.path.exists(ytlog):
        return []
    return [json.loads(line) for line in open(ytlog)]


def enqueue(vid, user=None):
    user = user or str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100) ON CONFLICT DO NOTHING", user)
    return db.one("SELECT glint_enqueue_job(%s, %s)", user, "https://www.youtube.com/watch?v=" + vid)


def status(jid):
    return db.q("SELECT status, error_code, attempts FROM analysis_jobs WHERE id = %s", jid)[0]


def start(**extra):
    env = dict(YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gem.base, GEMINI_API_KEY=KEY,
               WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog, FAKE_YTDLP_CONTROL=ctl, YTDLP_TIMEOUT_MS=5000,
               GEMINI_TIMEOUT_MS=5000, GEMINI_MAX_RETRIES=1, LEASE_SECONDS=10, POLL_INTERVAL_MS=500,
               YTDLP_COOKIES_FILE=cookies, YTDLP_PROXY=",".join(PROXIES), LOG_LEVEL="debug")
    env.update(extra)
    worker = Worker(db, binary="glint-worker", **env)
    check(worker.wait_ready(), "worker ready")
    return worker


try:
    migrate(db)
    say("")
    w = start(BOT_CHECK_THRESHOLD=3, BOT_CHECK_WINDOW_MS=60000, BOT_CHECK_COOLDOWN_MS=1500,
              BOT_CHECK_COOLDOWN_MAX_MS=3000, MAX_CONCURRENT_JOBS=3)

    # --- cookies and proxies ---
    a, b = enqueue("ok0000000a1"), enqueue("ok0000000a2")
    wait_for(lambda: status(a)[0] == "COMPLETED" and status(b)[0] == "COMPLETED", 30)
    check(status(a)[0] == "COMPLETED" and status(b)[0] == "COMPLETED", "jobs with cookies and proxy complete")
    mine = [r for r in runs() if r["argv"][-1].endswith(("ok0000000a1", "ok0000000a2"))]
    check(len(mine) == 2, "one yt-dlp run per job: %d" % len(mine))
    for r in mine:
        argv = r["argv"]
        check("--cookies" in argv and argv.index("--cookies") < argv.index("--"), "--cookies before --: %s" % argv)
        copy = argv[argv.index("--cookies") + 1]
        check(copy != cookies and copy.startswith(work_dir + "/glint-"), "a per-run copy in the scratch dir: %s" % copy)
        check(r.get("cookies", {}).get("mode") == "600", "the copy is 0600: %s" % r.get("cookies"))
        check(r.get("cookies", {}).get("sha256") == hashlib.sha256(orig_bytes).hexdigest(), "the copy has the same bytes")
        check(not os.path.exists(copy), "the copy is removed with the scratch dir: %s" % copy)
        check("--proxy" in argv and argv.index("--proxy") < argv.index("--"), "--proxy before --")
    used = sorted(r["argv"][r["argv"].index("--proxy") + 1] for r in mine)
    check(used == sorted(PROXIES), "the proxy list is used in turn: %s" % used)
    check(open(cookies, "rb").read() == orig_bytes and os.stat(cookies).st_mtime_ns == orig_mtime,
          "the configured cookie file was never written")
    check(stat.S_IMODE(os.stat(cookies).st_mode) == 0o444, "the configured cookie file keeps its mode")

    # --- the breaker: YouTube answers every run with the bot check ---
    say("bot_check")
    before = len(runs())
    jobs = [enqueue("ok00000b%03d" % i) for i in range(10)]
    failed, attempts_max, saw_open, health_state, ready_state = set(), 0, False, None, None
    deadline = time.time() + 8
    while time.time() < deadline:
        for j in jobs:
            st, code, att = status(j)
            if st == "PENDING":  # a claim counts the attempt until the outcome (a deferral takes it back)
                attempts_max = max(attempts_max, att)
            if st == "FAILED":
                failed.add(j)
        if w.metric("glint_ytdlp_breaker_open") == 1:
            saw_open = True
            _, h = w.json("GET", "/health")
            health_state = h.get("ytdlp_breaker", {}).get("state")
            _, rz = w.json("GET", "/readyz")
            ready_state = rz.get("checks", {}).get("ytdlp_breaker", {}).get("state")
        time.sleep(0.2)
    bot_runs = len(runs()) - before
    check(saw_open, "glint_ytdlp_breaker_open is 1 while the breaker is open")
    check(health_state in ("open", "half_open"), "/health shows the breaker: %s" % health_state)
    check(ready_state in ("open", "half_open"), "/readyz shows the breaker: %s" % ready_state)
    check(not failed, "no job FAILED while the breaker is open: %d" % len(failed))
    # first burst (MAX_CONCURRENT_JOBS runs, the third bot check opens the breaker, a retry or two) + ~1 probe per cool-down
    check(bot_runs <= 10, "10 bot-checked jobs started yt-dlp only %d times in 8 s" % bot_runs)
    check(attempts_max <= 1, "no job burnt more than the attempt before the breaker opened: %d" % attempts_max)
    check(w.metric("glint_ytdlp_bot_checks_total") >= 3, "bot checks counted: %s" % w.metric("glint_ytdlp_bot_checks_total"))
    check(w.metric("glint_jobs_deferred_total") >= 1, "jobs deferred, not failed")
    waiting = db.q("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'PENDING'"
                   " AND error_code = 'bot_check'", [str(j) for j in jobs])[0][0]
    check(waiting >= 1, "jobs wait PENDING with error_code bot_check: %d" % waiting)
    log = w.read_log()
    check(log.count("bot-check breaker open:") == 1, "one ERROR line (one Sentry event) per opening")

    # YouTube lets the worker through again: the probe closes the breaker and every job completes
    say("")
    wait_for(lambda: all(status(j)[0] in ("COMPLETED", "FAILED") for j in jobs), 60)
    states = [status(j) for j in jobs]
    check(all(s[0] == "COMPLETED" for s in states), "all 10 complete once yt-dlp recovers: %s" % states)
    check(max(s[2] for s in states) <= 2, "attempts stay low: %s" % [s[2] for s in states])
    check(w.metric("glint_ytdlp_breaker_open") == 0, "the breaker closed")
    refunded = db.one("SELECT count(*) FROM credit_ledger WHERE job_id = ANY(%s::uuid[]) AND reason = 'refund'",
                      [str(j) for j in jobs])
    check(refunded == 0, "nothing refunded: nothing failed")
    log = w.read_log()
    check(PROXY_PW not in log and COOKIE_VALUE not in log, "no proxy password, no cookie in the log")
    w.stop()
    w = None

    # --- the fallback: a bot-checked standard job is analysed from the YouTube URL ---
    say("bot_check")
    gem.call("/_control/reset", {})
    w = start(BOT_CHECK_FALLBACK="gemini_url")
    fb = enqueue("ok0000000c1")
    wait_for(lambda: status(fb)[0] in ("COMPLETED", "FAILED"), 30)
    check(status(fb) == ("COMPLETED", None, 1), "fallback job completes: %r" % (status(fb),))
    res, timings = db.q("SELECT result, timings FROM analysis_results WHERE job_id = %s", fb)[0]
    check(timings.get("transcript_source") == "video", "transcript_source video: %s" % timings)
    check(len(res.get("timeline", [])) > 0, "a timeline from the video")
    stats = gem.call("/_control/stats")
    bodies = [bd for bd in stats["generate_bodies"]
              if any("fileData" in p for c in bd.get("contents", []) for p in c.get("parts", []))]
    check(len(bodies) == 1, "one generateContent with a fileData part: %d" % len(bodies))
    if bodies:
        fd = [p["fileData"] for c in bodies[0]["contents"] for p in c["parts"] if "fileData" in p][0]
        check(fd["fileUri"] == "https://www.youtube.com/watch?v=ok0000000c1", "fileUri is the YouTube URL: %s" % fd)
        check(bodies[0]["generationConfig"].get("mediaResolution") == "MEDIA_RESOLUTION_LOW", "low media resolution")
    check(not stats["violations"], "no protocol violations: %s" % stats["violations"])
    charged = db.one("SELECT coalesce(-sum(delta), 0) FROM credit_ledger WHERE job_id = %s", fb)
    check(charged == db.one("SELECT credits_charged FROM analysis_jobs WHERE id = %s", fb) and charged > 0,
          "charged as a standard job, nothing refunded: %s" % charged)
    w.stop()
    w = None

    # --- Gemini refuses the key during a job: back to PENDING, attempt not counted, claiming paused until the key works ---
    say("")
    w = start(MODEL_CHECK_RETRY_MS=500, MODEL_CHECK_INTERVAL_MS=4000)
    wait_for(lambda: w.metric("glint_model_check_ok") == 1, 10)
    gem.call("/_control", {"refused_keys": {KEY: 401}})  # revoked while the worker runs
    k1 = enqueue("ok0000000d1")
    wait_for(lambda: status(k1)[1] == "gemini_auth", 20)
    check(status(k1) == ("PENDING", "gemini_auth", 0), "401: PENDING, attempt not counted: %r" % (status(k1),))
    check(w.metric("glint_claims_held") == 1, "claiming held at once")
    k2 = enqueue("ok0000000d2")
    # after the hold, the model check (asked again at once) keeps claiming paused while the key is refused
    time.sleep(11)
    check(db.q("SELECT status, attempts FROM analysis_jobs WHERE id = %s", k2)[0] == ("PENDING", 0),
          "nothing claimed while the key is refused")
    st, _ = w.json("GET", "/readyz")
    check(st == 503, "/readyz says not ready while the key is refused: %s" % st)
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", k1) == 0, "no refund")
    check(w.read_log().count("gemini refused the API key") == 1, "one ERROR line for the refusal")
    gem.call("/_control", {"refused_keys": {}})  # the operator fixes the key
    wait_for(lambda: status(k1)[0] == "COMPLETED" and status(k2)[0] == "COMPLETED", 60)
    check(status(k1) == ("COMPLETED", None, 1) and status(k2) == ("COMPLETED", None, 1),
          "both complete once the key works, one attempt each: %r %r" % (status(k1), status(k2)))
except Exception as e:  # report, do not hide
    check(False, "exception: %r" % e)
finally:
    if w is not None:
        w.stop()
    gem.stop()
    db.close()
report()
