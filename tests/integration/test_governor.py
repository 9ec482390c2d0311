"""The Gemini quota governor (handlers/governor.c, sql/015): three worker processes share one requests-per-window
budget through PostgreSQL against a Gemini stand-in that enforces it like Gemini (429 RESOURCE_EXHAUSTED with a
RetryInfo retryDelay); a 429 pauses every instance; each job gets an estimated cost.

The stand-in and the workers use a 4 s window (GEMINI_RPM_WINDOW_MS, for tests only) so that 30 jobs at 10 per window
take ~12 s instead of 3 minutes; the arithmetic is the same as per minute."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from harness import BIN, Database, Worker, check, insert_jobs, migrate, report, wait_for, worker_env
from standins import fake_gemini, pipeline_env

RPM, WINDOW_MS, JOBS = 10, 4000, 30
IDEAL_S = JOBS / RPM * WINDOW_MS / 1000.0
FLASH = "gemini-3.6-flash"
FLASH_PRICE = (1.50, 9.00, 9.00)  # the default GEMINI_PRICES entry (handlers/settings.c)

tmp = tempfile.mkdtemp(prefix="glint-gov-")
work_dir = os.path.join(tmp, "work")
os.mkdir(work_dir)
gem = fake_gemini("--rpm-limit", str(RPM), "--rpm-window-ms", str(WINDOW_MS))
db = Database("governor")
workers = []


def status_counts():
    return dict(db.q("SELECT status, count(*) FROM analysis_jobs GROUP BY status"))


def metric_sum(name):
    return sum(w.metric(name) or 0 for w in workers)


def metric_line(w, prefix):
    _, text, _ = w.http("GET", "/metrics")
    return [l for l in text.splitlines() if l.startswith(prefix)]


def replay(body, n):
    """Sends one recorded generateContent body n times straight to the stand-in; returns the HTTP statuses and the last
    429 envelope."""
    codes, last = [], None
    for _ in range(n):
        req = urllib.request.Request("%s/v1beta/models/%s:generateContent" % (gem.base, FLASH),
                                     data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              "x-goog-api-key": pipeline_env(gem, work_dir)["GEMINI_API_KEY"]})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                codes.append(r.status)
        except urllib.error.HTTPError as e:
            codes.append(e.code)
            last = json.loads(e.read())
    return codes, last


try:
    migrate(db)
    env = pipeline_env(gem, work_dir, GEMINI_RPM=RPM, GEMINI_RPM_WINDOW_MS=WINDOW_MS, MAX_CONCURRENT_JOBS=8,
                       GEMINI_MAX_RETRIES=4)
    for name in ("gov-a", "gov-b", "gov-c"):
        workers.append(Worker(db, binary="glint-worker", WORKER_ID=name, **env))
    check(all(w.wait_ready() for w in workers), "three workers ready")

    # 30 jobs at once, three processes, eight slots each: the stand-in admits 10 per 4 s window
    t0 = db.one("SELECT clock_timestamp()")
    ids = insert_jobs(db, ["https://youtu.be/ok%09d" % i for i in range(JOBS)])
    check(wait_for(lambda: status_counts().get("COMPLETED", 0) == JOBS, 60), "all %d jobs completed: %s" % (JOBS, status_counts()))
    wall = db.one("SELECT extract(epoch FROM max(finished_at) - %s) FROM analysis_jobs", t0)
    stats = gem.call("/_control/stats")
    rejected = stats["rpm"]["rejected"]
    print("governed: %d jobs, %d workers, limit %d per %d ms: %d x 429, wall %.2f s, ideal %.2f s, ratio %.2f"
          % (JOBS, len(workers), RPM, WINDOW_MS, rejected, wall, IDEAL_S, float(wall) / IDEAL_S), flush=True)
    check(rejected <= 1, "at most one 429 between the three workers: %d" % rejected)
    check(metric_sum('glint_gemini_requests_total{code="429"}') <= 1, "workers saw at most one 429")
    check(stats["rpm"]["accepted"] >= JOBS, "every job called Gemini: %r" % stats["rpm"])
    check(float(wall) <= 1.3 * IDEAL_S, "finished within 1.3x the ideal time: %.2f s vs %.2f s" % (wall, IDEAL_S))
    holders = {r[0] for r in db.q("SELECT DISTINCT locked_by FROM analysis_jobs")}
    check(len(holders) >= 2, "the jobs were spread over several workers: %s" % holders)
    check(not stats.get("violations"), "no protocol violations: %s" % stats.get("violations"))
    row = db.q("SELECT requests, next_request_at > '-infinity', paused_until FROM glint_gemini_budget WHERE model = %s", FLASH)
    check(row and row[0][0] >= JOBS and row[0][1], "one shared budget row for %s: %r" % (FLASH, row))

    # the stand-in itself is not lenient: the same bodies sent without the governor hit the window at once
    codes, env429 = replay(stats["generate_bodies"][-1], RPM + 2)
    check(codes.count(429) >= 2 and codes[0] in (200, 429), "ungoverned burst is refused: %s" % codes)
    details = (env429 or {}).get("error", {}).get("details", [])
    retry = [d.get("retryDelay") for d in details if d.get("@type", "").endswith("RetryInfo")]
    check(env429 and env429["error"]["status"] == "RESOURCE_EXHAUSTED" and retry and retry[0].endswith("s"),
          "429 RESOURCE_EXHAUSTED with a RetryInfo retryDelay: %s" % env429)

    # cost: usage.cost_usd per job (API, CLI), glint_gemini_cost_usd_total{model} per process
    st, job = workers[0].json("GET", "/worker/jobs/%s" % ids[0])
    u = job.get("usage") or {}
    want = (u.get("prompt_tokens", 0) * FLASH_PRICE[0] + u.get("output_tokens", 0) * FLASH_PRICE[1]
            + u.get("thoughts_tokens", 0) * FLASH_PRICE[2]) / 1e6
    check(st == 200 and isinstance(u.get("cost_usd"), float) and abs(u["cost_usd"] - want) < 1e-9 and want > 0,
          "usage.cost_usd = tokens x GEMINI_PRICES: %r (want %.9f)" % (u, want))
    check("cost_usd" not in (job.get("timings") or {}), "cost is shown once, in usage")
    total = db.one("SELECT sum((timings->>'cost_usd')::numeric) FROM analysis_results")
    exported = metric_sum('glint_gemini_cost_usd_total{model="%s"}' % FLASH)
    check(total and abs(float(total) - exported) < 1e-5 * JOBS, "metrics add up to the jobs' cost: %s vs %s" % (total, exported))
    check(all(metric_line(w, "# TYPE glint_gemini_cost_usd_total counter") for w in workers), "cost metric declared")
    out = subprocess.run([os.path.join(BIN, "glint-worker"), "status", ids[0]], env=worker_env(db, DATABASE_URL=db.url),
                         capture_output=True, text=True, cwd="/tmp").stdout
    check("cost" in out and "$%.6f" % u.get("cost_usd", -1) in out, "glint-worker status shows the cost: %r" % out)

    # a 429 with a retryDelay pauses every instance: jobs that reach Gemini meanwhile wait for the shared pause (two slots
    # per worker so that the jobs spread over the three)
    for w in workers:
        check(w.stop() == 0, "clean exit")
    workers = [Worker(db, binary="glint-worker", WORKER_ID=name, **dict(env, MAX_CONCURRENT_JOBS=2))
               for name in ("gov-d", "gov-e", "gov-f")]
    check(all(w.wait_ready() for w in workers), "three workers ready again")
    gem.call("/_control", {"rpm_limit": 0, "faults": ["429_retry"], "fault_count": 1, "retry_delay": "1.5s"})
    first = insert_jobs(db, ["https://youtu.be/ok100000000"])[0]
    check(wait_for(lambda: gem.call("/_control/stats")["faults_applied"].get("429_retry") == 1, 20), "the 429 was served")
    paused_until = wait_for(lambda: db.one("SELECT paused_until FROM glint_gemini_budget WHERE model = %s AND paused_until"
                                           " > clock_timestamp()", FLASH), 5)
    check(paused_until is not None, "the pause reached the shared row")
    later = insert_jobs(db, ["https://youtu.be/ok2%08d" % i for i in range(6)])
    check(wait_for(lambda: status_counts().get("COMPLETED", 0) == JOBS + 7, 30), "all completed after the pause: %s"
          % status_counts())
    rows = db.q("SELECT locked_by, finished_at >= %s FROM analysis_jobs WHERE id = ANY(%s::uuid[])", paused_until, later)
    check(all(r[1] for r in rows), "no job started during the pause, whichever worker held it: %r" % rows)
    check(len({r[0] for r in rows}) >= 2, "paused jobs were held by several workers: %r" % rows)
    check(gem.call("/_control/stats")["faults_applied"].get("429_retry") == 1
          and metric_sum('glint_gemini_requests_total{code="429"}') <= 2, "one 429 stayed one 429")
    check(db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", first) == 1, "the paused call was retried in place")

    for w in workers:
        check(w.stop() == 0, "clean exit")
    workers = []
finally:
    for w in workers:
        w.stop()
    db.close()
    shutil.rmtree(tmp, ignore_errors=True)
report()
