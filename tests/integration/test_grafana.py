"""deploy/grafana stays honest: every metric name (and every label a query matches or groups by) in the Grafana
dashboard and the Prometheus alert rules exists in a live scrape of the production binary after real jobs ran on the
stand-ins (completed, failed, retried, a Gemini 429), so labelled series and histograms exist. No allowlist: a name the
worker does not export fails the test. The dashboard JSON has what Grafana needs to import it; the rules pass
`promtool check rules` and yamllint with deploy/'s settings."""
import json
import os
import re
import subprocess
import tempfile
import uuid

import yaml

from harness import Database, Worker, check, migrate, report, wait_for
from standins import fake_gemini, pipeline_env

DEPLOY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "grafana")
DASHBOARD = os.path.join(DEPLOY, "glint-worker.json")
ALERTS = os.path.join(DEPLOY, "alerts.yml")

# PromQL words that are not metric names (functions are recognised by the "(" that follows them)
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset", "inf",
            "nan"}
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{([^}]*)\})?")
MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
# labels Prometheus adds when it scrapes (not in the worker's own output)
TARGET_LABELS = {"instance", "job"}


def parse_scrape(text):
    """{series name: [label dict, ...]} from Prometheus text format."""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+$", line)
        if not m:
            check(False, "unparsable scrape line: %r" % line)
            continue
        labels = dict((k, v) for k, _, v in MATCHER.findall(m.group(3) or ""))
        series.setdefault(m.group(1), []).append(labels)
    return series


def selectors(expr):
    """(metric name, matcher list, grouping labels) used by a PromQL expression (Grafana's $variables removed)."""
    e = re.sub(r"\[[^\]]*\]", "", expr)                 # range selectors [5m], [$__rate_interval]
    grouping = set()
    for g in GROUPING.findall(e):
        grouping.update(x.strip() for x in g.split(",") if x.strip())
    e = GROUPING.sub(" ", e)
    found = []
    for m in SELECTOR.finditer(e):
        name, body = m.group(1), m.group(3)
        rest = e[m.end(1):].lstrip()
        if name.lower() in KEYWORDS or (rest.startswith("(") and body is None):
            continue                                       # a function or keyword
        if re.fullmatch(r"[0-9.e+]+", name):
            continue
        found.append((name, MATCHER.findall(body or "")))
    return found, grouping


def check_expr(where, expr, series):
    found, grouping = selectors(expr)
    check(found, "%s: a metric is named in %r" % (where, expr))
    labels_here = set()
    for name, matchers in found:
        rows = series.get(name)
        if not check(rows is not None, "%s: metric %s is exported by the worker (expr %r)" % (where, name, expr)):
            continue
        names = set().union(*(r.keys() for r in rows))
        labels_here |= names
        for label, op, value in matchers:
            if label in TARGET_LABELS:
                continue
            check(label in names, "%s: %s has a label %r (it has %s)" % (where, name, label, sorted(names)))
            if op == "=" and label in names:
                check(any(r.get(label) == value for r in rows),
                      "%s: %s{%s=%r} is a series the worker exported (values: %s)" % (
                          where, name, label, value, sorted({r.get(label) for r in rows if label in r})))
    for label in grouping - TARGET_LABELS - {"le"}:
        check(label in labels_here, "%s: grouping label %r is on a metric of %r" % (where, label, expr))
    if "le" in grouping:
        check(any(n.endswith("_bucket") for n, _ in found), "%s: 'by (le)' over a histogram's buckets" % where)
    return {n for n, _ in found}


def check_dashboard(d, series):
    for field in ("title", "uid", "panels", "templating", "schemaVersion"):
        check(field in d, "dashboard has %s" % field)
    check(isinstance(d.get("schemaVersion"), int) and d["schemaVersion"] >= 39, "schemaVersion >= 39")
    check(re.fullmatch(r"[a-zA-Z0-9_-]{1,40}", d.get("uid", "")), "uid is a valid Grafana uid")
    variables = {v["name"]: v for v in d.get("templating", {}).get("list", [])}
    ds = variables.get("datasource", {})
    check(ds.get("type") == "datasource" and ds.get("query") == "prometheus", "datasource variable of type datasource")
    inst = variables.get("instance", {})
    check(inst.get("type") == "query" and inst.get("includeAll") is True, "instance variable with All")
    used = set()
    if inst:
        q = inst.get("query")
        q = q.get("query") if isinstance(q, dict) else q
        used |= check_expr("variable instance", re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q), series)
    ids, cells = set(), set()
    exprs = 0
    for p in d.get("panels", []):
        where = "panel %r" % p.get("title")
        check(isinstance(p.get("id"), int) and p["id"] not in ids, "%s: unique integer id" % where)
        ids.add(p.get("id"))
        check(p.get("type") and p.get("title"), "%s: type and title" % where)
        gp = p.get("gridPos", {})
        if not check(all(isinstance(gp.get(k), int) for k in "hwxy") and gp["x"] + gp["w"] <= 24 and gp["w"] > 0 and gp["h"] > 0,
                     "%s: gridPos inside the 24-column grid: %s" % (where, gp)):
            continue
        for x in range(gp["x"], gp["x"] + gp["w"]):
            for y in range(gp["y"], gp["y"] + gp["h"]):
                check((x, y) not in cells, "%s overlaps another panel at %d,%d" % (where, x, y))
                cells.add((x, y))
        if p["type"] == "row":
            continue
        check(p.get("datasource", {}).get("uid") == "${datasource}", "%s: datasource is the variable" % where)
        targets = p.get("targets", [])
        check(targets, "%s: has targets" % where)
        for t in targets:
            check(t.get("refId") and t.get("expr"), "%s: target with refId and expr" % where)
            check(t.get("datasource", {}).get("uid") == "${datasource}", "%s: target datasource is the variable" % where)
            check('instance=~"$instance"' in t.get("expr", ""), "%s: follows the instance variable: %s" % (where, t.get("expr")))
            used |= check_expr(where, t.get("expr", ""), series)
            exprs += 1
        for var in re.findall(r"\$\{?([a-zA-Z_]\w*)", json.dumps(p)):
            check(var in variables or var.startswith("__"), "%s: variable $%s is defined" % (where, var))
    check(exprs >= 15, "dashboard has its panels' queries (%d)" % exprs)
    return used


def check_alerts(series):
    p = subprocess.run(["promtool", "check", "rules", ALERTS], capture_output=True, text=True)
    check(p.returncode == 0, "promtool check rules: %s%s" % (p.stdout, p.stderr))
    p = subprocess.run(["yamllint", "--strict", "-c", os.path.join(DEPLOY, "..", ".yamllint"), ALERTS], capture_output=True,
                       text=True)
    check(p.returncode == 0, "yamllint --strict (deploy/.yamllint): %s%s" % (p.stdout, p.stderr))
    doc = yaml.safe_load(open(ALERTS))
    rules = [r for g in doc["groups"] for r in g["rules"]]
    names = {r.get("alert") for r in rules}
    check(len(names) == len(rules) and all(names), "every rule is a named alert")
    used = set()
    for r in rules:
        check(r.get("labels", {}).get("severity") in ("critical", "warning"), "%s: severity label" % r["alert"])
        check(r.get("annotations", {}).get("summary"), "%s: summary" % r["alert"])
        used |= check_expr("alert " + r["alert"], r["expr"], series)
    return used


db = Database("grafana")
w = None
gem = fake_gemini()
work = tempfile.mkdtemp(prefix="glint-grafana-")
try:
    migrate(db)
    user = str(uuid.uuid4())
    db.q("INSERT INTO user_credits (user_id, balance) VALUES (%s, 1000)", user)
    w = Worker(db, binary="glint-worker", **pipeline_env(gem, work, POLL_INTERVAL_MS=400, GEMINI_MAX_RETRIES=2))
    check(w.wait_ready(), "worker ready")
    enqueue = lambda url: db.one("SELECT glint_enqueue_job(%s, %s, 'standard')::text", user, url)
    status = lambda jid: db.one("SELECT status FROM analysis_jobs WHERE id = %s", jid)
    # completed standard jobs; one meets a Gemini 429 first (retried inside the attempt)
    gem.call("/_control", {"faults": ["429_retry"], "fault_count": 1})
    jobs = [enqueue("https://youtu.be/ok00000000%d" % i) for i in range(3)]
    # a permanent failure, and a transient one that is retried then fails for good
    failed = enqueue("https://youtu.be/private0000")
    retried = enqueue("https://youtu.be/ratelimit00")
    db.q("UPDATE analysis_jobs SET max_attempts = 2 WHERE id = %s", retried)
    ends = {"COMPLETED", "FAILED"}
    check(wait_for(lambda: all(status(j) == "COMPLETED" for j in jobs), 60), "standard jobs completed")
    check(wait_for(lambda: status(failed) == "FAILED" and status(retried) == "FAILED", 60), "failures recorded")
    db.q("INSERT INTO analysis_jobs (user_id, video_url, mode, run_after) VALUES (%s, 'https://youtu.be/ok000000009',"
         " 'standard', now() + interval '1 hour')", user)
    check(wait_for(lambda: w.metric("glint_queue_depth") == 1, 12), "queue depth sampled")
    st, text, _ = w.http("GET", "/metrics")
    check(st == 200, "scrape")
    series = parse_scrape(text)
    check(series.get("glint_job_errors_total") and series.get("glint_stage_duration_seconds_bucket"),
          "the jobs left labelled series behind")

    used = check_dashboard(json.load(open(DASHBOARD)), series)
    used |= check_alerts(series)
    print("metric names used by deploy/grafana (%d): %s" % (len(used), " ".join(sorted(used))))
finally:
    if w:
        w.stop()
    gem.stop()
    db.close()
report()
