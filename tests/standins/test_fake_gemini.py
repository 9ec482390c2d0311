#!/usr/bin/env python3
"""Smoke test of the Gemini stand-in (stdlib only):  /usr/bin/python3 tests/standins/test_fake_gemini.py -v"""
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from urllib.parse import urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "test-key-123"

TRANSCRIPT = "\n".join("[%02d:%02d] %s" % (s // 60, s % 60, t) for s, t in [
    (0, "Welcome to this deep dive into compilers and interpreters"),
    (15, "First we look at lexical analysis and tokenization"),
    (75, "Parsing turns tokens into an abstract syntax tree"),
    (140, "Semantic analysis checks types and scopes"),
    (200, "Optimization passes rewrite the intermediate representation"),
    (260, "Finally code generation emits machine instructions"),
])
PROMPT = "Video metadata:\nTitle: Compilers 101\nDuration: 05:00 (300 seconds)\n\nTranscript (captions):\n" + TRANSCRIPT


def schema(deep=False):
    s = lambda: {"type": "STRING"}
    props = {"title": s(), "summary": s(), "keyTakeaways": {"type": "ARRAY", "items": s()},
             "timeline": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {
                 "timestamp": s(), "description": s(), "details": {"type": "ARRAY", "items": s()}},
                 "required": ["timestamp", "description", "details"]}},
             "keywords": {"type": "ARRAY", "items": s()}}
    if deep:
        props["visualAudit"] = {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {
            "timestamp": s(), "detail": s(), "type": s()}}}
    return {"type": "OBJECT", "properties": props, "required": list(props), "propertyOrdering": list(props)}


def request(deep=False, file_uri=None, **gc_extra):
    parts = [{"text": PROMPT}]
    if file_uri:
        parts.insert(0, {"fileData": {"mimeType": "video/mp4", "fileUri": file_uri}})
    gc = {"responseMimeType": "application/json", "responseSchema": schema(deep), "maxOutputTokens": 8192,
          "thinkingConfig": {"thinkingLevel": "low"}}
    gc.update(gc_extra)
    return {"systemInstruction": {"parts": [{"text": "You are an analyst."}]},
            "contents": [{"role": "user", "parts": parts}], "generationConfig": gc}


def ts_seconds(ts):
    p = [int(x) for x in ts.split(":")]
    return p[0] * 60 + p[1] if len(p) == 2 else p[0] * 3600 + p[1] * 60 + p[2]


class FakeGeminiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp()
        port_file = os.path.join(cls.tmp, "port")
        cls.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fake_gemini.py"), "--port", "0",
                                     "--port-file", port_file, "--api-key", KEY, "--control"])
        deadline = time.time() + 10
        while not os.path.exists(port_file):
            if time.time() > deadline or cls.proc.poll() is not None:
                raise RuntimeError("stand-in did not start")
            time.sleep(0.02)
        with open(port_file) as f:
            cls.port = int(f.read())

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)

    def setUp(self):
        self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        self.call("POST", "/_control/reset")

    def tearDown(self):
        self.conn.close()

    def call(self, method, path, body=None, headers=None, conn=None, raw=False):
        conn = conn or self.conn
        h = {"x-goog-api-key": KEY}
        h.update(headers or {})
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        if data is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=h)
        resp = conn.getresponse()
        payload = resp.read()
        if raw:
            return resp, payload
        return resp.status, (json.loads(payload) if payload else None), resp

    def control(self, **cfg):
        status, out, _ = self.call("POST", "/_control", cfg)
        self.assertEqual(status, 200, out)
        return out

    def stats(self):
        return self.call("GET", "/_control/stats")[1]

    def generate(self, body, model="gemini-3.6-flash", conn=None):
        return self.call("POST", "/v1beta/models/%s:generateContent" % model, body, conn=conn)

    def answer_of(self, out):
        parts = out["candidates"][0]["content"]["parts"]
        return "".join(p["text"] for p in parts if not p.get("thought"))

    # -- models and auth -------------------------------------------------------------------

    def test_known_models(self):
        """known_models replaces the list: models.get and generateContent 404 like Gemini for every other model."""
        before = self.control()["models"]
        try:
            self.control(known_models=["gemini-3.6-flash"])
            status, out, _ = self.call("GET", "/v1beta/models/gemini-3.6-flash")
            self.assertEqual((status, out["name"], out["supportedGenerationMethods"][0]),
                             (200, "models/gemini-3.6-flash", "generateContent"))
            status, out, _ = self.call("GET", "/v1beta/models/gemini-3.1-pro-preview")
            self.assertEqual((status, out["error"]["code"], out["error"]["status"]), (404, 404, "NOT_FOUND"))
            self.assertIn("models/gemini-3.1-pro-preview is not found", out["error"]["message"])
            status, out, _ = self.generate(request(), model="gemini-3.1-pro-preview")
            self.assertEqual((status, out["error"]["status"]), (404, "NOT_FOUND"))
            status, out, _ = self.call("GET", "/v1beta/models")
            self.assertEqual([m["name"] for m in out["models"]], ["models/gemini-3.6-flash"])
        finally:
            self.control(known_models=before)

    def test_models_and_auth(self):
        status, out, _ = self.call("GET", "/v1beta/models/gemini-3.6-flash")
        self.assertEqual(status, 200)
        self.assertEqual(out["name"], "models/gemini-3.6-flash")
        status, out, _ = self.call("GET", "/v1beta/models/gemini-9-ultra")
        self.assertEqual((status, out["error"]["status"]), (404, "NOT_FOUND"))
        status, out, _ = self.call("POST", "/v1beta/models/gemini-3.6-flash:generateContent", request(),
                                   headers={"x-goog-api-key": "wrong"})
        self.assertEqual((status, out["error"]["status"]), (400, "INVALID_ARGUMENT"))
        self.assertEqual(out["error"]["details"][0]["reason"], "API_KEY_INVALID")
        self.conn.request("POST", "/v1beta/models/gemini-3.6-flash:generateContent", body=json.dumps(request()))
        resp = self.conn.getresponse()
        self.assertEqual((resp.status, json.loads(resp.read())["error"]["status"]), (403, "PERMISSION_DENIED"))
        status, out, _ = self.generate(request(), model="gemini-nope")
        self.assertEqual(status, 404)

    # -- generateContent -------------------------------------------------------------------

    def test_generate_ok(self):
        status, out, _ = self.generate(request())
        sock_before = self.conn.sock
        self.assertEqual(status, 200, out)
        cand = out["candidates"][0]
        self.assertEqual(cand["finishReason"], "STOP")
        self.assertTrue(cand["content"]["parts"][0].get("thought"))
        result = json.loads(self.answer_of(out))
        self.assertEqual(list(result), ["title", "summary", "keyTakeaways", "timeline", "keywords"])
        self.assertEqual(result["title"], "Compilers 101")
        stamps = [ts_seconds(e["timestamp"]) for e in result["timeline"]]
        self.assertEqual(stamps, sorted(stamps))
        self.assertTrue(all(0 <= s <= 300 for s in stamps))
        self.assertIn("00:00", [e["timestamp"] for e in result["timeline"]])
        self.assertIn("lexical", json.dumps(result))
        u = out["usageMetadata"]
        self.assertEqual(u["totalTokenCount"], u["promptTokenCount"] + u["candidatesTokenCount"]
                         + u["thoughtsTokenCount"])
        self.assertEqual(out["modelVersion"], "gemini-3.6-flash")
        # keep-alive: the same connection serves the next request
        status, _, _ = self.generate(request())
        self.assertEqual(status, 200)
        self.assertIs(self.conn.sock, sock_before)
        st = self.stats()
        self.assertEqual(st["requests"]["generateContent"], 2)
        self.assertIn("[00:15] First we look", json.dumps(st["last"]["generateContent"]["body"]))
        self.assertEqual(st["last"]["generateContent"]["headers"]["x-goog-api-key"], "[REDACTED]")
        self.assertEqual(st["violations"], [])

    def test_generate_validation(self):
        bad = [request(temperature=0.2), request(topK=3),
               request(responseJsonSchema={"type": "object"}),
               request(thinkingConfig={"thinkingLevel": "low", "thinkingBudget": 1024}),
               request(responseMimeType="text/plain")]
        lower = request()
        lower["generationConfig"]["responseSchema"]["type"] = "object"
        extra = request()
        extra["generationConfig"]["responseSchema"]["additionalProperties"] = False
        noschema = request()
        del noschema["generationConfig"]["responseSchema"]
        nocontents = request()
        del nocontents["contents"]
        for body in bad + [lower, extra, noschema, nocontents]:
            status, out, _ = self.generate(body)
            self.assertEqual(status, 400, body)
            self.assertEqual(out["error"]["status"], "INVALID_ARGUMENT")
        self.assertEqual(len(self.stats()["violations"]), 9)
        status, out, _ = self.call("POST", "/v1beta/models/gemini-3.6-flash:generateContent", b"{not json")
        self.assertEqual(status, 400)

    def test_transient_faults(self):
        self.control(faults=["429_retry", "503", "500"], fault_count=1, retry_delay="0.2s")
        status, out, _ = self.generate(request())
        self.assertEqual((status, out["error"]["status"]), (429, "RESOURCE_EXHAUSTED"))
        types = {d["@type"].rsplit("/", 1)[1]: d for d in out["error"]["details"]}
        self.assertEqual(types["google.rpc.RetryInfo"]["retryDelay"], "0.2s")
        self.assertIn("PerMinute", types["google.rpc.QuotaFailure"]["violations"][0]["quotaId"])
        self.assertEqual(self.generate(request())[0], 503)
        self.assertEqual(self.generate(request())[0], 500)
        self.assertEqual(self.generate(request())[0], 200)
        self.control(faults=["429_day"], fault_count=1)
        status, out, _ = self.generate(request())
        self.assertEqual(status, 429)
        self.assertIn("PerDay", json.dumps(out))
        self.assertEqual(self.stats()["faults_applied"], {"429_retry": 1, "503": 1, "500": 1, "429_day": 1})

    def test_random_faults(self):
        self.control(random_faults={"503": 0.5, "500": 0.5})
        first = [self.generate(request())[0] for _ in range(6)]
        self.assertEqual(set(first) - {500, 503}, set(), first)
        self.control(random_faults={"503": 0.3})
        codes = [self.generate(request())[0] for _ in range(40)]
        self.assertEqual(set(codes), {200, 503}, codes)
        applied = self.stats()["faults_applied"]
        self.assertEqual(applied.get("503", 0), (first + codes).count(503))
        self.assertEqual(applied.get("500", 0), first.count(500))
        status, out, _ = self.call("POST", "/_control", {"random_faults": {"503": 0.7, "500": 0.7}})
        self.assertEqual(status, 400, out)
        self.call("POST", "/_control/reset")
        self.assertEqual(self.stats()["config"]["random_faults"], {})
        self.assertEqual(self.generate(request())[0], 200)

    def test_answer_faults(self):
        def run(fault):
            self.control(faults=[fault], fault_count=1)
            status, out, _ = self.generate(request())
            self.assertEqual(status, 200)
            return out
        out = run("blocked")
        self.assertNotIn("candidates", out)
        self.assertEqual(out["promptFeedback"]["blockReason"], "PROHIBITED_CONTENT")
        self.assertEqual(run("safety")["candidates"][0]["finishReason"], "SAFETY")
        out = run("max_tokens")
        self.assertEqual(out["candidates"][0]["finishReason"], "MAX_TOKENS")
        self.assertRaises(ValueError, json.loads, self.answer_of(out))
        out = run("truncated_json")
        self.assertEqual(out["candidates"][0]["finishReason"], "STOP")
        self.assertRaises(ValueError, json.loads, self.answer_of(out))
        self.assertEqual(self.answer_of(run("empty")), "")
        res = json.loads(self.answer_of(run("bad_timestamps")))
        self.assertTrue(any(ts_seconds(e["timestamp"].strip("[]")) > 300 for e in res["timeline"]
                            if e["timestamp"][0] in "0123456789["))
        res = json.loads(self.answer_of(run("all_bad_timestamps")))
        self.assertFalse(any(":" in e["timestamp"] and ts_seconds(e["timestamp"]) <= 300 for e in res["timeline"]))
        # a small maxOutputTokens truncates naturally
        status, out, _ = self.generate(request(maxOutputTokens=20))
        self.assertEqual(out["candidates"][0]["finishReason"], "MAX_TOKENS")

    def test_connection_faults(self):
        self.control(faults=["reset"], fault_count=1)
        with self.assertRaises((ConnectionError, http.client.RemoteDisconnected)):
            self.generate(request())
        self.conn.close()
        self.control(faults=["timeout"], fault_count=1, hang_ms=1500)
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=0.3)
        with self.assertRaises(socket.timeout):
            self.generate(request(), conn=c)
        c.close()
        self.assertEqual(self.generate(request())[0], 200)

    def test_latency_is_concurrent(self):
        self.control(latency_ms=500)
        results = []

        def one():
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            results.append(self.generate(request(), conn=c)[0])
            c.close()
        t0 = time.time()
        threads = [threading.Thread(target=one) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, [200] * 6)
        self.assertLess(time.time() - t0, 1.6)
        self.control(latency_ms=0)

    # -- Files API -------------------------------------------------------------------------

    def start_upload(self, size, name="clip"):
        resp, _ = self.call("POST", "/upload/v1beta/files", {"file": {"display_name": name}}, headers={
            "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": "video/mp4"}, raw=True)
        self.assertEqual(resp.status, 200)
        url = urlsplit(resp.getheader("x-goog-upload-url"))
        self.assertIn("upload_id=", url.query)
        self.assertIn("upload_protocol=resumable", url.query)
        return url.path + "?" + url.query

    def upload(self, url, data, offset, final):
        return self.call("POST", url, data, raw=True, headers={
            "X-Goog-Upload-Command": "upload, finalize" if final else "upload",
            "X-Goog-Upload-Offset": str(offset), "Content-Type": "application/octet-stream"})

    def test_files_lifecycle(self):
        self.control(processing_polls=2, upload_granularity=4)
        data = b"0123456789abcdef" * 1000
        url = self.start_upload(len(data))
        resp, _ = self.upload(url, data[:8], 0, False)
        self.assertEqual((resp.status, resp.getheader("x-goog-upload-size-received")), (200, "8"))
        resp, _ = self.upload(url, data[8:], 4, True)  # wrong offset
        self.assertEqual(resp.status, 400)
        resp, body = self.upload(url, data[8:], 8, True)
        self.assertEqual(resp.status, 200, body)
        f = json.loads(body)["file"]
        self.assertEqual((f["state"], f["sizeBytes"], f["mimeType"]), ("PROCESSING", str(len(data)), "video/mp4"))
        fid = f["name"].split("/")[1]
        status, out, _ = self.generate(request(deep=True, file_uri=f["uri"]))
        self.assertEqual((status, out["error"]["status"]), (400, "FAILED_PRECONDITION"))
        self.assertEqual(self.call("GET", "/v1beta/" + f["name"])[1]["state"], "PROCESSING")
        self.assertEqual(self.call("GET", "/v1beta/" + f["name"])[1]["state"], "ACTIVE")
        status, out, _ = self.generate(request(deep=True, file_uri=f["uri"],
                                               mediaResolution="MEDIA_RESOLUTION_LOW"))
        self.assertEqual(status, 200, out)
        self.assertIn("visualAudit", json.loads(self.answer_of(out)))
        self.assertEqual(len(self.call("GET", "/_control/files")[1]["files"]), 1)
        self.assertEqual(self.call("DELETE", "/v1beta/files/" + fid)[0], 200)
        self.assertEqual(self.call("GET", "/v1beta/files/" + fid)[0], 403)
        left = self.call("GET", "/_control/files")[1]
        self.assertEqual((left["files"], left["pending_uploads"]), ([], []))
        st = self.stats()
        self.assertEqual(st["bytes_received"], len(data))
        self.assertEqual(len(st["violations"]), 2)  # the wrong offset and the unready file

    def test_file_faults(self):
        self.control(faults=["upload_503", "never_active", "file_failed"], fault_count=1, processing_polls=1)
        resp, _ = self.call("POST", "/upload/v1beta/files", {"file": {"display_name": "x"}}, headers={
            "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": "3", "X-Goog-Upload-Header-Content-Type": "video/mp4"}, raw=True)
        self.assertEqual(resp.status, 503)
        names = []
        for _ in range(2):
            url = self.start_upload(3)
            resp, body = self.upload(url, b"abc", 0, True)
            names.append(json.loads(body)["file"]["name"])
        for _ in range(3):
            self.assertEqual(self.call("GET", "/v1beta/" + names[0])[1]["state"], "PROCESSING")
        out = self.call("GET", "/v1beta/" + names[1])[1]
        self.assertEqual(out["state"], "FAILED")
        self.assertIn("message", out["error"])
        for n in names:
            self.call("DELETE", "/v1beta/" + n)
        self.assertEqual(self.call("GET", "/_control/files")[1]["files"], [])

    def test_random_upload_and_file_faults(self):
        """random_faults reach the Files API too: upload starts, data requests and the state of finalized files."""
        self.control(random_faults={"upload_503": 1.0})  # the start request draws among UPLOAD_FAULTS
        resp, _ = self.call("POST", "/upload/v1beta/files", {"file": {"display_name": "x"}}, headers={
            "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": "3", "X-Goog-Upload-Header-Content-Type": "video/mp4"}, raw=True)
        self.assertEqual(resp.status, 503)
        self.control(random_faults={})
        url = self.start_upload(3)
        self.control(random_faults={"chunk_503": 1.0})
        self.assertEqual(self.upload(url, b"abc", 0, True)[0].status, 503)
        self.assertEqual(self.query(url), ("active", 0))  # nothing of a refused request is kept
        self.control(random_faults={"file_failed": 1.0}, processing_polls=1)
        resp, body = self.upload(url, b"abc", 0, True)  # data requests draw among CHUNK_FAULTS: none of these
        self.assertEqual(resp.status, 200, body)
        name = json.loads(body)["file"]["name"]
        self.assertEqual(self.call("GET", "/v1beta/" + name)[1]["state"], "FAILED")
        self.control(random_faults={"never_active": 1.0})
        name2 = json.loads(self.upload(self.start_upload(3), b"abc", 0, True)[1])["file"]["name"]
        for _ in range(3):
            self.assertEqual(self.call("GET", "/v1beta/" + name2)[1]["state"], "PROCESSING")
        self.assertEqual(self.generate(request())[0], 200)  # generateContent draws among its own faults: none here
        self.assertEqual(self.stats()["faults_applied"],
                         {"upload_503": 1, "chunk_503": 1, "file_failed": 1, "never_active": 1})
        for n in (name, name2):
            self.call("DELETE", "/v1beta/" + n)
        self.assertEqual(self.stats()["violations"], [])

    def query(self, url):
        resp, _ = self.call("POST", url, b"", raw=True, headers={"X-Goog-Upload-Command": "query"})
        return resp.getheader("x-goog-upload-status"), int(resp.getheader("x-goog-upload-size-received") or -1)

    def test_reset_mid_chunk_commits_nothing_and_resumes(self):
        self.control(faults=["upload_reset", "chunk_503"], fault_count=1, upload_granularity=4, processing_polls=0)
        data = b"x" * 4096
        url = self.start_upload(len(data))
        with self.assertRaises((ConnectionError, http.client.HTTPException, OSError)):
            self.upload(url, data[:2048], 0, False)  # cut off half-way
        self.conn.close()  # http.client reconnects on the next request
        self.assertEqual(self.query(url), ("active", 0))  # only whole requests are committed
        self.assertEqual(self.upload(url, data[:2048], 0, False)[0].status, 503)
        self.assertEqual(self.upload(url, data[:2048], 0, False)[0].status, 200)
        self.assertEqual(self.query(url), ("active", 2048))
        resp, body = self.upload(url, data[2048:], 2048, True)
        self.assertEqual((resp.status, resp.getheader("x-goog-upload-status")), (200, "final"))
        f = json.loads(body)["file"]
        self.assertEqual(f["sizeBytes"], "4096")
        self.assertEqual(self.call("GET", "/v1beta/" + f["name"])[1]["state"], "ACTIVE")  # unwrapped on GET
        self.call("DELETE", "/v1beta/" + f["name"])
        self.assertEqual(self.stats()["violations"], [])

    def test_expired_file_and_refused_youtube_url(self):
        self.control(faults=["file_expired", "youtube_refused"], fault_count=1, processing_polls=0)
        url = self.start_upload(3)
        f = json.loads(self.upload(url, b"abc", 0, True)[1])["file"]
        self.call("GET", "/v1beta/" + f["name"])
        status, out, _ = self.generate(request(deep=True, file_uri=f["uri"]))
        self.assertEqual((status, out["error"]["status"]), (403, "PERMISSION_DENIED"))
        self.assertEqual(self.call("GET", "/_control/files")[1]["files"], [])  # gone, like an expired file
        yt = "https://www.youtube.com/watch?v=ok000000000"
        self.assertEqual(self.generate(request(deep=True, file_uri=yt))[0], 400)
        self.assertEqual(self.generate(request(deep=True, file_uri=yt))[0], 200)
        self.assertEqual(self.stats()["violations"], [])

    def test_video_metadata_clip(self):
        body = request(deep=True, file_uri="https://www.youtube.com/watch?v=ok000000000")
        body["contents"][0]["parts"][0]["videoMetadata"] = {"startOffset": "120s", "endOffset": "240s"}
        body["contents"][0]["parts"][1]["text"] = "Video metadata:\nTitle: T\nDuration: 05:00 (300 seconds)\n"
        status, out, _ = self.generate(body)
        self.assertEqual(status, 200, out)
        stamps = [ts_seconds(e["timestamp"]) for e in json.loads(self.answer_of(out))["timeline"]]
        self.assertTrue(stamps and all(120 <= t < 240 for t in stamps), stamps)
        body["contents"][0]["parts"][0]["videoMetadata"] = {"startOffset": "240s", "endOffset": "120s"}
        self.assertEqual(self.generate(body)[0], 400)

    def test_pending_upload_is_reported(self):
        self.start_upload(10)
        self.assertEqual(len(self.call("GET", "/_control/files")[1]["pending_uploads"]), 1)


if __name__ == "__main__":
    unittest.main()
