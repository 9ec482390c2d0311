"""/openapi.json describes every route the worker serves, and each documented route answers with documented status
codes, content types and (for JSON) bodies matching the documented schema. Also covers GET /worker/jobs: keyset
pagination, filters, parameter validation."""
import json
import os
import re
import uuid

from harness import API_KEY, SRC, Database, Worker, check, free_port, migrate, report

db = Database("openapi")
workers = []
seen = {}  # (path, method) -> set of statuses observed


def resolve(doc, schema):
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def conforms(doc, schema, value, where="$"):
    """Minimal OpenAPI 3.0 schema check: type, nullable, enum, required, properties, items, allOf."""
    s = resolve(doc, schema)
    if value is None and "oneOf" not in s:
        return [] if s.get("nullable") and s.get("type") else ["%s is null" % where]  # 3.0.3: nullable needs a type
    problems = []
    for sub in s.get("allOf", []):
        problems += conforms(doc, sub, value, where)
    if "oneOf" in s:
        matching = [sub for sub in s["oneOf"] if not conforms(doc, sub, value, where)]
        if len(matching) != 1:
            problems.append("%s matches %d of the oneOf branches" % (where, len(matching)))
    t = s.get("type")
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "integer": int, "number": (int, float)}
    if t and not isinstance(value, types[t]) or (t in ("integer", "number") and isinstance(value, bool)):
        return ["%s is not %s: %r" % (where, t, value)]
    if "enum" in s and value not in s["enum"]:
        problems.append("%s=%r not in %s" % (where, value, s["enum"]))
    if t == "object":
        problems += ["%s lacks %s" % (where, k) for k in s.get("required", []) if k not in value]
        for k, sub in s.get("properties", {}).items():
            if k in value:
                problems += conforms(doc, sub, value[k], where + "." + k)
    if t == "array":
        for i, v in enumerate(value):
            problems += conforms(doc, s.get("items", {}), v, "%s[%d]" % (where, i))
    return problems


def call(w, doc, method, path, template, key=API_KEY, bearer=False, expect=None):
    headers = {}
    if key:
        headers = {"Authorization": "Bearer " + key} if bearer else {"X-API-Key": key}
    st, body, hdrs = w.http(method, path, headers=headers)
    hdrs = {k.lower(): v for k, v in hdrs.items()}
    op = doc["paths"][template][method.lower()]
    seen.setdefault((template, method), set()).add(st)
    documented = op["responses"].get(str(st))
    check(documented is not None, "%s %s -> %d is documented (%s)" % (method, path, st, body[:200]))
    if expect is not None:
        check(st == expect, "%s %s -> %d, expected %d: %s" % (method, path, st, expect, body[:200]))
    if documented is None:
        return st, body
    ctype = hdrs.get("content-type", "").split(";")[0].strip()
    content = documented.get("content", {})
    check(ctype in content, "%s %s -> %d Content-Type %r is one of %s" % (method, path, st, ctype, list(content)))
    if ctype == "application/json":
        value = json.loads(body)
        schema = content[ctype].get("schema")
        if schema:
            problems = conforms(doc, schema, value)
            check(not problems, "%s %s -> %d body matches the schema: %s" % (method, path, st, problems[:3]))
        return st, value
    return st, body


try:
    migrate(db)
    w = Worker(db)
    workers.append(w)
    check(w.wait_ready(), "worker ready")
    st, text, hdrs = w.http("GET", "/openapi.json")
    doc = json.loads(text)
    check(st == 200 and doc["openapi"].startswith("3.") and doc["info"]["version"], "openapi.json served")

    # every route the server registers is documented, and nothing else is
    src = open(os.path.join(SRC, "..", "handlers", "api.c")).read()
    routes = set()
    for method, pattern in re.findall(r'gw_server_route\(app->server, "(\w+)", "([^"]+)"', src):
        names = iter(["{name}"] if pattern.startswith("/assets/") else ["{id}"])
        routes.add((re.sub(r"\*", lambda m: next(names), pattern), method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    check(routes == documented and len(routes) >= 8, "routes == documented: only code %s, only doc %s" %
          (routes - documented, documented - routes))

    # jobs: 7 far-future PENDING ones (the test pipeline never claims them), one per status
    user = str(uuid.uuid4())
    ids = [db.one("INSERT INTO analysis_jobs (user_id, video_url, mode, run_after, credits_charged)"
                  " VALUES (%s, %s, 'standard', now() + interval '1 hour', 1) RETURNING id::text",
                  user, "test://noop/%d" % i) for i in range(7)]
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 0)", user)
    db.q("UPDATE analysis_jobs SET status = 'FAILED', error_code = 'x', finished_at = now() WHERE id = %s", ids[0])

    call(w, doc, "GET", "/", "/", expect=200)
    call(w, doc, "GET", "/assets/app.js", "/assets/{name}", expect=200)
    call(w, doc, "GET", "/assets/style.css", "/assets/{name}", expect=200)
    call(w, doc, "GET", "/assets/nope.js", "/assets/{name}", expect=404)
    call(w, doc, "GET", "/assets/index.html", "/assets/{name}", expect=404)
    call(w, doc, "GET", "/openapi.json", "/openapi.json", expect=200)
    _, h = call(w, doc, "GET", "/health", "/health", expect=200)
    call(w, doc, "GET", "/metrics", "/metrics", expect=200)
    call(w, doc, "GET", "/livez", "/livez", expect=200)
    call(w, doc, "GET", "/readyz", "/readyz", expect=200)

    # list: pagination
    pages, cursor = [], None
    while True:
        st, page = call(w, doc, "GET", "/worker/jobs?limit=3" + ("&before=" + cursor if cursor else ""), "/worker/jobs",
                        expect=200)
        pages.append([j["id"] for j in page["jobs"]])
        cursor = page["next"]
        if not cursor or len(pages) > 5:
            break
    flat = [i for p in pages for i in p]
    check([len(p) for p in pages] == [3, 3, 1] and sorted(flat) == sorted(ids) and len(set(flat)) == 7,
          "keyset pages 3+3+1 cover every job once: %r" % pages)
    order = db.q("SELECT id::text FROM analysis_jobs ORDER BY created_at DESC, id DESC")
    check(flat == [r[0] for r in order], "newest first")
    st, page = call(w, doc, "GET", "/worker/jobs?status=failed", "/worker/jobs", bearer=True, expect=200)
    check([j["id"] for j in page["jobs"]] == [ids[0]] and page["next"] is None, "status filter (and Bearer auth)")
    st, page = call(w, doc, "GET", "/worker/jobs?status=PENDING&limit=200", "/worker/jobs", expect=200)
    check(len(page["jobs"]) == 6 and all(j["status"] == "PENDING" for j in page["jobs"]), "PENDING filter")
    for q in ("status=bogus", "limit=0", "limit=201", "limit=abc", "limit=", "limit=-1", "before=garbage",
              "before=2026-13-45T99:00:00.000000Z_" + ids[0], "before=2026-01-01T00:00:00.000000Z_not-a-uuid"):
        st, body = call(w, doc, "GET", "/worker/jobs?" + q, "/worker/jobs", expect=400)
    call(w, doc, "GET", "/worker/jobs", "/worker/jobs", key=None, expect=401)
    call(w, doc, "GET", "/worker/jobs", "/worker/jobs", key="wrong-key-0000", expect=401)
    # the dashboard's last hour (in memory)
    call(w, doc, "GET", "/worker/history", "/worker/history", expect=200)
    call(w, doc, "GET", "/worker/history", "/worker/history", key=None, expect=401)

    # one job
    call(w, doc, "GET", "/worker/jobs/" + ids[1], "/worker/jobs/{id}", expect=200)
    call(w, doc, "GET", "/worker/jobs/" + str(uuid.uuid4()), "/worker/jobs/{id}", expect=404)
    call(w, doc, "GET", "/worker/jobs/not-a-uuid", "/worker/jobs/{id}", expect=400)
    call(w, doc, "GET", "/worker/jobs/" + ids[1], "/worker/jobs/{id}", key=None, expect=401)
    # cancel
    st, body = call(w, doc, "POST", "/worker/jobs/%s/cancel" % ids[1], "/worker/jobs/{id}/cancel", expect=200)
    check(db.one("SELECT status FROM analysis_jobs WHERE id = %s", ids[1]) == "CANCELLED", "cancel took effect")
    call(w, doc, "POST", "/worker/jobs/%s/cancel" % ids[1], "/worker/jobs/{id}/cancel", expect=409)
    call(w, doc, "POST", "/worker/jobs/%s/cancel" % uuid.uuid4(), "/worker/jobs/{id}/cancel", expect=404)
    call(w, doc, "POST", "/worker/jobs/x/cancel", "/worker/jobs/{id}/cancel", expect=400)
    call(w, doc, "POST", "/worker/jobs/%s/cancel" % ids[2], "/worker/jobs/{id}/cancel", key=None, expect=401)
    # retry (sql/017): the cancelled job (inserted directly, so no charge) back to PENDING, then 409; 402 on a paid job
    call(w, doc, "POST", "/worker/jobs/%s/retry" % ids[1], "/worker/jobs/{id}/retry", expect=200)
    call(w, doc, "POST", "/worker/jobs/%s/retry" % ids[1], "/worker/jobs/{id}/retry", expect=409)
    poor = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1)", poor)
    paid = db.one("SELECT j FROM glint_enqueue_job(%s, 'test://noop') j, glint_cancel_job(j)", poor)
    db.q("UPDATE user_credits SET balance = 0 WHERE user_id = %s", poor)
    call(w, doc, "POST", "/worker/jobs/%s/retry" % paid, "/worker/jobs/{id}/retry", expect=402)
    call(w, doc, "POST", "/worker/jobs/%s/retry" % uuid.uuid4(), "/worker/jobs/{id}/retry", expect=404)
    call(w, doc, "POST", "/worker/jobs/x/retry", "/worker/jobs/{id}/retry", expect=400)
    call(w, doc, "POST", "/worker/jobs/%s/retry" % ids[2], "/worker/jobs/{id}/retry", key=None, expect=401)

    # 503s: a worker without WORKER_API_KEY, and one whose database is unreachable
    nokey = Worker(db, WORKER_API_KEY="")
    workers.append(nokey)
    for path, tpl, m in (("/worker/jobs", "/worker/jobs", "GET"), ("/worker/jobs/" + ids[2], "/worker/jobs/{id}", "GET"),
                         ("/worker/jobs/%s/cancel" % ids[2], "/worker/jobs/{id}/cancel", "POST"),
                         ("/worker/jobs/%s/retry" % ids[2], "/worker/jobs/{id}/retry", "POST"),
                         ("/worker/history", "/worker/history", "GET")):
        call(nokey, doc, m, path, tpl, expect=503)

    class Down:
        url = "postgresql:///nope?host=127.0.0.1&port=%d&user=postgres&connect_timeout=1" % free_port()
        name = "down"

    down = Worker(Down)
    workers.append(down)
    call(down, doc, "GET", "/health", "/health", expect=503)
    call(down, doc, "GET", "/readyz", "/readyz", expect=503)
    call(down, doc, "GET", "/livez", "/livez", expect=200)
    for path, tpl, m in (("/worker/jobs", "/worker/jobs", "GET"), ("/worker/jobs/" + ids[2], "/worker/jobs/{id}", "GET"),
                         ("/worker/jobs/%s/cancel" % ids[2], "/worker/jobs/{id}/cancel", "POST"),
                         ("/worker/jobs/%s/retry" % ids[2], "/worker/jobs/{id}/retry", "POST")):
        call(down, doc, m, path, tpl, expect=503)

    # every documented status code was produced by some request above
    for p, ops in doc["paths"].items():
        for m, op in ops.items():
            missing = set(map(int, op["responses"])) - seen.get((p, m.upper()), set())
            check(not missing, "%s %s: documented codes never observed: %s" % (m.upper(), p, missing))
    # security headers on the page
    st, html, hdrs = w.http("GET", "/")
    csp = {k.lower(): v for k, v in hdrs.items()}.get("content-security-policy", "")
    check("script-src 'self'" in csp and "unsafe-inline" not in csp, "the dashboard has a strict CSP: %r" % csp)
finally:
    for x in workers:
        x.stop()
    db.close()
report()
