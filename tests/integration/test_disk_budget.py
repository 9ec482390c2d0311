"""Deep-mode disk budget (issue 12): WORK_DIR on a small tmpfs this test mounts, more deep jobs than their downloads
fit. Each deep job is claimed only while the free space covers DOWNLOAD_MAX_BYTES beyond what deep jobs in flight
still reserve; the others wait PENDING (never failed for space) while a standard job behind them is claimed at once.
All complete, none fails with ENOSPC, the tmpfs never fills. The production binary, the fake yt-dlp (copying a real
MP4 into the tmpfs, slowly) and the Gemini stand-in's Files API, real PostgreSQL.
Needs mount(2): skipped with a message where mounting is refused, failing under CI=true as root."""
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from harness import SRC, Database, Worker, check, migrate, report, wait_for
from standins import GEMINI_KEY as KEY
from standins import fake_gemini

MIB = 1024 * 1024
TMPFS_MB = 40
tmp = tempfile.mkdtemp(prefix="glint-disk-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%dm,mode=1777" % TMPFS_MB, "tmpfs", work_dir],
                         capture_output=True, text=True)
if mounted.returncode != 0:
    msg = "mount -t tmpfs refused (%s)" % (mounted.stderr.strip() or mounted.returncode)
    if os.environ.get("CI") == "true" and os.geteuid() == 0:
        print("FAIL: %s, but CI=true and running as root: the disk budget must be proven here" % msg)
        sys.exit(1)
    print("\n" + "!" * 100 + "\nSKIPPED test_disk_budget: %s; the disk budget is NOT proven on this machine\n" % msg
          + "!" * 100)
    sys.exit(77)

# a real ~10 MB MP4 outside the tmpfs: the fake yt-dlp copies it in (a hard link cannot cross file systems)
media = os.path.join(tmp, "deep.mp4")
subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                "nullsrc=s=480x270:r=10,geq=random(1)*255:128:128", "-f", "lavfi", "-i", "sine=frequency=300",
                "-t", "12", "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest",
                media], check=True)
MEDIA_SIZE = os.path.getsize(media)
print("media %.1f MB, tmpfs %d MB, reservation 16 MB" % (MEDIA_SIZE / MIB, TMPFS_MB))

gem = fake_gemini("--processing-polls", "1")
db = Database("diskbudget")
w = None
N_DEEP = 6
peak_used, stop = [0], [False]


def sample_disk():
    while not stop[0]:
        st = os.statvfs(work_dir)
        peak_used[0] = max(peak_used[0], (st.f_blocks - st.f_bfree) * st.f_frsize)
        time.sleep(0.02)


def enqueue(vid, mode):
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    jid = db.one("SELECT glint_enqueue_job(%s, %s, %s)", user, "https://www.youtube.com/watch?v=" + vid, mode)
    db.q("UPDATE analysis_jobs SET max_attempts = 1 WHERE id = %s", jid)
    return jid


try:
    migrate(db)
    gem.call("/_control", {"latency_ms": 500, "discard_uploads": True})
    w = Worker(db, binary="glint-worker", YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"),
               GEMINI_BASE_URL=gem.base, GEMINI_API_KEY=KEY, WORK_DIR=work_dir, FAKE_YTDLP_MEDIA=media,
               FAKE_YTDLP_CACHE=tmp, FAKE_YTDLP_DOWNLOAD_MS=1500, YTDLP_TIMEOUT_MS=30000, GEMINI_TIMEOUT_MS=20000,
               LEASE_SECONDS=5, DOWNLOAD_MAX_BYTES=16 * MIB, MAX_CONCURRENT_JOBS=16, MAX_CONCURRENT_DEEP_JOBS=0,
               POLL_INTERVAL_MS=300, FILE_ACTIVE_TIMEOUT_MS=5000)
    check(w.wait_ready(), "worker ready")
    th = threading.Thread(target=sample_disk)
    th.start()
    deep = [enqueue(("ok%d" % i).ljust(11, "0"), "deep") for i in range(N_DEEP)]
    std = enqueue("ok_std00000", "standard")
    # at most two 16 MB reservations fit 40 MB: the rest wait PENDING, the standard job behind them is claimed anyway
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", std) != "PENDING", 5),
          "standard job claimed while deep jobs wait for space")
    waiting = db.one("SELECT count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) AND status = 'PENDING'", deep)
    check(waiting >= N_DEEP - 3, "deep jobs beyond the budget wait PENDING: %d of %d" % (waiting, N_DEEP))
    check(wait_for(lambda: db.one("SELECT count(*) FROM analysis_jobs WHERE status IN ('COMPLETED','FAILED','CANCELLED')")
                   == N_DEEP + 1, 120), "every job ended")
    stop[0] = True
    th.join()
    rows = db.q("SELECT mode, status, error_code, attempts FROM analysis_jobs ORDER BY created_at")
    check(all(r[1] == "COMPLETED" for r in rows), "all complete, none failed for space: %s" % rows)
    check(all(r[3] == 1 for r in rows), "each in one attempt (waiting never counts as one): %s" % [r[3] for r in rows])
    check(peak_used[0] < TMPFS_MB * MIB, "the tmpfs never filled: peak %.1f MB of %d" % (peak_used[0] / MIB, TMPFS_MB))
    print("peak WORK_DIR use %.1f MB of %d MB" % (peak_used[0] / MIB, TMPFS_MB))
    log = w.read_log()
    check("No space left" not in log and "ENOSPC" not in log, "no ENOSPC in the log")
    check(wait_for(lambda: os.listdir(work_dir) == [], 10), "scratch dirs removed: %s" % os.listdir(work_dir))
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    stop[0] = True
    if w:
        w.stop()
    gem.stop()
    db.close()
    subprocess.run(["umount", work_dir], capture_output=True)
report()
