"""The probes and the model check. /livez answers while the loop runs, whatever else is wrong; /readyz answers 503 with a
JSON body naming what is not ready: the database (and LISTEN), draining, a failed model check. A model the Gemini
stand-in does not know pauses claiming (the job waits PENDING, never FAILED), with exactly one ERROR line and one Sentry
event however many rechecks fail; once the stand-in knows the model the job completes. A key Gemini refuses is the same
kind of failure. Real PostgreSQL, real binaries, the Gemini and Sentry stand-ins."""
import json
import signal
import tempfile
import time
import uuid

from harness import SCALE, Database, Worker, check, free_port, migrate, report, wait_for
from standins import GEMINI_KEY, fake_gemini, fake_sentry, pipeline_env

SENTRY_KEY = "abcdef0123456789abcdef0123456789"
FLASH, PRO = "gemini-3.6-flash", "gemini-3.1-pro-preview"
db = Database("probes")
workers = []


def probe(w, path):
    st, body, _ = w.http("GET", path)
    try:
        return st, json.loads(body)
    except ValueError:
        return st, body


def status(jid):
    return db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)


try:
    migrate(db)
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)

    # ready: the test pipeline needs no model
    w = Worker(db)
    workers.append(w)
    check(w.wait_ready(), "worker ready")
    st, body = probe(w, "/livez")
    check(st == 200 and body == {"status": "alive"}, "livez 200: %r" % (body,))
    st, body = probe(w, "/readyz")
    check(st == 200 and body["status"] == "ready" and body["not_ready"] == [] and body["checks"]["model_check"] == "off"
          and body["checks"]["database"] == "connected" and body["checks"]["listen"] == "active", "readyz 200: %r" % (body,))

    # draining: readyz 503 names it, livez still 200, /health keeps its meaning (the database is fine: 200)
    [jid] = [db.one("INSERT INTO analysis_jobs (user_id, video_url, mode) VALUES (%s, 'test://sleep/4000', 'standard')"
                    " RETURNING id::text", user)]
    check(wait_for(lambda: status(jid) == "PROCESSING", 10), "a long job runs")
    w.send(signal.SIGTERM)
    check(wait_for(lambda: probe(w, "/readyz")[0] == 503, 5), "draining: readyz 503")
    st, body = probe(w, "/readyz")
    check(st == 503 and body["status"] == "not_ready" and body["not_ready"] == ["draining"] and body["checks"]["draining"],
          "draining named: %r" % (body,))
    check(probe(w, "/livez")[0] == 200, "draining: livez 200")
    check(probe(w, "/health")[0] == 200, "draining: /health unchanged (200 while the database is up)")
    w.proc.wait(20 * SCALE)  # a second SIGTERM would mean "exit now"
    check(w.stop() == 0, "drained and exited cleanly")

    # database down: livez 200, readyz 503 naming database and listen
    class Down:
        url = "postgresql:///nope?host=127.0.0.1&port=%d&user=postgres&connect_timeout=1" % free_port()
        name = "down"

    down = Worker(Down)
    workers.append(down)
    st, body = probe(down, "/readyz")
    check(st == 503 and "database" in body["not_ready"] and "listen" in body["not_ready"]
          and body["checks"]["database"] == "unreachable", "database down: readyz 503: %r" % (body,))
    check(probe(down, "/livez")[0] == 200, "database down: livez 200")
    check(probe(down, "/health")[0] == 503, "database down: /health 503 as before")

    # an unknown model: the stand-in knows only the Flash model, the worker is configured with Flash and Pro
    gem = fake_gemini("--known-models", FLASH)
    sentry = fake_sentry(SENTRY_KEY)
    work = tempfile.mkdtemp(prefix="glint-probes-")
    m = Worker(db, binary="glint-worker", SENTRY_DSN=sentry.dsn, MODEL_CHECK_RETRY_MS=200, MODEL_CHECK_INTERVAL_MS=1000,
               **pipeline_env(gem, work, GEMINI_FLASH_MODEL=FLASH, GEMINI_PRO_MODEL=PRO, POLL_INTERVAL_MS=300))
    workers.append(m)
    check(m.wait_ready(), "model worker ready (database side)")
    check(wait_for(lambda: probe(m, "/readyz")[0] == 503 and probe(m, "/readyz")[1]["checks"]["model_check"] == "failed", 10),
          "unknown model: readyz 503")
    st, body = probe(m, "/readyz")
    check(body.get("not_ready") == ["model_check"] and PRO in body["checks"].get("model_problem", "")
          and "GEMINI_PRO_MODEL" in body["checks"]["model_problem"] and GEMINI_KEY not in json.dumps(body),
          "readyz names the model check and the setting: %r" % (body,))
    check(probe(m, "/livez")[0] == 200, "unknown model: livez 200")
    jid = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok000000001")
    gets = lambda: gem.call("/_control/stats")["requests"].get("models.get", 0)
    g0 = gets()
    check(wait_for(lambda: gets() >= g0 + 6, 15), "rechecked with backoff (%d models.get)" % gets())
    check(status(jid) == "PENDING" and db.one("SELECT attempts FROM analysis_jobs WHERE id = %s", jid) == 0,
          "the job waits PENDING, never claimed: %s" % status(jid))
    check(gem.call("/_control/stats")["requests"].get("generateContent", 0) == 0, "no Gemini call for the job")
    check(m.metric("glint_model_check_ok") == 0, "glint_model_check_ok 0")
    errors = [l for l in m.read_log().splitlines() if "model check failed" in l]
    check(len(errors) == 1 and "ERROR" in errors[0] and PRO in errors[0], "exactly one ERROR line: %r" % errors)
    evs = lambda: [e for e in sentry.call("/_control/events")["events"] if "model check failed" in e["message"]["formatted"]]
    check(wait_for(lambda: evs(), 5) and len(evs()) == 1, "exactly one Sentry event: %d" % len(evs()))

    # the operator fixes it (here: Gemini learns the model): the next check passes and claiming resumes
    gem.call("/_control", {"known_models": [FLASH, PRO]})
    check(wait_for(lambda: status(jid) == "COMPLETED", 20), "the job completes once the model is known: %s" % status(jid))
    st, body = probe(m, "/readyz")
    check(st == 200 and body["checks"]["model_check"] == "ok", "readyz 200 again: %r" % (body,))
    check("claiming resumes" in m.read_log(), "the log says claiming resumes")
    check(len(evs()) == 1 and not sentry.call("/_control/events")["violations"], "still one Sentry event, well-formed")
    check(m.stop() == 0, "clean exit")

    # a key Gemini refuses is the operator's trouble as well: not ready, nothing claimed
    k = Worker(db, binary="glint-worker", MODEL_CHECK_RETRY_MS=200,
               **dict(pipeline_env(gem, work, GEMINI_FLASH_MODEL=FLASH, GEMINI_PRO_MODEL=PRO), GEMINI_API_KEY="AIzaRevoked-0000"))
    workers.append(k)
    jid = db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok000000002")
    # 503 comes at once while the worker connects; wait for the model check's verdict itself
    verdict = lambda: (lambda b: isinstance(b, dict) and b.get("checks", {}).get("model_check"))(probe(k, "/readyz")[1])
    check(wait_for(lambda: verdict() == "failed", 10),
          "refused key: the model check fails")
    check(probe(k, "/readyz")[0] == 503, "refused key: readyz 503")
    st, body = probe(k, "/readyz")
    check(body["checks"]["model_check"] == "failed" and "key" in body["checks"].get("model_problem", "")
          and "AIzaRevoked" not in json.dumps(body), "the problem names the key, not its value: %r" % (body,))
    time.sleep(1)
    check(status(jid) == "PENDING", "refused key: the job waits PENDING")
    k.stop()
    # a worker with the right configuration takes it
    ok = Worker(db, binary="glint-worker", **pipeline_env(gem, work, GEMINI_FLASH_MODEL=FLASH, GEMINI_PRO_MODEL=PRO))
    workers.append(ok)
    check(wait_for(lambda: status(jid) == "COMPLETED", 20), "a well-configured worker completes it")
    check(probe(ok, "/readyz")[0] == 200, "and is ready")
finally:
    for x in workers:
        x.stop()
    db.close()
report()
