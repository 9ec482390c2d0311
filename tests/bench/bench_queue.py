#!/usr/bin/env python3
"""Queue benchmarks (issue 2). Prints figures; asserts nothing. Needs a built tree and starts its own PostgreSQL.
    tests/bench/bench_queue.py [build-dir]
1. pickup latency: 1,000 single-row inserts, one at a time, into an idle worker: started_at - created_at
2. throughput: drain 50,000 pre-inserted no-op jobs with one worker, vs pgbench running the same claim/complete SQL.
   Two figures: "in-database span" (first claim to last completion, from the rows' own timestamps: the worker's drain
   alone) and "wall" (from spawning the worker until the harness sees the last completion: adds process start and the
   harness's polling). docs/measurements.md quotes the in-database span figure and its ratio to pgbench.
   The worker's RSS is sampled every 10 ms while it drains; the peak of those samples is printed.
3. idle RSS and start-to-ready time"""
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
os.environ["GW_TEST_BIN"] = BUILD
state = os.path.join(tempfile.mkdtemp(), "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Database, Worker, migrate, pct, pg_state, rss_kb, wait_for  # noqa: E402

subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "start", state], check=True)  # after the import: it may fail

N_LAT = int(os.environ.get("BENCH_LATENCY_JOBS", "1000"))
N_TPUT = int(os.environ.get("BENCH_THROUGHPUT_JOBS", "50000"))
BATCH = int(os.environ.get("BENCH_BATCH", "256"))


class RssSampler(threading.Thread):
    """Reads a process's VmRSS every interval seconds until stopped; peak and count of the samples."""

    def __init__(self, pid, interval=0.01):
        super().__init__(daemon=True)
        self.pid, self.interval, self.samples = pid, interval, []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            try:
                self.samples.append(rss_kb(self.pid))
            except (OSError, AttributeError):  # the process is gone
                break
            self.done.wait(self.interval)

    def stop(self):
        self.done.set()
        self.join()
        return max(self.samples) if self.samples else 0


db = Database("bench")
try:
    migrate(db)
    # 3. start-to-ready and idle RSS
    t0 = time.perf_counter()
    w = Worker(db)
    w.wait_ready()
    ext_ms = (time.perf_counter() - t0) * 1000
    internal = re.search(r"ready: .*duration_ms=([\d.]+)", w.read_log())
    time.sleep(1.0)
    idle_rss = rss_kb(w.proc.pid)

    # 1. pickup latency
    cur = db.conn.cursor()
    for i in range(N_LAT):
        cur.execute("INSERT INTO analysis_jobs (user_id, video_url) VALUES (gen_random_uuid(), 'test://noop') RETURNING id")
        jid = cur.fetchone()[0]
        while True:
            cur.execute("SELECT status FROM analysis_jobs WHERE id = %s", (jid,))
            if cur.fetchone()[0] == "COMPLETED":
                break
    lat = [float(r[0]) for r in db.q("SELECT extract(epoch FROM started_at - created_at) * 1000 FROM analysis_jobs")]
    w.stop()

    # 2. throughput: worker
    db.q("TRUNCATE analysis_jobs CASCADE")
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'test://noop' FROM generate_series(1, %s)",
         N_TPUT)
    db.q("VACUUM ANALYZE analysis_jobs")
    t0 = time.perf_counter()
    w = Worker(db, MAX_CONCURRENT_JOBS=BATCH, LOG_LEVEL="warn")
    sampler = RssSampler(w.proc.pid)
    sampler.start()
    # polled through the two partial indexes: a count(*) every 10 ms scanned the table and took CPU from the drain
    wait_for(lambda: db.one("SELECT NOT EXISTS (SELECT 1 FROM analysis_jobs WHERE status = 'PENDING')"
                            " AND NOT EXISTS (SELECT 1 FROM analysis_jobs WHERE status = 'PROCESSING')"), 600, 0.01)
    worker_s = time.perf_counter() - t0
    peak_rss, rss_samples = sampler.stop(), len(sampler.samples)
    w.stop()
    # first/last claim inside the database: excludes process start
    span = float(db.one("SELECT extract(epoch FROM max(finished_at) - min(started_at)) FROM analysis_jobs"))

    # 2b. the same claim/complete SQL driven by pgbench (one client, batch BATCH)
    db.q("TRUNCATE analysis_jobs CASCADE")
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'test://noop' FROM generate_series(1, %s)",
         N_TPUT)
    db.q("VACUUM ANALYZE analysis_jobs")
    script = os.path.join(tempfile.mkdtemp(), "claim.sql")
    with open(script, "w") as f:
        f.write("WITH x AS (UPDATE analysis_jobs j SET status = 'PROCESSING',"
                " locked_by = 'bench', attempts = j.attempts + 1, started_at = clock_timestamp(),"
                " lease_expires_at = clock_timestamp() + make_interval(secs => 30), stage = 'claimed',"
                " updated_at = clock_timestamp() WHERE j.id = ANY(ARRAY(SELECT id FROM analysis_jobs WHERE status = 'PENDING'"
                " AND run_after <= now() ORDER BY priority DESC, run_after LIMIT %d FOR UPDATE SKIP LOCKED))"
                " RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged)"
                " SELECT coalesce(string_agg(id::text, ','), '') AS ids FROM x \\gset\n"
                "SELECT count(*) FROM glint_complete_jobs('bench', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', id,"
                " 'result', '{\"title\":\"test\",\"summary\":\"x\",\"keyTakeaways\":[\"ok\"],\"timeline\":[{\"timestamp\":"
                "\"00:00\",\"description\":\"start\",\"details\":[]}],\"keywords\":[\"test\"]}'::jsonb, 'model',"
                " 'test-pipeline', 'prompt_tokens', null, 'output_tokens', null, 'thoughts_tokens', null, 'timings', null)),"
                " '[]') FROM unnest(string_to_array(':ids', ',')::uuid[]) id));\n" % BATCH)
    st = pg_state()
    t0 = time.perf_counter()
    pb = subprocess.run([os.path.join(st["PG_BINDIR"], "pgbench"), "-n", "-c", "1", "-t", str((N_TPUT + BATCH - 1) // BATCH),
                    "-f", script, "-h", st["PGHOST"], "-p", st["PGPORT"], "-U", "postgres", db.name],
                   check=False, capture_output=True)
    if pb.returncode != 0:
        print(pb.stderr.decode()[-2000:])
    pgbench_s = time.perf_counter() - t0
    done = db.one("SELECT count(*) FROM analysis_jobs WHERE status = 'COMPLETED'")
finally:
    db.close()
    subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "stop", state], check=False, capture_output=True)

print("pickup latency (%d single-row inserts, idle worker): p50 %.3f ms, p99 %.3f ms, max %.3f ms"
      % (len(lat), statistics.median(lat), pct(lat, 99), max(lat)))
print("throughput (%d no-op jobs, one worker, batch %d): %.0f jobs/s in-database span, first claim to last completion"
      " (%.2f s) [the figure docs/measurements.md quotes]; %.0f jobs/s wall incl. process start and polling (%.2f s)"
      % (N_TPUT, BATCH, N_TPUT / span, span, N_TPUT / worker_s, worker_s))
print("peak RSS while draining: %.1f MB (max of %d samples, every 10 ms)" % (peak_rss / 1024, rss_samples))
print("pgbench, same claim/complete SQL, 1 client, batch %d: %.0f jobs/s (%.2f s, %d completed)"
      % (BATCH, done / pgbench_s, pgbench_s, done))
print("ratio worker/pgbench: %.2f (in-database span) [quoted], %.2f (wall)" % ((N_TPUT / span) / (done / pgbench_s),
                                                                             (N_TPUT / worker_s) / (done / pgbench_s)))
print("idle RSS: %.1f MB; start-to-ready: %s ms inside the process, %.1f ms from spawn to LISTEN active seen by the harness"
      % (idle_rss / 1024, internal.group(1) if internal else "?", ext_ms))
