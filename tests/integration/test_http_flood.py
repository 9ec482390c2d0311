"""The HTTP connection cap under a flood of idle connections (loopback only, a bounded number, all closed at the end).
The worker runs with RLIMIT_NOFILE 400 and HTTP_MAX_CONNECTIONS 1000: the cap is lowered so descriptors remain for the
pipeline (yt-dlp pipes, curl, PostgreSQL). Idle connections beyond the cap close the oldest idle ones; jobs (the
production pipeline with the stand-ins) still complete and /livez still answers; when every connection is busy new ones
are refused, counted in /metrics."""
import resource
import socket
import tempfile
import time
import uuid

import harness
from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

NOFILE = 400
EXTRA = 200  # connections beyond the cap
db = Database("flood")
w = None
socks = []


def open_idle(n):
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", w.port), timeout=2))
        except OSError:
            break


def status_counts(ids):
    return dict(db.q("SELECT status, count(*) FROM analysis_jobs WHERE id = ANY(%s::uuid[]) GROUP BY status",
                     [str(i) for i in ids]))


try:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # this client holds a few hundred sockets
    migrate(db)
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 100)", user)
    gem = fake_gemini()
    harness.WRAPPER = ["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--"] + harness.WRAPPER
    w = Worker(db, binary="glint-worker", HTTP_MAX_CONNECTIONS=1000, MAX_CONCURRENT_JOBS=4,
               **pipeline_env(gem, tempfile.mkdtemp(prefix="glint-flood-")))
    check(w.wait_ready(), "worker ready")
    cap = int(w.metric("glint_http_max_connections"))
    check(0 < cap < NOFILE - 200, "the cap leaves descriptors for jobs: %d of %d" % (cap, NOFILE))
    check("HTTP_MAX_CONNECTIONS lowered" in w.read_log(), "the lowering is logged")

    open_idle(cap + EXTRA)
    check(len(socks) == cap + EXTRA, "%d idle connections opened" % len(socks))
    check(wait_for(lambda: w.metric("glint_http_connections_evicted_total") >= EXTRA - 5, 10),
          "the oldest idle connections made room: %s evicted" % w.metric("glint_http_connections_evicted_total"))
    conns = w.metric("glint_http_connections")
    check(conns <= cap + 1, "open connections stay within the cap: %s <= %d" % (conns, cap))

    ids = [db.one("SELECT glint_enqueue_job(%s, %s)::text", user, "https://youtu.be/ok00000000%d" % i) for i in range(6)]
    check(wait_for(lambda: status_counts(ids).get("COMPLETED") == 6, 40), "jobs complete under the flood: %r" %
          status_counts(ids))
    st, body, _ = w.http("GET", "/livez")
    check(st == 200, "livez answers under the flood")
    fds = w.metric("process_open_fds")
    check(fds is not None and fds < NOFILE - 100, "descriptors left over: %s open of %d" % (fds, NOFILE))

    # every held connection busy (half a request each): newcomers are refused and counted
    before = w.metric("glint_http_connections_refused_total")
    for s in socks:
        try:
            s.sendall(b"GET /livez HTTP/1.1\r\n")
        except OSError:
            pass
    time.sleep(0.5)  # the worker reads them
    extra = []
    for _ in range(40):  # newcomers, busy too: the slots freed by the scrapes above fill up, the rest are refused
        try:
            c = socket.create_connection(("127.0.0.1", w.port), timeout=2)
            extra.append(c)
            c.sendall(b"GET /livez HTTP/1.1\r\n")
            time.sleep(0.05)  # read before the next one arrives (else it is idle, and the oldest idle one)
        except OSError:
            pass
    closed = 0
    for c in extra:
        c.settimeout(0.3)
        try:
            closed += c.recv(64) == b""
        except socket.timeout:
            pass  # admitted: waits for the rest of its request
        except OSError:
            closed += 1
        c.close()
    check(closed >= 20, "newcomers refused while every slot is busy: %d of %d closed unanswered" % (closed, len(extra)))
    check("refusing new ones" in w.read_log(), "the refusal is logged")
    for s in socks:
        s.close()
    socks = []
    check(wait_for(lambda: w.http("GET", "/livez")[0] == 200, 15), "livez answers once the flood is gone")
    refused = w.metric("glint_http_connections_refused_total")
    check(refused >= before + closed, "refusals counted in /metrics: %s" % refused)
    check(w.stop() == 0, "clean exit")
    w = None
finally:
    for s in socks:
        s.close()
    if w:
        w.stop()
    db.close()
report()
