"""handlers/assets/openapi.json under a standard OpenAPI linter from npm: Redocly CLI's built-in "recommended" rules
(pinned in tests/browser/package.json, installed with `npm ci` like the dashboard test's playwright-core). No errors
allowed (warnings are printed). Skipped, loudly, only when the npm registry cannot be reached."""
import json
import os
import subprocess
import sys

from harness import SRC, check, report

BROWSER_DIR = os.path.join(SRC, "browser")
CLI = os.path.join(BROWSER_DIR, "node_modules", "@redocly", "cli", "bin", "cli.js")
DOC = os.path.join(SRC, "..", "handlers", "assets", "openapi.json")
ENV = dict(os.environ, REDOCLY_TELEMETRY="off", REDOCLY_SUPPRESS_UPDATE_NOTICE="true")


def skip(why):
    print("=" * 78 + "\nSKIPPED: the OpenAPI document was NOT linted: %s\n" % why + "=" * 78, flush=True)
    sys.exit(77)


if not os.path.exists(CLI):
    p = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=BROWSER_DIR, capture_output=True, text=True,
                       timeout=300)
    if p.returncode != 0:
        ping = subprocess.run(["npm", "ping"], cwd=BROWSER_DIR, capture_output=True, text=True, timeout=60)
        if ping.returncode != 0:
            skip("the npm registry is unreachable (npm ping: %s)" % (ping.stderr.strip()[-300:] or ping.returncode))
        check(False, "npm ci failed although the registry answers: %s" % p.stderr[-1500:])
        report()

p = subprocess.run(["node", CLI, "lint", "--format=json", DOC], cwd=BROWSER_DIR, capture_output=True, text=True,
                   timeout=120, env=ENV)
try:
    problems = json.loads(p.stdout)["problems"]
except (ValueError, KeyError):
    problems = None
check(problems is not None, "redocly lint printed its JSON report: rc=%d %s" % (p.returncode, (p.stdout + p.stderr)[-1500:]))
errors = [x for x in problems or [] if x["severity"] == "error"]
for x in problems or []:
    print("%s %s %s: %s" % (x["severity"], x["ruleId"], x["location"][0]["pointer"], x["message"]))
check(not errors and p.returncode == 0, "no lint errors (%d): %s" % (len(errors), [e["ruleId"] for e in errors]))
check(not [x for x in problems or [] if x["ruleId"] == "nullable-type-sibling"], "nullable only beside a type")

# Job.result: null when not COMPLETED, an analysis otherwise, in the 3.0 form (null is its own branch)
doc = json.load(open(DOC))
result = doc["components"]["schemas"]["Job"]["properties"]["result"]
branches = result.get("oneOf", [])
check("nullable" not in result and {"$ref": "#/components/schemas/Result"} in branches and
      any(b.get("nullable") and b.get("type") and b.get("enum") == [None] for b in branches),
      "Job.result: oneOf [Result, null]: %r" % result)
report()
