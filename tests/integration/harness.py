"""Shared helpers for integration tests: a fresh database per test module on the ctest PostgreSQL fixture, and
worker processes (the real binary) started against it. Standard library + Debian's python3-psycopg2 only."""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import psycopg2
import psycopg2.extras

BIN = os.environ.get("GW_TEST_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
SRC = os.environ.get("GW_TEST_SRC", os.path.join(os.path.dirname(__file__), ".."))
STATE = os.environ.get("GW_PG_STATE", os.path.join(BIN, "tests", "pg.env"))
API_KEY = "test-api-key-0123456789"
# Workers connect as the least-privilege role of sql/007 (GW_TEST_DB_ROLE=owner: as the owner, postgres).
WORKER_ROLE = "glint_worker"
WORKER_PASSWORD = "test-worker-password"
# GW_VALGRIND=1: every worker daemon runs under valgrind memcheck (or any command prefix given in GW_TEST_WRAPPER);
# start-up and waiting timeouts are multiplied by GW_TEST_TIMEOUT_SCALE (default 10 under valgrind).
VALGRIND = os.environ.get("GW_VALGRIND") == "1"
WRAPPER = os.environ.get("GW_TEST_WRAPPER", "").split()
if VALGRIND and not WRAPPER:
    WRAPPER = ["valgrind", "--quiet", "--leak-check=full", "--errors-for-leak-kinds=definite,indirect",
               "--show-leak-kinds=definite,indirect", "--error-exitcode=99", "--num-callers=30",
               "--suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "valgrind.supp")]
SCALE = float(os.environ.get("GW_TEST_TIMEOUT_SCALE", "10" if WRAPPER else "1"))
# The worker's own time limits stretch less (a lease must still expire within a test's patience).
WORKER_SCALE = float(os.environ.get("GW_TEST_WORKER_SCALE", "3" if WRAPPER else "1"))
WORKER_TIMINGS = ("LEASE_SECONDS", "YTDLP_TIMEOUT_MS", "GEMINI_TIMEOUT_MS")

_passed = 0
_failed = 0


def check(cond, what):
    global _passed, _failed
    if cond:
        _passed += 1
    else:
        _failed += 1
        print("CHECK failed: %s" % what, file=sys.stderr, flush=True)
    return cond


def report():
    print("%d passed, %d failed" % (_passed, _failed), flush=True)
    sys.exit(0 if _failed == 0 and _passed > 0 else 1)


def pg_state():
    env = {}
    with open(STATE) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    return env


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Database:
    """A fresh database (dropped at close) on the fixture cluster."""

    def __init__(self, name_hint):
        st = pg_state()
        self.host, self.port = st["PGHOST"], st["PGPORT"]
        self.name = "t_%s_%s" % (re.sub(r"\W", "_", name_hint), uuid.uuid4().hex[:8])
        admin = self.connect("postgres")
        admin.autocommit = True
        admin.cursor().execute('CREATE DATABASE "%s"' % self.name)
        ensure_worker_role(admin)
        admin.close()
        self.url = "postgresql:///%s?host=%s&port=%s&user=postgres" % (self.name, self.host, self.port)
        self.worker_url = "postgresql:///%s?host=%s&port=%s&user=%s&password=%s" % (
            self.name, self.host, self.port, WORKER_ROLE, WORKER_PASSWORD)
        self.conn = self.connect(self.name)
        self.conn.autocommit = True

    def connect(self, dbname):
        return psycopg2.connect(host=self.host, port=self.port, user="postgres", dbname=dbname)

    def q(self, sql, *args):
        cur = self.conn.cursor()
        cur.execute(sql, args)
        return cur.fetchall() if cur.description else None

    def one(self, sql, *args):
        rows = self.q(sql, *args)
        return rows[0][0] if rows else None

    def close(self):
        self.conn.close()
        admin = self.connect("postgres")
        admin.autocommit = True
        admin.cursor().execute('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % self.name)
        admin.close()


def ensure_worker_role(admin):
    """The role is cluster-wide and sql/007 creates it NOLOGIN; on the test cluster it may log in. pg_harness.sh sets
    it up at start; this covers a cluster started some other way (test modules run in parallel: retry on races)."""
    cur = admin.cursor()
    for _ in range(20):
        cur.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", (WORKER_ROLE,))
        row = cur.fetchone()
        if row and row[0]:
            return
        try:
            if not row:
                cur.execute("CREATE ROLE %s NOLOGIN" % WORKER_ROLE)
            cur.execute("ALTER ROLE %s LOGIN PASSWORD '%s'" % (WORKER_ROLE, WORKER_PASSWORD))
        except psycopg2.Error:
            time.sleep(0.05)


def worker_env(db, **extra):
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": db.url if os.environ.get("GW_TEST_DB_ROLE") == "owner" else getattr(db, "worker_url", db.url),
        "WORKER_API_KEY": API_KEY,
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
        "LOG_LEVEL": "info",
        "LEASE_SECONDS": "3",
        "POLL_INTERVAL_MS": "5000",
        "SHUTDOWN_GRACE_MS": "2000",
        "GW_STRICT_STATES": "1",  # an impossible job state transition aborts the worker (handlers/job.c)
        "RESULT_REUSE_TTL_HOURS": "0",  # tests re-run videos to exercise the pipeline; test_reuse turns reuse on
    })
    env.update({k: str(v) for k, v in extra.items()})
    for k in WORKER_TIMINGS:
        if WORKER_SCALE != 1 and k in env:
            env[k] = str(int(float(env[k]) * WORKER_SCALE))
    return env


class Worker:
    """A glint-worker process; its port is read from its 'listening on' log line."""

    def __init__(self, db, binary="glint-worker-test", migrate=False, log_path=None, **extra):
        self.env = worker_env(db, **extra)
        path = os.path.join(BIN, "tests", binary) if binary.endswith("-test") else os.path.join(BIN, binary)
        if migrate:
            subprocess.run([path, "migrate"], env=dict(self.env, DATABASE_URL=db.url), check=True, capture_output=True,
                           cwd="/tmp")
        self.log_path = log_path or "/tmp/glint-worker-%s-%d.log" % (db.name, time.monotonic_ns())
        self.log = open(self.log_path, "w+")
        # valgrind's own messages go to a file of their own: tests read the worker's log line by line, and valgrind 3.19
        # warns there about syscalls it does not know (pidfd_open, which reactor/proc.c then stops using)
        self.vg_log = self.log_path + ".valgrind" if "valgrind" in WRAPPER else None
        vg = ["--log-file=" + self.vg_log] if self.vg_log else []
        self.proc = subprocess.Popen(WRAPPER + vg + [path], env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd="/tmp")
        self.port = int(self.env["PORT"])
        deadline = time.time() + 15 * SCALE
        up = False
        while time.time() < deadline and not up and self.proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                up = True
            except OSError:
                time.sleep(0.005)
        if not up:
            raise RuntimeError("worker did not start:\n" + self.read_log())

    def read_log(self):
        with open(self.log_path) as f:
            return f.read()

    def wait_ready(self, timeout=10):
        deadline = time.time() + timeout * SCALE
        while time.time() < deadline:
            if "LISTEN active" in self.read_log():
                return True
            time.sleep(0.01)
        return False

    def http(self, method, path, body=None, headers=None, timeout=10):
        req = urllib.request.Request("http://127.0.0.1:%d%s" % (self.port, path), data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read().decode(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode(), dict(e.headers)

    def json(self, method, path, key=API_KEY, **kw):
        headers = {"X-API-Key": key} if key else {}
        st, body, _ = self.http(method, path, headers=headers, **kw)
        try:
            return st, json.loads(body)
        except ValueError:
            return st, body

    def metric(self, name):
        _, text, _ = self.http("GET", "/metrics")
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                total += float(line.rsplit(" ", 1)[1])
                found = True
        return total if found else None

    def send(self, sig):
        self.signalled = True
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stops the worker and returns its exit status. Checked here, for every test (some never look at it): a first
        SIGTERM must end in exit 0 (a leak LeakSanitizer reports at shutdown changes the status), and no worker log may
        hold a sanitizer report, whatever the status (a SIGKILLed or deliberately crashed worker included)."""
        graceful = False
        if self.proc.poll() is None:
            graceful = sig == signal.SIGTERM and not getattr(self, "signalled", False)
            self.signalled = True
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        if WRAPPER and rc == 99:
            # valgrind found errors or definite/indirect leaks: fail the test module, show the report
            report_text = open(self.vg_log).read() if self.vg_log and os.path.exists(self.vg_log) else self.read_log()
            check(False, "memcheck errors in %s:\n%s" % (self.vg_log or self.log_path, report_text[-20000:]))
        elif graceful:
            check(rc == 0, "worker exit status %s after SIGTERM (%s):\n%s" % (rc, self.log_path, self.read_log()[-4000:]))
        reports = sanitizer_reports(self.read_log())
        check(not reports, "sanitizer report in %s:\n%s" % (self.log_path, reports[:20000]))
        return rc


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def sanitizer_reports(log):
    """The part of a log from its first ASan/LSan/UBSan report on, or "" when there is none."""
    at = [log.find(m) for m in SANITIZER_MARKERS if m in log]
    return log[min(at):] if at else ""


def wait_for(pred, timeout=20, interval=0.02):
    deadline = time.time() + timeout * SCALE
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def migrate(db):
    subprocess.run([os.path.join(BIN, "glint-worker"), "migrate"], env=worker_env(db, DATABASE_URL=db.url), check=True,
                   capture_output=True, cwd="/tmp")


def insert_jobs(db, urls, mode="standard", user=None):
    user = user or str(uuid.uuid4())
    cur = db.conn.cursor()
    psycopg2.extras.execute_values(cur, "INSERT INTO analysis_jobs (user_id, video_url, mode) VALUES %s RETURNING id",
                                   [(user, u, mode) for u in urls], page_size=len(urls) or 1)
    return [r[0] for r in cur.fetchall()]


def pct(values, p):
    """The p-th percentile (nearest rank) of values."""
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
