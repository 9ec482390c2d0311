#!/usr/bin/env python3
"""Pickup latency and what it is made of. Prints figures; asserts nothing. Needs a built tree; starts its own
PostgreSQL.
    tests/bench/bench_pickup.py [build-dir] [variant ...]
600 single-row inserts into an idle worker, one at a time (started_at - created_at, as bench_queue.py measures it),
for each variant in turn on the same worker and database:
    asis       the tree as it is
    noevents   the job-event triggers (sql/017) disabled, to price them
BENCH_PICKUP_JOBS overrides 600; WORKER_ENV="NAME=value ..." passes settings to the worker (MAX_CONCURRENT_DEEP_JOBS=0:
the claim without the deep cap); GW_TEST_DB_ROLE=owner runs the worker as the table owner (no row-level security)."""
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
VARIANTS = sys.argv[2:] or ["asis"]
os.environ["GW_TEST_BIN"] = BUILD
state = os.path.join(tempfile.mkdtemp(), "pg.env")
os.environ["GW_PG_STATE"] = state
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from harness import Database, Worker, migrate  # noqa: E402

subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "start", state], check=True, capture_output=True)
N = int(os.environ.get("BENCH_PICKUP_JOBS", "600"))
db = Database("pickup")


def pickup():
    db.q("TRUNCATE analysis_jobs CASCADE")
    cur = db.conn.cursor()
    for _ in range(N):
        cur.execute("INSERT INTO analysis_jobs (user_id, video_url) VALUES (gen_random_uuid(), 'test://noop') RETURNING id")
        jid = cur.fetchone()[0]
        while True:
            cur.execute("SELECT status FROM analysis_jobs WHERE id = %s", (jid,))
            if cur.fetchone()[0] == "COMPLETED":
                break
    lat = sorted(float(r[0]) for r in db.q("SELECT extract(epoch FROM started_at - created_at) * 1000 FROM analysis_jobs"))
    return statistics.median(lat), lat[int(0.99 * len(lat))]


w = None
try:
    migrate(db)
    w = Worker(db, **dict(kv.split("=", 1) for kv in os.environ.get("WORKER_ENV", "").split() if kv))
    w.wait_ready()
    for v in VARIANTS:
        db.q("ALTER TABLE analysis_jobs ENABLE TRIGGER USER")
        if v == "noevents":
            db.q("ALTER TABLE analysis_jobs DISABLE TRIGGER analysis_jobs_events_insert")
            db.q("ALTER TABLE analysis_jobs DISABLE TRIGGER analysis_jobs_events_update")
        elif v != "asis":
            sys.exit("unknown variant %s" % v)
        print("%s: pickup p50 %.3f ms, p99 %.3f ms (%d inserts)" % ((v,) + pickup() + (N,)), flush=True)
finally:
    if w:
        w.stop()
    db.close()
    subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "stop", state], capture_output=True)
