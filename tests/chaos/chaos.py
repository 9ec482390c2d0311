#!/usr/bin/env python3
"""The fault matrix (issue 7): several worker processes over hundreds of jobs while something breaks, then an audit of
the database. Runs on its own PostgreSQL cluster (tests/pg_harness.sh) so restarting it disturbs no other test.

    GW_CHAOS=1 /usr/bin/python3 tests/chaos/chaos.py          (ctest: GW_CHAOS=1 ctest --test-dir build -L chaos)

Environment: GW_TEST_BIN (build dir, default build/), GW_CHAOS_ONLY=regex (scenario names), GW_CHAOS_SCALE=k (job
counts and fault windows times k; default 1 ~ 5 min on 2 cores), GW_CHAOS_PG_DOWN_S (default 30), GW_CHAOS_BURST
(rows of the burst insert, default 100000), GW_CHAOS_KEEP=1 (keep logs and the cluster directory for a post-mortem;
a failing scenario's logs are always kept), GW_CHAOS_SEED (random seed, printed). GW_TEST_BIN=build-asan runs it against
the ASan+UBSan build: a sanitizer report in any worker log fails the scenario. Needs root for a tmpfs mount (disk_full):
without it that phase is reported SKIPPED (loudly, in the log and the table), and with CI=true as root it fails.
Without GW_CHAOS=1 it exits 77 (ctest: skipped), so a plain `ctest` stays fast.

Audit, per scenario, over every row in the scenario's database:
  lost        a job enqueued but missing, or not terminal (COMPLETED/FAILED/CANCELLED) once the run drained
  stuck       a job left in PROCESSING
  duplicated  a job whose completion was accepted twice (worker logs), a COMPLETED job without exactly one result or a
              result on a job that is not COMPLETED, or (test pipeline) a stored result that no execution of the
              database's own attempt produced
  refund err  charges != 1 per job (deep: the charge plus at most one reconcile 'charge'/'adjust', together equal to
              credits_charged), FAILED/CANCELLED without exactly one refund of credits_charged, COMPLETED refunded
  balance err a user's balance != initial - charges + refunds (and != initial + sum of the ledger)
Time to recover: for each fault event, from the fault (or from the moment a fault with a duration is lifted) to the
first job completing again; the table shows the worst event. "stall" is the longest gap between two completions.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
import psycopg2  # noqa: E402

SRC = os.path.abspath(os.path.join(HERE, ".."))
BIN = os.path.abspath(os.environ.get("GW_TEST_BIN", os.path.join(SRC, "..", "build")))
SCALE = float(os.environ.get("GW_CHAOS_SCALE", "1"))
ONLY = os.environ.get("GW_CHAOS_ONLY", "")
PG_DOWN_S = float(os.environ.get("GW_CHAOS_PG_DOWN_S", "30"))
BURST = int(os.environ.get("GW_CHAOS_BURST", "100000"))
KEEP = os.environ.get("GW_CHAOS_KEEP") == "1"
harness.BIN = BIN
GEMINI_KEY = "AIzaChaosKey-0123456789abcdef"
INITIAL_BALANCE = 1000000
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


def n(x):
    return max(1, int(round(x * SCALE)))


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# The cluster: our own, so a restart or a stop is ours alone.
# ---------------------------------------------------------------------------------------------------------------------

class Cluster:
    def __init__(self, state_path):
        self.state_path = state_path
        subprocess.run([os.path.join(SRC, "pg_harness.sh"), "start", state_path], check=True, stdout=subprocess.DEVNULL)
        st = {}
        with open(state_path) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                st[k] = v
        self.dir, self.port, self.bindir = st["PG_DIR"], st["PGPORT"], st["PG_BINDIR"]
        harness.STATE = state_path  # harness.Database creates databases on this cluster
        # pg_harness.sh runs with synchronous_commit=off: an immediate restart then forgets commits it acknowledged
        # (the audit sees lost jobs and jobs completed twice). Production keeps the default, on, and so do we.
        # fsync=off stays: no scenario crashes the machine.
        self.opts = ("-k %s -p %s -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=on "
                     "-c full_page_writes=off -c max_connections=300" % (self.dir, self.port))
        self.stop()
        self.start()

    def pg_ctl(self, *args):
        cmd = [os.path.join(self.bindir, "pg_ctl"), "-D", os.path.join(self.dir, "data")] + list(args)
        if os.getuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def restart(self, mode):
        self.pg_ctl("restart", "-m", mode, "-w", "-t", "60")

    def stop(self):
        self.pg_ctl("stop", "-m", "fast", "-w", "-t", "60")

    def start(self):
        self.pg_ctl("start", "-w", "-t", "60", "-l", os.path.join(self.dir, "server.log"), "-o", self.opts)

    def destroy(self):
        subprocess.run([os.path.join(SRC, "pg_harness.sh"), "stop", self.state_path], stdout=subprocess.DEVNULL)


# ---------------------------------------------------------------------------------------------------------------------
# One scenario's run: a fresh database, users with credits, worker processes, the fault events, the audit.
# ---------------------------------------------------------------------------------------------------------------------

class Run:
    def __init__(self, cluster, name, binary="glint-worker-test", workers=4, users=20, **env):
        self.cluster, self.name, self.binary = cluster, name, binary
        self.tmp = tempfile.mkdtemp(prefix="glint-chaos-%s-" % name)
        self.db = harness.Database("chaos_" + name)
        harness.migrate(self.db)
        self.users = [str(uuid.uuid4()) for _ in range(users)]
        self.q("INSERT INTO user_credits (user_id, balance) SELECT unnest(%s::uuid[]), %s", self.users, INITIAL_BALANCE)
        self.exec_log = os.path.join(self.tmp, "exec.log")
        self.env = dict(LOG_FORMAT="json", LOG_LEVEL="info", LEASE_SECONDS=2, POLL_INTERVAL_MS=1000,
                        SHUTDOWN_GRACE_MS=1000, MAX_CONCURRENT_JOBS=8, GW_TEST_EXEC_LOG=self.exec_log)
        self.env.update(env)
        self.nworkers = workers
        self.mode = "standard"  # what enqueue() charges for
        self.duration_hint = {}
        self.workers = {}    # slot -> harness.Worker
        self.generation = {}  # slot -> restarts so far
        self.worker_logs = []
        self.known = []       # ids we enqueued
        self.events = []      # (epoch, description): fault events, each measured for time to recover
        self.kills = []       # (epoch, worker_id, ids it held): for orphan recovery
        self.notes = []
        self.faults = 0
        self.t0 = time.time()

    # -- database, tolerant of a restarting server --------------------------------------------------------------------

    def q(self, sql, *args, timeout=90):
        deadline = time.time() + timeout
        while True:
            try:
                if self.db.conn.closed:
                    self.db.conn = self.db.connect(self.db.name)
                    self.db.conn.autocommit = True
                return self.db.q(sql, *args)
            except psycopg2.DatabaseError as e:
                # the server went away (restart, stop): our faults never strike while a statement of ours runs, so
                # the statement was not executed and is safe to send again
                gone = isinstance(e, (psycopg2.OperationalError, psycopg2.InterfaceError)) or "connection" in str(e)
                if not (self.db.conn.closed or gone):
                    raise
                try:
                    self.db.conn.close()
                except psycopg2.Error:
                    pass
                if time.time() > deadline:
                    raise
                time.sleep(0.2)

    def one(self, sql, *args):
        rows = self.q(sql, *args)
        return rows[0][0] if rows else None

    def bulk_enqueue(self, rows):
        """What glint_enqueue_job writes (job, charge, balance), for many rows in one statement; a per-row call would
        take minutes here, each one updating the same few user_credits rows again inside one transaction. Every
        fourth job sleeps up to 40 ms (so jobs are RUNNING across heartbeats), the rest are no-ops."""
        ids = [r[0] for r in self.q(
            "WITH src AS (SELECT (%s::uuid[])[1 + i %% %s] AS user_id, CASE WHEN i %% 4 = 0"
            "             THEN 'test://sleep/' || (i %% 40) ELSE 'test://noop' END AS url FROM generate_series(1, %s) AS i),"
            " jobs AS (INSERT INTO analysis_jobs (user_id, video_url, mode, credits_charged)"
            "          SELECT user_id, url, 'standard', glint_credit_cost('standard') FROM src"
            "          RETURNING id, user_id, credits_charged),"
            " charges AS (INSERT INTO credit_ledger (user_id, job_id, delta, reason)"
            "             SELECT user_id, id, -credits_charged, 'charge' FROM jobs),"
            " balances AS (UPDATE user_credits u SET balance = u.balance - c.total, updated_at = clock_timestamp()"
            "              FROM (SELECT user_id, sum(credits_charged) AS total FROM jobs GROUP BY user_id) c"
            "              WHERE u.user_id = c.user_id)"
            " SELECT id FROM jobs", self.users, len(self.users), rows, timeout=300)]
        self.known.extend(ids)
        return ids

    def enqueue(self, urls, mode=None):
        """Charges and enqueues through glint_enqueue_job (one statement, one transaction). The run's `mode` unless
        given; a url in `duration_hint` is charged for that duration (the backend's estimate, reconciled later)."""
        if not urls:
            return []
        users = [self.users[random.randrange(len(self.users))] for _ in urls]
        hints = [self.duration_hint.get(u) for u in urls]
        rows = self.q("SELECT glint_enqueue_job(u, url, %s, d) FROM unnest(%s::uuid[], %s::text[], %s::numeric[])"
                      " AS t(u, url, d)", mode or self.mode, users, list(urls), hints)
        ids = [r[0] for r in rows]
        self.known.extend(ids)
        return ids

    # -- workers --------------------------------------------------------------------------------------------------------

    def worker_id(self, slot):
        return "chaos-%s-w%d-g%d" % (self.name, slot, self.generation.get(slot, 0))

    def start_worker(self, slot, wait=True):
        path = os.path.join(self.tmp, "%s.log" % self.worker_id(slot))
        self.worker_logs.append(path)
        w = harness.Worker(self.db, binary=self.binary, log_path=path, WORKER_ID=self.worker_id(slot), **self.env)
        self.workers[slot] = w
        if wait and not w.wait_ready(15):
            raise RuntimeError("worker %s not ready:\n%s" % (self.worker_id(slot), w.read_log()[-2000:]))
        return w

    def start_all(self, wait=True):
        for slot in range(self.nworkers):
            self.start_worker(slot, wait)

    def restart(self, slot):
        self.generation[slot] = self.generation.get(slot, 0) + 1
        return self.start_worker(slot)

    def kill9(self, slot):
        w, wid = self.workers[slot], self.worker_id(slot)
        held = [r[0] for r in self.q("SELECT id::text FROM analysis_jobs WHERE locked_by = %s AND status = 'PROCESSING'",
                                     wid)]
        t = time.time()
        w.proc.kill()
        w.proc.wait()
        w.log.close()
        self.kills.append((t, wid, held))
        self.events.append((t, "kill -9 %s" % wid))
        self.faults += 1

    def stop_all(self):
        """One SIGTERM to every worker at once (a second one means "exit now"); returns the exit codes."""
        for w in self.workers.values():
            if w.proc.poll() is None:
                w.send(signal.SIGTERM)
        rcs = []
        for w in self.workers.values():
            try:
                w.proc.wait(30)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            w.log.close()
            rcs.append(w.proc.returncode)
        self.workers = {}
        return rcs

    # -- progress -------------------------------------------------------------------------------------------------------

    def counts(self):
        return dict(self.q("SELECT status, count(*) FROM analysis_jobs GROUP BY status"))

    def wait_terminal(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            c = self.counts()
            if sum(v for k, v in c.items() if k not in TERMINAL) == 0:
                return True
            time.sleep(0.25)
        return False

    def feed(self, urls, seconds, tick=None, tick_every=None, hold=0.0):
        """Enqueues urls evenly over `seconds`; calls tick(self) every tick_every seconds from the start until the
        feed is over plus `hold` seconds."""
        start = time.time()
        fed = 0
        next_tick = start + (tick_every or 0)
        end = start + seconds + hold
        while time.time() < end or fed < len(urls):
            now = time.time()
            due = len(urls) if seconds <= 0 else min(len(urls), int(len(urls) * (now - start) / seconds) + 1)
            if due > fed:
                self.enqueue(urls[fed:due])
                fed = due
            if tick and now >= next_tick and now < end:
                tick(self)
                next_tick = time.time() + tick_every
            time.sleep(0.05)

    # -- the audit ------------------------------------------------------------------------------------------------------

    def accepted_completions(self):
        """Job id -> completions the workers logged as accepted by the database."""
        acc = {}
        for path in self.worker_logs:
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if '"completed"' not in line:
                            continue
                        try:
                            o = json.loads(line)
                        except ValueError:
                            continue
                        if o.get("message") == "completed" and o.get("job_id"):
                            acc[o["job_id"]] = acc.get(o["job_id"], 0) + 1
            except OSError:
                pass
        return acc

    def executions(self):
        """From the test pipeline's log: job id -> list of [worker, attempt, start_ms, end_ms|None, end_event]."""
        ex = {}
        if not os.path.exists(self.exec_log):
            return ex
        with open(self.exec_log) as f:
            for line in f:
                p = line.split()
                if len(p) != 5:
                    continue
                ev, jid, attempt, wid, ms = p[0], p[1], int(p[2]), p[3], int(p[4])
                runs = ex.setdefault(jid, [])
                if ev == "start":
                    runs.append([wid, attempt, ms, None, None])
                    continue
                for r in reversed(runs):
                    if r[0] == wid and r[1] == attempt and r[3] is None:
                        r[3], r[4] = ms, ev
                        break
        return ex

    def audit(self):
        a = {}
        rows = self.q("SELECT id::text, status, credits_charged, locked_by, attempts FROM analysis_jobs")
        status = {r[0]: r[1] for r in rows}
        a["jobs"] = len(rows)
        a["by_status"] = {s: sum(1 for r in rows if r[1] == s) for s in TERMINAL + ("PENDING", "PROCESSING")}
        missing = [j for j in self.known if j not in status]
        a["lost"] = len(missing) + sum(1 for r in rows if r[1] not in TERMINAL)
        a["stuck"] = a["by_status"]["PROCESSING"]

        # completed exactly once
        results = dict(self.q("SELECT j.id::text, count(r.job_id) FROM analysis_jobs j LEFT JOIN analysis_results r"
                              " ON r.job_id = j.id GROUP BY j.id"))
        dup = set()
        for jid, st in status.items():
            if (st == "COMPLETED") != (results.get(jid, 0) == 1) or results.get(jid, 0) > 1:
                dup.add(jid)
        acc = self.accepted_completions()
        dup |= {j for j, c in acc.items() if c > 1}
        ex = self.executions()
        a["reexecuted"] = a["overlaps"] = 0
        a["exec_measured"] = bool(ex) or self.binary == "glint-worker-test"  # production binary: no execution log
        if a["exec_measured"]:
            tags = dict(self.q("SELECT job_id::text, result->>'execution' FROM analysis_results"))
            held = {r[0]: "%s#%d" % (r[3], r[4]) for r in rows}
            for jid, tag in tags.items():
                done = {"%s#%d" % (r[0], r[1]) for r in ex.get(jid, []) if r[4] == "done"}
                if tag != held[jid] or tag not in done:
                    dup.add(jid)
            for jid, runs in ex.items():
                a["reexecuted"] += len(runs) > 1
                runs = sorted(runs, key=lambda r: r[2])
                for i, r in enumerate(runs):
                    if r[3] is not None and any(o[2] < r[3] for o in runs[i + 1:]):
                        a["overlaps"] += 1
                        break
        a["duplicated"] = len(dup)
        a["dup_ids"] = sorted(dup)[:5]

        # credits
        # deep: the charge at enqueue, then at most one reconcile row for the real duration ('charge' for the
        # difference, or 'adjust' giving some back); what the ledger took in all is credits_charged
        led = self.q("SELECT j.id::text, j.status, j.credits_charged, j.mode = 'deep',"
                     " count(*) FILTER (WHERE l.reason = 'charge'), count(*) FILTER (WHERE l.reason = 'adjust'),"
                     " coalesce(sum(-l.delta) FILTER (WHERE l.reason IN ('charge', 'adjust')), 0),"
                     " count(*) FILTER (WHERE l.reason = 'refund'), coalesce(sum(l.delta) FILTER (WHERE l.reason = 'refund'), 0)"
                     " FROM analysis_jobs j LEFT JOIN credit_ledger l ON l.job_id = j.id GROUP BY j.id")
        bad = 0
        a["reconciled"] = {"charge": 0, "adjust": 0}
        for jid, st, charged, deep, nch, nadj, ch, nref, ref in led:
            if deep:
                ok = nch >= 1 and nch + nadj <= 2 and ch == charged
                a["reconciled"]["charge"] += nch - 1 if nch >= 1 else 0
                a["reconciled"]["adjust"] += nadj
            else:
                ok = nch == 1 and nadj == 0 and ch == charged
            if st in ("FAILED", "CANCELLED"):
                ok = ok and nref == 1 and ref == charged
            else:
                ok = ok and nref == 0
            bad += not ok
        a["refund_errors"] = bad
        bal = self.q("SELECT u.user_id, u.balance,"
                     " (SELECT coalesce(sum(delta), 0) FROM credit_ledger l WHERE l.user_id = u.user_id),"
                     " (SELECT coalesce(sum(credits_charged), 0) FROM analysis_jobs j WHERE j.user_id = u.user_id),"
                     " (SELECT coalesce(sum(credits_charged), 0) FROM analysis_jobs j WHERE j.user_id = u.user_id"
                     "   AND j.status IN ('FAILED', 'CANCELLED'))"
                     " FROM user_credits u WHERE u.user_id = ANY(%s::uuid[])", self.users)
        a["balance_errors"] = sum(1 for _, b, s, ch, rf in bal
                                  if b != INITIAL_BALANCE + s or b != INITIAL_BALANCE - ch + rf)

        # time to recover
        fin = sorted(r[0] for r in self.q("SELECT extract(epoch FROM finished_at)::float8 FROM analysis_jobs"
                                          " WHERE status = 'COMPLETED'"))
        last = max([r[0] for r in self.q("SELECT extract(epoch FROM max(finished_at))::float8 FROM analysis_jobs")
                    if r[0] is not None] or [time.time()])
        ttr = []
        for t, _ in self.events:
            after = [f for f in fin if f > t]
            ttr.append((after[0] if after else last) - t)
        a["ttr"] = ttr
        a["stall"] = max([b - x for x, b in zip(fin, fin[1:])] or [0.0])
        orphans = []
        for t, wid, held_ids in self.kills:
            if held_ids:
                f = self.one("SELECT extract(epoch FROM max(finished_at))::float8 FROM analysis_jobs"
                             " WHERE id = ANY(%s::uuid[])", held_ids)
                if f is not None:
                    orphans.append(f - t)
        a["orphan_recovery"] = orphans
        a["faults"] = self.faults
        a["failed_codes"] = dict(self.q("SELECT error_code, count(*) FROM analysis_jobs WHERE status = 'FAILED'"
                                        " GROUP BY 1 ORDER BY 2 DESC"))
        a["lease_lost"] = self.count_log_lines('"lease lost; aborting"')
        a["retried_codes"] = self.retried_codes()
        # an ASan+UBSan build (GW_TEST_BIN=build-asan) reports into the same logs
        a["sanitizer"] = sum(self.count_log_lines(n) for n in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                                               "runtime error:"))
        return a

    def retried_codes(self):
        """Transient failures the workers logged ("code: message (will retry)"), by code."""
        codes = {}
        for path in self.worker_logs:
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if "(will retry)" in line:
                            try:
                                code = json.loads(line)["message"].split(":", 1)[0]
                            except (ValueError, KeyError):
                                continue
                            codes[code] = codes.get(code, 0) + 1
            except OSError:
                pass
        return dict(sorted(codes.items(), key=lambda kv: -kv[1]))

    def log_jobs(self, needle):
        """The job ids of the worker log lines containing needle (two workers' sweeps may both log one deletion)."""
        ids = set()
        for path in self.worker_logs:
            try:
                with open(path, errors="replace") as f:
                    for line in f:
                        if needle in line:
                            try:
                                ids.add(json.loads(line).get("job_id"))
                            except ValueError:
                                continue
            except OSError:
                pass
        return ids

    def count_log_lines(self, needle):
        total = 0
        for path in self.worker_logs:
            try:
                with open(path, errors="replace") as f:
                    total += sum(1 for line in f if needle in line)
            except OSError:
                pass
        return total

    def close(self, keep=False):
        for w in self.workers.values():
            w.stop(signal.SIGKILL)
        self.workers = {}
        try:
            self.db.close()
        except psycopg2.Error:
            pass
        if KEEP or keep:
            log("  logs kept in %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------------------
# Job mixes
# ---------------------------------------------------------------------------------------------------------------------

def test_mix(count, sleep_ms=(50, 800)):
    """The test pipeline's mix: mostly work that takes a while, some flaky, some permanent and transient failures."""
    urls = []
    for _ in range(count):
        r = random.random()
        if r < 0.06:
            urls.append("test://fail/permanent")
        elif r < 0.09:
            urls.append("test://fail/transient")
        elif r < 0.17:
            urls.append("test://flaky")
        else:
            urls.append("test://sleep/%d" % random.randint(*sleep_ms))
    return urls


_vid = [0]


def video(prefix):
    """A unique 11-character video id selecting a fake-yt-dlp scenario by prefix."""
    _vid[0] += 1
    return "https://www.youtube.com/watch?v=%s%0*d" % (prefix, 11 - len(prefix), _vid[0])


def cancel_some(run, fraction):
    """Cancels a few PENDING/PROCESSING jobs through the HTTP API of a live worker (the production path)."""
    live = [w for w in run.workers.values() if w.proc.poll() is None]
    if not live:
        return
    ids = [r[0] for r in run.q("SELECT id::text FROM analysis_jobs WHERE status IN ('PENDING', 'PROCESSING')"
                               " ORDER BY random() LIMIT %s", max(1, int(fraction * 100)))]
    for jid in ids:
        try:
            random.choice(live).json("POST", "/worker/jobs/%s/cancel" % jid, body=b"", timeout=5)
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------------------------------
# Scenarios. Each returns its Run (audited by the caller) and appends notes.
# ---------------------------------------------------------------------------------------------------------------------

def sc_kill9(cluster):
    run = Run(cluster, "kill9", workers=4)
    run.start_all()
    urls = test_mix(n(400))

    def tick(r):
        slot = random.randrange(r.nworkers)
        r.kill9(slot)
        time.sleep(0.3)
        r.restart(slot)
        if random.random() < 0.5:
            cancel_some(r, 0.03)

    run.feed(urls, 15 * SCALE, tick, 2.5)
    return run


def sc_sigterm(cluster):
    run = Run(cluster, "sigterm", workers=3, SHUTDOWN_GRACE_MS=800)
    run.start_all()
    urls = test_mix(n(240), sleep_ms=(200, 3000))
    exits = []

    def tick(r):
        slot = random.randrange(r.nworkers)
        w = r.workers[slot]
        t = time.time()
        r.events.append((t, "SIGTERM %s" % r.worker_id(slot)))
        r.faults += 1
        rc = w.stop(signal.SIGTERM, timeout=20)
        exits.append((rc, time.time() - t))
        r.restart(slot)

    run.feed(urls, 15 * SCALE, tick, 3)
    run.notes.append("SIGTERM exits %d/%d clean, slowest %.1f s" % (sum(1 for rc, _ in exits if rc == 0), len(exits),
                                                                    max([d for _, d in exits] or [0])))
    run.sigterm_unclean = sum(1 for rc, _ in exits if rc != 0)
    return run


def sc_pg_terminate(cluster):
    run = Run(cluster, "pg_terminate", workers=4)
    run.start_all()
    urls = test_mix(n(400))
    killed = [0]

    def tick(r):
        rows = r.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'glint-worker'"
                   " AND datname = %s", r.db.name)
        killed[0] += len(rows)
        r.events.append((time.time(), "pg_terminate_backend x%d" % len(rows)))
        r.faults += 1

    run.feed(urls, 15 * SCALE, tick, 1.0)
    run.notes.append("%d backends terminated" % killed[0])
    return run


def sc_pg_restart(cluster):
    run = Run(cluster, "pg_restart", workers=4)
    run.start_all()
    urls = test_mix(n(400))
    modes = ["fast", "immediate"]
    took = []

    def tick(r):
        if not modes:
            return
        mode = modes.pop(0)
        t = time.time()
        cluster.restart(mode)
        took.append("%s %.1f s" % (mode, time.time() - t))
        r.events.append((time.time(), "pg restart -m %s (measured from the server being back)" % mode))
        r.faults += 1

    run.feed(urls, 16 * SCALE, tick, 16 * SCALE * 0.35)
    run.notes.append("restarts: " + ", ".join(took))
    return run


def sc_pg_down_at_start(cluster):
    run = Run(cluster, "pg_down_start", workers=3)
    run.enqueue(test_mix(n(200)))
    run.db.conn.close()
    cluster.stop()
    try:
        run.start_all(wait=False)
        time.sleep(min(3.0, PG_DOWN_S))
        health = [w.json("GET", "/health", key=None)[0] for w in run.workers.values()]
        time.sleep(max(0.0, PG_DOWN_S - 3.0))
        alive = sum(1 for w in run.workers.values() if w.proc.poll() is None)
    finally:
        cluster.start()
    t = time.time()
    run.events.append((t, "PostgreSQL up after %.0f s" % PG_DOWN_S))
    run.faults += 1
    ready = [w.wait_ready(30) for w in run.workers.values()]
    run.notes.append("down %.0f s: health %s while down, %d/%d alive, %d/%d connected %.1f s after start" % (
        PG_DOWN_S, sorted(set(health)), alive, len(run.workers), sum(ready), len(ready), time.time() - t))
    run.down_ok = all(h == 503 for h in health) and alive == len(run.workers) and all(ready)
    return run


class Gemini:
    def __init__(self, tmp):
        port_file = os.path.join(tmp, "gemini.port")
        self.proc = subprocess.Popen([sys.executable, os.path.join(SRC, "standins", "fake_gemini.py"), "--port", "0",
                                      "--port-file", port_file, "--api-key", GEMINI_KEY, "--control"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        harness.wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10)
        self.base = "http://127.0.0.1:%d" % int(open(port_file).read())

    def control(self, path, body=None):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def production_run(cluster, name, workers=3, **env):
    tmp = tempfile.mkdtemp(prefix="glint-chaos-gem-")
    gem = Gemini(tmp)
    work = env.pop("WORK_DIR", None) or os.path.join(tmp, "work")
    os.makedirs(work, exist_ok=True)
    cfg = dict(PATH="/usr/bin:" + os.environ.get("PATH", ""),  # fake-yt-dlp's python3: not a slow pyenv shim
               YTDLP_PATH=os.path.join(SRC, "standins", "fake-yt-dlp"), GEMINI_BASE_URL=gem.base,
               GEMINI_API_KEY=GEMINI_KEY, WORK_DIR=work, FAKE_YTDLP_LOG=os.path.join(tmp, "ytdlp.log"),
               YTDLP_TIMEOUT_MS=1500, GEMINI_TIMEOUT_MS=1000, GEMINI_MAX_RETRIES=3, LEASE_SECONDS=4)
    cfg.update(env)
    run = Run(cluster, name, binary="glint-worker", workers=workers, **cfg)
    run.gemini, run.gem_tmp, run.work_dir = gem, tmp, work
    return run


def sc_gemini(cluster):
    run = production_run(cluster, "gemini_faults")
    try:
        run.gemini.control("/_control", {"retry_delay": "0.2s", "hang_ms": 1500,
                                         "random_faults": {"429_retry": 0.05, "503": 0.05, "reset": 0.05,
                                                           "timeout": 0.05, "truncated_json": 0.05}})
        run.start_all()
        urls = [video("ok") for _ in range(n(200))]
        phase = [0]

        def tick(r):
            phase[0] += 1
            if phase[0] == 2:  # a 3 s outage: every request 503
                r.gemini.control("/_control", {"faults": ["503"]})
                time.sleep(3)
                r.gemini.control("/_control", {"faults": []})
                r.events.append((time.time(), "Gemini outage (all 503) lifted"))
                r.faults += 1

        run.feed(urls, 14 * SCALE, tick, 3)
        run.gemini.control("/_control", {"random_faults": {}})
        run.wait_terminal(120)
        stats = run.gemini.control("/_control/stats")
        applied = stats.get("faults_applied", {})
        run.faults += sum(applied.values())
        run.notes.append("stand-in faults: " + ", ".join("%s %d" % kv for kv in sorted(applied.items())))
        if stats.get("violations"):
            run.notes.append("PROTOCOL VIOLATIONS: %s" % stats["violations"][:3])
            run.violations = len(stats["violations"])
    except Exception:
        run.gemini.stop()
        raise
    return run


def sc_ytdlp(cluster):
    run = production_run(cluster, "ytdlp_faults", YTDLP_TIMEOUT_MS=3000)
    run.q("ALTER TABLE analysis_jobs ALTER COLUMN max_attempts SET DEFAULT 2")
    run.start_all()
    kinds = ["ok"] * 6 + ["hang", "crash", "flood", "nofile"]
    urls = [video(random.choice(kinds)) for _ in range(n(160))]
    run.feed(urls, 12 * SCALE)
    run.wait_terminal(120)
    by = {}
    for url, st, code in run.q("SELECT video_url, status, coalesce(error_code, '') FROM analysis_jobs"):
        kind = re.search(r"v=([a-z]+)", url).group(1)
        by.setdefault(kind, {}).setdefault("%s%s" % (st, "/" + code if code else ""), 0)
        by[kind]["%s%s" % (st, "/" + code if code else "")] += 1
    run.faults = sum(sum(v.values()) for k, v in by.items() if k != "ok")
    run.notes.append("; ".join("%s: %s" % (k, ", ".join("%s %d" % kv for kv in sorted(v.items())))
                               for k, v in sorted(by.items())))
    return run


def sc_disk(cluster):
    mnt = tempfile.mkdtemp(prefix="glint-chaos-disk-")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    mounted = mount.returncode == 0
    if not mounted:
        # Said loudly: a phase that did not run must not read as a pass. In CI as root mounting works, so it fails there.
        why = (mount.stderr.strip() or "exit status %d" % mount.returncode).splitlines()[0]
        in_ci = os.environ.get("CI") == "true" and os.geteuid() == 0
        log("*** SKIPPED: disk_full's disk-full phase (mount -t tmpfs failed: %s; needs root)%s ***"
            % (why, " -- a FAILURE here: CI=true and running as root, where mounting works" if in_ci else ""))
    work = os.path.join(mnt, "work")
    os.makedirs(work)
    run = production_run(cluster, "disk_full", WORK_DIR=work)
    run.mnt, run.mounted = mnt, mounted
    if not mounted:
        run.skipped = ["disk-full phase (tmpfs mount failed: %s)" % why]
        run.mount_failed_in_ci = in_ci
    run.q("ALTER TABLE analysis_jobs ALTER COLUMN max_attempts SET DEFAULT 5")
    run.start_all()
    urls = [video("ok") for _ in range(n(150))]
    phase = [0]

    def tick(r):
        phase[0] += 1
        if phase[0] == 1 and mounted:  # fill the tmpfs: every write gets ENOSPC
            with open(os.path.join(mnt, "filler"), "wb") as f:
                try:
                    while True:
                        f.write(b"\0" * 65536)
                        f.flush()
                except OSError:
                    pass
            time.sleep(4)
            os.unlink(os.path.join(mnt, "filler"))
            r.events.append((time.time(), "scratch disk full, freed"))
            r.faults += 1
        elif phase[0] == 2:  # a file where the scratch directory should be
            r.moved_away = set(os.listdir(work))  # in-flight scratch dirs: we move them away under the jobs
            os.rename(work, work + ".away")
            open(work, "w").close()
            time.sleep(3)
            os.unlink(work)
            os.rename(work + ".away", work)
            r.events.append((time.time(), "scratch dir replaced by a file, restored"))
            r.faults += 1

    run.feed(urls, 14 * SCALE, tick, 3)
    run.wait_terminal(120)
    codes = run.q("SELECT status, coalesce(error_code, ''), count(*) FROM analysis_jobs GROUP BY 1, 2 ORDER BY 1, 2")
    run.notes.append(("tmpfs 2 MB" if mounted else "**disk-full phase SKIPPED** (no tmpfs: mount failed): file-in-place only")
                     + "; outcomes: " +
                     ", ".join("%s%s %d" % (s, "/" + c if c else "", k) for s, c, k in codes))
    errs = run.q("SELECT error_code, count(*) FROM analysis_jobs WHERE error_code IS NOT NULL AND status = 'COMPLETED'"
                 " GROUP BY 1")
    if errs:
        run.notes.append("completed after errors: %s" % errs)
    return run


def sc_burst(cluster):
    run = Run(cluster, "burst", workers=4, users=100, MAX_CONCURRENT_JOBS=128)
    run.start_all()
    run.enqueue(test_mix(n(100), sleep_ms=(50, 300)))
    rows = BURST if SCALE >= 1 else max(1000, int(BURST * SCALE))
    t = time.time()
    run.bulk_enqueue(rows)
    ins = time.time() - t
    run.events.append((time.time(), "%d-row burst committed" % rows))
    run.faults += 1
    ok = run.wait_terminal(600)
    drained = time.time() - t
    run.notes.append("%d rows inserted in %.1f s (one statement), all terminal %.1f s after the insert began "
                     "(%.0f jobs/s)%s" % (rows, ins, drained, rows / max(drained, 0.001), "" if ok else " TIMEOUT"))
    return run


def vacuum_verbose(conn):
    """VACUUM (VERBOSE) analysis_jobs; returns the number of dead rows it could not remove yet."""
    del conn.notices[:]
    conn.cursor().execute("VACUUM (VERBOSE) analysis_jobs")
    m = re.search(r"(\d+) are dead but not yet removable", " ".join(conn.notices))
    return int(m.group(1)) if m else -1


def sc_vacuum(cluster):
    """The same bulk twice: first while a REPEATABLE READ transaction holds its snapshot (xmin) the whole time, so no
    dead row version can be vacuumed away, then after it ended and VACUUM ran."""
    run = Run(cluster, "vacuum_held", workers=3, MAX_CONCURRENT_JOBS=64)
    rows = n(20000)
    holder = run.db.connect(run.db.name)
    cur = holder.cursor()
    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    cur.execute("SELECT txid_current(), count(*) FROM analysis_jobs")  # an xid and a snapshot: xmin held back
    run.events.append((time.time(), "long transaction opened"))
    run.faults += 1
    run.start_all()
    run.enqueue(test_mix(n(300), sleep_ms=(10, 200)))
    t = time.time()
    run.bulk_enqueue(rows)
    run.wait_terminal(300)
    held_s = time.time() - t
    vac = run.db.connect(run.db.name)
    vac.autocommit = True
    not_removable = vacuum_verbose(vac)
    cur.execute("ROLLBACK")
    holder.close()
    for _ in range(20):  # an auto-analyze's snapshot may still hold the horizon for a moment
        after = vacuum_verbose(vac)
        if after == 0:
            break
        time.sleep(0.5)
    vac.close()
    t = time.time()
    run.bulk_enqueue(rows)
    run.wait_terminal(300)
    free_s = time.time() - t
    run.notes.append("%d-row bulk drained in %.1f s (%.0f jobs/s) under the held snapshot, %.1f s (%.0f jobs/s) after "
                     "it ended; VACUUM under the snapshot: %s dead rows not removable, after: %s" % (
                         rows, held_s, rows / held_s, free_s, rows / free_s, not_removable, after))
    run.vacuum_ok = not_removable > 0 and after == 0
    return run


def deep_media(tmp, seconds=8):
    """A real MP4 of ~10 MB (noise compresses badly) for fake-yt-dlp's deep downloads: an 8 MiB upload chunk and the
    rest, so a fault or a kill can strike between them."""
    path = os.path.join(tmp, "deep.mp4")
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "nullsrc=s=640x360:r=10,geq=random(1)*255:128:128", "-f", "lavfi", "-i",
                    "sine=frequency=300:beep_factor=4", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", path], check=True)
    return path


def kill_holder(run, what, pick, timeout=8.0):
    """kill -9 the worker holding a deep job that pick(rows, files, seconds left) names ((worker id, detail) or
    None), then restarts it."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = run.q("SELECT j.locked_by, r.display_name, r.file_name, j.stage FROM analysis_jobs j"
                     " JOIN glint_remote_files r ON r.job_id = j.id WHERE j.status = 'PROCESSING'")
        stand_in = run.gemini.control("/_control/files")
        wid, detail = pick(rows, stand_in, deadline - time.time()) or (None, None)
        slots = [s for s in range(run.nworkers) if run.worker_id(s) == wid and run.workers[s].proc.poll() is None]
        if slots:
            run.kill9(slots[0])
            run.events[-1] = (run.events[-1][0], "kill -9 %s %s" % (wid, what))
            run.notes.append("kill -9 %s (%s)" % (what, detail))
            time.sleep(0.3)
            run.restart(slots[0])
            return True
        time.sleep(0.05)
    run.notes.append("NO WORKER CAUGHT %s" % what)
    return False


def mid_upload(rows, stand_in, left):
    """A worker whose upload session is open with its first chunk committed (or, late, any open session)."""
    pending = {u["display_name"]: u["received"] for u in stand_in["pending_uploads"]}
    for wid, display, file_name, stage in rows:
        if file_name is None and stage == "upload" and display in pending and (pending[display] > 0 or left < 3):
            return wid, "%d bytes committed" % pending[display]
    return None


def file_processing(rows, stand_in, left):
    """A worker whose uploaded file exists remotely and is still PROCESSING (not ACTIVE yet)."""
    state = {f["displayName"]: f["state"] for f in stand_in["files"]}
    for wid, display, file_name, stage in rows:
        if file_name is not None and state.get(display) == "PROCESSING":
            return wid, "its worker held %d jobs" % sum(1 for r in rows if r[0] == wid)
    return None


def sc_deep_files(cluster):
    """Deep jobs through the Files API while it misbehaves at random, with an upload outage and two kill -9s (one
    mid-upload, one while the remote file is PROCESSING). Beyond the audit: nothing left behind remotely, in
    glint_remote_files or in WORK_DIR once the recovery sweep has run."""
    run = production_run(cluster, "deep_files_api", workers=3, YTDLP_TIMEOUT_MS=5000, DOWNLOAD_TIMEOUT_MS=20000,
                         GEMINI_TIMEOUT_MS=5000, GEMINI_MAX_RETRIES=2, UPLOAD_CHUNK_BYTES=8 << 20,
                         UPLOAD_MAX_RETRIES=2, UPLOAD_TIMEOUT_MS=10000, FILE_ACTIVE_TIMEOUT_MS=2000,
                         MAX_CONCURRENT_JOBS=4, POLL_INTERVAL_MS=500)
    try:
        run.mode = "deep"
        media = deep_media(run.gem_tmp)
        run.env.update(FAKE_YTDLP_MEDIA=media, FAKE_YTDLP_CACHE=run.gem_tmp)
        run.notes.append("media %.1f MB (%d upload requests)" % (os.path.getsize(media) / 1e6,
                                                                (os.path.getsize(media) + (8 << 20) - 1) // (8 << 20)))
        run.gemini.control("/_control", {"processing_polls": 1, "discard_uploads": True,
                                         "random_faults": {"upload_503": 0.07, "chunk_503": 0.07, "upload_reset": 0.07,
                                                           "never_active": 0.06, "file_failed": 0.04,
                                                           "file_expired": 0.06}})
        run.start_all()
        urls = []
        for _ in range(n(80)):
            r = random.random()
            if r < 0.12:
                urls.append(video("long"))  # 90 min: reconciled with a second 'charge', two videoMetadata segments
            elif r < 0.22:
                urls.append("https://www.youtube.com/watch?v=no_duration")  # ffprobe decides the credits
            else:
                urls.append(video("ok"))
                if r < 0.35:
                    run.duration_hint[urls[-1]] = 900  # charged for 15 min, 212 s: reconciled with an 'adjust'
        phase = [0]

        def tick(r):
            phase[0] += 1
            if phase[0] == 1:  # a slow link, so uploads are caught between chunks; one worker dies there
                r.gemini.control("/_control", {"chunk_delay_ms": 1500})
                kill_holder(r, "mid-upload", mid_upload)
                r.gemini.control("/_control", {"chunk_delay_ms": 0})
            elif phase[0] == 3:
                kill_holder(r, "while its file was PROCESSING", file_processing)
            elif phase[0] == 6:  # an upload outage (after the orphans re-ran): every start and chunk answers 503
                r.gemini.control("/_control", {"faults": ["upload_503"]})
                time.sleep(2.5)
                r.gemini.control("/_control", {"faults": []})
                r.events.append((time.time(), "Files API upload outage (all 503 for 2.5 s) lifted"))
                r.faults += 1

        run.feed(urls, 16 * SCALE, tick, 2)
        run.gemini.control("/_control", {"random_faults": {}})
        run.before_audit = deep_leftovers
    except Exception:
        run.gemini.stop()
        raise
    return run


def deep_leftovers(run):
    """After the drain: the stand-in holds no file, glint_remote_files no row, WORK_DIR no scratch dir. The recovery
    sweep (every 5 s) clears what the killed workers left once their jobs ended, so this waits up to 20 s."""
    t = time.time()
    state = {}

    def clean():
        state["files"] = run.gemini.control("/_control/files")
        state["rows"] = run.one("SELECT count(*) FROM glint_remote_files")
        state["dirs"] = os.listdir(run.work_dir)
        return not state["files"]["files"] and state["rows"] == 0 and not state["dirs"]
    harness.wait_for(clean, 20, 0.25)
    run.remote_left = len(state["files"]["files"]) + state["rows"]
    stats = run.gemini.control("/_control/stats")
    applied = stats.get("faults_applied", {})
    run.faults += sum(applied.values())
    run.notes.append("stand-in faults: " + ", ".join("%s %d" % kv for kv in sorted(applied.items())))
    run.notes.append("left after %.1f s: %d remote files, %d glint_remote_files rows, %d scratch dirs (%d unfinished "
                     "upload sessions, which the service expires)" % (
                         time.time() - t, len(state["files"]["files"]), state["rows"], len(state["dirs"]),
                         len(state["files"]["pending_uploads"])))
    if run.remote_left:
        run.notes.append("REMOTE LEFT BEHIND: %s" % [f["displayName"] for f in state["files"]["files"]][:5])
    run.notes.append("uploads resumed %d, files uploaded again %d, remote files of %d jobs deleted by the recovery "
                     "sweep" % (run.count_log_lines("upload: resuming at byte"), run.count_log_lines("uploading again"),
                                len(run.log_jobs("recovery: deleted a remote file"))))
    codes = run.q("SELECT status, coalesce(error_code, ''), count(*) FROM analysis_jobs GROUP BY 1, 2 ORDER BY 1, 2")
    run.notes.append("outcomes: " + ", ".join("%s%s %d" % (s, "/" + c if c else "", k) for s, c, k in codes))
    if stats.get("violations"):
        run.notes.append("PROTOCOL VIOLATIONS: %s" % stats["violations"][:3])
        run.violations = len(stats["violations"])


SCENARIOS = [
    ("kill9", "kill -9 a random worker every 2.5 s (restarted)", sc_kill9),
    ("sigterm", "SIGTERM a random worker mid-job every 3 s (restarted)", sc_sigterm),
    ("pg_terminate", "pg_terminate_backend on every worker connection, every 1 s", sc_pg_terminate),
    ("pg_restart", "PostgreSQL restart mid-run (-m fast, then -m immediate)", sc_pg_restart),
    ("pg_down_start", "PostgreSQL unreachable at start-up", sc_pg_down_at_start),
    ("gemini_faults", "Gemini: random 429/503/reset/stall/truncated JSON (25%) + 3 s outage", sc_gemini),
    ("ytdlp_faults", "yt-dlp hangs, crashes, floods stdout, writes no file", sc_ytdlp),
    ("disk_full", "scratch disk full (tmpfs), then a file in place of WORK_DIR", sc_disk),
    ("burst", "100,000-row burst insert (jobs + charges, one statement) while workers run", sc_burst),
    ("vacuum_held", "long transaction holding back vacuum", sc_vacuum),
    ("deep_files_api", "deep mode: random Files API faults (503/reset mid-upload, FAILED, never ACTIVE, expired), "
                       "an upload outage, kill -9 mid-upload and while PROCESSING", sc_deep_files),
]


# ---------------------------------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------------------------------

def finish(run, name):
    """Lets the run drain with every worker up, audits, stops the workers (clean exits expected)."""
    for slot in range(run.nworkers):
        w = run.workers.get(slot)
        if w is None or w.proc.poll() is not None:
            run.restart(slot)
    run.wait_terminal(180)
    if getattr(run, "before_audit", None):
        run.before_audit(run)  # e.g. deep: the recovery sweep's leftovers, checked while the workers still run
    a = run.audit()
    rcs = run.stop_all()
    a["unclean_exits"] = sum(1 for rc in rcs if rc != 0)
    a["stuck"] = max(a["stuck"], run.one("SELECT count(*) FROM analysis_jobs WHERE status = 'PROCESSING'"))
    if getattr(run, "work_dir", None) and os.path.isdir(run.work_dir):
        left = set(os.listdir(run.work_dir))
        moved = left & getattr(run, "moved_away", set())
        a["scratch_left"] = len(left - moved)
        if left - moved:
            run.notes.append("SCRATCH LEFT BEHIND: %d entries" % len(left - moved))
        if moved:
            run.notes.append("%d scratch dirs moved away under in-flight jobs stayed (the worker cannot reach them)"
                             % len(moved))
    return a


def fmt_s(v):
    return "%.2f s" % v if v is not None else "—"


def main():
    if os.environ.get("GW_CHAOS") != "1":
        print("chaos: set GW_CHAOS=1 to run the fault matrix (several minutes); skipping")
        return 77
    seed = int(os.environ.get("GW_CHAOS_SEED", str(int(time.time()))))
    random.seed(seed)
    log("GW_CHAOS_SEED=%d, GW_CHAOS_SCALE=%g" % (seed, SCALE))
    state = os.path.join(BIN, "tests", "chaos.pg.env")
    os.makedirs(os.path.dirname(state), exist_ok=True)
    cluster = Cluster(state)
    rows, failed, skipped = [], 0, []
    t_all = time.time()
    try:
        for name, desc, fn in SCENARIOS:
            if ONLY and not re.search(ONLY, name):
                continue
            log("scenario %s: %s" % (name, desc))
            t = time.time()
            run = None
            try:
                run = fn(cluster)
                a = finish(run, name)
            except Exception:
                traceback.print_exc()
                rows.append(dict(name=name, desc=desc, error=True, wall=time.time() - t))
                failed += 1
                if run:
                    run.close(keep=True)
                continue
            finally:
                if run and getattr(run, "gemini", None):
                    run.gemini.stop()
                    shutil.rmtree(run.gem_tmp, ignore_errors=True)
                if run and getattr(run, "mnt", None):
                    if run.mounted:
                        subprocess.run(["umount", "-l", run.mnt])
                    shutil.rmtree(run.mnt, ignore_errors=True)
            run.notes.append("FAILED by code: %s" % (", ".join("%s %d" % kv for kv in a["failed_codes"].items()) or "none"))
            run.notes.append("retried by code: %s" % (", ".join("%s %d" % kv for kv in a["retried_codes"].items())
                                                     or "none"))
            run.notes.append("'lease lost' aborts: %d" % a["lease_lost"])
            if any(a["reconciled"].values()):
                run.notes.append("reconcile ledger rows: 'charge' %d, 'adjust' %d" % (a["reconciled"]["charge"],
                                                                                     a["reconciled"]["adjust"]))
            a.update(name=name, desc=desc, wall=time.time() - t, notes="; ".join(run.notes), error=False)
            bad = a["lost"] + a["stuck"] + a["duplicated"] + a["refund_errors"] + a["balance_errors"]
            bad += a.get("unclean_exits", 0) + getattr(run, "sigterm_unclean", 0) + getattr(run, "violations", 0)
            bad += a.get("scratch_left", 0) + a["sanitizer"] + getattr(run, "remote_left", 0)
            if a["sanitizer"]:
                run.notes.append("SANITIZER REPORTS: %d (see the worker logs; GW_CHAOS_KEEP=1 keeps them)" % a["sanitizer"])
            bad += 1 if getattr(run, "mount_failed_in_ci", False) else 0
            skipped.extend("%s: %s" % (name, what) for what in getattr(run, "skipped", []))
            bad += 0 if getattr(run, "down_ok", True) else 1
            bad += 0 if getattr(run, "vacuum_ok", True) else 1
            a["ok"] = bad == 0
            failed += bad != 0
            rows.append(a)
            log("  %s: jobs %d %s lost %d stuck %d dup %d refund-err %d balance-err %d overlaps %d recover max %s "
                "stall %.2f s (%.0f s) %s" % ("ok" if a["ok"] else "FAILED", a["jobs"], a["by_status"], a["lost"],
                                             a["stuck"], a["duplicated"], a["refund_errors"], a["balance_errors"],
                                             a["overlaps"], fmt_s(max(a["ttr"]) if a["ttr"] else None), a["stall"],
                                             a["wall"], a["notes"]))
            if a["dup_ids"]:
                log("  duplicated e.g. %s" % a["dup_ids"])
            run.close(keep=not a["ok"])
    finally:
        if KEEP:
            log("cluster kept: %s" % cluster.dir)
        else:
            cluster.destroy()
    md = table(rows, time.time() - t_all)
    print(md)
    out = os.path.join(BIN, "chaos-summary.md")
    with open(out, "w") as f:
        f.write(md)
    log("summary written to %s" % out)
    for what in skipped:
        log("*** SKIPPED: %s ***" % what)
    return 1 if failed or not rows else 0


def table(rows, total):
    head = ("| scenario | jobs | completed / failed / cancelled | lost | stuck | duplicated | refund errors | "
            "balance errors | faults | time to recover (worst) | longest stall | re-run / overlapping | wall |\n"
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n")
    out = [head]
    for a in rows:
        if a.get("error"):
            out.append("| %s | ERROR (see log) | | | | | | | | | | | %.0f s |\n" % (a["name"], a["wall"]))
            continue
        b = a["by_status"]
        rec = max(a["ttr"]) if a["ttr"] else None
        if a["orphan_recovery"]:
            rec_s = "%s (orphans re-run ≤ %.1f s)" % (fmt_s(rec), max(a["orphan_recovery"]))
        else:
            rec_s = fmt_s(rec)
        rerun = "%d / %d" % (a["reexecuted"], a["overlaps"]) if a["exec_measured"] else "—"
        out.append("| %s | %d | %d / %d / %d | %d | %d | %d | %d | %d | %d | %s | %.2f s | %s | %.0f s |\n" % (
            a["name"], a["jobs"], b["COMPLETED"], b["FAILED"], b["CANCELLED"], a["lost"], a["stuck"], a["duplicated"],
            a["refund_errors"], a["balance_errors"], a["faults"], rec_s, a["stall"], rerun, a["wall"]))
    out.append("\nTotal %.0f s. Notes:\n\n" % total)
    for a in rows:
        if not a.get("error"):
            out.append("- **%s** (%s)%s: %s\n" % (a["name"], a["desc"], "" if a["ok"] else " **FAILED**",
                                                  a["notes"] or "—"))
    return "".join(out)


if __name__ == "__main__":
    sys.exit(main())
