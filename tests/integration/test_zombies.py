"""PID 1 reaps what a cancelled job leaves behind: the image runs `tini -- glint-worker` (docker/Dockerfile).

The worker kills a job's whole process group. yt-dlp's own child (ffmpeg in production; `sleep` here, started by a
wrapper around the fake yt-dlp) dies with it, but its parent is not the worker: it is re-parented to PID 1, and stays a
zombie (state Z) unless PID 1 wait()s for it. The worker (libuv) waits only for the processes it started.

Each run is a new PID namespace (`unshare --pid --fork --mount-proc`), so "PID 1" is ours: once with tini as PID 1 (the
image's layout: no zombie may remain, the grandchild must be gone), once with the worker itself as PID 1 (the control:
shows this test sees the zombie the image would otherwise collect). Needs root for the namespace: skipped (exit 77)
otherwise, loudly; with CI=true as root a refused namespace or a missing tini fails instead."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import uuid

from harness import API_KEY, BIN, SCALE, WRAPPER, Database, check, migrate, report, wait_for, worker_env
from standins import FAKE_YTDLP

STRICT = os.environ.get("CI") == "true" and os.geteuid() == 0


def skip(msg):
    if STRICT:
        print("FAIL (CI=true as root, so this may not be skipped): " + msg, flush=True)
        sys.exit(1)
    print("SKIPPED: " + msg, flush=True)
    sys.exit(77)


if os.geteuid() != 0:
    skip("a new PID namespace needs root (unshare --pid); the zombie test did not run")
TINI = shutil.which("tini")
if not TINI:
    skip("tini is not installed (docker/deps.sh runtime installs it)")
probe = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, text=True)
if probe.returncode != 0:
    skip("unshare --pid --fork --mount-proc refused here: %s" % probe.stderr.strip())

tmp = tempfile.mkdtemp(prefix="glint-zombies-")
os.chmod(tmp, 0o755)
WRAPPER_SRC = """#!/usr/bin/python3
# yt-dlp that runs a child of its own, as the real one runs ffmpeg: fork, record both pids, become the fake yt-dlp.
import os, sys
if "-J" in sys.argv:
    child = os.fork()
    if child == 0:
        os.execvp("sleep", ["sleep", "600"])
    with open(%r, "a") as f:
        f.write("%%d %%d\\n" %% (os.getpid(), child))
os.execv(%r, [%r] + sys.argv[1:])
"""


def proc_status(pid):
    """{'State': 'S', 'PPid': '1', 'NSpid': '123 4', ...} of a host pid, or None when it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except (FileNotFoundError, ProcessLookupError):
        return None


def ns_of(pid):
    try:
        return os.readlink("/proc/%d/ns/pid" % pid)
    except OSError:
        return None


def members(ns):
    """Host pid -> status of every process in PID namespace ns, read from the host's /proc."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit() and ns_of(int(d)) == ns:
            st = proc_status(int(d))
            if st:
                out[int(d)] = st
    return out


def host_pid(ns, ns_pid):
    for pid, st in members(ns).items():
        if st.get("NSpid", "").split()[-1:] == [str(ns_pid)]:
            return pid
    return None


def zombies(ns):
    return {pid: st for pid, st in members(ns).items() if st["State"].startswith("Z")}


def api(port, method, path):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=b"" if method == "POST" else None,
                                 method=method, headers={"X-API-Key": API_KEY})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def run(db, with_tini):
    label = "tini as PID 1" if with_tini else "worker as PID 1 (control)"
    print("--- %s" % label, flush=True)
    pidfile = os.path.join(tmp, "pids-%s" % ("tini" if with_tini else "bare"))
    ytdlp = os.path.join(tmp, "yt-dlp-forking-%s" % ("tini" if with_tini else "bare"))
    with open(ytdlp, "w") as f:
        f.write(WRAPPER_SRC % (pidfile, FAKE_YTDLP, FAKE_YTDLP))
    os.chmod(ytdlp, 0o755)
    work = os.path.join(tmp, "work-%d" % with_tini)
    os.mkdir(work)
    env = worker_env(db, YTDLP_PATH=ytdlp, WORK_DIR=work, YTDLP_TIMEOUT_MS=120000, LEASE_SECONDS=10,
                     SHUTDOWN_GRACE_MS=1000)
    env.pop("GEMINI_API_KEY", None)
    port = int(env["PORT"])
    init = [TINI, "--"] if with_tini else []
    log_path = os.path.join(tmp, "worker-%d.log" % with_tini)
    log = open(log_path, "w")
    outer = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] + init + WRAPPER +
                             [os.path.join(BIN, "glint-worker")], env=env, stdout=log, stderr=subprocess.STDOUT,
                             cwd="/tmp")
    ns = pid1 = None
    try:
        def up():
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                return outer.poll() is not None
        wait_for(up, 15)
        pid1 = wait_for(lambda: next((int(d) for d in os.listdir("/proc") if d.isdigit() and
                                      (proc_status(int(d)) or {}).get("PPid") == str(outer.pid)), None), 5)
        ns = ns_of(pid1) if pid1 else None
        if not check(ns and ns != ns_of(os.getpid()), "%s: the worker runs in a PID namespace of its own" % label):
            return
        comm1 = proc_status(pid1)["Name"]
        if with_tini or not WRAPPER:  # under valgrind the bare PID 1 is named memcheck-*
            check(comm1 == ("tini" if with_tini else "glint-worker"), "%s: PID 1 is %s" % (label, comm1))

        user = str(uuid.uuid4())
        db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 10)", user)
        jid = db.one("SELECT glint_enqueue_job(%s, %s)", user, "https://www.youtube.com/watch?v=hang0000000")
        line = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().split("\n")[0], 20)
        if not check(line, "%s: yt-dlp started and forked its child" % label):
            print(open(log_path).read()[-4000:])
            return
        yt_ns, gc_ns = (int(x) for x in line.split())
        yt, gc = host_pid(ns, yt_ns), host_pid(ns, gc_ns)
        wait_for(lambda: (proc_status(gc) or {}).get("Name") == "sleep", 10)  # the child has exec'd its program
        gst = proc_status(gc) if gc else None
        check(yt and gst and gst["Name"] == "sleep" and gst["PPid"] == str(yt) and not gst["State"].startswith("Z"),
              "%s: the grandchild runs under yt-dlp: %r" % (label, gst and (gst["Name"], gst["State"], gst["PPid"], yt)))

        st = api(port, "POST", "/worker/jobs/%s/cancel" % jid)
        check(st == 200, "%s: cancel accepted (%s)" % (label, st))
        check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "CANCELLED", 15),
              "%s: job CANCELLED" % label)
        check(wait_for(lambda: proc_status(yt) is None, 15), "%s: yt-dlp killed and reaped by the worker" % label)
        if with_tini:
            gone = wait_for(lambda: proc_status(gc) is None and not zombies(ns), 10)
            left = zombies(ns)
            check(gone, "tini: no zombie left in the namespace, the grandchild is gone: %r" %
                  {p: (s["Name"], s["State"], s["PPid"]) for p, s in left.items()})
        else:
            # the grandchild dies with its group; nobody waits for it
            z = wait_for(lambda: zombies(ns).get(gc), 10)
            if z:
                print("control: without an init the grandchild stays a zombie of PID 1: %s %s ppid=%s" %
                      (z["Name"], z["State"], z["PPid"]), flush=True)
                check(z["PPid"] == str(pid1), "control: the zombie belongs to PID 1 (the worker)")
            else:
                # not a failure of the image: the worker itself reaps orphans (a subreaper), which is fine too
                print("NOTE: control: no zombie without tini either (the worker reaps what it adopts)", flush=True)
    finally:
        if pid1 and outer.poll() is None:
            os.kill(pid1, signal.SIGTERM)  # tini forwards it; the bare worker handles it as PID 1
        try:
            rc = outer.wait(20 * SCALE)
        except subprocess.TimeoutExpired:
            outer.kill()  # --kill-child takes the namespace down with it
            rc = outer.wait()
        log.close()
    text = open(log_path).read()
    check(rc == 0 and "draining" in text, "%s: SIGTERM reaches the worker, clean exit (rc %s)" % (label, rc))
    if rc != 0:
        print(text[-4000:])


db = Database("zombies")
try:
    migrate(db)
    run(db, with_tini=True)
    run(db, with_tini=False)
finally:
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
report()
