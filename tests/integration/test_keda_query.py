"""The KEDA ScaledObject's query (deploy/kubernetes/keda.yaml), run as KEDA runs it: with the glint_worker role's
connection, against a migrated database. It must count the work in the system — runnable PENDING jobs (run_after
passed) and PROCESSING ones — and nothing else: not a retry still in its backoff, not finished jobs."""
import os
import uuid

import psycopg2
import yaml

from harness import SRC, WORKER_PASSWORD, WORKER_ROLE, Database, check, migrate, report

KEDA = os.path.join(SRC, "..", "deploy", "kubernetes", "keda.yaml")

so = next(d for d in yaml.safe_load_all(open(KEDA)) if d and d["kind"] == "ScaledObject")
trigger = next(t for t in so["spec"]["triggers"] if t["type"] == "postgresql")
query = trigger["metadata"]["query"]
target = float(trigger["metadata"]["targetQueryValue"])

db = Database("keda")
try:
    migrate(db)
    keda = psycopg2.connect(host=db.host, port=db.port, dbname=db.name, user=WORKER_ROLE, password=WORKER_PASSWORD)
    keda.autocommit = True

    def metric():
        cur = keda.cursor()
        cur.execute(query)
        rows = cur.fetchall()
        check(len(rows) == 1 and len(rows[0]) == 1 and isinstance(rows[0][0], int),
              "the query returns one integer (KEDA's contract): %r" % rows)
        return rows[0][0]

    check(metric() == 0, "empty queue -> 0")
    user = str(uuid.uuid4())
    rows = [  # (status, run_after offset, counted?)
        ("PENDING", "-1 minute", True), ("PENDING", "-1 second", True), ("PENDING", "0", True),
        ("PENDING", "+10 minutes", False),  # a retry in its backoff: not runnable yet
        ("PROCESSING", "-5 minutes", True), ("PROCESSING", "-1 hour", True),
        ("COMPLETED", "-1 hour", False), ("FAILED", "-1 hour", False), ("CANCELLED", "-1 hour", False),
    ]
    for status, offset, _ in rows:
        # inserted as the backend does, then moved to the state under test as the owner
        jid = db.one("INSERT INTO analysis_jobs (user_id, video_url) VALUES (%s, 'https://youtu.be/ok000000000') "
                     "RETURNING id", user)
        db.q("UPDATE analysis_jobs SET status = %s, run_after = now() + %s::interval, "
             "locked_by = CASE WHEN %s = 'PROCESSING' THEN 'w1' END, "
             "lease_expires_at = CASE WHEN %s = 'PROCESSING' THEN now() + interval '30 s' END WHERE id = %s",
             status, offset, status, status, jid)
    want = sum(1 for r in rows if r[2])
    got = metric()
    check(got == want, "runnable PENDING + PROCESSING counted: %s (want %s)" % (got, want))

    # KEDA asks for ceil(metric / targetQueryValue) replicas: 1,000 runnable jobs at 8 per worker -> 125 workers
    db.q("INSERT INTO analysis_jobs (user_id, video_url) SELECT %s, 'https://youtu.be/ok000000000' "
         "FROM generate_series(1, 1000)", user)
    got = metric()
    check(got == want + 1000, "a burst of 1,000 inserts is counted at once: %s" % got)
    print("metric %d -> KEDA asks for %d replicas at targetQueryValue %g (capped by maxReplicaCount %d)"
          % (got, -(-got // target), target, so["spec"]["maxReplicaCount"]))

    # the query is cheap enough to poll: one scan of analysis_jobs' status, whatever the table size
    db.q("ANALYZE analysis_jobs")
    cur = keda.cursor()
    cur.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query)
    plan = cur.fetchone()[0][0]
    print("query plan: %s, %.2f ms over %d rows" % (plan["Plan"]["Node Type"], plan["Execution Time"],
                                                     db.one("SELECT count(*) FROM analysis_jobs")))
    check(plan["Execution Time"] < 1000, "the query answers within a second")
    keda.close()
finally:
    db.close()
report()
