"""Local files and the local analyzer end to end: the production binary, the generated sample video (ffmpeg +
espeak-ng), real ffprobe/ffmpeg, real PostgreSQL. Also: the local analyzer behind yt-dlp (stand-in) and a local file
handed to Gemini (stand-in)."""
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid

from harness import BIN, SRC, Database, Worker, check, migrate, report, wait_for

from standins import GEMINI_KEY as GKEY
from standins import fake_gemini
tmp = tempfile.mkdtemp(prefix="glint-local-")
media = os.path.join(tmp, "media")
outside = os.path.join(tmp, "outside")
work_dir = os.path.join(tmp, "work")
for d in (media, outside, work_dir):
    os.mkdir(d)

# the sample is rendered once per build tree and reused
sample_dir = os.path.join(BIN, "tests", "media")
sample = subprocess.run([os.path.join(SRC, "media", "make_sample.sh"), sample_dir], check=True, capture_output=True,
                        text=True).stdout.strip().splitlines()[-1]
vtt_text = open(sample[:-4] + ".vtt").read()
shutil.copy(sample, os.path.join(media, "talk.mp4"))
shutil.copy(sample[:-4] + ".vtt", os.path.join(media, "talk.vtt"))
shutil.copy(sample, os.path.join(media, "embedded only.mp4"))  # no sidecar: the embedded stream is used
subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-i", sample, "-map", "0:v", "-map", "0:a", "-c", "copy",
                os.path.join(media, "nosubs.mp4")], check=True)
open(os.path.join(media, "notvideo.mp4"), "w").write("this is not a video\n")
shutil.copy(sample, os.path.join(outside, "secret.mp4"))
shutil.copy(sample[:-4] + ".vtt", os.path.join(outside, "secret.vtt"))
os.symlink(os.path.join(outside, "secret.mp4"), os.path.join(media, "escape.mp4"))

db = Database("local")
workers = []


def run_job(url, mode="standard", timeout=60):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s, %s)", user, url, mode)
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) in ("COMPLETED", "FAILED", "CANCELLED"),
             timeout)
    return jid, db.q("SELECT status, error_code FROM analysis_jobs WHERE id = %s", jid)[0]


def result(jid):
    rows = db.q("SELECT result, model, timings FROM analysis_results WHERE job_id = %s", jid)
    return rows[0] if rows else (None, None, None)


def refunded(jid):
    return db.one("SELECT coalesce(sum(delta), 0) FROM credit_ledger WHERE job_id = %s", jid) == 0


def seconds(ts):
    parts = [int(p) for p in ts.split(":")]
    return parts[0] * 60 + parts[1] if len(parts) == 2 else parts[0] * 3600 + parts[1] * 60 + parts[2]


def check_result_shape(res, deep, duration):
    check(res and all(k in res for k in ("title", "summary", "keyTakeaways", "timeline", "keywords")), "result keys")
    check(("visualAudit" in res) == deep, "visualAudit only in deep mode")
    stamps = [seconds(e["timestamp"]) for e in res["timeline"]]
    check(stamps == sorted(stamps) and stamps[-1] <= duration, "timeline monotonic, within duration: %s" % stamps)


def spoken(sentence):
    return sentence in vtt_text.replace("\n", " ")


try:
    migrate(db)
    w = Worker(db, binary="glint-worker", LOCAL_MEDIA_DIR=media, WORK_DIR=work_dir, LEASE_SECONDS=10,
               YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"))
    workers.append(w)
    check(w.wait_ready(), "worker ready")
    check("analyzer: local" in w.read_log(), "no key: the worker says it uses the local analyzer")

    # standard mode, sidecar VTT, chapters from the container
    jid, row = run_job(os.path.join(media, "talk.mp4"))
    check(row == ("COMPLETED", None), "sidecar job COMPLETED: %r" % (row,))
    res, model, timings = result(jid)
    check(model == "local-extractive", "model stored: %s" % model)
    check_result_shape(res, False, 60)
    check(res["title"] == "Glint Worker in one minute", "title from the container tags: %s" % res["title"])
    check([e["description"] for e in res["timeline"]] == ["Glint Worker", "How a job flows", "Time per stage",
                                                          "Credits and failures"], "timeline = chapters")
    check(all(spoken(s) for s in res["keyTakeaways"]), "takeaways were spoken")
    check(all(spoken(s) for s in re.split(r"(?<=[.!?]) ", res["summary"])), "summary sentences were spoken")
    check("credit" in res["keywords"] and "job" in res["keywords"], "keywords: %s" % res["keywords"])
    check(timings.get("transcript_source") == "sidecar-vtt", "transcript source: %s" % timings)
    st, body = w.json("GET", "/worker/jobs/%s" % jid)
    check(st == 200 and body["status"] == "COMPLETED" and body["result"]["summary"] == res["summary"], "API shows it")

    # deep mode, file:// URI with an escaped space, subtitles from the embedded stream, scene changes
    uri = "file://" + os.path.join(media, "embedded%20only.mp4")
    jid, row = run_job(uri, mode="deep")
    check(row == ("COMPLETED", None), "deep embedded job COMPLETED: %r" % (row,))
    res, model, timings = result(jid)
    check_result_shape(res, True, 60)
    check(timings.get("transcript_source") == "embedded", "embedded subtitles used: %s" % timings)
    va = [seconds(e["timestamp"]) for e in res.get("visualAudit", [])]
    check(va == [13, 30, 46], "scene changes at the slide cuts: %s" % va)
    check(all(e["type"] == "Scene change" for e in res.get("visualAudit", [])), "visualAudit type")
    check("scenes" in timings and timings.get("scene_changes") == 3, "scene stage timed: %s" % timings)

    # refusals: permanent, refunded, no attempt wasted on retries
    for url, code in ((os.path.join(media, "escape.mp4"), "path_not_allowed"),
                      (os.path.join(outside, "secret.mp4"), "path_not_allowed"),
                      (media + "/../outside/secret.mp4", "invalid_path"),
                      ("file://" + media + "/%2e%2e/outside/secret.mp4", "invalid_path"),
                      (os.path.join(media, "missing.mp4"), "file_not_found"),
                      (media, "path_not_allowed"),
                      (os.path.join(media, "nosubs.mp4"), "no_transcript"),
                      (os.path.join(media, "notvideo.mp4"), "unreadable_media")):
        jid, row = run_job(url)
        check(row == ("FAILED", code), "%s -> %s: %r" % (url, code, row))
        check(refunded(jid), "refunded: %s" % url)
        check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", jid) == 1, "no retry for %s" % code)

    # the local analyzer behind yt-dlp (a YouTube URL, ANALYZER auto without a key)
    jid, row = run_job("https://www.youtube.com/watch?v=ok000000000")
    check(row == ("COMPLETED", None), "YouTube URL with the local analyzer: %r" % (row,))
    res, model, _ = result(jid)
    check(model == "local-extractive" and res["summary"], "local-extractive result for a YouTube URL")
    # deep mode: the downloaded video gives the local analyzer its scene changes; nothing is uploaded
    jid, row = run_job("https://www.youtube.com/watch?v=ok000000001", mode="deep")
    check(row == ("COMPLETED", None), "deep YouTube URL with the local analyzer: %r" % (row,))
    res, model, timings = result(jid)
    check(model == "local-extractive" and isinstance(res.get("visualAudit"), list), "deep local result: %s" % model)
    check("download" in timings and "scenes" in timings and "upload" not in timings, "download -> scenes: %s" % timings)
    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "every scratch dir removed: %s" % os.listdir(work_dir))
    check(w.stop() == 0, "worker exited cleanly (no leaks under ASan)")

    # LOCAL_MEDIA_DIR unset: local URLs are refused by the URL check, as before local files existed
    w = Worker(db, binary="glint-worker", WORK_DIR=work_dir)
    workers.append(w)
    check(w.wait_ready(), "worker without LOCAL_MEDIA_DIR ready")
    for url in (os.path.join(media, "talk.mp4"), "file://" + os.path.join(media, "talk.mp4")):
        jid, row = run_job(url)
        check(row == ("FAILED", "invalid_url") and refunded(jid), "local files disabled: %s -> %r" % (url, row))
    check(w.stop() == 0, "worker exited cleanly (no leaks under ASan)")

    # LOCAL_MEDIA_DIR missing (a volume not mounted yet): transient, the job waits for a retry
    w = Worker(db, binary="glint-worker", WORK_DIR=work_dir, LOCAL_MEDIA_DIR=os.path.join(tmp, "not-mounted"))
    workers.append(w)
    check(w.wait_ready(), "worker with a missing LOCAL_MEDIA_DIR ready")
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, os.path.join(tmp, "not-mounted", "a.mp4"))
    row = wait_for(lambda: db.q("SELECT status, error_code, stage FROM analysis_jobs WHERE id = %s AND attempts = 1"
                                " AND status = 'PENDING'", jid), 10)
    check(row and row[0] == ("PENDING", "media_dir_unavailable", "retry_wait"), "missing media dir -> retry: %r" % (row,))
    db.q("SELECT * FROM glint_cancel_job(%s)", jid)
    check(refunded(jid), "cancelled while waiting: refunded")
    check(w.stop() == 0, "worker exited cleanly (no leaks under ASan)")

    # cancel while ffprobe runs: the subprocess is killed, the job CANCELLED, scratch removed
    pidfile = os.path.join(tmp, "slow.pid")
    slow = os.path.join(tmp, "slow-ffprobe")
    open(slow, "w").write("#!/bin/sh\necho $$ > %s\nexec sleep 60\n" % pidfile)
    os.chmod(slow, 0o755)
    w = Worker(db, binary="glint-worker", LOCAL_MEDIA_DIR=media, WORK_DIR=work_dir, FFPROBE_PATH=slow, LEASE_SECONDS=10)
    workers.append(w)
    check(w.wait_ready(), "second worker ready")
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, os.path.join(media, "talk.mp4"))
    check(wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10), "ffprobe started")
    pid = int(open(pidfile).read())
    t0 = time.time()
    st, _ = w.json("POST", "/worker/jobs/%s/cancel" % jid, body=b"")
    check(st == 200, "cancel accepted")
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "CANCELLED", 10), "CANCELLED")

    def gone():
        try:
            os.kill(pid, 0)
            return False
        except ProcessLookupError:
            return True
    check(wait_for(gone, 5), "ffprobe killed")
    print("cancel during ffprobe -> killed in %.3f s" % (time.time() - t0))
    check(refunded(jid), "cancel refunded")
    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "scratch removed after cancel: %s" % os.listdir(work_dir))
    check(w.stop() == 0, "worker exited cleanly (no leaks under ASan)")

    # ANALYZER=gemini: the prepared local file is handed to the Gemini stage (stand-in)
    gem = fake_gemini()
    try:
        w = Worker(db, binary="glint-worker", LOCAL_MEDIA_DIR=media, WORK_DIR=work_dir, ANALYZER="gemini",
                   GEMINI_API_KEY=GKEY, GEMINI_BASE_URL=gem.base)
        workers.append(w)
        check(w.wait_ready(), "gemini worker ready")
        jid, row = run_job("file://" + os.path.join(media, "talk.mp4"))
        check(row == ("COMPLETED", None), "local file analysed by Gemini: %r" % (row,))
        res, model, timings = result(jid)
        check(model and model != "local-extractive", "Gemini model stored: %s" % model)
        check("metadata" in timings and "analyze" in timings, "timings: %s" % timings)
        jid, row = run_job("file://" + os.path.join(media, "talk.mp4"), mode="deep")
        check(row == ("COMPLETED", None), "deep local file analysed by Gemini: %r" % (row,))
        res, model, timings = result(jid)
        check("upload" in timings and "download" not in timings and res.get("visualAudit") is not None,
              "the local file itself is uploaded (no download): %s" % timings)
        jid, row = run_job(os.path.join(media, "escape.mp4"))
        check(row == ("FAILED", "path_not_allowed"), "the guard holds with Gemini too: %r" % (row,))
        check(w.stop() == 0, "worker exited cleanly (no leaks under ASan)")
    finally:
        gem.stop()
    check(os.listdir(work_dir) == [], "no scratch left")
finally:
    for w in workers:
        w.stop()
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
report()
