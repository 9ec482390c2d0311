#!/usr/bin/env python3
"""Operations endpoints under a realistic table (issue 5). Prints figures; asserts nothing. Starts its own PostgreSQL.
    tests/bench/bench_api.py [build-dir]
With BENCH_API_JOBS (default 200,000) jobs in analysis_jobs (mixed statuses), latency of 200 sequential requests each:
GET /worker/jobs first page, a page deep in the keyset, a status filter, /health, /metrics, the dashboard page; and the
database transactions 1,000 /metrics scrapes cost (queue depth is cached)."""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
os.environ["GW_TEST_BIN"] = BUILD
state = os.path.join(tempfile.mkdtemp(), "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "start", state], check=True)

from harness import API_KEY, Database, Worker, migrate, pct  # noqa: E402

N = int(os.environ.get("BENCH_API_JOBS", "200000"))
REQS = 200
db = Database("bench_api")
w = None
try:
    migrate(db)
    db.q("INSERT INTO analysis_jobs (user_id, video_url, mode, status, created_at, run_after)"
         " SELECT gen_random_uuid(), 'https://youtu.be/ok' || lpad(i::text, 9, '0'), 'standard',"
         " (ARRAY['COMPLETED','COMPLETED','COMPLETED','FAILED','CANCELLED'])[1 + i %% 5],"
         " now() - make_interval(secs => i), now() + interval '1 day' FROM generate_series(1, %s) i", N)
    db.q("INSERT INTO analysis_jobs (user_id, video_url, mode, run_after) SELECT gen_random_uuid(), 'test://noop', 'standard',"
         " now() + interval '1 day' FROM generate_series(1, 100)")
    db.q("ANALYZE analysis_jobs")
    w = Worker(db)
    w.wait_ready()
    hdr = {"X-API-Key": API_KEY}
    deep_cursor = db.one("SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') || '_' || id"
                         " FROM analysis_jobs ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1", N - 1000)
    cases = [("GET /worker/jobs?limit=50", "/worker/jobs?limit=50", hdr),
             ("GET /worker/jobs?limit=50&before=<row %d>" % (N - 1000), "/worker/jobs?limit=50&before=" + deep_cursor, hdr),
             ("GET /worker/jobs?status=PENDING&limit=50", "/worker/jobs?status=PENDING&limit=50", hdr),
             ("GET /worker/jobs?status=FAILED&limit=200", "/worker/jobs?status=FAILED&limit=200", hdr),
             ("GET /health", "/health", {}), ("GET /metrics", "/metrics", {}), ("GET / (dashboard)", "/", {})]
    print("jobs in table: %d" % (N + 100))
    for name, path, h in cases:
        lat = []
        for _ in range(REQS):
            t0 = time.perf_counter()
            st, body, _ = w.http("GET", path, headers=h)
            lat.append((time.perf_counter() - t0) * 1000)
            assert st == 200, (path, st, body[:200])
        print("%-52s p50 %6.2f ms  p99 %6.2f ms  (%d bytes)" % (name, pct(lat, 50), pct(lat, 99), len(body)))
    xact = lambda: db.one("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    db.q("SELECT pg_stat_clear_snapshot()")
    x0, t0 = xact(), time.perf_counter()
    for _ in range(1000):
        w.http("GET", "/metrics")
    secs = time.perf_counter() - t0
    time.sleep(0.7)
    db.q("SELECT pg_stat_clear_snapshot()")
    print("1,000 /metrics scrapes in %.2f s: %d database transactions meanwhile (maintenance timer included)" %
          (secs, xact() - x0))
finally:
    if w:
        w.stop()
    db.close()
    subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "stop", state])
