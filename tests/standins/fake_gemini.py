#!/usr/bin/env python3
"""A local stand-in for the Gemini REST API (generateContent, models.get, Files API), stdlib only.

    fake_gemini.py --port 0 --port-file PATH [--api-key KEY] [--control] [--faults 503,429_retry] [--known-models A,B]
                   [--fault-count N] [--latency-ms MS] [--processing-polls N] [--retry-delay 0.2s]

It answers like Google does (same envelopes, error shapes, headers) and builds its analysis from the
transcript lines ("[MM:SS] text") found in the request, so timestamps are real and within range.
It is strict where our contract is strict (responseMimeType, one schema, no temperature/topP/topK,
no thinkingBudget with thinkingLevel, uppercase schema types, no additionalProperties) and records
every such protocol violation for tests to read from GET /_control/stats.

With --control, tests steer it at run time:
    POST /_control          {"faults": [...], "fault_count": N, "latency_ms": .., "processing_polls": ..,
                             "retry_delay": "0.2s", "hang_ms": .., "upload_granularity": .., "models": [..] (added),
                             "known_models": [..] (the only models known: others answer 404 NOT_FOUND),
                             "discard_uploads": bool, "chunk_delay_ms": .. (each upload data request waits),
                             "refused_keys": {"KEY": 401 | 403} (that key is refused on every endpoint: 401
                             UNAUTHENTICATED, or 403 PERMISSION_DENIED as for a key reported as leaked)}
    POST /_control          {"random_faults": {"503": 0.1, "reset": 0.05, ...}}: besides the listed faults, each
                            request draws one of these with its probability (sum <= 1; {} turns it off)
    POST /_control/reset    forget stats, violations, faults, random faults and chunk_delay_ms (files stay)
    GET  /_control/stats    request counts, last bodies, violations, faults applied, bytes received
    GET  /_control/files    files still alive and uploads never finalized (tests assert cleanup)
Faults, taken in list order, each for fault_count matching requests (omitted or -1: forever):
    generateContent: 429_retry 429_day 500 502 503 timeout reset truncated_json max_tokens blocked
                     safety recitation bad_timestamps all_bad_timestamps empty
    uploads:         upload_503 (start or data requests answer 503) chunk_503 (data requests only: 503 mid-upload)
                     upload_reset (a data request is cut off half-way with a connection reset; nothing of it is
                     committed, like the real service, so the client must query and resume)
    files:           never_active (stays PROCESSING) file_failed (ends FAILED) -- per uploaded file
    generate:        file_expired (a generateContent naming an uploaded file finds it gone: 403, file removed)
                     youtube_refused (a YouTube fileUri is refused with 400 INVALID_ARGUMENT)
Requests-per-minute quota (off by default), like Gemini's per project and model: --rpm-limit N [--rpm-window-ms MS]
(or {"rpm_limit": N, "rpm_window_ms": MS} on POST /_control). generateContent calls accepted in the last window are
counted per model; one more is answered 429 RESOURCE_EXHAUSTED with a QuotaFailure (PerMinute) and a RetryInfo
retryDelay saying when the oldest leaves the window. Stats: "rpm": {"limit", "window_ms", "accepted", "rejected"}.
Uploads are streamed to disk, or only counted and hashed with "discard_uploads": true (--discard-uploads), so a
200 MB upload never sits in memory.
"""
import argparse
import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

GENERATE_FAULTS = {"429_retry", "429_day", "500", "502", "503", "timeout", "reset", "truncated_json", "max_tokens",
                   "blocked", "safety", "recitation", "bad_timestamps", "all_bad_timestamps", "empty"}
UPLOAD_FAULTS = {"upload_503"}
CHUNK_FAULTS = {"upload_503", "chunk_503", "upload_reset"}
FILE_PART_FAULTS = {"file_expired", "youtube_refused"}
FILE_FAULTS = {"never_active", "file_failed"}
ALL_FAULTS = GENERATE_FAULTS | CHUNK_FAULTS | FILE_FAULTS | FILE_PART_FAULTS

DEFAULT_MODELS = ["gemini-3.6-flash", "gemini-3.5-flash", "gemini-3.1-pro-preview", "gemini-flash-latest",
                  "gemini-pro-latest"]
TOP_LEVEL_FIELDS = {"contents", "systemInstruction", "system_instruction", "generationConfig", "generation_config",
                    "safetySettings", "tools", "toolConfig", "cachedContent"}
GENCONFIG_FIELDS = {"stopSequences", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
                    "candidateCount", "maxOutputTokens", "temperature", "topP", "topK", "seed", "presencePenalty",
                    "frequencyPenalty", "responseLogprobs", "logprobs", "thinkingConfig", "mediaResolution",
                    "speechConfig", "enableEnhancedCivicAnswers"}
SCHEMA_TYPES = {"OBJECT", "ARRAY", "STRING", "INTEGER", "NUMBER", "BOOLEAN", "NULL"}
SCHEMA_FIELDS = {"type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
                 "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
                 "propertyOrdering", "default", "items", "minimum", "maximum"}
THINKING_LEVELS = {"minimal", "low", "medium", "high"}
MEDIA_RESOLUTIONS = {"MEDIA_RESOLUTION_UNSPECIFIED", "MEDIA_RESOLUTION_LOW", "MEDIA_RESOLUTION_MEDIUM",
                     "MEDIA_RESOLUTION_HIGH"}
MAX_JSON_BODY = 64 << 20
STOPWORDS = set("""about above after again against because been before being below between both could does doing
down during each from further have having here hers herself himself into itself just more most myself once only other
ourselves over same should some such than that their theirs them themselves then there these they this those through
under until very were what when where which while whom with would your yours yourself yourselves really going
thing things gonna wanna actually basically right think know like well okay yeah want also these people""".split())
TRANSCRIPT_LINE = re.compile(r"^\[(\d{1,3}:\d{2}(?::\d{2})?)\] ?(.*)$", re.M)
TRANSCRIPT_TS = re.compile(r"^\d{1,3}:\d{2}(?::\d{2})?$")
DURATION = re.compile(r"^\d+(\.\d+)?s$")
PART_BLOCK = re.compile(r"^Part (\d+) of (\d+):\n(\{.*\})$", re.M)


class ApiError(Exception):
    def __init__(self, code, status, message, details=None, violation=None):
        super().__init__(message)
        self.code, self.status, self.message, self.details, self.violation = code, status, message, details, violation


def parse_ts(s):
    parts = [int(p) for p in s.split(":")]
    return parts[0] * 60 + parts[1] if len(parts) == 2 else parts[0] * 3600 + parts[1] * 60 + parts[2]


def fmt_ts(sec):
    sec = max(0, int(sec))
    return "%02d:%02d" % (sec // 60, sec % 60) if sec < 3600 else "%d:%02d:%02d" % (sec // 3600, sec // 60 % 60, sec % 60)


def words(text, n):
    w = text.split()
    return " ".join(w[:n]) + ("…" if len(w) > n else "")


def est_tokens(text):
    return max(1, len(text) // 4)


def now_rfc3339(offset=0.0):
    t = time.time() + offset
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".%06dZ" % int((t % 1) * 1e6)


class State:
    """Everything the handlers share; one lock guards it all (the stand-in is not about speed)."""

    def __init__(self, args):
        self.lock = threading.Lock()
        self.api_key = args.api_key
        self.control = args.control
        # the models this "Gemini" knows: the defaults plus --models, or exactly --known-models
        known = [m for m in (args.known_models or "").split(",") if m]
        self.models = known if args.known_models is not None else \
            list(DEFAULT_MODELS) + [m for m in (args.models or "").split(",") if m]
        self.tmpdir = tempfile.mkdtemp(prefix="fake_gemini_")
        self.port = 0
        self.files = {}    # id -> dict (metadata + path + polls)
        self.uploads = {}  # upload_id -> dict (pending resumable uploads)
        self.latency_ms = args.latency_ms
        self.processing_polls = args.processing_polls
        self.retry_delay = args.retry_delay
        self.hang_ms = args.hang_ms
        self.upload_granularity = args.upload_granularity
        self.discard_uploads = args.discard_uploads
        self.chunk_delay_ms = 0
        self.refused_keys = {}
        self.set_faults([f for f in (args.faults or "").split(",") if f], args.fault_count)
        self.random_faults = {}
        rpm_init(self, args)
        self.reset_stats()

    def set_faults(self, faults, count):
        unknown = [f for f in faults if f not in ALL_FAULTS]
        if unknown:
            raise ValueError("unknown faults: %s" % ", ".join(unknown))
        self.faults = list(faults)
        self.fault_left = {f: (-1 if count is None or count < 0 else int(count)) for f in faults}

    def set_random_faults(self, probs):
        unknown = [f for f in probs if f not in ALL_FAULTS]
        if unknown:
            raise ValueError("unknown faults: %s" % ", ".join(unknown))
        probs = {f: float(p) for f, p in probs.items()}
        if any(p < 0 for p in probs.values()) or sum(probs.values()) > 1.0 + 1e-9:
            raise ValueError("random_faults: probabilities must be >= 0 and sum to at most 1")
        self.random_faults = probs

    def reset_stats(self):
        self.requests = {}
        self.last = {}
        self.generate_bodies = []
        self.violations = []
        self.faults_applied = {}
        self.bytes_received = 0
        rpm_reset(self)

    def take_fault(self, kinds):
        """The first listed fault of these kinds still to be served, consumed; None when none."""
        with self.lock:
            for f in self.faults:
                if f in kinds and self.fault_left[f] != 0:
                    if self.fault_left[f] > 0:
                        self.fault_left[f] -= 1
                    self.faults_applied[f] = self.faults_applied.get(f, 0) + 1
                    return f
            r, acc = random.random(), 0.0
            for f, p in self.random_faults.items():
                if f in kinds:
                    acc += p
                    if r < acc:
                        self.faults_applied[f] = self.faults_applied.get(f, 0) + 1
                        return f
        return None

    def count(self, endpoint, body=None, headers=None):
        with self.lock:
            self.requests[endpoint] = self.requests.get(endpoint, 0) + 1
            entry = {"headers": headers or {}}
            if body is not None:
                entry["body"] = body
            self.last[endpoint] = entry
            if endpoint == "generateContent" and body is not None:
                self.generate_bodies.append(body)
                del self.generate_bodies[:-20]

    def violation(self, endpoint, what):
        with self.lock:
            self.violations.append({"endpoint": endpoint, "violation": what, "time": time.time()})


# ---------------------------------------------------------------------------------------------
# Request validation (generateContent)
# ---------------------------------------------------------------------------------------------

def check_schema(schema, path, problems):
    if not isinstance(schema, dict):
        problems.append("%s: schema must be an object" % path)
        return
    for k in schema:
        if k not in SCHEMA_FIELDS:
            problems.append("%s: unknown schema field %r (the responseSchema OpenAPI subset has no %s)" % (path, k, k))
    t = schema.get("type")
    if t not in SCHEMA_TYPES:
        problems.append("%s: type %r is not one of %s (uppercase)" % (path, t, "/".join(sorted(SCHEMA_TYPES))))
    props = schema.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            problems.append("%s.properties must be an object" % path)
        else:
            for name, sub in props.items():
                check_schema(sub, "%s.properties.%s" % (path, name), problems)
            for name in schema.get("required", []) + schema.get("propertyOrdering", []):
                if name not in props:
                    problems.append("%s: required/propertyOrdering names unknown property %r" % (path, name))
    if t == "ARRAY":
        if "items" not in schema:
            problems.append("%s: ARRAY without items" % path)
        else:
            check_schema(schema["items"], path + ".items", problems)


def validate_generate(body, state):
    """Raises ApiError(400) like Google for anything our contract forbids."""
    if not isinstance(body, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Expected an object.")
    for k in body:
        if k not in TOP_LEVEL_FIELDS:
            raise ApiError(400, "INVALID_ARGUMENT",
                           'Invalid JSON payload received. Unknown name "%s": Cannot find field.' % k,
                           violation="unknown top-level field %s" % k)
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified",
                       violation="contents missing or empty")
    for i, c in enumerate(contents):
        parts = c.get("parts") if isinstance(c, dict) else None
        if not isinstance(parts, list) or not parts:
            raise ApiError(400, "INVALID_ARGUMENT",
                           "* GenerateContentRequest.contents[%d].parts: contents.parts must not be empty." % i,
                           violation="contents[%d].parts missing or empty" % i)
        for j, p in enumerate(parts):
            if not isinstance(p, dict) or not ({"text", "fileData", "inlineData"} & set(p)):
                raise ApiError(400, "INVALID_ARGUMENT",
                               "* GenerateContentRequest.contents[%d].parts[%d].data: required oneof field 'data' "
                               "must have one initialized field" % (i, j), violation="empty part")
            vm = p.get("videoMetadata")
            if vm is not None:
                offs = [vm.get(k) for k in ("startOffset", "endOffset")] if isinstance(vm, dict) else [None]
                if "fileData" not in p or not all(isinstance(o, str) and DURATION.match(o) for o in offs if o is not None) \
                        or (all(o is not None for o in offs) and float(offs[0][:-1]) >= float(offs[1][:-1])):
                    raise ApiError(400, "INVALID_ARGUMENT", "Invalid videoMetadata %r" % (vm,),
                                   violation="bad videoMetadata %r" % (vm,))
    gc = body.get("generationConfig")
    if not isinstance(gc, dict):
        raise ApiError(400, "INVALID_ARGUMENT", "generationConfig is required by this stand-in (JSON output)",
                       violation="generationConfig missing")
    for k in gc:
        if k not in GENCONFIG_FIELDS:
            raise ApiError(400, "INVALID_ARGUMENT",
                           'Invalid JSON payload received. Unknown name "%s" at \'generation_config\': '
                           'Cannot find field.' % k, violation="unknown generationConfig field %s" % k)
    for k in ("temperature", "topP", "topK"):
        if k in gc:
            raise ApiError(400, "INVALID_ARGUMENT",
                           "generationConfig.%s is deprecated for this model and must not be sent" % k,
                           violation="sent deprecated generationConfig.%s" % k)
    if gc.get("responseMimeType") != "application/json":
        raise ApiError(400, "INVALID_ARGUMENT", "responseMimeType must be application/json for a structured answer",
                       violation="responseMimeType is %r" % gc.get("responseMimeType"))
    has_schema, has_json_schema = "responseSchema" in gc, "responseJsonSchema" in gc
    if has_schema == has_json_schema:
        raise ApiError(400, "INVALID_ARGUMENT",
                       "Exactly one of generationConfig.responseSchema and generationConfig.responseJsonSchema "
                       "must be set", violation="responseSchema/responseJsonSchema: %s" %
                       ("both" if has_schema else "neither"))
    if has_schema:
        problems = []
        check_schema(gc["responseSchema"], "responseSchema", problems)
        if problems:
            raise ApiError(400, "INVALID_ARGUMENT", "Invalid responseSchema: " + "; ".join(problems[:5]),
                           violation="bad responseSchema: " + problems[0])
    tc = gc.get("thinkingConfig")
    if tc is not None:
        if not isinstance(tc, dict):
            raise ApiError(400, "INVALID_ARGUMENT", "thinkingConfig must be an object", violation="bad thinkingConfig")
        if "thinkingBudget" in tc and "thinkingLevel" in tc:
            raise ApiError(400, "INVALID_ARGUMENT",
                           "thinking_budget and thinking_level are not supported together. Use only one.",
                           violation="thinkingBudget sent together with thinkingLevel")
        lvl = tc.get("thinkingLevel")
        if lvl is not None and str(lvl).lower() not in THINKING_LEVELS:
            raise ApiError(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.thinking_config.thinking_level'"
                           " (%r)" % lvl, violation="bad thinkingLevel %r" % lvl)
    mr = gc.get("mediaResolution")
    if mr is not None and mr not in MEDIA_RESOLUTIONS:
        raise ApiError(400, "INVALID_ARGUMENT", "Invalid value at 'generation_config.media_resolution' (%r)" % mr,
                       violation="bad mediaResolution %r" % mr)
    mot = gc.get("maxOutputTokens")
    if mot is not None and (not isinstance(mot, int) or mot <= 0):
        raise ApiError(400, "INVALID_ARGUMENT", "maxOutputTokens must be a positive integer",
                       violation="bad maxOutputTokens %r" % mot)
    check_file_parts(contents, state)


def check_file_parts(contents, state):
    """fileData must name an ACTIVE file of ours (or a YouTube URL), like the real service."""
    for c in contents:
        for p in c.get("parts", []):
            fd = p.get("fileData")
            if fd is None:
                continue
            uri = fd.get("fileUri", "") if isinstance(fd, dict) else ""
            if not uri or not fd.get("mimeType"):
                raise ApiError(400, "INVALID_ARGUMENT", "fileData needs fileUri and mimeType",
                               violation="fileData without fileUri/mimeType")
            m = re.search(r"/v1beta/files/([A-Za-z0-9_-]+)$", uri)
            if m is None:
                if "youtube.com/" in uri or "youtu.be/" in uri:
                    # Gemini takes a public video's page URL, not a playlist, channel or search page
                    if not re.match(r"^https://(www\.)?(youtube\.com/watch\?v=|youtu\.be/)[A-Za-z0-9_-]{11}$", uri):
                        raise ApiError(400, "INVALID_ARGUMENT", "Request contains an invalid argument.",
                                       violation="YouTube fileUri is not a video URL: %s" % uri)
                    if state.take_fault({"youtube_refused"}):
                        raise ApiError(400, "INVALID_ARGUMENT", "Request contains an invalid argument.")
                    continue
                raise ApiError(400, "INVALID_ARGUMENT", "Unsupported file uri: %s" % uri,
                               violation="fileData uri not a Files API or YouTube URI")
            if state.take_fault({"file_expired"}):  # files live 48 h; this one just expired: not the client's fault
                with state.lock:
                    gone = state.files.pop(m.group(1), None)
                if gone and gone.get("path"):
                    try:
                        os.unlink(gone["path"])
                    except OSError:
                        pass
                raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to access the File %s or it may "
                               "not exist." % m.group(1))
            with state.lock:
                f = state.files.get(m.group(1))
                st = f["state"] if f else None
            if f is None:
                raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to access the File %s or it "
                               "may not exist." % m.group(1), violation="fileData names an unknown/deleted file")
            if st != "ACTIVE":
                raise ApiError(400, "FAILED_PRECONDITION", "The File %s is not in an ACTIVE state and usage is not "
                               "allowed." % m.group(1), violation="fileData used before the file was ACTIVE")


# ---------------------------------------------------------------------------------------------
# The "model": an analysis built from the transcript in the request
# ---------------------------------------------------------------------------------------------

def request_texts(body):
    out = []
    for c in body.get("contents", []):
        for p in c.get("parts", []):
            if isinstance(p.get("text"), str):
                out.append(p["text"])
    return "\n".join(out)


def media_clip(body, duration):
    """(start, end) seconds the media part covers: its videoMetadata clip, else the whole duration."""
    for c in body.get("contents", []):
        for p in c.get("parts", []):
            if "fileData" in p:
                vm = p.get("videoMetadata") or {}
                start = float(vm.get("startOffset", "0s")[:-1])
                end = float(vm["endOffset"][:-1]) if "endOffset" in vm else float(duration or start + 60)
                return start, end
    return None


def media_lines(clip):
    """What the stand-in 'sees' in the media when there is no transcript: six scenes spread over the clip."""
    start, end = clip
    step = max(1.0, (end - start) / 6.0)
    return [(int(start + i * step), "Scene %d shows the presenter explaining a diagram on screen" % (i + 1))
            for i in range(6) if start + i * step < end]


def has_file_part(body):
    return any("fileData" in p for c in body.get("contents", []) for p in c.get("parts", []))


def schema_props(gc):
    s = gc.get("responseSchema") or gc.get("responseJsonSchema") or {}
    return s.get("properties", {}) if isinstance(s, dict) else {}


def parse_prompt(text):
    title = re.search(r"^Title: (.*)$", text, re.M)
    dur = re.search(r"^Duration: .*?\((\d+) seconds\)", text, re.M)
    start = re.search(r"^Transcript\b.*:$", text, re.M)  # chapters and metadata come before it
    body = text[start.end():] if start else ""
    lines = [(parse_ts(m.group(1)), m.group(2).strip()) for m in TRANSCRIPT_LINE.finditer(body)]
    lines = [(s, t) for s, t in lines if t]
    duration = int(dur.group(1)) if dur else (lines[-1][0] + 5 if lines else None)
    partials = []
    for m in PART_BLOCK.finditer(text):
        try:
            partials.append(json.loads(m.group(3)))
        except ValueError:
            pass
    return (title.group(1).strip() if title else "Untitled video"), duration, lines, partials


def keywords_of(texts, n=8):
    freq = {}
    for t in texts:
        for w in re.findall(r"[^\W\d_]{5,}", t.lower()):
            if w not in STOPWORDS:
                freq[w] = freq.get(w, 0) + 1
    return [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:n]] or ["video"]


def analyse(title, duration, lines, deep):
    if not lines:
        timeline = [{"timestamp": "00:00", "description": "Opening of the video",
                     "details": ["No transcript was provided; analysis based on the video"]}]
        result = {"title": title, "summary": "An analysis of \u201c%s\u201d made without a transcript." % title,
                  "keyTakeaways": ["The video has no transcript"], "timeline": timeline, "keywords": ["video"]}
    else:
        k = min(6, len(lines))
        idx = sorted({round(i * (len(lines) - 1) / max(1, k - 1)) for i in range(k)})
        timeline = []
        for pos, i in enumerate(idx):
            end = idx[pos + 1] if pos + 1 < len(idx) else len(lines)
            details = [words(t, 16) for _, t in lines[i:end][:3]]
            timeline.append({"timestamp": fmt_ts(lines[i][0]), "description": words(lines[i][1], 8),
                             "details": details})
        picks = [lines[i][1] for i in idx]
        summary = "\u201c%s\u201d walks through %d topics. %s." % (
            title, len(idx), " Then ".join(words(p, 12).rstrip(".") for p in picks[:4]))
        result = {"title": title, "summary": summary,
                  "keyTakeaways": [words(p, 20) for p in picks[:5]],
                  "timeline": timeline, "keywords": keywords_of([t for _, t in lines])}
    if deep:
        kinds = ["Slide", "Chart", "Diagram", "Text"]
        result["visualAudit"] = [{"timestamp": e["timestamp"], "detail": "On-screen %s about %s" % (
            kinds[i % len(kinds)].lower(), e["description"]), "type": kinds[i % len(kinds)]}
            for i, e in enumerate(result["timeline"][:4])]
    return result


def merge(partials, title, deep):
    out = {"title": next((p.get("title") for p in partials if p.get("title")), title),
           "summary": " ".join(p.get("summary", "") for p in partials).strip() or "Merged analysis.",
           "keyTakeaways": [k for p in partials for k in p.get("keyTakeaways", [])][:10],
           "timeline": sorted((e for p in partials for e in p.get("timeline", [])
                               if isinstance(e, dict) and TRANSCRIPT_TS.match(str(e.get("timestamp", "")))),
                              key=lambda e: parse_ts(e["timestamp"])),
           "keywords": []}
    seen = set()
    for p in partials:
        for kw in p.get("keywords", []):
            if kw.lower() not in seen:
                seen.add(kw.lower())
                out["keywords"].append(kw)
    if deep:
        out["visualAudit"] = [v for p in partials for v in p.get("visualAudit", [])]
    return out


def order_like_schema(result, props):
    return {k: result[k] for k in list(props) + [k for k in result if k not in props] if k in result}


def break_timestamps(result, duration, all_bad):
    """bad_timestamps: a mix a validator can repair; all_bad_timestamps: nothing usable."""
    d = duration or 600
    tl = result["timeline"]
    if all_bad:
        for i, e in enumerate(tl):
            e["timestamp"] = fmt_ts(d + 600 + 60 * i) if i % 2 == 0 else "%ds" % (i * 30)
        return
    extra = [{"timestamp": fmt_ts(d + 900), "description": "Beyond the end", "details": []},
             {"timestamp": "00:00", "description": "Going backwards", "details": []},
             {"timestamp": "1h05m", "description": "Unparsable", "details": []}]
    tl[1:1] = extra
    if tl:
        tl[0]["timestamp"] = "[%s]" % tl[0]["timestamp"]


# ---------------------------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------------------------

def google_error(code, status, message, details=None):
    err = {"code": code, "message": message, "status": status}
    if details:
        err["details"] = details
    return {"error": err}


def quota_details(per_day, retry_delay):
    qid = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
           else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    return [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
             "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                             "quotaId": qid, "quotaDimensions": {"location": "global", "model": "gemini"},
                             "quotaValue": "20" if per_day else "10"}]},
            {"@type": "type.googleapis.com/google.rpc.Help",
             "links": [{"description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "35000s" if per_day else retry_delay}]


# ---------------------------------------------------------------------------------------------
# Requests-per-minute quota (--rpm-limit): a sliding window per model, as strict as any way Gemini may count
# ---------------------------------------------------------------------------------------------

def rpm_arguments(ap):
    ap.add_argument("--rpm-limit", type=int, default=0, help="generateContent calls per window and model (0 = no limit)")
    ap.add_argument("--rpm-window-ms", type=int, default=60000, help="the window of --rpm-limit (Gemini: one minute)")


def rpm_init(state, args):
    state.rpm_limit = max(0, getattr(args, "rpm_limit", 0) or 0)
    state.rpm_window_ms = getattr(args, "rpm_window_ms", 60000) or 60000
    state.rpm_log = {}  # model -> monotonic times of the calls accepted in the window


def rpm_reset(state):
    state.rpm_accepted = 0
    state.rpm_rejected = 0
    state.rpm_log = {}


def rpm_control(state, cfg):
    """Under state.lock: {"rpm_limit": N, "rpm_window_ms": MS} from POST /_control."""
    if "rpm_limit" in cfg:
        state.rpm_limit = max(0, int(cfg["rpm_limit"]))
    if "rpm_window_ms" in cfg:
        if int(cfg["rpm_window_ms"]) <= 0:
            raise ValueError("rpm_window_ms must be positive")
        state.rpm_window_ms = int(cfg["rpm_window_ms"])


def rpm_stats(state):
    """Under state.lock."""
    return {"limit": state.rpm_limit, "window_ms": state.rpm_window_ms, "accepted": state.rpm_accepted,
            "rejected": state.rpm_rejected}


def rpm_admit(state, model):
    """Counts one generateContent call against the model's window, or raises Gemini's per-minute 429."""
    with state.lock:
        if state.rpm_limit <= 0:
            return
        now, window = time.monotonic(), state.rpm_window_ms / 1000.0
        log = [t for t in state.rpm_log.get(model, []) if t > now - window]
        if len(log) < state.rpm_limit:
            log.append(now)
            state.rpm_log[model] = log
            state.rpm_accepted += 1
            return
        state.rpm_log[model] = log
        state.rpm_rejected += 1
        retry = max(0.001, log[0] + window - now)
        limit = state.rpm_limit
    delay = ("%.3f" % (int(retry * 1000 + 0.999) / 1000.0)).rstrip("0").rstrip(".") + "s"
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaMetric": "generativelanguage.googleapis.com/generate_content_paid_tier_requests",
                                "quotaId": "GenerateRequestsPerMinutePerProjectPerModel",
                                "quotaDimensions": {"location": "global", "model": model},
                                "quotaValue": str(limit)}]},
               {"@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas",
                           "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
               {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}]
    raise ApiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and billing "
                   "details. For more information on this error, head to: "
                   "https://ai.google.dev/gemini-api/docs/rate-limits.", details)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "scaffolding on HTTPServer2"
    sys_version = ""

    @property
    def st(self):
        return self.server.state

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("fake_gemini: %s\n" % (fmt % args))

    # -- plumbing --------------------------------------------------------------------------

    def send_json(self, code, obj, headers=None):
        data = json.dumps(obj, indent=2).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_error_json(self, e):
        self.send_json(e.code, google_error(e.code, e.status, e.message, e.details))

    def send_raw(self, code, ctype, data, headers=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body_chunks(self):
        """Yields the request body (Content-Length or chunked) in pieces, so uploads never sit in memory."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, 1 << 16))
                    if not piece:
                        raise ConnectionError("body ended early")
                    left -= len(piece)
                    yield piece
                self.rfile.readline()
        left = int(self.headers.get("Content-Length") or 0)
        while left > 0:
            piece = self.rfile.read(min(left, 1 << 16))
            if not piece:
                raise ConnectionError("body ended early")
            left -= len(piece)
            yield piece

    def read_body(self, limit=MAX_JSON_BODY):
        buf = bytearray()
        for piece in self.body_chunks():
            buf += piece
            if len(buf) > limit:
                self.close_connection = True
                raise ApiError(413, "INVALID_ARGUMENT", "Request payload size exceeds the limit.")
        return bytes(buf)

    def json_body(self, endpoint):
        raw = self.read_body()
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. %s" % exc,
                           violation="%s: body is not JSON" % endpoint)

    def safe_headers(self):
        return {k: ("[REDACTED]" if k.lower() == "x-goog-api-key" else v) for k, v in self.headers.items()}

    def check_key(self, endpoint):
        q = parse_qs(urlsplit(self.path).query)
        key = self.headers.get("x-goog-api-key")
        if key is None and "key" in q:
            key = q["key"][0]
            self.st.violation(endpoint, "API key sent in the URL query (use the x-goog-api-key header)")
        if not key:
            raise ApiError(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers (callers without "
                           "established identity). Please use API Key or other form of API consumer identity to "
                           "call this API.")
        refused = self.st.refused_keys.get(key)
        if refused == 401:
            raise ApiError(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
                           "access token, login cookie or other valid authentication credential. See "
                           "https://developers.google.com/identity/sign-in/web/devconsole-project.")
        if refused == 403:
            raise ApiError(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key.")
        if self.st.api_key is not None and key != self.st.api_key:
            raise ApiError(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                           [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                             "domain": "googleapis.com",
                             "metadata": {"service": "generativelanguage.googleapis.com"}}])

    def delay(self):
        if self.st.latency_ms > 0:
            time.sleep(self.st.latency_ms / 1000.0)

    def hard_reset(self):
        """Abortive close: the client sees ECONNRESET, no response."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the makefile reference would otherwise keep the socket open
            self.connection.close()
        except OSError:
            pass

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def dispatch(self, method):
        try:
            self.route(method)
        except ApiError as e:
            if e.violation:
                self.st.violation(urlsplit(self.path).path, e.violation)
            self.send_error_json(e)
        except (ConnectionError, socket.timeout, BrokenPipeError):
            self.close_connection = True

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    # -- routing ---------------------------------------------------------------------------

    def route(self, method):
        path = urlsplit(self.path).path
        if path.startswith("/_control"):
            if not self.st.control:
                self.read_body()
                raise ApiError(404, "NOT_FOUND", "control endpoints are disabled (start with --control)")
            return self.control(method, path)
        m = re.fullmatch(r"/v1beta/models/([^/:]+):([A-Za-z]+)", path)
        if m and method == "POST":
            if m.group(2) != "generateContent":
                self.read_body()
                raise ApiError(404, "NOT_FOUND", "Method %s is not supported by this stand-in" % m.group(2))
            return self.generate(m.group(1))
        m = re.fullmatch(r"/v1beta/models/([^/:]+)", path)
        if m and method == "GET":
            return self.model_get(m.group(1))
        if path == "/v1beta/models" and method == "GET":
            self.read_body()
            self.check_key("models.list")
            self.st.count("models.list")
            return self.send_json(200, {"models": [self.model_info(n) for n in self.st.models]})
        if path == "/upload/v1beta/files" and method in ("POST", "PUT"):
            q = parse_qs(urlsplit(self.path).query)
            if "upload_id" in q:
                return self.upload_data(q["upload_id"][0])
            return self.upload_start()
        m = re.fullmatch(r"/v1beta/files/([A-Za-z0-9_-]+)", path)
        if m and method in ("GET", "DELETE"):
            return self.file_get(m.group(1)) if method == "GET" else self.file_delete(m.group(1))
        if path == "/v1beta/files" and method == "GET":
            self.read_body()
            self.check_key("files.list")
            self.st.count("files.list")
            with self.st.lock:
                files = [self.file_json(f) for f in self.st.files.values()]
            return self.send_json(200, {"files": files} if files else {})
        self.read_body()
        self.st.count("unknown")
        raise ApiError(404, "NOT_FOUND", "The requested URL %s was not found on this server." % path,
                       violation="unknown endpoint %s %s" % (method, path))

    # -- models ----------------------------------------------------------------------------

    def model_info(self, name):
        return {"name": "models/" + name, "version": "3", "displayName": name.replace("-", " ").title(),
                "description": "Stand-in for %s" % name, "inputTokenLimit": 1048576, "outputTokenLimit": 65536,
                "supportedGenerationMethods": ["generateContent", "countTokens", "createCachedContent"],
                "temperature": 1.0, "topP": 0.95, "topK": 64, "maxTemperature": 2.0, "thinking": True}

    def model_get(self, name):
        self.read_body()
        self.check_key("models.get")
        self.st.count("models.get", headers=self.safe_headers())
        self.delay()
        if name not in self.st.models:
            raise ApiError(404, "NOT_FOUND", "models/%s is not found for API version v1beta." % name)
        self.send_json(200, self.model_info(name))

    def generate(self, model):
        body = self.json_body("generateContent")
        self.st.count("generateContent", body, self.safe_headers())
        self.check_key("generateContent")
        if model not in self.st.models:
            raise ApiError(404, "NOT_FOUND", "models/%s is not found for API version v1beta, or is not supported "
                           "for generateContent. Call ListModels to see the list of available models and their "
                           "supported methods." % model)
        validate_generate(body, self.st)
        rpm_admit(self.st, model)
        self.delay()
        fault = self.st.take_fault(GENERATE_FAULTS)
        if fault in ("429_retry", "429_day"):
            raise ApiError(429, "RESOURCE_EXHAUSTED", "You exceeded your current quota, please check your plan and "
                           "billing details. For more information on this error, head to: "
                           "https://ai.google.dev/gemini-api/docs/rate-limits.",
                           quota_details(fault == "429_day", self.st.retry_delay))
        if fault == "500":
            raise ApiError(500, "INTERNAL", "An internal error has occurred. Please retry or report in "
                           "https://developers.generativeai.google/guide/troubleshooting")
        if fault == "503":
            raise ApiError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.")
        if fault == "502":
            self.close_connection = True
            return self.send_raw(502, "text/html; charset=UTF-8",
                                 b"<!DOCTYPE html><html><title>Error 502 (Server Error)!!1</title></html>",
                                 {"Connection": "close"})
        if fault == "timeout":
            time.sleep(self.st.hang_ms / 1000.0)
            self.close_connection = True
            return
        if fault == "reset":
            return self.hard_reset()
        self.send_json(200, self.answer(model, body, fault))

    def answer(self, model, body, fault):
        gc = body["generationConfig"]
        props = schema_props(gc)
        deep = "visualAudit" in props
        text = request_texts(body)
        title, duration, lines, partials = parse_prompt(text)
        clip = media_clip(body, duration)
        if not lines and not partials and clip:
            lines = media_lines(clip)
        prompt_tokens = est_tokens(json.dumps(body))
        if has_file_part(body) and duration:
            per_sec = 100 if gc.get("mediaResolution") == "MEDIA_RESOLUTION_LOW" else 300
            prompt_tokens += duration * per_sec
        usage = {"promptTokenCount": prompt_tokens, "promptTokensDetails": [{"modality": "TEXT",
                                                                             "tokenCount": prompt_tokens}]}
        envelope = {"modelVersion": model, "responseId": uuid.uuid4().hex[:22]}
        if fault == "blocked":
            usage["totalTokenCount"] = prompt_tokens
            return dict(envelope, promptFeedback={"blockReason": "PROHIBITED_CONTENT"}, usageMetadata=usage)
        if fault in ("safety", "recitation"):
            usage["totalTokenCount"] = prompt_tokens
            cand = {"finishReason": fault.upper(), "index": 0}
            if fault == "safety":
                cand["safetyRatings"] = [{"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH",
                                          "blocked": True}]
            return dict(envelope, candidates=[cand], usageMetadata=usage)
        result = merge(partials, title, deep) if partials else analyse(title, duration, lines, deep)
        if fault in ("bad_timestamps", "all_bad_timestamps"):
            break_timestamps(result, duration, fault == "all_bad_timestamps")
        answer = json.dumps(order_like_schema(result, props), ensure_ascii=False)
        thought = ("**Mapping the transcript**\n\nI am reading %d transcript lines and grouping them into sections "
                   "before writing the JSON." % len(lines))
        thoughts_tokens = est_tokens(thought) + 120
        finish = "STOP"
        max_out = gc.get("maxOutputTokens")
        if fault == "max_tokens" or (max_out and est_tokens(answer) > max_out):
            keep = min(len(answer) // 2, (max_out or 10 ** 9) * 4)
            answer, finish = answer[:keep], "MAX_TOKENS"
        elif fault == "truncated_json":
            answer = answer[: len(answer) * 2 // 3]
        parts = [{"text": thought, "thought": True}]
        if fault != "empty":
            parts.append({"text": answer})
        cand_tokens = est_tokens(answer) if fault != "empty" else 0
        if finish == "MAX_TOKENS" and max_out:
            cand_tokens = max_out
        usage.update(candidatesTokenCount=cand_tokens, thoughtsTokenCount=thoughts_tokens,
                     totalTokenCount=prompt_tokens + cand_tokens + thoughts_tokens)
        cand = {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}
        return dict(envelope, candidates=[cand], usageMetadata=usage)

    # -- Files API -------------------------------------------------------------------------

    def upload_start(self):
        body = self.json_body("upload.start")
        self.st.count("upload.start", body, self.safe_headers())
        self.check_key("upload.start")
        h = self.headers
        problems = []
        if (h.get("X-Goog-Upload-Protocol") or "").lower() != "resumable":
            problems.append("X-Goog-Upload-Protocol must be resumable")
        if (h.get("X-Goog-Upload-Command") or "").lower() != "start":
            problems.append("X-Goog-Upload-Command must be start")
        length = h.get("X-Goog-Upload-Header-Content-Length")
        if length is None or not length.isdigit():
            problems.append("X-Goog-Upload-Header-Content-Length missing or not a number")
        mime = h.get("X-Goog-Upload-Header-Content-Type")
        if not mime:
            problems.append("X-Goog-Upload-Header-Content-Type missing")
        meta = (body or {}).get("file") if isinstance(body, dict) else None
        if not isinstance(meta, dict) or not (meta.get("display_name") or meta.get("displayName")):
            problems.append('body must be {"file":{"display_name":...}}')
        if problems:
            raise ApiError(400, "INVALID_ARGUMENT", "; ".join(problems), violation="upload start: " + problems[0])
        self.delay()
        if self.st.take_fault(UPLOAD_FAULTS):
            raise ApiError(503, "UNAVAILABLE", "Service temporarily unavailable.")
        upload_id = "AHxI1n" + uuid.uuid4().hex + uuid.uuid4().hex[:10]
        path = None if self.st.discard_uploads else os.path.join(self.st.tmpdir, upload_id)
        if path:
            open(path, "wb").close()
        with self.st.lock:
            self.st.uploads[upload_id] = {"length": int(length), "mime": mime, "received": 0, "path": path,
                                          "display_name": meta.get("display_name") or meta.get("displayName"),
                                          "sha": hashlib.sha256(), "started": time.time()}
        url = "http://127.0.0.1:%d/upload/v1beta/files?upload_id=%s&upload_protocol=resumable" % (self.st.port,
                                                                                                  upload_id)
        self.send_raw(200, "text/plain; charset=utf-8", b"", {
            "x-goog-upload-url": url, "x-goog-upload-status": "active",
            "x-goog-upload-control-url": url, "x-goog-upload-chunk-granularity": str(self.st.upload_granularity),
            "X-GUploader-UploadID": upload_id})

    def upload_data(self, upload_id):
        cmd = [c.strip().lower() for c in (self.headers.get("X-Goog-Upload-Command") or "").split(",") if c.strip()]
        self.st.count("upload.data", headers=self.safe_headers())
        with self.st.lock:
            up = self.st.uploads.get(upload_id)
        if up is None:
            self.read_body()
            raise ApiError(404, "NOT_FOUND", "Upload %s not found (finished, cancelled or never started)" % upload_id,
                           violation="upload to an unknown upload_id")
        if "query" in cmd:
            self.read_body()
            return self.send_raw(200, "text/plain", b"", {"x-goog-upload-status": "active",
                                                         "x-goog-upload-size-received": str(up["received"])})
        if "cancel" in cmd:
            self.read_body()
            self.drop_upload(upload_id)
            return self.send_raw(200, "text/plain", b"", {"x-goog-upload-status": "cancelled"})
        if not cmd or not set(cmd) <= {"upload", "finalize"}:
            self.read_body()
            raise ApiError(400, "INVALID_ARGUMENT", "X-Goog-Upload-Command must be upload, finalize or both",
                           violation="bad X-Goog-Upload-Command %r" % self.headers.get("X-Goog-Upload-Command"))
        offset = self.headers.get("X-Goog-Upload-Offset")
        if offset is None or not offset.isdigit() or int(offset) != up["received"]:
            self.read_body()
            self.st.violation("upload.data", "X-Goog-Upload-Offset %r but %d bytes received" % (offset, up["received"]))
            return self.send_raw(400, "text/plain", b"Invalid X-Goog-Upload-Offset", {
                "x-goog-upload-status": "active", "x-goog-upload-size-received": str(up["received"])})
        if self.st.chunk_delay_ms > 0:  # a slow link: the request body waits in the socket meanwhile
            time.sleep(self.st.chunk_delay_ms / 1000.0)
        fault = self.st.take_fault(CHUNK_FAULTS)
        if fault in ("upload_503", "chunk_503"):
            self.read_body()
            raise ApiError(503, "UNAVAILABLE", "Service temporarily unavailable.")
        got = self.receive_chunk(up, fault == "upload_reset")
        if got is None:
            return self.hard_reset()
        with self.st.lock:
            up["received"] += got
            self.st.bytes_received += got
        final = "finalize" in cmd
        if not final and got % self.st.upload_granularity != 0:
            self.st.violation("upload.data", "non-final chunk of %d bytes is not a multiple of %d" %
                              (got, self.st.upload_granularity))
        if up["received"] > up["length"] or (final and up["received"] != up["length"]):
            self.st.violation("upload.data", "received %d bytes, announced %d" % (up["received"], up["length"]))
            self.drop_upload(upload_id)
            raise ApiError(400, "INVALID_ARGUMENT", "Upload size %d does not match the announced %d bytes" %
                           (up["received"], up["length"]))
        if not final:
            return self.send_raw(200, "text/plain", b"", {"x-goog-upload-status": "active",
                                                         "x-goog-upload-size-received": str(up["received"])})
        self.delay()
        f = self.finish_upload(upload_id, up)
        self.send_json(200, {"file": self.file_json(f)}, {"x-goog-upload-status": "final"})

    def receive_chunk(self, up, cut_off):
        """Appends one request body to the upload; None when it was cut off (then nothing of it is kept)."""
        sha = up["sha"].copy()
        total = int(self.headers.get("Content-Length") or 0)
        got = 0
        out = open(up["path"], "ab") if up["path"] else None
        try:
            for piece in self.body_chunks():
                if out:
                    out.write(piece)
                sha.update(piece)
                got += len(piece)
                if cut_off and got >= total // 2:
                    raise ConnectionError("cut off by the upload_reset fault")
        except ConnectionError:
            if out:
                out.truncate(up["received"])
            return None
        finally:
            if out:
                out.close()
        up["sha"] = sha
        return got

    def drop_upload(self, upload_id):
        with self.st.lock:
            up = self.st.uploads.pop(upload_id, None)
        if up and up["path"]:
            try:
                os.unlink(up["path"])
            except OSError:
                pass

    def finish_upload(self, upload_id, up):
        fid = uuid.uuid4().hex[:12]
        mode = self.st.take_fault(FILE_FAULTS)
        f = {"id": fid, "display_name": up["display_name"], "mime": up["mime"], "size": up["received"],
             "path": up["path"], "state": "PROCESSING", "polls": 0, "mode": mode, "created": now_rfc3339(),
             "sha256": base64.b64encode(up["sha"].hexdigest().encode()).decode()}
        with self.st.lock:
            self.st.uploads.pop(upload_id, None)
            self.st.files[fid] = f
        return f

    def file_json(self, f):
        out = {"name": "files/" + f["id"], "displayName": f["display_name"], "mimeType": f["mime"],
               "sizeBytes": str(f["size"]), "createTime": f["created"], "updateTime": f["created"],
               "expirationTime": now_rfc3339(48 * 3600), "sha256Hash": f["sha256"],
               "uri": "http://127.0.0.1:%d/v1beta/files/%s" % (self.st.port, f["id"]), "state": f["state"],
               "source": "UPLOADED"}
        if f["state"] == "FAILED":
            out["error"] = {"code": 3, "message": "The video could not be processed (stand-in file_failed fault)."}
        return out

    def file_get(self, fid):
        self.read_body()
        self.st.count("files.get", headers=self.safe_headers())
        self.check_key("files.get")
        self.delay()
        with self.st.lock:
            f = self.st.files.get(fid)
            if f is not None and f["state"] == "PROCESSING":
                f["polls"] += 1
                if f["polls"] >= self.st.processing_polls and f["mode"] != "never_active":
                    f["state"] = "FAILED" if f["mode"] == "file_failed" else "ACTIVE"
            snapshot = dict(f) if f else None
        if snapshot is None:
            raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to access the File %s or it may "
                           "not exist." % fid)
        self.send_json(200, self.file_json(snapshot))

    def file_delete(self, fid):
        self.read_body()
        self.st.count("files.delete", headers=self.safe_headers())
        self.check_key("files.delete")
        with self.st.lock:
            f = self.st.files.pop(fid, None)
        if f is None:
            raise ApiError(403, "PERMISSION_DENIED", "You do not have permission to access the File %s or it may "
                           "not exist." % fid)
        if f["path"]:
            try:
                os.unlink(f["path"])
            except OSError:
                pass
        self.send_json(200, {})

    # -- control ---------------------------------------------------------------------------

    def control(self, method, path):
        st = self.st
        if method == "POST" and path == "/_control":
            cfg = self.json_body("control") or {}
            try:
                with st.lock:
                    if "faults" in cfg or "fault_count" in cfg:
                        st.set_faults(cfg.get("faults", st.faults), cfg.get("fault_count"))
                    if "random_faults" in cfg:
                        st.set_random_faults(dict(cfg["random_faults"] or {}))
                    for key in ("latency_ms", "processing_polls", "hang_ms", "upload_granularity", "chunk_delay_ms"):
                        if key in cfg:
                            setattr(st, key, int(cfg[key]))
                    if "discard_uploads" in cfg:
                        st.discard_uploads = bool(cfg["discard_uploads"])
                    if "retry_delay" in cfg:
                        st.retry_delay = str(cfg["retry_delay"])
                    rpm_control(st, cfg)
                    if "refused_keys" in cfg:
                        st.refused_keys = {str(k): int(v) for k, v in (cfg["refused_keys"] or {}).items()}
                    for m in cfg.get("models", []):
                        if m not in st.models:
                            st.models.append(m)
                    if "known_models" in cfg:  # replaces the list: models.get and generateContent 404 for the rest
                        st.models = [str(m) for m in cfg["known_models"]]
            except (ValueError, TypeError) as exc:
                raise ApiError(400, "INVALID_ARGUMENT", str(exc))
            return self.send_json(200, self.config_json())
        if method == "POST" and path == "/_control/reset":
            self.read_body()
            with st.lock:
                st.reset_stats()
                st.set_faults([], None)
                st.chunk_delay_ms = 0
                st.random_faults = {}
                st.refused_keys = {}
            return self.send_json(200, self.config_json())
        self.read_body()
        if method == "GET" and path == "/_control/stats":
            with st.lock:
                stats = {"requests": dict(st.requests), "last": dict(st.last),
                         "generate_bodies": list(st.generate_bodies), "violations": list(st.violations),
                         "faults_applied": dict(st.faults_applied), "bytes_received": st.bytes_received,
                         "rpm": rpm_stats(st),
                         "config": self.config_json_locked()}
            return self.send_json(200, stats)
        if method == "GET" and path == "/_control/files":
            with st.lock:
                files = [dict(self.file_json(f), bytesReceived=f["size"]) for f in st.files.values()]
                pending = [{"upload_id": k, "display_name": u["display_name"], "received": u["received"],
                            "length": u["length"]} for k, u in st.uploads.items()]
            return self.send_json(200, {"files": files, "pending_uploads": pending})
        raise ApiError(404, "NOT_FOUND", "unknown control endpoint %s %s" % (method, path))

    def config_json(self):
        with self.st.lock:
            return self.config_json_locked()

    def config_json_locked(self):
        st = self.st
        return {"faults": list(st.faults), "fault_left": dict(st.fault_left), "random_faults": dict(st.random_faults),
                "latency_ms": st.latency_ms,
                "processing_polls": st.processing_polls, "retry_delay": st.retry_delay, "hang_ms": st.hang_ms,
                "upload_granularity": st.upload_granularity, "discard_uploads": st.discard_uploads,
                "chunk_delay_ms": st.chunk_delay_ms,
                "models": list(st.models)}


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def handle_error(self, request, client_address):
        # Resets and hangs are expected here; anything else is worth a line on stderr.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, ValueError)):
            super().handle_error(request, client_address)


def main():
    ap = argparse.ArgumentParser(description="Local stand-in for the Gemini REST API")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", help="write the bound port here (atomically) once listening")
    ap.add_argument("--api-key", help="required x-goog-api-key value (default: any non-empty key)")
    ap.add_argument("--control", action="store_true", help="enable the /_control endpoints")
    ap.add_argument("--models", help="extra model names, comma-separated")
    ap.add_argument("--known-models", help="the only model names known (comma-separated; replaces the defaults)")
    ap.add_argument("--faults", help="comma-separated faults (see the module docstring)")
    ap.add_argument("--fault-count", type=int, default=None, help="requests per fault (default: forever)")
    ap.add_argument("--latency-ms", type=int, default=0)
    ap.add_argument("--processing-polls", type=int, default=2, help="files.get calls before a file is ACTIVE")
    ap.add_argument("--retry-delay", default="0.2s", help="RetryInfo.retryDelay of the 429_retry fault")
    ap.add_argument("--hang-ms", type=int, default=60000, help="how long the timeout fault stalls")
    ap.add_argument("--upload-granularity", type=int, default=8 * 1024 * 1024)
    ap.add_argument("--discard-uploads", action="store_true", help="count and hash upload bytes, keep none")
    ap.add_argument("--verbose", action="store_true")
    rpm_arguments(ap)
    args = ap.parse_args()

    try:
        state = State(args)
    except ValueError as exc:
        ap.error(str(exc))
    server = Server((args.host, args.port), Handler)
    server.state, server.verbose = state, args.verbose
    state.port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % state.port)
        os.replace(tmp, args.port_file)

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        shutil.rmtree(state.tmpdir, ignore_errors=True)


if __name__ == "__main__":
    main()
