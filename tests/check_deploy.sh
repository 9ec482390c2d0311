#!/usr/bin/env bash
# Keeps deploy/ (Kubernetes, Cloud Run) honest without a cluster:
#   - yamllint --strict on every manifest (and the compose file);
#   - every environment variable a manifest sets is in the binary's configuration table (--config-markdown);
#   - probe paths answer from the binary itself: started with an unreachable database, a liveness path answers 200 (a
#     database outage must not restart containers) and a readiness path 503; probe ports are the container port, which
#     is PORT; the image's HEALTHCHECK is on a liveness path;
#   - one image name across the manifests, kustomization and docs/deploy-kubernetes.md;
#   - the shape operators rely on: args not command (tini stays PID 1), numeric non-root user = the image's, read-only
#     root, no privilege escalation, all capabilities dropped, a WORK_DIR volume that holds every deep job's download
#     at once (min(MAX_CONCURRENT_JOBS, MAX_CONCURRENT_DEEP_JOBS) x DOWNLOAD_MAX_BYTES; on Cloud Run counted in the
#     memory limit), a memory limit that covers the subprocess pools (docs/concurrency.md#sizing-for-cloud-run-and-kubernetes)
#     with bounded pools, terminationGracePeriodSeconds above
#     SHUTDOWN_GRACE_MS, Cloud Run min instances >= 1 with CPU always allocated, KEDA's target = MAX_CONCURRENT_JOBS.
# The KEDA query itself runs against PostgreSQL in tests/integration/test_keda_query.py.
#   tests/check_deploy.sh [BUILD_DIR]     (default build/)
set -uo pipefail
cd "$(dirname "$0")/.."
bin=$(realpath -m "${1:-build}/glint-worker")
fail=0
if ! command -v yamllint >/dev/null; then
    echo "FAIL: yamllint is not installed (bash docker/deps.sh test)"
    exit 1
fi
mapfile -t manifests < <(find deploy -name '*.yaml' | sort)
if yamllint --strict -c deploy/.yamllint "${manifests[@]}" docker/docker-compose.worker.yml; then
    echo "ok: yamllint --strict: ${#manifests[@]} manifests and the compose file"
else
    echo "FAIL: yamllint"
    fail=1
fi
if [ ! -x "$bin" ]; then
    echo "FAIL: no binary at $bin (build first)"
    exit 1
fi
python3 - "$bin" <<'EOF' || fail=1
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

BIN = sys.argv[1]
failed = False


def ok(cond, what):
    global failed
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    failed |= not cond
    return cond


# --- the binary's configuration table: name -> default ---
md = subprocess.run([BIN, "--config-markdown"], capture_output=True, text=True, check=True).stdout
config = {}
for line in md.splitlines():
    m = re.match(r"\|\s*`([A-Z0-9_]+)`\s*\|\s*([^|]*?)\s*\|", line)
    if m:
        config[m.group(1)] = m.group(2).split(" (")[0]
ok(len(config) > 10 and "DATABASE_URL" in config, "configuration table read (%d variables)" % len(config))


def default(name):
    return config.get(name, "")


UNITS = {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3, "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4}


def quantity(q):
    m = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(q))
    return int(float(m.group(1)) * UNITS[m.group(2)]) if m and m.group(2) in UNITS else None


def cpu_count(q):
    """A CPU limit as the worker sees it: the cgroup quota rounded up ("2" = 2, "1500m" = 2); 0 when unset."""
    m = re.fullmatch(r"([0-9.]+)(m?)", str(q or ""))
    return 0 if not m else -(-int(float(m.group(1)) * (1 if m.group(2) else 1000)) // 1000)


# --- manifests ---
docs = []
for path in sorted(glob.glob("deploy/**/*.yaml", recursive=True)):
    for d in yaml.safe_load_all(open(path)):
        if d:
            docs.append((path, d))
by_kind = {}
for path, d in docs:
    by_kind.setdefault(d.get("kind"), []).append((path, d))


def pod_specs():
    """(path, kind, owner doc, pod spec) for every pod template: Deployment/Job, Knative Service, Cloud Run Job."""
    for path, d in docs:
        spec = d.get("spec") or {}
        t = (spec.get("template") or {}).get("spec") or {}
        if "containers" in t:
            yield path, d["kind"], d, t
        elif "containers" in ((t.get("template") or {}).get("spec") or {}):
            yield path, d["kind"], d, t["template"]["spec"]


def cloud_run(d):
    return d.get("apiVersion", "").startswith(("serving.knative.dev", "run.googleapis.com"))


def env_of(c):
    return {e["name"]: e.get("value") for e in c.get("env") or []}


images = set()
probe_paths = {"livenessProbe": set(), "readinessProbe": set(), "startupProbe": set()}
pods = list(pod_specs())
ok(len(pods) >= 4, "pod templates found: %s" % ", ".join("%s %s" % (p, k) for p, k, _, _ in pods))
dockerfile = open("docker/Dockerfile").read()
m = re.search(r"^USER (\d+):(\d+)$", dockerfile, re.M)
image_uid = int(m.group(1)) if m else None
for path, kind, owner, spec in pods:
    where = "%s (%s)" % (path, kind)
    serve = False
    for c in spec["containers"]:
        env = env_of(c)
        unknown = sorted(set(env) - set(config))
        ok(not unknown, "%s: every env var is in the configuration table%s" % (where, " (unknown: %s)" % unknown if unknown else ""))
        ok("command" not in c and c.get("args"), "%s: sets args, not command (tini stays PID 1)" % where)
        images.add(re.sub(r"(@sha256:[0-9a-f]+|:[^/:]+)$", "", c["image"]))
        serve = c.get("args") == ["serve"]
        migrate = c.get("args") == ["migrate"]
        ok(serve or migrate, "%s: runs glint-worker serve or migrate (%s)" % (where, c.get("args")))
        if cloud_run(owner):
            if serve:
                ok(env.get("SHUTDOWN_GRACE_MS") is not None and int(env["SHUTDOWN_GRACE_MS"]) < 10000,
                   "%s: SHUTDOWN_GRACE_MS below Cloud Run's 10 s between SIGTERM and SIGKILL" % where)
        else:
            psc, csc = spec.get("securityContext") or {}, c.get("securityContext") or {}
            ok(psc.get("runAsNonRoot") is True and psc.get("runAsUser") == image_uid and image_uid,
               "%s: runAsNonRoot with runAsUser %s = the image's USER" % (where, psc.get("runAsUser")))
            ok(csc.get("readOnlyRootFilesystem") is True and csc.get("allowPrivilegeEscalation") is False
               and (csc.get("capabilities") or {}).get("drop") == ["ALL"],
               "%s: read-only root, no privilege escalation, capabilities dropped" % where)
            ok("limits" in (c.get("resources") or {}) and "requests" in c["resources"], "%s: resource requests and limits" % where)
        if not serve:
            continue
        # ports: the container port is PORT (Cloud Run sets PORT to it; elsewhere env or the binary's default)
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports") or []}
        ok(len(ports) == 1, "%s: one container port %s" % (where, ports))
        port = next(iter(ports.values()), None)
        want = port if cloud_run(owner) and "PORT" not in env else int(env.get("PORT") or default("PORT"))
        ok(port == want, "%s: containerPort %s = PORT %s" % (where, port, want))
        if cloud_run(owner):
            ok("PORT" not in env, "%s: PORT not set on Cloud Run (it is reserved)" % where)
        for probe in ("livenessProbe", "startupProbe") + (() if cloud_run(owner) else ("readinessProbe",)):
            p = (c.get(probe) or {}).get("httpGet")
            if not ok(p and p.get("path"), "%s: %s is an HTTP probe" % (where, probe)):
                continue
            probe_paths[probe].add(p["path"])
            pp = ports.get(p["port"], p["port"])
            ok(pp == port, "%s: %s port %s is the container port" % (where, probe, p["port"]))
        # disk budget: WORK_DIR is a volume holding every job's download at once
        work = env.get("WORK_DIR") or default("WORK_DIR")
        mounts = {v["mountPath"]: v["name"] for v in c.get("volumeMounts") or []}
        vols = {v["name"]: v for v in spec.get("volumes") or []}
        vol = vols.get(mounts.get(work), {})
        if "emptyDir" in vol:
            size = quantity(vol["emptyDir"].get("sizeLimit"))
        else:
            size = quantity((((vol.get("ephemeral") or {}).get("volumeClaimTemplate") or {}).get("spec") or {})
                            .get("resources", {}).get("requests", {}).get("storage"))
        jobs = int(env.get("MAX_CONCURRENT_JOBS") or default("MAX_CONCURRENT_JOBS"))
        deep = int(env.get("MAX_CONCURRENT_DEEP_JOBS") or default("MAX_CONCURRENT_DEEP_JOBS"))
        downloads = min(jobs, deep) if deep > 0 else jobs
        dl = int(env.get("DOWNLOAD_MAX_BYTES") or default("DOWNLOAD_MAX_BYTES"))
        ok(size and size >= downloads * dl, "%s: WORK_DIR %s is a volume of %s bytes >= %d deep downloads at once x "
           "DOWNLOAD_MAX_BYTES %d" % (where, work, size, downloads, dl))
        # memory: the worker, the pools' subprocesses at their measured size, an in-memory work volume
        cpus = cpu_count(c["resources"]["limits"].get("cpu"))
        main = int(env.get("MAX_SUBPROCESSES") or default("MAX_SUBPROCESSES"))
        main = 2 * cpus if main == 0 else main  # the adaptive default's most
        media = int(env.get("MAX_MEDIA_SUBPROCESSES") or default("MAX_MEDIA_SUBPROCESSES"))
        media = max(1, main // 2) if media == 0 else media
        if ok(cpus > 0 and main > 0 and media > 0, "%s: bounded subprocess pools (%d + %d; CPU limit %d)" % (where, main, media, cpus)):
            need = (64 << 20) + jobs * (64 << 10) + main * (100 << 20) + media * (200 << 20)
            need += size if vol.get("emptyDir", {}).get("medium") == "Memory" else 0
            mem = quantity(c["resources"]["limits"].get("memory"))
            ok(mem and mem >= need, "%s: memory limit %s >= worker + %d job slots + %d x 100 MiB + %d x 200 MiB subprocesses%s"
               " = %d" % (where, mem, jobs, main, media, " + the in-memory work volume" if "Memory" in str(vol) else "", need))
        if cloud_run(owner):
            mem = quantity(c["resources"]["limits"]["memory"])
            ok(vol.get("emptyDir", {}).get("medium") == "Memory" and mem and size and mem >= size + (1 << 30),
               "%s: in-memory WORK_DIR volume (%s) counted in the memory limit (%s) with >= 1 GiB to spare" % (where, size, mem))
            ann = owner["spec"]["template"]["metadata"]["annotations"]
            ok(int(ann.get("autoscaling.knative.dev/minScale", 0)) >= 1, "%s: min instances >= 1" % where)
            ok(ann.get("run.googleapis.com/cpu-throttling") == "false", "%s: CPU always allocated" % where)
        else:
            grace = spec.get("terminationGracePeriodSeconds", 30) * 1000
            sg = int(env.get("SHUTDOWN_GRACE_MS") or default("SHUTDOWN_GRACE_MS"))
            ok(grace >= sg + 5000, "%s: terminationGracePeriodSeconds %d s above SHUTDOWN_GRACE_MS %d ms (+5 s to drain)"
               % (where, grace // 1000, sg))
            deployment, deploy_env = owner, env

# one image everywhere
ok(len(images) == 1, "one image name across the manifests: %s" % sorted(images))
image = next(iter(images), "")
kust = [d for _, d in by_kind.get("Kustomization", [])]
ok(kust and [i["name"] for i in kust[0].get("images") or []] == [image], "kustomization's images entry names %s" % image)
listed = set(kust[0].get("resources") or []) if kust else set()
present = {os.path.basename(p) for p in glob.glob("deploy/kubernetes/*.yaml")} - {"kustomization.yaml"}
ok(listed == present, "kustomization lists every Kubernetes manifest (%s)" % sorted(present - listed or listed - present))
doc = open("docs/deploy-kubernetes.md").read() if os.path.exists("docs/deploy-kubernetes.md") else ""
ok(image and image in doc, "docs/deploy-kubernetes.md names the image %s" % image)
compose = yaml.safe_load(open("docker/docker-compose.worker.yml"))
cimg = {s["image"].split(":")[0] for s in compose["services"].values() if "glint" in s.get("image", "")}
ok(cimg == {image.rsplit("/", 1)[-1]}, "compose builds the same image name (%s)" % cimg)

# KEDA scales the Deployment, one replica per MAX_CONCURRENT_JOBS of work
for path, so in by_kind.get("ScaledObject", []):
    trig = [t for t in so["spec"]["triggers"] if t["type"] == "postgresql"]
    ok(len(trig) == 1 and "analysis_jobs" in trig[0]["metadata"].get("query", ""), "%s: a postgresql trigger on analysis_jobs" % path)
    ok(so["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"], "%s: scales the worker Deployment" % path)
    jobs = deploy_env.get("MAX_CONCURRENT_JOBS") or default("MAX_CONCURRENT_JOBS")
    ok(trig and trig[0]["metadata"].get("targetQueryValue") == jobs, "%s: targetQueryValue = MAX_CONCURRENT_JOBS (%s)" % (path, jobs))
    ok(so["spec"].get("minReplicaCount", 0) >= 1, "%s: at least one worker keeps LISTENing" % path)
    auth = trig[0].get("authenticationRef", {}).get("name") if trig else None
    ok(auth in [d["metadata"]["name"] for _, d in by_kind.get("TriggerAuthentication", [])], "%s: its TriggerAuthentication exists" % path)
ok(len(by_kind.get("ScaledObject", [])) == 1, "one KEDA ScaledObject")
labels = deployment["spec"]["template"]["metadata"]["labels"]
for path, d in by_kind.get("PodDisruptionBudget", []) + by_kind.get("Service", []):
    if cloud_run(d):
        continue
    sel = d["spec"]["selector"].get("matchLabels", d["spec"]["selector"])
    ok(sel and all(labels.get(k) == v for k, v in sel.items()), "%s: %s selects the worker pods" % (path, d["kind"]))
ok(len(by_kind.get("PodDisruptionBudget", [])) == 1, "a PodDisruptionBudget")
ok(sum(1 for _, k, _, s in pods if k == "Job" and s["containers"][0].get("args") == ["migrate"]) == 2,
   "a migrate Job for Kubernetes and for Cloud Run")

# --- probe paths answer from the binary (database unreachable: liveness 200, readiness 503) ---
m = re.search(r"GET (/\S+) HTTP", "\n".join(l for l in dockerfile.splitlines() if "HEALTHCHECK" in l or "CMD [" in l))
health = m.group(1) if m else None
ok(health in probe_paths["livenessProbe"], "the image's HEALTHCHECK uses a liveness path (%s)" % health)
log = tempfile.NamedTemporaryFile(prefix="check-deploy-", suffix=".log", delete=False)
env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG")}
env.update(DATABASE_URL="postgresql://127.0.0.1:1/none?connect_timeout=1", HOST="127.0.0.1", PORT="0", LOG_LEVEL="info")
w = subprocess.Popen([BIN, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tempfile.gettempdir())
port = None
for _ in range(500):
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log.name).read())
    if m or w.poll() is not None:
        break
    time.sleep(0.01)
port = int(m.group(1)) if m else None
ok(port, "the binary serves HTTP with the database unreachable")


def status(path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


if port:
    time.sleep(0.3)  # a few failed connection attempts
    for kind, want in (("livenessProbe", {200}), ("startupProbe", None), ("readinessProbe", {503})):
        for p in sorted(probe_paths[kind]):
            st = status(p)
            if want is None:  # a startup probe may be either kind of path: it must exist
                want_ = {200} if p in probe_paths["livenessProbe"] else {503} if p in probe_paths["readinessProbe"] else None
                ok(st != 404 and (want_ is None or st in want_), "%s %s answers %s (database down)" % (kind, p, st))
            else:
                ok(st in want, "%s %s answers %s with the database down (want %s)" % (kind, p, st, sorted(want)))
w.send_signal(signal.SIGTERM)
try:
    w.wait(20)
except subprocess.TimeoutExpired:
    w.kill()
    w.wait()
os.unlink(log.name)
sys.exit(1 if failed else 0)
EOF
exit $fail
