#!/usr/bin/env python3
"""The claim before and after sql/009, side by side in one database under the same load (prints figures, asserts
nothing). Before: the UPDATE the worker ran itself (handlers/queue.c up to d344bd3). After: SELECT * FROM
glint_claim_jobs(...), the SECURITY DEFINER function it calls now. One pgbench script runs both, interleaved, so
both see the same load; pgbench -r reports each statement's mean latency:
  single: one job inserted, claimed with the idle worker's batch (LIMIT 8), completed — the pickup path
  drain:  N pending jobs claimed 256 at a time and completed — the drain path
    tests/supabase/bench_claim.py [build-dir]     (env: N=50000, SINGLE=2000)"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build"))
N, SINGLE = (int(os.environ.get(k, d)) for k, d in (("N", 50000), ("SINGLE", 2000)))
state = os.path.join(tempfile.mkdtemp(), "pg.env")
os.environ.update(GW_TEST_BIN=BUILD, GW_PG_STATE=state)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "start", state], check=True, capture_output=True)
from harness import Database, migrate, pg_state  # noqa: E402

SET = ("status = 'PROCESSING', locked_by = 'bench', attempts = j.attempts + 1, started_at = clock_timestamp(),"
       " lease_expires_at = clock_timestamp() + make_interval(secs => 30), stage = 'claimed', updated_at = clock_timestamp()")
BEFORE = ("UPDATE analysis_jobs j SET " + SET + " WHERE j.id = ANY(ARRAY(SELECT id FROM analysis_jobs WHERE status = 'PENDING'"
          " AND run_after <= now() ORDER BY run_after LIMIT %d FOR UPDATE SKIP LOCKED))"
          " RETURNING j.id, j.user_id, j.video_url, j.mode, j.attempts, j.max_attempts, j.credits_charged")
AFTER = "SELECT * FROM glint_claim_jobs('bench', 30, %d)"
COMPLETE = ("SELECT count(*) FROM glint_complete_jobs('bench', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', id, 'result',"
            " '{}'::jsonb)), '[]') FROM analysis_jobs WHERE status = 'PROCESSING' AND locked_by = 'bench'));\n")


INSERT = "INSERT INTO analysis_jobs (user_id, video_url) VALUES (gen_random_uuid(), 'test://noop');\n"


def claim_latencies(db, script, tx):
    """Mean latency (ms) of the two claim statements of script, in order."""
    st = pg_state()
    path = os.path.join(tempfile.mkdtemp(), "s.sql")
    with open(path, "w") as f:
        f.write(script)
    r = subprocess.run([os.path.join(st["PG_BINDIR"], "pgbench"), "-n", "-r", "-M", "prepared", "-c", "1", "-t", str(tx), "-f",
                        path, "-h", st["PGHOST"], "-p", st["PGPORT"], "-U", "postgres", db.name],
                       check=True, capture_output=True, text=True)
    return [float(line.split()[0]) for line in r.stdout.splitlines() if "UPDATE analysis_jobs j" in line
            or "glint_claim_jobs(" in line]


db = Database("bench_claim")
try:
    migrate(db)
    single = claim_latencies(db, INSERT + BEFORE % 8 + ";\n" + COMPLETE + INSERT + AFTER % 8 + ";\n" + COMPLETE, SINGLE)
    db.q("TRUNCATE analysis_jobs CASCADE")
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT gen_random_uuid(), 'test://noop' FROM generate_series(1, %s)", N)
    db.q("VACUUM ANALYZE analysis_jobs")
    drain = claim_latencies(db, BEFORE % 256 + ";\n" + COMPLETE + AFTER % 256 + ";\n" + COMPLETE, N // 512)
finally:
    db.close()
    subprocess.run([os.path.join(HERE, "..", "pg_harness.sh"), "stop", state], capture_output=True)
print("claim, batch 8 (pickup):   before %.3f ms, after %.3f ms per statement (after/before %.3f)"
      % (single[0], single[1], single[1] / single[0]))
print("claim, batch 256 (drain):  before %.3f ms, after %.3f ms per statement (after/before %.3f)"
      % (drain[0], drain[1], drain[1] / drain[0]))
