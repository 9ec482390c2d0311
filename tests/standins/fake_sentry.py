#!/usr/bin/env python3
"""A local stand-in for Sentry's ingestion endpoint: POST /api/{project}/envelope/.

Checks each request the way Relay does and records every protocol violation:
  * X-Sentry-Auth: "Sentry sentry_version=7, sentry_key=KEY, sentry_client=NAME/VERSION" with the expected key
  * Content-Type application/x-sentry-envelope
  * envelope: header line (JSON: event_id = 32 hex, dsn naming the same key and project, sent_at RFC 3339),
    then items: a header line {"type": ..., "length": N} followed by exactly N payload bytes and a newline
  * event payload: JSON with the same event_id, level, timestamp, platform, release, tags (object of strings)

    --port 0 --port-file F    listen on a free port and write it to F
    --key KEY --project N     what the DSN names
Control:
    GET  /_control/events     {"events": [payload...], "violations": [...], "requests": n}
    POST /_control            {"hang_ms": N, "status": 503}  delay / fail later requests
                              {"status": 429, "retry_after": "2", "rate_limits": "2:error:project"}  answer like Relay
                              when it rate-limits: Retry-After and/or X-Sentry-Rate-Limits on every answer (null or
                              omitted: header not sent; rate_limits is also sent with 200 when set)
                              {"limit_count": N}  only the next N answers carry the status and headers, then 200 again
An event answered with a non-200 status is not stored (Relay drops it).
"""
import argparse
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

AUTH_RE = re.compile(r"^Sentry (.+)$")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
HEX32 = re.compile(r"^[0-9a-f]{32}$")


class State:
    def __init__(self, key, project):
        self.key, self.project = key, project
        self.lock = threading.Lock()
        self.events, self.violations, self.requests = [], [], 0
        self.hang_ms, self.status = 0, 200
        self.retry_after, self.rate_limits, self.limit_count = None, None, -1


def check_auth(st, header, problems):
    m = AUTH_RE.match(header or "")
    if not m:
        problems.append("X-Sentry-Auth missing or not 'Sentry ...': %r" % header)
        return
    fields = dict(p.strip().split("=", 1) for p in m.group(1).split(",") if "=" in p)
    if fields.get("sentry_version") != "7":
        problems.append("sentry_version is not 7")
    if fields.get("sentry_key") != st.key:
        problems.append("sentry_key does not match the DSN")
    if not re.match(r"^[\w.-]+/[\w.+-]+$", fields.get("sentry_client", "")):
        problems.append("sentry_client missing or not NAME/VERSION")


def parse_envelope(st, body, problems):
    nl = body.find(b"\n")
    if nl < 0:
        problems.append("envelope has no header line")
        return []
    try:
        hdr = json.loads(body[:nl])
    except ValueError:
        problems.append("envelope header is not JSON")
        return []
    if not HEX32.match(str(hdr.get("event_id", ""))):
        problems.append("envelope header event_id is not 32 hex digits")
    dsn = str(hdr.get("dsn", ""))
    if "://%s@" % st.key not in dsn or not dsn.endswith("/" + st.project):
        problems.append("envelope header dsn does not name the key and project: %s" % dsn)
    if not TS_RE.match(str(hdr.get("sent_at", ""))):
        problems.append("envelope header sent_at is not RFC 3339")
    pos, events = nl + 1, []
    while pos < len(body):
        nl = body.find(b"\n", pos)
        if nl < 0:
            problems.append("item header without newline")
            break
        item = json.loads(body[pos:nl])
        length = item.get("length")
        if not isinstance(length, int):
            problems.append("item header has no length")
            break
        payload = body[nl + 1:nl + 1 + length]
        if len(payload) != length or body[nl + 1 + length:nl + 2 + length] not in (b"\n", b""):
            problems.append("item length does not match its payload")
        pos = nl + 2 + length
        if item.get("type") != "event":
            problems.append("unexpected item type %r" % item.get("type"))
            continue
        ev = json.loads(payload)
        if ev.get("event_id") != hdr.get("event_id"):
            problems.append("event_id differs between envelope and event")
        for k in ("level", "timestamp", "platform", "release"):
            if not ev.get(k):
                problems.append("event lacks %s" % k)
        tags = ev.get("tags", {})
        if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
            problems.append("tags is not an object of strings")
        events.append(ev)
    return events


def handler(st):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code, obj, headers=None):
            data = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def body(self):
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_GET(self):
            if self.path == "/_control/events":
                with st.lock:
                    return self.reply(200, {"events": st.events, "violations": st.violations, "requests": st.requests})
            self.reply(404, {"detail": "not found"})

        def do_POST(self):
            data = self.body()
            if self.path == "/_control":
                cfg = json.loads(data or b"{}")
                with st.lock:
                    st.hang_ms = cfg.get("hang_ms", st.hang_ms)
                    st.status = cfg.get("status", st.status)
                    for k in ("retry_after", "rate_limits", "limit_count"):
                        if k in cfg:
                            setattr(st, k, cfg[k] if cfg[k] is not None or k != "limit_count" else -1)
                return self.reply(200, {})
            if self.path != "/api/%s/envelope/" % st.project:
                with st.lock:
                    st.violations.append("POST to %s" % self.path)
                return self.reply(404, {"detail": "not found"})
            problems = []
            check_auth(st, self.headers.get("X-Sentry-Auth"), problems)
            if self.headers.get("Content-Type") != "application/x-sentry-envelope":
                problems.append("Content-Type is %r" % self.headers.get("Content-Type"))
            events = parse_envelope(st, data, problems)
            with st.lock:
                st.requests += 1
                st.violations.extend(problems)
                hang, status, headers = st.hang_ms, st.status, {}
                if st.limit_count != 0:
                    if st.retry_after is not None:
                        headers["Retry-After"] = str(st.retry_after)
                    if st.rate_limits is not None:
                        headers["X-Sentry-Rate-Limits"] = st.rate_limits
                    if st.limit_count > 0:
                        st.limit_count -= 1
                else:
                    status = 200
            if hang:
                time.sleep(hang / 1000.0)
            if status != 200:
                detail = "rate limited" if status == 429 else "unavailable"
                return self.reply(status, {"detail": detail}, headers)
            with st.lock:
                st.events.extend(events)
            self.reply(200, {"id": events[0]["event_id"] if events else None}, headers)

    return H


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    ap.add_argument("--key", required=True)
    ap.add_argument("--project", default="42")
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), handler(State(a.key, a.project)))
    srv.daemon_threads = True
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as f:
            f.write(str(srv.server_address[1]))
        import os
        os.rename(a.port_file + ".tmp", a.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
