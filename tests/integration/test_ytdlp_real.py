"""The production argv and parsers against Debian's real yt-dlp: a local page with a <video> and a WebVTT <track>,
served on loopback and allowed by ALLOWED_VIDEO_HOSTS, analysed end to end through PostgreSQL and the Gemini
stand-in. Nothing here imitates yt-dlp: its generic/HTML5 extractor fetches the page and the caption file."""
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

from harness import Database, Worker, check, migrate, report, wait_for

from standins import GEMINI_KEY as KEY
from standins import fake_gemini
YTDLP = shutil.which("yt-dlp") or "/usr/bin/yt-dlp"
tmp = tempfile.mkdtemp(prefix="glint-realyt-")
site = os.path.join(tmp, "site")
work_dir = os.path.join(tmp, "work")
os.mkdir(site)
os.mkdir(work_dir)

# A few seconds of real media (the generic extractor only needs a <video> source to exist) and captions with the
# things real VTT files carry: cue settings, tags, entities, a cue identifier and a multi-line cue.
subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "12",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", os.path.join(site, "talk.mp4")], check=True)
VTT = """WEBVTT
Kind: captions
Language: en

intro
00:00:00.000 --> 00:00:03.000 align:start position:10%
Welcome to the <b>quarterly</b> review &amp; outlook.

00:00:03.000 --> 00:00:07.500
Revenue grew in every region,
led by the <i>northern</i> markets.

00:00:07.500 --> 00:00:11.000
Next we cover hiring plans for the coming year.
"""
open(os.path.join(site, "talk.vtt"), "w").write(VTT)
PAGE = """<!DOCTYPE html><html><head><title>Quarterly review</title></head><body>
<video controls src="talk.mp4"><track kind="captions" src="talk.vtt" srclang="en" label="English"></video>
</body></html>"""
open(os.path.join(site, "talk.html"), "w").write(PAGE)
open(os.path.join(site, "nocaptions.html"), "w").write(PAGE.replace('<track kind="captions" src="talk.vtt" '
                                                                    'srclang="en" label="English">', ""))
open(os.path.join(site, "novideo.html"), "w").write("<html><head><title>Just text</title></head><body>hi</body></html>")

requests = []


class Handler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *a, **kw):
        super().__init__(*a, directory=site, **kw)

    def log_message(self, fmt, *args):
        requests.append(self.path)


httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=httpd.serve_forever, daemon=True).start()
page_base = "http://127.0.0.1:%d" % httpd.server_address[1]

gem = fake_gemini()
gbase = gem.base
control = gem.call


db = Database("realytdlp")
w = None


def run_job(url, timeout=60):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 5)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, url)
    db.q("UPDATE analysis_jobs SET max_attempts = 1 WHERE id = %s", jid)
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) in ("COMPLETED", "FAILED"), timeout)
    row = db.q("SELECT status, error_code FROM analysis_jobs WHERE id = %s", jid)[0]
    refunds = db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", jid)
    return jid, row, refunds


try:
    version = subprocess.run([YTDLP, "--version"], capture_output=True, text=True).stdout.strip()
    print("real yt-dlp %s at %s" % (version, YTDLP))
    migrate(db)
    w = Worker(db, binary="glint-worker", YTDLP_PATH=YTDLP, GEMINI_BASE_URL=gbase, GEMINI_API_KEY=KEY,
               WORK_DIR=work_dir, ALLOWED_VIDEO_HOSTS="127.0.0.1,www.youtube.com,youtube.com,youtu.be",
               YTDLP_TIMEOUT_MS=60000, GEMINI_TIMEOUT_MS=10000, LEASE_SECONDS=30)
    check(w.wait_ready(), "worker ready")

    jid, row, refunds = run_job(page_base + "/talk.html")
    check(row == ("COMPLETED", None), "local page with a caption track -> COMPLETED: %r" % (row,))
    check("/talk.html" in requests and "/talk.vtt" in requests, "the real yt-dlp fetched page and captions: %s" % requests)
    res, timings = db.q("SELECT result, timings FROM analysis_results WHERE job_id = %s", jid)[0]
    check(res.get("title") == "Quarterly review" or (res.get("title") or "").startswith("Quarterly review"),
          "title from the page: %r" % res.get("title"))
    check(timings.get("transcript_source") == "vtt", "transcript came from the VTT track: %s" % timings)
    # What the worker sent to the model is the parsed transcript: tags and entities gone, cue text joined, markers.
    body = json.dumps(control("/_control/stats")["generate_bodies"][-1])
    check("[00:00] Welcome to the quarterly review & outlook." in body, "VTT cue parsed (tags, entities)")
    check("[00:03] Revenue grew in every region, led by the northern markets." in body
          or "[00:03] Revenue grew in every region led by the northern markets." in body, "multi-line cue joined")
    check("[00:07] Next we cover hiring plans" in body, "third cue with its start time")
    check("<b>" not in body and "&amp;" not in body and "align:start" not in body, "no markup leaks to the prompt")
    # Timestamps stay within what the captions cover even though the page gives no duration.
    for e in res["timeline"]:
        m, s = e["timestamp"].split(":")[-2:]
        check(int(m) * 60 + int(s) <= 13, "timeline entry within the captions: %s" % e["timestamp"])

    # A page without captions and a page without any video: clear failures, one refund each, no retry loop.
    _, row, refunds = run_job(page_base + "/nocaptions.html")
    check(row[0] == "FAILED" and row[1] in ("no_transcript",) and refunds == 1, "no captions -> %r, refunded" % (row,))
    _, row, refunds = run_job(page_base + "/novideo.html")
    check(row[0] == "FAILED" and row[1] == "invalid_url" and refunds == 1, "no video on the page -> %r" % (row,))
    _, row, refunds = run_job(page_base + "/missing.html")
    check(row[0] == "FAILED" and row[1] == "video_unavailable" and refunds == 1, "404 page -> %r" % (row,))

    check(wait_for(lambda: os.listdir(work_dir) == [], 5), "scratch dirs removed: %s" % os.listdir(work_dir))
    check(db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'") == 0, "nothing stuck")
    check(KEY not in w.read_log(), "key never logged")
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    gem.stop()
    httpd.shutdown()
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
report()
