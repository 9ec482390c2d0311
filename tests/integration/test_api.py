"""HTTP API: health, metrics, job status, cancel, auth and error codes."""
import json
import socket
import time
import uuid

from harness import API_KEY, Database, Worker, check, insert_jobs, migrate, report, wait_for

db = Database("api")
w = None
try:
    migrate(db)
    w = Worker(db, MAX_CONCURRENT_JOBS="8")
    w.wait_ready()

    st, body = w.json("GET", "/health", key=None)
    check(st == 200 and body["status"] == "healthy", "health: %s %s" % (st, body))
    check(body["max_concurrent"] == 8 and body["active_jobs"] == 0, "health fields")

    st, text, headers = w.http("GET", "/metrics")
    check(st == 200 and "glint_jobs_claimed_total" in text and "glint_listen_reconnects_total" in text, "metrics")
    ctype = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    check(ctype.startswith("text/plain; version=0.0.4"), "prometheus content type: %r" % ctype)

    [jid] = insert_jobs(db, ["test://noop"])
    wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid) == "COMPLETED")
    st, body = w.json("GET", "/worker/jobs/%s" % jid)
    check(st == 200 and body["status"] == "COMPLETED" and body["result"]["title"] == "test", "job status: %s" % body)
    check(body["attempts"] == 1 and body["created_at"] and body["finished_at"], "timestamps and attempts")

    # auth
    st, body = w.json("GET", "/worker/jobs/%s" % jid, key=None)
    check(st == 401 and body["error"]["code"] == "unauthorized", "missing key -> 401")
    st, body = w.json("GET", "/worker/jobs/%s" % jid, key=API_KEY[:-1] + "X")
    check(st == 401, "near-miss key -> 401")
    st, _, _ = w.http("GET", "/worker/jobs/%s" % jid, headers={"Authorization": "Bearer " + API_KEY})
    check(st == 200, "Bearer accepted")
    # ids
    for bad in ["not-a-uuid", "1", "%27%20OR%201=1--", "0" * 36]:
        st, body = w.json("GET", "/worker/jobs/" + bad)
        check(st == 400 and body["error"]["code"] == "invalid_id", "malformed id %r -> 400 (%s)" % (bad, st))
    st, body = w.json("GET", "/worker/jobs/%s" % uuid.uuid4())
    check(st == 404 and body["error"]["code"] == "not_found", "unknown id -> 404")
    st, body = w.json("GET", "/nope")
    check(st == 404, "unknown path -> 404")
    st, body = w.json("DELETE", "/worker/jobs/%s" % jid)
    check(st == 405, "wrong method -> 405")

    # cancel: COMPLETED -> 409
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % jid, body=b"")
    check(st == 409 and body["error"]["code"] == "not_cancellable", "cancel completed -> 409")
    # cancel a PENDING job (far in the future) -> CANCELLED + refund
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 3)", user)
    pend = db.one("SELECT glint_enqueue_job(%s, 'test://noop')", user)
    # (it may already be done; make a job that cannot be claimed instead)
    later = db.one("INSERT INTO analysis_jobs (user_id, video_url, credits_charged, run_after) VALUES (%s, 'test://noop', 1,"
                   " now() + interval '1 hour') RETURNING id", user)
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % later, body=b"")
    check(st == 200 and body["status"] == "CANCELLED", "cancel pending -> 200: %s" % body)
    check(db.one("SELECT count(*) FROM credit_ledger WHERE job_id = %s AND reason = 'refund'", later) == 1, "refunded")
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % later, body=b"")
    check(st == 409, "second cancel -> 409")
    # cancel a PROCESSING job: the worker aborts its in-flight work
    [run] = insert_jobs(db, ["test://sleep/30000"])
    check(wait_for(lambda: db.one("SELECT status FROM analysis_jobs WHERE id = %s", run) == "PROCESSING"), "running")
    st, body = w.json("POST", "/worker/jobs/%s/cancel" % run, body=b"")
    check(st == 200, "cancel processing -> 200")
    check(wait_for(lambda: w.json("GET", "/health", key=None)[1]["active_jobs"] == 0, 5), "in-flight work aborted")
    check(db.one("SELECT status FROM analysis_jobs WHERE id = %s", run) == "CANCELLED", "stays CANCELLED")
    check(db.one("SELECT count(*) FROM analysis_results WHERE job_id = %s", run) == 0, "no result stored")
    # an oversized body is refused from its Content-Length, before it is read
    s = socket.create_connection(("127.0.0.1", w.port))
    s.sendall(b"POST /worker/jobs/%s/cancel HTTP/1.1\r\nHost: x\r\nX-API-Key: %s\r\nContent-Length: 1048576\r\n\r\n"
              % (str(run).encode(), API_KEY.encode()))
    head = s.recv(4096).decode(errors="replace")
    s.close()
    check(head.startswith("HTTP/1.1 413"), "oversized body -> 413: %r" % head[:40])
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    if w:
        w.stop()
    db.close()
report()
