"""Starts the local stand-ins (Gemini, Sentry) for integration tests; each is killed at exit."""
import atexit
import json
import os
import subprocess
import sys
import tempfile
import urllib.request

from harness import SRC, wait_for

GEMINI_KEY = "AIzaTestKey-0123456789abcdef"
FAKE_YTDLP = os.path.join(SRC, "standins", "fake-yt-dlp")


class Standin:
    def __init__(self, script, *args):
        self.dir = tempfile.mkdtemp(prefix="glint-standin-")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(SRC, "standins", script), "--port", "0", "--port-file",
                                      port_file] + list(args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        atexit.register(self.stop)
        if not wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10):
            raise RuntimeError("%s did not start" % script)
        self.port = int(open(port_file).read())
        self.base = "http://127.0.0.1:%d" % self.port

    def call(self, path, body=None):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def fake_gemini(*args):
    """The Gemini stand-in with its /_control API; args are extra options (e.g. "--processing-polls", "1")."""
    return Standin("fake_gemini.py", "--api-key", GEMINI_KEY, "--control", *args)


def fake_sentry(key, project="42"):
    s = Standin("fake_sentry.py", "--key", key, "--project", project)
    s.dsn = "http://%s@127.0.0.1:%d/%s" % (key, s.port, project)
    return s


def pipeline_env(gem, work_dir, **extra):
    """Settings for the production binary with the stand-ins."""
    env = {"YTDLP_PATH": FAKE_YTDLP, "GEMINI_BASE_URL": gem.base, "GEMINI_API_KEY": GEMINI_KEY, "WORK_DIR": work_dir,
           "YTDLP_TIMEOUT_MS": 5000, "GEMINI_TIMEOUT_MS": 5000, "GEMINI_MAX_RETRIES": 2, "LEASE_SECONDS": 10}
    env.update(extra)
    return env
