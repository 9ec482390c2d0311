"""/metrics: every documented family is present and moves when its event happens — jobs by outcome and mode, stage
histograms (failed stages too), job duration and queue wait histograms, Gemini calls by status, tokens by kind, retries,
LISTEN reconnects, jobs found by poll, queue depth and oldest pending age (cached: scrapes cost no queries), active
jobs, build info, the process_* families dashboards expect; `promtool check metrics` (Debian's prometheus package) is
clean on live scrapes. Production binary, stand-ins, real PostgreSQL."""
import re
import shutil
import subprocess
import tempfile
import time
import uuid

from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

db = Database("metrics")
w = None
gem = fake_gemini()
work = tempfile.mkdtemp(prefix="glint-metrics-")


def scrape():
    st, text, _ = w.http("GET", "/metrics")
    vals, types = {}, {}
    for line in text.splitlines():
        m = re.match(r"# TYPE (\S+) (\S+)", line)
        if m:
            types[m.group(1)] = m.group(2)
        elif line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    return vals, types


def promtool(text, what):
    """promtool reads the exposition on stdin; exit 0 and no output = clean (lint problems are printed, exit 3)."""
    if shutil.which("promtool") is None:
        check(False, "promtool missing: install Debian's prometheus package (docker/deps.sh test)")
        return
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0 and not (p.stdout + p.stderr).strip(), "promtool check metrics clean (%s): rc=%d %s" % (
        what, p.returncode, (p.stdout + p.stderr)[:1500]))


def val(key):
    return scrape()[0].get(key, 0.0)


def enqueue(url, mode="standard"):
    return db.one("SELECT glint_enqueue_job(%s, %s, %s)::text", user, url, mode)


def status(jid):
    return db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)


try:
    migrate(db)
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1000)", user)
    w = Worker(db, binary="glint-worker", **pipeline_env(gem, work, POLL_INTERVAL_MS=400, GEMINI_MAX_RETRIES=2))
    check(w.wait_ready(), "worker ready")
    v0, types = scrape()
    families = {"glint_jobs_finished_total": "counter", "glint_jobs_claimed_total": "counter",
                "glint_stage_duration_seconds": "histogram", "glint_gemini_requests_total": "counter",
                "glint_gemini_tokens_total": "counter", "glint_retries_total": "counter",
                "glint_jobs_retried_total": "counter", "glint_listen_reconnects_total": "counter",
                "glint_jobs_found_by_poll_total": "counter", "glint_queue_depth": "gauge",
                "glint_queue_oldest_pending_seconds": "gauge", "glint_active_jobs": "gauge",
                "process_resident_memory_bytes": "gauge", "process_open_fds": "gauge", "glint_sentry_events_total": "counter",
                "glint_database_up": "gauge", "glint_build_info": "gauge", "process_start_time_seconds": "gauge",
                "process_cpu_seconds_total": "counter", "process_max_fds": "gauge",
                "glint_job_duration_seconds": "histogram", "glint_job_queue_wait_seconds": "histogram",
                "glint_sentry_dropped_total": "counter", "glint_http_connections": "gauge",
                "glint_http_connections_refused_total": "counter", "glint_model_check_ok": "gauge"}
    for f, t in families.items():
        check(types.get(f) == t, "family %s is a %s (got %s)" % (f, t, types.get(f)))
    check(v0["process_resident_memory_bytes"] > 1e6 and v0["process_open_fds"] >= 4, "RSS and fds are real numbers")
    check(v0["glint_database_up"] == 1, "database up")
    builds = [k for k in v0 if k.startswith("glint_build_info{")]
    check(len(builds) == 1 and re.match(r'glint_build_info\{version="\d+\.\d+\.\d+",commit="[^"]+"\}$', builds[0])
          and v0[builds[0]] == 1, "build info: %r" % builds)
    start = v0["process_start_time_seconds"]
    check(time.time() - 120 < start <= time.time(), "process start time is this process's: %s" % start)
    check(v0["process_cpu_seconds_total"] >= 0 and v0["process_max_fds"] >= v0["process_open_fds"], "cpu, max fds")
    check(v0["glint_model_check_ok"] == 1, "model check passed against the stand-in")
    st, text, _ = w.http("GET", "/metrics")
    promtool(text, "idle worker")

    # a completed standard job: outcome, claims, stage histograms, Gemini 200, tokens
    jid = enqueue("https://www.youtube.com/watch?v=ok000000000")
    wait_for(lambda: status(jid) == "COMPLETED", 30)
    v1, _ = scrape()
    k = 'glint_jobs_finished_total{outcome="completed",mode="standard"}'
    check(v1[k] == v0[k] + 1, "completed/standard +1")
    check(v1['glint_jobs_claimed_total{mode="standard"}'] == v0['glint_jobs_claimed_total{mode="standard"}'] + 1, "claimed +1")
    for stage in ("metadata", "analyze"):
        c = 'glint_stage_duration_seconds_count{stage="%s",outcome="ok"}' % stage
        inf = 'glint_stage_duration_seconds_bucket{stage="%s",outcome="ok",le="+Inf"}' % stage
        check(v1.get(c) == v0.get(c, 0) + 1 and v1.get(inf) == v1.get(c), "stage %s histogram +1" % stage)
        check(v1.get('glint_stage_duration_seconds_sum{stage="%s",outcome="ok"}' % stage, 0) > 0, "stage %s sum > 0" % stage)
    k = 'glint_job_duration_seconds_count{mode="standard",outcome="completed"}'
    check(v1.get(k) == v0.get(k, 0) + 1 and v1.get(k.replace("_count", "_sum")) > 0, "job duration observed: %s" % v1.get(k))
    k = 'glint_job_queue_wait_seconds_count{mode="standard"}'
    check(v1.get(k) == v0.get(k, 0) + 1, "queue wait observed: %s" % v1.get(k))
    wait_sum = v1.get('glint_job_queue_wait_seconds_sum{mode="standard"}', -1)
    check(0 <= wait_sum < 10, "the queue wait is the claim's, a NOTIFY away: %s s" % wait_sum)
    check(v1.get('glint_gemini_requests_total{code="200"}', 0) >= v0.get('glint_gemini_requests_total{code="200"}', 0) + 1,
          "Gemini 200 counted")
    for kind in ("prompt", "output"):
        key = 'glint_gemini_tokens_total{kind="%s"}' % kind
        check(v1.get(key, 0) > v0.get(key, 0), "%s tokens counted" % kind)
    buckets = sorted((float(m.group(1)), v) for kk, v in v1.items()
                     for m in [re.match(r'glint_stage_duration_seconds_bucket\{stage="metadata",outcome="ok",le="([\d.e+]+)"\}', kk)]
                     if m)
    check(buckets and all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "buckets are cumulative")

    # Gemini answers 503 once: status counted, a retry counted, the job still completes
    gem.call("/_control", {"faults": ["503"], "fault_count": 1})
    jid = enqueue("https://youtu.be/ok000000001")
    wait_for(lambda: status(jid) == "COMPLETED", 30)
    v2, _ = scrape()
    check(v2.get('glint_gemini_requests_total{code="503"}', 0) == v1.get('glint_gemini_requests_total{code="503"}', 0) + 1,
          "Gemini 503 counted")
    check(v2.get('glint_retries_total{what="gemini"}', 0) == v1.get('glint_retries_total{what="gemini"}', 0) + 1,
          "Gemini retry counted")

    # failures: permanent (private video) and transient (retried back to PENDING, then failed for good)
    jid = enqueue("https://youtu.be/private0000")
    wait_for(lambda: status(jid) == "FAILED", 30)
    db.q("UPDATE analysis_jobs SET max_attempts = 2 WHERE status = 'PENDING'")
    jid2 = enqueue("https://youtu.be/ratelimit00")
    db.q("UPDATE analysis_jobs SET max_attempts = 2 WHERE id = %s", jid2)
    wait_for(lambda: status(jid2) == "FAILED", 40)
    v3, _ = scrape()
    k = 'glint_jobs_finished_total{outcome="failed",mode="standard"}'
    check(v3[k] == v2[k] + 2, "failed/standard +2: %s -> %s" % (v2[k], v3[k]))
    k = 'glint_jobs_finished_total{outcome="retried",mode="standard"}'
    check(v3[k] == v2[k] + 1 and v3["glint_jobs_retried_total"] == v2["glint_jobs_retried_total"] + 1, "retried +1")
    k = 'glint_stage_duration_seconds_count{stage="metadata",outcome="failed"}'
    check(v3.get(k, 0) >= v2.get(k, 0) + 2, "failed stages observed (metadata: private video, rate limit): %s" % v3.get(k))
    for outcome, n in (("failed", 2), ("retried", 1)):
        k = 'glint_job_duration_seconds_count{mode="standard",outcome="%s"}' % outcome
        check(v3.get(k, 0) == v2.get(k, 0) + n, "job duration %s +%d: %s" % (outcome, n, v3.get(k)))

    # a job in flight: active_jobs 1; cancelled through the API: cancelled/standard +1, active back to 0
    jid = enqueue("https://youtu.be/hang0000000")
    check(wait_for(lambda: val("glint_active_jobs") == 1, 10), "active_jobs = 1 while a job runs")
    st, _ = w.json("POST", "/worker/jobs/%s/cancel" % jid)
    check(st == 200 and wait_for(lambda: val("glint_active_jobs") == 0, 10), "active_jobs back to 0 after cancel")
    k = 'glint_jobs_finished_total{outcome="cancelled",mode="standard"}'
    check(val(k) == v3[k] + 1, "cancelled/standard +1")

    k = 'glint_job_duration_seconds_count{mode="standard",outcome="cancelled"}'
    check(val(k) == v3.get(k, 0) + 1, "job duration cancelled +1")

    # deep mode is counted under its own label
    jid = enqueue("https://youtu.be/ok000000004", "deep")
    wait_for(lambda: status(jid) in ("COMPLETED", "FAILED"), 60)
    v4, _ = scrape()
    out = "completed" if status(jid) == "COMPLETED" else "failed"
    k = 'glint_jobs_finished_total{outcome="%s",mode="deep"}' % out
    check(v4[k] == v3[k] + 1 and v4['glint_jobs_claimed_total{mode="deep"}'] >= 1, "deep job counted as %s/deep" % out)
    check(v4.get('glint_job_queue_wait_seconds_count{mode="deep"}') == 1, "deep queue wait observed")
    st, text, _ = w.http("GET", "/metrics")
    promtool(text, "after jobs of every outcome")

    # a job inserted without its notification is found by the fallback poll
    cur = db.conn.cursor()
    cur.execute("BEGIN; SET LOCAL session_replication_role = replica;"
                " INSERT INTO analysis_jobs (user_id, video_url, mode) VALUES (%s, 'https://youtu.be/ok000000005', 'standard')"
                " RETURNING id::text", (user,))
    jid = cur.fetchone()[0]
    cur.execute("COMMIT")
    wait_for(lambda: status(jid) == "COMPLETED", 20)
    check(val("glint_jobs_found_by_poll_total") == v4["glint_jobs_found_by_poll_total"] + 1, "found by poll +1")

    # queue depth and oldest age: refreshed by the maintenance timer
    db.q("INSERT INTO analysis_jobs (user_id, video_url, mode, run_after, created_at) SELECT %s, 'https://youtu.be/ok000000006',"
         " 'standard', now() + interval '1 hour', now() - interval '90 seconds' FROM generate_series(1, 5)", user)
    check(wait_for(lambda: val("glint_queue_depth") == 5, 12), "queue depth 5")
    check(val("glint_queue_oldest_pending_seconds") >= 90, "oldest pending >= 90 s")
    # cached: 100 scrapes cost (next to) no transactions
    xact = lambda: db.one("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()")
    # the maintenance timer runs its own queries meanwhile: compare with an idle window of the same length
    def window(work):
        db.q("SELECT pg_stat_clear_snapshot()")
        x0, t0 = xact(), time.time()
        work()
        took = time.time() - t0
        time.sleep(1.1)  # PostgreSQL 15 backends flush statistics at most once a second
        db.q("SELECT pg_stat_clear_snapshot()")
        return xact() - x0, took

    # an idle backend may flush older statistics up to 10 s late, into either window:
    # a scrape that queried would add >= 100 in every attempt, a late flush lands in one
    for attempt in range(3):
        scraped, took = window(lambda: [scrape() for _ in range(100)])
        idle, _ = window(lambda: time.sleep(took))
        if scraped - idle < 30:
            break
    check(scraped - idle < 30, "100 scrapes ran no queries (transactions: %d, %d in an idle window as long)" % (scraped, idle))

    # LISTEN connection dropped: reconnect counted, database_up back to 1
    r0 = val("glint_listen_reconnects_total")
    db.q("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'glint-worker'")
    check(wait_for(lambda: val("glint_listen_reconnects_total") == r0 + 1 and val("glint_database_up") == 1, 15),
          "LISTEN reconnect counted")
finally:
    if w:
        w.stop()
    db.close()
report()
