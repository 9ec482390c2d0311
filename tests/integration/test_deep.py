"""Deep mode end to end: the production binary, the fake yt-dlp (real MP4s made with ffmpeg) and the Gemini stand-in's
Files API, real PostgreSQL. Every case ends COMPLETED, FAILED with one refund, or CANCELLED — and in every case the
stand-in holds no file and WORK_DIR holds no scratch dir."""
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
import uuid

from harness import SRC, Database, Worker, check, migrate, report, wait_for

from standins import GEMINI_KEY as KEY
from standins import fake_gemini
tmp = tempfile.mkdtemp(prefix="glint-deep-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
ytlog = os.path.join(tmp, "ytdlp.log")

# A real ~25 MB MP4 (noise video compresses badly): four 8 MiB upload chunks.
media = os.path.join(tmp, "big.mp4")
subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                "nullsrc=s=640x360:r=10,geq=random(1)*255:128:128", "-f", "lavfi", "-i",
                "sine=frequency=300:beep_factor=4", "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt",
                "yuv420p", "-c:a", "aac", "-shortest", media], check=True)
MEDIA_SIZE = os.path.getsize(media)

gem = fake_gemini("--processing-polls", "1")
gbase = gem.base
control = gem.call


def remote_files():
    return control("/_control/files")["files"]


db = Database("deep")
w = None
WORKER_ENV = dict(YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY,
                  WORK_DIR=work_dir, FAKE_YTDLP_LOG=ytlog, FAKE_YTDLP_MEDIA=media, FAKE_YTDLP_CACHE=tmp,
                  YTDLP_TIMEOUT_MS=30000, GEMINI_TIMEOUT_MS=20000, GEMINI_MAX_RETRIES=1, LEASE_SECONDS=3,
                  UPLOAD_MAX_RETRIES=2, FILE_ACTIVE_TIMEOUT_MS=3000, DOWNLOAD_MAX_BYTES=33554432,
                  DEEP_SEGMENT_SECONDS=2700, POLL_INTERVAL_MS=500)


def start_worker(**extra):
    env = dict(WORKER_ENV)
    env.update(extra)
    wk = Worker(db, binary="glint-worker", **env)
    check(wk.wait_ready(), "worker ready")
    return wk


def enqueue(url, mode="deep", balance=100, max_attempts=1):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, %s)", user, balance)
    jid = db.one("SELECT glint_enqueue_job(%s, %s, %s)", user, url, mode)
    db.q("UPDATE analysis_jobs SET max_attempts = %s WHERE id = %s", max_attempts, jid)
    return jid, user


def wait_done(jid, timeout=40):
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) in ("COMPLETED", "FAILED", "CANCELLED"),
             timeout)
    return db.q("SELECT status, error_code FROM analysis_jobs WHERE id = %s", jid)[0]


def ledger(jid):
    return db.q("SELECT reason, delta FROM credit_ledger WHERE job_id = %s ORDER BY id", jid)


def balance(user):
    return db.one("SELECT balance FROM user_credits WHERE user_id = %s", user)


def nothing_left(what):
    check(wait_for(lambda: remote_files() == [], 12), "%s: no remote file left: %s" % (what, remote_files()))
    check(wait_for(lambda: os.listdir(work_dir) == [], 12), "%s: no scratch dir left: %s" % (what, os.listdir(work_dir)))
    check(wait_for(lambda: db.one("SELECT count(*) FROM glint_remote_files") == 0, 12), "%s: no remote-file rows left" % what)


def failure_case(name, url, fault, want_code, balance_=100, **ctl):
    control("/_control/reset", {})
    if fault or ctl:
        control("/_control", dict(ctl, **({"faults": fault} if fault else {})))
    jid, user = enqueue(url, balance=balance_)
    row = wait_done(jid)
    refunds = [d for r, d in ledger(jid) if r == "refund"]
    check(row == ("FAILED", want_code), "%s -> FAILED/%s: %r" % (name, want_code, row))
    check(len(refunds) == 1, "%s: exactly one refund: %r" % (name, ledger(jid)))
    check(balance(user) == balance_, "%s: balance restored to %d: %s" % (name, balance_, balance(user)))
    nothing_left(name)
    control("/_control/reset", {})


try:
    migrate(db)
    w = start_worker()

    # --- the happy path: download beside metadata, chunked upload, ACTIVE, Pro with the file, visualAudit ---
    control("/_control/reset", {})
    jid, user = enqueue("https://youtu.be/ok000000000")
    row = wait_done(jid)
    check(row == ("COMPLETED", None), "deep ok -> COMPLETED: %r" % (row,))
    res, model, timings = db.q("SELECT result, model, timings FROM analysis_results WHERE job_id = %s", jid)[0]
    check(isinstance(res.get("visualAudit"), list) and len(res["visualAudit"]) > 0, "visualAudit present: %s" % res.get("visualAudit"))
    check(all(":" in v["timestamp"] and v["detail"] for v in res["visualAudit"]), "visualAudit entries valid")
    check(model == "gemini-3.1-pro-preview", "Pro model used: %s" % model)
    check(timings.get("upload_bytes") == MEDIA_SIZE and timings.get("upload") is not None, "upload timed: %s" % timings)
    check(timings.get("credits") == "unchanged", "212 s = one block, already charged: %s" % timings.get("credits"))
    stats = control("/_control/stats")
    check(stats["requests"].get("upload.data", 0) == (MEDIA_SIZE + (8 << 20) - 1) // (8 << 20),
          "8 MiB chunks: %s data requests for %d bytes" % (stats["requests"].get("upload.data"), MEDIA_SIZE))
    check(stats["requests"].get("files.delete") == 1, "remote file deleted once")
    body = json.dumps(stats["generate_bodies"][-1])
    check('"fileData"' in body and "MEDIA_RESOLUTION_LOW" in body, "file part and low media resolution sent")
    check(not stats["violations"], "no protocol violations: %s" % stats["violations"])
    runs = [json.loads(l) for l in open(ytlog)]
    dl = [r["argv"] for r in runs if "-f" in r["argv"]][-1]
    check("height<=480" in dl[dl.index("-f") + 1] and "--max-filesize" in dl, "small format and size cap: %s" % dl)
    check(dl[dl.index("--") + 1] == "https://www.youtube.com/watch?v=ok000000000", "-- before the URL")
    nothing_left("deep ok")

    # --- a long video: credits reconciled (18 blocks), analysed in two videoMetadata segments and merged ---
    control("/_control/reset", {})
    jid, user = enqueue("https://youtu.be/long0000000", balance=300)
    row = wait_done(jid)
    check(row == ("COMPLETED", None), "long deep -> COMPLETED: %r" % (row,))
    check(ledger(jid) == [("charge", -15), ("charge", -255)], "difference charged: %s" % ledger(jid))
    check(balance(user) == 30 and db.one("SELECT credits_charged FROM analysis_jobs WHERE id = %s", jid) == 270,
          "balance 300 - 270: %s" % balance(user))
    timings = db.one("SELECT timings FROM analysis_results WHERE job_id = %s", jid)
    check(timings.get("video_segments") == 2, "two segments: %s" % timings)
    bodies = [json.dumps(b) for b in control("/_control/stats")["generate_bodies"]]
    check(sum('"videoMetadata"' in b for b in bodies) == 2 and '"startOffset": "2700s"' in "".join(bodies),
          "videoMetadata clips sent")
    res = db.one("SELECT result FROM analysis_results WHERE job_id = %s", jid)
    check(len(res["visualAudit"]) > 0 and any(e["timestamp"].count(":") == 2 for e in res["timeline"]),
          "merged result spans both segments: %s" % [e["timestamp"] for e in res["timeline"]])
    nothing_left("long")

    # --- a deep job inserted directly (never charged) is not metered by the worker either ---
    control("/_control/reset", {})
    jid = db.one("INSERT INTO analysis_jobs (user_id, video_url, mode, max_attempts) VALUES (gen_random_uuid(),"
                 " 'https://youtu.be/long0000002', 'deep', 1) RETURNING id")
    check(wait_done(jid) == ("COMPLETED", None), "unmetered deep job -> COMPLETED")
    check(db.one("SELECT timings->>'credits' FROM analysis_results WHERE job_id = %s", jid) == "unmetered" and
          ledger(jid) == [], "no ledger rows for an unmetered job")
    nothing_left("unmetered")

    # --- yt-dlp does not know the duration: ffprobe on the download decides the credits (20 s = one block) ---
    control("/_control/reset", {})
    jid, user = enqueue("https://youtu.be/no_duration")
    check(wait_done(jid) == ("COMPLETED", None), "deep without duration -> COMPLETED")
    timings = db.one("SELECT timings FROM analysis_results WHERE job_id = %s", jid)
    check(timings.get("duration_source") == "ffprobe" and timings.get("credits") == "unchanged", "probed: %s" % timings)
    nothing_left("no duration")

    # --- recoverable faults: a reset mid-chunk is resumed, an expired file is uploaded again ---
    for fault in ("upload_reset", "chunk_503", "file_expired"):
        control("/_control/reset", {})
        control("/_control", {"faults": [fault], "fault_count": 1})
        jid, _ = enqueue("https://youtu.be/ok000000001")
        row = wait_done(jid)
        check(row == ("COMPLETED", None), "%s once -> COMPLETED: %r" % (fault, row))
        st = control("/_control/stats")
        check(st["faults_applied"].get(fault) == 1 and not st["violations"], "%s applied, no violations: %s" % (fault, st["violations"]))
        if fault == "upload_reset":
            check(st["bytes_received"] == MEDIA_SIZE, "resumed, not restarted: %d of %d bytes" % (st["bytes_received"], MEDIA_SIZE))
        nothing_left(fault)

    # --- failures: FAILED, exactly one refund, nothing left anywhere ---
    failure_case("upload 503 exhausted", "https://youtu.be/ok000000002", ["chunk_503"], "upload_failed")
    failure_case("FAILED file", "https://youtu.be/ok000000003", ["file_failed"], "file_processing_failed")
    failure_case("never ACTIVE", "https://youtu.be/ok000000004", ["never_active"], "file_processing_timeout")
    # refused again after a fresh upload with the same key: the file, not the key (was a permanent gemini_auth)
    failure_case("file refused twice", "https://youtu.be/ok000000006", ["file_expired"], "file_unavailable", fault_count=2)
    failure_case("insufficient credits", "https://youtu.be/long0000001", None, "insufficient_credits", balance_=100)
    failure_case("download too big", "https://youtu.be/too_big0000", None, "video_too_large")
    failure_case("private video", "https://youtu.be/private0000", None, "private_video")
    failure_case("model blocked", "https://youtu.be/ok000000005", ["blocked"], "content_blocked")

    # --- cancel mid-download and mid-upload: stopped within a second, refunded, cleaned up ---
    for what, url, ctl, stage in (("download", "https://youtu.be/slowdl00000", {}, "download"),
                                  ("upload", "https://youtu.be/ok000000006", {"chunk_delay_ms": 20000}, "upload")):
        control("/_control/reset", {})
        if ctl:
            control("/_control", ctl)
        jid, user = enqueue(url)
        check(wait_for(lambda: db.one("SELECT stage FROM analysis_jobs WHERE id = %s", jid) == stage, 15), "in %s" % stage)
        if what == "upload":
            check(wait_for(lambda: control("/_control/stats")["requests"].get("upload.data"), 10), "a chunk in flight")
        t0 = time.time()
        st, _ = w.json("POST", "/worker/jobs/%s/cancel" % jid, body=b"")
        check(st == 200, "cancel accepted")
        check(wait_for(lambda: w.json("GET", "/health", key=None)[1]["active_jobs"] == 0, 1.0, 0.01),
              "cancel mid-%s stopped within 1 s" % what)
        print("cancel mid-%s -> stopped in %.3f s" % (what, time.time() - t0))
        check(wait_done(jid)[0] == "CANCELLED" and balance(user) == 100, "cancelled and refunded")
        check([r for r, _ in ledger(jid)].count("refund") == 1, "one refund")
        nothing_left("cancel mid-%s" % what)
    control("/_control/reset", {})

    # --- standard mode without captions: Flash listens to an audio track extracted with ffmpeg ---
    jid, _ = enqueue("https://youtu.be/no_subs0000", mode="standard", balance=1)
    row = wait_done(jid)
    check(row == ("COMPLETED", None), "captionless standard -> COMPLETED from audio: %r" % (row,))
    res, model, timings = db.q("SELECT result, model, timings FROM analysis_results WHERE job_id = %s", jid)[0]
    check(timings.get("transcript_source") == "audio" and model == "gemini-3.6-flash", "audio source, Flash: %s" % timings)
    check("visualAudit" not in res and len(res["timeline"]) > 0, "standard result from audio")
    up = control("/_control/stats")["last"]["upload.start"]["headers"]
    check(up.get("X-Goog-Upload-Header-Content-Type") == "audio/ogg" and int(up["X-Goog-Upload-Header-Content-Length"]) < 200000,
          "a small mono ogg was uploaded: %s bytes" % up.get("X-Goog-Upload-Header-Content-Length"))
    nothing_left("audio fallback")
    _, metrics, _ = w.http("GET", "/metrics")
    # two re-uploads so far: the expired file, and the file refused twice
    check('event="audio_fallback"} 1' in metrics and 'stage="upload"' in metrics and 'event="file_reupload"} 2' in metrics,
          "deep stages and events in /metrics")

    log = w.read_log()
    check(KEY not in log and "upload_id=" not in log, "neither the key nor an upload URL in the log")
    check(w.stop() == 0, "clean exit")
    w = None

    # --- DEEP_VIDEO_SOURCE=youtube_url: no download, no upload; falls back to upload when refused ---
    w = start_worker(DEEP_VIDEO_SOURCE="youtube_url")
    control("/_control/reset", {})
    jid, _ = enqueue("https://youtu.be/ok000000007")
    check(wait_done(jid) == ("COMPLETED", None), "youtube_url -> COMPLETED")
    st = control("/_control/stats")
    check("upload.start" not in st["requests"] and "youtube.com/watch?v=ok000000007" in json.dumps(st["generate_bodies"][-1]),
          "the YouTube URL was the fileUri, nothing uploaded")
    control("/_control", {"faults": ["youtube_refused"], "fault_count": 1})
    jid, _ = enqueue("https://youtu.be/ok000000008")
    check(wait_done(jid) == ("COMPLETED", None), "refused youtube_url -> upload fallback -> COMPLETED")
    timings = db.one("SELECT timings FROM analysis_results WHERE job_id = %s", jid)
    check(timings.get("video_source") == "upload" and timings.get("youtube_url_refused") is True, "fell back: %s" % timings)
    nothing_left("youtube_url")
    w.stop()
    w = None

    # --- shutdown (SIGTERM) while the file is PROCESSING: the job is released, its remote file and scratch dir go ---
    control("/_control/reset", {})
    control("/_control", {"faults": ["never_active"]})
    w = start_worker(FILE_ACTIVE_TIMEOUT_MS=600000)
    jid, user = enqueue("https://youtu.be/ok000000011", max_attempts=3)
    check(wait_for(lambda: len(remote_files()) == 1, 20), "shutdown case: the file exists remotely")
    check(w.stop() == 0, "SIGTERM: clean exit")
    w = None
    check(remote_files() == [] and os.listdir(work_dir) == [], "shutdown: remote file deleted, scratch dir removed")
    check(db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "PENDING", "released for another worker")
    control("/_control/reset", {})
    w = start_worker()
    check(wait_done(jid, 60) == ("COMPLETED", None), "the released job completes later")
    w.stop()
    w = None

    # --- crash recovery: kill -9 while the file is PROCESSING (and once mid-upload); the next start cleans up ---
    control("/_control/reset", {})
    control("/_control", {"faults": ["never_active"]})
    w = start_worker(FILE_ACTIVE_TIMEOUT_MS=600000)
    jid, user = enqueue("https://youtu.be/ok000000009", max_attempts=3)
    check(wait_for(lambda: len(remote_files()) == 1, 20), "the file exists remotely")
    check(wait_for(lambda: db.one("SELECT file_name FROM glint_remote_files WHERE job_id = %s", jid), 5), "its name is recorded")
    w.stop(sig=signal.SIGKILL)
    w = None
    check(len(remote_files()) == 1 and len(os.listdir(work_dir)) == 1, "kill -9 left a remote file and a scratch dir")
    control("/_control/reset", {})
    w = start_worker()
    check(wait_done(jid, 60) == ("COMPLETED", None), "the rescued job completes on the restarted worker")
    nothing_left("crash recovery (processing)")
    control("/_control", {"chunk_delay_ms": 20000})
    jid, user = enqueue("https://youtu.be/ok000000010", max_attempts=3)
    check(wait_for(lambda: control("/_control/stats")["requests"].get("upload.data"), 20), "mid-upload")
    w.stop(sig=signal.SIGKILL)
    w = None
    control("/_control/reset", {})
    w = start_worker()
    check(wait_done(jid, 60) == ("COMPLETED", None), "the job killed mid-upload completes after restart")
    nothing_left("crash recovery (upload)")
    # a finalize whose file name never reached the database (death in between): found by its display name
    display = "glint-%s-7" % jid
    req = urllib.request.Request(gbase + "/upload/v1beta/files", data=json.dumps({"file": {"display_name": display}}).encode(),
                                 method="POST", headers={"x-goog-api-key": KEY, "Content-Type": "application/json",
                                                         "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                                                         "X-Goog-Upload-Header-Content-Length": "3",
                                                         "X-Goog-Upload-Header-Content-Type": "video/mp4"})
    with urllib.request.urlopen(req, timeout=10) as r:
        upload_url = r.headers["x-goog-upload-url"]
    req = urllib.request.Request(upload_url, data=b"abc", method="POST", headers={
        "x-goog-api-key": KEY, "X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0"})
    urllib.request.urlopen(req, timeout=10).read()
    db.q("INSERT INTO glint_remote_files (job_id, display_name) VALUES (%s, %s)", jid, display)
    check(len(remote_files()) == 1, "an unrecorded remote file exists")
    nothing_left("unrecorded file name")
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") == 0, "nothing stuck in PROCESSING")
    check(db.one("SELECT count(*) FROM user_credits WHERE balance < 0") == 0, "no negative balance")
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
